//! Property tests of the one decision every wallet command goes through
//! ([`domain::decide`]), on its own: random commands by random actors, with random
//! `If-Match` values, against wallets of two owners and two currencies (and a wallet that
//! does not exist). After each: a refusal changed nothing; an acceptance changed exactly
//! the wallets it names, by exactly its ledger entries, which balance, and moved each
//! version by one; who may act on what, and which rule is judged first, hold.

use std::collections::BTreeMap;

use chrono::Utc;
use domain::{
    Actor, Command, Currency, DecimalAmount, EventContext, Held, Outcome, Refusal, StatusAction,
    Submission, TransactionId, UserId, VersionCondition, Wallet, WalletError, WalletId, WalletName,
    WalletStatus, decide,
};
use proptest::prelude::*;

/// Wallet 0 and 1 (USD) and 2 (EUR) belong to actor 0, wallet 3 (USD) to actor 1; wallet 4
/// does not exist.
const WALLETS: usize = 5;

fn actor(index: usize) -> Actor {
    Actor {
        issuer: "https://issuer.example".to_owned(),
        subject: format!("subject-{index}"),
    }
}

fn owner_of(wallet: usize) -> usize {
    usize::from(wallet == 3)
}

#[derive(Debug, Clone)]
enum Precondition {
    None,
    Any,
    Current,
    WeakCurrent,
    Other,
}

#[derive(Debug, Clone)]
struct Step {
    command: StepCommand,
    actor: usize,
    precondition: Precondition,
}

#[derive(Debug, Clone)]
enum StepCommand {
    Deposit(usize, String),
    Withdraw(usize, String),
    Transfer(usize, usize, String),
    Status(usize, StatusAction),
}

fn amount() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (1_u32..5_000).prop_map(|cents| format!("{}.{:02}", cents / 100, cents % 100)),
        1 => Just("0.00".to_owned()),
        1 => Just("0.001".to_owned()),
        1 => Just("90000000000000000.00".to_owned()),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let wallet = 0..WALLETS;
    let command = prop_oneof![
        4 => (wallet.clone(), amount()).prop_map(|(w, a)| StepCommand::Deposit(w, a)),
        4 => (wallet.clone(), amount()).prop_map(|(w, a)| StepCommand::Withdraw(w, a)),
        4 => (wallet.clone(), wallet.clone(), amount()).prop_map(|(f, t, a)| StepCommand::Transfer(f, t, a)),
        2 => (wallet, prop_oneof![Just(StatusAction::Freeze), Just(StatusAction::Unfreeze), Just(StatusAction::Close)])
            .prop_map(|(w, a)| StepCommand::Status(w, a)),
    ];
    let precondition = prop_oneof![
        4 => Just(Precondition::None),
        1 => Just(Precondition::Any),
        2 => Just(Precondition::Current),
        1 => Just(Precondition::WeakCurrent),
        1 => Just(Precondition::Other),
    ];
    (command, 0..2_usize, precondition).prop_map(|(command, actor, precondition)| Step {
        command,
        actor,
        precondition,
    })
}

fn world() -> (Vec<WalletId>, BTreeMap<WalletId, Held>) {
    let ids: Vec<WalletId> = (0..WALLETS).map(|_| WalletId::new()).collect();
    let ctx = EventContext::new(Utc::now(), "setup");
    let mut wallets = BTreeMap::new();
    for (index, &id) in ids.iter().enumerate().take(WALLETS - 1) {
        let currency: Currency = if index == 2 { "EUR" } else { "USD" }
            .parse()
            .expect("currency");
        let (wallet, _) = Wallet::create(
            id,
            UserId::new(),
            WalletName::parse("w").expect("name"),
            currency,
            &ctx,
        );
        wallets.insert(
            id,
            Held {
                wallet,
                owner: Some(actor(owner_of(index))),
            },
        );
    }
    (ids, wallets)
}

fn command(step: &Step, ids: &[WalletId]) -> Command {
    let parse = |a: &str| DecimalAmount::parse(a).expect("grammar");
    match &step.command {
        StepCommand::Deposit(w, a) => Command::Deposit {
            wallet: ids[*w],
            amount: parse(a),
        },
        StepCommand::Withdraw(w, a) => Command::Withdraw {
            wallet: ids[*w],
            amount: parse(a),
        },
        StepCommand::Transfer(f, t, a) => Command::Transfer {
            from: ids[*f],
            to: ids[*t],
            amount: parse(a),
        },
        StepCommand::Status(w, action) => Command::ChangeStatus {
            wallet: ids[*w],
            action: *action,
        },
    }
}

