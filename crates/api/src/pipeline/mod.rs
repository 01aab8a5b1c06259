//! The one write pipeline: every wallet command (deposit, withdraw, transfer, freeze,
//! unfreeze, close) goes through it, alone or with whatever else is waiting. Handlers
//! parse, authorize and [`Pipeline::submit`]; nothing else writes a wallet.
//!
//! With `api.write_batching` on, submissions queue to the writer (a bounded queue), which
//! takes the first waiting one and everything queued behind it, up to
//! `api.write_batch_max`, as one batch: no timer, so a lone request on an idle service runs
//! at once, and under load the batch is whatever arrived while the previous one was
//! committing. Up to `api.write_batch_writers` batches run at once. With it off, each
//! request is a batch of one, run in its own task. Either way the same code runs it.
//!
//! A batch is one transaction ([`transaction`]):
//! 1. idempotency keys are claimed without waiting; a key repeated inside the batch
//!    follows its first use, a key answered before is a replay, a key held by a request
//!    still running is 409 for that request alone;
//! 2. every wallet touched is locked in one statement, in id order (so batches cannot
//!    deadlock), which also reads the transaction's id;
//! 3. [`domain::decide`] judges each command in arrival order, on the wallets as the
//!    earlier accepted commands left them; a refused command gets its own answer and
//!    writes nothing;
//! 4. wallets, ledger postings, status changes, outbox rows (in arrival order, each with
//!    its request's trace context) and idempotency answers are written with one set-based
//!    statement each;
//! 5. COMMIT ([`commit`]; the transaction's id is read first when no wallet was locked):
//!    an error from COMMIT itself is an unknown outcome, resolved by asking a fresh
//!    session before anything runs again.
//!
//! An error before COMMIT (contention, a lock or statement timeout, a lost connection)
//! rolls the batch back and runs it again, with backoff; if it persists, each of its
//! requests runs as a batch of one, so one bad request never fails its neighbours. A
//! request abandoned at its timeout before the commit leaves the batch, which runs again
//! without it. A COMMIT whose outcome stays unknown is answered 503 `outcome-unknown`,
//! never run a second time.

mod commit;
mod transaction;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use domain::{Command, VersionCondition};
use outbox::CommitWaker;
use sqlx::PgPool;
use telemetry::TraceHeaders;
use telemetry::metrics as telemetry_metrics;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::RequestContext;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::limits::{self, Commitment};
use crate::write::{IdempotencyKey, request_hash};

pub use commit::{COMMIT_FAILED, COMMIT_LOST};

/// Attempts of a batch that hit a deadlock or serialization failure before it is split.
const CONTENTION_ATTEMPTS: usize = 4;
/// Attempts of a batch that hit any other database error before it is split.
const ERROR_ATTEMPTS: usize = 2;

/// One command as a client sent it, parsed and authorized as far as that can be done
/// without the database.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub caller: Caller,
    pub ctx: RequestContext,
    pub key: Option<IdempotencyKey>,
    /// The request body (hashed to recognise a retry of the same request).
    pub body: serde_json::Value,
    /// `If-Match`: checked on the wallet as the earlier requests of its batch left it.
    pub if_match: Option<VersionCondition>,
}

/// A request ready for the writer.
#[derive(Debug)]
pub struct Submission {
    request: Request,
    /// The context of the request's `db.transaction` span, written with its event.
    trace: TraceHeaders,
    hash: Vec<u8>,
    /// Claimed right before the batch's COMMIT, so the request timeout either abandons the
    /// request before that (and the batch runs again without it) or waits for its answer.
    commitment: Option<Commitment>,
}

impl Submission {
    /// `request`, in the current span and request (whose timeout it answers to).
    pub fn new(request: Request) -> Self {
        Self {
            trace: TraceHeaders::current(),
            hash: request_hash(&request.body),
            commitment: limits::commitment(),
            request,
        }
    }

    fn is_abandoned(&self) -> bool {
        self.commitment
            .as_ref()
            .is_some_and(Commitment::is_abandoned)
    }
}

/// What the writer needs: the database, the outbox, and how long to wait for a COMMIT's
/// outcome when the COMMIT got no answer.
#[derive(Debug, Clone)]
pub struct Writer {
    pool: PgPool,
    waker: CommitWaker,
    idempotency_ttl_hours: u32,
    outcome_wait: Duration,
}

/// The handle handlers submit to; cheap to clone.
#[derive(Debug, Clone)]
pub struct Pipeline {
    writer: Writer,
    /// The batching writer's queue; `None`: each request runs alone, in its own task.
    queue: Option<mpsc::Sender<Queued>>,
}

/// A submission waiting for the batching writer.
#[derive(Debug)]
struct Queued {
    submission: Submission,
    answer: oneshot::Sender<Result<Response, ApiError>>,
}

impl Writer {
    /// `outcome_wait`: how long an unanswered COMMIT is asked after
    /// (`api.commit_outcome_wait_ms`).
    pub fn new(
        pool: PgPool,
        waker: CommitWaker,
        idempotency_ttl_hours: u32,
        outcome_wait: Duration,
    ) -> Self {
        Self {
            pool,
            waker,
            idempotency_ttl_hours,
            outcome_wait,
        }
    }

