//! The BOLA matrix: every operation of the served OpenAPI document, asked by the owner, by
//! another user, without a token and with each forged token, answers as docs/security.md
//! says, and every refusal leaves the database and the outbox as they were.
//!
//! The operations come from `/openapi.json`, so an endpoint added later fails this test
//! until the matrix says what it should answer.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wallet_hub_tests::{TestApp, spawn_app};

use super::snapshot::Snapshot;
use super::tokens::{Forger, Forgery};
use super::world::{Call, Party, Reply, World};

/// An operation of the document: method, path template, whether it takes a body.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: Method,
    pub template: String,
    pub has_body: bool,
}

/// Every operation in the service's `/openapi.json` (which needs no token).
pub async fn documented_operations(app: &TestApp) -> Vec<Operation> {
    let document: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("the OpenAPI document");
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (template, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let method: Method = method.to_uppercase().parse().expect("an HTTP method");
            operations.push(Operation {
                method,
                template: template.clone(),
                has_body: operation.get("requestBody").is_some(),
            });
        }
    }
    assert!(!operations.is_empty(), "the document lists operations");
    operations
}

/// What a principal should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success(u16),
    /// Status and problem type; nothing may change.
    Refused(u16, &'static str),
}

const NOT_FOUND: Expect = Expect::Refused(404, "not-found");
const NO_SCOPE: Expect = Expect::Refused(403, "insufficient-scope");

/// One operation made concrete against the world, with the owner's and the other user's
/// expected answers.
#[derive(Debug)]
struct Case {
    call: Call,
    owner: Expect,
    other: Expect,
    /// `POST /v1/users`: the "owner" is a principal not registered yet (the only one who
    /// can succeed); the other user is already registered.
    newcomer: bool,
}

/// The case of `operation`; None for an operation this matrix does not know yet.
fn case(world: &World, operation: &Operation) -> Option<Case> {
    let ok = Expect::Success;
    let id = if operation.template.starts_with("/v1/users/") {
        world.alice.id.to_string()
    } else if operation.template.ends_with("/void") {
        world.holds[1].clone()
    } else if operation.template.starts_with("/v1/holds/") {
        world.holds[0].clone()
    } else if operation.template.ends_with("/close") {
        world.empty.clone()
    } else {
        world.funded.clone()
    };
    let mut path = operation.template.replace("{id}", &id);
    if operation.template == "/v1/analytics/volume" {
        path.push_str("?currency=USD&from=2026-12-06T10:00:00Z&to=2026-12-06T11:00:00Z");
    }
    if operation.template == "/v1/wallets/{id}/balance" {
        path.push_str("?at=2026-12-06T10:00:00Z");
    }
    if operation.template == "/v1/wallets/{id}/statement" {
        path.push_str("?from=2026-12-06T10:00:00Z&to=2030-01-01T00:00:00Z");
    }
    let amount = json!({"amount": "1.00"});
    let (body, owner, other) = match (operation.method.as_str(), operation.template.as_str()) {
        ("POST", "/v1/users") => {
            let email = format!("{}@example.com", Uuid::now_v7());
            let body = json!({"email": email, "name": "Newcomer"});
            (Some(body), ok(201), Expect::Refused(409, "user-exists"))
        }
        ("GET", "/v1/users/{id}" | "/v1/users/{id}/wallets" | "/v1/users/{id}/notifications")
        | (
            "GET",
            "/v1/wallets/{id}"
            | "/v1/wallets/{id}/transactions"
            | "/v1/wallets/{id}/activity"
            | "/v1/wallets/{id}/balance"
            | "/v1/wallets/{id}/statement"
            | "/v1/wallets/{id}/events",
        ) => (None, ok(200), NOT_FOUND),
        // Whoever opens a wallet owns it: the other user opens its own.
        ("POST", "/v1/wallets") => (
            Some(json!({"name": "Second", "currency": "USD"})),
            ok(201),
            ok(201),
        ),
        ("POST", "/v1/wallets/{id}/deposits") => (Some(amount), NO_SCOPE, NO_SCOPE),
        ("POST", "/v1/wallets/{id}/withdrawals") => (Some(amount), ok(201), NOT_FOUND),
        ("POST", "/v1/wallets/{id}/freeze" | "/v1/wallets/{id}/unfreeze") => {
            (None, NO_SCOPE, NO_SCOPE)
        }
        ("POST", "/v1/wallets/{id}/close") => (None, ok(200), NOT_FOUND),
        // Admin reads (analytics): no user owns them.
        ("GET", "/v1/analytics/volume" | "/v1/risk/alerts") => (None, NO_SCOPE, NO_SCOPE),
        ("POST", "/v1/wallets/{id}/holds") => {
            let body = json!({"amount": "1.00", "expires_in_seconds": 600});
            (Some(body), ok(201), NOT_FOUND)
        }
        ("GET", "/v1/wallets/{id}/holds" | "/v1/holds/{id}") => (None, ok(200), NOT_FOUND),
        // The owner captures or voids its holds (a service with `wallets:capture` too,
        // tests/tests/it/holds.rs); another user is told the hold does not exist.
        ("POST", "/v1/holds/{id}/capture") => (Some(json!({})), ok(200), NOT_FOUND),
        ("POST", "/v1/holds/{id}/void") => (None, ok(200), NOT_FOUND),
        ("POST", "/v1/transfers") => {
            let body = json!({"from_wallet_id": world.funded, "to_wallet_id": world.bobs,
                              "amount": "1.00"});
            (Some(body), ok(201), NOT_FOUND)
        }
        _ => return None,
    };
    let mut call = Call::new(operation.method.clone(), &path);
    if let Some(body) = body {
        call = call.json(body);
    }
    Some(Case {
        call,
        owner,
        other,
        newcomer: operation.method == Method::POST && operation.template == "/v1/users",
    })
}

