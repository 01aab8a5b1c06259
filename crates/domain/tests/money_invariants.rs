//! Property tests of the money invariants of the wallet aggregate, through the public API.
//!
//! Random sequences of commands run against two wallets of one currency and, beside them, a
//! plain model (balances as `i128`, statuses) that predicts each command's outcome. After
//! every step: the outcome is the predicted one, balances match the model and are never
//! negative, transfers conserve the total, versions count exactly the successful changes,
//! and a refused command changed nothing at all.

use chrono::Utc;
use domain::{
    Currency, EventContext, Money, TransactionId, UserId, Wallet, WalletError, WalletId,
    WalletName, WalletStatus, transfer,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Command {
    Deposit {
        wallet: usize,
        minor: i64,
    },
    Withdraw {
        wallet: usize,
        minor: i64,
    },
    /// `from == to` is a transfer to the same wallet (loaded twice), which must be refused.
    Transfer {
        from: usize,
        to: usize,
        minor: i64,
    },
    Freeze(usize),
    Unfreeze(usize),
    Close(usize),
}

/// Mostly everyday amounts, sometimes zero, negative or near the limits of `i64`.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 1..=10_000_i64,
        1 => -100..=0_i64,
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), (i64::MAX - 1000)..=i64::MAX],
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let wallet = 0..2_usize;
    prop_oneof![
        8 => (wallet.clone(), amount()).prop_map(|(wallet, minor)| Command::Deposit { wallet, minor }),
        8 => (wallet.clone(), amount()).prop_map(|(wallet, minor)| Command::Withdraw { wallet, minor }),
        10 => (wallet.clone(), wallet.clone(), amount())
            .prop_map(|(from, to, minor)| Command::Transfer { from, to, minor }),
        2 => wallet.clone().prop_map(Command::Freeze),
        2 => wallet.clone().prop_map(Command::Unfreeze),
        1 => wallet.prop_map(Command::Close),
    ]
}

/// What the wallets should look like, computed without the domain's code.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    balances: [i128; 2],
    statuses: [WalletStatus; 2],
    versions: [i64; 2],
}

impl Model {
    fn fits(balance: i128) -> bool {
        balance <= i128::from(i64::MAX)
    }

    fn active(&self, wallet: usize) -> bool {
        self.statuses[wallet] == WalletStatus::Active
    }

    /// Applies the command if the rules allow it; says whether they did.
    fn apply(&mut self, command: &Command) -> bool {
        match *command {
            Command::Deposit { wallet, minor } => {
                let after = self.balances[wallet] + i128::from(minor);
                let ok = minor > 0 && self.active(wallet) && Self::fits(after);
                if ok {
                    self.balances[wallet] = after;
                    self.versions[wallet] += 1;
                }
                ok
            }
            Command::Withdraw { wallet, minor } => {
                let after = self.balances[wallet] - i128::from(minor);
                let ok = minor > 0 && self.active(wallet) && after >= 0;
                if ok {
                    self.balances[wallet] = after;
                    self.versions[wallet] += 1;
                }
                ok
            }
            Command::Transfer { from, to, minor } => {
                let from_after = self.balances[from] - i128::from(minor);
                let to_after = self.balances[to] + i128::from(minor);
                let ok = from != to
                    && minor > 0
                    && self.active(from)
                    && self.active(to)
                    && from_after >= 0
                    && Self::fits(to_after);
                if ok {
                    self.balances[from] = from_after;
                    self.balances[to] = to_after;
                    self.versions[from] += 1;
                    self.versions[to] += 1;
                }
                ok
            }
            Command::Freeze(wallet) => {
                self.transition(wallet, WalletStatus::Active, WalletStatus::Frozen)
            }
            Command::Unfreeze(wallet) => {
                self.transition(wallet, WalletStatus::Frozen, WalletStatus::Active)
            }
            Command::Close(wallet) => {
                let ok =
                    self.statuses[wallet] != WalletStatus::Closed && self.balances[wallet] == 0;
                if ok {
                    self.statuses[wallet] = WalletStatus::Closed;
                    self.versions[wallet] += 1;
                }
                ok
            }
        }
    }

    fn transition(&mut self, wallet: usize, from: WalletStatus, to: WalletStatus) -> bool {
        let ok = self.statuses[wallet] == from;
        if ok {
            self.statuses[wallet] = to;
            self.versions[wallet] += 1;
        }
        ok
    }
}

fn usd() -> Currency {
    "USD".parse().expect("USD is ISO 4217")
}

