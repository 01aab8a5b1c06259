//! `wallet-hub outbox ...`: the operator's view of the outbox.

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
use crate::startup::connect_database;

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
    #[arg(long)]
    aggregate_id: Option<Uuid>,
    /// Events of one type, e.g. FundsAdded.
    #[arg(long)]
    event_type: Option<String>,
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
                    "sent to {topic}: {} in the last minute, {} in the last 5 minutes",
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
            let bindings = EventBindings::new(&settings.bindings)?;
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
