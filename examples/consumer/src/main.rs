//! A downstream consumer of Wallet Hub events, as a team outside Wallet Hub would write
//! one: it depends on our `event-bindings` crate for the typed events, reads one topic and
//! prints each event. What it does is what docs/events.md asks of every consumer:
//!
//! - read the CloudEvent (binary content mode) and decode its data into the typed event
//!   ([`event_bindings::decode`] also checks that the type is one we know and that the data's
//!   `event_id` is the `ce_id`);
//! - dedupe on `ce_id` (delivery is at least once); a real consumer records the ids it
//!   applied in the same transaction as its effect, here a set in memory stands for that;
//! - skip, loudly, what it cannot read (a real one would dead-letter it), and go on;
//! - close the consumer with a bound, on a thread of its own: librdkafka can block for good
//!   closing a consumer during a rebalance (rust-rdkafka issue 509), and a process that
//!   wants to exit must not wait on it.
//!
//! ```sh
//! cargo run -p example-consumer -- --brokers localhost:9092 --topic funds-added-events
//! ```

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use cloudevents::AttributesReader;
use cloudevents::binding::rdkafka::MessageExt;
use domain::DomainEvent;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};

#[derive(Debug, Parser)]
#[command(about = "Print the typed Wallet Hub events of one Kafka topic")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "localhost:9092")]
    brokers: String,
    /// The topic to read, e.g. wallet-created-events.
    #[arg(long)]
    topic: String,
    /// Consumer group; offsets are committed, so a second run continues where this one
    /// stopped. Use a new group (or reset its offsets) to replay from the beginning.
    #[arg(long, default_value = "example-consumer")]
    group: String,
    /// Stop after this many events (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    max: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("auto.offset.reset", "earliest")
        .create()
        .context("cannot create the Kafka consumer")?;
    consumer
        .subscribe(&[&args.topic])
        .context("cannot subscribe")?;
    let outcome = print_events(&consumer, &args).await;
    close_within(consumer, Duration::from_secs(5));
    outcome
}

/// Drops `consumer` (its close commits the offsets and leaves the group) on a thread of its
/// own and waits at most `bound` for it; past that, the process goes on and exits anyway.
fn close_within(consumer: StreamConsumer, bound: Duration) {
    let (closed, done) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("close-consumer".to_owned())
        .spawn(move || {
            drop(consumer);
            let _ = closed.send(());
        });
    if spawned.is_ok() && done.recv_timeout(bound).is_err() {
        eprintln!("the Kafka consumer did not close within {bound:?}; exiting without it");
    }
}

/// Prints the topic's events until Ctrl-C or `args.max` events.
async fn print_events(consumer: &StreamConsumer, args: &Args) -> anyhow::Result<()> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut printed = 0;
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message.context("cannot read from Kafka")?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let event = match message.to_event() {
            Ok(event) => event,
            Err(error) => {
                eprintln!(
                    "skipped offset {}: not a CloudEvent: {error}",
                    message.offset()
                );
                continue;
            }
        };
        if !seen.insert(event.id().to_owned()) {
            eprintln!("duplicate {} skipped", event.id());
            continue;
        }
        match event_bindings::decode(&event) {
            Ok(typed) => println!("{}", describe(&typed)),
            Err(error) => eprintln!("skipped {} ({}): {error}", event.id(), event.ty()),
        }
        printed += 1;
        if args.max > 0 && printed >= args.max {
            return Ok(());
        }
    }
}

/// One line per event, from its typed fields.
fn describe(event: &DomainEvent) -> String {
    let at = event.metadata().occurred_at;
    match event {
        DomainEvent::WalletCreated(e) => format!(
            "{at} wallet {} \"{}\" ({}) created for user {}",
            e.wallet_id, e.name, e.currency, e.user_id
        ),
        DomainEvent::FundsAdded(e) => format!(
            "{at} wallet {} +{} {} (balance {})",
            e.wallet_id,
            e.amount,
            e.amount.currency(),
            e.balance_after
        ),
        DomainEvent::FundsReceived(e) => format!(
            "{at} wallet {} +{} {} from wallet {} (balance {})",
            e.wallet_id,
            e.amount,
            e.amount.currency(),
            e.from_wallet_id,
            e.balance_after
        ),
        DomainEvent::FundsWithdrawn(e) => format!(
            "{at} wallet {} -{} {} (balance {})",
            e.wallet_id,
            e.amount,
            e.amount.currency(),
            e.balance_after
        ),
        DomainEvent::FundsTransferred(e) => format!(
            "{at} {} {} from wallet {} to wallet {}",
            e.amount,
            e.amount.currency(),
            e.from_wallet_id,
            e.to_wallet_id
        ),
        DomainEvent::WalletStatusChanged(e) => {
            format!("{at} wallet {} {:?} -> {:?}", e.wallet_id, e.from, e.to)
        }
        DomainEvent::HoldPlaced(e) => format!(
            "{at} wallet {} holds {} {} until {} (hold {})",
            e.wallet_id,
            e.amount,
            e.amount.currency(),
            e.expires_at,
            e.hold_id
        ),
        DomainEvent::HoldCaptured(e) => format!(
            "{at} wallet {} -{} {} captured, {} released (hold {})",
            e.wallet_id,
            e.amount,
            e.amount.currency(),
            e.released,
            e.hold_id
        ),
        DomainEvent::HoldVoided(e) => format!(
            "{at} wallet {} {} {} released: voided (hold {})",
            e.wallet_id,
            e.amount,
            e.amount.currency(),
            e.hold_id
        ),
        DomainEvent::HoldExpired(e) => format!(
            "{at} wallet {} {} {} released: expired at {} (hold {})",
            e.wallet_id,
            e.amount,
            e.amount.currency(),
            e.expires_at,
            e.hold_id
        ),
        DomainEvent::VolumeComputed(e) => format!(
            "{at} volume {} {}: {} deposits, {} withdrawals, {} transfers",
            e.currency, e.minute, e.deposits.count, e.withdrawals.count, e.transfers.count
        ),
        DomainEvent::WalletVelocityExceeded(e) => format!(
            "{at} wallet {} velocity exceeded: {} outgoing movements ({} {}) from {} to {}",
            e.wallet_id, e.count, e.amount, e.currency, e.window_start, e.window_end
        ),
        DomainEvent::UserCreated(e) => format!("{at} user {} signed up", e.user_id),
    }
}
