//! The `Wallet` aggregate: one currency, a balance that never goes below zero, a version
//! that increases with every change.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::events::{EventContext, FundsAdded, WalletCreated};
use crate::money::{Currency, Money, MoneyError};

/// Why a wallet command was refused. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("wallet name {0}")]
    InvalidName(&'static str),
    #[error("amount must be greater than zero")]
    NonPositiveAmount,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// A wallet's display name: 1 to 100 characters, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletName(String);

impl WalletName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(name: &str) -> Result<Self, WalletError> {
        if name.trim().is_empty() {
            return Err(WalletError::InvalidName("must not be blank"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(WalletError::InvalidName("must be at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(WalletError::InvalidName(
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    id: Uuid,
    user_id: Uuid,
    name: WalletName,
    balance: Money,
    /// Starts at 1 and increases by one with every change; lets readers detect staleness.
    version: i64,
    created_at: DateTime<Utc>,
}

impl Wallet {
    /// Opens a wallet with a zero balance.
    pub fn create(
        id: Uuid,
        user_id: Uuid,
        name: WalletName,
        currency: Currency,
        ctx: &EventContext,
    ) -> (Wallet, WalletCreated) {
        let wallet = Wallet {
            id,
            user_id,
            name,
            balance: Money::zero(currency),
            version: 1,
            created_at: ctx.occurred_at(),
        };
        let event = WalletCreated {
            metadata: ctx.metadata(id),
            wallet_id: id,
            user_id,
            name: wallet.name.as_str().to_owned(),
            currency,
        };
        (wallet, event)
    }

    /// Rebuilds a wallet from stored state. The stored balance must be in the wallet's
    /// currency; the database guarantees it is not negative.
    pub fn restore(
        id: Uuid,
        user_id: Uuid,
        name: WalletName,
        balance: Money,
        version: i64,
        created_at: DateTime<Utc>,
    ) -> Wallet {
        Wallet {
            id,
            user_id,
            name,
            balance,
            version,
            created_at,
        }
    }

    /// Deposits a positive amount in the wallet's currency.
    pub fn add_funds(
        &mut self,
        amount: Money,
        transaction_id: Uuid,
        ctx: &EventContext,
    ) -> Result<FundsAdded, WalletError> {
        if !amount.is_positive() {
            return Err(WalletError::NonPositiveAmount);
        }
        let balance_after = self.balance.checked_add(amount)?;
        self.balance = balance_after;
        self.version += 1;
        Ok(FundsAdded {
            metadata: ctx.metadata(self.id),
            wallet_id: self.id,
            transaction_id,
            amount,
            balance_after,
        })
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn user_id(&self) -> Uuid {
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
        Wallet::create(Uuid::now_v7(), Uuid::now_v7(), name, usd(), &ctx()).0
    }

    #[test]
    fn a_new_wallet_is_empty_at_version_one_and_says_so_in_its_event() {
        let name = WalletName::parse("Holidays").expect("valid name");
        let (id, user) = (Uuid::now_v7(), Uuid::now_v7());
        let (wallet, event) = Wallet::create(id, user, name, usd(), &ctx());
        assert_eq!(wallet.balance(), Money::zero(usd()));
        assert_eq!(wallet.version(), 1);
        assert_eq!(event.wallet_id, id);
        assert_eq!(event.user_id, user);
        assert_eq!(event.metadata.aggregate_id, id);
        assert_eq!(event.metadata.correlation_id, "corr-1");
        assert_eq!(event.metadata.schema_version, 1);
        assert_eq!(event.metadata.event_id.get_version_num(), 7);
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
        let tx = Uuid::now_v7();
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
            assert!(wallet.add_funds(amount, Uuid::now_v7(), &ctx()).is_err());
            assert_eq!(wallet, before);
        }
        wallet
            .add_funds(Money::from_minor(i64::MAX, usd()), Uuid::now_v7(), &ctx())
            .expect("fits");
        let full = wallet.clone();
        assert_eq!(
            wallet.add_funds(Money::from_minor(1, usd()), Uuid::now_v7(), &ctx()),
            Err(WalletError::Money(MoneyError::OutOfRange))
        );
        assert_eq!(wallet, full);
    }

    #[test]
    fn events_round_trip_through_json() {
        let name = WalletName::parse("Rent").expect("valid name");
        let (mut wallet, created) =
            Wallet::create(Uuid::now_v7(), Uuid::now_v7(), name, usd(), &ctx());
        let added = wallet
            .add_funds(Money::from_minor(5, usd()), Uuid::now_v7(), &ctx())
            .expect("positive deposit");
        for event in [DomainEvent::from(created), DomainEvent::from(added)] {
            let json = event.to_json().expect("serializes");
            assert_eq!(json["event_id"], event.metadata().event_id.to_string());
            let back = DomainEvent::from_json(event.event_type(), json).expect("deserializes");
            assert_eq!(back, event);
        }
    }
}
