//! Assembly: settings in, a running service out.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use api::AppState;
use consumers::WalletCreatedEventConsumer;
use domain::EventType;
use event_bindings::EventBindings;
use kafka::EventProducer;
use outbox::{DomainEventPublisher, Relay};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseConfig, Settings};

/// Migrations compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A built service: connections made, listener bound, nothing running yet.
#[derive(Debug)]
pub struct Application {
    settings: Settings,
    pool: PgPool,
    listener: TcpListener,
    bindings: EventBindings,
}

/// Connects the pool described by `config`, failing fast if the database is unreachable.
pub async fn connect_database(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = config
        .url
        .expose_secret()
        .parse()
        .context("database.url is not a valid PostgreSQL URL")?;
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL (database.url / DATABASE_URL)")
}

impl Application {
    /// Validates the settings, connects to PostgreSQL, applies migrations if configured,
    /// and binds the API listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let bindings =
            EventBindings::new(&settings.bindings).context("invalid [bindings] configuration")?;
        let pool = connect_database(&settings.database).await?;
        if settings.database.migrate_on_start {
            MIGRATOR
                .run(&pool)
                .await
                .context("cannot apply migrations")?;
        }
        let listener = TcpListener::bind(settings.api.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.api.listen))?;
        Ok(Self {
            settings,
            pool,
            listener,
            bindings,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs the API, the relay and the consumer until `shutdown` is cancelled, then lets
    /// each finish what it is doing: in-flight requests complete, the relay finishes its
    /// batch, the consumer commits its offsets. If one part fails, the others are stopped.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application {
            settings,
            pool,
            listener,
            bindings,
        } = self;
        let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();

        let state = AppState {
            pool: pool.clone(),
            publisher: DomainEventPublisher::new(settings.relay.notify),
        };
        let app = api::router(state, &settings.api);
        let api_shutdown = shutdown.clone();
        tracing::info!(address = %listener.local_addr()?, "API listening");
        tasks.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(api_shutdown.cancelled_owned())
                .await
                .context("HTTP server failed")
        });

        if settings.relay.enabled {
            let producer =
                EventProducer::new(&settings.kafka).context("cannot create Kafka producer")?;
            let relay = Relay::new(
                pool.clone(),
                producer,
                bindings.clone(),
                settings.relay.clone(),
            );
            let relay_shutdown = shutdown.clone();
            tasks.spawn(async move {
                relay.run(relay_shutdown).await;
                Ok(())
            });
        }

        if settings.consumer.enabled {
            let kafka = settings.kafka.clone();
            let group = settings.consumer.group_id.clone();
            let topic = bindings.destination(EventType::WalletCreated).to_owned();
            let handler = WalletCreatedEventConsumer::new(pool.clone());
            let consumer_shutdown = shutdown.clone();
            tasks.spawn(async move {
                kafka::consumer::run_consumer(&kafka, &group, &[&topic], handler, consumer_shutdown)
                    .await
                    .context("WalletCreatedEventConsumer failed")
            });
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
        pool.close().await;
        outcome
    }
}
