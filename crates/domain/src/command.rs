//! Wallet commands and the one decision that judges them.
//!
//! A [`Command`] is what a client asked of one or two wallets; [`decide`] judges it against
//! the wallets as they stand (locked by the caller, and as earlier commands of the same
//! batch left them) and returns either the [`Decision`] (the changed wallets, the event,
//! the ledger posting or status change to record, the outcome to answer with) or the
//! [`Refusal`]. It is a pure function: the write pipeline runs it for every command, alone
//! or in a batch, so every rule lives here once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::events::{Actor, DomainEvent, EventContext};
use crate::hold::{Expiry, Hold};
use crate::holding::{self, Placement, Release};
use crate::ids::{HoldId, TransactionId, WalletId};
use crate::ledger::{Entry, Kind};
use crate::money::{DecimalAmount, Money, MoneyError};
use crate::stream::Appended;
use crate::transfer::{check_source, transfer};
use crate::wallet::{Wallet, WalletError};
use crate::wallet_status::{StatusAction, WalletStatus};

/// What a client asks of its wallets. Who may ask (scopes) is checked before; who owns
/// what is judged by [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Money into any wallet from its currency's external account.
    Deposit {
        wallet: WalletId,
        amount: DecimalAmount,
    },
    /// Money out of a wallet, by its owner's hand, to the external account.
    Withdraw {
        wallet: WalletId,
        amount: DecimalAmount,
    },
    /// Money from one wallet (by its owner's hand) to another of the same currency.
    Transfer {
        from: WalletId,
        to: WalletId,
        amount: DecimalAmount,
    },
    /// Freeze or unfreeze any wallet, or close one of the caller's own.
    ChangeStatus {
        wallet: WalletId,
        action: StatusAction,
    },
    /// Reserve money in one of the caller's wallets (docs/holds.md); the hold's id is the
    /// submission's transaction id.
    PlaceHold {
        wallet: WalletId,
        /// Where a capture will send the money; `None`: out, as a withdrawal.
        to: Option<WalletId>,
        amount: DecimalAmount,
        expiry: Expiry,
        description: Option<String>,
    },
    /// Capture a hold (all of it when `amount` is `None`), releasing the rest. `wallet` and
    /// `to` are the hold's (read before the wallets are locked; they never change).
    CaptureHold {
        hold: HoldId,
        wallet: WalletId,
        to: Option<WalletId>,
        amount: Option<DecimalAmount>,
        /// The caller has the capture scope (checked before): any wallet's hold, not only
        /// its own.
        scoped: bool,
    },
    /// Release a hold.
    VoidHold {
        hold: HoldId,
        wallet: WalletId,
        scoped: bool,
    },
    /// Record a hold past its expiry as expired (the sweeper).
    ExpireHold { hold: HoldId, wallet: WalletId },
}

impl Command {
    /// The wallets the command reads and may change (all of them are locked before it is
    /// decided).
    pub fn wallets(&self) -> impl Iterator<Item = WalletId> {
        let (first, second) = match *self {
            Command::Deposit { wallet, .. }
            | Command::Withdraw { wallet, .. }
            | Command::ChangeStatus { wallet, .. }
            | Command::VoidHold { wallet, .. }
            | Command::ExpireHold { wallet, .. } => (wallet, None),
            Command::Transfer { from, to, .. } => (from, Some(to)),
            Command::PlaceHold { wallet, to, .. } | Command::CaptureHold { wallet, to, .. } => {
                (wallet, to)
            }
        };
        std::iter::once(first).chain(second)
    }

    /// The existing hold the command acts on (loaded with the locked wallets).
    pub fn hold(&self) -> Option<HoldId> {
        match *self {
            Command::CaptureHold { hold, .. }
            | Command::VoidHold { hold, .. }
            | Command::ExpireHold { hold, .. } => Some(hold),
            Command::Deposit { .. }
            | Command::Withdraw { .. }
            | Command::Transfer { .. }
            | Command::ChangeStatus { .. }
            | Command::PlaceHold { .. } => None,
        }
    }

    /// A low-cardinality name (spans, metrics).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Deposit { .. } => Kind::Deposit.as_str(),
            Command::Withdraw { .. } => Kind::Withdrawal.as_str(),
            Command::Transfer { .. } => Kind::Transfer.as_str(),
            Command::ChangeStatus { action, .. } => action.as_str(),
            Command::PlaceHold { .. } => Kind::Hold.as_str(),
            Command::CaptureHold { .. } => Kind::Capture.as_str(),
            Command::VoidHold { .. } => Kind::Void.as_str(),
            Command::ExpireHold { .. } => Kind::Expiry.as_str(),
        }
    }
}

