//! `/metrics` exports every metric the dashboard and alert rules query, with
//! low-cardinality labels.

use wallet_hub_tests::{cloud_event, eventually, send_event, spawn_app, volume_event};

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_query_is_exported_after_traffic() {
    let expected_list = include_str!("../../../deploy/metrics.txt");
    let expected: Vec<&str> = expected_list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        expected.len() >= 10,
        "deploy/metrics.txt lists the queried metrics"
    );

    let app = spawn_app().await;
    let user = app.create_user().await;
    let wallet = app
        .post_json(
            "/v1/wallets",
            &serde_json::json!({"user_id": user, "name": "Metered", "currency": "USD"}),
        )
        .await;
    assert_eq!(wallet.status(), 201);
    let wallet: serde_json::Value = wallet.json().await.expect("JSON");
    let wallet_id = wallet["id"].as_str().expect("id");
    assert_eq!(app.deposit(wallet_id, "1.00").await.status(), 201);
    assert_eq!(
        app.get(&format!("/v1/wallets/{wallet_id}")).await.status(),
        200
    );

    // A minute of volume from the analytics job: the dashboard's volume panel.
    let minute = "2026-12-06T10:00:00Z".parse().expect("RFC 3339");
    send_event(
        &app.settings.kafka.brokers,
        &app.settings.bindings["analytics_volume_out"],
        "USD",
        cloud_event(&volume_event("USD", minute, (3, "12.5"))),
    )
    .await;

    let text = eventually("every expected metric", || async {
        let text = app.admin_get("/metrics").await.text().await.expect("text");
        expected
            .iter()
            .all(|name| text.lines().any(|l| l.starts_with(name)))
            .then_some(text)
    })
    .await;

    let gauge = |name: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(name)
                    && l.contains(r#"currency="USD""#)
                    && l.contains(r#"kind="deposit""#)
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(
        gauge("analytics_volume_minute_amount").as_deref(),
        Some("12.5")
    );
    assert_eq!(
        gauge("analytics_volume_minute_movements").as_deref(),
        Some("3")
    );
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains(r#"route="/v1/wallets/{id}/deposits""#)
            && l.contains(r#"status="201""#)),
        "HTTP metrics are labelled by the matched route, not the path"
    );
    let uuid_like = |l: &&str| {
        l.split(['"', '/', '-'])
            .any(|part| part.len() == 8 && part.bytes().all(|b| b.is_ascii_hexdigit()))
            && l.contains(&wallet_id[..8])
    };
    assert!(
        !text.lines().any(|l| uuid_like(&l)),
        "no label carries a wallet id"
    );
    assert!(text.contains("wallet_hub_build_info{version="));
}
