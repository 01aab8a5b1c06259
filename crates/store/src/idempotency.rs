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

/// A key to claim in a batch, with the hash of the request it is used for.
#[derive(Debug, Clone, Copy)]
pub struct KeyClaim<'a> {
    pub key: Key<'a>,
    pub request_hash: &'a [u8],
}

/// Claims several keys in one statement (in key order, so two batches wait on each other's
/// keys in one order); returns, for each, whether this transaction took it. A key not
/// taken exists already: [`claim`] it on its own to read its answer (or retake it when it
/// expired). A key held by a request still running fails the statement after the short
/// lock timeout with [`StoreError::KeyInUse`].
pub async fn claim_many(
    conn: &mut PgConnection,
    claims: &[KeyClaim<'_>],
    ttl_hours: u32,
) -> Result<Vec<bool>, StoreError> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query(CLAIM_LOCK_TIMEOUT).execute(&mut *conn).await?;
    let callers: Vec<&str> = claims.iter().map(|c| c.key.caller).collect();
    let routes: Vec<&str> = claims.iter().map(|c| c.key.route).collect();
    let keys: Vec<&str> = claims.iter().map(|c| c.key.key).collect();
    let hashes: Vec<&[u8]> = claims.iter().map(|c| c.request_hash).collect();
    let ttl = i32::try_from(ttl_hours).unwrap_or(i32::MAX);
    let taken: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO idempotency_keys \
         (caller, route, key, request_hash, response_status, response_body, expires_at) \
         SELECT k.caller, k.route, k.key, k.request_hash, 0, 'null', \
                now() + make_interval(hours => $5) \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) \
              AS k(caller, route, key, request_hash) \
         ORDER BY k.caller, k.key \
         ON CONFLICT DO NOTHING RETURNING caller, key",
    )
    .bind(&callers)
    .bind(routes)
    .bind(&keys)
    .bind(hashes)
    .bind(ttl)
    .fetch_all(&mut *conn)
    .await
    .map_err(|error| {
        if has_code(&error, LOCK_NOT_AVAILABLE) {
            StoreError::KeyInUse(error)
        } else {
            StoreError::from(error)
        }
    })?;
    sqlx::query(RESTORE_LOCK_TIMEOUT)
        .execute(&mut *conn)
        .await?;
    Ok(claims
        .iter()
        .map(|c| {
            taken
                .iter()
                .any(|(caller, key)| caller == c.key.caller && key == c.key.key)
        })
        .collect())
}

/// The answer to store with a claimed key.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub key: Key<'a>,
    pub status: u16,
    pub body: &'a serde_json::Value,
    pub location: Option<&'a str>,
}

/// Stores the answers of several claimed keys, in one statement.
pub async fn record_answers(
    conn: &mut PgConnection,
    answers: &[Answer<'_>],
) -> Result<(), StoreError> {
    if answers.is_empty() {
        return Ok(());
    }
    let callers: Vec<&str> = answers.iter().map(|a| a.key.caller).collect();
    let keys: Vec<&str> = answers.iter().map(|a| a.key.key).collect();
    let statuses: Vec<i16> = answers
        .iter()
        .map(|a| i16::try_from(a.status).unwrap_or(i16::MAX))
        .collect();
    let bodies: Vec<String> = answers.iter().map(|a| a.body.to_string()).collect();
    let locations: Vec<Option<&str>> = answers.iter().map(|a| a.location).collect();
    sqlx::query(
        "UPDATE idempotency_keys k \
         SET response_status = a.status, response_body = a.body::jsonb, location = a.location \
         FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[], $5::text[]) \
              AS a(caller, key, status, body, location) \
         WHERE k.caller = a.caller AND k.key = a.key",
    )
    .bind(callers)
    .bind(keys)
    .bind(statuses)
    .bind(bodies)
    .bind(locations)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives claimed keys back (deletes them) in one statement: their requests failed in a way
/// that is not stored (as a request that fails validation), so a retry runs again.
pub async fn release_many(conn: &mut PgConnection, keys: &[Key<'_>]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let callers: Vec<&str> = keys.iter().map(|k| k.caller).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.key).collect();
    sqlx::query(
        "DELETE FROM idempotency_keys k USING unnest($1::text[], $2::text[]) AS r(caller, key) \
         WHERE k.caller = r.caller AND k.key = r.key",
    )
    .bind(callers)
    .bind(names)
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