    /// Runs `batch` to the end: an answer for every submission, in order.
    pub async fn run(&self, batch: Vec<Submission>) -> Vec<Result<Response, ApiError>> {
        let mut answers: Vec<Option<Result<Response, ApiError>>> =
            batch.iter().map(|_| None).collect();
        let mut groups = vec![(0..batch.len()).collect::<Vec<usize>>()];
        while let Some(group) = groups.pop() {
            if let Err(split) = self.settle(&batch, group, &mut answers).await {
                groups.extend(split.into_iter().map(|index| vec![index]));
            }
        }
        answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| {
                    Err(ApiError::internal(std::io::Error::other(
                        "a request of the batch was never answered",
                    )))
                })
            })
            .collect()
    }

    /// Runs the submissions at `live` as one batch until each has its answer; gives them
    /// back (to run one by one) when a database error persists and there are several.
    async fn settle(
        &self,
        batch: &[Submission],
        mut live: Vec<usize>,
        answers: &mut [Option<Result<Response, ApiError>>],
    ) -> Result<(), Vec<usize>> {
        let mut delays = crate::write::contention_backoff();
        // One batch, however many tries it takes.
        metrics::histogram!(telemetry_metrics::API_WRITE_BATCH_REQUESTS).record(live.len() as f64);
        let mut attempts = 0;
        loop {
            // A request abandoned by its timeout (answered 503) is not run.
            live.retain(|&index| !batch[index].is_abandoned());
            if live.is_empty() {
                return Ok(());
            }
            attempts += 1;
            let members: Vec<&Submission> = live.iter().map(|&index| &batch[index]).collect();
            let failure = match transaction::attempt(self, &members)
                .instrument(tracing::info_span!("write.batch", requests = members.len()))
                .await
            {
                Ok(done) => {
                    for (&index, answer) in live.iter().zip(done) {
                        answers[index] = Some(answer);
                    }
                    return Ok(());
                }
                Err(failure) => failure,
            };
            match failure {
                transaction::Failure::Abandoned => {}
                transaction::Failure::OutcomeUnknown => {
                    for &index in &live {
                        answers[index] = Some(Err(ApiError::OutcomeUnknown));
                    }
                    return Ok(());
                }
                transaction::Failure::Retry(error) => {
                    let contention = matches!(error, ApiError::Contention(_));
                    let limit = if contention {
                        CONTENTION_ATTEMPTS
                    } else {
                        ERROR_ATTEMPTS
                    };
                    if attempts < limit {
                        tracing::debug!(
                            error = &error as &dyn std::error::Error,
                            "batch rolled back; running it again"
                        );
                        if let Some(delay) = delays.next().filter(|_| contention) {
                            tokio::time::sleep(delay).await;
                        }
                        continue;
                    }
                    if live.len() == 1 {
                        answers[live[0]] = Some(Err(error));
                        return Ok(());
                    }
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        requests = live.len(),
                        "batch failed; running its requests one by one"
                    );
                    metrics::counter!(
                        telemetry_metrics::API_WRITE_BATCH_FALLBACKS_TOTAL,
                        "reason" => "database"
                    )
                    .increment(1);
                    return Err(live);
                }
            }
        }
    }
}

impl Pipeline {
    /// Each request a batch of one, run in its own task.
    pub fn direct(writer: Writer) -> Self {
        Self {
            writer,
            queue: None,
        }
    }

    /// The handle and the batching writer to run. The writer returns once every handle is
    /// dropped and its last batch is answered, so the service runs it as one of its tasks
    /// and waits for it after the HTTP server has drained.
    pub fn batching(
        writer: Writer,
        max: NonZeroUsize,
        writers: NonZeroUsize,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, receiver) = mpsc::channel(max.get().saturating_mul(4));
        let run = batch_writer(writer.clone(), receiver, max.get(), writers.get());
        (
            Self {
                writer,
                queue: Some(queue),
            },
            run,
        )
    }

    /// Runs `request` (in a `db.transaction` span of its own) and answers it.
    pub async fn submit(&self, request: Request) -> Result<Response, ApiError> {
        let span = crate::write::db_transaction_span(request.command.name());
        let submission = span.in_scope(|| Submission::new(request));
        async {
            let Some(queue) = &self.queue else {
                let mut answers = self.writer.run(vec![submission]).await;
                return answers.pop().unwrap_or_else(|| Err(stopped()));
            };
            let (answer, receiver) = oneshot::channel();
            queue
                .send(Queued { submission, answer })
                .await
                .map_err(|_| stopped())?;
            receiver.await.map_err(|_| stopped())?
        }
        .instrument(span)
        .await
    }
}

fn stopped() -> ApiError {
    ApiError::Unavailable("the write pipeline has stopped".into())
}

/// The batching writer: forms batches and runs up to `writers` of them at once.
async fn batch_writer(
    writer: Writer,
    mut receiver: mpsc::Receiver<Queued>,
    max: usize,
    writers: usize,
) {
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
        // A request whose client is gone (its timeout answered it) is not run.
        batch.retain(|queued| !queued.answer.is_closed());
        let writer = writer.clone();
        running.spawn(async move {
            let (submissions, senders): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|queued| (queued.submission, queued.answer))
                .unzip();
            if !submissions.is_empty() {
                let answers = writer.run(submissions).await;
                for (sender, answer) in senders.into_iter().zip(answers) {
                    // A client that went away meanwhile has its answer stored with its key.
                    let _ = sender.send(answer);
                }
            }
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}