/// The versions a client expects a wallet at (`If-Match`): any, or a list of entity tags
/// (each a version, and whether the client marked it weak).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionCondition {
    Any,
    Tags(Vec<(i64, bool)>),
}

impl VersionCondition {
    /// Strong comparison (RFC 9110 section 8.8.3.2): what `If-Match` uses.
    pub fn matches_strongly(&self, version: i64) -> bool {
        match self {
            VersionCondition::Any => true,
            VersionCondition::Tags(tags) => tags.iter().any(|&(v, weak)| !weak && v == version),
        }
    }

    /// Weak comparison: what `If-None-Match` uses.
    pub fn matches_weakly(&self, version: i64) -> bool {
        match self {
            VersionCondition::Any => true,
            VersionCondition::Tags(tags) => tags.iter().any(|&(v, _)| v == version),
        }
    }
}

/// A wallet locked for a decision, with the principal that owns it (`None`: its user was
/// not registered through a token) and its holds: every one still recorded as pending, and
/// any other the batch names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub wallet: Wallet,
    pub owner: Option<Actor>,
    pub holds: Vec<Hold>,
}

impl Held {
    /// What its holds reserve at `at`: those pending and not past `expires_at`.
    pub fn reserved_at(&self, at: DateTime<Utc>) -> Result<Money, MoneyError> {
        self.holds
            .iter()
            .filter(|hold| hold.reserves_at(at))
            .try_fold(Money::zero(self.wallet.currency()), |sum, hold| {
                sum.checked_add(hold.amount)
            })
    }

    /// What it can spend at `at`: its balance less what its holds reserve.
    pub fn available_at(&self, at: DateTime<Utc>) -> Result<Money, MoneyError> {
        self.wallet.balance().checked_sub(self.reserved_at(at)?)
    }
}

/// One command as submitted: by whom (the actor in `ctx`), under which precondition, and
/// the id its ledger transaction takes if it moves money.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub command: &'a Command,
    /// `If-Match`, on the wallet a deposit, withdrawal or status change acts on (transfers
    /// take none).
    pub if_match: Option<&'a VersionCondition>,
    pub ctx: &'a EventContext,
    pub transaction_id: TransactionId,
}

/// Why a command was refused. A refusal changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such wallet, or one the caller may not act on: answered alike, so ids are no
    /// oracle.
    #[error("wallet {0} not found")]
    NotFound(WalletId),
    /// No such hold, or one on a wallet the caller may not act on.
    #[error("hold {0} not found")]
    HoldNotFound(HoldId),
    /// `If-Match` names a version the wallet (or, for a capture or void, the hold) is not
    /// at.
    #[error("the wallet is at version {current}, not the one If-Match names")]
    VersionChanged { current: i64 },
    /// An amount the wallet's currency cannot hold (too many decimal places, out of range).
    #[error("amount: {0}")]
    NotRepresentable(#[source] MoneyError),
    /// A rule of the wallet (not active, insufficient funds, ...).
    #[error(transparent)]
    Rule(#[from] WalletError),
}

impl Decision {
    /// When the command was decided (every event of it carries this instant).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        self.events
            .first()
            .map_or(DateTime::<Utc>::MIN_UTC, |first| {
                first.event.metadata().occurred_at
            })
    }
}

/// What an accepted command changed and what to record and answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What each wallet it changed appends to its stream, in order: one event, or two for a
    /// transfer and a capture to a target (the receiving wallet's `FundsReceived` second).
    pub events: Vec<Appended>,
    /// The ledger transaction of a money movement.
    pub posting: Option<Posting>,
    /// The status change of a freeze, unfreeze or close.
    pub status_change: Option<StatusChange>,
    /// The hold placed or closed, as it is to be stored.
    pub hold: Option<Hold>,
    pub outcome: Outcome,
}

/// A ledger transaction: its entries sum to zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub id: TransactionId,
    pub kind: Kind,
    pub amount: Money,
    pub entries: Vec<Entry>,
}

/// A wallet's status change, recorded with who made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub wallet_id: WalletId,
    pub from: WalletStatus,
    pub to: WalletStatus,
}

