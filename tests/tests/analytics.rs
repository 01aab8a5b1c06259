//! The analytics job end to end (issue 27): real API, real broker, real Apache Flink.
//!
//! `scripts/test` starts a local Flink cluster (`scripts/flink start`) and points
//! `WALLET_HUB_FLINK_REST_URL` at it. Each test submits its own copy of the job
//! (`scripts/flink submit`) reading its own service's topics, makes money movements through
//! the API, and reads the results back through the API: the volume per minute must equal
//! the ledger's sums to the cent, and a burst of outgoing movements from one wallet must
//! yield exactly one velocity alert, seen as a notification by the wallet's owner.
//!
//! Its own binary, its tests one at a time (a lock under `cargo test`; under nextest,
//! .config/nextest.toml runs each alone): the kill test kills the cluster's TaskManager.
//!
//! Minutes close on event time: the job emits a minute once its watermark (the newest
//! `ce_time` minus the allowed lateness) has passed the minute's end. Each test keeps
//! depositing a small "tick" into a wallet of a third currency (EUR) until what it waits
//! for appears, and compares only the currencies and minutes that the ticks do not touch.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use cloudevents::binding::rdkafka::{FutureRecordExt, MessageRecord};
use rdkafka::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use uuid::Uuid;
use wallet_hub_client::{Amount, CreateTransfer, PageRequest, RiskAlert, VolumeRange};
use wallet_hub_tests::{
    TestApp, cloud_event, deposit_event, header, read_all_records, spawn_app_with,
};

/// One test at a time: the kill test kills the TaskManager every job runs on.
static FLINK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a test waits for the job's results before it fails.
const RESULT_WAIT: Duration = Duration::from_secs(240);
const TICK_EVERY: Duration = Duration::from_secs(4);
/// Outgoing movements in a window that make an alert (the job's `velocity_max_count`).
const MAX_COUNT: u32 = 4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root")
        .to_path_buf()
}

fn flink_rest_url() -> String {
    std::env::var("WALLET_HUB_FLINK_REST_URL").expect(
        "WALLET_HUB_FLINK_REST_URL names the Flink cluster these tests use \
         (scripts/test starts one with scripts/flink start)",
    )
}

/// One test's copy of the job, cancelled when the test ends (also when it fails).
struct Job {
    id: String,
    /// Where the job writes the records it skips, with their reasons.
    rejected_topic: String,
}

impl Job {
    /// Submits the job reading `app`'s topics, with its own consumer group, transactional
    /// ids and name; velocity in 2-minute windows sliding by a minute.
    fn submit(app: &TestApp, checkpoint_interval_ms: u32) -> Job {
        let suffix = Uuid::now_v7().simple().to_string();
        let rejected_topic = format!("analytics-rejected-events-{suffix}");
        let binding = |name: &str| app.settings.bindings[name].clone();
        let id = flink_with(
            "submit",
            [
                ("KAFKA_BROKERS", app.settings.kafka.brokers.clone()),
                ("WH_ANALYTICS_FUNDS_ADDED_TOPIC", binding("funds_added_out")),
                (
                    "WH_ANALYTICS_FUNDS_WITHDRAWN_TOPIC",
                    binding("funds_withdrawn_out"),
                ),
                (
                    "WH_ANALYTICS_FUNDS_TRANSFERRED_TOPIC",
                    binding("funds_transferred_out"),
                ),
                ("WH_ANALYTICS_VOLUME_TOPIC", binding("analytics_volume_out")),
                (
                    "WH_ANALYTICS_VELOCITY_TOPIC",
                    binding("wallet_velocity_out"),
                ),
                ("WH_ANALYTICS_REJECTED_TOPIC", rejected_topic.clone()),
                ("WH_ANALYTICS_GROUP_ID", format!("analytics-{suffix}")),
                (
                    "WH_ANALYTICS_TRANSACTIONAL_ID_PREFIX",
                    format!("analytics-{suffix}"),
                ),
                ("WH_ANALYTICS_JOB_NAME", format!("analytics-test-{suffix}")),
                ("WH_ANALYTICS_VELOCITY_WINDOW_SECONDS", "120".to_owned()),
                ("WH_ANALYTICS_VELOCITY_SLIDE_SECONDS", "60".to_owned()),
                ("WH_ANALYTICS_VELOCITY_MAX_COUNT", MAX_COUNT.to_string()),
                ("WH_ANALYTICS_VELOCITY_MAX_AMOUNT", "1000000".to_owned()),
                ("WH_ANALYTICS_LATENESS_SECONDS", "2".to_owned()),
                ("WH_ANALYTICS_IDLE_TIMEOUT_SECONDS", "3".to_owned()),
                (
                    "WH_ANALYTICS_CHECKPOINT_INTERVAL_MS",
                    checkpoint_interval_ms.to_string(),
                ),
            ],
        );
        assert_eq!(id.len(), 32, "a Flink job id, got {id:?}");
        Job { id, rejected_topic }
    }

