//! `StoreError` sorts the database's answers once: what the API retries (contention), what
//! it answers 503 and consumers retry later (unavailable), and which constraint refused a
//! statement. Each SQLSTATE is raised by the real server.

use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection};
use store::StoreError;
use wallet_hub::Settings;

/// The error PostgreSQL answers when a statement fails with `sqlstate` (and `constraint`).
async fn failure(sqlstate: &str, constraint: Option<&str>) -> StoreError {
    let settings = Settings::load(None).expect("settings load");
    let mut conn = PgConnection::connect(settings.database.url.expose_secret())
        .await
        .expect("connect");
    let constraint = constraint
        .map(|name| format!(", CONSTRAINT = '{name}'"))
        .unwrap_or_default();
    // The codes and names are this file's constants, never input.
    let error = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DO $$ BEGIN RAISE EXCEPTION 'raised by the test' \
         USING ERRCODE = '{sqlstate}'{constraint}; END $$"
    )))
    .execute(&mut conn)
    .await
    .expect_err("the statement fails");
    StoreError::from(error)
}

/// Codes that must be neither contention nor unavailable.
const PERMANENT: [&str; 3] = ["23505", "23503", "42601"];

#[tokio::test]
async fn serialization_failures_and_deadlocks_are_contention_and_nothing_else_is() {
    for code in ["40001", "40P01"] {
        let error = failure(code, None).await;
        assert!(error.is_contention(), "{code}");
        assert!(error.is_transient(), "{code}");
        assert!(!error.is_unavailable(), "{code}");
    }
    for code in PERMANENT
        .into_iter()
        .chain(["08006", "57P01", "53300", "57014", "55P03"])
    {
        assert!(!failure(code, None).await.is_contention(), "{code}");
    }
}

#[tokio::test]
async fn lost_connections_shutdowns_exhausted_resources_and_timeouts_are_unavailable() {
    // 57014 and 55P03: a statement or lock timeout expired.
    for code in [
        "08006", "08001", "57P01", "57P03", "53300", "53100", "57014", "55P03",
    ] {
        let error = failure(code, None).await;
        assert!(error.is_unavailable(), "{code}");
        assert!(error.is_transient(), "{code}");
    }
    for code in PERMANENT {
        let error = failure(code, None).await;
        assert!(!error.is_unavailable(), "{code}");
        assert!(!error.is_transient(), "{code}");
    }
}

#[tokio::test]
async fn a_violated_constraint_is_named_and_other_failures_name_none() {
    let violation = failure("23505", Some("users_email_unique")).await;
    assert_eq!(violation.constraint(), Some("users_email_unique"));
    assert!(!violation.is_transient());
    assert_eq!(failure("40001", None).await.constraint(), None);
}
