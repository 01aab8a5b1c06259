//! Holds against the real service and database (docs/holds.md): placing, partial capture,
//! void, exact expiry without the sweeper, frozen and closed wallets, who may capture, and
//! concurrent holds and withdrawals that never overdraw what is available.

use std::time::Duration;

use domain::{HoldId, WalletId};
use uuid::Uuid;
use wallet_hub_client::{
    Amount, Capture, Client, Error, Hold, HoldStatusFilter, IdempotencyKey, PageRequest, PlaceHold,
    Reply,
};
use wallet_hub_tests::{TestApp, spawn_app};

/// The problem's type slug of a refused call, after checking its status.
fn refused<T: std::fmt::Debug>(outcome: Result<Reply<T>, Error>, status: u16) -> String {
    let error = outcome.expect_err("the call is refused");
    let problem = error
        .problem()
        .unwrap_or_else(|| panic!("a problem: {error:?}"));
    assert_eq!(problem.status, status, "{problem}");
    problem.slug().to_owned()
}

/// A USD wallet of a new user with `amount` deposited, and its owner's client.
async fn funded(app: &TestApp, amount: &str) -> (WalletId, Client) {
    let wallet = app.new_wallet("USD").await;
    app.operator()
        .deposit(wallet.id, &Amount::new(amount), None)
        .await
        .expect("deposit");
    (wallet.id, app.as_owner(wallet.id).await)
}

/// `(balance, held, available)` as the API shows them.
async fn amounts(app: &TestApp, wallet: WalletId) -> (String, String, String) {
    let wallet = app
        .operator()
        .get_wallet(wallet)
        .await
        .expect("wallet")
        .body;
    (wallet.balance, wallet.held, wallet.available)
}

fn triple(balance: &str, held: &str, available: &str) -> (String, String, String) {
    (balance.to_owned(), held.to_owned(), available.to_owned())
}

/// The ledger side of holds: every wallet's held amount is the sum of its holds recorded
/// pending and its `held` account's latest running balance; every transaction balances on
/// each account; no capture exceeds its hold.
async fn assert_holds_consistent(app: &TestApp) {
    let broken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM wallets w WHERE w.held_minor <> \
           COALESCE((SELECT sum(amount_minor) FROM holds h WHERE h.wallet_id = w.id AND h.status = 'pending'), 0) \
         OR w.held_minor <> COALESCE((SELECT balance_after_minor FROM ledger_entries e \
              WHERE e.wallet_id = w.id AND e.account = 'held' ORDER BY e.id DESC LIMIT 1), 0)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("query");
    assert_eq!(
        broken, 0,
        "held amounts match the pending holds and the ledger"
    );
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries \
           GROUP BY transaction_id, account HAVING sum(amount_minor) <> 0) t",
    )
    .fetch_one(&app.pool)
    .await
    .expect("query");
    assert_eq!(unbalanced, 0, "every transaction balances on each account");
    let over: i64 =
        sqlx::query_scalar("SELECT count(*) FROM holds WHERE captured_minor > amount_minor")
            .fetch_one(&app.pool)
            .await
            .expect("query");
    assert_eq!(over, 0);
}

async fn outbox_types(app: &TestApp, wallet: WalletId) -> Vec<String> {
    sqlx::query_scalar("SELECT event_type FROM outbox WHERE aggregate_id = $1 ORDER BY id")
        .bind(wallet.as_uuid())
        .fetch_all(&app.pool)
        .await
        .expect("outbox")
}