/// Who asks.
#[derive(Debug, Clone, Copy)]
enum Asker<'w> {
    Party(&'w Party),
    NoToken,
    Forged(Forgery),
}

/// Runs the matrix, collecting every cell that answered wrongly.
struct Matrix<'a> {
    app: &'a TestApp,
    world: &'a World,
    forger: Forger,
    baseline: Snapshot,
    failures: Vec<String>,
}

impl Matrix<'_> {
    async fn ask(&mut self, operation: &Operation, case: &Case, asker: Asker<'_>, expect: Expect) {
        let call = match asker {
            Asker::Party(party) => case.call.clone().bearer(&party.token),
            Asker::NoToken => case.call.clone(),
            Asker::Forged(forgery) => {
                let token = self
                    .forger
                    .forge(self.app, forgery, &self.world.alice.subject);
                case.call.clone().bearer(&token)
            }
        };
        let reply = call.send(self.app).await;
        let after = Snapshot::take(&self.app.pool).await;
        let mut wrong = Vec::new();
        match expect {
            Expect::Success(status) => {
                if reply.status != status {
                    wrong.push(format!("status {} (want {status})", reply.status));
                }
                if let Asker::Party(party) = asker
                    && !owned_by(&reply.body, party.id)
                {
                    wrong.push("answered with what another user owns".to_owned());
                }
            }
            Expect::Refused(status, problem) => {
                if (reply.status, reply.problem()) != (status, problem) {
                    let got = format!("{} {}", reply.status, reply.problem());
                    wrong.push(format!("{got} (want {status} {problem})"));
                }
                wrong.extend(challenge_errors(&reply, asker));
                if after != self.baseline {
                    wrong.push("the database or the outbox changed".to_owned());
                }
            }
        }
        // Compared with the state the request found, so one wrong cell does not taint others.
        self.baseline = after;
        if !wrong.is_empty() {
            let asker = match asker {
                Asker::Party(party) => party.subject.clone(),
                other => format!("{other:?}"),
            };
            self.failures.push(format!(
                "{} {} as {asker}: {} -- got {}",
                operation.method,
                operation.template,
                wrong.join("; "),
                reply.body
            ));
        }
    }
}

/// What the `WWW-Authenticate` challenge of a refusal must say (RFC 6750 section 3).
fn challenge_errors(reply: &Reply, asker: Asker<'_>) -> Option<String> {
    let challenge = reply.challenge();
    let fine = match (asker, reply.status) {
        (Asker::NoToken, _) => {
            challenge.starts_with("Bearer realm=") && !challenge.contains("error=")
        }
        (Asker::Forged(_), _) => {
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\"")
        }
        (Asker::Party(_), 403) => challenge.contains("error=\"insufficient_scope\""),
        (Asker::Party(_), _) => challenge.is_empty(),
    };
    (!fine).then(|| format!("WWW-Authenticate {challenge:?}"))
}

/// Whether every `user_id` in `body` (an object or a list of them) is `user`.
fn owned_by(body: &Value, user: Uuid) -> bool {
    let items = match body {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let user = user.to_string();
    items
        .iter()
        .filter_map(|item| item.get("user_id"))
        .all(|owner| owner.as_str() == Some(user.as_str()))
}

#[tokio::test]
async fn every_operation_refuses_strangers_and_bad_tokens_without_changes_and_serves_its_owner() {
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let operations = documented_operations(&app).await;
    let cases: Vec<(Operation, Case)> = operations
        .iter()
        .map(|operation| {
            let case = case(&world, operation).unwrap_or_else(|| {
                panic!(
                    "the BOLA matrix has no case for {} {}: say what owner and other user get",
                    operation.method, operation.template
                )
            });
            (operation.clone(), case)
        })
        .collect();
    for (operation, case) in &cases {
        assert_eq!(
            operation.has_body,
            case.call.has_body(),
            "{} {}: the case's body matches the document",
            operation.method,
            operation.template
        );
    }
    let mut matrix = Matrix {
        app: &app,
        world: &world,
        forger: Forger::new(&app),
        baseline: Snapshot::take(&app.pool).await,
        failures: Vec::new(),
    };
    for (operation, case) in &cases {
        matrix
            .ask(operation, case, Asker::Party(&world.bob), case.other)
            .await;
        let refused = Expect::Refused(401, "invalid-token");
        matrix.ask(operation, case, Asker::NoToken, refused).await;
        for forgery in Forgery::ALL {
            matrix
                .ask(operation, case, Asker::Forged(forgery), refused)
                .await;
        }
    }
    // The owner last: its successes change the world the refusals were checked against.
    for (operation, case) in &cases {
        let newcomer;
        let owner = if case.newcomer {
            let subject = format!("newcomer-{}", Uuid::now_v7());
            // Not registered yet: its answer is its new user, with no `user_id` to compare.
            newcomer = Party {
                token: app.token(&subject, &[]),
                subject,
                id: Uuid::nil(),
            };
            &newcomer
        } else {
            &world.alice
        };
        matrix
            .ask(operation, case, Asker::Party(owner), case.owner)
            .await;
    }

    assert!(
        matrix.failures.is_empty(),
        "{} of {} cells answered wrongly:\n{}",
        matrix.failures.len(),
        cases.len() * (3 + Forgery::ALL.len()),
        matrix.failures.join("\n")
    );
}
