//! One try of a batch: its transaction, from the key claims to the commit (steps 1 to 5 of
//! [`super`]), and the domain rules each request is decided by.

use std::collections::{BTreeSet, HashMap};

use axum::response::{IntoResponse, Response};
use domain::{Actor, DomainEvent, TransactionId, Wallet, WalletId};
use store::idempotency::{self, Claim, KeyClaim, StoredAnswer};
use store::ledger::{self, Entry, Posting};
use store::wallets::{self, LockedWallet};
use telemetry::TraceHeaders;

use crate::AppState;
use crate::error::ApiError;
use crate::limits::Commitment;
use crate::money::{MoneyRequest, Movement};
use crate::preconditions::require_version;
use crate::transfers::TransferResponse;
use crate::wallets::{
    MovementResponse, apply_movement, event_context, in_currency, wallet_not_found,
};
use crate::write::{Reply, replay};

use super::Queued;

/// Where a request of the batch stands.
#[derive(Debug)]
enum Slot {
    /// To be decided by the rules.
    Run,
    /// Answered without running (a replay, a key reused for another request, or a
    /// refusal).
    Done(Result<Response, ApiError>),
    /// Accepted: its reply.
    Accepted(Reply),
    /// Its key is that of the earlier request at this index of the batch.
    Follows(usize),
}

/// What an accepted request writes.
#[derive(Debug)]
struct Change {
    index: usize,
    event: DomainEvent,
    transaction_id: TransactionId,
    amount: domain::Money,
    actor: Actor,
    entries: Vec<Entry>,
}