/// The `If-Match` of `step` on the wallet it acts on (transfers take none).
fn condition(
    step: &Step,
    ids: &[WalletId],
    wallets: &BTreeMap<WalletId, Held>,
) -> Option<VersionCondition> {
    let target = match &step.command {
        StepCommand::Deposit(w, _) | StepCommand::Withdraw(w, _) | StepCommand::Status(w, _) => *w,
        StepCommand::Transfer(..) => return None,
    };
    let current = wallets.get(&ids[target]).map_or(1, |h| h.wallet.version());
    match step.precondition {
        Precondition::None => None,
        Precondition::Any => Some(VersionCondition::Any),
        Precondition::Current => Some(VersionCondition::Tags(vec![(current, false)])),
        Precondition::WeakCurrent => Some(VersionCondition::Tags(vec![(current, true)])),
        Precondition::Other => Some(VersionCondition::Tags(vec![(current + 1, false)])),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decisions_change_exactly_what_they_record_and_refusals_change_nothing(
        steps in prop::collection::vec(step(), 1..40)
    ) {
        let (ids, mut wallets) = world();
        for step in &steps {
            let command = command(step, &ids);
            let if_match = condition(step, &ids, &wallets);
            let ctx = EventContext::new(Utc::now(), "c").acted_by(actor(step.actor));
            let before = wallets.clone();
            let submission = Submission {
                command: &command,
                if_match: if_match.as_ref(),
                ctx: &ctx,
                transaction_id: TransactionId::new(),
            };
            match decide(&mut wallets, &submission) {
                Err(refusal) => {
                    prop_assert_eq!(&wallets, &before, "{:?} refused ({}) changed nothing", step, refusal);
                    check_refusal(step, &refusal, &ids, &before)?;
                }
                Ok(decision) => {
                    check_acceptance(step, &ids, &before, &wallets, &decision)?;
                }
            }
        }
    }
}

/// Who may act and which check comes first.
fn check_refusal(
    step: &Step,
    refusal: &Refusal,
    ids: &[WalletId],
    before: &BTreeMap<WalletId, Held>,
) -> Result<(), TestCaseError> {
    let foreign = |w: usize| w == WALLETS - 1 || owner_of(w) != step.actor;
    match &step.command {
        // Money leaves, and a wallet closes, only by its owner's hand: anyone else is told
        // the wallet does not exist.
        StepCommand::Withdraw(w, _) | StepCommand::Status(w, StatusAction::Close)
            if foreign(*w) =>
        {
            prop_assert_eq!(refusal, &Refusal::NotFound(ids[*w]));
        }
        StepCommand::Transfer(f, _, _) if foreign(*f) => {
            prop_assert_eq!(refusal, &Refusal::NotFound(ids[*f]));
        }
        // Nothing about a transfer's target is told when the source could not send it.
        StepCommand::Transfer(f, t, a) if *t == WALLETS - 1 => {
            let source = &before[&ids[*f]].wallet;
            let amount = DecimalAmount::parse(a).expect("grammar");
            let sendable = domain::Money::from_decimal(amount, source.currency())
                .ok()
                .is_some_and(|m| domain::check_source(source, m).is_ok());
            if sendable {
                prop_assert_eq!(refusal, &Refusal::NotFound(ids[*t]));
            } else {
                prop_assert!(!matches!(refusal, Refusal::NotFound(_)), "{:?}", refusal);
            }
        }
        StepCommand::Deposit(w, _) | StepCommand::Withdraw(w, _) | StepCommand::Status(w, _)
            if *w == WALLETS - 1 =>
        {
            prop_assert_eq!(refusal, &Refusal::NotFound(ids[*w]));
        }
        _ => {}
    }
    if let (Precondition::Other | Precondition::WeakCurrent, false) = (
        &step.precondition,
        matches!(step.command, StepCommand::Transfer(..)),
    ) {
        // A wrong (or weak) If-Match refuses before any rule, unless the wallet is not the
        // caller's to act on.
        if !matches!(refusal, Refusal::NotFound(_)) {
            prop_assert!(
                matches!(refusal, Refusal::VersionChanged { .. }),
                "{:?}",
                refusal
            );
        }
    }
    Ok(())
}

/// An accepted command changed exactly what it recorded.
fn check_acceptance(
    step: &Step,
    ids: &[WalletId],
    before: &BTreeMap<WalletId, Held>,
    after: &BTreeMap<WalletId, Held>,
    decision: &domain::Decision,
) -> Result<(), TestCaseError> {
    let named: Vec<WalletId> = command(step, ids).wallets().collect();
    for (id, held) in after {
        let old = &before[id];
        if !named.contains(id) {
            prop_assert_eq!(held, old, "a wallet the command does not name is unchanged");
            continue;
        }
        prop_assert_eq!(held.wallet.version(), old.wallet.version() + 1);
        prop_assert_eq!(&held.owner, &old.owner);
        prop_assert!(held.wallet.balance().minor_units() >= 0);
        let moved: i64 = decision
            .posting
            .iter()
            .flat_map(|p| &p.entries)
            .filter(|e| e.wallet_id == Some(*id))
            .map(|e| e.amount_minor)
            .sum();
        prop_assert_eq!(
            held.wallet.balance().minor_units() - old.wallet.balance().minor_units(),
            moved,
            "the balance moved by exactly its entries"
        );
        for entry in decision.posting.iter().flat_map(|p| &p.entries) {
            if entry.wallet_id == Some(*id) {
                prop_assert_eq!(entry.balance_after, Some(held.wallet.balance()));
            }
        }
    }
    if let Some(posting) = &decision.posting {
        let sum: i64 = posting.entries.iter().map(|e| e.amount_minor).sum();
        prop_assert_eq!(sum, 0, "a posting balances");
        prop_assert!(posting.amount.minor_units() > 0);
    }
    match (&step.command, &decision.outcome) {
        (StepCommand::Status(w, _), Outcome::StatusChanged(wallet)) => {
            let change = decision.status_change.expect("a status change is recorded");
            prop_assert_eq!(change.from, before[&ids[*w]].wallet.status());
            prop_assert_eq!(change.to, wallet.status());
            prop_assert_eq!(&**wallet, &after[&ids[*w]].wallet);
            prop_assert!(decision.posting.is_none());
            if change.to == WalletStatus::Closed {
                prop_assert_eq!(wallet.balance().minor_units(), 0);
            }
        }
        (StepCommand::Deposit(..) | StepCommand::Withdraw(..), Outcome::Moved { .. })
        | (StepCommand::Transfer(..), Outcome::Transferred { .. }) => {
            prop_assert!(decision.status_change.is_none());
            for id in &named {
                prop_assert_eq!(after[id].wallet.status(), WalletStatus::Active);
            }
        }
        (command, outcome) => prop_assert!(false, "{:?} answered {:?}", command, outcome),
    }
    // Money leaves only by its owner's hand.
    if let StepCommand::Withdraw(w, _) | StepCommand::Transfer(w, _, _) = &step.command {
        prop_assert_eq!(owner_of(*w), step.actor);
    }
    Ok(())
}

#[test]
fn a_transfer_to_the_same_wallet_or_another_currency_is_a_rule_refusal() {
    let (ids, mut wallets) = world();
    let owner = EventContext::new(Utc::now(), "c").acted_by(actor(0));
    let fund = Command::Deposit {
        wallet: ids[0],
        amount: DecimalAmount::parse("5.00").expect("amount"),
    };
    fn submit<'a>(command: &'a Command, ctx: &'a EventContext) -> Submission<'a> {
        Submission {
            command,
            if_match: None,
            ctx,
            transaction_id: TransactionId::new(),
        }
    }
    decide(&mut wallets, &submit(&fund, &owner)).expect("funded");
    for (to, refusal) in [
        (0, Refusal::Rule(WalletError::SameWallet)),
        (
            2,
            Refusal::Rule(WalletError::CurrencyMismatch {
                expected: "USD".parse().expect("USD"),
                actual: "EUR".parse().expect("EUR"),
            }),
        ),
    ] {
        let transfer = Command::Transfer {
            from: ids[0],
            to: ids[to],
            amount: DecimalAmount::parse("1.00").expect("amount"),
        };
        let before = wallets.clone();
        assert_eq!(
            decide(&mut wallets, &submit(&transfer, &owner)),
            Err(refusal)
        );
        assert_eq!(wallets, before);
    }
}
