//! One try of a batch: its transaction, from the key claims to the COMMIT (steps 1 to 5
//! of [`super`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::response::{IntoResponse, Response};
use domain::{
    Appended, Decision, EventContext, Held, HoldId, Submission as Judged, TransactionId, WalletId,
};
use outbox::Outgoing;
use store::idempotency::{self, Claim, KeyClaim, StoredAnswer, Taken};
use store::ledger::{self, Posting};
use store::transactions::TransactionXid;
use store::wallets::{self, StatusChange};
use store::{holds, streams};

use super::commit::{self, Commit};
use super::{Submission, Writer};
use crate::error::ApiError;
use crate::limits::Commitment;
use crate::resources::outcome_reply;
use crate::write::{Reply, replay};

/// Why a try ended without answers.
#[derive(Debug)]
pub(super) enum Failure {
    /// Rolled back (before COMMIT, or COMMIT failed and the transaction is known to have
    /// aborted): nothing was written; the batch may run again.
    Retry(ApiError),
    /// A request was abandoned at its timeout before the COMMIT: rolled back; the batch
    /// runs again without it.
    Abandoned,
    /// The COMMIT failed and whether it took effect is not known: never run again.
    OutcomeUnknown,
}

impl<E: Into<ApiError>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Retry(error.into())
    }
}

/// Where a request of the batch stands.
#[derive(Debug)]
enum Slot {
    /// To be decided.
    Run,
    /// Answered without writing (a replay, a key reused or in use, a refusal not stored).
    Done(Result<Response, ApiError>),
    /// Decided: its reply (an accepted command, or a refusal stored with its key).
    Decided(Reply),
    /// Its key is that of the earlier request at this index of the batch.
    Follows(usize),
}

/// What an accepted request writes.
#[derive(Debug)]
struct Change {
    index: usize,
    decision: Decision,
}

/// One try of the batch in one transaction: the answers in batch order, or why there are
/// none.
pub(super) async fn attempt(
    writer: &Writer,
    batch: &[&Submission],
) -> Result<Vec<Result<Response, ApiError>>, Failure> {
    let mut tx = writer.pool.begin().await?;
    let mut slots: Vec<Slot> = batch.iter().map(|_| Slot::Run).collect();
    let mut stored = claim_keys(writer, &mut tx, batch, &mut slots).await?;

    // 2. Lock every wallet to change, in id order, in one statement.
    let commands: Vec<&domain::Command> = batch
        .iter()
        .zip(&slots)
        .filter(|(_, slot)| matches!(slot, Slot::Run))
        .map(|(submission, _)| &submission.request.command)
        .collect();
    let ids: BTreeSet<WalletId> = commands.iter().flat_map(|c| c.wallets()).collect();
    let ids: Vec<WalletId> = ids.into_iter().collect();
    let named: Vec<HoldId> = commands.iter().filter_map(|c| c.hold()).collect();
    let (mut wallets, xid) = lock(&mut tx, &ids, &named).await?;

    // 3. The rules, in arrival order.
    let (changes, released) = decide_all(batch, &mut slots, &mut wallets)?;
    let answers = answers_to_store(batch, &slots, &mut stored);

    // 4. The writes, one statement each.
    write(&mut tx, batch, &changes, &wallets).await?;
    idempotency::record_answers(&mut tx, &answers).await?;
    idempotency::release_many(&mut tx, &released).await?;

    // 5. The id (read with the locks, when there were any), the commit, the answers.
    let xid = match xid {
        Some(xid) => xid,
        None => store::transactions::current(&mut tx).await?,
    };
    if !begin_commit(batch) {
        return Err(Failure::Abandoned);
    }
    match commit::commit(tx, &xid, &writer.pool, writer.outcome_wait).await {
        Commit::Committed => {}
        Commit::Aborted(error) => return Err(Failure::Retry(error.into())),
        Commit::Unknown => return Err(Failure::OutcomeUnknown),
    }
    if !changes.is_empty() {
        writer.waker.wake();
    }
    Ok(slots
        .into_iter()
        .enumerate()
        .map(|(index, slot)| match slot {
            Slot::Decided(reply) => Ok(reply.into_response()),
            Slot::Done(answer) => answer,
            Slot::Follows(first) => follow(stored.get(&first), batch[index]),
            Slot::Run => Err(ApiError::internal(std::io::Error::other(
                "a request of the batch was never decided",
            ))),
        })
        .collect())
}

