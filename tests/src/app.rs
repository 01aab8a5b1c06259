//! A whole Wallet Hub per test: [`spawn_app`] builds the service from settings with its own
//! database, topics and consumer group, serves it on ephemeral ports, and hands back a
//! [`TestApp`] to drive it over HTTP and inspect its database.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use auth::JwksSource;
use auth::dev::DevIssuer;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wallet_hub::{Application, Settings};
use wallet_hub_client::{Amount, CreateTransfer, CreateUser, CreateWallet};

use crate::broker::create_topics;

/// Per-test Kafka topic names.
#[derive(Debug, Clone)]
pub struct Topics {
    pub wallet_created: String,
    pub funds_added: String,
    pub user_created: String,
    pub funds_withdrawn: String,
    pub funds_transferred: String,
    pub wallet_status: String,
    pub hold_placed: String,
    pub hold_captured: String,
    pub hold_voided: String,
    pub hold_expired: String,
    pub funds_received: String,
}

impl Topics {
    /// The outbox's topics of one test: each default name with `suffix`.
    pub fn new(suffix: &str) -> Self {
        let topic = |name: &str| format!("{name}-{suffix}");
        Self {
            wallet_created: topic("wallet-created-events"),
            funds_added: topic("funds-added-events"),
            user_created: topic("user-created-events"),
            funds_withdrawn: topic("funds-withdrawn-events"),
            funds_transferred: topic("funds-transferred-events"),
            wallet_status: topic("wallet-status-events"),
            hold_placed: topic("hold-placed-events"),
            hold_captured: topic("hold-captured-events"),
            hold_voided: topic("hold-voided-events"),
            hold_expired: topic("hold-expired-events"),
            funds_received: topic("funds-received-events"),
        }
    }

