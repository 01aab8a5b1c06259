//! [`StoreError`]: every way a store function fails, and the one place where database
//! failures are classified (contention, unavailable, the violated constraint).
//!
//! Constraint violations that mean something to a client become their own variants here
//! (by constraint name), so callers never look at SQLSTATEs or constraint names.

use std::error::Error as StdError;

use domain::UserId;

type BoxError = Box<dyn StdError + Send + Sync>;

/// `serialization_failure`: a serializable transaction lost a race.
const SERIALIZATION_FAILURE: &str = "40001";
/// `deadlock_detected`.
const DEADLOCK_DETECTED: &str = "40P01";
/// `lock_not_available`: a `lock_timeout` expired.
const LOCK_NOT_AVAILABLE: &str = "55P03";
/// `query_canceled`: a `statement_timeout` expired (or an operator cancelled the query).
const QUERY_CANCELED: &str = "57014";
/// SQLSTATE classes of a database that cannot do work right now: 08 connection
/// exception, 53 insufficient resources, 57P operator intervention (shutdown, restart).
const UNAVAILABLE_CLASSES: [&str; 3] = ["08", "53", "57P"];
/// Codes of work that ran out of time (`database.statement_timeout_ms`,
/// `database.lock_timeout_ms`): the database is too busy for it now; retry later.
const TIMED_OUT: [&str; 2] = [QUERY_CANCELED, LOCK_NOT_AVAILABLE];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `wallets_user_exists`: the wallet names a user that does not exist.
    #[error("user {0} does not exist")]
    UnknownUser(UserId),
    /// `users_identity_unique`: this principal already registered a user.
    #[error("this principal already has a user")]
    AlreadyRegistered,
    /// The idempotency key is held by a request that is still running (its advisory lock
    /// is taken; see [`crate::idempotency`]).
    #[error("the idempotency key is held by a request that is still running")]
    KeyInUse,
    /// A stored row breaks a domain rule: the database was changed behind our back.
    #[error("stored {entity} {id} is invalid")]
    Corrupt {
        entity: &'static str,
        id: String,
        #[source]
        source: BoxError,
    },
    /// Any other database failure; see [`StoreError::is_contention`] and
    /// [`StoreError::is_unavailable`].
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn corrupt(
        entity: &'static str,
        id: impl ToString,
        source: impl Into<BoxError>,
    ) -> Self {
        StoreError::Corrupt {
            entity,
            id: id.to_string(),
            source: source.into(),
        }
    }

    /// A serialization failure or deadlock: running the transaction again can succeed.
    pub fn is_contention(&self) -> bool {
        self.code()
            .is_some_and(|code| code == SERIALIZATION_FAILURE || code == DEADLOCK_DETECTED)
    }

    /// The database cannot be reached or cannot do work right now (lost or refused
    /// connections, pool exhausted or closed, shutdown, out of resources, a statement or
    /// lock timeout expired): retry later.
    pub fn is_unavailable(&self) -> bool {
        match self.database() {
            Some(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Some(sqlx::Error::Database(_)) => self.code().is_some_and(|code| {
                TIMED_OUT.contains(&code.as_ref())
                    || UNAVAILABLE_CLASSES
                        .iter()
                        .any(|class| code.starts_with(class))
            }),
            _ => false,
        }
    }

    /// Contention or unavailability: the same work can succeed if tried again.
    pub fn is_transient(&self) -> bool {
        self.is_contention() || self.is_unavailable()
    }

    /// The name of the violated constraint, if the database refused a statement for one.
    pub fn constraint(&self) -> Option<&str> {
        self.database()?.as_database_error()?.constraint()
    }

    /// The SQLSTATE, if the database answered with an error.
    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.database()?.as_database_error()?.code()
    }

    fn database(&self) -> Option<&sqlx::Error> {
        match self {
            StoreError::Database(error) => Some(error),
            StoreError::UnknownUser(_)
            | StoreError::AlreadyRegistered
            | StoreError::KeyInUse
            | StoreError::Corrupt { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_connection_failures_are_unavailable_and_not_contention() {
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Protocol("unexpected message".to_owned()),
            sqlx::Error::Io(std::io::Error::other("reset")),
        ] {
            let error = StoreError::from(error);
            assert!(error.is_unavailable(), "{error:?}");
            assert!(error.is_transient(), "{error:?}");
            assert!(!error.is_contention(), "{error:?}");
            assert_eq!(error.constraint(), None);
        }
    }

    #[test]
    fn other_failures_are_neither_transient_nor_about_a_constraint() {
        for error in [
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::AlreadyRegistered,
            StoreError::corrupt("wallet", 1, "bad currency"),
        ] {
            assert!(!error.is_transient(), "{error:?}");
            assert_eq!(error.constraint(), None);
        }
    }
}
