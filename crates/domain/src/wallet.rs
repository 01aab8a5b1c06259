//! The `Wallet` aggregate: one currency, a balance that never goes below zero, a status
//! (money moves only while active), a version that increases with every change.
//!
//! Commands check everything before they change anything, so a command that returns an
//! error leaves the wallet as it was. Input problems (amount, currency) are reported before
//! state conflicts (status, balance).

use crate::display_name;
use crate::events::{
    DomainEvent, EventContext, EventType, FundsAdded, FundsWithdrawn, WalletCreated,
    WalletStatusChanged,
};
use crate::hold::HoldStatus;
use crate::ids::{HoldId, TransactionId, UserId, WalletId};
use crate::money::{Currency, Money, MoneyError};
use crate::stream::FoldError;
use crate::wallet_status::{StatusAction, WalletStatus};
use chrono::{DateTime, Utc};

/// Why a wallet command was refused. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("wallet name {0}")]
    InvalidName(&'static str),
    #[error("amount must be greater than zero")]
    NonPositiveAmount,
    /// An amount, or the other wallet of a transfer, is in another currency.
    #[error("currency mismatch: expected {expected}, got {actual}")]
    CurrencyMismatch {
        expected: Currency,
        actual: Currency,
    },
    /// Money moves in and out of active wallets only.
    #[error("wallet {wallet_id} is {status}; money moves only in and out of an active wallet")]
    NotActive {
        wallet_id: WalletId,
        status: WalletStatus,
    },
    #[error(
        "insufficient funds: the balance is {balance} {}, {requested} requested",
        balance.currency()
    )]
    InsufficientFunds { balance: Money, requested: Money },
    /// The action is not allowed from the wallet's status, including no-ops such as
    /// freezing a frozen wallet and anything done to a closed wallet.
    #[error("cannot {action} a wallet that is {from}")]
    InvalidTransition {
        from: WalletStatus,
        action: StatusAction,
    },
    #[error("cannot close a wallet that holds {balance} {}", balance.currency())]
    BalanceNotZero { balance: Money },
    #[error("cannot transfer from a wallet to itself")]
    SameWallet,
    /// The balance covers the amount, but pending holds reserve part of it.
    #[error(
        "insufficient funds: {available} {} is available (pending holds reserve the rest of the balance), {requested} requested",
        available.currency()
    )]
    InsufficientAvailable { available: Money, requested: Money },
    /// `expires_in_seconds` or `expires_at` of a new hold is not in the future, or too far.
    #[error(
        "a hold must expire after now and at most {} seconds from now",
        crate::hold::MAX_HOLD_SECONDS
    )]
    InvalidExpiry,
    #[error(
        "a hold's description has at most {} characters",
        crate::hold::MAX_DESCRIPTION_CHARS
    )]
    InvalidDescription,
    /// The hold was captured, voided or has expired: nothing is left to capture or void.
    #[error("hold {hold_id} is {status}, not pending")]
    HoldNotPending { hold_id: HoldId, status: HoldStatus },
    #[error("cannot capture {requested} of a hold of {held}")]
    CaptureExceedsHold { held: Money, requested: Money },
    #[error("cannot close a wallet with pending holds ({count}); capture or void them first")]
    PendingHolds { count: usize },
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// A command decided on an event that [`Wallet::apply`] refuses: a bug, never the
    /// caller's fault (answered 500).
    #[error("the decided event does not apply")]
    Undecidable(#[source] Box<FoldError>),
}

fn inconsistent(event: &DomainEvent, what: impl std::fmt::Display) -> FoldError {
    let meta = event.metadata();
    FoldError::Inconsistent {
        event_id: meta.event_id,
        event_type: event.event_type(),
        what: what.to_string(),
    }
}

/// A wallet's display name: 1 to 100 characters, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletName(String);

impl WalletName {
    pub const MAX_CHARS: usize = display_name::MAX_CHARS;

