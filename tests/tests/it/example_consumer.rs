//! The example consumer (examples/consumer) as a process against a running service: it
//! notices the gap that a topic it does not read leaves in a wallet's stream, and fills it
//! from `GET /v1/wallets/{id}/events`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use wallet_hub_client::Amount;
use wallet_hub_tests::{KAFKA_WAIT, read_records, spawn_app};

#[tokio::test]
async fn the_example_consumer_fills_a_gap_in_a_wallets_stream_from_the_api() {
    let app = spawn_app().await;
    let wallet = app.new_wallet("USD").await.id;
    app.operator()
        .deposit(wallet, &Amount::new("10.00"), None)
        .await
        .expect("deposit");
    let owner = app.as_owner(wallet).await;
    owner
        .withdraw(wallet, &Amount::new("2.00"), None)
        .await
        .expect("withdrawal");
    app.operator().freeze(wallet, None).await.expect("frozen");
    // The relay publishes a wallet's events in order: once the freeze is on its topic,
    // so is everything before it.
    read_records(&app.settings.kafka.brokers, &app.topics.wallet_status, 1).await;

    // Every topic of the wallet's events but the withdrawals': sequence 3 never arrives.
    let topics = [
        &app.topics.wallet_created,
        &app.topics.funds_added,
        &app.topics.wallet_status,
    ];
    let mut command = Command::new(wallet_hub_tests::binary::workspace_binary(
        "example-consumer",
        "example-consumer",
    ));
    command
        .args(["--brokers", &app.settings.kafka.brokers])
        .args(["--group", &format!("example-{}", uuid::Uuid::now_v7())])
        .args(["--api-url", &app.address])
        .env(
            "WALLET_HUB_TOKEN",
            app.owner_token(&wallet.to_string()).await.expect("owner"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for topic in topics {
        command.args(["--topic", topic]);
    }
    let mut child = command.spawn().expect("the example consumer starts");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let (lines, received) = mpsc::channel();
    for (stream, reader) in [
        ("stdout", Box::new(stdout) as Box<dyn std::io::Read + Send>),
        ("stderr", Box::new(stderr)),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                let _ = lines.send((stream, line));
            }
        });
    }
    // Waiting blocks: off the runtime, which serves the API the consumer calls.
    let seen = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + KAFKA_WAIT;
        let mut seen = Vec::new();
        while !filled_withdrawal(&seen) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        seen
    })
    .await
    .expect("no panic");
    child.kill().expect("the consumer stops");
    child.wait().expect("reaped");

    assert!(
        filled_withdrawal(&seen),
        "the withdrawal was filled from the API: {seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|(stream, line)| *stream == "stderr" && line.contains("missing before 4")),
        "the gap was reported: {seen:#?}"
    );
}

/// Whether the consumer printed the withdrawal (sequence 3) as filled from the API.
fn filled_withdrawal(lines: &[(&str, String)]) -> bool {
    lines.iter().any(|(stream, line)| {
        *stream == "stdout" && line.contains("filled from the API") && line.contains("-2.00 USD")
    })
}
