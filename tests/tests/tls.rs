//! Transport security against real servers: a PostgreSQL that accepts TCP connections only
//! over TLS, and a Kafka broker whose only client listener is SASL_SSL (SCRAM-SHA-512), both
//! with certificates from our own test CA (`scripts/tls-servers`, which this binary runs:
//! `up` is quick when they already run; `scripts/test` stops them when it ends).
//!
//! The service verifies both servers' certificates and host names (`sslmode=verify-full`,
//! `kafka.ssl_ca_location`), and a wrong CA or password stops it at startup with a message
//! naming the dependency.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use auth::JwksSource;
use auth::dev::DevIssuer;
use kafka::SecurityProtocol;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use secrecy::SecretString;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use wallet_hub::{Application, Settings};
use wallet_hub_tests::{Topics, eventually, start};

/// What `scripts/tls-servers env` prints.
struct Servers {
    database_url: String,
    kafka_brokers: String,
    kafka_user: String,
    kafka_password: String,
    ca: PathBuf,
    other_ca: PathBuf,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/tls-servers")
}

/// Starts the TLS servers (once per test binary) and reads where they are.
fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let up = Command::new(script())
            .arg("up")
            .status()
            .expect("run scripts/tls-servers up");
        assert!(up.success(), "scripts/tls-servers up failed");
        let out = Command::new(script())
            .arg("env")
            .output()
            .expect("run scripts/tls-servers env");
        assert!(out.status.success(), "scripts/tls-servers env failed");
        let vars: HashMap<String, String> = String::from_utf8(out.stdout)
            .expect("UTF-8")
            .lines()
            .filter_map(|line| line.strip_prefix("export "))
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| {
                assert!(
                    !value.contains(['\'', '"', '\\']),
                    "{name} needs shell unquoting: {value}"
                );
                (name.to_owned(), value.to_owned())
            })
            .collect();
        let var = |name: &str| vars.get(name).cloned().expect(name);
        Servers {
            database_url: var("TLS_DATABASE_URL"),
            kafka_brokers: var("TLS_KAFKA_BROKERS"),
            kafka_user: var("TLS_KAFKA_USER"),
            kafka_password: var("TLS_KAFKA_PASSWORD"),
            ca: var("TLS_CA").into(),
            other_ca: var("TLS_OTHER_CA").into(),
        }
    })
}

/// `url` with TLS required and the server's certificate and host name checked against `ca`.
fn verify_full(url: &str, ca: &std::path::Path) -> String {
    format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display())
}

/// A fresh database on the TLS server; returns its URL (without TLS parameters).
async fn create_database(servers: &Servers, name: &str) -> String {
    let mut admin = PgConnection::connect(&verify_full(&servers.database_url, &servers.ca))
        .await
        .expect("TLS PostgreSQL reachable with verify-full");
    // `name` is ours: a fixed prefix and a UUID.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("database created");
    let (base, _) = servers
        .database_url
        .rsplit_once('/')
        .expect("URL with a database");
    format!("{base}/{name}")
}