    pub fn parse(name: &str) -> Result<Self, WalletError> {
        display_name::check(name).map_err(WalletError::InvalidName)?;
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    id: WalletId,
    user_id: UserId,
    name: WalletName,
    balance: Money,
    /// What its `held` ledger account carries: the sum of its holds still recorded as
    /// pending (including any past `expires_at` that the sweeper has not recorded yet; what
    /// holds reserve *now* is judged from the holds themselves, see docs/holds.md).
    held: Money,
    status: WalletStatus,
    /// Starts at 1 and increases by one with every change; lets readers detect staleness.
    version: i64,
    created_at: DateTime<Utc>,
}

impl Wallet {
    /// Opens an active wallet with a zero balance.
    pub fn create(
        id: WalletId,
        user_id: UserId,
        name: WalletName,
        currency: Currency,
        ctx: &EventContext,
    ) -> (Wallet, WalletCreated) {
        let event = WalletCreated {
            metadata: ctx.metadata(EventType::WalletCreated, id),
            wallet_id: id,
            user_id,
            name: name.as_str().to_owned(),
            currency,
        };
        (Wallet::open(&event, name), event)
    }

    /// The wallet a `WalletCreated` event opens: the first of its stream.
    pub fn opened(event: &WalletCreated) -> Result<Wallet, FoldError> {
        let name = WalletName::parse(&event.name)
            .map_err(|error| inconsistent(&event.clone().into(), error))?;
        if event.metadata.aggregate_id != event.wallet_id.as_uuid() {
            return Err(FoldError::OtherWallet {
                event_id: event.metadata.event_id,
                event_type: EventType::WalletCreated,
                aggregate_id: event.metadata.aggregate_id,
                wallet_id: event.wallet_id,
            });
        }
        Ok(Wallet::open(event, name))
    }

    fn open(event: &WalletCreated, name: WalletName) -> Wallet {
        Wallet {
            id: event.wallet_id,
            user_id: event.user_id,
            name,
            balance: Money::zero(event.currency),
            held: Money::zero(event.currency),
            status: WalletStatus::Active,
            version: 1,
            created_at: event.metadata.occurred_at,
        }
    }

    /// Applies one event of the wallet's stream (any but the `WalletCreated` that opened
    /// it): the one place a wallet changes. Commands call it once they have decided,
    /// [`crate::stream::fold`] for every event of a stream; it refuses an event that is not
    /// this wallet's, or whose stated balance is not what it makes of this wallet, and then
    /// changes nothing. Every event raises the version by one.
    pub fn apply(&mut self, event: &DomainEvent) -> Result<(), FoldError> {
        let meta = event.metadata();
        if meta.aggregate_id != self.id.as_uuid() {
            return Err(FoldError::OtherWallet {
                event_id: meta.event_id,
                event_type: event.event_type(),
                aggregate_id: meta.aggregate_id,
                wallet_id: self.id,
            });
        }
        let fail = |what: &dyn std::fmt::Display| inconsistent(event, what);
        let (mut balance, mut held, mut status) = (self.balance, self.held, self.status);
        let stated = match event {
            DomainEvent::FundsAdded(e) => {
                balance = balance.checked_add(e.amount).map_err(|e| fail(&e))?;
                Some(e.balance_after)
            }
            DomainEvent::FundsReceived(e) => {
                balance = balance.checked_add(e.amount).map_err(|e| fail(&e))?;
                Some(e.balance_after)
            }
            DomainEvent::FundsWithdrawn(e) => {
                balance = balance.checked_sub(e.amount).map_err(|e| fail(&e))?;
                Some(e.balance_after)
            }
            DomainEvent::FundsTransferred(e) => {
                balance = balance.checked_sub(e.amount).map_err(|e| fail(&e))?;
                Some(e.from_balance_after)
            }
            DomainEvent::HoldPlaced(e) => {
                held = held.checked_add(e.amount).map_err(|e| fail(&e))?;
                None
            }
            DomainEvent::HoldCaptured(e) => {
                balance = balance.checked_sub(e.amount).map_err(|e| fail(&e))?;
                let whole = e.amount.checked_add(e.released).map_err(|e| fail(&e))?;
                held = held.checked_sub(whole).map_err(|e| fail(&e))?;
                Some(e.balance_after)
            }
            DomainEvent::HoldVoided(e) => {
                held = held.checked_sub(e.amount).map_err(|e| fail(&e))?;
                None
            }
            DomainEvent::HoldExpired(e) => {
                held = held.checked_sub(e.amount).map_err(|e| fail(&e))?;
                None
            }
            DomainEvent::WalletStatusChanged(e) => {
                if e.from != status {
                    return Err(fail(&format_args!(
                        "it leaves {}, the wallet is {status}",
                        e.from
                    )));
                }
                status = e.to;
                None
            }
            DomainEvent::WalletCreated(_)
            | DomainEvent::UserCreated(_)
            | DomainEvent::VolumeComputed(_)
            | DomainEvent::WalletVelocityExceeded(_) => {
                return Err(FoldError::NotAWalletEvent {
                    event_id: meta.event_id,
                    event_type: event.event_type(),
                });
            }
        };
        if balance.is_negative() || held.is_negative() {
            return Err(fail(&format_args!(
                "it leaves a balance of {balance} and {held} held"
            )));
        }
        if let Some(stated) = stated.filter(|stated| *stated != balance) {
            return Err(fail(&format_args!(
                "it states a balance of {stated}, the events before it make {balance}"
            )));
        }
        self.balance = balance;
        self.held = held;
        self.status = status;
        self.version += 1;
        Ok(())
    }

