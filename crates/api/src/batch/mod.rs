//! Natural batching of money movements: one transaction for whatever is waiting.
//!
//! Handlers queue their [`MoneyRequest`] to the writer ([`Batcher::submit`], a bounded
//! queue). The writer takes the first waiting request and everything queued behind it, up
//! to `api.write_batch_max`, and runs them as one batch: no timer, so a lone request on an
//! idle service runs at once, and under load the batch is whatever arrived while the
//! previous one was committing. Up to `api.write_batch_writers` batches run at once.
//!
//! A batch is one transaction ([`transaction::attempt`]):
//! 1. idempotency keys are claimed in one statement; a key repeated inside the batch
//!    follows its first use (a replay of its answer, 422 on another request, 409 when the
//!    first's answer is not stored), keys answered before are replays, as in
//!    [`crate::write`];
//! 2. every wallet touched is locked in one statement, in id order (so batches, and a
//!    batch and a single transfer, cannot deadlock);
//! 3. the domain rules run in Rust, in arrival order, on the wallets as the earlier
//!    accepted requests left them; a refused request gets its own answer and writes
//!    nothing;
//! 4. wallets, ledger transactions and entries, outbox rows (in arrival order, each with
//!    its request's trace context) and idempotency answers are written with one
//!    set-based statement each;
//! 5. one commit, then every request is answered.
//!
//! A database error retries the batch (contention with backoff); if it persists, or a key
//! is held by a request still running, each request runs in a transaction of its own
//! ([`money::run_alone`]), so one bad request never fails its neighbours.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use backon::{BackoffBuilder, ExponentialBuilder};
use telemetry::TraceHeaders;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::AppState;
use crate::error::ApiError;
use crate::limits::{self, Commitment};
use crate::money::{self, MoneyRequest};
use crate::wallets::db_transaction_span;
use crate::write::request_hash;
use telemetry::metrics as telemetry_metrics;

mod transaction;

use transaction::attempt;

/// Attempts of a batch that hit a deadlock or serialization failure before it falls back.
const CONTENTION_ATTEMPTS: usize = 4;
/// Attempts of a batch that hit any other database error before it falls back.
const ERROR_ATTEMPTS: usize = 2;

/// The handle handlers queue money movements to; cheap to clone. The writer stops once
/// every handle is gone (after the HTTP server has drained).
#[derive(Debug, Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Queued>,
}

/// A request waiting for the writer.
#[derive(Debug)]
struct Queued {
    request: MoneyRequest,
    /// The context of the request's `db.transaction` span, written with its event (as the
    /// per-request path writes it).
    trace: TraceHeaders,
    hash: Vec<u8>,
    answer: oneshot::Sender<Result<Response, ApiError>>,
    /// Claimed right before the batch's commit, so the request timeout either abandons the
    /// request before that (and the batch runs again without it) or waits for its answer.
    commitment: Option<Commitment>,
}

impl Batcher {
    /// The handle and the writer to run on `state` (whose own `batcher` must be `None`:
    /// the writer's fallback runs requests one by one). The writer returns once every
    /// handle is dropped and its last batch is answered, so the service runs it as one of
    /// its tasks and waits for it after the HTTP server has drained.
    pub fn new(
        state: AppState,
        max: NonZeroUsize,
        writers: NonZeroUsize,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, receiver) = mpsc::channel(max.get().saturating_mul(4));
        (
            Self { queue },
            run(state, receiver, max.get(), writers.get()),
        )
    }

    /// Queues `request` and waits for its answer.
    pub async fn submit(&self, request: MoneyRequest) -> Result<Response, ApiError> {
        let span = db_transaction_span(request.movement.kind().as_str());
        let trace = span.in_scope(TraceHeaders::current);
        let hash = request_hash(&request.body);
        let (answer, receiver) = oneshot::channel();
        let queued = Queued {
            request,
            trace,
            hash,
            answer,
            commitment: limits::commitment(),
        };
        async {
            self.queue.send(queued).await.map_err(|_| stopped())?;
            receiver.await.map_err(|_| stopped())?
        }
        .instrument(span)
        .await
    }
}

fn stopped() -> ApiError {
    ApiError::Unavailable("the write batcher has stopped".into())
}

/// The writer: forms batches and runs up to `writers` of them at once.
async fn run(state: AppState, mut receiver: mpsc::Receiver<Queued>, max: usize, writers: usize) {
    let permits = Arc::new(Semaphore::new(writers));
    let mut running = JoinSet::new();
    loop {
        // A permit first, so requests wait in the queue (and join the next batch) while
        // every writer is busy.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let Some(first) = receiver.recv().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < max {
            match receiver.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let state = state.clone();
        running.spawn(async move {
            process(&state, batch).await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// Runs one batch to the end: every request gets its answer.
async fn process(state: &AppState, batch: Vec<Queued>) {
    // A request abandoned by the request timeout (answered 503) is not run.
    let mut batch: Vec<Queued> = batch
        .into_iter()
        .filter(|q| !q.answer.is_closed())
        .collect();
    if batch.is_empty() {
        return;
    }
    metrics::histogram!(telemetry_metrics::API_WRITE_BATCH_REQUESTS).record(batch.len() as f64);
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(5))
        .with_max_delay(Duration::from_millis(200))
        .with_jitter()
        .build();
    let mut attempts = 0;
    let reason = loop {
        attempts += 1;
        match attempt(state, &batch)
            .instrument(tracing::info_span!("write.batch", requests = batch.len()))
            .await
        {
            Ok(answers) => {
                for (queued, answer) in batch.into_iter().zip(answers) {
                    // A client that went away meanwhile has its answer stored with its key.
                    let _ = queued.answer.send(answer);
                }
                return;
            }
            Err(ApiError::IdempotencyInFlight) => break "key_in_use",
            // One timed out before the commit: the batch rolled back; again without it.
            Err(ApiError::Abandoned) => {
                batch.retain(|q| !q.commitment.as_ref().is_some_and(Commitment::is_abandoned));
                if batch.is_empty() {
                    return;
                }
            }
            Err(ApiError::Contention(error)) if attempts < CONTENTION_ATTEMPTS => {
                tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    "batch conflict; retrying"
                );
                if let Some(delay) = delays.next() {
                    tokio::time::sleep(delay).await;
                }
            }
            Err(error) if attempts < ERROR_ATTEMPTS => {
                tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    "batch failed; retrying"
                );
            }
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    requests = batch.len(),
                    "batch failed; running its requests one by one"
                );
                break "database";
            }
        }
    };
    metrics::counter!(
        telemetry_metrics::API_WRITE_BATCH_FALLBACKS_TOTAL,
        "reason" => reason
    )
    .increment(1);
    let alone = batch.into_iter().map(|queued| async move {
        let answer = limits::acting_for(
            queued.commitment.clone(),
            money::run_alone(state, &queued.request),
        )
        .await;
        let _ = queued.answer.send(answer);
    });
    futures::future::join_all(alone).await;
}
