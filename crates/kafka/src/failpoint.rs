//! Failpoints for tests, armed with `WALLET_HUB_FAILPOINT=<name>`: crash points make the
//! process abort (no unwinding, no cleanup, like a kill -9) when it reaches them; fault
//! points make one call fail once. Unset in production; reading one environment variable
//! per call is the whole cost.

use std::sync::atomic::{AtomicBool, Ordering};

/// After a consumer's effect committed, before its offset is stored.
pub const CONSUMER_AFTER_EFFECT: &str = "consumer-after-effect";
/// After the relay's messages were acknowledged, before the outbox rows are marked sent.
pub const RELAY_AFTER_PRODUCE: &str = "relay-after-produce";

/// The producer's first enqueue fails with librdkafka's fatal error code, as every produce
/// call does once librdkafka declared the instance unusable (fenced, fatal idempotence
/// error). Fires once per process.
pub const PRODUCER_FATAL: &str = "producer-fatal";

/// True the first time it is called with the armed fault point `name`, false after that and
/// when `name` is not armed.
pub fn fire_once(name: &str) -> bool {
    static FIRED: AtomicBool = AtomicBool::new(false);
    std::env::var("WALLET_HUB_FAILPOINT").is_ok_and(|armed| armed == name)
        && !FIRED.swap(true, Ordering::SeqCst)
}

/// Aborts the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if std::env::var("WALLET_HUB_FAILPOINT").is_ok_and(|armed| armed == name) {
        eprintln!("failpoint {name} hit: aborting");
        std::process::abort();
    }
}
