//! Each wallet's event stream, in the database: every change appends one event at the
//! next sequence; the database refuses a gap, an update, a delete and a wallet row that
//! moves without its event; the row is the fold of the stream.

use domain::{WalletId, fold};
use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection};
use wallet_hub_client::{Amount, PlaceHold};
use wallet_hub_tests::{TestApp, spawn_app};

/// A connection of the role the service runs as.
async fn runtime(app: &TestApp) -> PgConnection {
    PgConnection::connect(app.settings.database.url.expose_secret())
        .await
        .expect("runtime connection")
}

async fn events_of(app: &TestApp, wallet: &str) -> Vec<(i64, String)> {
    sqlx::query_as(
        "SELECT sequence, event_type FROM wallet_events WHERE wallet_id = $1::uuid ORDER BY sequence",
    )
    .bind(wallet)
    .fetch_all(&app.pool)
    .await
    .expect("stream")
}

/// The SQLSTATE and constraint of a refused statement.
fn refusal(error: sqlx::Error) -> (String, Option<String>) {
    let database = error.as_database_error().expect("a database error");
    (
        database.code().map(|c| c.into_owned()).unwrap_or_default(),
        database.constraint().map(str::to_owned),
    )
}

#[tokio::test]
async fn every_change_appends_one_event_at_the_next_sequence_and_the_row_is_the_fold() {
    let app = spawn_app().await;
    let (_, a, b) = app.money_scenario().await;
    let owner = app.as_owner(a.parse().expect("id")).await;
    let hold = owner
        .place_hold(a.parse().expect("id"), &PlaceHold::new("1.00", 600), None)
        .await
        .expect("hold");
    owner.void_hold(hold.body.id, None).await.expect("void");

    assert_eq!(
        events_of(&app, &a)
            .await
            .iter()
            .map(|(sequence, kind)| (*sequence, kind.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, "WalletCreated"),
            (2, "FundsAdded"),
            (3, "FundsWithdrawn"),
            (4, "FundsTransferred"),
            (5, "HoldPlaced"),
            (6, "HoldVoided"),
        ]
    );
    assert_eq!(
        events_of(&app, &b).await,
        [
            (1, "WalletCreated".to_owned()),
            (2, "FundsReceived".to_owned())
        ]
    );
    let mut conn = app.pool.acquire().await.expect("connection");
    for wallet in [&a, &b] {
        let id: WalletId = wallet.parse().expect("id");
        let stream = store::streams::read_all(&mut conn, id)
            .await
            .expect("stream");
        let row = store::wallets::find(&mut conn, id)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(fold(&stream).expect("folds"), row, "wallet {wallet}");
        assert_eq!(stream.last().map(|e| e.sequence), Some(row.version()));
    }
}

#[tokio::test]
async fn the_database_refuses_a_gap_an_update_a_delete_and_a_row_that_moves_without_its_event() {
    let app = spawn_app().await;
    let wallet = app.new_wallet("USD").await.id;
    app.operator()
        .deposit(wallet, &Amount::new("5.00"), None)
        .await
        .expect("deposit");
    let before = events_of(&app, &wallet.to_string()).await;
    assert_eq!(before.len(), 2);
    let mut conn = runtime(&app).await;

    // A gap: sequence 4 after 2 (the owner is refused too: it is a constraint, not a grant).
    let gap = "INSERT INTO wallet_events (wallet_id, sequence, event_id, event_type, payload, occurred_at) \
               VALUES ($1, 4, gen_random_uuid(), 'FundsAdded', '{}', now())";
    let mut owner = app.pool.acquire().await.expect("owner");
    for conn in [&mut conn, &mut *owner] {
        let error = sqlx::query(gap)
            .bind(wallet.as_uuid())
            .execute(&mut *conn)
            .await
            .expect_err("a gap is refused");
        assert_eq!(
            refusal(error),
            ("23503".to_owned(), Some("wallet_events_no_gap".to_owned()))
        );
    }
    // A second first event, and an event at a taken place.
    let taken = "INSERT INTO wallet_events (wallet_id, sequence, event_id, event_type, payload, occurred_at) \
                 VALUES ($1, 2, gen_random_uuid(), 'FundsAdded', '{}', now())";
    let error = sqlx::query(taken)
        .bind(wallet.as_uuid())
        .execute(&mut conn)
        .await
        .expect_err("a taken sequence is refused");
    assert_eq!(refusal(error).0, "23505");

    // The runtime role cannot change or remove an event.
    for statement in [
        "UPDATE wallet_events SET payload = '{}' WHERE wallet_id = $1",
        "DELETE FROM wallet_events WHERE wallet_id = $1",
    ] {
        let error = sqlx::query(statement)
            .bind(wallet.as_uuid())
            .execute(&mut conn)
            .await
            .expect_err("refused");
        assert_eq!(refusal(error).0, "42501", "{statement}: permission denied");
    }

    // A wallet row whose version moves without its event is refused at commit.
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("UPDATE wallets SET version = version + 1 WHERE id = $1")
        .bind(wallet.as_uuid())
        .execute(&mut *tx)
        .await
        .expect("the statement runs; the check is at commit");
    let error = tx.commit().await.expect_err("refused at commit");
    assert_eq!(
        refusal(error),
        (
            "23514".to_owned(),
            Some("wallets_version_matches_stream".to_owned())
        )
    );

    assert_eq!(
        events_of(&app, &wallet.to_string()).await,
        before,
        "nothing changed"
    );
    let version: i64 = sqlx::query_scalar("SELECT version FROM wallets WHERE id = $1")
        .bind(wallet.as_uuid())
        .fetch_one(&app.pool)
        .await
        .expect("version");
    assert_eq!(version, 2);
}
