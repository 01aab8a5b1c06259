//! The `idempotency_keys` table: the first answer to each `Idempotency-Key` of a caller,
//! with the request it answered (method and concrete path, body hash), kept until it
//! expires.
//!
//! A key is claimed (inserted with a placeholder answer) in the transaction that makes the
//! change, and its answer is filled in before that transaction commits; a concurrent
//! request with the same key waits on the row, briefly (see [`claim`]).

use sqlx::PgConnection;

use crate::error::{LOCK_NOT_AVAILABLE, StoreError, has_code};

/// How long a claim waits for a key held by a request still running.
const CLAIM_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '200ms'";
/// Back to the connection's own `lock_timeout` (`database.lock_timeout_ms`) for the change.
const RESTORE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = DEFAULT";

/// One key: the client's `Idempotency-Key` within its caller, and the request (`route`:
/// method and concrete path) it is used for.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub caller: &'a str,
    pub route: &'a str,
    pub key: &'a str,
}

/// The answer stored with a key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnswer {
    /// Method and concrete path of the request that got this answer; the key used on
    /// another is refused.
    pub route: String,
    /// Hash of the request that got this answer; a different one reusing the key is refused.
    pub request_hash: Vec<u8>,
    pub status: u16,
    pub body: serde_json::Value,
    pub location: Option<String>,
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key is this transaction's (new, or its old answer had expired): run the change
    /// and [`record_answer`] before committing.
    Claimed,
    /// An earlier request with this key committed this answer.
    Answered(StoredAnswer),
}

#[derive(sqlx::FromRow)]
struct AnswerRow {
    route: String,
    request_hash: Vec<u8>,
    response_status: i16,
    response_body: serde_json::Value,
    location: Option<String>,
    expired: bool,
}

/// Takes `key` for this transaction, or returns the answer stored with it. A key held by a
/// request still running makes the insert wait on its row; after a short lock timeout
/// that is [`StoreError::KeyInUse`].
pub async fn claim(
    conn: &mut PgConnection,
    key: Key<'_>,
    request_hash: &[u8],
    ttl_hours: u32,
) -> Result<Claim, StoreError> {
    sqlx::query(CLAIM_LOCK_TIMEOUT).execute(&mut *conn).await?;
    let ttl = i32::try_from(ttl_hours).unwrap_or(i32::MAX);
    if !insert(&mut *conn, key, request_hash, ttl).await? {
        let stored: AnswerRow = sqlx::query_as(
            "SELECT route, request_hash, response_status, response_body, location, \
                    expires_at < now() AS expired \
             FROM idempotency_keys WHERE caller = $1 AND key = $2",
        )
        .bind(key.caller)
        .bind(key.key)
        .fetch_one(&mut *conn)
        .await?;
        if !stored.expired {
            let status = u16::try_from(stored.response_status)
                .map_err(|e| StoreError::corrupt("idempotency key", key.key, e))?;
            return Ok(Claim::Answered(StoredAnswer {
                route: stored.route,
                request_hash: stored.request_hash,
                status,
                body: stored.response_body,
                location: stored.location,
            }));
        }
        sqlx::query("DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2")
            .bind(key.caller)
            .bind(key.key)
            .execute(&mut *conn)
            .await?;
        insert(&mut *conn, key, request_hash, ttl).await?;
    }
    sqlx::query(RESTORE_LOCK_TIMEOUT)
        .execute(&mut *conn)
        .await?;
    Ok(Claim::Claimed)
}

/// Inserts the key with a placeholder answer (filled in before commit); false if it exists.
async fn insert(
    conn: &mut PgConnection,
    key: Key<'_>,
    request_hash: &[u8],
    ttl_hours: i32,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys \
         (caller, route, key, request_hash, response_status, response_body, expires_at) \
         VALUES ($1, $2, $3, $4, 0, 'null', now() + make_interval(hours => $5)) \
         ON CONFLICT DO NOTHING",
    )
    .bind(key.caller)
    .bind(key.route)
    .bind(key.key)
    .bind(request_hash)
    .bind(ttl_hours)
    .execute(conn)
    .await
    .map_err(|error| {
        if has_code(&error, LOCK_NOT_AVAILABLE) {
            StoreError::KeyInUse(error)
        } else {
            StoreError::from(error)
        }
    })?;
    Ok(done.rows_affected() == 1)
}

/// Stores the answer to the request that claimed `key`.
pub async fn record_answer(
    conn: &mut PgConnection,
    key: Key<'_>,
    status: u16,
    body: &serde_json::Value,
    location: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4, location = $5 \
         WHERE caller = $1 AND key = $2",
    )
    .bind(key.caller)
    .bind(key.key)
    .bind(i16::try_from(status).unwrap_or(i16::MAX))
    .bind(body)
    .bind(location)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes up to `batch` expired keys; returns how many.
pub async fn delete_expired(conn: &mut PgConnection, batch: i64) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY( \
             SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1))",
    )
    .bind(batch)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
