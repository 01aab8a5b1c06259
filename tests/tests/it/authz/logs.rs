//! Tokens, `Authorization` headers and signing keys never reach the logs or the spans.
//!
//! The service runs in this test's process, on this test's single-threaded runtime, so a
//! subscriber set as this thread's default sees every event and span of its request
//! handling (the process-wide one other tests use does not). It records everything, at
//! TRACE, with each span's fields when the span closes: stricter than any production log
//! filter, and the span fields are what the OpenTelemetry layer exports as attributes.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use tracing_subscriber::filter::LevelFilter;
use wallet_hub_tests::logs::Captured;
use wallet_hub_tests::spawn_app;

use super::tokens::{Forger, Forgery};
use super::world::{Call, World, processor_token};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ways a secret could be written: a token, the header carrying it, its payload and
/// signature; a key file in base64, base64url or hex, and its Ed25519 seed (the JWK `d`).
fn secret_forms(tokens: &[String], key_files: &[Vec<u8>]) -> Vec<String> {
    let mut forms = Vec::new();
    for token in tokens {
        forms.push(token.clone());
        forms.push(format!("Bearer {token}"));
        forms.extend(
            token
                .split('.')
                .skip(1)
                .filter(|part| part.len() >= 16)
                .map(str::to_owned),
        );
    }
    for der in key_files {
        // A PKCS#8 v1 Ed25519 key: a 16-byte prefix, then the 32-byte seed.
        assert_eq!(der.len(), 48, "an Ed25519 PKCS#8 v1 key");
        let seed = &der[16..];
        for bytes in [der.as_slice(), seed] {
            forms.extend([
                STANDARD.encode(bytes),
                URL_SAFE_NO_PAD.encode(bytes),
                hex(bytes),
            ]);
        }
    }
    forms
}

#[tokio::test]
async fn tokens_authorization_headers_and_signing_keys_never_appear_in_logs_or_spans() {
    // A thread-local default, not a span guard: it must outlive every await of the test.
    let (captured, _default) = Captured::start(LevelFilter::TRACE);
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let forger = Forger::new(&app);

    let calls = [
        Call::post(&format!("/v1/wallets/{}/deposits", world.funded))
            .json(json!({"amount": "1.00"})),
        Call::post(&format!("/v1/wallets/{}/withdrawals", world.funded))
            .json(json!({"amount": "1.00"})),
        Call::post("/v1/transfers").json(json!({
            "from_wallet_id": world.funded, "to_wallet_id": world.bobs, "amount": "1.00"
        })),
        Call::get(&format!("/v1/wallets/{}", world.funded)),
        Call::post(&format!("/v1/wallets/{}/freeze", world.funded)),
    ];
    let mut tokens = vec![
        world.alice.token.clone(),
        world.bob.token.clone(),
        processor_token(&app),
    ];
    tokens.extend(Forgery::ALL.map(|f| forger.forge(&app, f, &world.alice.subject)));
    let mut statuses = Vec::new();
    for call in &calls {
        for token in &tokens {
            statuses.push(call.clone().bearer(token).send(&app).await.status);
        }
    }
    let key_files: Vec<Vec<u8>> = forger
        .key_files()
        .iter()
        .map(|path| std::fs::read(path).expect("key file"))
        .collect();

    let logs = captured.text();
    assert!(
        logs.contains("access token refused") && logs.contains(&world.funded),
        "the service's own logs were captured: {} bytes",
        logs.len()
    );
    assert!(
        statuses.contains(&201) && statuses.contains(&401),
        "{statuses:?}"
    );
    let leaked: Vec<String> = secret_forms(&tokens, &key_files)
        .into_iter()
        .filter(|form| logs.contains(form.as_str()))
        .collect();
    assert!(leaked.is_empty(), "secrets in the logs: {leaked:?}");
    assert!(!logs.to_lowercase().contains("authorization: bearer"));
}

/// The `auth_refused_total` series of `reason`, summed.
async fn refused_total(app: &wallet_hub_tests::TestApp, reason: &str) -> u64 {
    let text = app
        .admin_get("/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    let label = format!("reason=\"{reason}\"");
    text.lines()
        .filter(|line| line.starts_with("auth_refused_total{") && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| format!("{value:.0}").parse::<u64>().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn refused_tokens_are_all_counted_but_logged_sampled_with_their_text_bounded_and_escaped() {
    let (captured, _default) = Captured::start(LevelFilter::INFO);
    let app = spawn_app().await;
    let world = World::build(&app).await;
    let before = refused_total(&app, "unknown_key").await;
    // A key id crafted to forge a log line and to flood the log.
    let hostile_kid = format!(
        "evil\nINFO forged: admin login ok\u{1b}[2J{}",
        "A".repeat(5_000)
    );
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": hostile_kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(json!({"sub": "mallory"}).to_string());
    let token = format!("{header}.{payload}.c2lnbmF0dXJl");
    let started = std::time::Instant::now();
    let sent = 60;
    for _ in 0..sent {
        let reply = Call::get(&format!("/v1/wallets/{}", world.funded))
            .bearer(&token)
            .send(&app)
            .await;
        assert_eq!(reply.status, 401);
    }
    let elapsed = started.elapsed().as_secs();

    assert_eq!(
        refused_total(&app, "unknown_key").await - before,
        sent,
        "every one counted"
    );
    let logs = captured.text();
    let logged = logs.matches("access token refused").count();
    let budget = usize::try_from(
        u64::from(api::caller::REFUSALS_LOGGED_BURST)
            + u64::from(api::caller::REFUSALS_LOGGED_PER_SECOND) * (elapsed + 1),
    )
    .expect("small");
    assert!(
        (1..=budget).contains(&logged),
        "{logged} of {sent} refusals logged in {elapsed} s (budget {budget})"
    );
    assert!(
        !logs.lines().any(|line| line.starts_with("INFO forged")),
        "the key id forged no log line"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "no terminal escape reached the log"
    );
    assert!(!logs.contains(&"A".repeat(100)), "the key id was cut short");
    assert!(logs.contains(r"evil\nINFO forged"), "but shown, escaped");
}
