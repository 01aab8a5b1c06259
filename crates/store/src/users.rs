//! The `users` table.

use chrono::{DateTime, Utc};
use domain::{Actor, Email, User, UserId, UserName};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;

/// Violated when the principal already registered a user.
const IDENTITY_UNIQUE: &str = "users_identity_unique";

#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    created_at: DateTime<Utc>,
}

/// Inserts a new user bound to the principal `owner`; a principal that already has a user
/// is [`StoreError::AlreadyRegistered`]. The email address is contact data, not a key:
/// several users may give the same one.
pub async fn insert(conn: &mut PgConnection, user: &User, owner: &Actor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, email, email_normalized, name, created_at, issuer, subject) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user.id().as_uuid())
    .bind(user.email().as_str())
    .bind(user.email().normalized())
    .bind(user.name().as_str())
    .bind(user.created_at())
    .bind(&owner.issuer)
    .bind(&owner.subject)
    .execute(conn)
    .await
    .map_err(|error| match StoreError::from(error) {
        error if error.constraint() == Some(IDENTITY_UNIQUE) => StoreError::AlreadyRegistered,
        error => error,
    })?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, id: UserId) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, email, name, created_at FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(conn)
            .await?;
    row.map(|row| {
        let email = Email::parse(&row.email).map_err(|e| StoreError::corrupt("user", id, e))?;
        let name = UserName::parse(&row.name).map_err(|e| StoreError::corrupt("user", id, e))?;
        Ok(User::restore(
            UserId::from(row.id),
            email,
            name,
            row.created_at,
        ))
    })
    .transpose()
}

/// Who user `id` belongs to: `None` if there is no such user, `Some(None)` for a user
/// registered before authentication existed (no principal can act for it), else the
/// principal it is bound to.
pub async fn owner(
    conn: &mut PgConnection,
    id: UserId,
) -> Result<Option<Option<Actor>>, StoreError> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT issuer, subject FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(issuer, subject)| {
        issuer
            .zip(subject)
            .map(|(issuer, subject)| Actor { issuer, subject })
    }))
}

/// The user the principal registered, if it did.
pub async fn registered_by(
    conn: &mut PgConnection,
    principal: &Actor,
) -> Result<Option<UserId>, StoreError> {
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM users WHERE issuer = $1 AND subject = $2")
            .bind(&principal.issuer)
            .bind(&principal.subject)
            .fetch_optional(conn)
            .await?;
    Ok(id.map(UserId::from))
}
