//! `wallet-hub audit` against a real service's database and topics: clean after real
//! traffic, then each kind of corruption is reported by its own check, and by nothing else.

use std::collections::BTreeSet;
use std::process::Command;

use chrono::Utc;
use domain::EventType;
use kafka::EventProducer;
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use uuid::Uuid;
use wallet_hub::Settings;
use wallet_hub::audit::{self, AuditError, AuditOptions, AuditReport};
use wallet_hub_client::PlaceHold;
use wallet_hub_tests::binary::service_binary;
use wallet_hub_tests::{TestApp, eventually, spawn_app};

fn options() -> AuditOptions {
    AuditOptions {
        settle_seconds: 0,
        ..AuditOptions::default()
    }
}

async fn audit(settings: &Settings) -> AuditReport {
    audit::run(settings, &options()).await.expect("audit runs")
}

fn checks(report: &AuditReport) -> BTreeSet<&'static str> {
    report.findings.iter().map(|f| f.check).collect()
}

/// Two users' money traffic through the API (deposits, withdrawals, transfers, a hold
/// captured into another wallet and one pending), then waits until the relay published
/// everything and both consumers applied it. Returns the wallets, and the captured and the
/// pending hold.
async fn settled_traffic(app: &TestApp) -> (Vec<String>, [Uuid; 2]) {
    let (_, a, b) = app.money_scenario().await;
    let (_, c, d) = app.money_scenario().await;
    assert_eq!(app.deposit(&b, "3.00").await.status(), 201);
    assert_eq!(app.transfer(&c, &a, "0.50").await.status(), 201);
    let holds = hold_traffic(app, &b, &a).await;
    eventually("the relay to publish everything", || async {
        (app.queued_rows().await == 0).then_some(())
    })
    .await;
    eventually("the consumers to apply everything", || async {
        let caught_up: bool = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM ledger_entries \
                     WHERE wallet_id IS NOT NULL AND account = 'balance') \
                  = (SELECT COALESCE(sum(events_applied), 0) FROM wallet_activity) \
                AND (SELECT count(*) FROM wallets) = (SELECT count(*) FROM notifications)",
        )
        .fetch_one(&app.pool)
        .await
        .expect("progress query");
        caught_up.then_some(())
    })
    .await;
    (vec![a, b, c, d], holds)
}

/// On `wallet`: a hold of 1.00 captured (0.40 of it) into `to`, and one of 0.50 left
/// pending. Their ids.
async fn hold_traffic(app: &TestApp, wallet: &str, to: &str) -> [Uuid; 2] {
    let captured = app.captured_hold_into(wallet, to).await;
    let owner = app.as_owner(wallet.parse().expect("wallet id")).await;
    let wallet = wallet.parse().expect("wallet id");
    let pending = owner
        .place_hold(wallet, &PlaceHold::new("0.50", 3600), None)
        .await
        .expect("placed")
        .body
        .id;
    [captured.as_uuid(), pending.as_uuid()]
}

/// A connection pool of the test's database that outlives the service, as the owner of
/// the tables (the service's runtime role may not turn triggers off).
async fn own_pool(settings: &Settings) -> PgPool {
    PgPool::connect(settings.database.migrate_url.expose_secret())
        .await
        .expect("test database")
}

