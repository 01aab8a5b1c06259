//! Least privilege: the service's runtime role reads and writes rows and can do nothing
//! else. (That it can do everything the service needs is what the rest of this suite
//! shows: every service in it runs as that role.)

use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection};
use wallet_hub_tests::spawn_app;

/// `insufficient_privilege`.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

#[tokio::test]
async fn the_runtime_role_cannot_disable_triggers_drop_truncate_or_rewrite_the_ledger() {
    let app = spawn_app().await;
    let (_user, a, _b) = app.money_scenario().await;
    let mut runtime = PgConnection::connect(app.settings.database.url.expose_secret())
        .await
        .expect("connect as the runtime role");
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut runtime)
        .await
        .expect("current_user");
    assert_eq!(user, wallet_hub_tests::app::RUNTIME_LOGIN);

    let refused = [
        "ALTER TABLE ledger_entries DISABLE TRIGGER ALL",
        "ALTER TABLE wallets DISABLE TRIGGER wallets_balance_matches_ledger",
        "ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_pkey",
        "DROP TRIGGER ledger_entries_running_balance ON ledger_entries",
        "DROP TABLE ledger_entries",
        "DROP TABLE outbox CASCADE",
        "TRUNCATE ledger_entries, ledger_transactions CASCADE",
        "UPDATE ledger_entries SET amount_minor = amount_minor + 1",
        "DELETE FROM ledger_entries",
        "DELETE FROM ledger_transactions",
        "DELETE FROM _sqlx_migrations",
        "CREATE TABLE shadow_ledger (id int)",
        "CREATE OR REPLACE FUNCTION ledger_entry_continues_balance() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        "SET session_replication_role = replica",
    ];
    for statement in refused {
        let error = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut runtime)
            .await
            .expect_err(statement);
        let code = error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert_eq!(
            code.as_deref(),
            Some(INSUFFICIENT_PRIVILEGE),
            "{statement}: {error}"
        );
    }

    // Everything is still in place: the triggers fire, the rows are there.
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'O' \
         AND tgname IN ('ledger_entries_running_balance', 'ledger_entries_commit_check', \
                        'wallets_balance_matches_ledger')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("triggers");
    assert_eq!(triggers, 3, "the ledger's triggers are enabled");
    let balance: i64 = sqlx::query_scalar("SELECT balance_minor FROM wallets WHERE id = $1::uuid")
        .bind(&a)
        .fetch_one(&app.pool)
        .await
        .expect("balance");
    assert_eq!(balance, 700, "10.00 - 1.00 - 2.00");
}
