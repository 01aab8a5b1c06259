//! The hold commands of [`crate::command::decide`]: placing, capturing, voiding and
//! expiring (docs/holds.md). Like every command, each checks everything before it changes
//! anything, and a refusal leaves the wallets as they were.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::command::{
    Decision, Held, Outcome, Posting, Refusal, Submission, VersionCondition, find, in_currency,
    put, require_available, require_version,
};
use crate::events::{
    DomainEvent, EventType, FundsReceived, HoldCaptured, HoldExpired, HoldPlaced, HoldVoided,
};
use crate::hold::{Expiry, Hold, HoldStatus, MAX_DESCRIPTION_CHARS};
use crate::ids::{HoldId, WalletId};
use crate::ledger::{Entry, Kind};
use crate::money::DecimalAmount;
use crate::stream::Appended;
use crate::wallet::{Wallet, WalletError};

/// A new hold as the client asked for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement<'a> {
    pub wallet: WalletId,
    pub to: Option<WalletId>,
    pub amount: DecimalAmount,
    pub expiry: Expiry,
    pub description: Option<&'a str>,
}

/// How a hold is released whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// By a client: the owner, or (`scoped`) a caller with the capture scope.
    Void { scoped: bool },
    /// By the sweeper, once it is past `expires_at`.
    Expire,
}

/// Reserves money in the caller's active wallet: at most what is available, until an
/// expiry in the future; a target, if named, is another active wallet of the currency.
pub(crate) fn place(
    wallets: &mut BTreeMap<WalletId, Held>,
    submission: &Submission<'_>,
    placement: &Placement<'_>,
) -> Result<Decision, Refusal> {
    let (ctx, id) = (submission.ctx, placement.wallet);
    let now = ctx.occurred_at();
    let mut wallet = find(wallets, id, ctx, true)?;
    require_version(&wallet, submission.if_match)?;
    let amount = in_currency(placement.amount, &wallet)?;
    wallet.check_amount(amount)?;
    let expires_at = placement
        .expiry
        .resolve(now)
        .ok_or(WalletError::InvalidExpiry)?;
    if placement
        .description
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(WalletError::InvalidDescription.into());
    }
    wallet.ensure_active()?;
    wallet.debited(amount)?;
    require_available(wallets, id, amount, now)?;
    if let Some(to) = placement.to {
        check_target(wallets, submission, &wallet, to)?;
    }
    let available_after = wallets[&id]
        .available_at(now)
        .and_then(|available| available.checked_sub(amount))
        .map_err(WalletError::from)?;
    let held_after = wallet
        .held()
        .checked_add(amount)
        .map_err(WalletError::from)?;

    let hold = Hold {
        id: HoldId::from_uuid(submission.transaction_id.as_uuid()),
        wallet_id: id,
        to_wallet_id: placement.to,
        amount,
        captured: None,
        status: HoldStatus::Pending,
        description: placement.description.map(str::to_owned),
        expires_at,
        created_at: now,
        closed_at: None,
    };
    let event = HoldPlaced {
        metadata: ctx.metadata(EventType::HoldPlaced, id),
        hold_id: hold.id,
        wallet_id: id,
        to_wallet_id: hold.to_wallet_id,
        amount,
        expires_at,
        available_after,
    };
    let event = wallet.decided(event)?;
    let posting = Posting {
        id: submission.transaction_id,
        kind: Kind::Hold,
        amount,
        entries: Entry::held(id, amount.minor_units(), held_after).to_vec(),
    };
    let events = vec![Appended::on(&wallet, event)];
    keep(wallets, wallet, &hold);
    Ok(Decision {
        events,
        posting: Some(posting),
        status_change: None,
        hold: Some(hold.clone()),
        outcome: Outcome::HoldPlaced(Box::new(hold)),
    })
}

/// A hold's target: another wallet, of the currency, active. Told nothing about it unless
/// the source could hold the money (checked before).
fn check_target(
    wallets: &BTreeMap<WalletId, Held>,
    submission: &Submission<'_>,
    source: &Wallet,
    to: WalletId,
) -> Result<(), Refusal> {
    if to == source.id() {
        return Err(WalletError::SameWallet.into());
    }
    let target = find(wallets, to, submission.ctx, false)?;
    if target.currency() != source.currency() {
        return Err(WalletError::CurrencyMismatch {
            expected: source.currency(),
            actual: target.currency(),
        }
        .into());
    }
    target.ensure_active()?;
    Ok(())
}

