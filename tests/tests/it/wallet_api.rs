//! The wallet API beyond deposits: users, withdrawals, transfers, lifecycle, history, and
//! the ledger rules the database enforces on its own.

use domain::{UserId, WalletId, WalletStatus};
use uuid::Uuid;
use wallet_hub_client::{
    Amount, CreateTransfer, CreateUser, Error, PageRequest, Reply, types::HistoryItem,
};

use wallet_hub_tests::{TestApp, spawn_app};

/// The problem's type slug of a refused call, after checking its status.
fn refused<T: std::fmt::Debug>(outcome: Result<Reply<T>, Error>, status: u16) -> String {
    let error = outcome.expect_err("the call is refused");
    let problem = error
        .problem()
        .unwrap_or_else(|| panic!("a problem: {error:?}"));
    assert_eq!(problem.status, status, "{problem}");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(status));
    problem.slug().to_owned()
}

/// The problem's type slug of a raw answer (for requests the typed client cannot make).
async fn problem_type(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.expect("problem JSON");
    let type_uri = body["type"].as_str().expect("type").to_owned();
    type_uri.rsplit('/').next().expect("slug").to_owned()
}

async fn balance(app: &TestApp, wallet: WalletId) -> String {
    app.operator()
        .get_wallet(wallet)
        .await
        .expect("wallet")
        .body
        .balance
}

fn amount(value: &str) -> Amount {
    Amount::new(value)
}

/// Every ledger transaction sums to zero and every wallet's balance is its latest
/// running balance, which is the sum of its entries.
async fn assert_ledger_consistent(app: &TestApp) {
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries GROUP BY transaction_id HAVING sum(amount_minor) <> 0) t",
    )
    .fetch_one(&app.pool)
    .await
    .expect("query");
    assert_eq!(unbalanced, 0);
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM wallets w WHERE w.balance_minor <> \
         COALESCE((SELECT sum(amount_minor) FROM ledger_entries e WHERE e.wallet_id = w.id), 0) \
         OR w.balance_minor < 0",
    )
    .fetch_one(&app.pool)
    .await
    .expect("query");
    assert_eq!(mismatched, 0);
}

