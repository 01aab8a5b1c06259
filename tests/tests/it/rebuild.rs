//! The wallets' streams as the truth, from the operator's side: `wallet-hub rebuild`
//! rewrites rows and activity that drifted from their streams (and nothing else, even
//! beside live deposits), the audit sees a drifted row until then, and `outbox replay
//! --from-stream` puts a wallet's events on Kafka again with their ids and sequences.

use std::process::{Command, Output};

use domain::WalletId;
use rdkafka::Message as _;
use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use uuid::Uuid;
use wallet_hub::Settings;
use wallet_hub::audit::{self, AuditOptions};
use wallet_hub::rebuild::{self, Outcome, RebuildOptions, RebuildReport};
use wallet_hub::stream_replay::{self, StreamSelection};
use wallet_hub_client::Amount;
use wallet_hub_tests::binary::service_binary;
use wallet_hub_tests::{
    TestApp, Topics, create_topics, eventually, header, read_records, spawn_app,
};

/// Waits until the relay published everything and the activity consumer applied every
/// ledger movement.
async fn settled(app: &TestApp) {
    eventually("the relay to publish everything", || async {
        (app.queued_rows().await == 0).then_some(())
    })
    .await;
    eventually("the activity consumer to apply everything", || async {
        let caught_up: bool = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM ledger_entries \
                     WHERE wallet_id IS NOT NULL AND account = 'balance') \
                  = (SELECT COALESCE(sum(events_applied), 0) FROM wallet_activity)",
        )
        .fetch_one(&app.pool)
        .await
        .expect("progress query");
        caught_up.then_some(())
    })
    .await;
}

async fn rebuild_all(pool: &PgPool, batch: i64) -> RebuildReport {
    let options = RebuildOptions {
        wallet: None,
        batch,
    };
    rebuild::run(pool, &options, |_| {})
        .await
        .expect("rebuild runs")
}

async fn audit_report(settings: &Settings) -> audit::AuditReport {
    let options = AuditOptions {
        settle_seconds: 0,
        kafka: false,
        ..AuditOptions::default()
    };
    audit::run(settings, &options).await.expect("audit runs")
}

