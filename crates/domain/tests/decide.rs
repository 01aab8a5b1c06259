//! Property tests of the one decision every wallet command goes through
//! ([`domain::decide`]), on its own: random commands by random actors, with random
//! `If-Match` values, against wallets of two owners and two currencies (and a wallet that
//! does not exist). After each: a refusal changed nothing; an acceptance changed exactly
//! the wallets it names, by exactly its ledger entries, which balance, and moved each
//! version by one; who may act on what, and which rule is judged first, hold. Holds are
//! placed, captured, voided and expired on a clock that moves forward between steps: the
//! held amount is always the sum of the holds recorded pending, what is available never
//! goes below zero, and no capture takes more than its hold. Every wallet keeps the stream
//! of the events its decisions appended: gapless, one event per version, and its fold is
//! the wallet, after every step.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use domain::ledger::Account;
use domain::{
    Actor, Appended, Command, Currency, DecimalAmount, EventContext, Expiry, Held, HoldId,
    HoldStatus, Outcome, Refusal, StatusAction, Submission, TransactionId, UserId,
    VersionCondition, Wallet, WalletError, WalletId, WalletName, WalletStatus, decide, fold,
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
    /// Seconds the clock moves before the step.
    wait: i64,
}

#[derive(Debug, Clone)]
enum StepCommand {
    Deposit(usize, String),
    Withdraw(usize, String),
    Transfer(usize, usize, String),
    Status(usize, StatusAction),
    /// A hold on a wallet, maybe for another one, expiring in some seconds.
    Hold(usize, Option<usize>, String, u32),
    /// Of the n-th hold placed so far (modulo), all of it or an amount.
    Capture(usize, Option<String>, bool),
    Void(usize, bool),
    Expire(usize),
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
        2 => (wallet.clone(), prop_oneof![Just(StatusAction::Freeze), Just(StatusAction::Unfreeze), Just(StatusAction::Close)])
            .prop_map(|(w, a)| StepCommand::Status(w, a)),
        4 => (wallet.clone(), prop::option::of(wallet), amount(), 0_u32..20)
            .prop_map(|(w, t, a, s)| StepCommand::Hold(w, t, a, s)),
        3 => (0_usize..8, prop::option::of(amount()), any::<bool>())
            .prop_map(|(h, a, s)| StepCommand::Capture(h, a, s)),
        2 => (0_usize..8, any::<bool>()).prop_map(|(h, s)| StepCommand::Void(h, s)),
        2 => (0_usize..8).prop_map(StepCommand::Expire),
    ];
    let precondition = prop_oneof![
        4 => Just(Precondition::None),
        1 => Just(Precondition::Any),
        2 => Just(Precondition::Current),
        1 => Just(Precondition::WeakCurrent),
        1 => Just(Precondition::Other),
    ];
    (command, 0..2_usize, precondition, 0_i64..6).prop_map(
        |(command, actor, precondition, wait)| Step {
            command,
            actor,
            precondition,
            wait,
        },
    )
}

/// The wallets (by id) and their streams, each opened by its `WalletCreated`.
type World = (
    Vec<WalletId>,
    BTreeMap<WalletId, Held>,
    BTreeMap<WalletId, Vec<Appended>>,
);

fn world() -> World {
    let ids: Vec<WalletId> = (0..WALLETS).map(|_| WalletId::new()).collect();
    let ctx = EventContext::new(Utc::now(), "setup");
    let mut wallets = BTreeMap::new();
    let mut streams = BTreeMap::new();
    for (index, &id) in ids.iter().enumerate().take(WALLETS - 1) {
        let currency: Currency = if index == 2 { "EUR" } else { "USD" }
            .parse()
            .expect("currency");
        let (wallet, created) = Wallet::create(
            id,
            UserId::new(),
            WalletName::parse("w").expect("name"),
            currency,
            &ctx,
        );
        streams.insert(
            id,
            vec![Appended {
                sequence: 1,
                event: created.into(),
            }],
        );
        wallets.insert(
            id,
            Held {
                wallet,
                owner: Some(actor(owner_of(index))),
                holds: Vec::new(),
            },
        );
    }
    (ids, wallets, streams)
}