/// One try of the batch in one transaction; the answers in batch order, or the error that
/// rolled it back.
pub(super) async fn attempt(
    state: &AppState,
    batch: &[Queued],
) -> Result<Vec<Result<Response, ApiError>>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let mut slots: Vec<Slot> = batch.iter().map(|_| Slot::Run).collect();

    // 1. Idempotency keys: the first use of a key in the batch claims it.
    let mut first_use: HashMap<(&str, &str), usize> = HashMap::new();
    let mut claims = Vec::new();
    for (index, queued) in batch.iter().enumerate() {
        if let Some(key) = &queued.request.key {
            let key = key.as_store_key();
            match first_use.get(&(key.caller, key.key)) {
                Some(&first) => slots[index] = Slot::Follows(first),
                None => {
                    first_use.insert((key.caller, key.key), index);
                    claims.push((
                        index,
                        KeyClaim {
                            key,
                            request_hash: &queued.hash,
                        },
                    ));
                }
            }
        }
    }
    let only_claims: Vec<KeyClaim<'_>> = claims.iter().map(|(_, c)| *c).collect();
    let taken = idempotency::claim_many(&mut tx, &only_claims, state.idempotency_ttl_hours).await?;
    // The answer stored with each first use, once known: what its followers replay.
    let mut stored: HashMap<usize, StoredAnswer> = HashMap::new();
    for ((index, claim), taken) in claims.iter().zip(taken) {
        if taken {
            continue;
        }
        // Answered before (or expired, and then retaken): one by one, as they are rare.
        match idempotency::claim(
            &mut tx,
            claim.key,
            claim.request_hash,
            state.idempotency_ttl_hours,
        )
        .await?
        {
            Claim::Claimed => {}
            Claim::Answered(answer) => {
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

    // 2. Lock every wallet to change, in id order, in one statement.
    let ids: BTreeSet<WalletId> = batch
        .iter()
        .zip(&slots)
        .filter(|(_, slot)| matches!(slot, Slot::Run))
        .flat_map(|(queued, _)| queued.request.movement.wallets())
        .collect();
    let ids: Vec<WalletId> = ids.into_iter().collect();
    let mut wallets: HashMap<WalletId, LockedWallet> = if ids.is_empty() {
        HashMap::new()
    } else {
        wallets::lock_with_owners(&mut tx, &ids)
            .await?
            .into_iter()
            .map(|locked| (locked.wallet.id(), locked))
            .collect()
    };

    // 3. The rules, in arrival order.
    let mut changes = Vec::new();
    let mut changed: BTreeSet<WalletId> = BTreeSet::new();
    let mut answers = Vec::new();
    let mut released = Vec::new();
    for (index, queued) in batch.iter().enumerate() {
        if !matches!(slots[index], Slot::Run) {
            continue;
        }
        let request = &queued.request;
        let key = request.key.as_ref().map(|k| k.as_store_key());
        match decide(request, &mut wallets, index) {
            Ok((change, reply)) => {
                changed.extend(request.movement.wallets());
                changes.push(change);
                slots[index] = Slot::Accepted(reply);
            }
            Err(error) => match key {
                Some(_) if error.is_recorded_outcome() => {
                    let (status, body) = error.problem();
                    slots[index] = Slot::Accepted(Reply {
                        status,
                        body,
                        location: None,
                    });
                }
                Some(key) => {
                    released.push(key);
                    slots[index] = Slot::Done(Err(error));
                }
                None => slots[index] = Slot::Done(Err(error)),
            },
        }
    }
    for (index, queued) in batch.iter().enumerate() {
        if let (Some(key), Slot::Accepted(reply)) = (&queued.request.key, &slots[index]) {
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
                    request_hash: queued.hash.clone(),
                    status: reply.status.as_u16(),
                    body: reply.body.clone(),
                    location: reply.location.clone(),
                },
            );
        }
    }

    // 4. The writes, one statement each.
    let updated: Vec<Wallet> = changed
        .iter()
        .filter_map(|id| wallets.get(id).map(|locked| locked.wallet.clone()))
        .collect();
    wallets::update_many(&mut tx, &updated).await?;
    let postings: Vec<Posting<'_>> = changes
        .iter()
        .map(|change| Posting {
            id: change.transaction_id,
            kind: batch[change.index].request.movement.kind(),
            amount: change.amount,
            correlation_id: &batch[change.index].request.ctx.correlation_id,
            actor: &change.actor,
            created_at: change.event.metadata().occurred_at,
            entries: &change.entries,
        })
        .collect();
    ledger::post_many(&mut tx, &postings).await?;
    let events: Vec<(&DomainEvent, &TraceHeaders)> = changes
        .iter()
        .map(|change| (&change.event, &batch[change.index].trace))
        .collect();
    state.publisher.publish_many(&mut tx, &events).await?;
    idempotency::record_answers(&mut tx, &answers).await?;
    idempotency::release_many(&mut tx, &released).await?;
    drop(answers);

    // 5. One commit, then the answers. Each request's commit is claimed first, so its
    // timeout waits for this answer; one already answered 503 rolls the batch back.
    if !batch
        .iter()
        .all(|q| q.commitment.as_ref().is_none_or(Commitment::begin))
    {
        return Err(ApiError::Abandoned);
    }
    tx.commit().await?;
    if !changes.is_empty() {
        state.waker.wake();
    }
    let mut responses = Vec::with_capacity(batch.len());
    for (index, queued) in batch.iter().enumerate() {
        let slot = std::mem::replace(&mut slots[index], Slot::Run);
        responses.push(match slot {
            Slot::Accepted(reply) => Ok(reply.into_response()),
            Slot::Done(answer) => answer,
            Slot::Follows(first) => follow(stored.get(&first), queued),
            Slot::Run => Err(ApiError::internal(std::io::Error::other(
                "a request of the batch was never decided",
            ))),
        });
    }
    Ok(responses)
}

/// The answer to a request whose key an earlier request of the batch used: that request's
/// stored answer replayed, 422 if this is another request, 409 if no answer was stored
/// (the earlier request failed in a way that is not stored).
fn follow(stored: Option<&StoredAnswer>, queued: &Queued) -> Result<Response, ApiError> {
    let Some(key) = &queued.request.key else {
        return Err(ApiError::IdempotencyInFlight);
    };
    match stored {
        Some(answer)
            if answer.route == key.as_store_key().route && answer.request_hash == queued.hash =>
        {
            replay(answer.clone())
        }
        Some(_) => Err(ApiError::IdempotencyKeyReuse),
        None => Err(ApiError::IdempotencyInFlight),
    }
}