/// Settings for a service on the TLS servers: its own database, topics and group, and
/// every connection verified against our CA.
async fn tls_settings(servers: &Servers) -> (Settings, Topics) {
    let mut settings = Settings::load(None).expect("settings load");
    let suffix = Uuid::now_v7().simple().to_string();
    let url = create_database(servers, &format!("wh_test_tls_{suffix}")).await;
    settings.database.url = SecretString::from(verify_full(&url, &servers.ca));
    // One role on this server: it migrates (as owner) and serves.
    settings.database.migrate_url = settings.database.url.clone();
    settings.database.api_max_connections = 4;
    settings.api.listen = "127.0.0.1:0".parse().expect("address");
    settings.admin.listen = "127.0.0.1:0".parse().expect("address");
    settings.consumer.group_id = format!("wallet-hub-consumers-{suffix}");
    settings.kafka.brokers = servers.kafka_brokers.clone();
    settings.kafka.security_protocol = SecurityProtocol::SaslSsl;
    settings.kafka.sasl_username = servers.kafka_user.clone();
    settings.kafka.sasl_password = SecretString::from(servers.kafka_password.clone());
    settings.kafka.ssl_ca_location = servers.ca.display().to_string();
    settings.kafka.message_timeout_ms = 10_000;
    let issuer_dir = std::env::temp_dir().join(format!("wallet-hub-tests/{suffix}"));
    settings.auth.jwks = JwksSource::File(issuer_dir.join(DevIssuer::JWKS_FILE));
    let topics = Topics::new(&suffix);
    let all = topics.bindings();
    settings.bindings = all
        .iter()
        .map(|(binding, topic)| ((*binding).to_owned(), (*topic).clone()))
        .collect::<BTreeMap<_, _>>();
    // Over SASL_SSL too: the test's admin client is built from the service's settings.
    let admin: AdminClient<DefaultClientContext> = settings
        .kafka
        .client_config("test-admin")
        .create()
        .expect("admin client");
    let new_topics: Vec<NewTopic<'_>> = all
        .iter()
        .map(|(_, t)| NewTopic::new(t, 3, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new_topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("SASL_SSL broker reachable");
    for result in results {
        result.expect("topic created");
    }
    (settings, topics)
}

/// The startup error of a service with `settings`, as `main` prints it.
async fn startup_error(settings: Settings) -> String {
    match Application::build(settings, &[]).await {
        Ok(_) => panic!("the service started"),
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test]
async fn a_deposit_is_served_published_over_sasl_ssl_and_consumed_with_verified_tls() {
    let servers = servers();
    let (settings, topics) = tls_settings(servers).await;
    let app = start(settings, topics).await;

    let wallet = app.create_wallet("USD").await;
    let wallet = wallet["id"].as_str().expect("id").to_owned();
    let response = app.deposit(&wallet, "12.34").await;
    assert_eq!(response.status(), 201);

    // The activity projection is a Kafka consumer of funds-added-events: the event went out
    // through the relay and came back in, both over SASL_SSL.
    let activity = eventually("the deposit's event consumed", || async {
        let body: serde_json::Value = app
            .get(&format!("/v1/wallets/{wallet}/activity"))
            .await
            .json()
            .await
            .ok()?;
        (body["events_applied"] == 1).then_some(body)
    })
    .await;
    assert_eq!(activity["total_in"], "12.34");

    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&app.pool)
            .await
            .expect("pg_stat_ssl");
    assert!(encrypted, "the service's database connections use TLS");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_plaintext_connection_to_the_tls_only_postgres_is_refused() {
    let servers = servers();
    let plain = format!("{}?sslmode=disable", servers.database_url);
    let error = PgConnection::connect(&plain)
        .await
        .expect_err("the server refuses connections without TLS")
        .to_string();
    assert!(error.contains("no encryption"), "{error}");

    // The same URL with TLS is accepted: the refusal is about the missing TLS.
    PgConnection::connect(&verify_full(&servers.database_url, &servers.ca))
        .await
        .expect("TLS connection accepted")
        .close()
        .await
        .expect("closed");
}

#[tokio::test]
async fn a_postgres_certificate_from_another_ca_stops_startup_naming_postgres() {
    let servers = servers();
    let (mut settings, _) = tls_settings(servers).await;
    let url = create_database(servers, &format!("wh_test_tls_{}", Uuid::now_v7().simple())).await;
    settings.database.url = SecretString::from(verify_full(&url, &servers.other_ca));
    let error = startup_error(settings).await;
    assert!(error.contains("PostgreSQL"), "{error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[tokio::test]
async fn a_kafka_certificate_from_another_ca_stops_startup_naming_kafka() {
    let servers = servers();
    let (mut settings, _) = tls_settings(servers).await;
    settings.kafka.ssl_ca_location = servers.other_ca.display().to_string();
    let error = startup_error(settings).await;
    assert!(error.contains("Kafka"), "{error}");
    assert!(error.contains("certificate verify failed"), "{error}");
}

#[tokio::test]
async fn a_wrong_kafka_password_stops_startup_naming_kafka() {
    let servers = servers();
    let (mut settings, _) = tls_settings(servers).await;
    settings.kafka.sasl_password = SecretString::from("not-the-password".to_owned());
    let error = startup_error(settings).await;
    assert!(error.contains("Kafka"), "{error}");
    assert!(error.contains("Authentication failed"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
}
