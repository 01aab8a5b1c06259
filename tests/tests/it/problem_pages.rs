//! Every problem `type` is a URI under the deployment's `api.problem_base_url` that resolves
//! to a page the API serves, without a token.

use api::problem_types::ALL;
use wallet_hub_tests::{spawn_app, spawn_app_with};

#[tokio::test]
async fn every_problem_type_resolves_to_its_page_and_an_unknown_one_is_a_problem() {
    let app = spawn_app().await;
    for kind in ALL {
        let response = app.get(&format!("/problems/{}", kind.slug)).await;
        assert_eq!(response.status(), 200, "{}", kind.slug);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .expect("text")
                .starts_with("text/html"),
            "{}",
            kind.slug
        );
        let page = response.text().await.expect("page");
        assert!(
            page.contains(kind.title) && page.contains(kind.meaning),
            "{page}"
        );
    }
    // An answer's type is the URI of its page.
    let missing = app.get("/v1/nothing-here").await;
    let problem: serde_json::Value = missing.json().await.expect("problem");
    let type_uri = problem["type"].as_str().expect("a type").to_owned();
    assert_eq!(type_uri, app.url("/problems/no-such-route"));
    assert_eq!(
        reqwest::get(&type_uri).await.expect("resolves").status(),
        200
    );

    let unknown = app.get("/problems/<script>not-a-type").await;
    assert_eq!(unknown.status(), 404);
    let problem: serde_json::Value = unknown.json().await.expect("problem");
    assert_eq!(problem["type"], app.url("/problems/not-found").as_str());
    assert!(
        !problem["detail"].as_str().unwrap_or_default().contains('<'),
        "{problem}"
    );
}

#[tokio::test]
async fn problem_types_live_under_the_configured_base() {
    let app = spawn_app_with(|settings| {
        settings.api.problem_base_url = "https://wallets.example.com/".to_owned();
    })
    .await;
    let refused = app.get("/v1/wallets/not-a-uuid").await;
    let status = refused.status();
    let problem: serde_json::Value = refused.json().await.expect("problem");
    assert!(status.is_client_error(), "{problem}");
    let type_uri = problem["type"].as_str().expect("a type");
    assert!(
        type_uri.starts_with("https://wallets.example.com/problems/"),
        "{type_uri}"
    );
}

#[tokio::test]
async fn a_problem_base_that_is_not_an_http_url_stops_startup() {
    let (mut settings, _topics) = wallet_hub_tests::test_settings().await;
    settings.api.problem_base_url = "wallets.example.com".to_owned();
    let error = wallet_hub::Application::build(settings, &[])
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("api.problem_base_url"), "{error}");
}
