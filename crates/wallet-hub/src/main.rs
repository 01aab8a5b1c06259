//! `wallet-hub`: the Wallet Hub service and its operator commands. Subcommands (a test checks
//! this list, and README's, against the command definition below):
//!
//! - `serve`: run the HTTP API (routes in `/openapi.json`), the outbox relay and the Kafka
//!   consumers, or the parts chosen with `--role`, until SIGINT/SIGTERM;
//! - `migrate`: apply the database migrations and exit;
//! - `outbox`: inspect and repair the outbox (`status`, `parked`, `redrive`, `replay`);
//! - `dlq`: list dead-lettered Kafka records and send them back (`list`, `redrive`);
//! - `token`: print an access token signed by the local development issuer;
//! - `ready`: wait until the service answers readiness, then print its URLs (API, docs,
//!   metrics) and how to get a token;
//! - `audit`: check that balances, ledger, streams, outbox, Kafka topics and consumers agree
//!   (exit 0), or list what disagrees (exit 1); exit 2 when it cannot run;
//! - `rebuild`: recompute wallet rows and the activity read model from the wallets' streams
//!   and rewrite what differs (exit 0), 1 if some stream does not fold, 2 when it cannot run.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use domain::WalletId;
use tokio_util::sync::CancellationToken;
use wallet_hub::audit::AuditOptions;
use wallet_hub::ops::{DlqCommand, OutboxCommand};
use wallet_hub::rebuild::RebuildOptions;
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
    /// Wait until the service of this config answers readiness, then print the API, docs
    /// and metrics URLs and how to get a token (scripts/run does, once serving).
    Ready {
        /// Give up (exit 1) after this long.
        #[arg(long, default_value_t = 120)]
        timeout_seconds: u64,
    },
    /// Reconcile balances, ledger, outbox, Kafka topics and consumers' effects: exit 0 when
    /// all agree, 1 with the list of findings, 2 when the audit cannot run.
    Audit {
        /// Events younger than this may still be on their way and are not expected on
        /// Kafka or in the projections yet.
        #[arg(long, default_value_t = 60)]
        settle_seconds: u64,
        /// Only ledger transactions and outbox events written at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        /// Database checks only: do not read the topics back.
        #[arg(long)]
        no_kafka: bool,
    },
    /// Recompute wallet rows and the activity read model from the wallets' streams, one
    /// wallet per transaction, and rewrite what differs: exit 0 when done (fixes listed),
    /// 1 if some wallet could not be rebuilt, 2 when it cannot run.
    Rebuild(RebuildArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(false)))]
struct RebuildArgs {
    /// One wallet.
    #[arg(long, group = "which")]
    wallet: Option<WalletId>,
    /// Every wallet, in batches by wallet id.
    #[arg(long, group = "which")]
    all: bool,
    /// Wallets listed per batch with --all.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    batch: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        // `audit` and `rebuild` keep exit code 1 for findings: they cannot run without
        // their settings.
        Err(error) if matches!(cli.command, Command::Audit { .. } | Command::Rebuild(_)) => {
            eprintln!("Error: {:?}", anyhow::Error::new(error));
            return Ok(ExitCode::from(2));
        }
        Err(error) => return Err(error.into()),
    };
    // A token goes to stdout alone, so that `TOKEN=$(wallet-hub token ...)` works: no logs.
    if let Command::Token {
        sub,
        scopes,
        ttl_minutes,
    } = &cli.command
    {
        return token(&settings, sub, scopes, *ttl_minutes)
            .await
            .map(|()| ExitCode::SUCCESS);
    }
    // The URLs go to stdout alone: no logs.
    if let Command::Ready { timeout_seconds } = cli.command {
        let welcome = wallet_hub::welcome::Welcome::new(&settings);
        wallet_hub::welcome::wait_ready(&welcome, Duration::from_secs(timeout_seconds)).await?;
        println!("{welcome}");
        return Ok(ExitCode::SUCCESS);
    }
    // The report goes to stdout alone (logs would go there too): no telemetry.
    if let Command::Audit {
        settle_seconds,
        since,
        no_kafka,
    } = cli.command
    {
        let options = AuditOptions {
            settle_seconds,
            since,
            kafka: !no_kafka,
            progress: std::io::stderr().is_terminal(),
        };
        return Ok(audit(&settings, &options).await);
    }
    // The report goes to stdout and progress to stderr: no telemetry.
    if let Command::Rebuild(args) = &cli.command {
        let options = RebuildOptions {
            wallet: args.wallet,
            batch: args.batch,
        };
        return Ok(rebuild(&settings, &options).await);
    }
    telemetry::init("wallet-hub", &settings.log, &settings.telemetry)?;
    let result = match cli.command {
        Command::Serve { role } => serve(settings, &role).await,
        Command::Migrate => migrate(settings).await,
        Command::Outbox(command) => wallet_hub::ops::run(settings, command).await,
        Command::Dlq(command) => wallet_hub::ops::run_dlq(settings, command).await,
        Command::Token { .. }
        | Command::Audit { .. }
        | Command::Ready { .. }
        | Command::Rebuild(_) => Ok(()),
    };
    telemetry::shutdown();
    result.map(|()| ExitCode::SUCCESS)
}

/// Exit 0 when clean, 1 with the findings on stdout, 2 when the audit cannot run.
async fn audit(settings: &Settings, options: &AuditOptions) -> ExitCode {
    match wallet_hub::audit::run(settings, options).await {
        Ok(report) => {
            println!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("Error: {:?}", anyhow::Error::new(error));
            ExitCode::from(2)
        }
    }
}

/// Exit 0 when every wallet was rebuilt (fixes or not), 1 if some could not be, 2 when the
/// rebuild cannot run; fixes and failures on stdout, progress on stderr.
async fn rebuild(settings: &Settings, options: &RebuildOptions) -> ExitCode {
    let result = async {
        let pool = wallet_hub::database::connect_database(&settings.database).await?;
        let report = wallet_hub::rebuild::run(&pool, options, |checked| {
            eprintln!("rebuild: {checked} wallets checked");
        })
        .await;
        pool.close().await;
        Ok::<_, anyhow::Error>(report?)
    }
    .await;
    match result {
        Ok(report) => {
            println!("{report}");
            if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("Error: {error:?}");
            ExitCode::from(2)
        }
    }
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
    wallet_hub::database::migrate(&settings.database).await?;
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

    use clap::{CommandFactory as _, Parser as _};

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
    fn rebuild_takes_exactly_one_of_wallet_and_all_and_a_batch_size_with_either() {
        let parse =
            |args: &[&str]| Cli::try_parse_from([&["wallet-hub", "rebuild"], args].concat());
        let wallet = "0190a8e4-8f4e-7b7a-9c6b-4c1e2f3a4b5c";
        assert!(parse(&["--all", "--batch", "5"]).is_ok());
        assert!(parse(&["--wallet", wallet]).is_ok());
        assert!(parse(&["--wallet", wallet, "--all"]).is_err());
        assert!(parse(&["--batch", "5"]).is_err());
        assert!(parse(&["--all", "--batch", "0"]).is_err());
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