/// Step 2: locks the wallets `ids` (in id order, in one statement) and reads their holds:
/// those recorded pending, and those `named` by the batch's commands (no statement when
/// there are none). Also gives the transaction's id, when the lock read it.
async fn lock(
    tx: &mut sqlx::PgConnection,
    ids: &[WalletId],
    named: &[HoldId],
) -> Result<(BTreeMap<WalletId, Held>, Option<TransactionXid>), Failure> {
    if ids.is_empty() {
        return Ok((BTreeMap::new(), None));
    }
    let locked = wallets::lock_with_owners(tx, ids).await?;
    let mut wallets: BTreeMap<WalletId, Held> = locked
        .wallets
        .into_iter()
        .map(|held| (held.wallet.id(), held))
        .collect();
    // A wallet's held amount is the sum of its pending holds: only wallets holding
    // something have any to read (most batches, of deposits and the like, have none).
    let holding: Vec<WalletId> = wallets
        .values()
        .filter(|held| held.wallet.held().is_positive())
        .map(|held| held.wallet.id())
        .collect();
    if holding.is_empty() && named.is_empty() {
        return Ok((wallets, locked.xid));
    }
    for hold in holds::for_decision(tx, &holding, named).await? {
        if let Some(held) = wallets.get_mut(&hold.wallet_id) {
            held.holds.push(hold);
        }
    }
    Ok((wallets, locked.xid))
}

/// Step 1: claims the batch's idempotency keys (the first use of a key in the batch claims
/// it); returns the answers stored before for keys answered earlier (what their followers
/// in the batch replay).
async fn claim_keys(
    writer: &Writer,
    tx: &mut sqlx::PgConnection,
    batch: &[&Submission],
    slots: &mut [Slot],
) -> Result<HashMap<usize, StoredAnswer>, Failure> {
    let mut first_use: HashMap<(&str, &str), usize> = HashMap::new();
    let mut claims = Vec::new();
    for (index, submission) in batch.iter().enumerate() {
        let Some(key) = &submission.request.key else {
            continue;
        };
        let key = key.as_store_key();
        match first_use.get(&(key.caller, key.key)) {
            Some(&first) => slots[index] = Slot::Follows(first),
            None => {
                first_use.insert((key.caller, key.key), index);
                claims.push((
                    index,
                    KeyClaim {
                        key,
                        request_hash: &submission.hash,
                    },
                ));
            }
        }
    }
    let only: Vec<KeyClaim<'_>> = claims.iter().map(|(_, claim)| *claim).collect();
    let taken = idempotency::claim_many(tx, &only, writer.idempotency_ttl_hours).await?;
    let mut stored = HashMap::new();
    for ((index, claim), taken) in claims.iter().zip(taken) {
        match taken {
            Taken::Claimed => {}
            Taken::Busy => slots[*index] = Slot::Done(Err(ApiError::IdempotencyInFlight)),
            // Answered before (or expired, and then retaken): one by one, as they are rare.
            Taken::Exists => {
                let claimed = idempotency::claim(
                    tx,
                    claim.key,
                    claim.request_hash,
                    writer.idempotency_ttl_hours,
                )
                .await?;
                if let Claim::Answered(answer) = claimed {
                    slots[*index] = if answer.route != claim.key.route
                        || answer.request_hash != claim.request_hash
                    {
                        Slot::Done(Err(ApiError::IdempotencyKeyReuse))
                    } else {
                        Slot::Done(replay(answer.clone()))
                    };
                    stored.insert(*index, answer);
                }
            }
        }
    }
    Ok(stored)
}

/// Step 3: decides every request still to run, in arrival order; returns the accepted
/// changes and the keys to give back (requests refused in a way that is not stored).
fn decide_all<'b>(
    batch: &[&'b Submission],
    slots: &mut [Slot],
    wallets: &mut BTreeMap<WalletId, Held>,
) -> Result<(Vec<Change>, Vec<idempotency::Key<'b>>), ApiError> {
    let mut changes = Vec::new();
    let mut released = Vec::new();
    for (index, submission) in batch.iter().enumerate() {
        if !matches!(slots[index], Slot::Run) {
            continue;
        }
        let request = &submission.request;
        let ctx = EventContext::new(chrono::Utc::now(), request.ctx.correlation_id.clone())
            .acted_by(request.caller.actor());
        let judged = Judged {
            command: &request.command,
            if_match: request.if_match.as_ref(),
            ctx: &ctx,
            transaction_id: TransactionId::new(),
        };
        match domain::decide(wallets, &judged) {
            Ok(decision) => {
                let created_at = decision.occurred_at();
                slots[index] = Slot::Decided(
                    outcome_reply(&decision.outcome, created_at).map_err(ApiError::internal)?,
                );
                changes.push(Change { index, decision });
            }
            Err(refusal) => {
                let error = ApiError::from(refusal);
                slots[index] = match &request.key {
                    Some(_) if error.is_recorded_outcome() => {
                        let (status, body) = error.problem();
                        Slot::Decided(Reply {
                            status,
                            body,
                            location: None,
                        })
                    }
                    Some(key) => {
                        released.push(key.as_store_key());
                        Slot::Done(Err(error))
                    }
                    None => Slot::Done(Err(error)),
                };
            }
        }
    }
    Ok((changes, released))
}

