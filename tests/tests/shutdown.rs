//! SIGTERM stops the service within its configured grace period, even while one of its
//! consumer groups is rebalancing (librdkafka can block for good closing a consumer then:
//! rust-rdkafka issue 509). Runs the real binary, with its own signal handling.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka::{EventHandler, HandlerError, Outcome};
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;

use wallet_hub_tests::binary::service_binary;
use wallet_hub_tests::broker::group_member;
use wallet_hub_tests::{eventually, test_settings};

/// The grace period the service is given; it must exit within it, plus room to be reaped.
const GRACE: Duration = Duration::from_secs(8);

/// A group member that applies nothing: it only makes the group rebalance.
struct Idle;

impl EventHandler for Idle {
    fn name(&self) -> &'static str {
        "idle"
    }

    async fn handle(&self, _: &kafka::ReceivedEvent) -> Result<Outcome, HandlerError> {
        Ok(Outcome::Duplicate)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The service binary running its consumers only, with `settings`' database, topics and
/// group; its admin server on `admin_port`.
fn serve_consumers(settings: &wallet_hub::Settings, admin_port: u16) -> Child {
    let mut command = Command::new(service_binary());
    command
        .args(["serve", "--role", "consumer"])
        .env(
            "DATABASE_URL",
            settings.database.migrate_url.expose_secret(),
        )
        .env("KAFKA_BROKERS", &settings.kafka.brokers)
        .env(
            "WALLET_HUB__CONSUMER__GROUP_ID",
            &settings.consumer.group_id,
        )
        .env("WALLET_HUB__TOPICS__PARTITIONS", "1")
        .env(
            "WALLET_HUB__ADMIN__LISTEN",
            format!("127.0.0.1:{admin_port}"),
        )
        .env(
            "WALLET_HUB__SHUTDOWN_GRACE_MS",
            GRACE.as_millis().to_string(),
        )
        .env("WALLET_HUB__LOG__FILTER", "warn,kafka=info,wallet_hub=info")
        .stdout(Stdio::null());
    if let auth::JwksSource::File(path) = &settings.auth.jwks {
        command.env("WALLET_HUB__AUTH__JWKS", path);
    }
    for (binding, topic) in &settings.bindings {
        command.env(format!("WALLET_HUB__BINDINGS__{binding}"), topic);
    }
    command.spawn().expect("the service starts")
}

/// Waits until `child` has exited, at most `bound`; its exit status, or None.
async fn exited_within(child: &mut Child, bound: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn sigterm_while_a_consumer_group_rebalances_exits_within_the_grace_period() {
    let (settings, topics) = test_settings().await;
    for (round, delay_ms) in [0_u64, 300, 1_200].into_iter().enumerate() {
        let admin_port = free_port();
        let mut service = serve_consumers(&settings, admin_port);
        let ready = format!("http://127.0.0.1:{admin_port}/health/ready");
        eventually("the service's consumers to be assigned", || async {
            let answer = reqwest::get(&ready).await.ok()?;
            (answer.status() == 200).then_some(())
        })
        .await;

        // Another member joins the service's group: the group rebalances.
        let stop = CancellationToken::new();
        let joining = group_member(
            &settings.kafka,
            &settings.consumer.group_id,
            &topics.wallet_created,
            &[],
            Idle,
            Duration::from_secs(3),
            stop.clone(),
        );
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;

        let pid = service.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
        let status = exited_within(&mut service, GRACE + Duration::from_secs(5)).await;
        if status.is_none() {
            let _ = service.kill();
            let _ = service.wait();
        }
        let status = status.unwrap_or_else(|| {
            panic!("round {round}: the service was still running {GRACE:?} after SIGTERM")
        });
        assert!(
            status.success(),
            "round {round}: a clean exit, got {status}"
        );

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), joining)
            .await
            .expect("the other member stopped in time")
            .expect("no panic")
            .expect("the other member ran");
    }
}