/// Applies the domain rules to one request, on the wallets as the batch's earlier requests
/// left them; on success the changed wallets replace those in `wallets`. Checks run in the
/// order of the per-request path, so both refuse alike.
fn decide(
    request: &MoneyRequest,
    wallets: &mut HashMap<WalletId, LockedWallet>,
    index: usize,
) -> Result<(Change, Reply), ApiError> {
    let find = |wallets: &HashMap<WalletId, LockedWallet>, id: WalletId| {
        wallets
            .get(&id)
            .cloned()
            .ok_or_else(|| wallet_not_found(id))
    };
    let actor = request.caller.actor();
    let event_ctx = event_context(&request.ctx, &actor);
    let transaction_id = TransactionId::new();
    match request.movement {
        Movement::Deposit { wallet: id } | Movement::Withdrawal { wallet: id } => {
            let LockedWallet { mut wallet, owner } = find(wallets, id)?;
            let deposit = matches!(request.movement, Movement::Deposit { .. });
            // Money enters any wallet (the deposit scope was checked); it leaves only by
            // its owner's hand.
            if !deposit && !request.caller.is_owner(owner.as_ref()) {
                return Err(wallet_not_found(id));
            }
            // If-Match, on the wallet as the earlier requests of the batch left it.
            require_version(&wallet, request.expected_version.as_ref())?;
            let amount = in_currency(request.amount, wallet.currency())?;
            let (event, signed) =
                apply_movement(&mut wallet, deposit, amount, transaction_id, &event_ctx)?;
            let reply = Reply::created(
                MovementResponse {
                    id: transaction_id,
                    wallet_id: wallet.id(),
                    amount: amount.to_string(),
                    balance_after: wallet.balance().to_string(),
                    created_at: event.metadata().occurred_at,
                },
                None,
            )?;
            let entries = vec![
                Entry::wallet(wallet.id(), signed, wallet.balance()),
                Entry::external(-signed),
            ];
            wallets.insert(id, LockedWallet { wallet, owner });
            let change = Change {
                index,
                event,
                transaction_id,
                amount,
                actor,
                entries,
            };
            Ok((change, reply))
        }
        Movement::Transfer { from, to } => {
            let mut source = find(wallets, from)?;
            if !request.caller.is_owner(source.owner.as_ref()) {
                return Err(wallet_not_found(from));
            }
            // Transfers take no If-Match (`expected_version` is always `None` here).
            let amount = in_currency(request.amount, source.wallet.currency())?;
            // The source first: nothing about the target (not even whether it exists) is
            // told to a caller whose own wallet could not send this.
            domain::check_source(&source.wallet, amount)?;
            let mut target = find(wallets, to)?;
            let event = domain::transfer(
                &mut source.wallet,
                &mut target.wallet,
                amount,
                transaction_id,
                &event_ctx,
            )?;
            let created_at = event.metadata.occurred_at;
            let reply = Reply::created(
                TransferResponse {
                    id: transaction_id,
                    from_wallet_id: from,
                    to_wallet_id: to,
                    amount: amount.to_string(),
                    from_balance_after: source.wallet.balance().to_string(),
                    to_balance_after: target.wallet.balance().to_string(),
                    created_at,
                },
                None,
            )?;
            let entries = vec![
                Entry::wallet(from, -amount.minor_units(), source.wallet.balance()),
                Entry::wallet(to, amount.minor_units(), target.wallet.balance()),
            ];
            wallets.insert(from, source);
            wallets.insert(to, target);
            let change = Change {
                index,
                event: event.into(),
                transaction_id,
                amount,
                actor,
                entries,
            };
            Ok((change, reply))
        }
    }
}
