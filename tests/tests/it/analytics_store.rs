//! The analytics read models' queries against the real database (`store::analytics`,
//! `store::notifications::insert`), and the two admin endpoints' refusals. The job itself,
//! end to end with Flink, is tests/tests/analytics.rs.

use chrono::{DateTime, TimeDelta, Utc};
use domain::{Currency, EventId, Money, UserId, WalletId};
use store::analytics::{NewRiskAlert, Total, VolumeMinute};
use uuid::Uuid;
use wallet_hub_client::{PageRequest, VolumeRange, VolumeTotal};
use wallet_hub_tests::spawn_app;

fn currency(code: &str) -> Currency {
    code.parse().expect("a currency")
}

fn minute(n: i64) -> DateTime<Utc> {
    "2026-12-06T10:00:00Z"
        .parse::<DateTime<Utc>>()
        .expect("RFC 3339")
        + TimeDelta::minutes(n)
}

fn volume(code: &str, at: DateTime<Utc>, deposits_minor: i64) -> VolumeMinute {
    let c = currency(code);
    let total = |count, minor| Total {
        count,
        amount: Money::from_minor(minor, c),
    };
    VolumeMinute {
        currency: c,
        minute: at,
        deposits: total(1, deposits_minor),
        withdrawals: total(0, 0),
        transfers: total(2, 700),
        event_id: EventId::from(Uuid::now_v7()),
    }
}

#[tokio::test]
async fn volume_is_one_row_per_currency_and_minute_listed_oldest_first_in_pages() {
    let app = spawn_app().await;
    let mut conn = app.pool.acquire().await.expect("connection");
    for (code, n, minor) in [
        ("USD", 2, 100),
        ("USD", 0, 200),
        ("USD", 1, 300),
        ("GBP", 1, 5),
    ] {
        store::analytics::upsert_volume(&mut conn, &volume(code, minute(n), minor))
            .await
            .expect("stored");
    }
    // A second event for a stored minute replaces the row, it does not add to it.
    let replacement = volume("USD", minute(1), 333);
    store::analytics::upsert_volume(&mut conn, &replacement)
        .await
        .expect("replaced");

    let usd = currency("USD");
    let all = store::analytics::list_volume(&mut conn, usd, minute(0), minute(3), None, 10)
        .await
        .expect("listed");
    let minutes: Vec<_> = all.iter().map(|v| v.minute).collect();
    assert_eq!(
        minutes,
        [minute(0), minute(1), minute(2)],
        "oldest first, USD only"
    );
    assert_eq!(all[1], replacement);
    assert_eq!(all[1].deposits.amount, Money::from_minor(333, usd));

    let first = store::analytics::list_volume(&mut conn, usd, minute(0), minute(3), None, 1)
        .await
        .expect("page 1");
    let after = Some(first[0].event_id.as_uuid());
    let second = store::analytics::list_volume(&mut conn, usd, minute(0), minute(3), after, 10)
        .await
        .expect("page 2");
    assert_eq!(
        second.len(),
        2,
        "the page resumes after the cursor's minute"
    );
    assert_eq!(second[0].minute, minute(1));

    let ranged = store::analytics::list_volume(&mut conn, usd, minute(1), minute(2), None, 10)
        .await
        .expect("ranged");
    assert_eq!(ranged.len(), 1, "from inclusive, to exclusive");
    let foreign_cursor =
        store::analytics::list_volume(&mut conn, currency("GBP"), minute(0), minute(3), after, 10)
            .await
            .expect("listed");
    assert!(
        foreign_cursor.is_empty(),
        "a cursor of another currency names no item"
    );

    // The same through the typed client: pages of two, oldest first, exact decimals.
    let range = VolumeRange {
        currency: usd,
        from: minute(0),
        to: minute(3),
    };
    let api = app.operator();
    let first = api
        .volume(&range, &PageRequest::first(2))
        .await
        .expect("page 1")
        .body;
    assert_eq!(first.items.len(), 2);
    assert!(first.next_cursor.is_some(), "a third minute follows");
    let listed = api.volume_all(&range, 2).await.expect("every page");
    let minutes: Vec<_> = listed.iter().map(|v| v.minute).collect();
    assert_eq!(minutes, [minute(0), minute(1), minute(2)]);
    assert_eq!(
        listed[1].deposits,
        VolumeTotal {
            count: 1,
            amount: "3.33".to_owned()
        }
    );
    assert_eq!(listed[1].transfers.amount, "7.00");
    assert_eq!(listed[1].withdrawals.count, 0);
    let user = app.new_user().await;
    let refused = app
        .as_user(user.id.into())
        .await
        .volume(&range, &PageRequest::default())
        .await
        .expect_err("not an admin");
    assert_eq!(refused.problem().map(|p| p.status), Some(403));
}