    /// Rebuilds a wallet from stored state. The stored balance must be in the wallet's
    /// currency; the database guarantees it is not negative.
    pub fn restore(
        id: WalletId,
        user_id: UserId,
        name: WalletName,
        balance: Money,
        status: WalletStatus,
        version: i64,
        created_at: DateTime<Utc>,
    ) -> Wallet {
        Wallet {
            id,
            user_id,
            name,
            held: Money::zero(balance.currency()),
            balance,
            status,
            version,
            created_at,
        }
    }

    /// The same wallet with its stored `held` amount (in its currency; the database
    /// guarantees it is not negative).
    pub fn with_held(self, held: Money) -> Wallet {
        Wallet { held, ..self }
    }

    /// Deposits a positive amount in the wallet's currency into an active wallet.
    pub fn add_funds(
        &mut self,
        amount: Money,
        transaction_id: TransactionId,
        ctx: &EventContext,
    ) -> Result<FundsAdded, WalletError> {
        self.check_amount(amount)?;
        self.ensure_active()?;
        let balance_after = self.credited(amount)?;
        let event = FundsAdded {
            metadata: ctx.metadata(EventType::FundsAdded, self.id),
            wallet_id: self.id,
            transaction_id,
            amount,
            balance_after,
        };
        self.decided(event)
    }

    /// Withdraws a positive amount in the wallet's currency from an active wallet, never
    /// taking the balance below zero.
    pub fn withdraw(
        &mut self,
        amount: Money,
        transaction_id: TransactionId,
        ctx: &EventContext,
    ) -> Result<FundsWithdrawn, WalletError> {
        self.check_amount(amount)?;
        self.ensure_active()?;
        let balance_after = self.debited(amount)?;
        let event = FundsWithdrawn {
            metadata: ctx.metadata(EventType::FundsWithdrawn, self.id),
            wallet_id: self.id,
            transaction_id,
            amount,
            balance_after,
        };
        self.decided(event)
    }

    /// Blocks all money movements until [`Wallet::unfreeze`]. Only an active wallet can be
    /// frozen.
    pub fn freeze(&mut self, ctx: &EventContext) -> Result<WalletStatusChanged, WalletError> {
        self.change_status(StatusAction::Freeze, ctx)
    }

    /// Makes a frozen wallet active again.
    pub fn unfreeze(&mut self, ctx: &EventContext) -> Result<WalletStatusChanged, WalletError> {
        self.change_status(StatusAction::Unfreeze, ctx)
    }

