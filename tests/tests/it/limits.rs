//! Bounded work per request: each limit hit for real, answered as problem+json, and what a
//! refused request must not have changed.
//!
//! A slow request is made the way it happens in production: the test holds a wallet's row
//! lock in a transaction of its own, so the service's deposit waits on it.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wallet_hub_tests::app::RUNTIME_LOGIN;
use wallet_hub_tests::{TestApp, eventually, read_records, spawn_app_with};

/// What a refused request must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    balances: i64,
    ledger_entries: i64,
    outbox: i64,
    idempotency_keys: i64,
}

impl Snapshot {
    async fn take(pool: &PgPool) -> Self {
        let (balances, ledger_entries, outbox, idempotency_keys) = sqlx::query_as(
            "SELECT (SELECT coalesce(sum(balance_minor), 0)::bigint FROM wallets), \
                    (SELECT count(*) FROM ledger_entries), \
                    (SELECT count(*) FROM outbox), \
                    (SELECT count(*) FROM idempotency_keys)",
        )
        .fetch_one(pool)
        .await
        .expect("snapshot");
        Self {
            balances,
            ledger_entries,
            outbox,
            idempotency_keys,
        }
    }
}

/// Locks wallet `id`'s row in a transaction of the test until the transaction ends.
async fn hold_wallet(app: &TestApp, id: &str) -> Transaction<'static, Postgres> {
    let mut tx = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM wallets WHERE id = $1::uuid FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("lock the wallet");
    tx
}

/// Waits until `count` statements of the service wait on a lock.
async fn service_waits_on_locks(app: &TestApp, count: i64) {
    eventually(
        "the service's statements to wait on the held lock",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND usename = $1 AND wait_event_type = 'Lock'",
            )
            .bind(RUNTIME_LOGIN)
            .fetch_one(&app.pool)
            .await
            .expect("pg_stat_activity");
            (waiting >= count).then_some(())
        },
    )
    .await;
}

