//! Which store failures are worth retrying: the one place consumers sort them.

use kafka::HandlerError;
use store::StoreError;

/// Contention and an unavailable database are transient (the record is retried);
/// anything else (a constraint violation, bad SQL, a corrupt row) is permanent.
pub fn classify(error: impl Into<StoreError>) -> HandlerError {
    let error = error.into();
    if error.is_transient() {
        HandlerError::Transient(Box::new(error))
    } else {
        HandlerError::Permanent(Box::new(error))
    }
}