    /// Closes an active or frozen wallet for good. The balance must be zero: closing never
    /// makes money disappear.
    pub fn close(&mut self, ctx: &EventContext) -> Result<WalletStatusChanged, WalletError> {
        self.change_status(StatusAction::Close, ctx)
    }

    fn change_status(
        &mut self,
        action: StatusAction,
        ctx: &EventContext,
    ) -> Result<WalletStatusChanged, WalletError> {
        let from = self.status;
        let to = action
            .target(from)
            .ok_or(WalletError::InvalidTransition { from, action })?;
        if to == WalletStatus::Closed && self.balance.minor_units() != 0 {
            return Err(WalletError::BalanceNotZero {
                balance: self.balance,
            });
        }
        let event = WalletStatusChanged {
            metadata: ctx.metadata(EventType::WalletStatusChanged, self.id),
            wallet_id: self.id,
            from,
            to,
        };
        self.decided(event)
    }

    /// A command's amount must be positive and in the wallet's currency.
    pub(crate) fn check_amount(&self, amount: Money) -> Result<(), WalletError> {
        if !amount.is_positive() {
            return Err(WalletError::NonPositiveAmount);
        }
        if amount.currency() != self.currency() {
            return Err(WalletError::CurrencyMismatch {
                expected: self.currency(),
                actual: amount.currency(),
            });
        }
        Ok(())
    }

    pub(crate) fn ensure_active(&self) -> Result<(), WalletError> {
        match self.status {
            WalletStatus::Active => Ok(()),
            status @ (WalletStatus::Frozen | WalletStatus::Closed) => Err(WalletError::NotActive {
                wallet_id: self.id,
                status,
            }),
        }
    }

    /// The balance once `amount` (checked by [`Self::check_amount`]) is taken out, or
    /// `InsufficientFunds` if that would go below zero. Changes nothing.
    pub(crate) fn debited(&self, amount: Money) -> Result<Money, WalletError> {
        if amount.minor_units() > self.balance.minor_units() {
            return Err(WalletError::InsufficientFunds {
                balance: self.balance,
                requested: amount,
            });
        }
        Ok(self.balance.checked_sub(amount)?)
    }

    /// The balance once `amount` (checked by [`Self::check_amount`]) is added, or
    /// `OutOfRange` if it would not fit. Changes nothing.
    pub(crate) fn credited(&self, amount: Money) -> Result<Money, WalletError> {
        Ok(self.balance.checked_add(amount)?)
    }

    /// Applies the event a command decided on and hands it back. The command checked every
    /// rule before, so this cannot fail unless the command and [`Self::apply`] disagree.
    pub(crate) fn decided<E>(&mut self, event: E) -> Result<E, WalletError>
    where
        E: Clone + Into<DomainEvent>,
    {
        self.apply(&event.clone().into())
            .map_err(|error| WalletError::Undecidable(Box::new(error)))?;
        Ok(event)
    }

