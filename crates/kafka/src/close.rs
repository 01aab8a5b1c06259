//! Closing Kafka clients without ever blocking a thread that matters.
//!
//! librdkafka can wait forever while it closes a client: a consumer dropped during a
//! rebalance waits on its group (rust-rdkafka issue 509, librdkafka issue 4041), and a
//! producer or consumer can wait on a broker or coordinator that does not answer. So no
//! client of ours is closed on the async runtime, on its blocking pool (whose threads a
//! runtime waits for when it shuts down) or on a test's thread: [`Detached`] owns a
//! client and closes it on a detached thread of its own, however it is dropped (a task
//! that ends, a future the runtime drops at shutdown, a panic), and
//! [`Detached::close`] does the same while waiting for it within a bound.

use std::ops::Deref;
use std::time::Duration;

use tokio::sync::oneshot;

/// A Kafka client (`T`) that is closed on a detached thread, never where it is dropped.
/// Derefs to the client.
#[derive(Debug)]
pub struct Detached<T: Send + 'static> {
    /// Names the client in logs and in its closing thread's name.
    what: &'static str,
    /// Always `Some` until [`close`](Self::close) or `Drop` takes it.
    client: Option<T>,
}

impl<T: Send + 'static> Detached<T> {
    pub fn new(what: &'static str, client: T) -> Self {
        Self {
            what,
            client: Some(client),
        }
    }

    /// Runs `last` on the client (a final offset commit, say), then closes it, both on a
    /// detached thread, and waits up to `bound` for that to finish. Returns `false` when it
    /// did not finish in time: the thread goes on alone (holding the client until it is
    /// done, or until the process exits) and the caller carries on.
    pub async fn close(mut self, last: impl FnOnce(&T) + Send + 'static, bound: Duration) -> bool {
        let Some(client) = self.client.take() else {
            return true;
        };
        let (done, finished) = oneshot::channel();
        close_on_thread(self.what, move || {
            last(&client);
            drop(client);
            // The waiter may have given up already.
            let _ = done.send(());
        });
        let in_time = matches!(tokio::time::timeout(bound, finished).await, Ok(Ok(())));
        if !in_time {
            tracing::warn!(
                client = self.what,
                bound = ?bound,
                "a Kafka client did not close in time; leaving it to close on its own thread"
            );
        }
        in_time
    }
}

impl<T: Send + 'static> Deref for Detached<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // `client` is only taken by `close` (which consumes self) and `drop`.
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("a Detached client is present until it is closed"))
    }
}

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            close_in_background(self.what, client);
        }
    }
}

/// Drops a Kafka client (`what` names it in logs) on a detached thread of its own, and
/// returns at once.
pub fn close_in_background<T: Send + 'static>(what: &'static str, client: T) {
    close_on_thread(what, move || drop(client));
}

fn close_on_thread(what: &'static str, close: impl FnOnce() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name(format!("close-{what}"))
        .spawn(close);
    if let Err(error) = spawned {
        // The closure, and the client with it, was dropped here already.
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            client = what,
            "no thread to close a Kafka client on; closed it in place"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::Detached;

    /// Stands in for a client whose close blocks until it is told to finish.
    struct Stuck {
        release: mpsc::Receiver<()>,
        closed: mpsc::Sender<std::thread::ThreadId>,
    }

    impl Drop for Stuck {
        fn drop(&mut self) {
            let _ = self.release.recv();
            let _ = self.closed.send(std::thread::current().id());
        }
    }

    fn stuck() -> (
        Stuck,
        mpsc::Sender<()>,
        mpsc::Receiver<std::thread::ThreadId>,
    ) {
        let (release, release_rx) = mpsc::channel();
        let (closed_tx, closed) = mpsc::channel();
        (
            Stuck {
                release: release_rx,
                closed: closed_tx,
            },
            release,
            closed,
        )
    }

    #[test]
    fn dropping_a_client_whose_close_blocks_returns_at_once_and_closes_it_elsewhere() {
        let (client, release, closed) = stuck();
        drop(Detached::new("stuck", client));
        // Reaching this line at all is the point: the drop did not wait for the close.
        release.send(()).expect("the closing thread waits");
        let closer = closed
            .recv_timeout(Duration::from_secs(10))
            .expect("closed on its thread");
        assert_ne!(
            closer,
            std::thread::current().id(),
            "not on the dropping thread"
        );
    }

    #[tokio::test]
    async fn close_gives_up_after_its_bound_and_the_client_still_closes_later() {
        let (client, release, closed) = stuck();
        let (ran, last_ran) = mpsc::channel();
        let in_time = Detached::new("stuck", client)
            .close(
                move |_| ran.send(()).expect("the test waits"),
                Duration::from_millis(100),
            )
            .await;
        assert!(!in_time, "a blocked close is reported as late");
        last_ran
            .recv_timeout(Duration::from_secs(10))
            .expect("the last step ran first");
        release.send(()).expect("the closing thread still waits");
        closed
            .recv_timeout(Duration::from_secs(10))
            .expect("and the client closed once it could");
    }

    #[tokio::test]
    async fn close_reports_a_prompt_close_as_in_time() {
        let (client, release, _closed) = stuck();
        release.send(()).expect("released up front");
        assert!(
            Detached::new("prompt", client)
                .close(|_| {}, Duration::from_secs(10))
                .await
        );
    }
}