/// Runs one command on the real wallets; `Ok(())` when it was accepted.
fn run(wallets: &mut [Wallet; 2], command: &Command) -> Result<(), WalletError> {
    let ctx = EventContext::new(Utc::now(), "prop");
    let money = |minor| Money::from_minor(minor, usd());
    match *command {
        Command::Deposit { wallet, minor } => {
            let wallet = &mut wallets[wallet];
            let event = wallet.add_funds(money(minor), TransactionId::new(), &ctx)?;
            assert_eq!(event.balance_after, wallet.balance());
        }
        Command::Withdraw { wallet, minor } => {
            let wallet = &mut wallets[wallet];
            let event = wallet.withdraw(money(minor), TransactionId::new(), &ctx)?;
            assert_eq!(event.balance_after, wallet.balance());
        }
        Command::Transfer { from, to, minor } if from == to => {
            // The same wallet loaded twice: two objects, one id.
            let source = &mut wallets[from];
            let mut copy = source.clone();
            transfer(source, &mut copy, money(minor), TransactionId::new(), &ctx)?;
        }
        Command::Transfer { from, minor, .. } => {
            let [a, b] = wallets;
            let (source, destination) = if from == 0 { (a, b) } else { (b, a) };
            let (event, received) = transfer(
                source,
                destination,
                money(minor),
                TransactionId::new(),
                &ctx,
            )?;
            assert_eq!(received.metadata.aggregate_id, destination.id().as_uuid());
            assert_eq!(received.balance_after, destination.balance());
            assert_eq!(event.metadata.aggregate_id, source.id().as_uuid());
            assert_eq!(event.from_wallet_id, source.id());
            assert_eq!(event.to_wallet_id, destination.id());
            assert_eq!(event.from_balance_after, source.balance());
            assert_eq!(event.to_balance_after, destination.balance());
        }
        Command::Freeze(wallet) => {
            wallets[wallet].freeze(&ctx)?;
        }
        Command::Unfreeze(wallet) => {
            wallets[wallet].unfreeze(&ctx)?;
        }
        Command::Close(wallet) => {
            wallets[wallet].close(&ctx)?;
        }
    }
    Ok(())
}

fn new_wallet() -> Wallet {
    let name = WalletName::parse("Prop").expect("valid name");
    let ctx = EventContext::new(Utc::now(), "prop");
    Wallet::create(WalletId::new(), UserId::new(), name, usd(), &ctx).0
}

fn total(wallets: &[Wallet; 2]) -> i128 {
    wallets
        .iter()
        .map(|w| i128::from(w.balance().minor_units()))
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_command_sequence_keeps_balances_non_negative_conserves_transfers_and_refusals_change_nothing(
        commands in prop::collection::vec(command(), 1..60)
    ) {
        let mut wallets = [new_wallet(), new_wallet()];
        let mut model = Model {
            balances: [0, 0],
            statuses: [WalletStatus::Active; 2],
            versions: [1, 1],
        };
        for command in &commands {
            let before = wallets.clone();
            let total_before = total(&wallets);
            let expected = model.apply(command);
            let outcome = run(&mut wallets, command);

            prop_assert_eq!(outcome.is_ok(), expected, "{:?} gave {:?}", command, outcome);
            if outcome.is_err() {
                prop_assert_eq!(&wallets, &before, "a refused {:?} changed a wallet", command);
            }
            if matches!(command, Command::Transfer { .. }) {
                prop_assert_eq!(total(&wallets), total_before, "{:?} did not conserve money", command);
            }
            for (i, wallet) in wallets.iter().enumerate() {
                prop_assert!(!wallet.balance().is_negative());
                prop_assert_eq!(i128::from(wallet.balance().minor_units()), model.balances[i]);
                prop_assert_eq!(wallet.status(), model.statuses[i]);
                prop_assert_eq!(wallet.version(), model.versions[i]);
            }
        }
    }

    #[test]
    fn a_refused_transfer_names_the_first_broken_rule_and_changes_neither_wallet(
        from_balance in 0..=1_000_i64,
        minor in -10..=2_000_i64,
        frozen in any::<bool>(),
    ) {
        let ctx = EventContext::new(Utc::now(), "prop");
        let mut from = new_wallet();
        if from_balance > 0 {
            from.add_funds(Money::from_minor(from_balance, usd()), TransactionId::new(), &ctx)
                .expect("positive deposit");
        }
        let mut to = new_wallet();
        if frozen {
            to.freeze(&ctx).expect("active wallets can be frozen");
        }
        let (from_before, to_before) = (from.clone(), to.clone());
        let result = transfer(&mut from, &mut to, Money::from_minor(minor, usd()), TransactionId::new(), &ctx);
        // The source is judged before anything about the destination.
        let expected_error = if minor <= 0 {
            Some(WalletError::NonPositiveAmount)
        } else if minor > from_balance {
            Some(WalletError::InsufficientFunds {
                balance: Money::from_minor(from_balance, usd()),
                requested: Money::from_minor(minor, usd()),
            })
        } else if frozen {
            Some(WalletError::NotActive { wallet_id: to.id(), status: WalletStatus::Frozen })
        } else {
            None
        };
        match expected_error {
            Some(error) => {
                prop_assert_eq!(result, Err(error));
                prop_assert_eq!(&from, &from_before);
                prop_assert_eq!(&to, &to_before);
            }
            None => {
                prop_assert!(result.is_ok());
                prop_assert_eq!(from.balance().minor_units(), from_balance - minor);
                prop_assert_eq!(to.balance().minor_units(), minor);
            }
        }
    }
}
