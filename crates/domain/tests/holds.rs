//! The hold rules of [`domain::decide`], one by one, on a clock the tests move: what is
//! available, partial captures, expiry at the exact instant, frozen and closing wallets.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use domain::ledger::Account;
use domain::{
    Actor, Command, DecimalAmount, Decision, EventContext, Expiry, Held, Hold, HoldId, HoldStatus,
    Outcome, Refusal, StatusAction, Submission, TransactionId, UserId, Wallet, WalletError,
    WalletId, WalletName, decide,
};

fn owner() -> Actor {
    Actor {
        issuer: "https://issuer.example".to_owned(),
        subject: "alice".to_owned(),
    }
}

fn stranger() -> Actor {
    Actor {
        issuer: "https://issuer.example".to_owned(),
        subject: "mallory".to_owned(),
    }
}

fn amount(text: &str) -> DecimalAmount {
    DecimalAmount::parse(text).expect("grammar")
}

/// Two USD wallets of the owner, the first with 10.00.
struct World {
    wallets: BTreeMap<WalletId, Held>,
    a: WalletId,
    b: WalletId,
    now: DateTime<Utc>,
}

impl World {
    fn new() -> Self {
        let ctx = EventContext::new(Utc::now(), "setup");
        let now = ctx.occurred_at();
        let mut wallets = BTreeMap::new();
        let mut ids = Vec::new();
        for _ in 0..2 {
            let (wallet, _) = Wallet::create(
                WalletId::new(),
                UserId::new(),
                WalletName::parse("w").expect("name"),
                "USD".parse().expect("USD"),
                &ctx,
            );
            ids.push(wallet.id());
            let held = Held {
                wallet,
                owner: Some(owner()),
                holds: Vec::new(),
            };
            wallets.insert(held.wallet.id(), held);
        }
        let mut world = World {
            wallets,
            a: ids[0],
            b: ids[1],
            now,
        };
        let deposit = Command::Deposit {
            wallet: world.a,
            amount: amount("10.00"),
        };
        world.run(&deposit, &owner()).expect("funded");
        world
    }

    fn run(&mut self, command: &Command, actor: &Actor) -> Result<Decision, Refusal> {
        let ctx = EventContext::new(self.now, "c").acted_by(actor.clone());
        let before = self.wallets.clone();
        let result = decide(
            &mut self.wallets,
            &Submission {
                command,
                if_match: None,
                ctx: &ctx,
                transaction_id: TransactionId::new(),
            },
        );
        if result.is_err() {
            assert_eq!(self.wallets, before, "a refusal changes nothing");
        }
        result
    }

    fn place(&mut self, text: &str, to: Option<WalletId>, seconds: u32) -> Hold {
        let command = Command::PlaceHold {
            wallet: self.a,
            to,
            amount: amount(text),
            expiry: Expiry::In(seconds),
            description: Some("order 42".to_owned()),
        };
        match self.run(&command, &owner()).expect("placed").outcome {
            Outcome::HoldPlaced(hold) => *hold,
            other => panic!("placing answered {other:?}"),
        }
    }

    fn capture(&mut self, hold: &Hold, text: Option<&str>) -> Result<Decision, Refusal> {
        let command = Command::CaptureHold {
            hold: hold.id,
            wallet: hold.wallet_id,
            to: hold.to_wallet_id,
            amount: text.map(amount),
            scoped: false,
        };
        self.run(&command, &owner())
    }

    fn void(&mut self, hold: &Hold) -> Result<Decision, Refusal> {
        let command = Command::VoidHold {
            hold: hold.id,
            wallet: hold.wallet_id,
            scoped: false,
        };
        self.run(&command, &owner())
    }

    fn withdraw(&mut self, text: &str) -> Result<Decision, Refusal> {
        let command = Command::Withdraw {
            wallet: self.a,
            amount: amount(text),
        };
        self.run(&command, &owner())
    }

    fn minor(&self, id: WalletId) -> (i64, i64, i64) {
        let held = &self.wallets[&id];
        (
            held.wallet.balance().minor_units(),
            held.wallet.held().minor_units(),
            held.available_at(self.now).expect("range").minor_units(),
        )
    }
}