    /// Each topic with the binding that names it.
    pub fn bindings(&self) -> [(&'static str, &String); 11] {
        [
            ("wallet_created_out", &self.wallet_created),
            ("funds_added_out", &self.funds_added),
            ("user_created_out", &self.user_created),
            ("funds_withdrawn_out", &self.funds_withdrawn),
            ("funds_transferred_out", &self.funds_transferred),
            ("wallet_status_changed_out", &self.wallet_status),
            ("hold_placed_out", &self.hold_placed),
            ("hold_captured_out", &self.hold_captured),
            ("hold_voided_out", &self.hold_voided),
            ("hold_expired_out", &self.hold_expired),
            ("funds_received_out", &self.funds_received),
        ]
    }
}

/// A running service and what a test needs to talk to it.
#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    /// The admin server: /metrics, /health/*.
    pub admin_address: String,
    /// Raw HTTP, for requests the typed client cannot make (malformed input on purpose).
    pub client: reqwest::Client,
    /// The typed client of this service, without a token: [`Self::operator`],
    /// [`Self::as_user`] and friends give it one.
    pub api: wallet_hub_client::Client,
    /// The database as its owner (the migration role): fixtures and inspection, beyond
    /// what the service's runtime role may do.
    pub pool: PgPool,
    pub settings: Settings,
    pub topics: Topics,
    /// Signs the tokens this service accepts (its own development issuer).
    pub issuer: DevIssuer,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Settings from the environment (`DATABASE_URL`, `KAFKA_BROKERS` set by `scripts/test`),
/// with a fresh database, fresh topics and a fresh consumer group.
pub async fn test_settings() -> (Settings, Topics) {
    let mut settings = Settings::load(None).expect("settings load");
    let suffix = Uuid::now_v7().simple().to_string();
    // The test database belongs to DATABASE_URL's role, which migrates it; the service runs
    // as a member of the runtime role, as in production.
    let owner = create_database(settings.database.url.expose_secret(), &suffix).await;
    ensure_runtime_login(settings.database.url.expose_secret()).await;
    settings.database.url = as_role(&owner, RUNTIME_LOGIN, RUNTIME_PASSWORD);
    settings.database.migrate_url = owner;
    settings.database.api_max_connections = 8;
    settings.database.relay_max_connections = 4;
    settings.database.consumers_max_connections = 4;
    // Many tests fire dozens of requests at once as one principal: the limits are tested
    // on their own (tests/tests/it/limits.rs).
    settings.api.write_concurrency_limit = std::num::NonZeroUsize::new(1024).expect("non-zero");
    settings.api.rate_limit_per_second = 0;
    settings.api.money_out_rate_limit_per_second = 0;
    settings.api.listen = "127.0.0.1:0".parse().expect("valid address");
    settings.admin.listen = "127.0.0.1:0".parse().expect("valid address");
    settings.consumer.group_id = format!("wallet-hub-consumers-{suffix}");
    settings.kafka.message_timeout_ms = 10_000;
    // The service creates the dead-letter topics itself (`topics.provision`); one
    // partition each keeps the broker light across the suite's many apps.
    settings.topics.partitions = 1;
    settings.health.group_lag_interval_ms = 1_000;
    // Each service trusts its own development issuer (created by `Application::build`).
    let issuer_dir = std::env::temp_dir().join(format!("wallet-hub-tests/{suffix}"));
    settings.auth.jwks = JwksSource::File(issuer_dir.join(DevIssuer::JWKS_FILE));
    let topic = |name: &str| format!("{name}-{suffix}");
    let topics = Topics::new(&suffix);
    // The analytics job's topics too: the service's consumers read them, and a record left
    // on the shared default topic (by a local scripts/run) must not reach a test's inbox.
    let analytics_volume = topic("analytics-volume-events");
    let wallet_velocity = topic("wallet-velocity-events");
    let mut all = vec![
        ("analytics_volume_out", &analytics_volume),
        ("wallet_velocity_out", &wallet_velocity),
    ];
    all.extend(topics.bindings());
    settings.bindings = all
        .iter()
        .map(|(binding, topic)| ((*binding).to_owned(), (*topic).clone()))
        .collect::<BTreeMap<_, _>>();
    let names: Vec<&str> = all.iter().map(|(_, t)| t.as_str()).collect();
    create_topics(&settings.kafka.brokers, &names).await;
    (settings, topics)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let (mut settings, topics) = test_settings().await;
    customize(&mut settings);
    start(settings, topics).await
}

pub async fn start(settings: Settings, topics: Topics) -> TestApp {
    telemetry::init("wallet-hub-tests", &settings.log, &settings.telemetry)
        .expect("telemetry init");
    let app = Application::build(settings.clone(), &[])
        .await
        .expect("app builds");
    let address = format!("http://{}", app.api_addr().expect("API bound"));
    let admin_address = format!("http://{}", app.admin_addr().expect("admin bound"));
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(settings.database.migrate_url.expose_secret())
        .await
        .expect("the owner's pool of the test database");
    let issuer = DevIssuer::load_or_create(&issuer_dir(&settings)).expect("development issuer");
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::new();
    let api = wallet_hub_client::Client::with_http_client(client.clone(), &address)
        .expect("the API's address is a URL");
    TestApp {
        address,
        admin_address,
        client,
        api,
        pool,
        settings,
        topics,
        issuer,
        shutdown,
        handle: Some(handle),
    }
}

/// The folder of the development issuer the settings trust.
fn issuer_dir(settings: &Settings) -> PathBuf {
    match &settings.auth.jwks {
        JwksSource::File(path) => path.parent().expect("JWKS file in a folder").to_path_buf(),
        JwksSource::Url(url) => panic!("tests trust a JWKS file, not {url}"),
    }
}

/// What the operator principal of the tests may do: deposit (as the payment processor)
/// and freeze, unfreeze and read anything (as risk and operations).
pub const OPERATOR_SCOPES: [&str; 2] = ["wallets:deposit", "wallets:admin"];

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A token of this service's issuer for `subject` with `scopes`, valid for an hour.
    pub fn token(&self, subject: &str, scopes: &[&str]) -> String {
        self.issuer
            .mint(
                &self.settings.auth.audience,
                subject,
                scopes,
                Duration::from_secs(3600),
            )
            .expect("token minted")
            .expose_secret()
            .to_owned()
    }

