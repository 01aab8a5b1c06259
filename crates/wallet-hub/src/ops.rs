//! `wallet-hub outbox ...` and `wallet-hub dlq ...`: the operator's view of the outbox and of
//! the dead-letter topics.

use std::io::IsTerminal;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use event_bindings::EventBindings;
use indicatif::{ProgressBar, ProgressStyle};
use kafka::EventProducer;
use outbox::ops::{self, RedriveSelection, ReplaySelection};
use uuid::Uuid;

use crate::Settings;
use crate::database::connect_database;
use crate::stream_replay::{self, StreamSelection};
use domain::WalletId;

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Pending count, oldest pending age, parked count, per-type send rates.
    Status,
    /// List parked rows with their last error.
    Parked {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Release parked rows so the relay tries them again (and the rows that waited behind them).
    Redrive(RedriveArgs),
    /// Publish already-sent events again, with their original CloudEvent ids.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RedriveArgs {
    /// One row, by outbox id.
    #[arg(long)]
    id: Option<i64>,
    /// Every parked row of one aggregate (wallet) id.
    #[arg(long)]
    key: Option<Uuid>,
    /// Every parked row.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Lowest outbox id (inclusive).
    #[arg(long)]
    from_id: Option<i64>,
    /// Highest outbox id (inclusive).
    #[arg(long)]
    to_id: Option<i64>,
    /// Events that occurred at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Events that occurred before this RFC 3339 time.
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// Events of one aggregate (wallet) id.
    #[arg(long, visible_alias = "wallet")]
    aggregate_id: Option<Uuid>,
    /// Events of one type, e.g. FundsAdded.
    #[arg(long)]
    event_type: Option<String>,
    /// Read the events from the wallets' streams instead of the outbox (beyond its
    /// retention): original ids and sequences, keyed by wallet, no trace context. Needs
    /// --wallet/--aggregate-id, --since or --until.
    #[arg(long, conflicts_with_all = ["from_id", "to_id", "event_type"])]
    from_stream: bool,
    /// With --from-stream: also the events the migration derived from history before
    /// streams, which consumers never received under these ids.
    #[arg(long, requires = "from_stream")]
    include_migrated: bool,
}