#[test]
fn a_hold_reserves_money_that_withdrawals_and_other_holds_cannot_spend() {
    let mut world = World::new();
    world.place("6.00", None, 60);
    assert_eq!(world.minor(world.a), (1000, 600, 400));
    assert_eq!(
        world.withdraw("4.01").map(|_| ()),
        Err(Refusal::Rule(WalletError::InsufficientAvailable {
            available: domain::Money::from_minor(400, "USD".parse().expect("USD")),
            requested: domain::Money::from_minor(401, "USD".parse().expect("USD")),
        }))
    );
    let second = Command::PlaceHold {
        wallet: world.a,
        to: None,
        amount: amount("4.01"),
        expiry: Expiry::In(60),
        description: None,
    };
    assert!(matches!(
        world.run(&second, &owner()),
        Err(Refusal::Rule(WalletError::InsufficientAvailable { .. }))
    ));
    let transfer = Command::Transfer {
        from: world.a,
        to: world.b,
        amount: amount("4.01"),
    };
    assert!(matches!(
        world.run(&transfer, &owner()),
        Err(Refusal::Rule(WalletError::InsufficientAvailable { .. }))
    ));
    world.withdraw("4.00").expect("what is available");
    assert_eq!(world.minor(world.a), (600, 600, 0));
}

#[test]
fn a_partial_capture_moves_its_amount_to_the_target_and_releases_the_rest() {
    let mut world = World::new();
    let hold = world.place("6.00", Some(world.b), 60);
    let decision = world.capture(&hold, Some("2.50")).expect("captured");
    assert_eq!(world.minor(world.a), (750, 0, 750));
    assert_eq!(world.minor(world.b).0, 250);
    let posting = decision.posting.expect("a posting");
    assert_eq!(posting.amount.minor_units(), 250);
    for account in [Account::Balance, Account::Held] {
        let sum: i64 = posting
            .entries
            .iter()
            .filter(|e| e.account == account)
            .map(|e| e.amount_minor)
            .sum();
        assert_eq!(sum, 0);
    }
    let Outcome::HoldClosed(closed) = decision.outcome else {
        panic!("a capture closes its hold");
    };
    assert_eq!(closed.status, HoldStatus::Captured);
    assert_eq!(closed.captured.map(|m| m.minor_units()), Some(250));
    // Nothing is left to capture or void.
    assert!(matches!(
        world.capture(&hold, None),
        Err(Refusal::Rule(WalletError::HoldNotPending {
            status: HoldStatus::Captured,
            ..
        }))
    ));
    assert!(world.void(&hold).is_err());
}

#[test]
fn a_capture_of_more_than_the_hold_is_refused() {
    let mut world = World::new();
    let hold = world.place("1.00", None, 60);
    assert!(matches!(
        world.capture(&hold, Some("1.01")),
        Err(Refusal::Rule(WalletError::CaptureExceedsHold { .. }))
    ));
    world.capture(&hold, None).expect("all of it");
    assert_eq!(world.minor(world.a), (900, 0, 900));
}

#[test]
fn from_the_instant_of_its_expiry_a_hold_reserves_nothing_and_cannot_be_captured() {
    let mut world = World::new();
    let hold = world.place("6.00", None, 30);
    world.now += Duration::seconds(30) - Duration::microseconds(1);
    assert_eq!(world.minor(world.a).2, 400);
    world.now += Duration::microseconds(1);
    assert_eq!(
        world.minor(world.a),
        (1000, 600, 1000),
        "released, not yet swept"
    );
    assert!(matches!(
        world.capture(&hold, None),
        Err(Refusal::Rule(WalletError::HoldNotPending {
            status: HoldStatus::Expired,
            ..
        }))
    ));
    world
        .withdraw("10.00")
        .expect("the expired hold reserves nothing");
    // The sweeper records it: the held account follows, nothing else moves.
    let expire = Command::ExpireHold {
        hold: hold.id,
        wallet: hold.wallet_id,
    };
    let decision = world.run(&expire, &owner()).expect("expired");
    assert!(matches!(decision.outcome, Outcome::HoldClosed(h) if h.status == HoldStatus::Expired));
    assert_eq!(world.minor(world.a), (0, 0, 0));
}

