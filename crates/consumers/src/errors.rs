//! Which database failures are worth retrying.

use kafka::HandlerError;

/// Connection loss, pool exhaustion, timeouts, serialization failures and deadlocks are
/// transient; anything else (constraint violations, bad SQL) is permanent.
pub fn classify(error: sqlx::Error) -> HandlerError {
    if is_transient(&error) {
        HandlerError::Transient(Box::new(error))
    } else {
        HandlerError::Permanent(Box::new(error))
    }
}

pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 40001 serialization_failure, 40P01 deadlock_detected, class 08 connection
            // exceptions, 57P0x operator intervention (shutdown), 53xxx insufficient resources.
            code == "40001"
                || code == "40P01"
                || code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
        }),
        _ => false,
    }
}
