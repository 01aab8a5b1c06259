//! What every fault scenario shares: the servers' scripts, write load through the HTTP API
//! that records every answer, child service processes, waiting until everything settled,
//! the checks of the answers against the database, the audit, and the report.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wallet_hub::Settings;
use wallet_hub_tests::TestApp;

/// Environment variable that makes the test binary a child service (its value: the role).
pub const CHILD: &str = "WALLET_HUB_FAULT_CHILD";

/// How long the suite waits for the system to settle after a fault.
const SETTLE_WAIT: Duration = Duration::from_secs(120);

/// Tight limits, so that a fault outlasts every retry budget within seconds: 3 attempts,
/// deliveries time out after 2 s, backoff at most 1 s.
pub fn fault_settings(settings: &mut Settings) {
    settings.relay.max_attempts = 3;
    settings.relay.retry_base_ms = 200;
    settings.relay.retry_max_ms = 1_000;
    settings.relay.poll_interval_ms = 500;
    settings.kafka.message_timeout_ms = 2_000;
    settings.health.check_timeout_ms = 1_000;
    settings.database.acquire_timeout_ms = 1_000;
    // The load's few principals move money faster than a customer would.
    settings.api.money_out_rate_limit_per_second = 0;
}

/// Runs `scripts/<name> <action>` (with this process's environment, so a second set of
/// servers chosen with `WALLET_HUB_LOCAL_DIR` and the port variables is the one used).
pub fn script(name: &str, action: &str) -> String {
    let path = format!("{}/../scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(&path)
        .arg(action)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    assert!(
        output.status.success(),
        "{path} {action} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Sends `signal` (e.g. `STOP`, `CONT`) to `pid`.
pub fn signal(pid: &str, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_owned()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The wallets the load moves money between: one user each, 100.00 deposited.
pub struct Wallets {
    pub ids: Vec<String>,
    owners: Vec<String>,
    operator: String,
}

pub async fn wallets(app: &TestApp, count: usize) -> Wallets {
    let mut ids = Vec::new();
    let mut owners = Vec::new();
    for _ in 0..count {
        let id = app.create_wallet("USD").await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        assert_eq!(app.deposit(&id, "100.00").await.status(), 201);
        owners.push(app.owner_token(&id).await.expect("owner"));
        ids.push(id);
    }
    Wallets {
        ids,
        owners,
        operator: app.operator_token(),
    }
}

/// One request of the load and what came of it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub path: String,
    pub token: String,
    pub body: serde_json::Value,
    /// Its `Idempotency-Key`; `None`: sent without one.
    pub key: Option<String>,
    /// Its `X-Correlation-Id` (each request's own), which its ledger transaction records.
    pub correlation: String,
    /// None: no answer (connection refused, reset, timed out).
    pub status: Option<u16>,
    /// The problem `type` of an error answer.
    pub problem: Option<String>,
    /// The ledger transaction of a 201.
    pub transaction: Option<Uuid>,
}

/// Write load through the HTTP API: deposits, withdrawals, transfers and holds, each with its
/// own `Idempotency-Key` (or, with [`Load::start_mixed`], every other one without), from a
/// few concurrent clients, until stopped.
pub struct Load {
    stop: CancellationToken,
    workers: Vec<JoinHandle<Vec<Sent>>>,
}

impl Load {
    pub fn start(app: &TestApp, wallets: &Wallets, workers: usize) -> Self {
        Self::spawn(app, wallets, workers, false)
    }

    /// Every other request without an `Idempotency-Key`, as many clients send them.
    pub fn start_mixed(app: &TestApp, wallets: &Wallets, workers: usize) -> Self {
        Self::spawn(app, wallets, workers, true)
    }

    fn spawn(app: &TestApp, wallets: &Wallets, workers: usize, mixed: bool) -> Self {
        let stop = CancellationToken::new();
        let client = reqwest::Client::builder()
            // Longer than the server's own request timeout (10 s), which answers 503.
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let workers = (0..workers)
            .map(|worker| {
                let (stop, client) = (stop.clone(), client.clone());
                let base = app.url("");
                let ids = wallets.ids.clone();
                let owners = wallets.owners.clone();
                let operator = wallets.operator.clone();
                tokio::spawn(async move {
                    let mut sent = Vec::new();
                    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (worker as u64 + 1);
                    while !stop.is_cancelled() {
                        // xorshift: a different, repeatable sequence per worker.
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let pick = usize::try_from(seed % 1_000).expect("small");
                        let n = ids.len();
                        let (from, to) = (pick % n, (pick / 10 + 1 + pick % n) % n);
                        let (path, token, body) = match pick % 20 {
                            // A hold (its id is its ledger transaction's, like any 201's);
                            // long enough that none expires while the scenario is checked.
                            19 => (
                                format!("/v1/wallets/{}/holds", ids[from]),
                                &owners[from],
                                serde_json::json!({"amount": "0.10", "expires_in_seconds": 600}),
                            ),
                            0..=13 => (
                                format!("/v1/wallets/{}/deposits", ids[from]),
                                &operator,
                                serde_json::json!({"amount": "1.00"}),
                            ),
                            14..=16 => (
                                format!("/v1/wallets/{}/withdrawals", ids[from]),
                                &owners[from],
                                serde_json::json!({"amount": "0.50"}),
                            ),
                            _ => (
                                "/v1/transfers".to_owned(),
                                &owners[from],
                                serde_json::json!({
                                    "from_wallet_id": ids[from],
                                    "to_wallet_id": ids[if to == from { (to + 1) % n } else { to }],
                                    "amount": "0.25",
                                }),
                            ),
                        };
                        let key =
                            (!mixed || seed.is_multiple_of(2)).then(|| Uuid::now_v7().to_string());
                        let correlation = Uuid::now_v7().to_string();
                        let mut request = client
                            .post(format!("{base}{path}"))
                            .bearer_auth(token)
                            .header("X-Correlation-Id", &correlation)
                            .json(&body);
                        if let Some(key) = &key {
                            request = request.header("Idempotency-Key", key);
                        }
                        let (status, transaction, problem) = match request.send().await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let body: serde_json::Value =
                                    response.json().await.unwrap_or_default();
                                let id = body["id"].as_str().and_then(|id| id.parse().ok());
                                let problem = body["type"].as_str().map(str::to_owned);
                                (Some(status), id, problem)
                            }
                            Err(_) => (None, None, None),
                        };
                        sent.push(Sent {
                            path,
                            token: token.clone(),
                            body,
                            key,
                            correlation,
                            status,
                            problem,
                            transaction,
                        });
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    sent
                })
            })
            .collect();
        Self { stop, workers }
    }

    pub async fn finish(self) -> Vec<Sent> {
        self.stop.cancel();
        let mut all = Vec::new();
        for worker in self.workers {
            all.extend(worker.await.expect("load worker"));
        }
        all
    }
}

/// Every 201 is in the ledger; no request that got a server error was applied; no answer
/// was a 500. A request that got no answer at all (the connection failed) is in doubt, as
/// for any client: it is sent again with its `Idempotency-Key`, and must then succeed
/// (once) or be refused by a rule. Returns (accepted, refused by the server with 5xx).
pub async fn check_answers(app: &TestApp, sent: &[Sent]) -> (usize, usize) {
    for unanswered in sent.iter().filter(|s| s.status.is_none()) {
        let key = unanswered.key.as_deref().expect("the load sends keys");
        let again = reqwest::Client::new()
            .post(app.url(&unanswered.path))
            .timeout(Duration::from_secs(30))
            .bearer_auth(&unanswered.token)
            .header("Idempotency-Key", key)
            .json(&unanswered.body)
            .send()
            .await
            .expect("the retry is answered");
        let status = again.status().as_u16();
        assert!(
            status == 201 || status == 409 || status == 422,
            "a retried request succeeds or is refused by a rule, got {status}"
        );
    }
    let server_errors: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.status.is_some_and(|status| status >= 500))
        .collect();
    assert!(
        !sent.iter().any(|s| s.status == Some(500)),
        "a fault must never give 500: {:?}",
        sent.iter().find(|s| s.status == Some(500))
    );
    let accepted: Vec<Uuid> = sent
        .iter()
        .filter(|s| s.status == Some(201))
        .map(|s| s.transaction.expect("a 201 names its transaction"))
        .collect();
    assert!(!accepted.is_empty(), "the load got some requests through");
    let found: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger_transactions WHERE id = ANY($1)")
            .bind(&accepted)
            .fetch_one(&app.pool)
            .await
            .expect("count accepted");
    assert_eq!(
        found,
        i64::try_from(accepted.len()).expect("fits"),
        "every request answered 201 is in the ledger"
    );
    let failed_keys: Vec<&str> = server_errors
        .iter()
        .map(|s| s.key.as_deref().expect("the load sends keys"))
        .collect();
    let applied: Vec<(String, i16)> =
        sqlx::query_as("SELECT key, response_status FROM idempotency_keys WHERE key = ANY($1)")
            .bind(&failed_keys)
            .fetch_all(&app.pool)
            .await
            .expect("failed keys");
    let applied: Vec<_> = applied
        .iter()
        .map(|(key, stored)| {
            let answer = server_errors
                .iter()
                .find(|s| s.key.as_ref() == Some(key))
                .map(|s| s.status);
            format!("{key}: answered {answer:?}, stored {stored}")
        })
        .collect();
    assert!(
        applied.is_empty(),
        "no request that got an error or no answer was applied: {applied:?}"
    );
    (accepted.len(), server_errors.len())
}

/// Waits until the outbox queue holds only `parked` rows and every consumer group has
/// caught up; returns how long that took.
pub async fn settle(app: &TestApp, parked: i64) -> Duration {
    let started = Instant::now();
    let bindings = event_bindings::EventBindings::new(&app.settings.bindings).expect("bindings");
    let groups = wallet_hub::topology::consumer_groups(&app.settings, &bindings);
    let lag = kafka::LagReader::new(&app.settings.kafka, groups.to_vec()).expect("lag reader");
    loop {
        let queued = app.queued_rows().await;
        let behind: i64 = match lag.read(Duration::from_secs(5)).await {
            Ok(lags) => lags.iter().map(|l| l.lag).sum(),
            Err(_) => i64::MAX,
        };
        if queued == parked && behind == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < SETTLE_WAIT,
            "not settled after {SETTLE_WAIT:?}: {queued} row(s) queued ({parked} parked expected), consumers {behind} behind"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Records on `topic` from the beginning to its end offsets: (records, distinct `ce_id`s).
pub fn topic_records(brokers: &str, topic: &str) -> (usize, HashSet<String>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("fault-reader-{}", Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0_i64;
    let mut ends = Vec::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), timeout)
            .expect("watermarks");
        if high > low {
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Offset(low))
                .expect("offset");
            remaining += high - low;
            ends.push((partition.id(), high));
        }
    }
    let mut ids = HashSet::new();
    let mut records = 0;
    if remaining == 0 {
        return (0, ids);
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    while remaining > 0 {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("record");
        let end = ends
            .iter()
            .find(|(p, _)| *p == message.partition())
            .map_or(0, |(_, high)| *high);
        if message.offset() >= end {
            continue;
        }
        remaining -= 1;
        records += 1;
        if let Some(id) = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == "ce_id")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        }) {
            ids.insert(id);
        }
    }
    (records, ids)
}

