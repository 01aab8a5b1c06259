//! Moving money between two wallets: a domain service over two `Wallet` aggregates.
//!
//! Both wallets are checked before either changes, so a refused transfer leaves both as
//! they were. The caller persists both wallets and both events in one transaction.

use crate::events::{EventContext, EventType, FundsReceived, FundsTransferred};
use crate::ids::TransactionId;
use crate::money::Money;
use crate::wallet::{Wallet, WalletError};

/// Moves a positive `amount` from `from` to `to`: same currency, two different active
/// wallets, never taking `from` below zero. Both wallets' versions increase by one.
///
/// The source is judged first ([`check_source`]), so that a caller learns nothing about the
/// destination (its currency, its status) from a transfer its own wallet could not make.
///
/// Two events, one in each wallet's stream: `FundsTransferred` belongs to the source (its
/// `aggregate_id` is `from`'s id) and names both wallets; `FundsReceived` belongs to the
/// destination.
pub fn transfer(
    from: &mut Wallet,
    to: &mut Wallet,
    amount: Money,
    transfer_id: TransactionId,
    ctx: &EventContext,
) -> Result<(FundsTransferred, FundsReceived), WalletError> {
    if from.id() == to.id() {
        return Err(WalletError::SameWallet);
    }
    let from_balance_after = check_source(from, amount)?;
    if to.currency() != from.currency() {
        return Err(WalletError::CurrencyMismatch {
            expected: from.currency(),
            actual: to.currency(),
        });
    }
    to.ensure_active()?;
    let to_balance_after = to.credited(amount)?;

    let sent = FundsTransferred {
        metadata: ctx.metadata(EventType::FundsTransferred, from.id()),
        from_wallet_id: from.id(),
        to_wallet_id: to.id(),
        transfer_id,
        amount,
        from_balance_after,
        to_balance_after,
    };
    let received = FundsReceived {
        metadata: ctx.metadata(EventType::FundsReceived, to.id()),
        wallet_id: to.id(),
        from_wallet_id: from.id(),
        transaction_id: transfer_id,
        hold_id: None,
        amount,
        balance_after: to_balance_after,
    };
    Ok((from.decided(sent)?, to.decided(received)?))
}