/// The hold a step names, and the wallet it is on (a hold id that names nothing before any
/// was placed).
fn named_hold(
    index: usize,
    holds: &[(HoldId, WalletId, Option<WalletId>)],
    ids: &[WalletId],
) -> (HoldId, WalletId, Option<WalletId>) {
    if holds.is_empty() {
        (HoldId::new(), ids[0], None)
    } else {
        holds[index % holds.len()]
    }
}

fn command(
    step: &Step,
    ids: &[WalletId],
    holds: &[(HoldId, WalletId, Option<WalletId>)],
) -> Command {
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
        StepCommand::Hold(w, t, a, seconds) => Command::PlaceHold {
            wallet: ids[*w],
            to: t.map(|t| ids[t]),
            amount: parse(a),
            expiry: Expiry::In(*seconds),
            description: None,
        },
        StepCommand::Capture(h, a, scoped) => {
            let (hold, wallet, to) = named_hold(*h, holds, ids);
            Command::CaptureHold {
                hold,
                wallet,
                to,
                amount: a.as_deref().map(parse),
                scoped: *scoped,
            }
        }
        StepCommand::Void(h, scoped) => {
            let (hold, wallet, _) = named_hold(*h, holds, ids);
            Command::VoidHold {
                hold,
                wallet,
                scoped: *scoped,
            }
        }
        StepCommand::Expire(h) => {
            let (hold, wallet, _) = named_hold(*h, holds, ids);
            Command::ExpireHold { hold, wallet }
        }
    }
}

/// The `If-Match` of `step` on the wallet it acts on (transfers take none).
fn condition(
    step: &Step,
    ids: &[WalletId],
    wallets: &BTreeMap<WalletId, Held>,
) -> Option<VersionCondition> {
    let target = match &step.command {
        StepCommand::Deposit(w, _)
        | StepCommand::Withdraw(w, _)
        | StepCommand::Status(w, _)
        | StepCommand::Hold(w, ..) => *w,
        // Captures and voids name the hold's version: 1 while it is pending.
        StepCommand::Transfer(..)
        | StepCommand::Capture(..)
        | StepCommand::Void(..)
        | StepCommand::Expire(..) => return None,
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
        let (ids, mut wallets, mut streams) = world();
        let mut holds: Vec<(HoldId, WalletId, Option<WalletId>)> = Vec::new();
        let mut now = Utc::now();
        for step in &steps {
            now += Duration::seconds(step.wait);
            let command = command(step, &ids, &holds);
            let if_match = condition(step, &ids, &wallets);
            let ctx = EventContext::new(now, "c").acted_by(actor(step.actor));
            let now = ctx.occurred_at();
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
                    check_acceptance(step, &command, &before, &wallets, &decision)?;
                    check_appended(&before, &wallets, &decision, &mut streams)?;
                    if let Outcome::HoldPlaced(hold) = &decision.outcome {
                        holds.push((hold.id, hold.wallet_id, hold.to_wallet_id));
                    }
                }
            }
            check_holds(&wallets, now)?;
            for (id, stream) in &streams {
                prop_assert_eq!(&fold(stream).expect("a stream folds"), &wallets[id].wallet);
            }
        }
    }
}

