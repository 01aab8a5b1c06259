//! README's "Try it" block runs verbatim against a running service, so the first thing a
//! newcomer does cannot rot. Needs `curl` and `jq` (scripts/test installs them), PostgreSQL
//! and Kafka.

use std::process::Command;

use wallet_hub_tests::app::spawn_app;
use wallet_hub_tests::binary::{root, service_binary};

/// The `sh` block that follows the `<!-- try-it -->` marker.
fn try_it_block(readme: &str) -> String {
    let after = readme
        .split_once("<!-- try-it -->")
        .expect("README marks its Try it block with <!-- try-it -->")
        .1;
    let body = after
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("the marker is followed by a ```sh block");
    body.split_once("\n```")
        .expect("the block is closed")
        .0
        .to_owned()
}

#[tokio::test]
async fn the_readme_try_it_block_works_verbatim_against_a_running_service() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let block = try_it_block(&readme);
    let binary = service_binary();
    let app = spawn_app().await;
    let jwks = match &app.settings.auth.jwks {
        auth::JwksSource::File(path) => path.clone(),
        auth::JwksSource::Url(url) => panic!("tests trust a JWKS file, not {url}"),
    };
    let api = app.address.clone();

    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block])
            .current_dir(root())
            .env("API", api)
            .env("WALLET_HUB", binary)
            // `wallet-hub token` signs with the issuer this service trusts.
            .env("WALLET_HUB__AUTH__JWKS", jwks)
            .output()
            .expect("bash runs")
    })
    .await
    .expect("block finished");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Try it block failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("\"balance_after\":\"10.50\""),
        "deposit answered: {stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "true"),
        "balance check: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == r#"{"balance":"10.00","held":"4.00","available":"6.00"}"#),
        "the hold reserves 4.00: {stdout}"
    );
    assert!(
        stdout.contains("\"captured\":\"3.25\"") && stdout.contains("\"status\":\"captured\""),
        "the capture answered: {stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "401"),
        "no token is refused: {stdout}"
    );
    let wallets: i64 = sqlx::query_scalar("SELECT count(*) FROM wallets")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(wallets, 1, "the block opened one wallet");
    app.stop().await.expect("service stops");
}

/// What `scripts/run` prints once the service it started is serving: `wallet-hub ready`
/// with the service's config waits for readiness, then names the API, docs and metrics URLs
/// (each answering) and how to get a token, on stdout alone.
#[tokio::test]
async fn wallet_hub_ready_prints_the_urls_a_newcomer_needs_once_the_service_is_serving() {
    let binary = service_binary();
    let app = spawn_app().await;
    let api_listen = app.address.trim_start_matches("http://").to_owned();
    let admin_listen = app.admin_address.trim_start_matches("http://").to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary)
            .args(["ready", "--timeout-seconds", "30"])
            .current_dir(root())
            .env("WALLET_HUB__API__LISTEN", api_listen)
            .env("WALLET_HUB__ADMIN__LISTEN", admin_listen)
            .output()
            .expect("wallet-hub runs")
    })
    .await
    .expect("finished");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.is_empty(), "nothing but the URLs: {stderr}");
    let docs = format!("{}/docs", app.address);
    let metrics = format!("{}/metrics", app.admin_address);
    for url in [&app.address, &docs, &metrics] {
        assert!(stdout.contains(url.as_str()), "{url} in:\n{stdout}");
    }
    assert!(
        stdout.contains("wallet-hub token --sub"),
        "how to get a token:\n{stdout}"
    );
    for url in [docs, metrics] {
        let response = app.client.get(&url).send().await.expect("answered");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
    }
    app.stop().await.expect("service stops");
}

/// README's copy of what `scripts/run` prints is what the default config prints.
#[test]
fn the_readme_shows_what_wallet_hub_ready_prints_with_the_default_config() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let shown = readme
        .split_once("<!-- ready -->\n```text\n")
        .expect("README marks the ready banner with <!-- ready -->")
        .1
        .split_once("\n```")
        .expect("the block is closed")
        .0;
    let settings = wallet_hub::Settings::load(None).expect("default settings");
    let printed = wallet_hub::welcome::Welcome::new(&settings).to_string();
    assert_eq!(shown, printed);
}
