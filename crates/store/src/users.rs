//! The `users` table.

use chrono::{DateTime, Utc};
use domain::{Email, User, UserId, UserName};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::StoreError;

/// Violated when another user has the same normalized email address.
const EMAIL_UNIQUE: &str = "users_email_unique";

#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    created_at: DateTime<Utc>,
}

/// Inserts a new user; an address already registered is [`StoreError::EmailTaken`].
pub async fn insert(conn: &mut PgConnection, user: &User) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, email, email_normalized, name, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user.id().as_uuid())
    .bind(user.email().as_str())
    .bind(user.email().normalized())
    .bind(user.name().as_str())
    .bind(user.created_at())
    .execute(conn)
    .await
    .map_err(|error| match StoreError::from(error) {
        error if error.constraint() == Some(EMAIL_UNIQUE) => StoreError::EmailTaken,
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