/// Runs `statements` in one transaction with triggers (and so the ledger's checks) off.
async fn behind_the_triggers(pool: &PgPool, statements: &[&'static str], id: Uuid) {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("triggers off (the test user is a superuser)");
    for statement in statements {
        sqlx::query(*statement)
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    tx.commit().await.expect("commit");
}

/// An outbox row of `key` that the relay has published, as far as the table says: written
/// and no longer queued. Returns its id and event id.
async fn published_row(pool: &PgPool, key: Uuid) -> (i64, Uuid) {
    let event_id = Uuid::now_v7();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at) \
         VALUES ($1, $2, $3, '{}', now()) RETURNING id",
    )
    .bind(event_id)
    .bind(EventType::WalletStatusChanged.as_str())
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("outbox row");
    sqlx::query("DELETE FROM outbox_pending WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .expect("dequeued");
    (id, event_id)
}

/// Publishes the CloudEvent of `event_id` to `topic` under `key`, as the relay would.
async fn publish(producer: &EventProducer, topic: &str, key: Uuid, event_id: Uuid) {
    let event = event_bindings::encode(
        event_bindings::OutgoingEvent {
            event_id,
            event_type: EventType::WalletStatusChanged,
            aggregate_id: key,
            occurred_at: Utc::now(),
            payload: "{}",
            traceparent: None,
            tracestate: None,
            sequence: None,
        },
        &url::Url::parse("http://127.0.0.1/schemas/io.wallethub.wallet.status-changed.v1.json")
            .expect("an absolute URL"),
    )
    .expect("encodes");
    producer
        .send(
            topic,
            &key.to_string(),
            event,
            &telemetry::TraceHeaders::default(),
        )
        .expect("enqueued")
        .await
        .expect("delivered");
}

#[tokio::test]
async fn a_clean_run_after_real_traffic_reports_clean_and_counts_what_it_read() {
    let app = spawn_app().await;
    let start = Utc::now();
    let (wallets, _) = settled_traffic(&app).await;
    let outbox_rows = app.outbox_rows().await;

    let report = audit(&app.settings).await;
    assert!(report.is_clean(), "{report}");
    let checked = report.checked;
    assert_eq!(checked.wallets, 4);
    assert_eq!(
        checked.ledger_transactions, 11,
        "2 x 3 movements, a deposit, a transfer, two holds, a capture"
    );
    assert_eq!(
        checked.outbox_events,
        u64::try_from(outbox_rows).expect("count")
    );
    assert_eq!(checked.published_events, checked.outbox_events);
    assert!(
        checked.kafka_records >= checked.published_events,
        "{report}"
    );
    assert_eq!((checked.queued, checked.parked), (0, 0));
    assert_eq!(checked.activity_wallets, 4);
    assert_eq!(checked.notifications, 4);
    assert!(report.to_string().starts_with("audit: clean\n"), "{report}");

    // Younger than the settle time: not expected on Kafka or in the projection yet.
    let waiting = audit::run(
        &app.settings,
        &AuditOptions {
            settle_seconds: 3600,
            ..AuditOptions::default()
        },
    )
    .await
    .expect("audit runs");
    assert!(waiting.is_clean(), "{waiting}");
    assert_eq!(waiting.checked.published_events, 0);

    // A window that starts after the traffic looks at none of it.
    let later = audit::run(
        &app.settings,
        &AuditOptions {
            since: Some(Utc::now()),
            ..options()
        },
    )
    .await
    .expect("audit runs");
    assert!(later.is_clean(), "{later}");
    assert_eq!(later.checked.ledger_transactions, 0);
    assert_eq!(later.checked.published_events, 0);

    // A window that starts before it reads the topics from that time on: all of it.
    let window = audit::run(
        &app.settings,
        &AuditOptions {
            since: Some(start),
            ..options()
        },
    )
    .await
    .expect("audit runs");
    assert!(window.is_clean(), "{window}");
    assert_eq!(window.checked.published_events, checked.published_events);
    assert_eq!(window.checked.kafka_records, checked.kafka_records);

    let database_only = audit::run(
        &app.settings,
        &AuditOptions {
            kafka: false,
            ..options()
        },
    )
    .await
    .expect("audit runs");
    assert!(database_only.is_clean(), "{database_only}");
    assert_eq!(database_only.checked.kafka_records, 0);
    assert_eq!(wallets.len(), 4);
}

#[tokio::test]
async fn each_corruption_is_reported_by_its_own_check_and_by_no_other() {
    let app = spawn_app().await;
    let (wallets, [captured, pending]) = settled_traffic(&app).await;
    let settings = app.settings.clone();
    let topics = app.topics.clone();
    app.stop().await.expect("service stops");
    let pool = own_pool(&settings).await;
    let wallet = |i: usize| -> Uuid { wallets[i].parse().expect("wallet id") };
    let mut expected = BTreeSet::new();
    let report = audit(&settings).await;
    assert!(report.is_clean(), "{report}");

    // A balance changed behind the ledger's back.
    behind_the_triggers(
        &pool,
        &["UPDATE wallets SET balance_minor = balance_minor + 1 WHERE id = $1"],
        wallet(0),
    )
    .await;
    // The row is no longer the fold of its stream either: the pair of checks sees it.
    expected.extend(["balance_matches_ledger", "wallet_matches_stream"]);
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    for check in ["balance_matches_ledger", "wallet_matches_stream"] {
        assert_eq!(report.of(check).len(), 1, "{report}");
        assert!(report.of(check)[0].detail.contains(&wallets[0]), "{report}");
    }
    assert!(
        report.of("wallet_matches_stream")[0]
            .detail
            .ends_with("in balance"),
        "{report}"
    );

    // A version ahead of the stream (the deferred trigger refuses it; here it is off).
    behind_the_triggers(
        &pool,
        &["UPDATE wallets SET version = version + 5 WHERE id = $1"],
        wallet(3),
    )
    .await;
    expected.insert("version_is_last_sequence");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert!(
        report.of("version_is_last_sequence")[0]
            .detail
            .contains(&wallets[3]),
        "{report}"
    );
    assert_eq!(report.of("wallet_matches_stream").len(), 2, "{report}");

    // A pending hold closed without its ledger release: the held amount disagrees.
    behind_the_triggers(
        &pool,
        &["UPDATE holds SET status = 'voided', closed_at = now() WHERE id = $1"],
        pending,
    )
    .await;
    expected.insert("held_matches_holds");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert!(
        report.of("held_matches_holds")[0]
            .detail
            .contains(&wallets[1]),
        "{report}"
    );

    // A pending hold that reserves more than the balance.
    behind_the_triggers(
        &pool,
        &[
            "UPDATE holds SET status = 'pending', closed_at = NULL, amount_minor = 1000000 \
           WHERE id = $1",
        ],
        pending,
    )
    .await;
    expected.insert("available_not_negative");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert!(
        report.of("available_not_negative")[0]
            .detail
            .contains(&wallets[1]),
        "{report}"
    );

    // A capture recorded as more than its ledger transaction moved.
    behind_the_triggers(
        &pool,
        &["UPDATE holds SET captured_minor = captured_minor + 1 WHERE id = $1"],
        captured,
    )
    .await;
    expected.insert("capture_within_hold");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert!(
        report.of("capture_within_hold")[0]
            .detail
            .contains(&captured.to_string()),
        "{report}"
    );

    // A running balance that does not continue: the wallet's first entry is edited.
    sqlx::query(
        "UPDATE ledger_entries SET balance_after_minor = balance_after_minor + 7 \
         WHERE id = (SELECT min(id) FROM ledger_entries WHERE wallet_id = $1)",
    )
    .bind(wallet(1))
    .execute(&pool)
    .await
    .expect("entry edited");
    expected.insert("running_balance_continues");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert_eq!(
        report.of("running_balance_continues").len(),
        2,
        "the edited entry and the one after it: {report}"
    );

    // A ledger transaction with a single entry (and so without its event either).
    let lonely = Uuid::now_v7();
    behind_the_triggers(
        &pool,
        &[
            "INSERT INTO ledger_transactions (id, kind, currency, amount_minor, correlation_id, created_at) \
             VALUES ($1, 'deposit', 'USD', 100, 'audit-test', now())",
            "INSERT INTO ledger_entries (transaction_id, wallet_id, currency, amount_minor, balance_after_minor, created_at) \
             VALUES ($1, NULL, 'USD', -100, NULL, now())",
        ],
        lonely,
    )
    .await;
    expected.extend(["transaction_balanced", "transaction_has_one_event"]);
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    for check in ["transaction_balanced", "transaction_has_one_event"] {
        let found = report.of(check);
        assert_eq!(found.len(), 1, "{report}");
        assert!(found[0].detail.contains(&lonely.to_string()), "{report}");
    }

    // A money event that names a transaction that does not exist.
    let ghost = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at) \
         VALUES ($1, 'FundsAdded', $2, jsonb_build_object('transaction_id', $1::text), now())",
    )
    .bind(ghost)
    .bind(wallet(2))
    .execute(&pool)
    .await
    .expect("outbox row");
    // Queued, not published: the relay is not running, so no Kafka finding either.
    expected.insert("event_has_transaction");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert!(
        report.of("event_has_transaction")[0]
            .detail
            .contains(&ghost.to_string()),
        "{report}"
    );
    assert_eq!(report.checked.queued, 1);

    // The queued row parks.
    sqlx::query(
        "UPDATE outbox_pending SET parked_at = now(), attempts = 10, last_error = 'MessageTimedOut'",
    )
    .execute(&pool)
    .await
    .expect("parked");
    expected.insert("parked");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert!(
        report.of("parked")[0].detail.contains("MessageTimedOut"),
        "{report}"
    );
    assert_eq!((report.checked.queued, report.checked.parked), (1, 1));

    // An event the outbox says was published that is not on its topic; one published under
    // a wrong key; and two of one key that reached the topic in the wrong order (plus a
    // re-send of the first, which is a duplicate, not a finding).
    let producer = EventProducer::new(&settings.kafka).expect("producer");
    let (missing, _) = published_row(&pool, wallet(3)).await;
    let (_, wrong_key) = published_row(&pool, wallet(3)).await;
    publish(&producer, &topics.wallet_status, Uuid::now_v7(), wrong_key).await;
    let (first, first_event) = published_row(&pool, wallet(0)).await;
    let (second, second_event) = published_row(&pool, wallet(0)).await;
    publish(&producer, &topics.wallet_status, wallet(0), second_event).await;
    publish(&producer, &topics.wallet_status, wallet(0), first_event).await;
    publish(&producer, &topics.wallet_status, wallet(0), first_event).await;
    expected.extend([
        "event_on_topic",
        "event_keyed_by_aggregate",
        "per_key_order",
    ]);
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert_eq!(report.of("event_on_topic").len(), 1, "{report}");
    assert!(
        report.of("event_on_topic")[0]
            .detail
            .starts_with(&format!("outbox event {missing} ")),
        "{report}"
    );
    assert!(
        report.of("event_keyed_by_aggregate")[0]
            .detail
            .contains(&wrong_key.to_string()),
        "{report}"
    );
    let order = report.of("per_key_order");
    assert_eq!(order.len(), 1, "{report}");
    assert!(
        order[0].detail.contains(&format!("outbox event {second} "))
            && order[0].detail.contains(&format!("earlier event {first} ")),
        "{report}"
    );
    assert_eq!(report.checked.kafka_duplicates, 1, "{report}");

    // The projection's totals bumped.
    sqlx::query(
        "UPDATE wallet_activity SET total_in_minor = total_in_minor + 100 WHERE wallet_id = $1",
    )
    .bind(wallet(1))
    .execute(&pool)
    .await
    .expect("bumped");
    // And another wallet's row lost: its movements were never applied, as far as it shows.
    sqlx::query("DELETE FROM wallet_activity WHERE wallet_id = $1")
        .bind(wallet(3))
        .execute(&pool)
        .await
        .expect("row deleted");
    expected.insert("activity_matches_ledger");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    let activity = report.of("activity_matches_ledger");
    assert_eq!(activity.len(), 2, "{report}");
    assert!(
        activity
            .iter()
            .any(|f| f.detail.contains(&wallets[1]) && f.detail.contains("activity in")),
        "{report}"
    );
    assert!(
        activity
            .iter()
            .any(|f| f.detail.contains(&wallets[3]) && f.detail.contains("no activity row")),
        "{report}"
    );

    // An inbox row lost: the projection applied an event its inbox does not remember (a
    // redelivery would apply it again).
    sqlx::query(
        "DELETE FROM inbox WHERE consumer = 'wallet-activity' AND event_id = ( \
             SELECT event_id::text FROM outbox WHERE event_type = 'FundsAdded' \
             AND payload->>'wallet_id' = $1::text ORDER BY id LIMIT 1)",
    )
    .bind(wallet(2))
    .execute(&pool)
    .await
    .expect("inbox row deleted");
    expected.insert("activity_applied_once");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert!(
        report.of("activity_applied_once")[0]
            .detail
            .contains(&wallets[2]),
        "{report}"
    );

    // A second welcome, once the unique index is gone.
    sqlx::query("DROP INDEX notifications_one_per_wallet_and_kind")
        .execute(&pool)
        .await
        .expect("constraint dropped");
    sqlx::query(
        "INSERT INTO notifications (id, user_id, wallet_id, kind, message, event_id) \
         SELECT $1, user_id, wallet_id, kind, message, event_id FROM notifications \
         WHERE wallet_id = (SELECT id FROM wallets ORDER BY id LIMIT 1)",
    )
    .bind(Uuid::now_v7())
    .execute(&pool)
    .await
    .expect("duplicate welcome");
    expected.insert("notification_sent_once");
    let report = audit(&settings).await;
    assert_eq!(checks(&report), expected, "{report}");
    assert_eq!(
        expected.len(),
        audit::CHECKS.len(),
        "every check has been made to fire"
    );

    // An outbox row lost (trimmed ahead of its time): its transaction has no event.
    let deleted: Uuid = sqlx::query_scalar(
        "DELETE FROM outbox WHERE id = (SELECT min(id) FROM outbox WHERE event_type = 'FundsWithdrawn') \
         RETURNING (payload->>'transaction_id')::uuid",
    )
    .fetch_one(&pool)
    .await
    .expect("outbox row deleted");
    let report = audit(&settings).await;
    assert!(
        report
            .of("transaction_has_one_event")
            .iter()
            .any(|f| f.detail.contains(&deleted.to_string()) && f.detail.contains("has 0")),
        "{report}"
    );

    cli_exits(&settings, 1);
}