    /// A token of the user `user` (registered through the API or [`Self::fixture_user`]).
    pub async fn user_token(&self, user: Uuid) -> String {
        let subject: Option<String> = sqlx::query_scalar("SELECT subject FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await
            .expect("user's subject")
            .flatten();
        self.token(&subject.expect("user bound to a subject"), &[])
    }

    /// A token of the owner of wallet `wallet`, if the wallet exists.
    pub async fn owner_token(&self, wallet: &str) -> Option<String> {
        let owner: Option<Uuid> = match wallet.parse::<Uuid>() {
            Ok(id) => sqlx::query_scalar("SELECT user_id FROM wallets WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .expect("wallet's owner"),
            Err(_) => None,
        };
        match owner {
            Some(user) => Some(self.user_token(user).await),
            None => None,
        }
    }

    /// The operator: deposits, freezes, unfreezes, reads anything.
    pub fn operator_token(&self) -> String {
        self.token("test-operator", &OPERATOR_SCOPES)
    }

    /// The typed client acting as the operator ([`OPERATOR_SCOPES`]).
    pub fn operator(&self) -> wallet_hub_client::Client {
        self.api.with_token(self.operator_token())
    }

    /// The typed client acting as a principal that has no user yet (a fresh subject).
    pub fn new_principal(&self) -> wallet_hub_client::Client {
        self.api
            .with_token(self.token(&format!("test-user-{}", Uuid::now_v7()), &[]))
    }

    /// The typed client acting as the user `user`.
    pub async fn as_user(&self, user: Uuid) -> wallet_hub_client::Client {
        self.api.with_token(self.user_token(user).await)
    }

    /// The typed client acting as the owner of `wallet`.
    pub async fn as_owner(&self, wallet: domain::WalletId) -> wallet_hub_client::Client {
        let token = self
            .owner_token(&wallet.to_string())
            .await
            .expect("the wallet exists");
        self.api.with_token(token)
    }

    /// A user registered through the typed client, with a unique email.
    pub async fn new_user(&self) -> wallet_hub_client::User {
        let user = CreateUser {
            email: format!("{}@example.com", Uuid::now_v7()),
            name: "Test User".to_owned(),
        };
        let reply = self
            .new_principal()
            .create_user(&user, None)
            .await
            .expect("user created");
        assert_eq!(reply.status, 201, "user created");
        reply.body
    }

    /// A wallet named `Main` of `user`, created by that user through the typed client.
    pub async fn new_wallet_for(&self, user: Uuid, currency: &str) -> wallet_hub_client::Wallet {
        let wallet = CreateWallet {
            name: "Main".to_owned(),
            currency: currency.parse().expect("a known currency"),
        };
        let reply = self
            .as_user(user)
            .await
            .create_wallet(&wallet, None)
            .await
            .expect("wallet created");
        assert_eq!(reply.status, 201, "wallet created");
        reply.body
    }

    /// A wallet in `currency` of a new user, through the typed client.
    pub async fn new_wallet(&self, currency: &str) -> wallet_hub_client::Wallet {
        let user = self.new_user().await;
        self.new_wallet_for(user.id.into(), currency).await
    }

    /// Who a test request acts as when the test does not say: whoever may make it.
    /// - `POST /v1/users`: a new user (a fresh subject);
    /// - `POST /v1/wallets` naming `user_id` in the body: that user (the field is removed:
    ///   the owner of a new wallet is the caller);
    /// - a withdrawal from, closing of or hold on a wallet, a transfer out of it, or a
    ///   capture or void of its hold: its owner;
    /// - anything else: the operator ([`OPERATOR_SCOPES`]).
    pub async fn acting(
        &self,
        method: &reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (String, Option<serde_json::Value>) {
        let mut body = body.cloned();
        let segments: Vec<&str> = path.split('?').next().unwrap_or("").split('/').collect();
        let token = match (method.as_str(), segments.as_slice()) {
            ("POST", ["", "v1", "users"]) => {
                Some(self.token(&format!("test-user-{}", Uuid::now_v7()), &[]))
            }
            ("POST", ["", "v1", "wallets"]) => {
                let user = body
                    .as_mut()
                    .and_then(|b| b.as_object_mut())
                    .and_then(|b| b.remove("user_id"))
                    .and_then(|id| id.as_str().and_then(|id| id.parse::<Uuid>().ok()));
                match user {
                    Some(user) => Some(self.user_token(user).await),
                    None => None,
                }
            }
            (
                "POST",
                [
                    "",
                    "v1",
                    "wallets",
                    wallet,
                    "withdrawals" | "close" | "holds",
                ],
            ) => self.owner_token(wallet).await,
            ("POST", ["", "v1", "holds", hold, "capture" | "void"]) => {
                let wallet: Option<Uuid> = match hold.parse::<Uuid>() {
                    Ok(id) => sqlx::query_scalar("SELECT wallet_id FROM holds WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .expect("hold's wallet"),
                    Err(_) => None,
                };
                match wallet {
                    Some(wallet) => self.owner_token(&wallet.to_string()).await,
                    None => None,
                }
            }
            ("POST", ["", "v1", "transfers"]) => {
                let from = body
                    .as_ref()
                    .and_then(|b| b["from_wallet_id"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                self.owner_token(&from).await
            }
            _ => None,
        };
        (token.unwrap_or_else(|| self.operator_token()), body)
    }

    /// A request to the API acting as [`Self::acting`] says, with `body` as JSON if given.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> reqwest::RequestBuilder {
        let (token, body) = self.acting(&method, path, body).await;
        let request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path, Some(body))
            .await
            .send()
            .await
            .expect("request sent")
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.admin_address, path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, None)
            .await
            .send()
            .await
            .expect("request sent")
    }

    /// The items of the first page of the list at `path` (`{"items": [...], ...}`).
    pub async fn list(&self, path: &str) -> Vec<serde_json::Value> {
        let page: serde_json::Value = self.get(path).await.json().await.expect("page JSON");
        page["items"].as_array().cloned().expect("a page of items")
    }

    /// Creates a user with a unique email (through the typed client) and returns its id.
    pub async fn create_user(&self) -> Uuid {
        self.new_user().await.id.into()
    }

    /// Creates a wallet in `currency` for a new user and returns its JSON.
    pub async fn create_wallet(&self, currency: &str) -> serde_json::Value {
        let user = self.create_user().await;
        self.create_wallet_for(user, currency).await
    }

    /// A user inserted straight into the database (no API call, no outbox row), for tests
    /// that count outbox rows.
    pub async fn fixture_user(&self) -> Uuid {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO users (id, email, email_normalized, name, created_at, issuer, subject) \
             VALUES ($1, $2, $2, 'Fixture', now(), $3, $4)",
        )
        .bind(id)
        .bind(format!("{id}@fixture.example"))
        .bind(DevIssuer::ISSUER)
        .bind(format!("fixture-{id}"))
        .execute(&self.pool)
        .await
        .expect("insert fixture user");
        id
    }

    /// Creates a wallet of `user` through the typed client and returns it as JSON.
    pub async fn create_wallet_for(&self, user: Uuid, currency: &str) -> serde_json::Value {
        let wallet = self.new_wallet_for(user, currency).await;
        serde_json::to_value(wallet).expect("a wallet serializes")
    }

    pub async fn deposit(&self, wallet_id: &str, amount: &str) -> reqwest::Response {
        self.post_json(
            &format!("/v1/wallets/{wallet_id}/deposits"),
            &serde_json::json!({"amount": amount}),
        )
        .await
    }

    pub async fn withdraw(&self, wallet_id: &str, amount: &str) -> reqwest::Response {
        self.post_json(
            &format!("/v1/wallets/{wallet_id}/withdrawals"),
            &serde_json::json!({"amount": amount}),
        )
        .await
    }

    pub async fn transfer(&self, from: &str, to: &str, amount: &str) -> reqwest::Response {
        self.post_json(
            "/v1/transfers",
            &serde_json::json!({"from_wallet_id": from, "to_wallet_id": to, "amount": amount}),
        )
        .await
    }

    /// One user with two USD wallets `a` and `b`: 10.00 deposited into `a`, 1.00 withdrawn,
    /// 2.00 transferred to `b`. Returns (user, a, b).
    pub async fn money_scenario(&self) -> (Uuid, String, String) {
        let user = self.create_user().await;
        let a = self.new_wallet_for(user, "USD").await.id;
        let b = self.new_wallet_for(user, "USD").await.id;
        let owner = self.as_user(user).await;
        self.operator()
            .deposit(a, &Amount::new("10.00"), None)
            .await
            .expect("deposit");
        owner
            .withdraw(a, &Amount::new("1.00"), None)
            .await
            .expect("withdrawal");
        let transfer = CreateTransfer {
            from_wallet_id: a,
            to_wallet_id: b,
            amount: "2.00".to_owned(),
        };
        owner.transfer(&transfer, None).await.expect("transfer");
        (user, a.to_string(), b.to_string())
    }

    /// On `from`, by its owner: a hold of 1.00 for `to`, captured for 0.40 (the rest
    /// released); the hold's id.
    pub async fn captured_hold_into(&self, from: &str, to: &str) -> domain::HoldId {
        let from: domain::WalletId = from.parse().expect("wallet id");
        let owner = self.as_owner(from).await;
        let hold = owner
            .place_hold(
                from,
                &wallet_hub_client::PlaceHold {
                    to_wallet_id: Some(to.parse().expect("wallet id")),
                    ..wallet_hub_client::PlaceHold::new("1.00", 3600)
                },
                None,
            )
            .await
            .expect("placed")
            .body
            .id;
        let capture = wallet_hub_client::Capture {
            amount: Some("0.40".to_owned()),
        };
        owner
            .capture_hold(hold, &capture, None)
            .await
            .expect("captured");
        hold
    }

    /// Stops the service the way SIGTERM does and waits for it to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("running");
        tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("service stops within a minute")
            .expect("service task did not panic")
    }

    pub async fn outbox_rows(&self) -> i64 {
        self.count("SELECT count(*) FROM outbox").await
    }

    /// Rows still queued for the relay (unsent, backing off or parked).
    pub async fn queued_rows(&self) -> i64 {
        self.count("SELECT count(*) FROM outbox_pending").await
    }

    /// Rows parked after too many failed attempts.
    pub async fn parked_rows(&self) -> i64 {
        self.count("SELECT count(*) FROM outbox_pending WHERE parked_at IS NOT NULL")
            .await
    }

    pub async fn wallet_count(&self) -> i64 {
        self.count("SELECT count(*) FROM wallets").await
    }

    async fn count(&self, query: &'static str) -> i64 {
        sqlx::query_scalar(query)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|error| panic!("{query}: {error}"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Creates `wh_test_<suffix>` next to the database of `base_url`; returns its URL.
async fn create_database(base_url: &str, suffix: &str) -> SecretString {
    let name = format!("wh_test_{suffix}");
    let mut admin = PgConnection::connect(base_url)
        .await
        .expect("PostgreSQL reachable (run scripts/test, or scripts/services up)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let (server, _db) = base_url.rsplit_once('/').expect("URL has a database path");
    SecretString::from(format!("{server}/{name}"))
}

/// The login role the services of the tests run as: a member of `wallet_hub_runtime`, the
/// group role the migrations grant DML to.
pub const RUNTIME_LOGIN: &str = "wallet_hub_test_runtime";
const RUNTIME_PASSWORD: &str = "wallet_hub_test_runtime";

/// Creates the runtime group role (as the migrations would) and [`RUNTIME_LOGIN`] in it,
/// unless they exist; tests running at once may race to create them.
async fn ensure_runtime_login(admin_url: &str) {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .expect("PostgreSQL reachable");
    // The names and the password are this file's constants, never input.
    let statement = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wallet_hub_runtime') THEN \
             CREATE ROLE wallet_hub_runtime NOLOGIN; \
           END IF; \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{RUNTIME_LOGIN}') THEN \
             CREATE ROLE {RUNTIME_LOGIN} LOGIN PASSWORD '{RUNTIME_PASSWORD}' \
               IN ROLE wallet_hub_runtime; \
           END IF; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
         END $$"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await
        .expect("runtime login role");
}

/// `url` with another user and password.
pub fn as_role(url: &SecretString, user: &str, password: &str) -> SecretString {
    let mut url = url::Url::parse(url.expose_secret()).expect("a valid database URL");
    url.set_username(user).expect("URL takes a user");
    url.set_password(Some(password))
        .expect("URL takes a password");
    SecretString::from(url.to_string())
}