    async fn get(&self, path: &str) -> Value {
        let url = format!("{}/jobs/{}{path}", flink_rest_url(), self.id);
        reqwest::get(&url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("Flink REST answers")
            .json()
            .await
            .expect("JSON")
    }

    async fn state(&self) -> String {
        self.get("").await["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Completed checkpoints so far, and whether the job was restored from one.
    async fn checkpoints(&self) -> (u64, bool) {
        let stats = self.get("/checkpoints").await;
        let completed = stats["counts"]["completed"].as_u64().unwrap_or(0);
        let restored = !stats["latest"]["restored"].is_null();
        (completed, restored)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let url = format!("{}/jobs/{}?mode=cancel", flink_rest_url(), self.id);
        // Blocking on purpose: the runtime may be gone; best effort, a test cluster.
        let _ = Command::new("curl")
            .args(["-fsS", "-X", "PATCH", &url])
            .output();
    }
}

fn rest_port() -> String {
    flink_rest_url()
        .rsplit(':')
        .next()
        .expect("a port")
        .trim_end_matches('/')
        .to_owned()
}

/// Runs `scripts/flink COMMAND` against the tests' cluster; its standard output.
fn flink(command: &str) -> String {
    flink_with(command, [])
}

/// Runs `scripts/flink COMMAND` against the tests' cluster with `envs` set; its standard
/// output, trimmed.
fn flink_with<const N: usize>(command: &str, envs: [(&str, String); N]) -> String {
    let output = Command::new(root().join("scripts/flink"))
        .arg(command)
        .envs(envs)
        .env("WALLET_HUB_FLINK_REST_PORT", rest_port())
        .output()
        .expect("scripts/flink runs");
    assert!(
        output.status.success(),
        "scripts/flink {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The cluster has a TaskManager before a test submits its job: a test that failed after
/// killing one (the kill test) must not fail the next for want of one.
fn ensure_taskmanager() {
    flink("ensure-taskmanager");
}

async fn spawn_app() -> TestApp {
    spawn_app_with(|settings| {
        let suffix = Uuid::now_v7().simple().to_string();
        for (binding, topic) in [
            ("analytics_volume_out", "analytics-volume-events"),
            ("wallet_velocity_out", "wallet-velocity-events"),
        ] {
            settings
                .bindings
                .insert(binding.to_owned(), format!("{topic}-{suffix}"));
        }
    })
    .await
}

/// What a test moved, per currency and minute: (kind -> (count, minor units)).
type Sums = BTreeMap<(String, DateTime<Utc>), BTreeMap<String, (i64, i64)>>;

/// The ledger's sums per currency, minute and kind, for `currencies`.
async fn ledger_sums(app: &TestApp, currencies: &[&str]) -> Sums {
    let rows: Vec<(String, DateTime<Utc>, String, i64, i64)> = sqlx::query_as(
        "SELECT currency::text, date_trunc('minute', created_at), kind::text, count(*), \
           sum(amount_minor)::bigint \
         FROM ledger_transactions WHERE currency = ANY($1) GROUP BY 1, 2, 3",
    )
    .bind(currencies)
    .fetch_all(&app.pool)
    .await
    .expect("ledger sums");
    let mut sums = Sums::new();
    for (currency, minute, kind, count, minor) in rows {
        sums.entry((currency, minute))
            .or_default()
            .insert(kind, (count, minor));
    }
    sums
}

fn minor(amount: &str) -> i64 {
    let (units, cents) = amount.split_once('.').expect("two decimals");
    units.parse::<i64>().expect("units") * 100 + cents.parse::<i64>().expect("cents")
}

/// The API's volume for `currencies` from `from` to `to`, every page (of two, through the
/// typed client), in the ledger's shape (kinds with no movement left out).
async fn api_sums(
    app: &TestApp,
    currencies: &[&str],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Sums {
    let mut sums = Sums::new();
    for currency in currencies {
        let range = VolumeRange {
            currency: currency.parse().expect("a currency"),
            from,
            to,
        };
        let minutes = app
            .operator()
            .volume_all(&range, 2)
            .await
            .expect("volume 200");
        for item in minutes {
            let entry = sums
                .entry(((*currency).to_owned(), item.minute))
                .or_default();
            for (total, kind) in [
                (&item.deposits, "deposit"),
                (&item.withdrawals, "withdrawal"),
                (&item.transfers, "transfer"),
            ] {
                if total.count > 0 {
                    entry.insert(kind.to_owned(), (total.count, minor(&total.amount)));
                }
            }
        }
    }
    sums
}

async fn risk_alerts(app: &TestApp) -> Vec<RiskAlert> {
    app.operator()
        .risk_alerts(&PageRequest::first(50))
        .await
        .expect("alerts 200")
        .body
        .items
}

/// Deposits a cent into the tick wallet, then waits [`TICK_EVERY`]; fails the test once
/// [`RESULT_WAIT`] has passed since it was made.
struct Ticker {
    api: wallet_hub_client::Client,
    wallet: domain::WalletId,
    started: Instant,
}

impl Ticker {
    fn new(app: &TestApp, wallet: domain::WalletId) -> Self {
        Self {
            api: app.operator(),
            wallet,
            started: Instant::now(),
        }
    }

    async fn tick(&self, waiting_for: &str) {
        assert!(
            self.started.elapsed() < RESULT_WAIT,
            "{waiting_for}: not seen after {RESULT_WAIT:?}"
        );
        let reply = self
            .api
            .deposit(self.wallet, &Amount::new("0.01"), None)
            .await
            .expect("tick deposit");
        assert_eq!(reply.status, 201, "tick deposit");
        tokio::time::sleep(TICK_EVERY).await;
    }
}

/// The money movements of a test, in USD and GBP, through the API; `burst` outgoing
/// movements from one USD wallet (at least [`MAX_COUNT`] makes an alert). Returns the
/// burst wallet's owner and wallet.
struct Movements {
    owner: Uuid,
    burst_wallet: domain::WalletId,
}

async fn move_money(app: &TestApp, burst: u32) -> Movements {
    let operator = app.operator();
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let owner: Uuid = alice.id.into();
    let usd_a = app.new_wallet_for(owner, "USD").await;
    let usd_b = app.new_wallet_for(bob.id.into(), "USD").await;
    let gbp_a = app.new_wallet_for(owner, "GBP").await;
    let gbp_b = app.new_wallet_for(bob.id.into(), "GBP").await;
    for (wallet, amount) in [
        (usd_a.id, "100.00"),
        (usd_b.id, "0.99"),
        (gbp_a.id, "50.05"),
        (gbp_b.id, "12.34"),
    ] {
        let reply = operator
            .deposit(wallet, &Amount::new(amount), None)
            .await
            .expect("deposit");
        assert_eq!(reply.status, 201, "deposit {amount}");
    }
    let alice_api = app.as_user(owner).await;
    let bob_api = app.as_user(bob.id.into()).await;
    // GBP: two outgoing movements from each wallet, under the limit.
    let reply = alice_api
        .withdraw(gbp_a.id, &Amount::new("0.01"), None)
        .await
        .expect("withdraw");
    assert_eq!(reply.status, 201);
    let reply = alice_api
        .transfer(
            &CreateTransfer {
                from_wallet_id: gbp_a.id,
                to_wallet_id: gbp_b.id,
                amount: "7.77".to_owned(),
            },
            None,
        )
        .await
        .expect("transfer");
    assert_eq!(reply.status, 201);
    let reply = bob_api
        .withdraw(gbp_b.id, &Amount::new("1.11"), None)
        .await
        .expect("withdraw");
    assert_eq!(reply.status, 201);
    // USD: the burst from Alice's wallet, withdrawals and transfers to Bob, alternating.
    for n in 0..burst {
        let amount = format!("{}.{:02}", n + 1, n * 11 % 100);
        let reply = if n % 2 == 0 {
            alice_api
                .withdraw(usd_a.id, &Amount::new(amount.clone()), None)
                .await
                .expect("withdraw")
                .status
        } else {
            alice_api
                .transfer(
                    &CreateTransfer {
                        from_wallet_id: usd_a.id,
                        to_wallet_id: usd_b.id,
                        amount: amount.clone(),
                    },
                    None,
                )
                .await
                .expect("transfer")
                .status
        };
        assert_eq!(reply, 201, "outgoing movement {n} of the burst");
    }
    Movements {
        owner,
        burst_wallet: usd_a.id,
    }
}

async fn velocity_notifications(
    app: &TestApp,
    owner: Uuid,
) -> Vec<wallet_hub_client::Notification> {
    let reply = app
        .as_user(owner)
        .await
        .list_notifications(owner.into(), &PageRequest::default())
        .await
        .expect("notifications");
    assert_eq!(reply.status, 200);
    reply
        .body
        .items
        .into_iter()
        .filter(|n| n.kind == "velocity-exceeded")
        .collect()
}

/// Writes what is not a Wallet Hub movement onto the deposits topic: a record without
/// CloudEvent headers, and a deposit CloudEvent whose amount is not a decimal.
async fn send_bad_records(app: &TestApp) {
    let topic = &app.settings.bindings["funds_added_out"];
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &app.settings.kafka.brokers)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(topic)
                .key("junk")
                .payload("not a CloudEvent at all"),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    let mut event = cloud_event(&deposit_event(Uuid::now_v7(), 100));
    let Some(cloudevents::Data::Binary(bytes)) = event.data() else {
        panic!("binary data expected")
    };
    let mut data: Value = serde_json::from_slice(bytes).expect("JSON");
    data["amount"]["value"] = "ten".into();
    event.set_data("application/json", data.to_string().into_bytes());
    let message = MessageRecord::from_event(event).expect("record");
    producer
        .send(
            FutureRecord::to(topic)
                .key("bad-amount")
                .message_record(&message),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
}

/// Sends a second copy of the first deposit on the topic, as a relay retry would: the same
/// key, value and headers (so the same `ce_id`).
async fn resend_first_deposit(app: &TestApp) {
    let topic = &app.settings.bindings["funds_added_out"];
    let records = read_all_records(&app.settings.kafka.brokers, topic, 1).await;
    let original = records
        .iter()
        .find(|r| header(r, "ce_type").as_deref() == Some("io.wallethub.funds.added.v1"))
        .expect("a deposit on the topic");
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &app.settings.kafka.brokers)
        .create()
        .expect("producer");
    let mut record = FutureRecord::to(topic)
        .key(original.key().expect("key"))
        .payload(original.payload().expect("value"));
    if let Some(headers) = original.headers() {
        record = record.headers(headers.clone());
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .expect("delivered");
}

fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).expect("a minute")
}

/// Waits (ticking) until the API's USD and GBP volume equals the ledger's, minute by minute,
/// and the burst's alert is in; then checks the alert is the only one, also after the
/// burst's second window has closed.
async fn results_match_the_ledger(
    app: &TestApp,
    tick_wallet: domain::WalletId,
    moved: &Movements,
    started: DateTime<Utc>,
) {
    let currencies = ["USD", "GBP"];
    let expected = ledger_sums(app, &currencies).await;
    assert!(!expected.is_empty(), "the test moved money");
    let from = minute_of(started);
    let to = from + TimeDelta::hours(1);
    let ticker = Ticker::new(app, tick_wallet);
    let mut seen = api_sums(app, &currencies, from, to).await;
    while seen != expected {
        ticker.tick("the volume of every minute").await;
        seen = api_sums(app, &currencies, from, to).await;
    }
    while risk_alerts(app).await.is_empty() {
        ticker.tick("the velocity alert").await;
    }
    // The burst lies in two windows (2 minutes sliding by 1): once the minute after the
    // second has closed, both windows have been judged.
    let second_window_closed = minute_of(Utc::now()) + TimeDelta::minutes(1);
    while api_sums(app, &["EUR"], second_window_closed, to)
        .await
        .is_empty()
    {
        ticker
            .tick("a minute after the burst's second window")
            .await;
    }
    let alerts = risk_alerts(app).await;
    assert_eq!(alerts.len(), 1, "one alert per crossing: {alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert.wallet_id, moved.burst_wallet);
    assert_eq!(alert.kind, "velocity-exceeded");
    assert_eq!(alert.currency.to_string(), "USD");
    assert!(alert.movements >= i64::from(MAX_COUNT));
    let notifications = velocity_notifications(app, moved.owner).await;
    assert_eq!(
        notifications.len(),
        1,
        "one notification: {notifications:#?}"
    );
    assert_eq!(notifications[0].wallet_id, moved.burst_wallet);
    assert_eq!(
        ledger_sums(app, &currencies).await,
        expected,
        "nothing else moved USD or GBP"
    );
    // What the job wrote (committed transactions only): one alert, and each minute of each
    // currency once.
    let brokers = &app.settings.kafka.brokers;
    let alerts = read_all_records(brokers, &app.settings.bindings["wallet_velocity_out"], 1).await;
    assert_eq!(alerts.len(), 1, "the job sent one velocity alert");
    let volume = read_all_records(brokers, &app.settings.bindings["analytics_volume_out"], 1).await;
    let mut ids: Vec<String> = volume
        .iter()
        .map(|record| header(record, "ce_id").expect("ce_id"))
        .collect();
    let sent = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sent, "each minute of each currency sent once");
}

#[tokio::test]
async fn volume_equals_the_ledger_per_minute_and_a_burst_alerts_its_owner_once() {
    let _flink = FLINK.lock().await;
    ensure_taskmanager();
    let app = spawn_app().await;
    let job = Job::submit(&app, 2_000);
    let tick_wallet = app.new_wallet("EUR").await.id;
    let started = Utc::now();
    let moved = move_money(&app, MAX_COUNT + 2).await;
    // Read before the bad records are written: the suite checks every record it reads
    // that claims our source against its schema.
    resend_first_deposit(&app).await;
    send_bad_records(&app).await;
    // The duplicate is not counted twice, the bad records not at all: the sums are still
    // the ledger's.
    results_match_the_ledger(&app, tick_wallet, &moved, started).await;
    assert_eq!(job.state().await, "RUNNING", "bad records are never fatal");
    let rejected = read_all_records(&app.settings.kafka.brokers, &job.rejected_topic, 2).await;
    let mut reasons: Vec<String> = rejected
        .iter()
        .map(|record| {
            let body: Value =
                serde_json::from_slice(record.payload().expect("value")).expect("JSON");
            body["reason"].as_str().expect("reason").to_owned()
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["not-a-cloudevent", "schema-invalid"],
        "each skipped record is counted once, with its reason"
    );
}

#[tokio::test]
async fn a_killed_task_manager_restarts_from_the_checkpoint_with_nothing_lost_or_doubled() {
    let _flink = FLINK.lock().await;
    ensure_taskmanager();
    let app = spawn_app().await;
    let job = Job::submit(&app, 1_000);
    let tick_wallet = app.new_wallet("EUR").await.id;
    let started = Utc::now();
    let before = move_money(&app, MAX_COUNT + 1).await;
    // Mid-stream: at least one checkpoint is complete, and results are not all out yet.
    let deadline = Instant::now() + RESULT_WAIT;
    while job.checkpoints().await.0 < 2 {
        assert!(Instant::now() < deadline, "no checkpoint completed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pid = flink("taskmanager-pid");
    let killed = Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "the TaskManager {pid} was killed");
    // Money keeps moving while the job is down (GBP, under the limit).
    let operator = app.operator();
    let gbp = app.new_wallet("GBP").await.id;
    for amount in ["3.33", "4.44"] {
        let reply = operator
            .deposit(gbp, &Amount::new(amount), None)
            .await
            .expect("deposit");
        assert_eq!(reply.status, 201);
    }
    flink("start-taskmanager");
    let deadline = Instant::now() + RESULT_WAIT;
    while !job.checkpoints().await.1 {
        assert!(
            Instant::now() < deadline,
            "the job was not restored from a checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    results_match_the_ledger(&app, tick_wallet, &before, started).await;
    assert_eq!(job.state().await, "RUNNING");
}
