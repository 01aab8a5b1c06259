//! Crash failpoints for tests: `WALLET_HUB_FAILPOINT=<name>` makes the process abort (no
//! unwinding, no cleanup, like a kill -9) when it reaches that point. Unset in production;
//! reading one environment variable per call is the whole cost.

/// After a consumer's effect committed, before its offset is stored.
pub const CONSUMER_AFTER_EFFECT: &str = "consumer-after-effect";
/// After the relay's messages were acknowledged, before the outbox rows are marked sent.
pub const RELAY_AFTER_PRODUCE: &str = "relay-after-produce";

/// Aborts the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if std::env::var("WALLET_HUB_FAILPOINT").is_ok_and(|armed| armed == name) {
        eprintln!("failpoint {name} hit: aborting");
        std::process::abort();
    }
}
