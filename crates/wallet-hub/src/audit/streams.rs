//! The streams' checks: every wallet's row is the fold of its stream (read in batches of
//! wallets, folded here), and, from the other side in one query, its version is its
//! stream's last sequence.

use std::collections::BTreeMap;

use domain::{Appended, Wallet, WalletId};
use sqlx::PgConnection;
use store::audit as store_audit;
use store::streams::{self, StoredEvent};
use store::{StoreError, wallets};
use uuid::Uuid;

use crate::rebuild::{error_chain, plan};

use super::{AuditError, AuditReport, LIST_LIMIT, STREAM, VERSION, store_err};

/// The streams' checks: each row is its stream's fold, each version its last sequence.
pub(super) async fn check(
    conn: &mut PgConnection,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let limit = usize::try_from(LIST_LIMIT).unwrap_or(usize::MAX);
    let (rows, total) = stream_mismatches(conn, limit)
        .await
        .map_err(store_err(STREAM))?;
    report.add(
        STREAM,
        &rows,
        |_| total,
        |r| format!("wallet {}: {}", r.wallet_id, r.detail),
    );
    let rows = store_audit::version_mismatches(conn, LIST_LIMIT)
        .await
        .map_err(store_err(VERSION))?;
    report.add(
        VERSION,
        &rows,
        |r| r.total,
        |r| match r.last_sequence {
            Some(last) => format!(
                "wallet {}: version {}, its stream ends at sequence {last}",
                r.wallet_id, r.version
            ),
            None => format!(
                "wallet {}: version {}, it has no stream",
                r.wallet_id, r.version
            ),
        },
    );
    Ok(())
}

/// Wallets read and folded per batch.
const BATCH: i64 = 500;

/// One wallet whose row is not the fold of its stream, or whose stream does not fold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamMismatch {
    pub wallet_id: WalletId,
    pub detail: String,
}

/// Up to `limit` wallets whose row is not the fold of their stream, and how many there
/// are in all.
async fn stream_mismatches(
    conn: &mut PgConnection,
    limit: usize,
) -> Result<(Vec<StreamMismatch>, i64), StoreError> {
    let mut listed = Vec::new();
    let mut total = 0_i64;
    let mut after = Uuid::nil();
    loop {
        let ids = streams::wallet_ids_after(&mut *conn, after, BATCH).await?;
        let Some(last) = ids.last() else {
            return Ok((listed, total));
        };
        after = last.as_uuid();
        for mismatch in batch_mismatches(conn, &ids).await? {
            total += 1;
            if listed.len() < limit {
                listed.push(mismatch);
            }
        }
    }
}

/// The mismatches among `ids` (in id order), from one read of their rows and one of their
/// streams.
async fn batch_mismatches(
    conn: &mut PgConnection,
    ids: &[WalletId],
) -> Result<Vec<StreamMismatch>, StoreError> {
    let rows = wallets::find_many(conn, ids).await?;
    let mut streams: BTreeMap<Uuid, Vec<StoredEvent>> = BTreeMap::new();
    for event in streams::read_many(conn, ids).await? {
        streams.entry(event.wallet_id).or_default().push(event);
    }
    Ok(rows
        .into_iter()
        .filter_map(|(wallet_id, row)| {
            let stream = streams
                .get(&wallet_id.as_uuid())
                .map_or(&[][..], Vec::as_slice);
            judge(row, stream).map(|detail| StreamMismatch { wallet_id, detail })
        })
        .collect())
}

/// What is wrong with one wallet, if anything.
fn judge(row: Result<Wallet, StoreError>, stream: &[StoredEvent]) -> Option<String> {
    let row = match row {
        Ok(row) => row,
        Err(error) => {
            return Some(format!(
                "its row does not read as a wallet: {}",
                error_chain(&error)
            ));
        }
    };
    let stream = match stream
        .iter()
        .map(StoredEvent::appended)
        .collect::<Result<Vec<Appended>, _>>()
    {
        Ok(stream) => stream,
        Err(error) => return Some(format!("its stream does not read: {}", error_chain(&error))),
    };
    let folded = match domain::fold(&stream) {
        Ok(folded) => folded,
        Err(error) => return Some(format!("its stream does not fold: {error}")),
    };
    let fields = plan::differences(Some(&row), &folded);
    if fields.is_empty() {
        return None;
    }
    let fields: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
    Some(format!(
        "row differs from the fold of its {} events in {}",
        stream.len(),
        fields.join(", ")
    ))
}