#[tokio::test]
async fn a_hold_reserves_money_a_partial_capture_moves_part_and_releases_the_rest() {
    let app = spawn_app().await;
    let (wallet, owner) = funded(&app, "10.00").await;
    let shop = app.new_wallet("USD").await;
    let place = PlaceHold {
        to_wallet_id: Some(shop.id),
        description: Some("order 42".to_owned()),
        ..PlaceHold::new("6.00", 600)
    };
    let key = IdempotencyKey::new(format!("hold-{}", Uuid::now_v7())).expect("key");
    let placed = owner
        .place_hold(wallet, &place, Some(&key))
        .await
        .expect("placed");
    assert_eq!(placed.status, 201);
    let hold = placed.body.clone();
    assert_eq!(
        placed.location.as_deref(),
        Some(format!("/v1/holds/{}", hold.id).as_str())
    );
    assert_eq!(
        (hold.status.as_str(), hold.amount.as_str()),
        ("pending", "6.00")
    );
    assert_eq!(amounts(&app, wallet).await, triple("10.00", "6.00", "4.00"));
    // A retry with the key replays the answer and reserves nothing more.
    let replayed = owner
        .place_hold(wallet, &place, Some(&key))
        .await
        .expect("replayed");
    assert!(replayed.replayed);
    assert_eq!(replayed.body, hold);
    assert_eq!(amounts(&app, wallet).await, triple("10.00", "6.00", "4.00"));
    // What is held cannot be withdrawn.
    let slug = refused(
        owner.withdraw(wallet, &Amount::new("4.01"), None).await,
        422,
    );
    assert_eq!(slug, "insufficient-funds");
    let read = owner.get_hold(hold.id).await.expect("read");
    assert_eq!(read.etag.as_deref(), Some("\"1\""));

    let capture = Capture {
        amount: Some("2.50".to_owned()),
    };
    let captured = owner
        .capture_hold(hold.id, &capture, None)
        .await
        .expect("captured");
    assert_eq!(captured.status, 200);
    assert_eq!(
        (
            captured.body.status.as_str(),
            captured.body.captured.as_str()
        ),
        ("captured", "2.50")
    );
    assert_eq!(amounts(&app, wallet).await, triple("7.50", "0.00", "7.50"));
    assert_eq!(amounts(&app, shop.id).await.0, "2.50");
    let slug = refused(
        owner.capture_hold(hold.id, &Capture::default(), None).await,
        409,
    );
    assert_eq!(slug, "hold-not-pending");
    let history = owner.history_all(wallet, 50).await.expect("history");
    assert_eq!(history[0].kind, "capture");
    assert_eq!(history[0].amount, "-2.50");
    assert_eq!(
        outbox_types(&app, wallet).await[2..],
        ["HoldPlaced", "HoldCaptured"]
    );
    assert_holds_consistent(&app).await;
}

#[tokio::test]
async fn a_void_releases_all_and_lists_show_holds_by_status() {
    let app = spawn_app().await;
    let (wallet, owner) = funded(&app, "10.00").await;
    let first = owner
        .place_hold(wallet, &PlaceHold::new("3.00", 600), None)
        .await
        .expect("placed")
        .body;
    let second = owner
        .place_hold(wallet, &PlaceHold::new("1.00", 600), None)
        .await
        .expect("placed")
        .body;
    let voided = owner.void_hold(first.id, None).await.expect("voided").body;
    assert_eq!(voided.status, "voided");
    assert_eq!(voided.captured, "0.00");
    assert_eq!(amounts(&app, wallet).await, triple("10.00", "1.00", "9.00"));
    let ids = |page: Vec<Hold>| page.into_iter().map(|h| h.id).collect::<Vec<HoldId>>();
    let all = owner
        .list_holds(wallet, None, &PageRequest::first(1))
        .await
        .expect("list");
    assert_eq!(ids(all.body.items), [second.id]);
    assert!(all.body.next_cursor.is_some(), "newest first, paged");
    let pending = owner
        .list_holds(
            wallet,
            Some(HoldStatusFilter::Pending),
            &PageRequest::first(10),
        )
        .await
        .expect("list");
    assert_eq!(ids(pending.body.items), [second.id]);
    let void = owner
        .list_holds(
            wallet,
            Some(HoldStatusFilter::Voided),
            &PageRequest::first(10),
        )
        .await
        .expect("list");
    assert_eq!(ids(void.body.items), [first.id]);
    assert_eq!(
        outbox_types(&app, wallet).await[2..],
        ["HoldPlaced", "HoldPlaced", "HoldVoided"]
    );
    assert_holds_consistent(&app).await;
}