#[tokio::test]
async fn an_alert_is_stored_once_per_event_and_listed_newest_first() {
    let app = spawn_app().await;
    let mut conn = app.pool.acquire().await.expect("connection");
    let wallet = WalletId::from(Uuid::now_v7());
    let user = UserId::from(Uuid::now_v7());
    let alert = |event_id| NewRiskAlert {
        wallet_id: wallet,
        user_id: user,
        kind: "velocity-exceeded",
        window_start: minute(0),
        window_end: minute(5),
        movements: 12,
        amount: Money::from_minor(123_456, currency("USD")),
        event_id,
    };
    let first = EventId::from(Uuid::now_v7());
    let second = EventId::from(Uuid::now_v7());
    assert!(
        store::analytics::insert_alert(&mut conn, &alert(first))
            .await
            .expect("stored")
    );
    assert!(
        !store::analytics::insert_alert(&mut conn, &alert(first))
            .await
            .expect("no error"),
        "the same event is not a second alert"
    );
    assert!(
        store::analytics::insert_alert(&mut conn, &alert(second))
            .await
            .expect("stored")
    );
    let listed = store::analytics::list_alerts(&mut conn, None, 10)
        .await
        .expect("listed");
    let events: Vec<_> = listed.iter().map(|a| a.event_id).collect();
    assert_eq!(events, [second, first], "newest first, each once");
    assert_eq!(
        listed[0].amount,
        Money::from_minor(123_456, currency("USD"))
    );
    let page = store::analytics::list_alerts(&mut conn, Some(listed[0].id), 10)
        .await
        .expect("page 2");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].event_id, first);

    // The same through the typed client.
    let api = app.operator();
    let page = api
        .risk_alerts(&PageRequest::first(1))
        .await
        .expect("page 1")
        .body;
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].event_id, second);
    assert_eq!(page.items[0].amount, "1234.56");
    assert_eq!(page.items[0].currency, currency("USD"));
    assert_eq!(page.items[0].wallet_id, wallet);
    let next = PageRequest::first(1).next(&page).expect("a second page");
    let page = api.risk_alerts(&next).await.expect("page 2").body;
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].event_id, first);
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn velocity_notifications_are_one_per_alert_while_the_welcome_stays_one_per_wallet() {
    let app = spawn_app().await;
    let wallet = app.new_wallet("USD").await;
    let user: UserId = wallet.user_id;
    let mut conn = app.pool.acquire().await.expect("connection");
    for _ in 0..2 {
        let notification = store::notifications::NewNotification {
            user_id: user,
            wallet_id: wallet.id,
            kind: "velocity-exceeded",
            message: "Unusual activity",
            event_id: EventId::from(Uuid::now_v7()),
        };
        store::notifications::insert(&mut conn, &notification)
            .await
            .expect("recorded");
    }
    let welcome_again = store::notifications::NewNotification {
        user_id: user,
        wallet_id: wallet.id,
        kind: "welcome",
        message: "Welcome again",
        event_id: EventId::from(Uuid::now_v7()),
    };
    wallet_hub_tests::eventually("the welcome", || async {
        let kinds: Vec<String> = sqlx::query_scalar(
            "SELECT kind FROM notifications WHERE wallet_id = $1 AND kind = 'welcome'",
        )
        .bind(wallet.id.as_uuid())
        .fetch_all(&app.pool)
        .await
        .expect("read");
        (!kinds.is_empty()).then_some(())
    })
    .await;
    let sent = store::notifications::insert_all_once_per_wallet(&mut conn, &[welcome_again])
        .await
        .expect("no error");
    assert_eq!(sent, [false], "a wallet has one welcome");
    let listed = store::notifications::list_for_user(&mut conn, user, None, 10)
        .await
        .expect("listed");
    let velocity = listed
        .iter()
        .filter(|n| n.kind == "velocity-exceeded")
        .count();
    assert_eq!(velocity, 2);
    assert_eq!(listed.iter().filter(|n| n.kind == "welcome").count(), 1);
}

#[tokio::test]
async fn the_analytics_endpoints_need_the_admin_scope_and_refuse_bad_queries() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let user_token = app.user_token(user.id.into()).await;
    let volume =
        "/v1/analytics/volume?currency=USD&from=2026-12-06T10:00:00Z&to=2026-12-06T11:00:00Z";
    // A range that ends where (or before) it starts holds no minute: an empty page.
    let reversed =
        "/v1/analytics/volume?currency=USD&from=2026-12-06T11:00:00Z&to=2026-12-06T10:00:00Z";
    for path in [volume, reversed, "/v1/risk/alerts"] {
        let reply = app
            .client
            .get(app.url(path))
            .bearer_auth(&user_token)
            .send()
            .await
            .expect("answers");
        assert_eq!(reply.status(), 403, "{path} without wallets:admin");
        let reply = app
            .client
            .get(app.url(path))
            .bearer_auth(app.operator_token())
            .send()
            .await
            .expect("answers");
        assert_eq!(reply.status(), 200, "{path} as an admin");
        let body: serde_json::Value = reply.json().await.expect("JSON");
        assert_eq!(body["items"], serde_json::json!([]));
    }
    for (bad, status) in [
        (
            "/v1/analytics/volume?currency=XXX&from=2026-12-06T10:00:00Z&to=2026-12-06T11:00:00Z",
            400,
        ),
        (
            "/v1/analytics/volume?from=2026-12-06T10:00:00Z&to=2026-12-06T11:00:00Z",
            400,
        ),
        (
            "/v1/analytics/volume?currency=USD&from=yesterday&to=2026-12-06T10:00:00Z",
            400,
        ),
        (
            "/v1/analytics/volume?currency=USD&from=2026-12-06T10:00:00Z",
            400,
        ),
        (
            "/v1/analytics/volume?currency=USD&from=2026-12-06T10:00:00Z&to=2026-12-06T11:00:00Z&cursor=nope",
            400,
        ),
        ("/v1/risk/alerts?limit=0", 400),
    ] {
        let reply = app
            .client
            .get(app.url(bad))
            .bearer_auth(app.operator_token())
            .send()
            .await
            .expect("answers");
        assert_eq!(reply.status(), status, "{bad}");
        assert_eq!(
            reply.headers()["content-type"],
            "application/problem+json",
            "{bad}"
        );
        // Without the scope, the query is never read: 403 whatever it holds.
        let reply = app
            .client
            .get(app.url(bad))
            .bearer_auth(&user_token)
            .send()
            .await
            .expect("answers");
        assert_eq!(reply.status(), 403, "{bad} without wallets:admin");
    }
}
