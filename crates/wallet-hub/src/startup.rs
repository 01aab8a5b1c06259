//! Assembly: settings in, a running service out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use api::AppState;
use consumers::{WalletActivityProjection, WalletCreatedEventConsumer};
use event_bindings::EventBindings;
use kafka::{ConsumerOptions, ConsumerStatus, GroupTopics, KafkaProbe, LagReader, ProbeError};
use outbox::{CommitWaker, DomainEventPublisher, Relay};
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use telemetry::metrics::{DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::config::{DatabaseConfig, Settings, TopicsConfig};

/// Migrations compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Which parts of the service this process runs (`wallet-hub serve --role ...`). The
/// admin server (metrics, health) runs in every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// API, relay and consumers in one process.
    All,
    /// The HTTP API only.
    Api,
    /// The outbox relay only.
    Relay,
    /// The Kafka consumers only.
    Consumer,
}

/// What runs, after roles and the `enabled` switches of the config are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    api: bool,
    relay: bool,
    consumer: bool,
}

impl Parts {
    fn new(roles: &[Role], settings: &Settings) -> Self {
        let has = |role| roles.is_empty() || roles.contains(&Role::All) || roles.contains(&role);
        Self {
            api: has(Role::Api),
            relay: has(Role::Relay) && settings.relay.enabled,
            consumer: has(Role::Consumer) && settings.consumer.enabled,
        }
    }
}

/// A built service: connections made, listeners bound, nothing running yet.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    parts: Parts,
    pools: Pools,
    api_listener: Option<TcpListener>,
    /// Checks the API's bearer tokens (only when this process serves the API).
    verifier: Option<auth::Verifier>,
    admin_listener: TcpListener,
    bindings: EventBindings,
}

/// One pool per part that runs here, each sized by its own `database.*_max_connections`,
/// so that a flood of API requests cannot take the connections the relay publishes with.
#[derive(Debug, Clone)]
pub struct Pools {
    pub api: Option<PgPool>,
    pub relay: Option<PgPool>,
    pub consumers: Option<PgPool>,
}

impl Pools {
    /// Each pool with its `pool` label.
    fn labelled(&self) -> impl Iterator<Item = (&'static str, &PgPool)> {
        [
            ("api", self.api.as_ref()),
            ("relay", self.relay.as_ref()),
            ("consumers", self.consumers.as_ref()),
        ]
        .into_iter()
        .filter_map(|(label, pool)| pool.map(|pool| (label, pool)))
    }

    async fn close(&self) {
        for (_, pool) in self.labelled() {
            pool.close().await;
        }
    }
}

/// Connection options of the runtime role (`database.url`): every connection carries the
/// configured `statement_timeout` and `lock_timeout`.
fn runtime_options(config: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = config
        .url
        .expose_secret()
        .parse()
        .context("database.url is not a valid PostgreSQL URL")?;
    Ok(options.options([
        ("statement_timeout", config.statement_timeout_ms.to_string()),
        ("lock_timeout", config.lock_timeout_ms.to_string()),
    ]))
}

/// Connects a pool of at most `max_connections` runtime connections (`what` names it in
/// errors), failing fast if the database is unreachable.
async fn connect_pool(
    config: &DatabaseConfig,
    max_connections: u32,
    what: &str,
) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_with(runtime_options(config)?)
        .await
        .with_context(|| {
            format!("cannot connect the {what} pool to PostgreSQL (database.url / DATABASE_URL)")
        })
}

/// Connects a small pool of the runtime role for one-off commands (`outbox`, `dlq`).
pub async fn connect_database(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    connect_pool(config, 2, "command").await
}

/// Applies pending migrations as the migration owner (`database.migrate_url`, or `url`
/// when that is empty), on a connection of its own without the runtime timeouts: a
/// migration may rewrite a large table.
pub async fn migrate(config: &DatabaseConfig) -> anyhow::Result<()> {
    let (url, key) = if config.migrate_url.expose_secret().is_empty() {
        (&config.url, "database.url / DATABASE_URL")
    } else {
        (
            &config.migrate_url,
            "database.migrate_url / DATABASE_MIGRATE_URL",
        )
    };
    let options: PgConnectOptions = url
        .expose_secret()
        .parse()
        .with_context(|| format!("{key} is not a valid PostgreSQL URL"))?;
    let mut conn = PgConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL to migrate ({key})"))?;
    MIGRATOR
        .run(&mut conn)
        .await
        .with_context(|| format!("cannot apply migrations as the role of {key}"))?;
    conn.close().await.ok();
    Ok(())
}