/// The answers to store with the keys of decided requests; each also becomes the stored
/// answer its followers in the batch replay.
fn answers_to_store<'b>(
    batch: &[&'b Submission],
    slots: &'b [Slot],
    stored: &mut HashMap<usize, StoredAnswer>,
) -> Vec<idempotency::Answer<'b>> {
    let mut answers = Vec::new();
    for (index, submission) in batch.iter().enumerate() {
        if let (Some(key), Slot::Decided(reply)) = (&submission.request.key, &slots[index]) {
            let key = key.as_store_key();
            answers.push(idempotency::Answer {
                key,
                status: reply.status.as_u16(),
                body: &reply.body,
                location: reply.location.as_deref(),
            });
            stored.insert(
                index,
                StoredAnswer {
                    route: key.route.to_owned(),
                    request_hash: submission.hash.clone(),
                    status: reply.status.as_u16(),
                    body: reply.body.clone(),
                    location: reply.location.clone(),
                },
            );
        }
    }
    answers
}

/// Step 4: writes the accepted changes: wallets, ledger postings, holds, status changes,
/// the events to their wallets' streams and to the outbox.
async fn write(
    tx: &mut sqlx::PgConnection,
    batch: &[&Submission],
    changes: &[Change],
    wallets: &BTreeMap<WalletId, Held>,
) -> Result<(), Failure> {
    let changed: BTreeSet<WalletId> = changes
        .iter()
        .flat_map(|change| batch[change.index].request.command.wallets())
        .collect();
    let updated: Vec<domain::Wallet> = changed
        .iter()
        .filter_map(|id| wallets.get(id).map(|held| held.wallet.clone()))
        .collect();
    wallets::update_many(tx, &updated).await?;
    let actors: Vec<domain::Actor> = changes
        .iter()
        .map(|change| batch[change.index].request.caller.actor())
        .collect();
    let postings: Vec<Posting<'_>> = changes
        .iter()
        .zip(&actors)
        .filter_map(|(change, actor)| {
            let posting = change.decision.posting.as_ref()?;
            Some(Posting {
                id: posting.id,
                kind: posting.kind,
                amount: posting.amount,
                correlation_id: &batch[change.index].request.ctx.correlation_id,
                actor,
                created_at: change.decision.occurred_at(),
                hold_id: change.decision.hold.as_ref().map(|hold| hold.id),
                entries: &posting.entries,
            })
        })
        .collect();
    ledger::post_many(tx, &postings).await?;
    let changed_holds: Vec<&domain::Hold> = changes
        .iter()
        .filter_map(|change| change.decision.hold.as_ref())
        .collect();
    holds::save_many(tx, &changed_holds).await?;
    let status_changes: Vec<StatusChange<'_>> = changes
        .iter()
        .zip(&actors)
        .filter_map(|(change, actor)| {
            let status = change.decision.status_change?;
            Some(StatusChange {
                wallet_id: status.wallet_id,
                from: status.from,
                to: status.to,
                actor,
                correlation_id: &batch[change.index].request.ctx.correlation_id,
                at: change.decision.occurred_at(),
            })
        })
        .collect();
    wallets::record_status_changes(tx, &status_changes).await?;
    let appended: Vec<&Appended> = changes
        .iter()
        .flat_map(|change| &change.decision.events)
        .collect();
    streams::append_many(tx, &appended, false).await?;
    let events: Vec<Outgoing<'_>> = changes
        .iter()
        .flat_map(|change| {
            let trace = &batch[change.index].trace;
            change.decision.events.iter().map(move |appended| Outgoing {
                event: &appended.event,
                trace,
                sequence: Some(appended.sequence),
            })
        })
        .collect();
    outbox::publish_many(tx, &events).await?;
    Ok(())
}

/// Claims the commit of every request of the batch (so their timeouts wait for this
/// answer): false when one was abandoned already; then those claimed are given back, and
/// the batch rolls back and runs again without it.
fn begin_commit(batch: &[&Submission]) -> bool {
    let commitments: Vec<&Commitment> = batch
        .iter()
        .filter_map(|submission| submission.commitment.as_ref())
        .collect();
    let begun: Vec<bool> = commitments.iter().map(|c| c.begin()).collect();
    if begun.iter().all(|&ok| ok) {
        return true;
    }
    for (commitment, ok) in commitments.iter().zip(begun) {
        if ok {
            commitment.resume();
        }
    }
    false
}

/// The answer to a request whose key an earlier request of the batch used: that request's
/// stored answer replayed, 422 if this is another request, 409 if no answer was stored
/// (the earlier request failed in a way that is not stored).
fn follow(stored: Option<&StoredAnswer>, submission: &Submission) -> Result<Response, ApiError> {
    let Some(key) = &submission.request.key else {
        return Err(ApiError::IdempotencyInFlight);
    };
    match stored {
        Some(answer)
            if answer.route == key.as_store_key().route
                && answer.request_hash == submission.hash =>
        {
            replay(answer.clone())
        }
        Some(_) => Err(ApiError::IdempotencyKeyReuse),
        None => Err(ApiError::IdempotencyInFlight),
    }
}