/// Asserts a problem+json answer with `status` and `type` slug; returns its headers.
async fn problem(
    response: reqwest::Response,
    status: u16,
    slug: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(response.status(), status);
    let headers = response.headers().clone();
    assert_eq!(
        headers[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: Value = response.json().await.expect("problem JSON");
    let type_uri = body["type"].as_str().unwrap_or_default();
    assert!(
        type_uri.starts_with("http://127.0.0.1:")
            && type_uri.ends_with(&format!("/problems/{slug}")),
        "{body}"
    );
    assert_eq!(body["status"], status, "{body}");
    headers
}

fn header<'h>(headers: &'h reqwest::header::HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .expect("ASCII header")
}

fn id(wallet: &Value) -> String {
    wallet["id"].as_str().expect("wallet id").to_owned()
}

#[tokio::test]
async fn connections_that_never_finish_a_request_head_are_closed_while_whole_requests_are_served() {
    let app = spawn_app_with(|s| {
        s.api.header_read_timeout_ms = NonZeroU64::new(1_000).expect("non-zero");
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for i in 0..20 {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        // Half a request: the line and one header, never the blank line that ends the head.
        let half = format!("POST /v1/users HTTP/1.1\r\nHost: wallet-hub\r\nX-Slow-{i}: ");
        stream.write_all(half.as_bytes()).await.expect("send");
        slow.push(stream);
    }
    // A connection that opens and sends nothing at all.
    slow.push(TcpStream::connect(&address).await.expect("connect"));

    let served = app
        .get("/v1/users/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(served.status(), 404, "a whole request is still served");

    // Generous margin over the 1 s timeout: the claim is "closed", not "closed fast".
    for mut stream in slow {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest))
            .await
            .expect("the server closes a connection whose head never completes");
        // Closed (EOF, or reset); whatever it sent first is no answer to a request.
        if let Ok(read) = closed {
            assert!(!String::from_utf8_lossy(&rest[..read]).contains(" 201 "));
        }
    }
    assert_eq!(
        app.get("/v1/users/00000000-0000-0000-0000-000000000000")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_request_running_past_the_request_timeout_gets_503_problem_json_and_changes_nothing() {
    let app = spawn_app_with(|s| {
        s.api.request_timeout_ms = 500;
        // The deposit waits on the lock for as long as the request lives.
        s.database.lock_timeout_ms = 0;
    })
    .await;
    let wallet = id(&app.create_wallet("USD").await);
    let before = Snapshot::take(&app.pool).await;
    let held = hold_wallet(&app, &wallet).await;

    let response = app.deposit(&wallet, "5.00").await;
    problem(response, 503, "request-timeout").await;

    held.rollback().await.expect("release");
    assert_eq!(Snapshot::take(&app.pool).await, before);
    assert_eq!(
        app.deposit(&wallet, "5.00").await.status(),
        201,
        "works once free"
    );
    // The abandoned deposit did not commit later either (with batching it was queued in a
    // batch that reached its commit once the lock was released).
    let balance: i64 = sqlx::query_scalar("SELECT balance_minor FROM wallets WHERE id = $1::uuid")
        .bind(&wallet)
        .fetch_one(&app.pool)
        .await
        .expect("balance");
    assert_eq!(balance, 500, "only the second deposit");
}

/// Makes every COMMIT that inserted a ledger transaction take a second (a deferred trigger,
/// run by the COMMIT itself).
async fn slow_commits(app: &TestApp) {
    for statement in [
        "CREATE FUNCTION test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER test_slow_commit AFTER INSERT ON ledger_transactions \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_slow_commit()",
    ] {
        sqlx::query(statement)
            .execute(&app.pool)
            .await
            .expect("the slow-commit trigger");
    }
}

#[tokio::test]
async fn a_request_whose_commit_outlasts_the_request_timeout_gets_the_commits_answer() {
    let app = spawn_app_with(|s| {
        s.api.request_timeout_ms = 300;
        s.database.statement_timeout_ms = 0;
    })
    .await;
    let wallet = id(&app.create_wallet("USD").await);
    slow_commits(&app).await;

    let plain = app.deposit(&wallet, "5.00").await;
    assert_eq!(plain.status(), 201, "committed, so answered as committed");
    let keyed = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/wallets/{wallet}/deposits"),
            Some(&serde_json::json!({"amount": "2.00"})),
        )
        .await
        .header("Idempotency-Key", "slow-commit-1")
        .send()
        .await
        .expect("request sent");
    assert_eq!(keyed.status(), 201, "committed with its key, so answered");

    let balance: i64 = sqlx::query_scalar("SELECT balance_minor FROM wallets WHERE id = $1::uuid")
        .bind(&wallet)
        .fetch_one(&app.pool)
        .await
        .expect("balance");
    assert_eq!(balance, 700);
}

#[tokio::test]
async fn a_statement_waiting_past_the_lock_timeout_is_cancelled_and_answered_503_changing_nothing()
{
    let app = spawn_app_with(|s| {
        s.database.lock_timeout_ms = 300;
    })
    .await;
    let wallet = id(&app.create_wallet("USD").await);
    let before = Snapshot::take(&app.pool).await;
    let held = hold_wallet(&app, &wallet).await;

    let response = app.deposit(&wallet, "5.00").await;
    problem(response, 503, "service-unavailable").await;

    held.rollback().await.expect("release");
    assert_eq!(Snapshot::take(&app.pool).await, before);
}

#[tokio::test]
async fn a_pg_sleep_beyond_the_statement_timeout_is_cancelled_and_answered_503_changing_nothing() {
    let app = spawn_app_with(|s| {
        s.database.statement_timeout_ms = 300;
    })
    .await;
    let wallet = id(&app.create_wallet("USD").await);
    // A slow statement inside the deposit: a trigger (installed by the owner, for this
    // test's database only) sleeps before each ledger entry is written.
    sqlx::raw_sql(
        "CREATE FUNCTION slow_entry() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$; \
         CREATE TRIGGER slow_entry BEFORE INSERT ON ledger_entries \
             FOR EACH ROW EXECUTE FUNCTION slow_entry();",
    )
    .execute(&app.pool)
    .await
    .expect("slow trigger");
    let before = Snapshot::take(&app.pool).await;

    let response = app.deposit(&wallet, "5.00").await;
    problem(response, 503, "service-unavailable").await;

    assert_eq!(Snapshot::take(&app.pool).await, before);
}

#[tokio::test]
async fn writes_beyond_the_concurrency_limit_get_503_at_once_and_change_nothing_while_reads_go_on()
{
    let app = spawn_app_with(|s| {
        s.api.write_concurrency_limit = NonZeroUsize::new(1).expect("non-zero");
        s.api.overload_retry_after_ms = 1500;
        s.database.lock_timeout_ms = 0;
        s.database.statement_timeout_ms = 0;
        s.api.request_timeout_ms = 120_000;
    })
    .await;
    let slow_wallet = id(&app.create_wallet("USD").await);
    let other = id(&app.create_wallet("USD").await);
    let held = hold_wallet(&app, &slow_wallet).await;
    // The one write slot: a deposit that waits on the held lock.
    let slow = {
        let request = app
            .request(
                reqwest::Method::POST,
                &format!("/v1/wallets/{slow_wallet}/deposits"),
                Some(&serde_json::json!({"amount": "1.00"})),
            )
            .await;
        tokio::spawn(request.send())
    };
    service_waits_on_locks(&app, 1).await;
    let before = Snapshot::take(&app.pool).await;

    for _ in 0..3 {
        let headers = problem(app.deposit(&other, "2.00").await, 503, "overloaded").await;
        assert_eq!(header(&headers, "retry-after"), "2", "1500 ms, rounded up");
        assert_eq!(header(&headers, "retry-after-ms"), "1500");
    }
    let read = app.get(&format!("/v1/wallets/{other}")).await;
    assert_eq!(read.status(), 200, "reads are not shed");
    assert_eq!(
        Snapshot::take(&app.pool).await,
        before,
        "refused writes changed nothing"
    );

    held.rollback().await.expect("release");
    let slow = slow.await.expect("joined").expect("answered");
    assert_eq!(slow.status(), 201, "the write that held the slot completes");
    assert_eq!(
        app.deposit(&other, "2.00").await.status(),
        201,
        "a slot is free again"
    );
    let balance: i64 = sqlx::query_scalar("SELECT balance_minor FROM wallets WHERE id = $1::uuid")
        .bind(&other)
        .fetch_one(&app.pool)
        .await
        .expect("balance");
    assert_eq!(balance, 200, "only the accepted deposit counts");
}

#[tokio::test]
async fn withdrawals_and_transfers_past_the_principals_rate_get_429_and_change_nothing() {
    let app = spawn_app_with(|s| {
        s.api.money_out_rate_limit_per_second = 1;
        s.api.money_out_rate_limit_burst = NonZeroU32::new(2).expect("non-zero");
    })
    .await;
    let user = app.create_user().await;
    let a = id(&app.create_wallet_for(user, "USD").await);
    let b = id(&app.create_wallet_for(user, "USD").await);
    for _ in 0..3 {
        // The operator's deposits are not money out: no limit here.
        assert_eq!(app.deposit(&a, "10.00").await.status(), 201);
    }
    assert_eq!(app.withdraw(&a, "1.00").await.status(), 201);
    assert_eq!(app.transfer(&a, &b, "1.00").await.status(), 201);
    let before = Snapshot::take(&app.pool).await;

    let headers = problem(app.withdraw(&a, "1.00").await, 429, "rate-limited").await;
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        "\"money-out\";q=2;w=2"
    );
    assert!(
        header(&headers, "ratelimit").starts_with("\"money-out\";r=0;t="),
        "{headers:?}"
    );
    let seconds: u64 = header(&headers, "retry-after").parse().expect("seconds");
    assert!((1..=2).contains(&seconds), "{seconds}");
    let millis: u64 = header(&headers, "retry-after-ms").parse().expect("ms");
    assert!((1..=2000).contains(&millis), "{millis}");
    problem(app.transfer(&a, &b, "1.00").await, 429, "rate-limited").await;
    assert_eq!(
        Snapshot::take(&app.pool).await,
        before,
        "refused requests changed nothing"
    );

    // The budget is the principal's: another user's withdrawal goes through.
    let other = id(&app.create_wallet("USD").await);
    assert_eq!(app.deposit(&other, "5.00").await.status(), 201);
    assert_eq!(app.withdraw(&other, "1.00").await.status(), 201);
}

#[tokio::test]
async fn any_request_past_the_principals_default_rate_gets_429() {
    let app = spawn_app_with(|s| {
        s.api.rate_limit_per_second = 1;
        s.api.rate_limit_burst = NonZeroU32::new(3).expect("non-zero");
    })
    .await;
    let token = app.token("rate-limited-reader", &[]);
    let path = app.url("/v1/users/00000000-0000-0000-0000-000000000000");
    let get = || app.client.get(&path).bearer_auth(&token).send();
    for _ in 0..3 {
        assert_eq!(get().await.expect("sent").status(), 404);
    }
    let headers = problem(get().await.expect("sent"), 429, "rate-limited").await;
    assert_eq!(header(&headers, "ratelimit-policy"), "\"default\";q=3;w=3");
    // Another principal has its own budget.
    let fresh = app.token("another-reader", &[]);
    let response = app.client.get(&path).bearer_auth(fresh).send().await;
    assert_eq!(response.expect("sent").status(), 404);
}

#[tokio::test]
async fn an_exhausted_api_pool_does_not_stop_the_relay_from_publishing() {
    let app = spawn_app_with(|s| {
        s.database.api_max_connections = 2;
        s.database.acquire_timeout_ms = 500;
        // The stuck requests wait for as long as the test needs to read from Kafka.
        s.database.lock_timeout_ms = 0;
        s.database.statement_timeout_ms = 0;
        s.api.request_timeout_ms = 120_000;
    })
    .await;
    let wallet = id(&app.create_wallet("USD").await);
    let held = hold_wallet(&app, &wallet).await;
    // Both API connections wait on the held lock.
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let request = app
            .request(
                reqwest::Method::POST,
                &format!("/v1/wallets/{wallet}/deposits"),
                Some(&serde_json::json!({"amount": "1.00"})),
            )
            .await;
        stuck.push(tokio::spawn(request.send()));
    }
    service_waits_on_locks(&app, 2).await;
    let other = app.fixture_user().await;
    let refused = app
        .post_json(
            "/v1/wallets",
            &serde_json::json!({"user_id": other, "name": "Main", "currency": "USD"}),
        )
        .await;
    problem(refused, 503, "service-unavailable").await;

    // An event committed meanwhile (as another instance's API would) is published.
    let event = wallet_hub_tests::deposit_event(uuid::Uuid::now_v7(), 700);
    let mut tx = app.pool.begin().await.expect("begin");
    outbox::publish(&mut tx, &event, &telemetry::TraceHeaders::default(), None)
        .await
        .expect("outbox row");
    tx.commit().await.expect("commit");
    let expected = event.metadata().event_id.as_uuid().to_string();
    let brokers = app.settings.kafka.brokers.clone();
    let topic = app.topics.funds_added.clone();
    let records = read_records(&brokers, &topic, 1).await;
    let id_header = wallet_hub_tests::header(&records[0], "ce_id").expect("ce_id header");
    assert_eq!(id_header, expected);

    held.rollback().await.expect("release");
    for request in stuck {
        let response = request.await.expect("joined").expect("answered");
        assert_eq!(response.status(), 201);
    }
}