/// Runs the `wallet-hub` binary with `args` against `settings`'s database and topics.
fn cli(settings: &Settings, args: &[&str]) -> Output {
    let mut command = Command::new(service_binary());
    command
        .args(args)
        .env("DATABASE_URL", settings.database.url.expose_secret())
        .env("KAFKA_BROKERS", &settings.kafka.brokers);
    for (binding, topic) in &settings.bindings {
        command.env(
            format!("WALLET_HUB__BINDINGS__{}", binding.to_uppercase()),
            topic,
        );
    }
    command.output().expect("wallet-hub runs")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Name, status, balance, held and version as the row stores them.
async fn row(pool: &PgPool, wallet: Uuid) -> (String, String, i64, i64, i64) {
    sqlx::query_as(
        "SELECT name, status, balance_minor, held_minor, version FROM wallets WHERE id = $1",
    )
    .bind(wallet)
    .fetch_one(pool)
    .await
    .expect("wallet row")
}

#[tokio::test]
async fn rebuild_of_a_healthy_database_checks_every_wallet_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, a, b) = app.money_scenario().await;
    let (_, c, _) = app.money_scenario().await;
    assert_eq!(app.transfer(&c, &a, "0.50").await.status(), 201);
    // A capture into another wallet: the activity consumer counts both sides from the
    // HoldCaptured; the receiver's stream has a FundsReceived.
    app.captured_hold_into(&b, &c).await;
    settled(&app).await;
    let before: Vec<(Uuid, i64, i64)> =
        sqlx::query_as("SELECT id, balance_minor, version FROM wallets ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .expect("rows");

    // Batches of one: every wallet is reached through the paging.
    let report = rebuild_all(&app.pool, 1).await;
    assert_eq!(report.wallets_checked, 4, "{report}");
    assert!(report.lines.is_empty(), "{report}");
    assert_eq!(
        (report.rows_fixed, report.activity_fixed, report.failed),
        (0, 0, 0)
    );
    assert!(report.is_complete());

    let output = cli(&app.settings, &["rebuild", "--all"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.trim_end(),
        "rebuild: 4 wallets checked, 0 rows fixed, 0 activity rows fixed, 0 failed"
    );
    assert!(stderr.contains("rebuild: 4 wallets checked"), "{stderr}");
    let after: Vec<(Uuid, i64, i64)> =
        sqlx::query_as("SELECT id, balance_minor, version FROM wallets ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .expect("rows");
    assert_eq!(before, after);
    assert!(audit_report(&app.settings).await.is_clean());
    assert_ne!(a, b);
}

#[tokio::test]
async fn a_corrupted_row_is_found_by_the_audit_restored_by_rebuild_and_reported() {
    let app = spawn_app().await;
    let (_, a, b) = app.money_scenario().await;
    settled(&app).await;
    let wallet: Uuid = a.parse().expect("wallet id");
    let healthy = row(&app.pool, wallet).await;
    // Edited behind the service's back, as the owner (balance is guarded by triggers).
    sqlx::query("UPDATE wallets SET status = 'frozen', name = 'Tampered' WHERE id = $1")
        .bind(wallet)
        .execute(&app.pool)
        .await
        .expect("row edited");
    // And the activity of the other wallet drifts.
    sqlx::query(
        "UPDATE wallet_activity SET total_in_minor = total_in_minor + 7 WHERE wallet_id = $1",
    )
    .bind(b.parse::<Uuid>().expect("wallet id"))
    .execute(&app.pool)
    .await
    .expect("activity edited");

    let report = audit_report(&app.settings).await;
    let found = report.of("wallet_matches_stream");
    assert_eq!(found.len(), 1, "{report}");
    assert!(found[0].detail.contains(&a), "{report}");
    assert!(found[0].detail.ends_with("in name, status"), "{report}");

    let output = cli(&app.settings, &["rebuild", "--wallet", &a]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "[fixed] wallet {a}: row differed from its stream in name, status\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(
            "rebuild: 1 wallets checked, 1 rows fixed, 0 activity rows fixed, 0 failed\n"
        ),
        "{stdout}"
    );
    assert_eq!(row(&app.pool, wallet).await, healthy);

    // --all finds the drifted activity (and nothing else now).
    let report = rebuild_all(&app.pool, 500).await;
    assert_eq!(
        (report.rows_fixed, report.activity_fixed),
        (0, 1),
        "{report}"
    );
    assert!(
        report.to_string().contains(&format!(
            "[fixed] wallet {b}: activity totals were in 207 / out 0 over 1 events"
        )),
        "{report}"
    );
    let audit = audit_report(&app.settings).await;
    assert!(audit.is_clean(), "{audit}");
}

#[tokio::test]
async fn a_stream_that_does_not_fold_is_reported_and_its_wallet_left_unchanged() {
    let app = spawn_app().await;
    let (_, a, _) = app.money_scenario().await;
    settled(&app).await;
    let wallet: Uuid = a.parse().expect("wallet id");
    // The deposit claims another balance: the fold refuses it.
    sqlx::query(
        "UPDATE wallet_events SET payload = jsonb_set(payload, '{balance_after}', \
             jsonb_set(payload->'balance_after', '{value}', '\"9.99\"')) \
         WHERE wallet_id = $1 AND sequence = 2",
    )
    .bind(wallet)
    .execute(&app.pool)
    .await
    .expect("event edited");
    sqlx::query("UPDATE wallets SET status = 'frozen' WHERE id = $1")
        .bind(wallet)
        .execute(&app.pool)
        .await
        .expect("row edited");
    let before = row(&app.pool, wallet).await;

    let output = cli(&app.settings, &["rebuild", "--all", "--batch", "1"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "[error] wallet {a}: unchanged, its stream does not fold"
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("0 rows fixed, 0 activity rows fixed, 1 failed\n"),
        "{stdout}"
    );
    assert_eq!(row(&app.pool, wallet).await, before);
    let missing = Uuid::now_v7().to_string();
    let output = cli(&app.settings, &["rebuild", "--wallet", &missing]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "[error] wallet {missing}: unchanged, no such wallet\n"
        )),
        "{stdout}"
    );
    let report = audit_report(&app.settings).await;
    assert!(
        report.of("wallet_matches_stream")[0]
            .detail
            .contains("does not fold"),
        "{report}"
    );
}

