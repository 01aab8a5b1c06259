//! The write pipeline driven directly (`api::pipeline::Writer::run`), against the real
//! database: random batches (one request included) of random commands by owners and
//! strangers, with random `If-Match` values and idempotency keys (fresh, none, repeated
//! within the batch or from an earlier one, with the same or another body), while COMMITs
//! randomly lose their answer after committing or fail before it. A model predicts every
//! answer and the wallets after each batch; the pipeline must agree, so a request run twice
//! after a lost COMMIT answer (the old fallback) fails it. Also, through HTTP: a keyless
//! deposit whose COMMIT answer is lost is credited once and answered 201.

use std::collections::HashMap;

use api::RequestContext;
use api::caller::Caller;
use api::pipeline::{COMMIT_FAILED, COMMIT_LOST, Request, Submission, Writer};
use api::write::IdempotencyKey;
use domain::{Command, DecimalAmount, StatusAction, VersionCondition, WalletId};
use proptest::prelude::*;
use uuid::Uuid;
use wallet_hub_tests::{TestApp, spawn_app};

const WALLETS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Deposit {
        wallet: usize,
        cents: i64,
    },
    Withdraw {
        wallet: usize,
        cents: i64,
        owner: bool,
    },
    Transfer {
        from: usize,
        to: usize,
        cents: i64,
        owner: bool,
    },
    Status {
        wallet: usize,
        action: StatusAction,
        owner: bool,
    },
}

#[derive(Debug, Clone)]
enum KeyChoice {
    None,
    Fresh,
    /// The key of an earlier request (this batch or before), by position among those used.
    Repeat(usize),
}

#[derive(Debug, Clone)]
enum IfMatchChoice {
    None,
    Current,
    Stale,
}

#[derive(Debug, Clone)]
struct Sub {
    op: Op,
    key: KeyChoice,
    if_match: IfMatchChoice,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    /// The COMMIT took effect, its answer is lost.
    Lost,
    /// The COMMIT fails and the transaction rolls back.
    Failed,
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WALLETS;
    let cents = 1_i64..2_000;
    prop_oneof![
        4 => (w.clone(), cents.clone()).prop_map(|(wallet, cents)| Op::Deposit { wallet, cents }),
        3 => (w.clone(), cents.clone(), prop::bool::weighted(0.85))
            .prop_map(|(wallet, cents, owner)| Op::Withdraw { wallet, cents, owner }),
        3 => (w.clone(), w.clone(), cents, prop::bool::weighted(0.85))
            .prop_map(|(from, to, cents, owner)| Op::Transfer { from, to, cents, owner }),
        1 => (w, prop_oneof![Just(StatusAction::Freeze), Just(StatusAction::Unfreeze), Just(StatusAction::Close)], prop::bool::weighted(0.85))
            .prop_map(|(wallet, action, owner)| Op::Status { wallet, action, owner }),
    ]
}

fn sub() -> impl Strategy<Value = Sub> {
    let key = prop_oneof![
        2 => Just(KeyChoice::None),
        3 => Just(KeyChoice::Fresh),
        2 => (0_usize..8).prop_map(KeyChoice::Repeat),
    ];
    let if_match = prop_oneof![
        5 => Just(IfMatchChoice::None),
        1 => Just(IfMatchChoice::Current),
        1 => Just(IfMatchChoice::Stale),
    ];
    (op(), key, if_match).prop_map(|(op, key, if_match)| Sub { op, key, if_match })
}

fn batch() -> impl Strategy<Value = (Vec<Sub>, Fault)> {
    let fault = prop_oneof![
        3 => Just(Fault::None),
        1 => Just(Fault::Lost),
        1 => Just(Fault::Failed),
    ];
    (prop::collection::vec(sub(), 1..7), fault)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    balance: i64,
    status: &'static str,
    version: i64,
}