#[test]
fn a_hold_is_not_recorded_as_expired_before_its_expiry() {
    let mut world = World::new();
    let hold = world.place("1.00", None, 30);
    let expire = Command::ExpireHold {
        hold: hold.id,
        wallet: hold.wallet_id,
    };
    assert!(world.run(&expire, &owner()).is_err());
}

#[test]
fn a_frozen_wallet_keeps_its_holds_voidable_but_not_capturable_or_placeable() {
    let mut world = World::new();
    let hold = world.place("1.00", None, 60);
    let other = world.place("2.00", None, 60);
    let freeze = Command::ChangeStatus {
        wallet: world.a,
        action: StatusAction::Freeze,
    };
    world.run(&freeze, &stranger()).expect("frozen");
    assert!(matches!(
        world.capture(&hold, None),
        Err(Refusal::Rule(WalletError::NotActive { .. }))
    ));
    let place = Command::PlaceHold {
        wallet: world.a,
        to: None,
        amount: amount("1.00"),
        expiry: Expiry::In(60),
        description: None,
    };
    assert!(matches!(
        world.run(&place, &owner()),
        Err(Refusal::Rule(WalletError::NotActive { .. }))
    ));
    world.void(&other).expect("voiding only releases");
    assert_eq!(world.minor(world.a), (1000, 100, 900));
}

#[test]
fn a_wallet_with_pending_holds_does_not_close() {
    let mut world = World::new();
    world.place("1.00", None, 60);
    let close = Command::ChangeStatus {
        wallet: world.a,
        action: StatusAction::Close,
    };
    assert_eq!(
        world.run(&close, &owner()).map(|_| ()),
        Err(Refusal::Rule(WalletError::PendingHolds { count: 1 }))
    );
}

#[test]
fn only_the_owner_or_a_scoped_caller_captures_or_voids_and_strangers_learn_nothing() {
    let mut world = World::new();
    let hold = world.place("1.00", None, 60);
    for scoped in [false, true] {
        let void = Command::VoidHold {
            hold: hold.id,
            wallet: hold.wallet_id,
            scoped,
        };
        let result = world.run(&void, &stranger());
        if scoped {
            result.expect("the capture scope may");
        } else {
            assert_eq!(result.map(|_| ()), Err(Refusal::HoldNotFound(hold.id)));
        }
    }
    let place = Command::PlaceHold {
        wallet: world.a,
        to: None,
        amount: amount("1.00"),
        expiry: Expiry::In(60),
        description: None,
    };
    assert_eq!(
        world.run(&place, &stranger()).map(|_| ()),
        Err(Refusal::NotFound(world.a))
    );
}

#[test]
fn an_expiry_now_or_beyond_thirty_days_a_target_that_is_the_wallet_and_an_unknown_hold_are_refused()
{
    let mut world = World::new();
    for expiry in [
        Expiry::In(0),
        Expiry::In(domain::hold::MAX_HOLD_SECONDS + 1),
        Expiry::At(world.now),
    ] {
        let place = Command::PlaceHold {
            wallet: world.a,
            to: None,
            amount: amount("1.00"),
            expiry,
            description: None,
        };
        assert_eq!(
            world.run(&place, &owner()).map(|_| ()),
            Err(Refusal::Rule(WalletError::InvalidExpiry))
        );
    }
    let to_self = Command::PlaceHold {
        wallet: world.a,
        to: Some(world.a),
        amount: amount("1.00"),
        expiry: Expiry::In(60),
        description: None,
    };
    assert_eq!(
        world.run(&to_self, &owner()).map(|_| ()),
        Err(Refusal::Rule(WalletError::SameWallet))
    );
    let unknown = HoldId::new();
    let capture = Command::CaptureHold {
        hold: unknown,
        wallet: world.a,
        to: None,
        amount: None,
        scoped: false,
    };
    assert_eq!(
        world.run(&capture, &owner()).map(|_| ()),
        Err(Refusal::HoldNotFound(unknown))
    );
}
