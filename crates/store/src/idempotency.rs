//! The `idempotency_keys` table: the first answer to each `Idempotency-Key` of a caller,
//! with the request it answered (method and concrete path, body hash), kept until it
//! expires.
//!
//! A key is claimed (inserted with a placeholder answer) in the transaction that makes the
//! change, and its answer is filled in before that transaction commits. The claim first
//! takes the key's transaction-scoped advisory lock without waiting
//! (`pg_try_advisory_xact_lock`): a key held by a request still running is
//! [`StoreError::KeyInUse`] at once (409 for that request alone), the insert never waits
//! on another transaction's row, no statement of the transaction fails, and no setting is
//! changed for the statements after it.

use sqlx::PgConnection;

use crate::error::StoreError;

/// The advisory lock of keys (`$1`: callers, `$2`: keys), tried without waiting, one
/// answer per key in their order. The two-`int4` form: a lock space apart from the relay's
/// single-`bigint` leadership lock.
const TRY_LOCK_KEYS: &str = "SELECT pg_try_advisory_xact_lock(hashtext(c), hashtext(k)) \
     FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(c, k, i) ORDER BY i";

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

/// Takes `key` for this transaction, or returns the answer stored with it;
/// [`StoreError::KeyInUse`] when a request still running holds it.
pub async fn claim(
    conn: &mut PgConnection,
    key: Key<'_>,
    request_hash: &[u8],
    ttl_hours: u32,
) -> Result<Claim, StoreError> {
    if try_lock(&mut *conn, &[key]).await? != [true] {
        return Err(StoreError::KeyInUse);
    }
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
    Ok(Claim::Claimed)
}

/// Tries the advisory lock of each key, without waiting: whether this transaction holds it.
async fn try_lock(conn: &mut PgConnection, keys: &[Key<'_>]) -> Result<Vec<bool>, StoreError> {
    let callers: Vec<&str> = keys.iter().map(|k| k.caller).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.key).collect();
    Ok(sqlx::query_scalar(TRY_LOCK_KEYS)
        .bind(callers)
        .bind(names)
        .fetch_all(conn)
        .await?)
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
    .await?;
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

/// What [`claim_many`] did with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// New: this transaction's.
    Claimed,
    /// It exists (answered, or expired): [`claim`] it on its own to read its answer (or
    /// retake it when it expired).
    Exists,
    /// A request still running holds it: that request alone is refused.
    Busy,
}

/// Claims several keys: their advisory locks in one statement, then the free ones inserted
/// in one statement (in key order). Never waits on another transaction.
pub async fn claim_many(
    conn: &mut PgConnection,
    claims: &[KeyClaim<'_>],
    ttl_hours: u32,
) -> Result<Vec<Taken>, StoreError> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<Key<'_>> = claims.iter().map(|c| c.key).collect();
    let locked = try_lock(&mut *conn, &keys).await?;
    let free: Vec<&KeyClaim<'_>> = claims
        .iter()
        .zip(&locked)
        .filter_map(|(claim, &locked)| locked.then_some(claim))
        .collect();
    let callers: Vec<&str> = free.iter().map(|c| c.key.caller).collect();
    let routes: Vec<&str> = free.iter().map(|c| c.key.route).collect();
    let names: Vec<&str> = free.iter().map(|c| c.key.key).collect();
    let hashes: Vec<&[u8]> = free.iter().map(|c| c.request_hash).collect();
    let ttl = i32::try_from(ttl_hours).unwrap_or(i32::MAX);
    let taken: Vec<(String, String)> = if free.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
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
        .bind(&names)
        .bind(hashes)
        .bind(ttl)
        .fetch_all(&mut *conn)
        .await?
    };
    Ok(claims
        .iter()
        .zip(locked)
        .map(|(c, locked)| {
            let mine = taken
                .iter()
                .any(|(caller, key)| caller == c.key.caller && key == c.key.key);
            match (locked, mine) {
                (false, _) => Taken::Busy,
                (true, true) => Taken::Claimed,
                (true, false) => Taken::Exists,
            }
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
