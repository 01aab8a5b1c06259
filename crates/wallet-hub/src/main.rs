//! `wallet-hub`: the Wallet Hub service and its operator commands. Subcommands (a test checks
//! this list, and README's, against the command definition below):
//!
//! - `serve`: run the HTTP API (routes in `/openapi.json`), the outbox relay and the Kafka
//!   consumers, or the parts chosen with `--role`, until SIGINT/SIGTERM;
//! - `migrate`: apply the database migrations and exit;
//! - `outbox`: inspect and repair the outbox (`status`, `parked`, `redrive`, `replay`);
//! - `dlq`: list dead-lettered Kafka records and send them back (`list`, `redrive`);
//! - `token`: print an access token signed by the local development issuer.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use wallet_hub::ops::{DlqCommand, OutboxCommand};
use wallet_hub::startup::Role;
use wallet_hub::{Application, Settings};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Wallet Hub: wallets, transactional outbox, Kafka events"
)]
struct Cli {
    /// Configuration file layered over the built-in defaults.
    #[arg(long, env = "WALLET_HUB_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service until SIGINT/SIGTERM: by default API, outbox relay and consumers.
    Serve {
        /// Parts to run (repeat or comma-separate); the admin server always runs.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
        role: Vec<Role>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect and repair the outbox: status, parked, redrive, replay.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Inspect and redrive dead-lettered Kafka records: list, redrive.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Print a bearer access token from the local development issuer (not in production).
    Token {
        /// The subject (`sub`): who the token speaks for.
        #[arg(long)]
        sub: String,
        /// A scope to grant (repeat): wallets:deposit, wallets:admin.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// How long the token is valid, in minutes.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=1440))]
        ttl_minutes: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    // A token goes to stdout alone, so that `TOKEN=$(wallet-hub token ...)` works: no logs.
    if let Command::Token {
        sub,
        scopes,
        ttl_minutes,
    } = &cli.command
    {
        return token(&settings, sub, scopes, *ttl_minutes).await;
    }
    telemetry::init("wallet-hub", &settings.log, &settings.telemetry)?;
    let result = match cli.command {
        Command::Serve { role } => serve(settings, &role).await,
        Command::Migrate => migrate(settings).await,
        Command::Outbox(command) => wallet_hub::ops::run(settings, command).await,
        Command::Dlq(command) => wallet_hub::ops::run_dlq(settings, command).await,
        Command::Token { .. } => Ok(()),
    };
    telemetry::shutdown();
    result
}

async fn serve(settings: Settings, roles: &[Role]) -> anyhow::Result<()> {
    let app = Application::build(settings, roles).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

async fn token(
    settings: &Settings,
    subject: &str,
    scopes: &[String],
    ttl_minutes: u64,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret as _;
    let ttl = std::time::Duration::from_secs(ttl_minutes * 60);
    let token = wallet_hub::identity::mint(settings, subject, scopes, ttl).await?;
    println!("{}", token.expose_secret());
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    wallet_hub::startup::migrate(&settings.database).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight work");
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::CommandFactory as _;

    use super::Cli;

    fn defined() -> BTreeSet<String> {
        Cli::command()
            .get_subcommands()
            .map(|command| command.get_name().to_owned())
            .collect()
    }

    #[test]
    fn the_doc_comment_lists_every_subcommand_and_no_other() {
        let listed: BTreeSet<String> = include_str!("main.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! - `"))
            .filter_map(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_owned())
            .collect();
        assert_eq!(listed, defined());
    }

    #[test]
    fn the_readme_lists_every_subcommand_and_no_other() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md");
        let listed: BTreeSet<String> = readme
            .lines()
            .filter_map(|line| line.strip_prefix("wallet-hub [--config FILE] "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        assert_eq!(listed, defined());
    }
}