#[tokio::test]
async fn from_its_expiry_a_hold_reserves_nothing_and_cannot_be_captured_even_before_the_sweeper() {
    // No sweeper runs in this test's service: expiry is judged from `expires_at` alone.
    let app =
        wallet_hub_tests::spawn_app_with(|settings| settings.api.hold_sweep_interval_ms = 0).await;
    let (wallet, owner) = funded(&app, "5.00").await;
    let hold = owner
        .place_hold(wallet, &PlaceHold::new("5.00", 1), None)
        .await
        .expect("placed")
        .body;
    assert_eq!(amounts(&app, wallet).await, triple("5.00", "5.00", "0.00"));
    let wait = (hold.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    assert_eq!(amounts(&app, wallet).await, triple("5.00", "0.00", "5.00"));
    assert_eq!(
        owner.get_hold(hold.id).await.expect("read").body.status,
        "expired"
    );
    let slug = refused(
        owner.capture_hold(hold.id, &Capture::default(), None).await,
        409,
    );
    assert_eq!(slug, "hold-not-pending");
    let slug = refused(owner.void_hold(hold.id, None).await, 409);
    assert_eq!(slug, "hold-not-pending");
    owner
        .withdraw(wallet, &Amount::new("5.00"), None)
        .await
        .expect("the expired hold reserves nothing");
    let recorded: String = sqlx::query_scalar("SELECT status FROM holds WHERE id = $1")
        .bind(hold.id.as_uuid())
        .fetch_one(&app.pool)
        .await
        .expect("hold");
    assert_eq!(recorded, "pending", "no sweeper has recorded it");
    assert_holds_consistent(&app).await;
}

#[tokio::test]
async fn a_frozen_wallet_keeps_its_holds_voidable_and_a_wallet_with_holds_does_not_close() {
    let app = spawn_app().await;
    let (wallet, owner) = funded(&app, "3.00").await;
    let first = owner
        .place_hold(wallet, &PlaceHold::new("1.00", 600), None)
        .await
        .expect("placed")
        .body;
    let second = owner
        .place_hold(wallet, &PlaceHold::new("2.00", 600), None)
        .await
        .expect("placed")
        .body;
    owner
        .withdraw(wallet, &Amount::new("0.00"), None)
        .await
        .expect_err("nothing is available, and zero is no amount");
    app.operator().freeze(wallet, None).await.expect("frozen");
    let slug = refused(
        owner
            .capture_hold(first.id, &Capture::default(), None)
            .await,
        409,
    );
    assert_eq!(slug, "wallet-not-active");
    let slug = refused(
        owner
            .place_hold(wallet, &PlaceHold::new("0.01", 600), None)
            .await,
        409,
    );
    assert_eq!(slug, "wallet-not-active");
    owner
        .void_hold(first.id, None)
        .await
        .expect("void is allowed");
    app.operator().unfreeze(wallet, None).await.expect("active");
    owner
        .capture_hold(second.id, &Capture::default(), None)
        .await
        .expect("captured all, out of the wallet");
    owner
        .withdraw(wallet, &Amount::new("1.00"), None)
        .await
        .expect("the rest");
    let third = owner
        .place_hold(wallet, &PlaceHold::new("0.01", 600), None)
        .await;
    assert_eq!(refused(third, 422), "insufficient-funds");
    owner
        .close(wallet, None)
        .await
        .expect("closed at zero, no holds");

    // A wallet with a pending hold does not close.
    let (other, other_owner) = funded(&app, "1.00").await;
    other_owner
        .place_hold(other, &PlaceHold::new("1.00", 600), None)
        .await
        .expect("placed");
    assert_eq!(
        refused(other_owner.close(other, None).await, 409),
        "pending-holds"
    );
    assert_holds_consistent(&app).await;
}

#[tokio::test]
async fn only_the_owner_or_the_capture_scope_captures_and_strangers_are_told_nothing() {
    let app = spawn_app().await;
    let (wallet, owner) = funded(&app, "5.00").await;
    let hold = owner
        .place_hold(wallet, &PlaceHold::new("2.00", 600), None)
        .await
        .expect("placed")
        .body;
    let stranger = app.new_principal();
    for outcome in [
        stranger
            .capture_hold(hold.id, &Capture::default(), None)
            .await,
        stranger.void_hold(hold.id, None).await,
        stranger.get_hold(hold.id).await,
    ] {
        assert_eq!(refused(outcome, 404), "not-found");
    }
    let unknown = HoldId::new();
    assert_eq!(refused(owner.get_hold(unknown).await, 404), "not-found");
    let merchant = app
        .api
        .with_token(app.token("merchant", &["wallets:capture"]));
    assert_eq!(
        merchant.get_hold(hold.id).await.expect("read").body.id,
        hold.id
    );
    let captured = merchant
        .capture_hold(hold.id, &Capture::default(), None)
        .await
        .expect("the capture scope may");
    assert_eq!(captured.body.captured, "2.00");
    assert_eq!(amounts(&app, wallet).await, triple("3.00", "0.00", "3.00"));
    assert_holds_consistent(&app).await;
}

#[tokio::test]
async fn concurrent_holds_and_withdrawals_never_overdraw_what_is_available() {
    let app = spawn_app().await;
    let (wallet, owner) = funded(&app, "10.00").await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..50 {
        let owner = owner.clone();
        tasks.spawn(async move {
            if n % 2 == 0 {
                owner
                    .place_hold(wallet, &PlaceHold::new("1.00", 600), None)
                    .await
                    .map(|_| ())
            } else {
                owner
                    .withdraw(wallet, &Amount::new("1.00"), None)
                    .await
                    .map(|_| ())
            }
        });
    }
    let mut accepted = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.expect("task") {
            Ok(()) => accepted += 1,
            Err(error) => {
                let problem = error.problem().expect("a problem");
                assert_eq!(problem.slug(), "insufficient-funds", "{problem}");
            }
        }
    }
    assert_eq!(
        accepted, 10,
        "exactly what was there was reserved or withdrawn"
    );
    let (balance, held, available) = amounts(&app, wallet).await;
    assert_eq!(available, "0.00");
    let balance: f64 = balance.parse().expect("decimal");
    let held: f64 = held.parse().expect("decimal");
    assert!(
        (balance - held).abs() < 1e-9,
        "balance {balance} held {held}"
    );
    assert_holds_consistent(&app).await;
}