/// The figures of one scenario, for the report.
#[derive(Debug, Default)]
pub struct Figures {
    pub requests: usize,
    pub accepted: usize,
    pub refused: usize,
    pub written: i64,
    pub delivered: usize,
    pub duplicates: usize,
    pub parked: i64,
    pub recovered_in: Duration,
}

/// Checks the whole run after a scenario: the answers against the database, the audit,
/// and what reached Kafka. `parked` are the outbox ids the scenario expects parked.
pub async fn verify(app: &TestApp, sent: &[Sent], parked: &[i64], healed: Instant) -> Figures {
    eprintln!("fault suite: checking {} answers", sent.len());
    let (accepted, refused) = check_answers(app, sent).await;
    settle_and_audit(app, sent.len(), (accepted, refused), parked, healed).await
}

/// Each request's effect against its answer, by the correlation id its ledger transaction
/// records: a 201 took effect exactly once; a 503 `outcome-unknown` or no answer at all at
/// most once; any other answer not at all; no 500. Returns (accepted, 5xx).
pub async fn check_exactly_once(app: &TestApp, sent: &[Sent]) -> (usize, usize) {
    assert!(
        !sent.iter().any(|s| s.status == Some(500)),
        "a fault must never give 500: {:?}",
        sent.iter().find(|s| s.status == Some(500))
    );
    let correlations: Vec<&str> = sent.iter().map(|s| s.correlation.as_str()).collect();
    let applied: Vec<(String, i64)> = sqlx::query_as(
        "SELECT correlation_id, count(*) FROM ledger_transactions \
         WHERE correlation_id = ANY($1) GROUP BY correlation_id",
    )
    .bind(&correlations)
    .fetch_all(&app.pool)
    .await
    .expect("ledger transactions by correlation id");
    let applied: std::collections::HashMap<String, i64> = applied.into_iter().collect();
    let mut wrong = Vec::new();
    for s in sent {
        let times = applied.get(&s.correlation).copied().unwrap_or(0);
        let unknown = s
            .problem
            .as_deref()
            .is_some_and(|t| t.ends_with("/outcome-unknown"));
        let allowed = match s.status {
            Some(201) => times == 1,
            None => times <= 1,
            Some(503) if unknown => times <= 1,
            Some(_) => times == 0,
        };
        if !allowed {
            wrong.push(format!(
                "{} {:?} {:?}: applied {times} times",
                s.path, s.status, s.problem
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "requests applied other than their answers say: {wrong:#?}"
    );
    let accepted = sent.iter().filter(|s| s.status == Some(201)).count();
    let errors = sent
        .iter()
        .filter(|s| s.status.is_some_and(|c| c >= 500))
        .count();
    (accepted, errors)
}

/// What every scenario checks after its answers: everything settles (the outbox drained,
/// the consumers caught up), the audit finds nothing unexpected, and Kafka holds each event.
pub async fn settle_and_audit(
    app: &TestApp,
    requests: usize,
    (accepted, refused): (usize, usize),
    parked: &[i64],
    healed: Instant,
) -> Figures {
    eprintln!("fault suite: waiting until everything settled");
    settle(app, i64::try_from(parked.len()).expect("fits")).await;
    eprintln!("fault suite: auditing");
    let recovered_in = healed.elapsed();

    let options = wallet_hub::audit::AuditOptions {
        settle_seconds: 0,
        ..wallet_hub::audit::AuditOptions::default()
    };
    let report = wallet_hub::audit::run(&app.settings, &options)
        .await
        .expect("the audit runs");
    let unexpected: Vec<_> = report
        .findings
        .iter()
        // Parked rows are findings; which rows parked is checked exactly below.
        .filter(|f| f.check != "parked" || parked.is_empty())
        .collect();
    assert!(unexpected.is_empty(), "the audit found problems:\n{report}");

    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&app.pool)
        .await
        .expect("count outbox");
    let actually_parked = app.parked_rows().await;
    let mut parked_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM outbox_pending WHERE parked_at IS NOT NULL ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .expect("parked ids");
    parked_ids.sort_unstable();
    let mut expected = parked.to_vec();
    expected.sort_unstable();
    assert_eq!(parked_ids, expected, "exactly the expected rows parked");

    let mut records = 0;
    let mut ids = HashSet::new();
    for topic in app.settings.bindings.values() {
        let (n, found) = topic_records(&app.settings.kafka.brokers, topic);
        records += n;
        ids.extend(found);
    }
    Figures {
        requests,
        accepted,
        refused,
        written,
        delivered: ids.len(),
        duplicates: records - ids.len(),
        parked: actually_parked,
        recovered_in,
    }
}

/// Appends one scenario's figures to the suite's report (`target/tmp/fault-suite.md`,
/// printed by `scripts/test`) and to stderr.
pub fn report(scenario: &str, figures: &Figures) {
    let mut line = String::new();
    let _ = write!(
        line,
        "| {scenario} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
        figures.requests,
        figures.accepted,
        figures.refused,
        figures.written,
        figures.delivered,
        figures.duplicates,
        figures.parked,
        figures.recovered_in.as_secs_f64()
    );
    eprintln!("{line}");
    let path = format!("{}/fault-suite.md", env!("CARGO_TARGET_TMPDIR"));
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

/// Starts this test binary as a child service running `roles`, with `settings` in its
/// environment and `failpoints` armed (`fail` syntax, may be empty). `as_nobody` runs it
/// as the `nobody` user, whose traffic the partition scenario black-holes.
pub fn spawn_child(
    test: &str,
    roles: &str,
    settings: &Settings,
    failpoints: &str,
    as_nobody: bool,
) -> Child {
    let own = std::env::current_exe().expect("own path");
    let program = if as_nobody {
        // `nobody` may not be able to reach the checkout (e.g. under /root): run a copy.
        use std::os::unix::fs::PermissionsExt as _;
        let copy = child_copy();
        std::fs::copy(&own, &copy).expect("copy of the test binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .expect("copy executable by all");
        copy
    } else {
        own
    };
    let mut command = Command::new(program);
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, roles)
        .env("FAILPOINTS", failpoints)
        .env("DATABASE_URL", settings.database.url.expose_secret())
        .env("KAFKA_BROKERS", &settings.kafka.brokers)
        .env(
            "WALLET_HUB__CONSUMER__GROUP_ID",
            &settings.consumer.group_id,
        )
        .env("WALLET_HUB__TOPICS__PARTITIONS", "1")
        .env("WALLET_HUB__DATABASE__MIGRATE_ON_START", "false")
        .env("WALLET_HUB__LOG__FILTER", "warn,outbox=info")
        .env(
            "WALLET_HUB__RELAY__MAX_ATTEMPTS",
            settings.relay.max_attempts.to_string(),
        )
        .env(
            "WALLET_HUB__RELAY__RETRY_BASE_MS",
            settings.relay.retry_base_ms.to_string(),
        )
        .env(
            "WALLET_HUB__RELAY__RETRY_MAX_MS",
            settings.relay.retry_max_ms.to_string(),
        )
        .env(
            "WALLET_HUB__RELAY__POLL_INTERVAL_MS",
            settings.relay.poll_interval_ms.to_string(),
        )
        .env(
            "WALLET_HUB__RELAY__LEADER_TIMEOUT_MS",
            settings.relay.leader_timeout_ms.to_string(),
        )
        .env(
            "WALLET_HUB__KAFKA__MESSAGE_TIMEOUT_MS",
            settings.kafka.message_timeout_ms.to_string(),
        );
    for (binding, topic) in &settings.bindings {
        command.env(
            format!("WALLET_HUB__BINDINGS__{}", binding.to_lowercase()),
            topic,
        );
    }
    if as_nobody {
        use std::os::unix::process::CommandExt as _;
        command.uid(65_534).gid(65_534);
    }
    command.spawn().expect("child starts")
}

/// Where [`spawn_child`] puts the copy of this binary that runs as `nobody`; remove it
/// once that child is gone.
pub fn child_copy() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("wallet-hub-fault-child-{}", std::process::id()))
}

/// In a child: runs the service's `roles` from the environment until killed.
pub async fn run_child(roles: &str) {
    let _failpoints = fail::FailScenario::setup();
    let roles: Vec<wallet_hub::startup::Role> = roles
        .split(',')
        .map(|role| match role {
            "relay" => wallet_hub::startup::Role::Relay,
            "consumer" => wallet_hub::startup::Role::Consumer,
            other => panic!("unknown role {other}"),
        })
        .collect();
    let mut settings = Settings::load(None).expect("settings");
    settings.api.listen = "127.0.0.1:0".parse().expect("address");
    settings.admin.listen = "127.0.0.1:0".parse().expect("address");
    telemetry::init("wallet-hub-fault-child", &settings.log, &settings.telemetry)
        .expect("telemetry");
    let app = wallet_hub::Application::build(settings, &roles)
        .await
        .expect("child service builds");
    let _ = app.run_until_stopped(CancellationToken::new()).await;
}

/// Writes `payload` to `topic` under `key`, with no headers: what anyone with write
/// access to a topic can do.
pub async fn produce_raw(brokers: &str, topic: &str, key: &str, payload: &[u8]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .expect("raw record delivered");
}