/// Moves `amount` of a pending hold (all of it by default) out of the wallet, to the hold's
/// target or out as a withdrawal, and releases the rest. The wallet and the target active.
pub(crate) fn capture(
    wallets: &mut BTreeMap<WalletId, Held>,
    submission: &Submission<'_>,
    hold_id: HoldId,
    id: WalletId,
    amount: Option<DecimalAmount>,
    scoped: bool,
) -> Result<Decision, Refusal> {
    let ctx = submission.ctx;
    let now = ctx.occurred_at();
    let mut wallet = find(wallets, id, ctx, !scoped).map_err(|_| Refusal::HoldNotFound(hold_id))?;
    let mut hold = pending(wallets, id, hold_id, submission.if_match, now)?;
    let captured = match amount {
        None => hold.amount,
        Some(amount) => {
            let amount = in_currency(amount, &wallet)?;
            wallet.check_amount(amount)?;
            if amount.minor_units() > hold.amount.minor_units() {
                return Err(WalletError::CaptureExceedsHold {
                    held: hold.amount,
                    requested: amount,
                }
                .into());
            }
            amount
        }
    };
    wallet.ensure_active()?;
    let released = hold
        .amount
        .checked_sub(captured)
        .map_err(WalletError::from)?;
    let balance_after = wallet.debited(captured)?;
    let held_after = wallet
        .held()
        .checked_sub(hold.amount)
        .map_err(WalletError::from)?;
    let target = match hold.to_wallet_id {
        Some(to) => {
            let target = find(wallets, to, ctx, false)?;
            target.ensure_active()?;
            let after = target.credited(captured)?;
            Some((target, after))
        }
        None => None,
    };

    let event = HoldCaptured {
        metadata: ctx.metadata(EventType::HoldCaptured, id),
        hold_id,
        wallet_id: id,
        to_wallet_id: hold.to_wallet_id,
        transaction_id: submission.transaction_id,
        amount: captured,
        released,
        balance_after,
        to_balance_after: target.as_ref().map(|(_, after)| *after),
    };
    let event = wallet.decided(event)?;
    let mut events = vec![Appended::on(&wallet, event)];
    let target = match target {
        Some((mut target, after)) => {
            let received = FundsReceived {
                metadata: ctx.metadata(EventType::FundsReceived, target.id()),
                wallet_id: target.id(),
                from_wallet_id: id,
                transaction_id: submission.transaction_id,
                hold_id: Some(hold_id),
                amount: captured,
                balance_after: after,
            };
            let received = target.decided(received)?;
            events.push(Appended::on(&target, received));
            Some(target)
        }
        None => None,
    };
    hold.status = HoldStatus::Captured;
    hold.captured = Some(captured);
    hold.closed_at = Some(now);
    let mut entries = Entry::held(id, -hold.amount.minor_units(), held_after).to_vec();
    entries.push(Entry::wallet(id, -captured.minor_units(), balance_after));
    entries.push(match &target {
        Some(target) => Entry::wallet(target.id(), captured.minor_units(), target.balance()),
        None => Entry::external(captured.minor_units()),
    });
    let posting = Posting {
        id: submission.transaction_id,
        kind: Kind::Capture,
        amount: captured,
        entries,
    };
    keep(wallets, wallet, &hold);
    if let Some(target) = target {
        put(wallets, target);
    }
    Ok(Decision {
        events,
        posting: Some(posting),
        status_change: None,
        hold: Some(hold.clone()),
        outcome: Outcome::HoldClosed(Box::new(hold)),
    })
}