#[tokio::test]
async fn hold_requests_are_validated_before_anything_is_written() {
    let app = spawn_app().await;
    let (wallet, owner) = funded(&app, "5.00").await;
    let eur = app.new_wallet("EUR").await;
    for (hold, slug) in [
        (
            PlaceHold {
                expires_in_seconds: None,
                ..PlaceHold::new("1.00", 1)
            },
            "validation-error",
        ),
        (PlaceHold::new("1.00", 0), "invalid-expiry"),
        (PlaceHold::new("1.00", 2_592_001), "invalid-expiry"),
        (
            PlaceHold {
                expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
                ..PlaceHold::new("1.00", 1)
            },
            "validation-error",
        ),
        (
            PlaceHold {
                expires_in_seconds: None,
                expires_at: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
                ..PlaceHold::new("1.00", 1)
            },
            "invalid-expiry",
        ),
        (PlaceHold::new("1.001", 60), "amount-not-representable"),
        (PlaceHold::new("5.01", 60), "insufficient-funds"),
        (
            PlaceHold {
                to_wallet_id: Some(eur.id),
                ..PlaceHold::new("1.00", 60)
            },
            "currency-mismatch",
        ),
        (
            PlaceHold {
                to_wallet_id: Some(wallet),
                ..PlaceHold::new("1.00", 60)
            },
            "same-wallet",
        ),
    ] {
        let outcome = owner.place_hold(wallet, &hold, None).await;
        assert_eq!(refused(outcome, 422), slug, "{hold:?}");
    }
    let placed = owner
        .place_hold(wallet, &PlaceHold::new("1.00", 60), None)
        .await
        .expect("placed")
        .body;
    let too_much = Capture {
        amount: Some("1.01".to_owned()),
    };
    let slug = refused(owner.capture_hold(placed.id, &too_much, None).await, 422);
    assert_eq!(slug, "capture-exceeds-hold");
    let stale = owner.with_if_match("\"2\"");
    assert_eq!(
        refused(stale.void_hold(placed.id, None).await, 412),
        "precondition-failed"
    );
    assert_eq!(amounts(&app, wallet).await, triple("5.00", "1.00", "4.00"));
    assert_holds_consistent(&app).await;
}

