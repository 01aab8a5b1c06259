//! LISTEN forwarding: turns commits that wrote outbox rows ([`crate::CommitWaker`]'s
//! `NOTIFY` on [`OUTBOX_CHANNEL`]) into wake-ups of the relay loop.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::publisher::OUTBOX_CHANNEL;

/// Listens on the outbox channel and returns what the relay loop waits on, or `None` (the
/// relay then relies on polling) if it cannot listen.
///
/// The listener runs in its own task, reading every notification as it arrives: a
/// listening backend whose client stops reading blocks mid-send inside a transaction, and
/// its snapshot would keep VACUUM from cleaning the queue for as long as a drain lasts.
pub(super) async fn wake_on_commits(
    pool: &PgPool,
    shutdown: &CancellationToken,
) -> Option<Arc<Notify>> {
    let listener = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    }
    .await;
    match listener {
        Ok(listener) => {
            let wake = Arc::new(Notify::new());
            tokio::spawn(forward_notifications(
                listener,
                Arc::clone(&wake),
                shutdown.clone(),
            ));
            Some(wake)
        }
        Err(error) => {
            tracing::warn!(
                error = &error as &dyn StdError,
                "cannot LISTEN for outbox commits; relying on polling"
            );
            None
        }
    }
}

/// Resolves at the next wake-up; never without a listener.
pub(super) async fn woken(wake: Option<&Notify>) {
    match wake {
        Some(wake) => wake.notified().await,
        None => futures::future::pending().await,
    }
}

/// Waits a second before a reconnect; false if shutdown came first.
pub(crate) async fn retry_pause(shutdown: &CancellationToken) -> bool {
    let pause = tokio::time::sleep(Duration::from_secs(1));
    shutdown.run_until_cancelled(pause).await.is_some()
}

/// Reads the outbox channel until shutdown and turns every burst of notifications into
/// one wake-up (a `Notify` permit: commits that arrive during a drain are covered by it or
/// by the next one). A broken connection is logged and retried a second later; polling
/// covers the gap.
async fn forward_notifications(
    mut listener: PgListener,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    while let Some(received) = shutdown.run_until_cancelled(listener.recv()).await {
        if let Err(error) = received {
            tracing::warn!(
                error = &error as &dyn StdError,
                "outbox LISTEN connection lost; reconnecting"
            );
            if !retry_pause(&shutdown).await {
                return;
            }
        } else {
            wake.notify_one();
        }
    }
}