pub fn check_source(from: &Wallet, amount: Money) -> Result<Money, WalletError> {
    from.check_amount(amount)?;
    from.ensure_active()?;
    from.debited(amount)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::ids::{UserId, WalletId};
    use crate::money::{Currency, MoneyError};
    use crate::wallet::WalletName;
    use crate::wallet_status::WalletStatus;

    fn ctx() -> EventContext {
        EventContext::new(Utc::now(), "corr-t")
    }

    fn usd() -> Currency {
        "USD".parse().expect("USD is ISO 4217")
    }

    fn wallet_with(minor: i64, currency: Currency) -> Wallet {
        let name = WalletName::parse("Pocket").expect("valid name");
        let (mut wallet, _) =
            Wallet::create(WalletId::new(), UserId::new(), name, currency, &ctx());
        if minor > 0 {
            wallet
                .add_funds(
                    Money::from_minor(minor, currency),
                    TransactionId::new(),
                    &ctx(),
                )
                .expect("positive deposit");
        }
        wallet
    }

    fn usd_cents(minor: i64) -> Money {
        Money::from_minor(minor, usd())
    }

    /// Runs a transfer that must fail and checks that it changed neither wallet.
    fn refused(
        from: &mut Wallet,
        to: &mut Wallet,
        amount: Money,
    ) -> Result<(FundsTransferred, FundsReceived), WalletError> {
        let (from_before, to_before) = (from.clone(), to.clone());
        let result = transfer(from, to, amount, TransactionId::new(), &ctx());
        assert!(result.is_err(), "expected a refusal, got {result:?}");
        assert_eq!(*from, from_before, "the source wallet changed");
        assert_eq!(*to, to_before, "the destination wallet changed");
        result
    }

    #[test]
    fn a_transfer_moves_money_raises_both_versions_and_is_keyed_by_the_source() {
        let mut from = wallet_with(1000, usd());
        let mut to = wallet_with(50, usd());
        let transfer_id = TransactionId::new();
        let (event, received) = transfer(&mut from, &mut to, usd_cents(400), transfer_id, &ctx())
            .expect("covered transfer");
        assert_eq!(from.balance(), usd_cents(600));
        assert_eq!(to.balance(), usd_cents(450));
        assert_eq!((from.version(), to.version()), (3, 3));
        assert_eq!(event.metadata.aggregate_id, from.id().as_uuid());
        assert_eq!(event.metadata.correlation_id, "corr-t");
        assert_eq!(event.from_wallet_id, from.id());
        assert_eq!(event.to_wallet_id, to.id());
        assert_eq!(event.transfer_id, transfer_id);
        assert_eq!(event.amount, usd_cents(400));
        assert_eq!(event.from_balance_after, from.balance());
        assert_eq!(event.to_balance_after, to.balance());
        assert_eq!(received.metadata.aggregate_id, to.id().as_uuid());
        assert_eq!(received.metadata.correlation_id, "corr-t");
        assert_eq!(received.wallet_id, to.id());
        assert_eq!(received.from_wallet_id, from.id());
        assert_eq!(received.transaction_id, transfer_id);
        assert_eq!(received.hold_id, None);
        assert_eq!(received.amount, usd_cents(400));
        assert_eq!(received.balance_after, to.balance());
    }

    #[test]
    fn the_whole_balance_can_be_transferred() {
        let mut from = wallet_with(1000, usd());
        let mut to = wallet_with(0, usd());
        transfer(
            &mut from,
            &mut to,
            usd_cents(1000),
            TransactionId::new(),
            &ctx(),
        )
        .expect("covered transfer");
        assert_eq!(from.balance(), usd_cents(0));
        assert_eq!(to.balance(), usd_cents(1000));
    }

    #[test]
    fn a_transfer_beyond_the_source_balance_is_refused_and_changes_neither_wallet() {
        let mut from = wallet_with(1000, usd());
        let mut to = wallet_with(0, usd());
        assert_eq!(
            refused(&mut from, &mut to, usd_cents(1001)),
            Err(WalletError::InsufficientFunds {
                balance: usd_cents(1000),
                requested: usd_cents(1001)
            })
        );
    }

    #[test]
    fn a_transfer_between_currencies_is_refused_and_changes_neither_wallet() {
        let eur: Currency = "EUR".parse().expect("EUR is ISO 4217");
        let mut from = wallet_with(1000, usd());
        let mut to = wallet_with(0, eur);
        assert_eq!(
            refused(&mut from, &mut to, usd_cents(100)),
            Err(WalletError::CurrencyMismatch {
                expected: usd(),
                actual: eur
            })
        );
        // An amount in the destination's currency is just as wrong.
        assert_eq!(
            refused(&mut from, &mut to, Money::from_minor(100, eur)),
            Err(WalletError::CurrencyMismatch {
                expected: usd(),
                actual: eur
            })
        );
    }

    #[test]
    fn a_transfer_to_the_same_wallet_is_refused_even_from_two_copies() {
        let mut from = wallet_with(1000, usd());
        let mut same = from.clone();
        assert_eq!(
            refused(&mut from, &mut same, usd_cents(1)),
            Err(WalletError::SameWallet)
        );
    }

    #[test]
    fn zero_and_negative_transfers_are_refused_and_change_neither_wallet() {
        let mut from = wallet_with(1000, usd());
        let mut to = wallet_with(1000, usd());
        for minor in [0, -1, i64::MIN] {
            assert_eq!(
                refused(&mut from, &mut to, usd_cents(minor)),
                Err(WalletError::NonPositiveAmount)
            );
        }
    }

    #[test]
    fn a_transfer_touching_a_wallet_that_is_not_active_is_refused_and_names_it() {
        let mut from = wallet_with(1000, usd());
        let mut to = wallet_with(0, usd());
        to.freeze(&ctx()).expect("active wallets can be frozen");
        assert_eq!(
            refused(&mut from, &mut to, usd_cents(100)),
            Err(WalletError::NotActive {
                wallet_id: to.id(),
                status: WalletStatus::Frozen
            })
        );
        to.close(&ctx()).expect("empty wallets can be closed");
        assert_eq!(
            refused(&mut to, &mut from, usd_cents(100)),
            Err(WalletError::NotActive {
                wallet_id: to.id(),
                status: WalletStatus::Closed
            })
        );
    }

    #[test]
    fn a_transfer_that_would_overflow_the_destination_is_refused_and_changes_neither_wallet() {
        let mut from = wallet_with(10, usd());
        let mut to = wallet_with(i64::MAX, usd());
        assert_eq!(
            refused(&mut from, &mut to, usd_cents(1)),
            Err(WalletError::Money(MoneyError::OutOfRange))
        );
    }

    #[test]
    fn the_source_is_judged_before_anything_about_the_destination() {
        let eur: Currency = "EUR".parse().expect("EUR is ISO 4217");
        let mut frozen_eur = wallet_with(0, eur);
        frozen_eur.freeze(&ctx()).expect("an active wallet freezes");
        // An empty source: the same refusal whatever the destination is.
        for mut to in [wallet_with(0, usd()), wallet_with(0, eur), frozen_eur] {
            let mut from = wallet_with(100, usd());
            assert_eq!(
                refused(&mut from, &mut to, usd_cents(500)),
                Err(WalletError::InsufficientFunds {
                    balance: usd_cents(100),
                    requested: usd_cents(500),
                })
            );
        }
        assert_eq!(
            check_source(&wallet_with(100, usd()), usd_cents(40)),
            Ok(usd_cents(60))
        );
    }
}