/// An accepted decision appends one event to the stream of each wallet whose version it
/// moved, at that new version, and nothing to any other.
fn check_appended(
    before: &BTreeMap<WalletId, Held>,
    after: &BTreeMap<WalletId, Held>,
    decision: &domain::Decision,
    streams: &mut BTreeMap<WalletId, Vec<Appended>>,
) -> Result<(), TestCaseError> {
    for appended in &decision.events {
        let id = appended.wallet_id();
        let stream = streams.get_mut(&id).expect("an event of a known wallet");
        let last = stream.last().map_or(0, |last| last.sequence);
        prop_assert_eq!(appended.sequence, last + 1, "gapless");
        prop_assert_eq!(
            appended.event.metadata().occurred_at,
            decision.occurred_at()
        );
        stream.push(appended.clone());
    }
    for (id, held) in after {
        let moved = held.wallet.version() - before[id].wallet.version();
        let appended = decision
            .events
            .iter()
            .filter(|appended| appended.wallet_id() == *id)
            .count();
        prop_assert_eq!(moved, i64::try_from(appended).expect("small"));
    }
    Ok(())
}

/// What holds promise, after every step: a wallet's held amount is the sum of its holds
/// recorded pending, what is available is never negative, no capture exceeds its hold.
fn check_holds(
    wallets: &BTreeMap<WalletId, Held>,
    now: DateTime<Utc>,
) -> Result<(), TestCaseError> {
    for held in wallets.values() {
        let pending: i64 = held
            .holds
            .iter()
            .filter(|h| h.status == HoldStatus::Pending)
            .map(|h| h.amount.minor_units())
            .sum();
        prop_assert_eq!(held.wallet.held().minor_units(), pending);
        let available = held.available_at(now).expect("in range");
        prop_assert!(available.minor_units() >= 0, "available {}", available);
        for hold in &held.holds {
            let captured = hold.captured.map_or(0, |m| m.minor_units());
            prop_assert!(captured <= hold.amount.minor_units());
            prop_assert_eq!(hold.captured.is_some(), hold.status == HoldStatus::Captured);
        }
    }
    Ok(())
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
        // Holds are placed by the owner alone.
        StepCommand::Hold(w, ..) if foreign(*w) => {
            prop_assert_eq!(refusal, &Refusal::NotFound(ids[*w]));
        }
        StepCommand::Deposit(w, _) | StepCommand::Withdraw(w, _) | StepCommand::Status(w, _)
            if *w == WALLETS - 1 =>
        {
            prop_assert_eq!(refusal, &Refusal::NotFound(ids[*w]));
        }
        _ => {}
    }
    if let (Precondition::Other | Precondition::WeakCurrent, true) =
        (&step.precondition, condition_applies(step))
    {
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

/// Whether the step's precondition is an `If-Match` on a wallet.
fn condition_applies(step: &Step) -> bool {
    matches!(
        step.command,
        StepCommand::Deposit(..)
            | StepCommand::Withdraw(..)
            | StepCommand::Status(..)
            | StepCommand::Hold(..)
    )
}

/// The sum of a decision's entries on `account` of wallet `id`.
fn moved(decision: &domain::Decision, id: WalletId, account: Account) -> i64 {
    decision
        .posting
        .iter()
        .flat_map(|p| &p.entries)
        .filter(|e| e.wallet_id == Some(id) && e.account == account)
        .map(|e| e.amount_minor)
        .sum()
}

/// An accepted command changed exactly what it recorded.
fn check_acceptance(
    step: &Step,
    command: &Command,
    before: &BTreeMap<WalletId, Held>,
    after: &BTreeMap<WalletId, Held>,
    decision: &domain::Decision,
) -> Result<(), TestCaseError> {
    let named: Vec<WalletId> = command.wallets().collect();
    // A hold's target is only read when it is placed.
    let changed: &[WalletId] = match command {
        Command::PlaceHold { .. } => &named[..1],
        _ => &named,
    };
    for (id, held) in after {
        let old = &before[id];
        if !changed.contains(id) {
            prop_assert_eq!(
                held,
                old,
                "a wallet the command does not change is unchanged"
            );
            continue;
        }
        prop_assert_eq!(held.wallet.version(), old.wallet.version() + 1);
        prop_assert_eq!(&held.owner, &old.owner);
        prop_assert!(held.wallet.balance().minor_units() >= 0);
        prop_assert_eq!(
            held.wallet.balance().minor_units() - old.wallet.balance().minor_units(),
            moved(decision, *id, Account::Balance),
            "the balance moved by exactly its entries"
        );
        prop_assert_eq!(
            held.wallet.held().minor_units() - old.wallet.held().minor_units(),
            moved(decision, *id, Account::Held),
            "the held amount moved by exactly its entries"
        );
        for entry in decision.posting.iter().flat_map(|p| &p.entries) {
            if entry.wallet_id == Some(*id) {
                let after = match entry.account {
                    Account::Balance => held.wallet.balance(),
                    Account::Held => held.wallet.held(),
                };
                prop_assert_eq!(entry.balance_after, Some(after));
            }
        }
    }
    if let Some(posting) = &decision.posting {
        for account in [Account::Balance, Account::Held] {
            let sum: i64 = posting
                .entries
                .iter()
                .filter(|e| e.account == account)
                .map(|e| e.amount_minor)
                .sum();
            prop_assert_eq!(sum, 0, "a posting balances on each account");
        }
        prop_assert!(posting.amount.minor_units() > 0);
    }
    match (&step.command, &decision.outcome) {
        (StepCommand::Status(..), Outcome::StatusChanged { wallet, .. }) => {
            let change = decision.status_change.expect("a status change is recorded");
            prop_assert_eq!(change.from, before[&named[0]].wallet.status());
            prop_assert_eq!(change.to, wallet.status());
            prop_assert_eq!(&**wallet, &after[&named[0]].wallet);
            prop_assert!(decision.posting.is_none());
            if change.to == WalletStatus::Closed {
                prop_assert_eq!(wallet.balance().minor_units(), 0);
            }
        }
        (StepCommand::Deposit(..) | StepCommand::Withdraw(..), Outcome::Moved { .. })
        | (StepCommand::Transfer(..), Outcome::Transferred { .. })
        | (StepCommand::Hold(..), Outcome::HoldPlaced(_)) => {
            prop_assert!(decision.status_change.is_none());
            for id in &named {
                prop_assert_eq!(after[id].wallet.status(), WalletStatus::Active);
            }
        }
        (StepCommand::Capture(..), Outcome::HoldClosed(hold)) => {
            prop_assert_eq!(hold.status, HoldStatus::Captured);
            // Captured only out of an active wallet, by its owner or with the scope.
            prop_assert_eq!(after[&hold.wallet_id].wallet.status(), WalletStatus::Active);
            if let StepCommand::Capture(_, _, false) = step.command {
                prop_assert_eq!(owner_of_id(before, hold.wallet_id), Some(actor(step.actor)));
            }
        }
        (StepCommand::Void(_, scoped), Outcome::HoldClosed(hold)) => {
            prop_assert_eq!(hold.status, HoldStatus::Voided);
            if !scoped {
                prop_assert_eq!(owner_of_id(before, hold.wallet_id), Some(actor(step.actor)));
            }
        }
        (StepCommand::Expire(_), Outcome::HoldClosed(hold)) => {
            prop_assert_eq!(hold.status, HoldStatus::Expired);
            prop_assert!(hold.expires_at <= hold.closed_at.expect("closed"));
        }
        (command, outcome) => prop_assert!(false, "{:?} answered {:?}", command, outcome),
    }
    // Money leaves, or is held, only by its owner's hand.
    if let StepCommand::Withdraw(w, _) | StepCommand::Transfer(w, _, _) | StepCommand::Hold(w, ..) =
        &step.command
    {
        prop_assert_eq!(owner_of(*w), step.actor);
    }
    Ok(())
}

fn owner_of_id(wallets: &BTreeMap<WalletId, Held>, id: WalletId) -> Option<Actor> {
    wallets.get(&id).and_then(|held| held.owner.clone())
}

#[test]
fn a_transfer_to_the_same_wallet_or_another_currency_is_a_rule_refusal() {
    let (ids, mut wallets, _) = world();
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