pub async fn run(settings: Settings, command: OutboxCommand) -> anyhow::Result<()> {
    let pool = connect_database(&settings.database).await?;
    match command {
        OutboxCommand::Status => {
            let status = ops::status(&pool)
                .await
                .context("cannot read outbox status")?;
            println!("pending: {}", status.pending);
            println!(
                "oldest pending age: {} s",
                status.oldest_pending_age_seconds
            );
            println!("parked: {}", status.parked);
            let bindings = EventBindings::new(&settings.bindings)?;
            for rate in ops::rates(&pool).await.context("cannot read send rates")? {
                let topic = bindings
                    .resolve(&rate.event_type)
                    .map_or("(unbound)", |(_, topic)| topic);
                println!(
                    "published to {topic}: {} written in the last minute, {} in the last 5 minutes",
                    rate.last_minute, rate.last_five_minutes
                );
            }
        }
        OutboxCommand::Parked { limit } => {
            let rows = ops::parked(&pool, limit)
                .await
                .context("cannot list parked rows")?;
            if rows.is_empty() {
                println!("no parked rows");
            }
            for row in rows {
                println!(
                    "id={} event_id={} type={} key={} attempts={} parked_at={} error={}",
                    row.id,
                    row.event_id,
                    row.event_type,
                    row.aggregate_id,
                    row.attempts,
                    row.parked_at.to_rfc3339(),
                    row.last_error.as_deref().unwrap_or("-"),
                );
            }
        }
        OutboxCommand::Redrive(args) => {
            let selection = match (args.id, args.key, args.all) {
                (Some(id), _, _) => RedriveSelection::Id(id),
                (_, Some(key), _) => RedriveSelection::Key(key),
                _ => RedriveSelection::All,
            };
            let released = ops::redrive(&pool, &selection)
                .await
                .context("redrive failed")?;
            println!("released {released} parked row(s)");
        }
        OutboxCommand::Replay(args) if args.from_stream => {
            replay_from_stream(&settings, &pool, &args).await?;
        }
        OutboxCommand::Replay(args) => {
            let selection = ReplaySelection {
                from_id: args.from_id,
                to_id: args.to_id,
                since: args.since,
                until: args.until,
                aggregate_id: args.aggregate_id,
                event_type: args.event_type,
            };
            anyhow::ensure!(
                !selection.is_empty(),
                "name what to replay (--from-id/--to-id, --since/--until, --aggregate-id, --event-type)"
            );
            let total = ops::replay_count(&pool, &selection).await?;
            let bindings = replay_bindings(&settings)?;
            let producer = EventProducer::new(&settings.kafka)?;
            let bar = std::io::stdout().is_terminal().then(|| {
                let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
                bar.set_style(
                    ProgressStyle::with_template("{bar:40} {pos}/{len} events {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            });
            let published =
                ops::replay(
                    &pool,
                    &producer,
                    &bindings,
                    &selection,
                    500,
                    |done| match &bar {
                        Some(bar) => bar.set_position(done),
                        None => println!("replayed {done}/{total}"),
                    },
                )
                .await?;
            if let Some(bar) = bar {
                bar.finish();
            }
            println!("replayed {published} event(s)");
        }
    }
    pool.close().await;
    Ok(())
}

/// The bindings events are encoded with, their `dataschema` on the configured schema base
/// (or the API's own address).
fn replay_bindings(settings: &Settings) -> anyhow::Result<EventBindings> {
    let bindings = EventBindings::new(&settings.bindings)?;
    let base = if settings.events.schema_base_url.is_empty() {
        format!("http://{}", settings.api.listen)
    } else {
        settings.events.schema_base_url.clone()
    };
    bindings
        .with_schema_base(&base)
        .context("invalid events.schema_base_url")
}

/// `outbox replay --from-stream`: the chosen events of the wallets' streams, published
/// again.
async fn replay_from_stream(
    settings: &Settings,
    pool: &sqlx::PgPool,
    args: &ReplayArgs,
) -> anyhow::Result<()> {
    let selection = StreamSelection {
        wallet: args.aggregate_id.map(WalletId::from_uuid),
        since: args.since,
        until: args.until,
        include_migrated: args.include_migrated,
    };
    anyhow::ensure!(
        selection.is_bounded(),
        "name what to replay from the streams (--wallet, --since/--until)"
    );
    let bindings = replay_bindings(settings)?;
    let producer = EventProducer::new(&settings.kafka)?;
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} events {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    });
    let published =
        stream_replay::replay(
            pool,
            &producer,
            &bindings,
            &selection,
            500,
            |done| match &bar {
                Some(bar) => bar.set_position(done),
                None => println!("replayed {done}"),
            },
        )
        .await
        .context("replay from the streams failed")?;
    if let Some(bar) = bar {
        bar.finish();
    }
    println!("replayed {published} event(s)");
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the dead letters of a topic, with where they came from and why.
    List {
        /// The original topic (its dead letters are on `<topic><consumer.dead_letter_suffix>`).
        #[arg(long)]
        topic: String,
        /// At most this many records (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Start at this `partition:offset` (the `next page` line of the previous page).
        #[arg(long, value_parser = parse_position)]
        after: Option<(i32, i64)>,
    },
    /// Send chosen dead letters back to their original topic, unchanged (same CloudEvent id).
    Redrive(DlqRedriveArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "which")]
pub struct DlqSelection {
    /// Records by `partition:offset` on the dead-letter topic (repeatable).
    #[arg(long = "record", value_parser = parse_position)]
    records: Vec<(i32, i64)>,
    /// Every record on the dead-letter topic.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub struct DlqRedriveArgs {
    /// The original topic.
    #[arg(long)]
    topic: String,
    #[command(flatten)]
    which: DlqSelection,
}

fn parse_position(text: &str) -> Result<(i32, i64), String> {
    let (partition, offset) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not partition:offset"))?;
    Ok((
        partition
            .parse()
            .map_err(|_| format!("bad partition in `{text}`"))?,
        offset
            .parse()
            .map_err(|_| format!("bad offset in `{text}`"))?,
    ))
}

fn progress_bar(total: u64, what: &'static str) -> Option<ProgressBar> {
    std::io::stdout().is_terminal().then(|| {
        let bar = ProgressBar::new(total);
        let template = format!("{{bar:40}} {{pos}}/{{len}} {what} {{eta}}");
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    })
}

pub async fn run_dlq(settings: Settings, command: DlqCommand) -> anyhow::Result<()> {
    let read = |topic: &str| {
        let dlq_topic = format!("{topic}{}", settings.consumer.dead_letter_suffix);
        let kafka = settings.kafka.clone();
        async move {
            tokio::task::spawn_blocking(move || kafka::dlq::list(&kafka, &dlq_topic))
                .await
                .context("dead-letter reader panicked")?
                .context("cannot read the dead-letter topic")
        }
    };
    match command {
        DlqCommand::List {
            topic,
            limit,
            after,
        } => {
            let dlq_topic = format!("{topic}{}", settings.consumer.dead_letter_suffix);
            let kafka = settings.kafka.clone();
            let page = tokio::task::spawn_blocking(move || {
                kafka::dlq::page(&kafka, &dlq_topic, after, usize::from(limit))
            })
            .await
            .context("dead-letter reader panicked")?
            .context("cannot read the dead-letter topic")?;
            if page.records.is_empty() && after.is_none() {
                println!("no dead letters for {topic}");
            }
            for record in page.records {
                println!(
                    "{}:{} from={}:{}:{} consumer={} class={} time={} ce_id={} error={}",
                    record.partition,
                    record.offset,
                    record.header("dlq_original_topic").unwrap_or("-"),
                    record.header("dlq_original_partition").unwrap_or("-"),
                    record.header("dlq_original_offset").unwrap_or("-"),
                    record.header("dlq_consumer").unwrap_or("-"),
                    record.header("dlq_error_class").unwrap_or("-"),
                    record.header("dlq_time").unwrap_or("-"),
                    record.header("ce_id").unwrap_or("-"),
                    record.header("dlq_error_message").unwrap_or("-"),
                );
            }
            if let Some((partition, offset)) = page.next {
                println!("next page: --after {partition}:{offset}");
            }
        }
        DlqCommand::Redrive(args) => {
            let records = read(&args.topic).await?;
            let chosen: Vec<_> = if args.which.all {
                records
            } else {
                let chosen: Vec<_> = records
                    .into_iter()
                    .filter(|r| args.which.records.contains(&(r.partition, r.offset)))
                    .collect();
                anyhow::ensure!(
                    chosen.len() == args.which.records.len(),
                    "some of the named records are not on the dead-letter topic (see `dlq list`)"
                );
                chosen
            };
            let bar = progress_bar(u64::try_from(chosen.len()).unwrap_or(0), "records");
            let total = chosen.len();
            let sent = kafka::dlq::redrive(&settings.kafka, &chosen, |done| match &bar {
                Some(bar) => bar.set_position(done),
                None => println!("redriven {done}/{total}"),
            })
            .await?;
            if let Some(bar) = bar {
                bar.finish();
            }
            println!("redrove {sent} record(s) to {}", args.topic);
        }
    }
    Ok(())
}