/// Asks the brokers for metadata before anything runs. Refused credentials or an untrusted
/// certificate stop the service here, with a message naming Kafka and librdkafka's reason.
/// Brokers that do not answer at all only warn: the relay and the consumers retry and
/// readiness reports Kafka down, so a broker restart does not stop a rollout.
async fn check_kafka(settings: &Settings) -> anyhow::Result<()> {
    let probe = KafkaProbe::new(&settings.kafka)
        .context("cannot create a Kafka client from the [kafka] settings")?;
    let timeout = Duration::from_millis(settings.health.check_timeout_ms);
    match probe
        .check_at_startup(&settings.kafka.brokers, timeout)
        .await
    {
        Ok(_) => Ok(()),
        Err(error @ ProbeError::Refused { .. }) => Err(error).context(
            "cannot use Kafka (check kafka.security_protocol, kafka.sasl_username, \
             kafka.sasl_password and kafka.ssl_ca_location)",
        ),
        Err(error @ ProbeError::Unreachable { .. }) => {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "Kafka is not reachable yet; the relay and the consumers keep trying"
            );
            Ok(())
        }
    }
}

async fn bind(address: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({what})"))
}

impl Application {
    /// Validates the settings, connects to PostgreSQL, applies migrations if configured,
    /// and binds the listeners (port 0 picks a free port). `roles` empty means all.
    pub async fn build(settings: Settings, roles: &[Role]) -> anyhow::Result<Self> {
        let bindings =
            EventBindings::new(&settings.bindings).context("invalid [bindings] configuration")?;
        let configured_base = &settings.events.schema_base_url;
        anyhow::ensure!(
            configured_base.is_empty()
                || url::Url::parse(configured_base)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
            "events.schema_base_url `{configured_base}` is not an absolute http(s) URL"
        );
        let parts = Parts::new(roles, &settings);
        let verifier = if parts.api {
            Some(crate::identity::verifier(&settings).await?)
        } else {
            None
        };
        if parts.relay || parts.consumer {
            check_kafka(&settings).await?;
        }
        if (parts.relay || parts.consumer) && settings.topics.provision {
            provision_topics(&settings, &bindings).await?;
        }
        if settings.database.migrate_on_start {
            migrate(&settings.database).await?;
        }
        let database = &settings.database;
        let pools = Pools {
            api: if parts.api {
                Some(connect_pool(database, database.api_max_connections, "api").await?)
            } else {
                None
            },
            relay: if parts.relay {
                Some(connect_pool(database, database.relay_max_connections, "relay").await?)
            } else {
                None
            },
            consumers: if parts.consumer {
                let max = database.consumers_max_connections;
                Some(connect_pool(database, max, "consumers").await?)
            } else {
                None
            },
        };
        let api_listener = if parts.api {
            Some(bind(settings.api.listen, "api.listen").await?)
        } else {
            None
        };
        let admin_listener = bind(settings.admin.listen, "admin.listen").await?;
        let bindings = bindings.with_schema_base(&schema_base(&settings, api_listener.as_ref()));
        Ok(Self {
            settings,
            parts,
            pools,
            api_listener,
            verifier,
            admin_listener,
            bindings,
        })
    }