#[tokio::test]
async fn the_command_exits_0_when_clean_and_2_when_it_cannot_run() {
    let app = spawn_app().await;
    let _ = settled_traffic(&app).await;
    cli_exits(&app.settings, 0);
    let mut unreachable = app.settings.clone();
    unreachable.database.url = "postgres://nobody@127.0.0.1:1/none".to_owned().into();
    assert!(matches!(
        audit::run(&unreachable, &options()).await,
        Err(AuditError::Connect(_))
    ));
    cli_exits(&unreachable, 2);
}

/// Runs `wallet-hub audit --settle-seconds 0` against `settings`'s database and topics and
/// checks its exit code (and, for 0 and 1, that stdout holds the report).
fn cli_exits(settings: &Settings, code: i32) {
    let mut command = Command::new(service_binary());
    command
        .args(["audit", "--settle-seconds", "0"])
        .env("DATABASE_URL", settings.database.url.expose_secret())
        .env("KAFKA_BROKERS", &settings.kafka.brokers);
    for (binding, topic) in &settings.bindings {
        command.env(
            format!("WALLET_HUB__BINDINGS__{}", binding.to_uppercase()),
            topic,
        );
    }
    let output = command.output().expect("wallet-hub runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    match code {
        0 => assert!(stdout.starts_with("audit: clean\n"), "{stdout}"),
        1 => assert!(stdout.contains("finding(s)\n["), "{stdout}"),
        _ => assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}"),
    }
}