    pub fn id(&self) -> WalletId {
        self.id
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub fn name(&self) -> &WalletName {
        &self.name
    }

    pub fn currency(&self) -> Currency {
        self.balance.currency()
    }

    pub fn balance(&self) -> Money {
        self.balance
    }

    /// What its `held` ledger account carries (see the field).
    pub fn held(&self) -> Money {
        self.held
    }

    pub fn status(&self) -> WalletStatus {
        self.status
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::DomainEvent;

    fn ctx() -> EventContext {
        EventContext::new(Utc::now(), "corr-1")
    }

    fn usd() -> Currency {
        "USD".parse().expect("USD is ISO 4217")
    }

    fn new_wallet() -> Wallet {
        let name = WalletName::parse("Holidays").expect("valid name");
        Wallet::create(WalletId::new(), UserId::new(), name, usd(), &ctx()).0
    }

    #[test]
    fn a_new_wallet_is_empty_at_version_one_and_says_so_in_its_event() {
        let name = WalletName::parse("Holidays").expect("valid name");
        let (id, user) = (WalletId::new(), UserId::new());
        let (wallet, event) = Wallet::create(id, user, name, usd(), &ctx());
        assert_eq!(wallet.balance(), Money::zero(usd()));
        assert_eq!(wallet.version(), 1);
        assert_eq!(event.wallet_id, id);
        assert_eq!(event.user_id, user);
        assert_eq!(event.metadata.aggregate_id, id.as_uuid());
        assert_eq!(event.metadata.correlation_id, "corr-1");
        assert_eq!(event.metadata.schema_version, 1);
        assert_eq!(event.metadata.event_id.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn blank_long_or_control_names_are_rejected() {
        assert!(WalletName::parse("").is_err());
        assert!(WalletName::parse("   ").is_err());
        assert!(WalletName::parse("a\u{0}b").is_err());
        assert!(WalletName::parse(&"x".repeat(101)).is_err());
        assert!(WalletName::parse(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn adding_funds_raises_balance_and_version() {
        let mut wallet = new_wallet();
        let tx = TransactionId::new();
        let event = wallet
            .add_funds(Money::from_minor(1050, usd()), tx, &ctx())
            .expect("positive deposit");
        assert_eq!(wallet.balance(), Money::from_minor(1050, usd()));
        assert_eq!(wallet.version(), 2);
        assert_eq!(event.balance_after, wallet.balance());
        assert_eq!(event.transaction_id, tx);
    }

    #[test]
    fn zero_negative_foreign_or_overflowing_deposits_change_nothing() {
        let mut wallet = new_wallet();
        let before = wallet.clone();
        let eur: Currency = "EUR".parse().expect("EUR is ISO 4217");
        for amount in [
            Money::zero(usd()),
            Money::from_minor(-1, usd()),
            Money::from_minor(100, eur),
        ] {
            assert!(
                wallet
                    .add_funds(amount, TransactionId::new(), &ctx())
                    .is_err()
            );
            assert_eq!(wallet, before);
        }
        wallet
            .add_funds(
                Money::from_minor(i64::MAX, usd()),
                TransactionId::new(),
                &ctx(),
            )
            .expect("fits");
        let full = wallet.clone();
        assert_eq!(
            wallet.add_funds(Money::from_minor(1, usd()), TransactionId::new(), &ctx()),
            Err(WalletError::Money(MoneyError::OutOfRange))
        );
        assert_eq!(wallet, full);
    }

    #[test]
    fn events_round_trip_through_json() {
        let name = WalletName::parse("Rent").expect("valid name");
        let (mut wallet, created) =
            Wallet::create(WalletId::new(), UserId::new(), name, usd(), &ctx());
        let added = wallet
            .add_funds(Money::from_minor(5, usd()), TransactionId::new(), &ctx())
            .expect("positive deposit");
        for event in [DomainEvent::from(created), DomainEvent::from(added)] {
            let json = event.to_json().expect("serializes");
            assert_eq!(json["event_id"], event.metadata().event_id.to_string());
            let back = DomainEvent::from_json(event.event_type(), json).expect("deserializes");
            assert_eq!(back, event);
        }
    }

    fn funded_wallet(minor: i64) -> Wallet {
        let mut wallet = new_wallet();
        wallet
            .add_funds(
                Money::from_minor(minor, usd()),
                TransactionId::new(),
                &ctx(),
            )
            .expect("positive deposit");
        wallet
    }

    #[test]
    fn withdrawing_lowers_balance_and_raises_version_and_says_so_in_its_event() {
        let mut wallet = funded_wallet(1050);
        let tx = TransactionId::new();
        let event = wallet
            .withdraw(Money::from_minor(300, usd()), tx, &ctx())
            .expect("covered withdrawal");
        assert_eq!(wallet.balance(), Money::from_minor(750, usd()));
        assert_eq!(wallet.version(), 3);
        assert_eq!(event.wallet_id, wallet.id());
        assert_eq!(event.metadata.aggregate_id, wallet.id().as_uuid());
        assert_eq!(event.transaction_id, tx);
        assert_eq!(event.amount, Money::from_minor(300, usd()));
        assert_eq!(event.balance_after, wallet.balance());
    }

    #[test]
    fn withdrawing_the_whole_balance_leaves_exactly_zero() {
        let mut wallet = funded_wallet(1050);
        wallet
            .withdraw(Money::from_minor(1050, usd()), TransactionId::new(), &ctx())
            .expect("covered withdrawal");
        assert_eq!(wallet.balance(), Money::zero(usd()));
    }

    #[test]
    fn withdrawal_beyond_balance_is_rejected_and_changes_nothing() {
        let mut wallet = funded_wallet(1050);
        let before = wallet.clone();
        assert_eq!(
            wallet.withdraw(Money::from_minor(1051, usd()), TransactionId::new(), &ctx()),
            Err(WalletError::InsufficientFunds {
                balance: Money::from_minor(1050, usd()),
                requested: Money::from_minor(1051, usd()),
            })
        );
        assert_eq!(wallet, before);
    }

    #[test]
    fn zero_negative_or_foreign_withdrawals_are_rejected_and_change_nothing() {
        let mut wallet = funded_wallet(1050);
        let before = wallet.clone();
        let eur: Currency = "EUR".parse().expect("EUR is ISO 4217");
        assert_eq!(
            wallet.withdraw(Money::zero(usd()), TransactionId::new(), &ctx()),
            Err(WalletError::NonPositiveAmount)
        );
        assert_eq!(
            wallet.withdraw(
                Money::from_minor(i64::MIN, usd()),
                TransactionId::new(),
                &ctx()
            ),
            Err(WalletError::NonPositiveAmount)
        );
        assert_eq!(
            wallet.withdraw(Money::from_minor(100, eur), TransactionId::new(), &ctx()),
            Err(WalletError::CurrencyMismatch {
                expected: usd(),
                actual: eur
            })
        );
        assert_eq!(wallet, before);
    }

    #[test]
    fn freezing_reports_the_transition_and_blocks_money_until_unfrozen() {
        let mut wallet = funded_wallet(1050);
        let frozen = wallet.freeze(&ctx()).expect("active wallets can be frozen");
        assert_eq!(
            (frozen.wallet_id, frozen.from, frozen.to),
            (wallet.id(), WalletStatus::Active, WalletStatus::Frozen)
        );
        assert_eq!(frozen.metadata.aggregate_id, wallet.id().as_uuid());
        assert_eq!(wallet.status(), WalletStatus::Frozen);
        assert_eq!(wallet.version(), 3);

        let before = wallet.clone();
        let not_active = WalletError::NotActive {
            wallet_id: wallet.id(),
            status: WalletStatus::Frozen,
        };
        let one_cent = Money::from_minor(1, usd());
        assert_eq!(
            wallet.add_funds(one_cent, TransactionId::new(), &ctx()),
            Err(not_active.clone())
        );
        assert_eq!(
            wallet.withdraw(one_cent, TransactionId::new(), &ctx()),
            Err(not_active)
        );
        assert_eq!(wallet, before);

        let unfrozen = wallet
            .unfreeze(&ctx())
            .expect("frozen wallets can be unfrozen");
        assert_eq!(
            (unfrozen.from, unfrozen.to),
            (WalletStatus::Frozen, WalletStatus::Active)
        );
        assert_eq!(wallet.version(), 4);
        wallet
            .withdraw(one_cent, TransactionId::new(), &ctx())
            .expect("active again");
    }

    #[test]
    fn no_op_transitions_are_invalid_and_change_nothing() {
        let mut wallet = new_wallet();
        let before = wallet.clone();
        assert_eq!(
            wallet.unfreeze(&ctx()),
            Err(WalletError::InvalidTransition {
                from: WalletStatus::Active,
                action: StatusAction::Unfreeze
            })
        );
        assert_eq!(wallet, before);

        wallet.freeze(&ctx()).expect("active wallets can be frozen");
        let frozen = wallet.clone();
        assert_eq!(
            wallet.freeze(&ctx()),
            Err(WalletError::InvalidTransition {
                from: WalletStatus::Frozen,
                action: StatusAction::Freeze
            })
        );
        assert_eq!(wallet, frozen);
    }

    #[test]
    fn a_wallet_holding_money_cannot_be_closed_and_stays_as_it_was() {
        let mut wallet = funded_wallet(1);
        let before = wallet.clone();
        assert_eq!(
            wallet.close(&ctx()),
            Err(WalletError::BalanceNotZero {
                balance: Money::from_minor(1, usd())
            })
        );
        assert_eq!(wallet, before);
    }

    #[test]
    fn an_empty_active_or_frozen_wallet_can_be_closed() {
        let mut active = funded_wallet(700);
        active
            .withdraw(Money::from_minor(700, usd()), TransactionId::new(), &ctx())
            .expect("covered withdrawal");
        let event = active.close(&ctx()).expect("empty wallets can be closed");
        assert_eq!(
            (event.from, event.to),
            (WalletStatus::Active, WalletStatus::Closed)
        );

        let mut frozen = new_wallet();
        frozen.freeze(&ctx()).expect("active wallets can be frozen");
        let event = frozen.close(&ctx()).expect("empty wallets can be closed");
        assert_eq!(
            (event.from, event.to),
            (WalletStatus::Frozen, WalletStatus::Closed)
        );
        assert_eq!(frozen.status(), WalletStatus::Closed);
    }

    #[test]
    fn a_closed_wallet_refuses_every_command_and_never_changes_again() {
        let mut wallet = new_wallet();
        wallet.close(&ctx()).expect("empty wallets can be closed");
        let closed = wallet.clone();
        let one_cent = Money::from_minor(1, usd());
        let not_active = WalletError::NotActive {
            wallet_id: wallet.id(),
            status: WalletStatus::Closed,
        };
        assert_eq!(
            wallet.add_funds(one_cent, TransactionId::new(), &ctx()),
            Err(not_active.clone())
        );
        assert_eq!(
            wallet.withdraw(one_cent, TransactionId::new(), &ctx()),
            Err(not_active)
        );
        for (result, action) in [
            (wallet.freeze(&ctx()), StatusAction::Freeze),
            (wallet.unfreeze(&ctx()), StatusAction::Unfreeze),
            (wallet.close(&ctx()), StatusAction::Close),
        ] {
            assert_eq!(
                result,
                Err(WalletError::InvalidTransition {
                    from: WalletStatus::Closed,
                    action
                })
            );
        }
        assert_eq!(wallet, closed);
    }

    #[test]
    fn a_restored_wallet_keeps_its_stored_status_balance_and_version() {
        let name = WalletName::parse("Savings").expect("valid name");
        let created_at = ctx().occurred_at();
        let wallet = Wallet::restore(
            WalletId::new(),
            UserId::new(),
            name,
            Money::from_minor(99, usd()),
            WalletStatus::Frozen,
            7,
            created_at,
        );
        assert_eq!(wallet.status(), WalletStatus::Frozen);
        assert_eq!(wallet.balance(), Money::from_minor(99, usd()));
        assert_eq!(wallet.version(), 7);
        assert_eq!(wallet.created_at(), created_at);
    }

    #[test]
    fn error_messages_say_what_is_wrong_in_words_a_client_understands() {
        let id = WalletId::from_uuid(uuid::Uuid::nil());
        let cases = [
            (
                WalletError::InsufficientFunds {
                    balance: Money::from_minor(500, usd()),
                    requested: Money::from_minor(1000, usd()),
                },
                "insufficient funds: the balance is 5.00 USD, 10.00 requested",
            ),
            (
                WalletError::NotActive {
                    wallet_id: id,
                    status: WalletStatus::Frozen,
                },
                "wallet 00000000-0000-0000-0000-000000000000 is frozen; money moves only in and out of an active wallet",
            ),
            (
                WalletError::InvalidTransition {
                    from: WalletStatus::Frozen,
                    action: StatusAction::Freeze,
                },
                "cannot freeze a wallet that is frozen",
            ),
            (
                WalletError::BalanceNotZero {
                    balance: Money::from_minor(1, usd()),
                },
                "cannot close a wallet that holds 0.01 USD",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