    /// The API address, if this process serves the API.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin_listener.local_addr()
    }

    /// The pools of the parts that run here.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// Runs this process's parts until `shutdown` is cancelled, then lets each finish
    /// what it is doing: in-flight requests complete, the relay finishes its batch, the
    /// consumer commits its offsets. If one part fails, the others are stopped.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application {
            settings,
            parts,
            pools,
            api_listener,
            verifier,
            admin_listener,
            bindings,
        } = self;
        let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
        let metrics = telemetry::metrics::install();

        if let (Some(listener), Some(verifier), Some(pool)) =
            (api_listener, verifier, pools.api.clone())
        {
            let state = AppState {
                pool: pool.clone(),
                publisher: DomainEventPublisher::new(),
                waker: if settings.relay.notify {
                    CommitWaker::spawn(pool.connect_options().as_ref().clone(), shutdown.clone())
                } else {
                    CommitWaker::disabled()
                },
                idempotency_ttl_hours: settings.api.idempotency_ttl_hours,
                verifier,
                event_contracts: api::contracts::EventContracts::new(
                    &bindings,
                    &settings.consumer.dead_letter_suffix,
                    &consumers::consumed_event_types(),
                ),
            };
            let app = api::router(state, &settings.api);
            let api_shutdown = shutdown.clone();
            tracing::info!(address = %listener.local_addr()?, "API listening");
            tasks.spawn(expire_idempotency_keys(pool.clone(), shutdown.clone()));
            let config = settings.api.clone();
            tasks.spawn(async move {
                api::server::serve(listener, app, &config, api_shutdown.cancelled_owned()).await;
                Ok(())
            });
        }

        let mut relay_status = None;
        if let Some(pool) = pools.relay.clone() {
            let relay = Relay::new(
                pool,
                settings.kafka.clone(),
                bindings.clone(),
                settings.relay.clone(),
            )
            .context("cannot create Kafka producer")?;
            relay_status = Some(relay.status());
            let relay_shutdown = shutdown.clone();
            tasks.spawn(async move {
                relay.run(relay_shutdown).await;
                Ok(())
            });
        }

        let groups = consumer_groups(&settings, &bindings);
        let mut consumers: Vec<(&'static str, Arc<ConsumerStatus>)> = Vec::new();
        if let Some(pool) = pools.consumers.clone() {
            let [welcome, activity] = groups.clone();
            consumers.push(spawn_consumer(
                &mut tasks,
                &settings,
                welcome,
                WalletCreatedEventConsumer::new(pool.clone()),
                &shutdown,
            ));
            consumers.push(spawn_consumer(
                &mut tasks,
                &settings,
                activity,
                WalletActivityProjection::new(pool.clone()),
                &shutdown,
            ));
        }

        let kafka_probe = if parts.relay || parts.consumer {
            Some(KafkaProbe::new(&settings.kafka).context("cannot create Kafka health client")?)
        } else {
            None
        };
        let mut topics = Vec::new();
        if parts.relay {
            topics.extend(bindings.topics().into_iter().map(str::to_owned));
        }
        if parts.consumer {
            topics.extend(consumed_topics(&settings, &groups));
        }
        topics.sort();
        topics.dedup();
        // Readiness checks the database through the API's pool where the API runs (the
        // one a flood exhausts), else the relay's, else the consumers'.
        let checked = match pools.labelled().next() {
            Some((_, pool)) => pool.clone(),
            None => connect_pool(&settings.database, 1, "admin").await?,
        };
        let admin = admin::router(AdminState {
            pool: checked,
            metrics,
            health: settings.health.clone(),
            kafka: kafka_probe,
            topics,
            relay: relay_status,
            consumers,
        });
        // Every role reports the groups' lag, so it is there when no consumer runs.
        let lag = LagReader::new(&settings.kafka, groups.to_vec())
            .context("cannot create the consumer-group lag reader")?;
        tasks.spawn(admin::sample_group_lag(
            lag,
            Duration::from_millis(settings.health.group_lag_interval_ms.max(100)),
            Duration::from_millis(settings.health.check_timeout_ms),
            shutdown.clone(),
        ));
        tracing::info!(address = %admin_listener.local_addr()?, "admin server (metrics, health) listening");
        let admin_shutdown = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(admin_listener, admin)
                .with_graceful_shutdown(admin_shutdown.cancelled_owned())
                .await
                .context("admin server failed")
        });
        for (label, pool) in pools.labelled() {
            tasks.spawn(sample_pool(label, pool.clone(), shutdown.clone()));
        }

        let mut outcome = Ok(());
        while let Some(joined) = tasks.join_next().await {
            let result = joined.context("service task panicked").and_then(|r| r);
            if let Err(error) = result {
                tracing::error!(
                    error = format!("{error:#}"),
                    "service task failed; stopping"
                );
                shutdown.cancel();
                if outcome.is_ok() {
                    outcome = Err(error);
                }
            } else if !shutdown.is_cancelled() {
                // A task that ends on its own leaves the service incomplete: stop it all.
                shutdown.cancel();
            }
        }
        pools.close().await;
        outcome
    }
}