/// What the client is told about an accepted command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A deposit or withdrawal.
    Moved {
        id: TransactionId,
        wallet: WalletId,
        amount: Money,
        balance_after: Money,
    },
    Transferred {
        id: TransactionId,
        from: WalletId,
        to: WalletId,
        amount: Money,
        from_balance_after: Money,
        to_balance_after: Money,
    },
    /// The wallet after its status change, and what its holds reserve at that instant.
    StatusChanged {
        wallet: Box<Wallet>,
        reserved: Money,
    },
    /// A hold placed.
    HoldPlaced(Box<Hold>),
    /// A hold captured, voided or recorded as expired.
    HoldClosed(Box<Hold>),
}

/// Judges `submission` against `wallets` (every wallet it names that exists, locked). On
/// success the changed wallets replace theirs in `wallets`; a refusal leaves `wallets` as
/// it was. Checks run in this order, so a caller learns nothing it may not: the wallet
/// exists and the caller may act on it, `If-Match`, the amount in the wallet's currency,
/// the rules (a transfer's source before anything about its target).
pub fn decide(
    wallets: &mut BTreeMap<WalletId, Held>,
    submission: &Submission<'_>,
) -> Result<Decision, Refusal> {
    match *submission.command {
        Command::Deposit { wallet, amount } => {
            move_money(wallets, submission, wallet, amount, true)
        }
        Command::Withdraw { wallet, amount } => {
            move_money(wallets, submission, wallet, amount, false)
        }
        Command::Transfer { from, to, amount } => {
            transfer_money(wallets, submission, from, to, amount)
        }
        Command::ChangeStatus { wallet, action } => {
            change_status(wallets, submission, wallet, action)
        }
        Command::PlaceHold {
            wallet,
            to,
            amount,
            expiry,
            ref description,
        } => {
            let placement = Placement {
                wallet,
                to,
                amount,
                expiry,
                description: description.as_deref(),
            };
            holding::place(wallets, submission, &placement)
        }
        Command::CaptureHold {
            hold,
            wallet,
            amount,
            scoped,
            ..
        } => holding::capture(wallets, submission, hold, wallet, amount, scoped),
        Command::VoidHold {
            hold,
            wallet,
            scoped,
        } => holding::release(wallets, submission, hold, wallet, Release::Void { scoped }),
        Command::ExpireHold { hold, wallet } => {
            holding::release(wallets, submission, hold, wallet, Release::Expire)
        }
    }
}

/// The wallet `id` as the command may see it: money enters any wallet (the deposit scope
/// was checked), everything else only by its owner's hand.
pub(crate) fn find(
    wallets: &BTreeMap<WalletId, Held>,
    id: WalletId,
    ctx: &EventContext,
    owner_only: bool,
) -> Result<Wallet, Refusal> {
    let held = wallets.get(&id).ok_or(Refusal::NotFound(id))?;
    if owner_only && (held.owner.is_none() || held.owner.as_ref() != ctx.actor()) {
        return Err(Refusal::NotFound(id));
    }
    Ok(held.wallet.clone())
}

pub(crate) fn require_version(
    wallet: &Wallet,
    if_match: Option<&VersionCondition>,
) -> Result<(), Refusal> {
    match if_match {
        Some(condition) if !condition.matches_strongly(wallet.version()) => {
            Err(Refusal::VersionChanged {
                current: wallet.version(),
            })
        }
        _ => Ok(()),
    }
}

pub(crate) fn in_currency(amount: DecimalAmount, wallet: &Wallet) -> Result<Money, Refusal> {
    Money::from_decimal(amount, wallet.currency()).map_err(Refusal::NotRepresentable)
}

/// Puts a changed wallet back, keeping its owner and holds.
pub(crate) fn put(wallets: &mut BTreeMap<WalletId, Held>, wallet: Wallet) {
    if let Some(held) = wallets.get_mut(&wallet.id()) {
        held.wallet = wallet;
    }
}

/// Pending holds reserve part of a balance: what leaves wallet `id` (found, so locked)
/// must be at most what is available at `at`.
pub(crate) fn require_available(
    wallets: &BTreeMap<WalletId, Held>,
    id: WalletId,
    amount: Money,
    at: DateTime<Utc>,
) -> Result<(), Refusal> {
    let held = wallets.get(&id).ok_or(Refusal::NotFound(id))?;
    let available = held.available_at(at).map_err(WalletError::from)?;
    if amount.minor_units() > available.minor_units() {
        return Err(WalletError::InsufficientAvailable {
            available,
            requested: amount,
        }
        .into());
    }
    Ok(())
}

