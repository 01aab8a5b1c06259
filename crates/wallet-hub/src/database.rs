//! The database side of the service: the migrations, one connection pool per part (each
//! with the runtime role's statement and lock timeouts), and their usage metrics.

use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use telemetry::metrics::{DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS};
use tokio_util::sync::CancellationToken;

use crate::config::DatabaseConfig;

/// Migrations compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

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
    pub(crate) fn labelled(&self) -> impl Iterator<Item = (&'static str, &PgPool)> {
        [
            ("api", self.api.as_ref()),
            ("relay", self.relay.as_ref()),
            ("consumers", self.consumers.as_ref()),
        ]
        .into_iter()
        .filter_map(|(label, pool)| pool.map(|pool| (label, pool)))
    }

    pub(crate) async fn close(&self) {
        for (_, pool) in self.labelled() {
            pool.close().await;
        }
    }
}

/// Connection options of the runtime role (`database.url`): every connection carries the
/// configured `statement_timeout` and `lock_timeout`.
pub(crate) fn runtime_options(config: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
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

/// A pooled connection idle at least this long is pinged before it is lent.
///
/// sqlx pings every connection as it comes back to the pool and closes it if that fails,
/// so a connection idle for less was found alive moments ago. Pinging it again when it is
/// lent (sqlx's default, `test_before_acquire`) cost every request, and every write batch,
/// one more round trip to PostgreSQL (issue 29). What is lost is only a narrower window: a
/// connection the server dropped within this second of its release fails its first
/// statement instead of its ping, and that error is what a drop right after a ping gives
/// anyway (the write pipeline runs the batch again; see `api::pipeline`).
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Connects a pool of at most `max_connections` runtime connections (`what` names it in
/// errors), failing fast if the database is unreachable.
pub(crate) async fn connect_pool(
    config: &DatabaseConfig,
    max_connections: u32,
    what: &str,
) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
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
    derive_streams(&mut conn).await?;
    conn.close().await.ok();
    Ok(())
}

/// Wallets derived per transaction by [`derive_streams`].
const DERIVE_BATCH: i64 = 500;

/// Derives the event stream of every wallet that has none (those written before streams
/// existed; see `store::history`), a batch of wallets per transaction, each batch locking
/// its wallets. Until its stream exists, the database refuses any change of a wallet, so
/// this runs right after the migrations, before the service serves.
async fn derive_streams(conn: &mut PgConnection) -> anyhow::Result<()> {
    let mut derived = 0;
    loop {
        let mut tx = conn.begin().await?;
        let count = store::history::derive_missing(&mut tx, DERIVE_BATCH)
            .await
            .context("cannot derive the event streams of existing wallets")?;
        tx.commit().await?;
        if count == 0 {
            break;
        }
        derived += count;
        tracing::info!(derived, "derived the event streams of existing wallets");
    }
    Ok(())
}

/// Exports the usage of the pool labelled `label` every few seconds until shutdown.
pub(crate) async fn sample_pool(
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