/// The consumer groups of the service and the topics each reads: the welcome consumer in
/// `consumer.group_id`, the activity projection in its own group (a projection keeps its
/// own offsets).
pub fn consumer_groups(settings: &Settings, bindings: &EventBindings) -> [GroupTopics; 2] {
    let topics = |types: &[domain::EventType]| {
        types
            .iter()
            .map(|t| bindings.destination(*t).to_owned())
            .collect()
    };
    [
        GroupTopics {
            group: settings.consumer.group_id.clone(),
            topics: topics(WalletCreatedEventConsumer::EVENT_TYPES),
        },
        GroupTopics {
            group: format!("{}-activity", settings.consumer.group_id),
            topics: topics(WalletActivityProjection::EVENT_TYPES),
        },
    ]
}

/// The topics the consumers read, and their dead-letter topics.
fn consumed_topics(settings: &Settings, groups: &[GroupTopics]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| g.topics.iter())
        .flat_map(|topic| {
            [
                topic.clone(),
                format!("{topic}{}", settings.consumer.dead_letter_suffix),
            ]
        })
        .collect()
}

/// Creates the missing topics this service uses (every binding's topic, and the
/// dead-letter topics of the consumed ones), so that nothing depends on the brokers'
/// auto-creation.
async fn provision_topics(settings: &Settings, bindings: &EventBindings) -> anyhow::Result<()> {
    let TopicsConfig {
        provision: _,
        partitions,
        replication_factor,
    } = settings.topics;
    let mut topics: Vec<String> = bindings.topics().into_iter().map(str::to_owned).collect();
    topics.extend(consumed_topics(
        settings,
        &consumer_groups(settings, bindings),
    ));
    topics.sort();
    topics.dedup();
    let created =
        kafka::topics::ensure_topics(&settings.kafka, &topics, partitions, replication_factor)
            .await
            .context("cannot provision the Kafka topics (topics.provision)")?;
    if !created.is_empty() {
        tracing::info!(
            ?created,
            partitions,
            replication_factor,
            "created missing Kafka topics"
        );
    }
    Ok(())
}

/// Starts one consumer task; returns its name and status for readiness.
fn spawn_consumer<H: kafka::EventHandler + 'static>(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    settings: &Settings,
    GroupTopics { group, topics }: GroupTopics,
    handler: H,
    shutdown: &CancellationToken,
) -> (&'static str, Arc<ConsumerStatus>) {
    let name = handler.name();
    let status = ConsumerStatus::new();
    let (kafka, suffix) = (
        settings.kafka.clone(),
        settings.consumer.dead_letter_suffix.clone(),
    );
    let max_payload_bytes = settings.consumer.max_payload_bytes;
    let rejoin_timeout = Duration::from_millis(settings.consumer.rejoin_timeout_ms);
    let admission = kafka::Admission::new(settings.consumer.trusted_sources.clone());
    let (task_status, shutdown) = (Arc::clone(&status), shutdown.clone());
    tasks.spawn(async move {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let options = ConsumerOptions {
            group_id: &group,
            topics: &topics,
            dead_letter_suffix: &suffix,
            max_payload_bytes,
            rejoin_timeout,
            admission: &admission,
        };
        kafka::run_consumer(&kafka, options, handler, task_status, shutdown)
            .await
            .with_context(|| format!("consumer {name} failed"))
    });
    (name, status)
}

/// The base URL of the event schemas: `events.schema_base_url`, or else the API's own
/// address (as bound, so port 0 resolves), or else `api.listen` (a process without the API).
fn schema_base(settings: &Settings, api_listener: Option<&TcpListener>) -> String {
    if !settings.events.schema_base_url.is_empty() {
        return settings.events.schema_base_url.clone();
    }
    let address = api_listener
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(settings.api.listen);
    format!("http://{address}")
}

/// Deletes expired Idempotency-Key records once a minute, in bounded batches.
async fn expire_idempotency_keys(pool: PgPool, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        let deleted = match pool.acquire().await {
            Ok(mut conn) => store::idempotency::delete_expired(&mut conn, 1000).await,
            Err(error) => Err(error.into()),
        };
        if let Err(error) = deleted {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "cannot delete expired idempotency keys"
            );
        }
    }
}

/// Exports the usage of the pool labelled `label` every few seconds until shutdown.
async fn sample_pool(
    label: &'static str,
    pool: PgPool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    let max = pool.options().get_max_connections();
    metrics::gauge!(DB_POOL_MAX_CONNECTIONS, "pool" => label).set(f64::from(max));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => label, "state" => "idle")
            .set(f64::from(idle));
        metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => label, "state" => "in_use")
            .set(f64::from(size.saturating_sub(idle)));
    }
}