#[tokio::test]
async fn users_give_any_email_as_contact_data_no_one_can_probe_or_take_and_list_their_wallets() {
    let app = spawn_app().await;
    let ada = app.new_principal();
    let created = ada
        .create_user(
            &CreateUser {
                email: "Ada.Lovelace@Example.com".to_owned(),
                name: "Ada".to_owned(),
            },
            None,
        )
        .await
        .expect("user created");
    assert_eq!(created.status, 201);
    let user = created.body;
    assert_eq!(user.email, "Ada.Lovelace@Example.com");
    assert_eq!(
        created.location.as_deref(),
        Some(format!("/v1/users/{}", user.id).as_str())
    );
    assert_eq!(ada.get_user(user.id).await.expect("user").body, user);

    let again = app
        .new_principal()
        .create_user(
            &CreateUser {
                email: "ada.lovelace@example.COM".to_owned(),
                name: "Other".to_owned(),
            },
            None,
        )
        .await;
    // The address is contact data, not a key: another caller giving it learns nothing
    // about who registered it, and takes nothing from them.
    let other = again
        .expect("another caller may give the same address")
        .body;
    assert_ne!(other.id, user.id);
    assert_eq!(other.email, "ada.lovelace@example.COM");
    assert_eq!(
        ada.get_user(user.id).await.expect("user").body,
        user,
        "unchanged"
    );
    for bad in ["not-an-email", "a@b", "", "a b@example.com"] {
        let user = CreateUser {
            email: bad.to_owned(),
            name: "X".to_owned(),
        };
        let outcome = app.new_principal().create_user(&user, None).await;
        assert_eq!(refused(outcome, 422), "validation-error", "{bad:?}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(users, 2, "Ada, and the other caller who gave her address");

    let user_id: Uuid = user.id.into();
    let usd = app.new_wallet_for(user_id, "USD").await;
    let eur = app.new_wallet_for(user_id, "EUR").await;
    let wallets = ada
        .list_wallets(user.id, &PageRequest::default())
        .await
        .expect("wallets")
        .body
        .items;
    assert_eq!(wallets, vec![usd, eur]);
    let operator = app.operator();
    let nobody = UserId::new();
    assert_eq!(refused(operator.get_user(nobody).await, 404), "not-found");
    assert_eq!(
        refused(
            operator.list_wallets(nobody, &PageRequest::default()).await,
            404
        ),
        "not-found"
    );
}

#[tokio::test]
async fn withdrawals_never_go_below_zero() {
    let app = spawn_app().await;
    let id = app.new_wallet("USD").await.id;
    let owner = app.as_owner(id).await;
    app.operator()
        .deposit(id, &amount("10.00"), None)
        .await
        .expect("deposit");
    let ok = owner
        .withdraw(id, &amount("2.50"), None)
        .await
        .expect("withdrawal");
    assert_eq!(ok.status, 201);
    assert_eq!(ok.body.balance_after, "7.50");
    assert_eq!(ok.body.amount, "2.50");
    assert_eq!(ok.body.wallet_id, id);
    let outbox_before = app.outbox_rows().await;
    let too_much = owner.withdraw(id, &amount("7.51"), None).await;
    assert_eq!(refused(too_much, 422), "insufficient-funds");
    for (value, slug) in [
        ("0", "validation-error"),
        ("-1", "validation-error"),
        ("x", "validation-error"),
        ("1.001", "amount-not-representable"),
    ] {
        let outcome = owner.withdraw(id, &amount(value), None).await;
        assert_eq!(refused(outcome, 422), slug, "{value}");
    }
    assert_eq!(balance(&app, id).await, "7.50");
    assert_eq!(
        app.outbox_rows().await,
        outbox_before,
        "refusals write no event"
    );
    owner
        .withdraw(id, &amount("7.50"), None)
        .await
        .expect("the whole balance");
    assert_eq!(balance(&app, id).await, "0.00");
    assert_ledger_consistent(&app).await;
}

#[tokio::test]
async fn frozen_and_closed_wallets_move_no_money_and_close_needs_a_zero_balance() {
    let app = spawn_app().await;
    let id = app.new_wallet("USD").await.id;
    let (operator, owner) = (app.operator(), app.as_owner(id).await);
    operator
        .deposit(id, &amount("3.00"), None)
        .await
        .expect("deposit");

    let frozen = operator.freeze(id, None).await.expect("frozen");
    assert_eq!(frozen.status, 200);
    assert_eq!(frozen.body.status, WalletStatus::Frozen);
    let outbox_before = app.outbox_rows().await;
    assert_eq!(
        refused(operator.deposit(id, &amount("1.00"), None).await, 409),
        "wallet-not-active"
    );
    assert_eq!(
        refused(owner.withdraw(id, &amount("1.00"), None).await, 409),
        "wallet-not-active"
    );
    assert_eq!(
        refused(operator.freeze(id, None).await, 409),
        "invalid-status-transition"
    );
    assert_eq!(app.outbox_rows().await, outbox_before);

    let active = operator.unfreeze(id, None).await.expect("unfrozen");
    assert_eq!(active.body.status, WalletStatus::Active);
    assert_eq!(
        refused(owner.close(id, None).await, 409),
        "balance-not-zero"
    );
    owner
        .withdraw(id, &amount("3.00"), None)
        .await
        .expect("withdrawal");
    let closed = owner.close(id, None).await.expect("closed");
    assert_eq!(closed.body.status, WalletStatus::Closed);
    assert_eq!(
        refused(operator.deposit(id, &amount("1.00"), None).await, 409),
        "wallet-not-active"
    );
    assert_eq!(
        refused(operator.unfreeze(id, None).await, 409),
        "invalid-status-transition"
    );
    assert_eq!(
        refused(operator.freeze(WalletId::new(), None).await, 404),
        "not-found"
    );
    let statuses: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT event_type, payload FROM outbox WHERE event_type = 'WalletStatusChanged' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    let changes: Vec<(String, String)> = statuses
        .iter()
        .map(|(_, p)| {
            (
                p["from"].as_str().unwrap_or("").to_owned(),
                p["to"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("active".to_owned(), "frozen".to_owned()),
            ("frozen".to_owned(), "active".to_owned()),
            ("active".to_owned(), "closed".to_owned())
        ]
    );
}

#[tokio::test]
async fn transfers_move_money_atomically_between_active_wallets_of_one_currency() {
    let app = spawn_app().await;
    let a = app.new_wallet("USD").await.id;
    let b = app.new_wallet("USD").await.id;
    let eur = app.new_wallet("EUR").await.id;
    let (operator, owner) = (app.operator(), app.as_owner(a).await);
    operator
        .deposit(a, &amount("10.00"), None)
        .await
        .expect("deposit");
    let transfer = |from: WalletId, to: WalletId, amount: &str| CreateTransfer {
        from_wallet_id: from,
        to_wallet_id: to,
        amount: amount.to_owned(),
    };

    let ok = owner
        .transfer(&transfer(a, b, "4.25"), None)
        .await
        .expect("transfer");
    assert_eq!(ok.status, 201);
    assert_eq!(ok.body.from_balance_after, "5.75");
    assert_eq!(ok.body.to_balance_after, "4.25");
    let transfer_id = ok.body.id.to_string();

    let outbox_before = app.outbox_rows().await;
    let cases = [
        (transfer(a, b, "5.76"), 422, "insufficient-funds"),
        (transfer(a, eur, "1.00"), 422, "currency-mismatch"),
        (transfer(a, a, "1.00"), 422, "same-wallet"),
        (transfer(a, b, "0"), 422, "validation-error"),
        (transfer(a, b, "1.001"), 422, "amount-not-representable"),
        (transfer(a, WalletId::new(), "1.00"), 404, "not-found"),
    ];
    for (body, status, slug) in cases {
        let outcome = owner.transfer(&body, None).await;
        assert_eq!(refused(outcome, status), slug, "{body:?}");
    }
    operator.freeze(b, None).await.expect("frozen");
    let outbox_after_freeze = app.outbox_rows().await;
    let to_frozen = owner.transfer(&transfer(a, b, "1.00"), None).await;
    assert_eq!(refused(to_frozen, 409), "wallet-not-active");
    assert_eq!(app.outbox_rows().await, outbox_after_freeze);
    assert_eq!(
        outbox_after_freeze,
        outbox_before + 1,
        "only the freeze was written"
    );
    assert_eq!(balance(&app, a).await, "5.75");
    assert_eq!(balance(&app, b).await, "4.25");

    let (event_type, key, payload): (String, Uuid, serde_json::Value) = sqlx::query_as(
        "SELECT event_type, aggregate_id, payload FROM outbox WHERE event_type = 'FundsTransferred'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("one transfer event");
    let (a, b) = (a.to_string(), b.to_string());
    assert_eq!(event_type, "FundsTransferred");
    assert_eq!(key.to_string(), a, "keyed by the source wallet");
    assert_eq!(payload["from_wallet_id"], a.as_str());
    assert_eq!(payload["to_wallet_id"], b.as_str());
    assert_eq!(payload["transfer_id"], transfer_id.as_str());
    assert_ledger_consistent(&app).await;
}

#[tokio::test]
async fn history_pages_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let a = app.new_wallet("USD").await.id;
    let b = app.new_wallet("USD").await.id;
    let (operator, owner) = (app.operator(), app.as_owner(a).await);
    for value in ["1.00", "2.00", "3.00"] {
        operator
            .deposit(a, &amount(value), None)
            .await
            .expect("deposit");
    }
    owner
        .withdraw(a, &amount("0.50"), None)
        .await
        .expect("withdrawal");
    let transfer = CreateTransfer {
        from_wallet_id: a,
        to_wallet_id: b,
        amount: "1.25".to_owned(),
    };
    owner.transfer(&transfer, None).await.expect("transfer");

    let mut seen: Vec<HistoryItem> = Vec::new();
    let mut next = Some(PageRequest::first(2));
    let mut pages = 0;
    while let Some(request) = next {
        let page = owner.history(a, &request).await.expect("page").body;
        pages += 1;
        next = request.next(&page);
        seen.extend(page.items);
    }
    assert_eq!(pages, 3);
    let summary: Vec<(&str, &str, &str, Option<WalletId>)> = seen
        .iter()
        .map(|item| {
            (
                item.kind.as_str(),
                item.amount.as_str(),
                item.balance_after.as_str(),
                item.counterparty_wallet_id,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("transfer", "-1.25", "4.25", Some(b)),
            ("withdrawal", "-0.50", "5.50", None),
            ("deposit", "3.00", "6.00", None),
            ("deposit", "2.00", "3.00", None),
            ("deposit", "1.00", "1.00", None),
        ]
    );
    assert_eq!(
        owner.history_all(a, 200).await.expect("whole history"),
        seen,
        "one page of 200 is the same history"
    );

    let bad_pages = [
        PageRequest::first(0),
        PageRequest::first(201),
        PageRequest {
            limit: None,
            cursor: Some("abc".to_owned()),
        },
        PageRequest {
            limit: None,
            cursor: Some("-5".to_owned()),
        },
    ];
    for bad in bad_pages {
        let outcome = owner.history(a, &bad).await;
        assert_eq!(refused(outcome, 400), "malformed-request", "{bad:?}");
    }
    // Queries the typed client cannot write.
    for bad in ["limit=x", "colour=red"] {
        let response = app
            .get(&format!("/v1/wallets/{a}/transactions?{bad}"))
            .await;
        assert_eq!(
            problem_type(response, 400).await,
            "malformed-request",
            "{bad}"
        );
    }
    let unknown = operator
        .history(WalletId::new(), &PageRequest::default())
        .await;
    assert_eq!(refused(unknown, 404), "not-found");
}

#[tokio::test]
async fn the_database_refuses_a_balance_that_differs_from_the_ledger() {
    let app = spawn_app().await;
    let a = app.new_wallet("USD").await.id;
    app.operator()
        .deposit(a, &amount("1.00"), None)
        .await
        .expect("deposit");
    let id: Uuid = a.into();

    let tampered =
        sqlx::query("UPDATE wallets SET balance_minor = balance_minor + 1 WHERE id = $1")
            .bind(id)
            .execute(&app.pool)
            .await;
    let error = tampered.expect_err("balance change without ledger entries is refused");
    assert!(
        error.to_string().contains("differs from its ledger"),
        "{error}"
    );

    let unbalanced = async {
        let mut tx = app.pool.begin().await?;
        let tx_id = Uuid::now_v7();
        sqlx::query("INSERT INTO ledger_transactions (id, kind, currency, amount_minor, correlation_id, created_at) VALUES ($1, 'deposit', 'USD', 5, 'x', now())")
            .bind(tx_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO ledger_entries (transaction_id, wallet_id, currency, amount_minor, balance_after_minor, created_at) VALUES ($1, NULL, 'USD', -5, NULL, now())")
            .bind(tx_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    let error = unbalanced.expect_err("entries must sum to zero");
    assert!(error.to_string().contains("does not balance"), "{error}");
    assert_eq!(balance(&app, a).await, "1.00");
}

#[tokio::test]
async fn a_transfer_its_source_cannot_make_tells_nothing_about_the_target() {
    let app = spawn_app().await;
    let operator = app.operator();
    let mine = app.new_wallet("USD").await.id;
    let owner = app.as_owner(mine).await;
    operator
        .deposit(mine, &amount("1.00"), None)
        .await
        .expect("deposit");
    let active = app.new_wallet("USD").await.id;
    let euros = app.new_wallet("EUR").await.id;
    let frozen = app.new_wallet("USD").await.id;
    operator.freeze(frozen, None).await.expect("frozen");
    let missing = WalletId::new();

    // More than the source holds: whatever the target is, the same answer, about the
    // source alone.
    let mut answers = Vec::new();
    for target in [active, euros, frozen, missing] {
        let outcome = owner
            .transfer(
                &CreateTransfer {
                    from_wallet_id: mine,
                    to_wallet_id: target,
                    amount: "5.00".to_owned(),
                },
                None,
            )
            .await;
        let error = outcome.expect_err("refused");
        let problem = error.problem().expect("a problem").clone();
        answers.push((problem.status, problem.slug().to_owned(), problem.detail));
    }
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "one answer for every target: {answers:?}"
    );
    assert_eq!(answers[0].0, 422);
    assert_eq!(answers[0].1, "insufficient-funds");
    let balance = owner.get_wallet(mine).await.expect("wallet").body.balance;
    assert_eq!(balance, "1.00", "nothing moved");

    // A transfer the source can make is judged on the target next.
    let outcome = owner
        .transfer(
            &CreateTransfer {
                from_wallet_id: mine,
                to_wallet_id: missing,
                amount: "0.50".to_owned(),
            },
            None,
        )
        .await;
    assert_eq!(refused(outcome, 404), "not-found");
}
