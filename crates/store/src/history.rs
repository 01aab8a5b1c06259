//! The streams of wallets that existed before streams did, derived from what was recorded
//! of them: the wallet row (its opening), its ledger transactions (money moved, holds
//! placed, captured, voided, expired) and its status changes, in the order they happened.
//! A derived stream must fold into exactly the wallet row (balance, held amount, status,
//! version); if it does not, nothing is written and the wallet is reported.
//!
//! Events derived so are marked `migrated`: they get new ids (consumers never received
//! them), the opening has no actor (who opened a wallet was not recorded) and a hold's
//! `available_after` is the balance less what the wallet held then.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use domain::ledger::Kind;
use domain::{
    Actor, Appended, Currency, DomainEvent, EventId, EventMetadata, EventType, FundsAdded,
    FundsReceived, FundsTransferred, FundsWithdrawn, HoldCaptured, HoldExpired, HoldId, HoldPlaced,
    HoldVoided, Money, TransactionId, Wallet, WalletCreated, WalletId, WalletStatus,
    WalletStatusChanged,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;
use crate::streams;
use crate::wallets::WalletRow;

/// The correlation id of a derived opening (the request that opened it is not recorded).
const MIGRATION: &str = "migration";

#[derive(Debug, sqlx::FromRow)]
struct EntryRow {
    transaction_id: Uuid,
    kind: String,
    correlation_id: String,
    created_at: DateTime<Utc>,
    actor_issuer: Option<String>,
    actor_subject: Option<String>,
    hold_id: Option<Uuid>,
    entry_id: i64,
    wallet_id: Option<Uuid>,
    account: String,
    amount_minor: i64,
    balance_after_minor: Option<i64>,
}

#[derive(Debug, sqlx::FromRow)]
struct HoldRow {
    id: Uuid,
    wallet_id: Uuid,
    to_wallet_id: Option<Uuid>,
    amount_minor: i64,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct StatusRow {
    wallet_id: Uuid,
    from_status: String,
    to_status: String,
    actor_issuer: String,
    actor_subject: String,
    correlation_id: String,
    created_at: DateTime<Utc>,
}

/// One recorded change of a wallet, before it becomes an event.
#[derive(Debug)]
enum Change<'a> {
    Ledger(&'a [EntryRow]),
    Status(&'a StatusRow),
}

/// Derives the streams of up to `limit` wallets that have none, in the caller's
/// transaction (which locks those wallets): returns how many it derived; 0 when every
/// wallet has its stream.
pub async fn derive_missing(conn: &mut PgConnection, limit: i64) -> Result<usize, StoreError> {
    let rows: Vec<WalletRow> = sqlx::query_as(
        "SELECT id, user_id, name, currency, balance_minor, held_minor, status, version, created_at \
         FROM wallets w \
         WHERE NOT EXISTS (SELECT 1 FROM wallet_events e WHERE e.wallet_id = w.id) \
         ORDER BY id LIMIT $1 FOR UPDATE",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let wallets: Vec<Wallet> = rows
        .into_iter()
        .map(Wallet::try_from)
        .collect::<Result<_, _>>()?;
    let ids: Vec<Uuid> = wallets.iter().map(|w| w.id().as_uuid()).collect();
    let entries: Vec<EntryRow> = sqlx::query_as(
        "SELECT t.id AS transaction_id, t.kind, t.correlation_id, t.created_at, t.actor_issuer, \
                t.actor_subject, t.hold_id, e.id AS entry_id, e.wallet_id, e.account, \
                e.amount_minor, e.balance_after_minor \
         FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id \
         WHERE t.id IN (SELECT transaction_id FROM ledger_entries WHERE wallet_id = ANY($1)) \
         ORDER BY t.id, e.id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let holds: Vec<HoldRow> = sqlx::query_as(
        "SELECT id, wallet_id, to_wallet_id, amount_minor, expires_at FROM holds \
         WHERE wallet_id = ANY($1) OR to_wallet_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let statuses: Vec<StatusRow> = sqlx::query_as(
        "SELECT wallet_id, from_status, to_status, actor_issuer, actor_subject, correlation_id, \
                created_at \
         FROM wallet_status_changes WHERE wallet_id = ANY($1) ORDER BY created_at, id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;

    let holds: HashMap<Uuid, &HoldRow> = holds.iter().map(|hold| (hold.id, hold)).collect();
    let transactions: Vec<&[EntryRow]> = entries
        .chunk_by(|a, b| a.transaction_id == b.transaction_id)
        .collect();
    let mut streams = Vec::with_capacity(wallets.len());
    for wallet in &wallets {
        let id = wallet.id().as_uuid();
        // Ordered by when they happened; a ledger transaction before a status change of
        // the same instant, ledger transactions by their first entry of this wallet.
        let mut changes: BTreeMap<(DateTime<Utc>, u8, i64, usize), Change<'_>> = BTreeMap::new();
        for (index, entries) in transactions.iter().enumerate() {
            if let Some(first) = entries.iter().find(|e| e.wallet_id == Some(id)) {
                changes.insert(
                    (first.created_at, 0, first.entry_id, index),
                    Change::Ledger(entries),
                );
            }
        }
        for (index, status) in statuses.iter().enumerate() {
            if status.wallet_id == id {
                changes.insert((status.created_at, 1, 0, index), Change::Status(status));
            }
        }
        streams.push(derive(wallet, changes.into_values(), &holds)?);
    }
    let appended: Vec<&Appended> = streams.iter().flatten().collect();
    streams::append_many(conn, &appended, true).await?;
    Ok(wallets.len())
}

/// The stream of `row` from its changes in order; it must fold into `row`.
fn derive<'a>(
    row: &Wallet,
    changes: impl Iterator<Item = Change<'a>>,
    holds: &HashMap<Uuid, &HoldRow>,
) -> Result<Vec<Appended>, StoreError> {
    let id = row.id();
    let corrupt = |what: String| StoreError::corrupt("wallet history", id, what);
    let created = WalletCreated {
        metadata: metadata(
            EventType::WalletCreated,
            id,
            row.created_at(),
            MIGRATION,
            None,
        ),
        wallet_id: id,
        user_id: row.user_id(),
        name: row.name().as_str().to_owned(),
        currency: row.currency(),
    };
    let mut wallet = Wallet::opened(&created).map_err(|e| corrupt(e.to_string()))?;
    let mut stream = vec![Appended {
        sequence: 1,
        event: created.into(),
    }];
    for change in changes {
        let event = match change {
            Change::Ledger(entries) => ledger_event(&wallet, entries, holds)?,
            Change::Status(status) => status_event(id, status)?,
        };
        wallet.apply(&event).map_err(|e| corrupt(e.to_string()))?;
        stream.push(Appended {
            sequence: wallet.version(),
            event,
        });
    }
    if wallet != *row {
        return Err(corrupt(format!(
            "its history makes {} balance, {} held, {}, version {}; the row says {} balance, \
             {} held, {}, version {}",
            wallet.balance(),
            wallet.held(),
            wallet.status(),
            wallet.version(),
            row.balance(),
            row.held(),
            row.status(),
            row.version(),
        )));
    }
    Ok(stream)
}

/// The event of one ledger transaction for `wallet` (as the events before it left it).
fn ledger_event(
    wallet: &Wallet,
    entries: &[EntryRow],
    holds: &HashMap<Uuid, &HoldRow>,
) -> Result<DomainEvent, StoreError> {
    let id = wallet.id();
    let currency = wallet.currency();
    let first = &entries[0];
    let corrupt = |what: &str| {
        StoreError::corrupt("ledger transaction", first.transaction_id, what.to_owned())
    };
    let kind: Kind = first.kind.parse().map_err(|_| corrupt("unknown kind"))?;
    let on = |wallet: Option<Uuid>, account: &str| {
        entries
            .iter()
            .find(|e| e.wallet_id == wallet && e.wallet_id.is_some() && e.account == account)
    };
    let other = entries
        .iter()
        .find(|e| e.account == "balance" && e.wallet_id.is_some_and(|w| w != id.as_uuid()));
    let mine = on(Some(id.as_uuid()), "balance");
    let money = |minor: i64| Money::from_minor(minor, currency);
    let after = |entry: &EntryRow| money(entry.balance_after_minor.unwrap_or_default());
    let actor = first
        .actor_issuer
        .clone()
        .zip(first.actor_subject.clone())
        .map(|(issuer, subject)| Actor { issuer, subject });
    let meta = |event_type| {
        metadata(
            event_type,
            id,
            first.created_at,
            &first.correlation_id,
            actor.clone(),
        )
    };
    let transaction_id = TransactionId::from_uuid(first.transaction_id);
    let hold = first.hold_id.and_then(|hold| holds.get(&hold));
    let hold_id = first.hold_id.map(HoldId::from_uuid);
    Ok(match (kind, mine, hold, hold_id) {
        (Kind::Deposit, Some(mine), ..) => FundsAdded {
            metadata: meta(EventType::FundsAdded),
            wallet_id: id,
            transaction_id,
            amount: money(mine.amount_minor),
            balance_after: after(mine),
        }
        .into(),
        (Kind::Withdrawal, Some(mine), ..) => FundsWithdrawn {
            metadata: meta(EventType::FundsWithdrawn),
            wallet_id: id,
            transaction_id,
            amount: money(-mine.amount_minor),
            balance_after: after(mine),
        }
        .into(),
        (Kind::Transfer, Some(mine), ..) => {
            let other = other.ok_or_else(|| corrupt("a transfer names one wallet"))?;
            let other_id = WalletId::from_uuid(other.wallet_id.unwrap_or_default());
            if mine.amount_minor < 0 {
                FundsTransferred {
                    metadata: meta(EventType::FundsTransferred),
                    from_wallet_id: id,
                    to_wallet_id: other_id,
                    transfer_id: transaction_id,
                    amount: money(-mine.amount_minor),
                    from_balance_after: after(mine),
                    to_balance_after: after(other),
                }
                .into()
            } else {
                received(
                    meta(EventType::FundsReceived),
                    id,
                    other_id,
                    transaction_id,
                    None,
                    mine,
                    currency,
                )
            }
        }
        (Kind::Hold, _, Some(hold), Some(hold_id)) => {
            let amount = money(hold.amount_minor);
            let held = wallet.held().checked_add(amount);
            let available_after = held
                .and_then(|held| wallet.balance().checked_sub(held))
                .map_err(|_| corrupt("a hold out of range"))?;
            HoldPlaced {
                metadata: meta(EventType::HoldPlaced),
                hold_id,
                wallet_id: id,
                to_wallet_id: hold.to_wallet_id.map(WalletId::from_uuid),
                amount,
                expires_at: hold.expires_at,
                available_after,
            }
            .into()
        }
        (Kind::Capture, Some(mine), Some(hold), Some(hold_id))
            if hold.wallet_id == id.as_uuid() =>
        {
            let captured = -mine.amount_minor;
            HoldCaptured {
                metadata: meta(EventType::HoldCaptured),
                hold_id,
                wallet_id: id,
                to_wallet_id: hold.to_wallet_id.map(WalletId::from_uuid),
                transaction_id,
                amount: money(captured),
                released: money(hold.amount_minor - captured),
                balance_after: after(mine),
                to_balance_after: other.map(after),
            }
            .into()
        }
        (Kind::Capture, Some(mine), Some(hold), Some(hold_id)) => received(
            meta(EventType::FundsReceived),
            id,
            WalletId::from_uuid(hold.wallet_id),
            transaction_id,
            Some(hold_id),
            mine,
            currency,
        ),
        (Kind::Void, _, Some(hold), Some(hold_id)) => HoldVoided {
            metadata: meta(EventType::HoldVoided),
            hold_id,
            wallet_id: id,
            transaction_id,
            amount: money(hold.amount_minor),
        }
        .into(),
        (Kind::Expiry, _, Some(hold), Some(hold_id)) => HoldExpired {
            metadata: meta(EventType::HoldExpired),
            hold_id,
            wallet_id: id,
            transaction_id,
            amount: money(hold.amount_minor),
            expires_at: hold.expires_at,
        }
        .into(),
        _ => {
            return Err(corrupt(
                "its entries do not describe a change of the wallet",
            ));
        }
    })
}

fn received(
    metadata: EventMetadata,
    id: WalletId,
    from: WalletId,
    transaction_id: TransactionId,
    hold_id: Option<HoldId>,
    mine: &EntryRow,
    currency: Currency,
) -> DomainEvent {
    FundsReceived {
        metadata,
        wallet_id: id,
        from_wallet_id: from,
        transaction_id,
        hold_id,
        amount: Money::from_minor(mine.amount_minor, currency),
        balance_after: Money::from_minor(mine.balance_after_minor.unwrap_or_default(), currency),
    }
    .into()
}

fn status_event(id: WalletId, status: &StatusRow) -> Result<DomainEvent, StoreError> {
    let parse = |text: &str| {
        text.parse::<WalletStatus>()
            .map_err(|e| StoreError::corrupt("wallet status change", id, Box::new(e)))
    };
    let actor = Actor {
        issuer: status.actor_issuer.clone(),
        subject: status.actor_subject.clone(),
    };
    Ok(WalletStatusChanged {
        metadata: metadata(
            EventType::WalletStatusChanged,
            id,
            status.created_at,
            &status.correlation_id,
            Some(actor),
        ),
        wallet_id: id,
        from: parse(&status.from_status)?,
        to: parse(&status.to_status)?,
    }
    .into())
}

fn metadata(
    event_type: EventType,
    wallet: WalletId,
    occurred_at: DateTime<Utc>,
    correlation_id: &str,
    actor: Option<Actor>,
) -> EventMetadata {
    EventMetadata {
        event_id: EventId::new(),
        occurred_at,
        aggregate_id: wallet.as_uuid(),
        correlation_id: correlation_id.to_owned(),
        schema_version: event_type.schema_version(),
        actor,
    }
}