#[tokio::test]
async fn the_sweeper_records_expired_holds_with_their_event_and_nothing_a_client_sees_changes() {
    let app =
        wallet_hub_tests::spawn_app_with(|settings| settings.api.hold_sweep_interval_ms = 200)
            .await;
    let (wallet, owner) = funded(&app, "5.00").await;
    let hold = owner
        .place_hold(wallet, &PlaceHold::new("2.00", 1), None)
        .await
        .expect("placed")
        .body;
    let recorded = wallet_hub_tests::eventually("the sweeper records the hold", || async {
        let (status, closed_at): (String, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as("SELECT status, closed_at FROM holds WHERE id = $1")
                .bind(hold.id.as_uuid())
                .fetch_one(&app.pool)
                .await
                .expect("hold");
        (status == "expired").then_some(closed_at)
    })
    .await;
    assert!(recorded.expect("closed") >= hold.expires_at);
    assert_eq!(amounts(&app, wallet).await, triple("5.00", "0.00", "5.00"));
    assert_eq!(
        outbox_types(&app, wallet).await[2..],
        ["HoldPlaced", "HoldExpired"]
    );
    let actor: String = sqlx::query_scalar(
        "SELECT actor_subject FROM ledger_transactions WHERE hold_id = $1 AND kind = 'expiry'",
    )
    .bind(hold.id.as_uuid())
    .fetch_one(&app.pool)
    .await
    .expect("the expiry's ledger transaction");
    assert_eq!(actor, api::sweeper::SUBJECT);
    assert_holds_consistent(&app).await;
}

/// Minor units of a decimal string with two places (`"-2.50"` is -250).
fn minor(text: &str) -> i64 {
    let negative = text.starts_with('-');
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let value: i64 = digits.parse().expect("an amount");
    if negative { -value } else { value }
}

#[tokio::test]
async fn the_balance_at_an_instant_between_two_movements_is_the_ledgers_then() {
    let app = spawn_app().await;
    let (wallet, owner) = funded(&app, "10.00").await;
    let pause = || tokio::time::sleep(Duration::from_millis(20));
    pause().await;
    let after_deposit = chrono::Utc::now();
    pause().await;
    let hold = owner
        .place_hold(wallet, &PlaceHold::new("4.00", 600), None)
        .await
        .expect("placed")
        .body;
    pause().await;
    let while_held = chrono::Utc::now();
    pause().await;
    owner
        .capture_hold(
            hold.id,
            &Capture {
                amount: Some("1.50".to_owned()),
            },
            None,
        )
        .await
        .expect("captured");
    let app = &app;
    let at = |t| async move {
        let body = owner_balance(app, wallet, t).await;
        (body.balance, body.held, body.available)
    };
    assert_eq!(at(after_deposit).await, triple("10.00", "0.00", "10.00"));
    assert_eq!(at(while_held).await, triple("10.00", "4.00", "6.00"));
    assert_eq!(at(chrono::Utc::now()).await, triple("8.50", "0.00", "8.50"));
    let before = hold.created_at - chrono::Duration::days(1);
    assert_eq!(at(before).await, triple("0.00", "0.00", "0.00"));
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(
        refused(owner.balance_at(wallet, future).await, 422),
        "validation-error"
    );
    let stranger = app.new_principal();
    assert_eq!(
        refused(stranger.balance_at(wallet, while_held).await, 404),
        "not-found"
    );
}

async fn owner_balance(
    app: &TestApp,
    wallet: WalletId,
    at: chrono::DateTime<chrono::Utc>,
) -> wallet_hub_client::BalanceAt {
    app.as_owner(wallet)
        .await
        .balance_at(wallet, at)
        .await
        .expect("balance")
        .body
}

#[tokio::test]
async fn a_statements_opening_plus_its_movements_is_its_closing_in_json_and_in_csv() {
    let app = spawn_app().await;
    let (wallet, owner) = funded(&app, "10.00").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let from = chrono::Utc::now();
    let first = owner
        .place_hold(wallet, &PlaceHold::new("3.00", 600), None)
        .await
        .expect("placed")
        .body;
    owner
        .capture_hold(
            first.id,
            &Capture {
                amount: Some("2.00".to_owned()),
            },
            None,
        )
        .await
        .expect("captured");
    owner
        .withdraw(wallet, &Amount::new("1.00"), None)
        .await
        .expect("withdrawn");
    let second = owner
        .place_hold(wallet, &PlaceHold::new("0.50", 600), None)
        .await
        .expect("placed")
        .body;
    owner.void_hold(second.id, None).await.expect("voided");
    let third = owner
        .place_hold(wallet, &PlaceHold::new("0.25", 600), None)
        .await
        .expect("placed")
        .body;
    let to = chrono::Utc::now() + chrono::Duration::seconds(1);

    let mut items = Vec::new();
    let mut page = PageRequest::first(2);
    let statement = loop {
        let statement = owner
            .statement(wallet, from, to, &page)
            .await
            .expect("statement")
            .body;
        items.extend(statement.items.clone());
        match statement.next_cursor.clone() {
            Some(cursor) => page.cursor = Some(cursor),
            None => break statement,
        }
    };
    let kinds: Vec<&str> = items.iter().map(|i| i.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["hold", "capture", "withdrawal", "hold", "void", "hold"],
        "oldest first, the deposit before `from` left out"
    );
    assert_eq!(items[5].hold_id, Some(third.id));
    let (opening, closing) = (&statement.opening, &statement.closing);
    assert_eq!(
        (opening.balance.as_str(), opening.held.as_str()),
        ("10.00", "0.00")
    );
    assert_eq!(
        (closing.balance.as_str(), closing.held.as_str()),
        ("7.00", "0.25")
    );
    let moved: i64 = items.iter().map(|i| minor(&i.amount)).sum();
    let held: i64 = items.iter().map(|i| minor(&i.held)).sum();
    assert_eq!(minor(&opening.balance) + moved, minor(&closing.balance));
    assert_eq!(minor(&opening.held) + held, minor(&closing.held));
    assert_eq!(items[1].amount, "-2.00");
    assert_eq!(items[1].held, "-3.00");
    assert_eq!(items.last().map(|i| i.balance_after.as_str()), Some("7.00"));

    // The same as CSV, with the next page in `Link`.
    let token = app.owner_token(&wallet.to_string()).await.expect("owner");
    let mut url =
        reqwest::Url::parse(&app.url(&format!("/v1/wallets/{wallet}/statement"))).expect("URL");
    url.query_pairs_mut()
        .append_pair("from", &from.to_rfc3339())
        .append_pair("to", &to.to_rfc3339())
        .append_pair("limit", "4");
    let response = app
        .client
        .get(url)
        .header("accept", "text/csv")
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    let link = response.headers()["link"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(link.ends_with("rel=\"next\""), "{link}");
    let csv = response.text().await.expect("CSV");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "line,id,kind,hold_id,amount,held,balance_after,held_after,created_at"
    );
    assert!(lines[1].starts_with("opening,,,,,,10.00,0.00,"), "{csv}");
    assert_eq!(lines.len(), 1 + 1 + 4 + 1, "{csv}");
    assert!(
        lines[2].starts_with(&format!(
            "movement,{},hold,{},0.00,3.00,10.00,3.00,",
            first.id, first.id
        )),
        "{csv}"
    );
    assert!(lines[6].starts_with("closing,,,,,,7.00,0.25,"), "{csv}");
}

#[tokio::test]
async fn the_activity_read_model_counts_a_capture_out_of_the_wallet_and_into_its_target() {
    let app = spawn_app().await;
    let (wallet, owner) = funded(&app, "10.00").await;
    let shop = app.new_wallet("USD").await.id;
    let hold = owner
        .place_hold(
            wallet,
            &PlaceHold {
                to_wallet_id: Some(shop),
                ..PlaceHold::new("4.00", 600)
            },
            None,
        )
        .await
        .expect("placed")
        .body;
    let key = IdempotencyKey::new(format!("capture-{}", Uuid::now_v7())).expect("key");
    let capture = Capture {
        amount: Some("2.50".to_owned()),
    };
    let first = owner
        .capture_hold(hold.id, &capture, Some(&key))
        .await
        .expect("captured");
    let again = owner
        .capture_hold(hold.id, &capture, Some(&key))
        .await
        .expect("replayed");
    assert!(again.replayed && !first.replayed);
    assert_eq!(again.body, first.body);
    let activity = |id: WalletId| {
        let operator = app.operator();
        async move {
            let body = operator.activity(id).await.expect("activity").body;
            (body.events_applied == 2 || id == shop && body.events_applied == 1)
                .then_some((body.total_in, body.total_out))
        }
    };
    let (total_in, total_out) =
        wallet_hub_tests::eventually("the capture reaches the activity", || activity(wallet)).await;
    assert_eq!((total_in.as_str(), total_out.as_str()), ("10.00", "2.50"));
    let (total_in, total_out) =
        wallet_hub_tests::eventually("the capture reaches the target's activity", || {
            activity(shop)
        })
        .await;
    assert_eq!((total_in.as_str(), total_out.as_str()), ("2.50", "0.00"));
}
