//! Every list pages the same way: `?limit=&cursor=`, `{"items": [...], "next_cursor": ...}`,
//! `limit` 1 to 200, a cursor being the last item's id; each list's query against the real
//! database.

use uuid::Uuid;
use wallet_hub_tests::{TestApp, spawn_app};

/// Every page of the list at `path` with `limit`, following `next_cursor`.
async fn all_pages(app: &TestApp, path: &str, limit: usize) -> Vec<Vec<serde_json::Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let response = app.get(&url).await;
        assert_eq!(response.status(), 200, "{url}");
        let page: serde_json::Value = response.json().await.expect("page JSON");
        let items = page["items"].as_array().cloned().expect("items");
        assert!(items.len() <= limit, "{url}: at most limit items");
        pages.push(items);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages.len() < 100, "pagination ends");
    }
    pages
}

fn ids(pages: &[Vec<serde_json::Value>]) -> Vec<String> {
    pages
        .iter()
        .flatten()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn assert_malformed_queries_are_400(app: &TestApp, path: &str) {
    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=",
        "cursor=5",
        "cursor=ABC",
        &format!("cursor={}", Uuid::now_v7().simple()),
        "colour=red",
    ] {
        let response = app.get(&format!("{path}?{bad}")).await;
        assert_eq!(response.status(), 400, "{path}?{bad}");
        let problem: serde_json::Value = response.json().await.expect("problem");
        assert_eq!(
            problem["type"],
            app.url("/problems/malformed-request").as_str()
        );
    }
}

#[tokio::test]
async fn a_users_wallets_page_oldest_first_and_every_wallet_appears_once() {
    let app = spawn_app().await;
    let user = app.create_user().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        let wallet = app.create_wallet_for(user, "USD").await;
        created.push(wallet["id"].as_str().expect("id").to_owned());
    }
    let other = app.create_user().await;
    app.create_wallet_for(other, "USD").await;
    let path = format!("/v1/users/{user}/wallets");

    let pages = all_pages(&app, &path, 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(
        ids(&pages),
        created,
        "oldest first, each once, only the user's"
    );
    let whole = all_pages(&app, &path, 200).await;
    assert_eq!(ids(&whole), created, "one page when it fits");

    let foreign = app.create_wallet_for(other, "EUR").await;
    let cursor = foreign["id"].as_str().expect("id");
    let page: serde_json::Value = app
        .get(&format!("{path}?cursor={cursor}"))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(
        page["items"],
        serde_json::json!([]),
        "another user's id resumes nothing"
    );
    assert_malformed_queries_are_400(&app, &path).await;
}

#[tokio::test]
async fn notifications_page_newest_first_and_each_appears_once() {
    let app = spawn_app().await;
    let user = app.fixture_user().await;
    let mut inserted = Vec::new();
    for minute in 0..5 {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO notifications (id, user_id, wallet_id, kind, message, event_id, created_at) \
             VALUES ($1, $2, $3, 'welcome', 'hello', $4, now() - make_interval(mins => $5))",
        )
        .bind(id)
        .bind(user)
        .bind(Uuid::now_v7())
        .bind(Uuid::now_v7())
        .bind(10 - minute)
        .execute(&app.pool)
        .await
        .expect("insert notification");
        inserted.push(id.to_string());
    }
    inserted.reverse();
    let path = format!("/v1/users/{user}/notifications");

    let pages = all_pages(&app, &path, 2).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(ids(&pages), inserted, "newest first, each once");
    assert_malformed_queries_are_400(&app, &path).await;
}

#[tokio::test]
async fn history_pages_by_transaction_id_and_refuses_malformed_queries() {
    let app = spawn_app().await;
    let wallet = app.create_wallet("USD").await;
    let id = wallet["id"].as_str().expect("id");
    for amount in ["1.00", "2.00", "3.00"] {
        assert_eq!(app.deposit(id, amount).await.status(), 201);
    }
    let path = format!("/v1/wallets/{id}/transactions");
    let pages = all_pages(&app, &path, 2).await;
    let amounts: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|item| item["amount"].as_str().expect("amount"))
        .collect();
    assert_eq!(amounts, ["3.00", "2.00", "1.00"], "newest first, each once");
    let unknown: serde_json::Value = app
        .get(&format!("{path}?cursor={}", Uuid::now_v7()))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(unknown["items"], serde_json::json!([]));
    assert_malformed_queries_are_400(&app, &path).await;
}
