//! Waking relays after commits that wrote outbox rows.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
///
/// **A relay in the same process** ([`with_local`](CommitWaker::with_local)) is woken
/// directly while it leads, and then no `NOTIFY` is sent at all: the leader is the only
/// relay that acts on a commit (standbys act on their poll ticks alone), so the `NOTIFY`
/// would only have travelled through PostgreSQL back to this process. That saves, per
/// writer commit, a statement and a commit on the notifying connection, PostgreSQL's
/// signal to the listening backend and the notification's trip to the relay's listener
/// (issue 29: wake-ups per request). While the local relay stands by, or after it stopped,
/// the `NOTIFY` goes out as before, for the leader elsewhere. In the moment the local relay
/// loses its lock, a commit may wake it instead of the new leader, which then finds the
/// rows on its next poll tick: later, never lost.
#[derive(Debug, Clone, Default)]
pub struct CommitWaker {
    pending: Option<Arc<Notify>>,
    local: Option<LocalWake>,
}

/// This process's relay, as a [`CommitWaker`] wakes it: whether it leads, and its wake-up.
#[derive(Debug, Clone, Default)]
pub struct LocalWake {
    /// The relay holds the relay lock (kept by its leadership).
    pub(crate) leading: Arc<AtomicBool>,
    /// What the relay loop waits on, beside its poll tick and its LISTEN.
    pub(crate) wake: Arc<Notify>,
}

impl LocalWake {
    /// Wakes the relay if it leads; false if it does not (then someone else must be told).
    fn wake_if_leading(&self) -> bool {
        let leading = self.leading.load(Ordering::Acquire);
        if leading {
            self.wake.notify_one();
        }
        leading
    }
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
            local: None,
        }
    }

    /// Wakes `local`, this process's relay, directly while it leads, instead of sending a
    /// `NOTIFY`. A disabled waker stays disabled.
    #[must_use]
    pub fn with_local(self, local: LocalWake) -> Self {
        if self.pending.is_none() {
            return self;
        }
        Self {
            local: Some(local),
            ..self
        }
    }

    /// Outbox rows committed: wake the relays soon. Never blocks.
    pub fn wake(&self) {
        if self.local.as_ref().is_some_and(LocalWake::wake_if_leading) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A waker whose `NOTIFY` side is a bare permit (no task, no database).
    fn waker(local: &LocalWake) -> (CommitWaker, Arc<Notify>) {
        let pending = Arc::new(Notify::new());
        let waker = CommitWaker {
            pending: Some(Arc::clone(&pending)),
            local: None,
        }
        .with_local(local.clone());
        (waker, pending)
    }

    async fn has_permit(notify: &Notify) -> bool {
        tokio::time::timeout(Duration::from_millis(10), notify.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_leading_local_relay_is_woken_directly_and_no_notify_is_sent() {
        let local = LocalWake::default();
        local.leading.store(true, Ordering::Release);
        let (waker, pending) = waker(&local);
        waker.wake();
        assert!(has_permit(&local.wake).await, "the local relay is woken");
        assert!(!has_permit(&pending).await, "no NOTIFY");
    }

    #[tokio::test]
    async fn a_standby_local_relay_is_left_alone_and_the_notify_goes_out() {
        let local = LocalWake::default();
        let (waker, pending) = waker(&local);
        waker.wake();
        assert!(
            has_permit(&pending).await,
            "NOTIFY for the leader elsewhere"
        );
        assert!(
            !has_permit(&local.wake).await,
            "the standby acts on its ticks"
        );
    }

    #[tokio::test]
    async fn a_disabled_waker_wakes_nobody_even_with_a_leading_local_relay() {
        let local = LocalWake::default();
        local.leading.store(true, Ordering::Release);
        CommitWaker::disabled().with_local(local.clone()).wake();
        assert!(
            !has_permit(&local.wake).await,
            "relay.notify off: the relay polls"
        );
    }
}
