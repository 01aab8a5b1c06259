//! Leadership: the relay's own PostgreSQL session and the advisory lock it holds on it
//! while it publishes.
//!
//! The connection lives outside the pool. While this relay leads, every batch runs on it,
//! so the lock and the work die together: if the process dies, its session ends and
//! PostgreSQL frees the lock for a standby. If it goes silent instead (its host loses power
//! or its network, so no FIN ever comes), the server's TCP keepalives and
//! `tcp_user_timeout` on the session (`relay.leader_timeout_ms`, see
//! [`store::prepare_relay_session`]) end the session, and with it the lock, within that
//! bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};

use super::RelayError;
use crate::store;

#[derive(Debug)]
pub(super) struct Leadership {
    /// The relay's own connection, while no drain has it out.
    session: Option<PgConnection>,
    /// This relay holds the relay lock on `session`; shared with this process's writers
    /// ([`crate::LocalWake`]), which wake a leading relay directly.
    leading: Arc<AtomicBool>,
}

impl Leadership {
    /// Leadership that keeps `leading` up to date.
    pub(super) fn new(leading: Arc<AtomicBool>) -> Self {
        leading.store(false, Ordering::Release);
        Self {
            session: None,
            leading,
        }
    }

    pub(super) fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Release);
    }

    /// The session connection, taken out while this relay leads (give it back with
    /// [`keep`](Self::keep)); `None` while another relay holds the lock. Connects first
    /// when there is no session.
    pub(super) async fn take(
        &mut self,
        pool: &PgPool,
        leader_timeout: Duration,
    ) -> Result<Option<PgConnection>, RelayError> {
        let mut conn = match self.session.take() {
            Some(conn) => conn,
            None => {
                let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
                store::prepare_relay_session(&mut conn, leader_timeout).await?;
                self.set_leading(false);
                conn
            }
        };
        if !self.is_leading() {
            if store::try_lock_relay(&mut conn).await? {
                tracing::info!("this relay now publishes the outbox");
                self.set_leading(true);
            } else {
                self.session = Some(conn);
                return Ok(None);
            }
        }
        Ok(Some(conn))
    }

    /// Gives the session back after a drain; a session whose work failed is dropped (its
    /// lock with it) and the next round reconnects.
    pub(super) fn keep(&mut self, conn: PgConnection, healthy: bool) {
        if healthy {
            self.session = Some(conn);
        } else {
            self.set_leading(false);
        }
    }

    /// Ends the session, which frees the lock for a standby at once.
    pub(super) async fn close(self) {
        self.set_leading(false);
        if let Some(conn) = self.session {
            let _ = conn.close().await;
        }
    }
}
