//! Model-based property test: random sequences of wallet commands (holds placed, captured
//! in part or whole, and voided among them) run against the real service and database and
//! against an in-memory model; after every step the service must agree with the model
//! (balance, held, available, status), and the ledger must hold its invariants.

use proptest::prelude::*;
use uuid::Uuid;

use wallet_hub_tests::{TestApp, spawn_app};

#[derive(Debug, Clone)]
enum Op {
    Create {
        euro: bool,
    },
    Deposit {
        wallet: usize,
        cents: i64,
    },
    Withdraw {
        wallet: usize,
        cents: i64,
    },
    Transfer {
        from: usize,
        to: usize,
        cents: i64,
    },
    Freeze {
        wallet: usize,
    },
    Unfreeze {
        wallet: usize,
    },
    Close {
        wallet: usize,
    },
    /// A hold of `cents` on a wallet, for ten minutes (no expiry within a case).
    Hold {
        wallet: usize,
        cents: i64,
    },
    /// Capture the n-th hold placed (modulo), all of it or `cents`.
    Capture {
        hold: usize,
        cents: Option<i64>,
    },
    Void {
        hold: usize,
    },
    /// Send the previous request again with its Idempotency-Key.
    Replay,
}

fn op() -> impl Strategy<Value = Op> {
    let cents = 1_i64..3_000;
    prop_oneof![
        1 => any::<bool>().prop_map(|euro| Op::Create { euro }),
        4 => (0_usize..8, cents.clone()).prop_map(|(wallet, cents)| Op::Deposit { wallet, cents }),
        4 => (0_usize..8, cents.clone()).prop_map(|(wallet, cents)| Op::Withdraw { wallet, cents }),
        4 => (0_usize..8, 0_usize..8, cents).prop_map(|(from, to, cents)| Op::Transfer { from, to, cents }),
        1 => (0_usize..8).prop_map(|wallet| Op::Freeze { wallet }),
        1 => (0_usize..8).prop_map(|wallet| Op::Unfreeze { wallet }),
        1 => (0_usize..8).prop_map(|wallet| Op::Close { wallet }),
        3 => (0_usize..8, 1_i64..3_000).prop_map(|(wallet, cents)| Op::Hold { wallet, cents }),
        2 => (0_usize..8, prop::option::of(1_i64..3_000))
            .prop_map(|(hold, cents)| Op::Capture { hold, cents }),
        1 => (0_usize..8).prop_map(|hold| Op::Void { hold }),
        2 => Just(Op::Replay),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    id: String,
    euro: bool,
    balance: i64,
    /// What its pending holds reserve.
    held: i64,
    status: &'static str,
}

/// A hold placed in a case: its id, its wallet (index), amount, and whether it is pending.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelHold {
    id: String,
    wallet: usize,
    cents: i64,
    pending: bool,
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The request an op sends: (path, body); none for a hold op before any hold exists.
fn request(op: &Op, wallets: &[Model], holds: &[ModelHold]) -> Option<(String, serde_json::Value)> {
    let pick = |i: usize| &wallets[i % wallets.len()].id;
    let hold = |i: usize| holds.get(i % holds.len().max(1)).map(|h| &h.id);
    Some(match op {
        Op::Create { .. } | Op::Replay => return None,
        Op::Hold { wallet, cents } => (
            format!("/v1/wallets/{}/holds", pick(*wallet)),
            serde_json::json!({"amount": money(*cents), "expires_in_seconds": 600}),
        ),
        Op::Capture { hold: h, cents } => (
            format!("/v1/holds/{}/capture", hold(*h)?),
            match cents {
                Some(cents) => serde_json::json!({"amount": money(*cents)}),
                None => serde_json::json!({}),
            },
        ),
        Op::Void { hold: h } => (
            format!("/v1/holds/{}/void", hold(*h)?),
            serde_json::Value::Null,
        ),
        Op::Deposit { wallet, cents } => (
            format!("/v1/wallets/{}/deposits", pick(*wallet)),
            serde_json::json!({"amount": money(*cents)}),
        ),
        Op::Withdraw { wallet, cents } => (
            format!("/v1/wallets/{}/withdrawals", pick(*wallet)),
            serde_json::json!({"amount": money(*cents)}),
        ),
        Op::Transfer { from, to, cents } => (
            "/v1/transfers".to_owned(),
            serde_json::json!({"from_wallet_id": pick(*from), "to_wallet_id": pick(*to), "amount": money(*cents)}),
        ),
        Op::Freeze { wallet } => (
            format!("/v1/wallets/{}/freeze", pick(*wallet)),
            serde_json::Value::Null,
        ),
        Op::Unfreeze { wallet } => (
            format!("/v1/wallets/{}/unfreeze", pick(*wallet)),
            serde_json::Value::Null,
        ),
        Op::Close { wallet } => (
            format!("/v1/wallets/{}/close", pick(*wallet)),
            serde_json::Value::Null,
        ),
    })
}

/// Applies `op` to the model and returns the status the service must answer (a hold
/// placed is added to `holds` by the caller, which learns its id from the answer).
fn expect(op: &Op, wallets: &mut [Model], holds: &mut [ModelHold]) -> u16 {
    let n = wallets.len();
    match *op {
        Op::Hold { wallet, cents } => {
            let w = &mut wallets[wallet % n];
            if w.status != "active" {
                return 409;
            }
            if cents > w.balance - w.held {
                return 422;
            }
            w.held += cents;
            201
        }
        Op::Capture { hold, cents } => {
            let count = holds.len();
            let h = &mut holds[hold % count];
            if !h.pending {
                return 409;
            }
            let captured = cents.unwrap_or(h.cents);
            if captured > h.cents {
                return 422;
            }
            let w = &mut wallets[h.wallet];
            if w.status != "active" {
                return 409;
            }
            w.balance -= captured;
            w.held -= h.cents;
            h.pending = false;
            200
        }
        Op::Void { hold } => {
            let count = holds.len();
            let h = &mut holds[hold % count];
            if !h.pending {
                return 409;
            }
            wallets[h.wallet].held -= h.cents;
            h.pending = false;
            200
        }
        Op::Deposit { wallet, cents } => {
            let w = &mut wallets[wallet % n];
            if w.status != "active" {
                return 409;
            }
            w.balance += cents;
            201
        }
        Op::Withdraw { wallet, cents } => {
            let w = &mut wallets[wallet % n];
            if w.status != "active" {
                return 409;
            }
            if cents > w.balance - w.held {
                return 422;
            }
            w.balance -= cents;
            201
        }
        Op::Transfer { from, to, cents } => {
            let (f, t) = (from % n, to % n);
            if f == t {
                return 422;
            }
            // The source is judged first, then the target.
            if wallets[f].status != "active" {
                return 409;
            }
            if cents > wallets[f].balance - wallets[f].held || wallets[f].euro != wallets[t].euro {
                return 422;
            }
            if wallets[t].status != "active" {
                return 409;
            }
            wallets[f].balance -= cents;
            wallets[t].balance += cents;
            201
        }
        Op::Freeze { wallet } => transition(&mut wallets[wallet % n], "active", "frozen"),
        Op::Unfreeze { wallet } => transition(&mut wallets[wallet % n], "frozen", "active"),
        Op::Close { wallet } => {
            let w = &mut wallets[wallet % n];
            if w.status == "closed" {
                return 409;
            }
            // Pending holds, or money left (a pending hold implies money left).
            if w.held != 0 || w.balance != 0 {
                return 409;
            }
            w.status = "closed";
            200
        }
        // Not requests of their own; handled by the caller.
        Op::Create { .. } | Op::Replay => 0,
    }
}

fn transition(w: &mut Model, from: &str, to: &'static str) -> u16 {
    if w.status != from {
        return 409;
    }
    w.status = to;
    200
}

/// The status and body of a POST with `key`.
async fn post(
    app: &TestApp,
    path: &str,
    body: &serde_json::Value,
    key: &str,
) -> (u16, serde_json::Value) {
    let body = (!body.is_null()).then_some(body);
    let response = app
        .request(reqwest::Method::POST, path, body)
        .await
        .header("idempotency-key", key)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

async fn run_case(app: &TestApp, ops: &[Op]) -> Result<(), TestCaseError> {
    let user = app.create_user().await;
    let mut wallets = Vec::new();
    for euro in [false, false] {
        let id = app.create_wallet_for(user, "USD").await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        wallets.push(Model {
            id,
            euro,
            balance: 0,
            held: 0,
            status: "active",
        });
    }
    let mut holds: Vec<ModelHold> = Vec::new();
    let mut last: Option<(String, serde_json::Value, String, u16)> = None;
    for op in ops {
        match op {
            Op::Create { euro } => {
                let currency = if *euro { "EUR" } else { "USD" };
                let id = app.create_wallet_for(user, currency).await["id"]
                    .as_str()
                    .expect("id")
                    .to_owned();
                wallets.push(Model {
                    id,
                    euro: *euro,
                    balance: 0,
                    held: 0,
                    status: "active",
                });
                last = None;
            }
            Op::Replay => {
                if let Some((path, body, key, status)) = &last {
                    let (replayed, _) = post(app, path, body, key).await;
                    prop_assert_eq!(
                        replayed,
                        *status,
                        "replay of {} answers as the first time",
                        path
                    );
                }
            }
            other => {
                let Some((path, body)) = request(other, &wallets, &holds) else {
                    continue;
                };
                let expected = expect(other, &mut wallets, &mut holds);
                let key = Uuid::now_v7().to_string();
                let (status, answer) = post(app, &path, &body, &key).await;
                prop_assert_eq!(status, expected, "{:?} on {:?} {:?}", other, wallets, holds);
                if let (Op::Hold { wallet, cents }, 201) = (other, status) {
                    holds.push(ModelHold {
                        id: answer["id"].as_str().expect("hold id").to_owned(),
                        wallet: wallet % wallets.len(),
                        cents: *cents,
                        pending: true,
                    });
                }
                last = Some((path, body, key, status));
            }
        }
        for w in &wallets {
            let body: serde_json::Value = app
                .get(&format!("/v1/wallets/{}", w.id))
                .await
                .json()
                .await
                .expect("JSON");
            let expected_balance = money(w.balance);
            prop_assert_eq!(body["balance"].as_str(), Some(expected_balance.as_str()));
            let held = money(w.held);
            prop_assert_eq!(body["held"].as_str(), Some(held.as_str()));
            let available = money(w.balance - w.held);
            prop_assert_eq!(body["available"].as_str(), Some(available.as_str()));
            prop_assert_eq!(body["status"].as_str(), Some(w.status));
            let (entries, negative): (i64, bool) = sqlx::query_as(
                "SELECT COALESCE(sum(amount_minor) FILTER (WHERE account = 'balance'), 0)::bigint, \
                        bool_or(balance_after_minor < 0) IS TRUE \
                 FROM ledger_entries WHERE wallet_id = $1::uuid",
            )
            .bind(&w.id)
            .fetch_one(&app.pool)
            .await
            .expect("ledger");
            prop_assert_eq!(entries, w.balance, "balance equals the sum of entries");
            prop_assert!(!negative);
        }
    }
    // Transfers conserve money: wallets hold what came in minus what went out externally.
    let ids: Vec<Uuid> = wallets
        .iter()
        .map(|w| w.id.parse().expect("uuid"))
        .collect();
    let (wallet_total, external_total): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(w.balance_minor), 0)::bigint, \
                COALESCE((SELECT -sum(e.amount_minor) FROM ledger_entries e \
                          JOIN ledger_transactions t ON t.id = e.transaction_id \
                          WHERE e.wallet_id IS NULL AND e.account = 'balance' AND t.id IN ( \
                              SELECT transaction_id FROM ledger_entries WHERE wallet_id = ANY($1))), 0)::bigint \
         FROM wallets w WHERE w.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&app.pool)
    .await
    .expect("totals");
    prop_assert_eq!(wallet_total, external_total);
    Ok(())
}

#[test]
fn random_command_sequences_agree_with_the_model_and_keep_the_ledger_balanced() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(spawn_app());
    crate::check_property(24, &prop::collection::vec(op(), 1..30), |ops| {
        runtime.block_on(run_case(&app, &ops))
    });
}