#[tokio::test]
async fn rebuild_beside_concurrent_deposits_loses_nothing() {
    let app = spawn_app().await;
    let wallets: Vec<WalletId> = [app.new_wallet("USD").await, app.new_wallet("USD").await]
        .iter()
        .map(|w| w.id)
        .collect();
    let operator = app.operator();
    let deposits = wallets.iter().flat_map(|&wallet| {
        let operator = operator.clone();
        (0..25).map(move |_| {
            let operator = operator.clone();
            tokio::spawn(async move {
                operator
                    .deposit(wallet, &Amount::new("1.00"), None)
                    .await
                    .expect("deposit");
            })
        })
    });
    let deposits: Vec<_> = deposits.collect();
    let pool = app.pool.clone();
    let rebuilds = tokio::spawn(async move {
        let mut reports = Vec::new();
        for _ in 0..10 {
            reports.push(rebuild_all(&pool, 1).await);
        }
        reports
    });
    for deposit in deposits {
        deposit.await.expect("deposit task");
    }
    let reports = rebuilds.await.expect("rebuild task");
    for report in &reports {
        assert_eq!((report.rows_fixed, report.failed), (0, 0), "{report}");
        assert!(
            report
                .lines
                .iter()
                .all(|line| matches!(&line.outcome, Outcome::Fixed(fix) if fix.fields.is_empty())),
            "{report}"
        );
    }
    for wallet in &wallets {
        let (_, _, balance, _, version) = row(&app.pool, wallet.as_uuid()).await;
        assert_eq!((balance, version), (2500, 26), "wallet {wallet}");
    }
    settled(&app).await;
    let last = rebuild_all(&app.pool, 500).await;
    assert!(last.lines.is_empty(), "{last}");
    let audit = audit_report(&app.settings).await;
    assert!(audit.is_clean(), "{audit}");
}

/// A service's settings with fresh topics for every binding (created here), so that what
/// a replay publishes is alone on them.
async fn on_fresh_topics(settings: &Settings) -> (Settings, Topics) {
    let topics = Topics::new(&Uuid::now_v7().simple().to_string());
    let mut settings = settings.clone();
    for (binding, topic) in topics.bindings() {
        settings.bindings.insert(binding.to_owned(), topic.clone());
    }
    let names: Vec<&str> = topics.bindings().iter().map(|(_, t)| t.as_str()).collect();
    create_topics(&settings.kafka.brokers, &names).await;
    (settings, topics)
}

#[tokio::test]
async fn replay_from_the_stream_publishes_a_wallets_events_with_their_ids_and_sequences() {
    let app = spawn_app().await;
    let (_, a, _) = app.money_scenario().await;
    settled(&app).await;
    let wallet: Uuid = a.parse().expect("wallet id");
    let stream: Vec<(i64, Uuid, String)> = sqlx::query_as(
        "SELECT sequence, event_id, event_type FROM wallet_events WHERE wallet_id = $1 ORDER BY sequence",
    )
    .bind(wallet)
    .fetch_all(&app.pool)
    .await
    .expect("stream");
    let types: Vec<&str> = stream.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "WalletCreated",
            "FundsAdded",
            "FundsWithdrawn",
            "FundsTransferred"
        ]
    );

    let (settings, topics) = on_fresh_topics(&app.settings).await;
    let output = cli(
        &settings,
        &["outbox", "replay", "--from-stream", "--wallet", &a],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.ends_with("replayed 4 event(s)\n"), "{stdout}");

    let topic_of = |event_type: &str| match event_type {
        "WalletCreated" => &topics.wallet_created,
        "FundsAdded" => &topics.funds_added,
        "FundsWithdrawn" => &topics.funds_withdrawn,
        _ => &topics.funds_transferred,
    };
    for (sequence, event_id, event_type) in &stream {
        let records = read_records(&settings.kafka.brokers, topic_of(event_type), 1).await;
        let record = &records[0];
        assert_eq!(header(record, "ce_id"), Some(event_id.to_string()));
        assert_eq!(
            header(record, "ce_sequence"),
            Some(format!("{sequence:019}"))
        );
        assert_eq!(header(record, "traceparent"), None, "no trace context");
        assert_eq!(
            record
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            Some(a.clone())
        );
    }

    // Events the migration derived are skipped unless asked for.
    sqlx::query("UPDATE wallet_events SET migrated = true WHERE wallet_id = $1 AND sequence = 1")
        .bind(wallet)
        .execute(&app.pool)
        .await
        .expect("marked migrated");
    let producer = kafka::EventProducer::new(&settings.kafka).expect("producer");
    let bindings = event_bindings::EventBindings::new(&settings.bindings).expect("bindings");
    let mut selection = StreamSelection {
        wallet: Some(WalletId::from_uuid(wallet)),
        ..StreamSelection::default()
    };
    let replay = |selection: StreamSelection| {
        let (pool, producer, bindings) = (&app.pool, &producer, &bindings);
        async move {
            stream_replay::replay(pool, producer, bindings, &selection, 2, |_| {})
                .await
                .expect("replay")
        }
    };
    assert_eq!(replay(selection.clone()).await, 3);
    selection.include_migrated = true;
    assert_eq!(replay(selection).await, 4);
}
