//! Assembly: settings in, a running service out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use api::AppState;
use consumers::{
    Consumer, VelocityAlerts, VolumeProjection, WalletActivityProjection,
    WalletCreatedEventConsumer,
};
use event_bindings::EventBindings;
use kafka::{ConsumerOptions, ConsumerStatus, GroupTopics, KafkaProbe, LagReader};
use outbox::{CommitWaker, Relay};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::config::Settings;
use crate::database::{Pools, connect_pool, migrate, sample_pool};
use crate::topology::{
    check_kafka, consumed_topics, consumer_group, consumer_groups, provision_topics,
};

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
        for (key, configured_base) in [
            ("events.schema_base_url", &settings.events.schema_base_url),
            ("api.problem_base_url", &settings.api.problem_base_url),
        ] {
            anyhow::ensure!(
                configured_base.is_empty()
                    || url::Url::parse(configured_base)
                        .is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
                "{key} `{configured_base}` is not an absolute http(s) URL"
            );
        }
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
        let bindings = bindings
            .with_schema_base(&public_base(
                &settings.events.schema_base_url,
                &settings,
                api_listener.as_ref(),
            ))
            .context("invalid events.schema_base_url")?;
        let mut settings = settings;
        settings.api.problem_base_url = public_base(
            &settings.api.problem_base_url,
            &settings,
            api_listener.as_ref(),
        );
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
        // Made before the API, whose writers wake it directly while it leads.
        let relay = pools
            .relay
            .clone()
            .map(|pool| {
                Relay::new(
                    pool,
                    settings.kafka.clone(),
                    bindings.clone(),
                    settings.relay.clone(),
                )
            })
            .transpose()
            .context("cannot create Kafka producer")?;

        if let (Some(listener), Some(verifier), Some(pool)) =
            (api_listener, verifier, pools.api.clone())
        {
            let mut waker = if settings.relay.notify {
                CommitWaker::spawn(pool.connect_options().as_ref().clone(), shutdown.clone())
            } else {
                CommitWaker::disabled()
            };
            if let Some(relay) = &relay {
                waker = waker.with_local(relay.local_wake());
            }
            let writer = api::pipeline::Writer::new(
                pool.clone(),
                waker.clone(),
                settings.api.idempotency_ttl_hours,
                Duration::from_millis(settings.api.commit_outcome_wait_ms),
            );
            let pipeline = if settings.api.write_batching {
                let (pipeline, batch_writer) = api::pipeline::Pipeline::batching(
                    writer,
                    settings.api.write_batch_max,
                    settings.api.write_batch_writers,
                );
                // Ends when the server (the last holder of the handle) has drained.
                tasks.spawn(async move {
                    batch_writer.await;
                    Ok(())
                });
                pipeline
            } else {
                api::pipeline::Pipeline::direct(writer)
            };
            let state = AppState {
                pool: pool.clone(),
                waker,
                idempotency_ttl_hours: settings.api.idempotency_ttl_hours,
                verifier,
                event_contracts: api::contracts::EventContracts::new(
                    &bindings,
                    &settings.consumer.dead_letter_suffix,
                    &consumers::consumed_event_types(),
                ),
                pipeline,
            };
            let sweeper_pipeline = state.pipeline.clone();
            let app = api::router(state, &settings.api);
            let api_shutdown = shutdown.clone();
            tracing::info!(address = %listener.local_addr()?, "API listening");
            tasks.spawn(expire_idempotency_keys(pool.clone(), shutdown.clone()));
            if settings.api.hold_sweep_interval_ms > 0 {
                let sweep = api::sweeper::run(
                    sweeper_pipeline,
                    pool.clone(),
                    Duration::from_millis(settings.api.hold_sweep_interval_ms),
                    shutdown.clone().cancelled_owned(),
                );
                tasks.spawn(async move {
                    sweep.await;
                    Ok(())
                });
            }
            let config = settings.api.clone();
            tasks.spawn(async move {
                api::server::serve(listener, app, &config, api_shutdown.cancelled_owned()).await;
                Ok(())
            });
        }

        let mut relay_status = None;
        if let Some(relay) = relay {
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
            for consumer in Consumer::ALL {
                let group = consumer_group(&settings, &bindings, consumer);
                let (tasks, settings) = (&mut tasks, &settings);
                let pool = pool.clone();
                consumers.push(match consumer {
                    Consumer::WelcomeNotifications => {
                        let handler = WalletCreatedEventConsumer::new(pool);
                        spawn_consumer(tasks, settings, group, handler, &shutdown)
                    }
                    Consumer::WalletActivity => {
                        let handler = WalletActivityProjection::new(pool);
                        spawn_consumer(tasks, settings, group, handler, &shutdown)
                    }
                    Consumer::AnalyticsVolume => {
                        let handler = VolumeProjection::new(pool);
                        spawn_consumer(tasks, settings, group, handler, &shutdown)
                    }
                    Consumer::VelocityAlerts => {
                        let handler = VelocityAlerts::new(pool);
                        spawn_consumer(tasks, settings, group, handler, &shutdown)
                    }
                });
            }
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
        let lag = LagReader::new(&settings.kafka, groups.clone())
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

        let grace = Duration::from_millis(settings.shutdown_grace_ms);
        let finished = tokio::select! {
            outcome = join_all(&mut tasks, &shutdown) => Some(outcome),
            () = grace_over(&shutdown, grace) => None,
        };
        let outcome = finished.unwrap_or_else(|| {
            tracing::error!(
                still_running = tasks.len(),
                grace = ?grace,
                "parts of the service did not stop within shutdown_grace_ms; exiting anyway"
            );
            Ok(())
        });
        // Whatever is left is dropped; its Kafka clients close on threads of their own.
        tasks.abort_all();
        pools.close().await;
        outcome
    }
}

/// Waits for every task. A task that fails, or one that ends before shutdown, stops the
/// others; the first failure is the outcome.
async fn join_all(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
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
    outcome
}

/// Ends `grace` after `shutdown` is cancelled.
async fn grace_over(shutdown: &CancellationToken, grace: Duration) {
    shutdown.cancelled().await;
    tokio::time::sleep(grace).await;
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
    let batch_max = settings.consumer.batch_max;
    let close_timeout = Duration::from_millis(settings.consumer.close_timeout_ms);
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
            batch_max,
            close_timeout,
        };
        kafka::run_consumer(&kafka, options, handler, task_status, shutdown)
            .await
            .with_context(|| format!("consumer {name} failed"))
    });
    (name, status)
}

/// A public base URL (of the event schemas, of the problem types): `configured`, or else
/// the API's own address (as bound, so port 0 resolves), or else `api.listen` (a process
/// without the API).
fn public_base(
    configured: &str,
    settings: &Settings,
    api_listener: Option<&TcpListener>,
) -> String {
    if !configured.is_empty() {
        return configured.to_owned();
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