fn move_money(
    wallets: &mut BTreeMap<WalletId, Held>,
    submission: &Submission<'_>,
    id: WalletId,
    amount: DecimalAmount,
    deposit: bool,
) -> Result<Decision, Refusal> {
    let ctx = submission.ctx;
    let mut wallet = find(wallets, id, ctx, !deposit)?;
    require_version(&wallet, submission.if_match)?;
    let amount = in_currency(amount, &wallet)?;
    let transaction_id = submission.transaction_id;
    let (event, kind, signed): (DomainEvent, _, _) = if deposit {
        let event = wallet.add_funds(amount, transaction_id, ctx)?;
        (event.into(), Kind::Deposit, amount.minor_units())
    } else {
        let event = wallet.withdraw(amount, transaction_id, ctx)?;
        require_available(wallets, id, amount, ctx.occurred_at())?;
        (event.into(), Kind::Withdrawal, -amount.minor_units())
    };
    let balance_after = wallet.balance();
    let posting = Posting {
        id: transaction_id,
        kind,
        amount,
        entries: vec![
            Entry::wallet(id, signed, balance_after),
            Entry::external(-signed),
        ],
    };
    let events = vec![Appended::on(&wallet, event)];
    put(wallets, wallet);
    Ok(Decision {
        events,
        posting: Some(posting),
        status_change: None,
        hold: None,
        outcome: Outcome::Moved {
            id: transaction_id,
            wallet: id,
            amount,
            balance_after,
        },
    })
}

fn transfer_money(
    wallets: &mut BTreeMap<WalletId, Held>,
    submission: &Submission<'_>,
    from: WalletId,
    to: WalletId,
    amount: DecimalAmount,
) -> Result<Decision, Refusal> {
    let ctx = submission.ctx;
    let mut source = find(wallets, from, ctx, true)?;
    let amount = in_currency(amount, &source)?;
    // The source first: nothing about the target (not even whether it exists) is told to
    // a caller whose own wallet could not send this.
    check_source(&source, amount)?;
    require_available(wallets, from, amount, ctx.occurred_at())?;
    let mut target = find(wallets, to, ctx, false)?;
    let transaction_id = submission.transaction_id;
    let (sent, received) = transfer(&mut source, &mut target, amount, transaction_id, ctx)?;
    let events = vec![Appended::on(&source, sent), Appended::on(&target, received)];
    let (from_balance_after, to_balance_after) = (source.balance(), target.balance());
    let posting = Posting {
        id: transaction_id,
        kind: Kind::Transfer,
        amount,
        entries: vec![
            Entry::wallet(from, -amount.minor_units(), from_balance_after),
            Entry::wallet(to, amount.minor_units(), to_balance_after),
        ],
    };
    put(wallets, source);
    put(wallets, target);
    Ok(Decision {
        events,
        posting: Some(posting),
        status_change: None,
        hold: None,
        outcome: Outcome::Transferred {
            id: transaction_id,
            from,
            to,
            amount,
            from_balance_after,
            to_balance_after,
        },
    })
}

fn change_status(
    wallets: &mut BTreeMap<WalletId, Held>,
    submission: &Submission<'_>,
    id: WalletId,
    action: StatusAction,
) -> Result<Decision, Refusal> {
    let ctx = submission.ctx;
    // Freezing is risk's and operations' business (scope checked before); closing is the
    // owner's.
    let mut wallet = find(wallets, id, ctx, action == StatusAction::Close)?;
    require_version(&wallet, submission.if_match)?;
    let from = wallet.status();
    if action == StatusAction::Close && action.target(from).is_some() {
        let at = ctx.occurred_at();
        let count = wallets[&id]
            .holds
            .iter()
            .filter(|hold| hold.reserves_at(at))
            .count();
        if count > 0 {
            return Err(WalletError::PendingHolds { count }.into());
        }
    }
    let event = match action {
        StatusAction::Freeze => wallet.freeze(ctx)?,
        StatusAction::Unfreeze => wallet.unfreeze(ctx)?,
        StatusAction::Close => wallet.close(ctx)?,
    };
    let change = StatusChange {
        wallet_id: id,
        from,
        to: wallet.status(),
    };
    let reserved = wallets[&id]
        .reserved_at(ctx.occurred_at())
        .map_err(WalletError::from)?;
    put(wallets, wallet.clone());
    Ok(Decision {
        events: vec![Appended::on(&wallet, event)],
        posting: None,
        status_change: Some(change),
        hold: None,
        outcome: Outcome::StatusChanged {
            wallet: Box::new(wallet),
            reserved,
        },
    })
}