/// Releases a whole hold: voided while pending (whatever the wallet's status), or recorded
/// as expired once past `expires_at`.
pub(crate) fn release(
    wallets: &mut BTreeMap<WalletId, Held>,
    submission: &Submission<'_>,
    hold_id: HoldId,
    id: WalletId,
    release: Release,
) -> Result<Decision, Refusal> {
    let ctx = submission.ctx;
    let now = ctx.occurred_at();
    let owner_only = release == Release::Void { scoped: false };
    let mut wallet =
        find(wallets, id, ctx, owner_only).map_err(|_| Refusal::HoldNotFound(hold_id))?;
    let mut hold = match release {
        Release::Void { .. } => pending(wallets, id, hold_id, submission.if_match, now)?,
        Release::Expire => expired(wallets, id, hold_id, now)?,
    };
    let held_after = wallet
        .held()
        .checked_sub(hold.amount)
        .map_err(WalletError::from)?;

    hold.closed_at = Some(now);
    let transaction_id = submission.transaction_id;
    let (kind, event): (Kind, DomainEvent) = match release {
        Release::Void { .. } => {
            hold.status = HoldStatus::Voided;
            let event = HoldVoided {
                metadata: ctx.metadata(EventType::HoldVoided, id),
                hold_id,
                wallet_id: id,
                transaction_id,
                amount: hold.amount,
            };
            (Kind::Void, wallet.decided(event)?.into())
        }
        Release::Expire => {
            hold.status = HoldStatus::Expired;
            let event = HoldExpired {
                metadata: ctx.metadata(EventType::HoldExpired, id),
                hold_id,
                wallet_id: id,
                transaction_id,
                amount: hold.amount,
                expires_at: hold.expires_at,
            };
            (Kind::Expiry, wallet.decided(event)?.into())
        }
    };
    let posting = Posting {
        id: transaction_id,
        kind,
        amount: hold.amount,
        entries: Entry::held(id, -hold.amount.minor_units(), held_after).to_vec(),
    };
    let events = vec![Appended::on(&wallet, event)];
    keep(wallets, wallet, &hold);
    Ok(Decision {
        events,
        posting: Some(posting),
        status_change: None,
        hold: Some(hold.clone()),
        outcome: Outcome::HoldClosed(Box::new(hold)),
    })
}

/// Hold `hold_id` of wallet `id` (locked), as loaded.
fn loaded(
    wallets: &BTreeMap<WalletId, Held>,
    id: WalletId,
    hold_id: HoldId,
) -> Result<Hold, Refusal> {
    wallets
        .get(&id)
        .and_then(|held| held.holds.iter().find(|hold| hold.id == hold_id))
        .cloned()
        .ok_or(Refusal::HoldNotFound(hold_id))
}

/// The hold, if `If-Match` names its version and it is pending at `now`.
fn pending(
    wallets: &BTreeMap<WalletId, Held>,
    id: WalletId,
    hold_id: HoldId,
    if_match: Option<&VersionCondition>,
    now: DateTime<Utc>,
) -> Result<Hold, Refusal> {
    let hold = loaded(wallets, id, hold_id)?;
    if let Some(condition) = if_match
        && !condition.matches_strongly(hold.version())
    {
        return Err(Refusal::VersionChanged {
            current: hold.version(),
        });
    }
    match hold.status_at(now) {
        HoldStatus::Pending => Ok(hold),
        status => Err(WalletError::HoldNotPending { hold_id, status }.into()),
    }
}

/// The hold, if it is recorded as pending and past its expiry at `now`.
fn expired(
    wallets: &BTreeMap<WalletId, Held>,
    id: WalletId,
    hold_id: HoldId,
    now: DateTime<Utc>,
) -> Result<Hold, Refusal> {
    let hold = loaded(wallets, id, hold_id)?;
    match (hold.status, hold.status_at(now)) {
        (HoldStatus::Pending, HoldStatus::Expired) => Ok(hold),
        (_, status) => Err(WalletError::HoldNotPending { hold_id, status }.into()),
    }
}

/// Puts the changed wallet back with its hold as it now stands.
fn keep(wallets: &mut BTreeMap<WalletId, Held>, wallet: Wallet, hold: &Hold) {
    let id = wallet.id();
    put(wallets, wallet);
    if let Some(held) = wallets.get_mut(&id) {
        match held.holds.iter_mut().find(|h| h.id == hold.id) {
            Some(slot) => *slot = hold.clone(),
            None => held.holds.push(hold.clone()),
        }
    }
}