/// A key's first use as the model remembers it: the request (route and body) and the
/// status stored with it.
#[derive(Debug, Clone)]
struct StoredKey {
    route: String,
    body: serde_json::Value,
    status: u16,
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The route and body the handler would have hashed for `op`.
fn route_and_body(op: &Op, ids: &[WalletId]) -> (String, serde_json::Value) {
    match op {
        Op::Deposit { wallet, cents } => (
            format!("POST /v1/wallets/{}/deposits", ids[*wallet]),
            serde_json::json!({"amount": money(*cents)}),
        ),
        Op::Withdraw { wallet, cents, .. } => (
            format!("POST /v1/wallets/{}/withdrawals", ids[*wallet]),
            serde_json::json!({"amount": money(*cents)}),
        ),
        Op::Transfer {
            from, to, cents, ..
        } => (
            "POST /v1/transfers".to_owned(),
            serde_json::json!({"from_wallet_id": ids[*from], "to_wallet_id": ids[*to], "amount": money(*cents)}),
        ),
        Op::Status { wallet, action, .. } => (
            format!("POST /v1/wallets/{}/{}", ids[*wallet], action.as_str()),
            serde_json::Value::Null,
        ),
    }
}

/// Applies `op` to the model, in the domain's order of checks; the status it answers.
fn expect(op: &Op, if_match: &IfMatchChoice, wallets: &mut [Model]) -> u16 {
    let stale = matches!(if_match, IfMatchChoice::Stale);
    match *op {
        Op::Deposit { wallet, cents } => {
            let w = &mut wallets[wallet];
            if stale {
                return 412;
            }
            if w.status != "active" {
                return 409;
            }
            w.balance += cents;
            w.version += 1;
            201
        }
        Op::Withdraw {
            wallet,
            cents,
            owner,
        } => {
            let w = &mut wallets[wallet];
            if !owner {
                return 404;
            }
            if stale {
                return 412;
            }
            if w.status != "active" {
                return 409;
            }
            if cents > w.balance {
                return 422;
            }
            w.balance -= cents;
            w.version += 1;
            201
        }
        Op::Transfer {
            from,
            to,
            cents,
            owner,
        } => {
            if !owner {
                return 404;
            }
            if wallets[from].status != "active" {
                return 409;
            }
            if cents > wallets[from].balance || from == to {
                return 422;
            }
            if wallets[to].status != "active" {
                return 409;
            }
            wallets[from].balance -= cents;
            wallets[to].balance += cents;
            wallets[from].version += 1;
            wallets[to].version += 1;
            201
        }
        Op::Status {
            wallet,
            action,
            owner,
        } => {
            let w = &mut wallets[wallet];
            if action == StatusAction::Close && !owner {
                return 404;
            }
            if stale {
                return 412;
            }
            let to = match (action, w.status) {
                (StatusAction::Freeze, "active") => "frozen",
                (StatusAction::Unfreeze, "frozen") => "active",
                (StatusAction::Close, "active" | "frozen") if w.balance == 0 => "closed",
                _ => return 409,
            };
            w.status = to;
            w.version += 1;
            200
        }
    }
}

/// Whether a key keeps the answer `status` (the outcome of a request that ran), or is
/// given back (a refusal of the request itself: not found, a changed version).
fn recorded(status: u16) -> bool {
    !matches!(status, 404 | 412)
}

struct World {
    app: TestApp,
    writer: Writer,
}

/// The principal of `subject` at the development issuer the tests trust.
fn caller(subject: String) -> Caller {
    Caller::from(auth::Principal {
        issuer: auth::dev::DevIssuer::ISSUER.to_owned(),
        subject,
        scopes: std::collections::BTreeSet::new(),
    })
}

async fn world() -> World {
    let app = spawn_app().await;
    let writer = Writer::new(
        app.pool.clone(),
        outbox::CommitWaker::disabled(),
        24,
        std::time::Duration::from_secs(2),
    );
    World { app, writer }
}

async fn run_case(world: &World, batches: &[(Vec<Sub>, Fault)]) -> Result<(), TestCaseError> {
    let user = world.app.fixture_user().await;
    let owner = caller(format!("fixture-{user}"));
    let stranger = caller(format!("stranger-{}", Uuid::now_v7()));
    let mut ids = Vec::new();
    let mut models = Vec::new();
    for _ in 0..WALLETS {
        let wallet = world.app.create_wallet_for(user, "USD").await;
        ids.push(
            wallet["id"]
                .as_str()
                .expect("id")
                .parse::<WalletId>()
                .expect("id"),
        );
        models.push(Model {
            balance: 0,
            status: "active",
            version: wallet["version"].as_i64().expect("version"),
        });
    }
    let mut used_keys: Vec<String> = Vec::new();
    let mut stored: HashMap<String, StoredKey> = HashMap::new();
    for (batch, fault) in batches {
        let mut submissions = Vec::new();
        let mut expected = Vec::new();
        // The keys first used in this batch, with what was stored for them (None: given
        // back, or never stored).
        let mut in_batch: HashMap<String, Option<StoredKey>> = HashMap::new();
        for sub in batch {
            let (route, body) = route_and_body(&sub.op, &ids);
            let by_owner = acts_as_owner(&sub.op);
            let if_match = if_match(sub, &models);
            let key = match sub.key {
                KeyChoice::None => None,
                KeyChoice::Fresh => Some(Uuid::now_v7().to_string()),
                KeyChoice::Repeat(i) if used_keys.is_empty() => Some(format!("k{i}")),
                KeyChoice::Repeat(i) => Some(used_keys[i % used_keys.len()].clone()),
            };
            let raw_key = key.clone();
            // Keys are the caller's: the model tells callers apart.
            let scoped = key.as_ref().map(|k| format!("{by_owner}/{k}"));
            let status = match &scoped {
                Some(key) if in_batch.contains_key(key) => match &in_batch[key] {
                    Some(first) if first.route == route && first.body == body => first.status,
                    Some(_) => 422,
                    None => 409,
                },
                Some(key) if stored.contains_key(key) => {
                    let first = &stored[key];
                    let status = if first.route == route && first.body == body {
                        first.status
                    } else {
                        422
                    };
                    in_batch.insert(key.clone(), Some(first.clone()));
                    status
                }
                _ => {
                    let status = expect(&sub.op, &sub.if_match, &mut models);
                    if let Some(key) = &scoped {
                        let kept = recorded(status).then(|| StoredKey {
                            route: route.clone(),
                            body: body.clone(),
                            status,
                        });
                        in_batch.insert(key.clone(), kept);
                    }
                    status
                }
            };
            expected.push(status);
            let who = if by_owner { &owner } else { &stranger };
            let key = key.map(|k| IdempotencyKey::new(who, route, &k).expect("key"));
            submissions.push(submission(who, &sub.op, &ids, body, key, if_match));
            if let Some(key) = raw_key.filter(|k| !used_keys.contains(k)) {
                used_keys.push(key);
            }
        }
        for (key, kept) in in_batch {
            match kept {
                Some(kept) => {
                    stored.entry(key).or_insert(kept);
                }
                None => {
                    stored.remove(&key);
                }
            }
        }
        match fault {
            Fault::None => {}
            Fault::Lost => fail::cfg(COMMIT_LOST, "1*return").expect("failpoint"),
            Fault::Failed => fail::cfg(COMMIT_FAILED, "1*return").expect("failpoint"),
        }
        let answers = world.writer.run(submissions).await;
        fail::remove(COMMIT_LOST);
        fail::remove(COMMIT_FAILED);
        let statuses: Vec<u16> = answers
            .into_iter()
            .map(|answer| match answer {
                Ok(response) => response.status().as_u16(),
                Err(error) => error.problem().0.as_u16(),
            })
            .collect();
        prop_assert_eq!(&statuses, &expected, "batch {:?} with {:?}", batch, fault);
        check_wallets(&world.app, &ids, &models).await?;
    }
    Ok(())
}

/// Whether `op` is sent by the wallets' owner (deposits always are).
fn acts_as_owner(op: &Op) -> bool {
    match *op {
        Op::Deposit { .. } => true,
        Op::Withdraw { owner, .. } | Op::Transfer { owner, .. } | Op::Status { owner, .. } => owner,
    }
}

/// The If-Match `sub` sends, from the model before it: the wallet it acts on as the earlier
/// requests left it (transfers take none).
fn if_match(sub: &Sub, models: &[Model]) -> Option<VersionCondition> {
    let wallet = match sub.op {
        Op::Deposit { wallet, .. } | Op::Withdraw { wallet, .. } | Op::Status { wallet, .. } => {
            wallet
        }
        Op::Transfer { .. } => return None,
    };
    let current = models[wallet].version;
    match sub.if_match {
        IfMatchChoice::None => None,
        IfMatchChoice::Current => Some(VersionCondition::Tags(vec![(current, false)])),
        IfMatchChoice::Stale => Some(VersionCondition::Tags(vec![(current + 1000, false)])),
    }
}

/// The submission of `op` by `caller`.
fn submission(
    caller: &Caller,
    op: &Op,
    ids: &[WalletId],
    body: serde_json::Value,
    key: Option<IdempotencyKey>,
    if_match: Option<VersionCondition>,
) -> Submission {
    let parse = |cents: i64| DecimalAmount::parse(&money(cents)).expect("amount");
    let command = match *op {
        Op::Deposit { wallet, cents } => Command::Deposit {
            wallet: ids[wallet],
            amount: parse(cents),
        },
        Op::Withdraw { wallet, cents, .. } => Command::Withdraw {
            wallet: ids[wallet],
            amount: parse(cents),
        },
        Op::Transfer {
            from, to, cents, ..
        } => Command::Transfer {
            from: ids[from],
            to: ids[to],
            amount: parse(cents),
        },
        Op::Status { wallet, action, .. } => Command::ChangeStatus {
            wallet: ids[wallet],
            action,
        },
    };
    Submission::new(Request {
        command,
        caller: caller.clone(),
        ctx: RequestContext {
            correlation_id: Uuid::now_v7().to_string(),
        },
        key,
        body,
        if_match,
    })
}

async fn check_wallets(
    app: &TestApp,
    ids: &[WalletId],
    models: &[Model],
) -> Result<(), TestCaseError> {
    for (id, model) in ids.iter().zip(models) {
        let (balance, status, version, entries): (i64, String, i64, i64) = sqlx::query_as(
            "SELECT w.balance_minor, w.status, w.version, \
                    COALESCE((SELECT sum(amount_minor) FROM ledger_entries e WHERE e.wallet_id = w.id), 0)::bigint \
             FROM wallets w WHERE w.id = $1",
        )
        .bind(id.as_uuid())
        .fetch_one(&app.pool)
        .await
        .expect("wallet");
        prop_assert_eq!(balance, model.balance, "balance of {}", id);
        prop_assert_eq!(entries, model.balance, "ledger of {}", id);
        prop_assert_eq!(status.as_str(), model.status);
        prop_assert_eq!(version, model.version);
    }
    Ok(())
}

#[test]
fn random_batches_agree_with_the_model_even_when_commit_answers_are_lost_or_commits_fail() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let world = runtime.block_on(world());
    crate::check_property(24, &prop::collection::vec(batch(), 1..8), |batches| {
        runtime.block_on(run_case(&world, &batches))
    });
}

/// Keyless deposits through HTTP whose COMMIT lost its answer after committing, or failed
/// before it: each is credited exactly once and answered 201.
#[tokio::test]
async fn a_keyless_deposit_whose_commit_answer_is_lost_or_whose_commit_failed_is_credited_once() {
    let app = spawn_app().await;
    let wallet = app.create_wallet("USD").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for (failpoint, amount) in [(COMMIT_LOST, "1.00"), (COMMIT_FAILED, "2.00")] {
        fail::cfg(failpoint, "1*return").expect("failpoint");
        let response = app.deposit(&wallet, amount).await;
        assert_eq!(response.status(), 201, "{failpoint}");
        fail::remove(failpoint);
    }
    let (balance, postings): (i64, i64) = sqlx::query_as(
        "SELECT balance_minor, (SELECT count(*) FROM ledger_entries WHERE wallet_id = $1) \
         FROM wallets WHERE id = $1",
    )
    .bind(wallet.parse::<Uuid>().expect("uuid"))
    .fetch_one(&app.pool)
    .await
    .expect("wallet");
    assert_eq!(balance, 300, "each deposit credited once");
    assert_eq!(postings, 2, "one ledger entry per deposit");
}
