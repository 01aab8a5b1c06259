//! A downstream consumer of Wallet Hub events, as a team outside Wallet Hub would write
//! one: it depends on our `event-bindings` crate for the typed events, reads our topics and
//! prints each event. What it does is what docs/events.md asks of every consumer:
//!
//! - read the CloudEvent (binary content mode) and decode its data into the typed event
//!   ([`event_bindings::decode`] also checks that the type is one we know and that the data's
//!   `event_id` is the `ce_id`);
//! - dedupe on `ce_id` (delivery is at least once); a real consumer records the ids it
//!   applied in the same transaction as its effect, here a set in memory stands for that;
//! - notice a gap in a wallet's stream: every wallet event carries its place in it
//!   (`ce_sequence`: 1, 2, 3 ... with no gap), and [`event_bindings::SequenceTracker`] says
//!   whether each one is the next, a redelivery, late, or past missing ones. On a gap it
//!   prints the missing range; given `--api-url` and `--token` it fills the gap from
//!   `GET /v1/wallets/{id}/events?after_sequence=` (`fill`) before it goes on;
//! - skip, loudly, what it cannot read (a real one would dead-letter it), and go on;
//! - close the consumer with a bound, on a thread of its own: librdkafka can block for good
//!   closing a consumer during a rebalance (rust-rdkafka issue 509), and a process that
//!   wants to exit must not wait on it.
//!
//! A wallet's events are spread over one topic per event type, so the consumer reads all
//! of them by default: reading one (`--topic funds-added-events`) sees only some of each
//! wallet's sequences, and every other one would look missing.
//!
//! ```sh
//! cargo run -p example-consumer -- --brokers localhost:9092
//! WALLET_HUB_TOKEN=<access token> cargo run -p example-consumer -- --api-url http://127.0.0.1:8080
//! ```

mod fill;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use cloudevents::binding::rdkafka::MessageExt;
use cloudevents::{AttributesReader, Event};
use domain::{DomainEvent, EventType, WalletId};
use event_bindings::{EventBindings, Observed, SequenceTracker};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};

#[derive(Debug, Parser)]
#[command(
    about = "Print the typed Wallet Hub events of our topics, and notice gaps in wallets' streams"
)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "localhost:9092")]
    brokers: String,
    /// A topic to read (repeat for several); by default every topic of wallet events.
    #[arg(long)]
    topic: Vec<String>,
    /// Consumer group; offsets are committed, so a second run continues where this one
    /// stopped. Use a new group (or reset its offsets) to replay from the beginning.
    #[arg(long, default_value = "example-consumer")]
    group: String,
    /// Stop after this many events (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    max: u64,
    /// Wallet Hub's API, to fill gaps from (with `--token`); without it gaps are only
    /// reported.
    #[arg(long, env = "WALLET_HUB_API_URL", requires = "token")]
    api_url: Option<String>,
    /// An access token that may read the wallets (their owner's, or one with
    /// `wallets:admin`). From the environment rather than the command line, which others
    /// on the machine can see.
    #[arg(
        long,
        env = "WALLET_HUB_TOKEN",
        hide_env_values = true,
        requires = "api_url"
    )]
    token: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let api = match (&args.api_url, &args.token) {
        (Some(url), Some(token)) => Some(
            wallet_hub_client::Client::new(url)
                .context("--api-url is not a URL")?
                .with_token(token.clone()),
        ),
        _ => None,
    };
    let topics = topics(&args);
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("auto.offset.reset", "earliest")
        .create()
        .context("cannot create the Kafka consumer")?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).context("cannot subscribe")?;
    let outcome = print_events(&consumer, &args, api.as_ref()).await;
    close_within(consumer, Duration::from_secs(5));
    outcome
}

/// The topics of `--topic`, or (by default) every topic a wallet's events go to.
fn topics(args: &Args) -> Vec<String> {
    if !args.topic.is_empty() {
        return args.topic.clone();
    }
    let bindings = EventBindings::default();
    let mut topics: Vec<String> = EventType::ALL
        .into_iter()
        .filter(|t| domain::stream::is_wallet_event(*t))
        .map(|t| bindings.destination(t).to_owned())
        .collect();
    topics.sort_unstable();
    topics.dedup();
    topics
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

/// What the consumer remembers: the event ids it printed, and each wallet's sequences.
#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<String>,
    sequences: SequenceTracker<WalletId>,
}

/// Prints the topics' events until Ctrl-C or `args.max` events; fills gaps from `api` if
/// given.
async fn print_events(
    consumer: &StreamConsumer,
    args: &Args,
    api: Option<&wallet_hub_client::Client>,
) -> anyhow::Result<()> {
    let mut seen = Seen::default();
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
        if !seen.ids.insert(event.id().to_owned()) {
            eprintln!("duplicate {} skipped", event.id());
            continue;
        }
        if !in_stream(&event, &mut seen, api).await {
            continue;
        }
        print(&event);
        printed += 1;
        if args.max > 0 && printed >= args.max {
            return Ok(());
        }
    }
}

/// Judges `event`'s place in its wallet's stream; whether to print it (not a redelivery).
/// Past a gap, the missing events are reported, and filled from `api` first if given.
async fn in_stream(
    event: &Event,
    seen: &mut Seen,
    api: Option<&wallet_hub_client::Client>,
) -> bool {
    let sequence = match event_bindings::cloud_event::sequence(event) {
        Ok(Some(sequence)) => sequence,
        // Not a wallet event (UserCreated), or published before streams: no place to judge.
        Ok(None) => return true,
        Err(error) => {
            eprintln!("skipped {}: {error}", event.id());
            return false;
        }
    };
    let Some(wallet) = event.subject().and_then(|s| s.parse::<WalletId>().ok()) else {
        eprintln!("skipped {}: its subject is not a wallet id", event.id());
        return false;
    };
    match seen.sequences.observe(wallet, sequence) {
        Observed::Next | Observed::Late => true,
        Observed::Duplicate => {
            eprintln!("wallet {wallet} sequence {sequence} again: a redelivery, skipped");
            false
        }
        Observed::Gap { missing } => {
            eprintln!(
                "wallet {wallet}: sequences {}..={} missing before {sequence}",
                missing.start(),
                missing.end()
            );
            match api {
                Some(api) => fill::fill(api, wallet, missing, seen).await,
                None => eprintln!("  (give --api-url and --token to fill it from the API)"),
            }
            true
        }
    }
}

/// Prints the typed event, or says why it cannot.
fn print(event: &Event) {
    match event_bindings::decode(event) {
        Ok(typed) => println!("{}", describe(&typed)),
        Err(error) => eprintln!("skipped {} ({}): {error}", event.id(), event.ty()),
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
