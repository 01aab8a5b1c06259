//! Waking relays after commits that wrote outbox rows.

use std::error::Error as StdError;
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::publisher::OUTBOX_CHANNEL;

/// Tells listening relays (LISTEN on [`OUTBOX_CHANNEL`]) that outbox rows committed.
///
/// Writers call [`wake`](CommitWaker::wake) after their commit; one task per process sends
/// the `NOTIFY` on its own connection, never inside the writer's transaction. PostgreSQL
/// serializes the commits of all transactions that notify on one database-wide lock, held
/// through the commit's WAL flush, so they cannot share a flush: 16 pgbench clients made
/// about 3,000 one-row commits/s with a `pg_notify` inside against 8,000-10,000 without
/// (`scripts/bench-relay`, write phase). Wake-ups that
/// come while a `NOTIFY` is on its way fold into the next one, and that connection commits
/// without waiting for the flush (a lost notification only leaves the rows to the relay's
/// next poll).
#[derive(Debug, Clone, Default)]
pub struct CommitWaker {
    pending: Option<Arc<Notify>>,
}

impl CommitWaker {
    /// A waker that does nothing (`relay.notify` off: relays poll).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the task that sends the notifications, until `shutdown`.
    pub fn spawn(connect: PgConnectOptions, shutdown: CancellationToken) -> Self {
        let pending = Arc::new(Notify::new());
        tokio::spawn(send_notifications(connect, Arc::clone(&pending), shutdown));
        Self {
            pending: Some(pending),
        }
    }

    /// Outbox rows committed: wake the relays soon. Never blocks.
    pub fn wake(&self) {
        if let Some(pending) = &self.pending {
            pending.notify_one();
        }
    }
}

async fn send_notifications(
    connect: PgConnectOptions,
    pending: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut conn: Option<PgConnection> = None;
    loop {
        if shutdown
            .run_until_cancelled(pending.notified())
            .await
            .is_none()
        {
            break;
        }
        if let Err(error) = notify(&mut conn, &connect).await {
            conn = None;
            tracing::warn!(
                error = &error as &dyn StdError,
                "cannot wake the outbox relay; it finds the rows on its next poll"
            );
            // The database is unreachable: try again a second later, whatever came since.
            if !crate::relay::retry_pause(&shutdown).await {
                break;
            }
        }
    }
    if let Some(conn) = conn {
        let _ = conn.close().await;
    }
}

async fn notify(
    conn: &mut Option<PgConnection>,
    connect: &PgConnectOptions,
) -> Result<(), sqlx::Error> {
    let conn = match conn {
        Some(conn) => conn,
        None => {
            let mut fresh = PgConnection::connect_with(connect).await?;
            sqlx::query("SET synchronous_commit = off")
                .execute(&mut fresh)
                .await?;
            conn.insert(fresh)
        }
    };
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(OUTBOX_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}
