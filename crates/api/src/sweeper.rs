//! The hold sweeper: records holds past their expiry as expired (docs/holds.md). A hold
//! stops reserving money at its `expires_at` whatever the sweeper does; the sweeper writes
//! what the ledger and Kafka still lack: the release on the wallet's `held` account and the
//! `HoldExpired` event. It submits an `ExpireHold` command per hold to the write pipeline,
//! like any request, so the rules and the writes are the pipeline's.
//!
//! One instance sweeps at a time: each round runs while holding a transaction-scoped
//! advisory lock, which an instance that cannot take it skips. Two rounds racing anyway
//! would be harmless: an expiry of a hold already recorded is refused, and writes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use domain::Command;
use futures::StreamExt as _;
use sqlx::PgPool;
use store::holds;

use crate::RequestContext;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::pipeline::{Pipeline, Request};

/// The most holds one round records.
const ROUND: i64 = 500;
/// Expiries submitted at once.
const IN_FLIGHT: usize = 16;

/// Who the sweeper's commands are by (in the ledger and the events' `actor`).
pub const ISSUER: &str = "wallet-hub";
pub const SUBJECT: &str = "hold-sweeper";

/// Sweeps every `interval` until `shutdown` completes.
pub async fn run(
    pipeline: Pipeline,
    pool: PgPool,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = sweep(&pipeline, &pool).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "cannot sweep expired holds"
            );
        }
    }
}

/// One round: if this instance leads, the holds past their expiry (up to [`ROUND`]) are
/// recorded as expired; how many were.
#[tracing::instrument(skip_all, err)]
pub async fn sweep(pipeline: &Pipeline, pool: &PgPool) -> Result<usize, ApiError> {
    let mut lock = pool.begin().await?;
    if !holds::lead_sweep(&mut lock).await? {
        return Ok(0);
    }
    let expired = holds::expired(&mut lock, Utc::now(), ROUND).await?;
    let caller = Caller::from(auth::Principal {
        issuer: ISSUER.to_owned(),
        subject: SUBJECT.to_owned(),
        scopes: BTreeSet::new(),
    });
    let correlation_id = format!("hold-sweep-{}", uuid::Uuid::now_v7());
    let requests = expired.into_iter().map(|(hold, wallet)| Request {
        command: Command::ExpireHold { hold, wallet },
        caller: caller.clone(),
        ctx: RequestContext {
            correlation_id: correlation_id.clone(),
        },
        key: None,
        body: serde_json::Value::Null,
        if_match: None,
    });
    // A few at a time: enough to fill the writer's batches, never the whole pool.
    let answers: Vec<Result<_, ApiError>> = futures::stream::iter(requests)
        .map(|request| pipeline.submit(request))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut recorded = 0;
    for answer in answers {
        match answer {
            Ok(_) => recorded += 1,
            // Recorded meanwhile by another round: nothing to do.
            Err(error) => tracing::debug!(
                error = &error as &dyn std::error::Error,
                "a hold was not recorded as expired"
            ),
        }
    }
    lock.commit().await?;
    if recorded > 0 {
        tracing::info!(recorded, "holds past their expiry recorded as expired");
    }
    Ok(recorded)
}
