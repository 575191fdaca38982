//! `keryu`: the one binary of Keryu. Every role of the service is a subcommand, so one artefact
//! can be deployed everywhere and scaled per role.

mod custodian;
mod events;
mod migrate;
mod projections;
mod serve;
mod sim;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keryu_infra::config::{Config, ConfigError};
use keryu_infra::telemetry::{self, LogFormat};
use serve::Roles;

/// jemalloc instead of glibc's malloc. Under load glibc's `malloc`, `free` and
/// `malloc_consolidate` took a fifth of the command API's CPU time (`perf`): requests, JSON and
/// events make many short-lived allocations, which jemalloc serves from per-thread caches.
/// mimalloc gained less and raised the idle RSS past its target (42 MiB against 26).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Keryu — event-sourced notifications over WhatsApp.
///
/// Configuration comes from the environment (and a `.env` file in the working directory);
/// see the README for every key.
#[derive(Debug, Parser)]
#[command(name = "keryu", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run every role in one process (command API, projector, dispatcher), after migrating.
    /// Without TWILIO_ACCOUNT_SID, messages go to an in-process Twilio simulator.
    Serve,
    /// Run the HTTP command and query API with the Twilio status webhook, after migrating.
    CommandApi,
    /// Keep the read models up to date, relay the log to NATS, fire timers and fan alarms
    /// out, after migrating.
    Projector,
    /// Send queued notifications through Twilio, after migrating.
    Dispatcher,
    /// Run the Twilio API simulator (for tests, demos and load runs).
    TwilioSim(sim::SimArgs),
    /// Create the database if it is missing and bring its schema up to date.
    Migrate,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigAction),
    /// Operate the read models: status, rebuild.
    #[command(subcommand)]
    Projections(projections::ProjectionsAction),
    /// Read the event log: export, tail, replay to a point in time.
    #[command(subcommand)]
    Events(events::EventsAction),
    /// Administer custodians (users).
    #[command(subcommand)]
    Custodian(custodian::CustodianAction),
    /// Mint bearer tokens for local use.
    #[command(subcommand)]
    Token(token::TokenAction),
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate the configuration and print the effective values, secrets masked.
    Check,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The configuration decides the log format, so it is read first; its errors are printed
    // like every other failure below.
    let config = Config::load();
    let format = config
        .as_ref()
        .map_or(LogFormat::Pretty, |config| config.observability.log_format);
    let telemetry = telemetry::init(format, "keryu");
    let outcome = run(cli, config).await;
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with the whole cause chain: what an operator reads in a terminal or a log.
            eprintln!("keryu: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: Result<Config, ConfigError>) -> anyhow::Result<()> {
    let config = config?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    match cli.task {
        Task::Serve => {
            serve::run(
                &config,
                Roles {
                    command_api: true,
                    projector: true,
                    dispatcher: true,
                },
            )
            .await
        }
        Task::CommandApi => {
            serve::run(
                &config,
                Roles {
                    command_api: true,
                    projector: false,
                    dispatcher: false,
                },
            )
            .await
        }
        Task::Projector => {
            serve::run(
                &config,
                Roles {
                    command_api: false,
                    projector: true,
                    dispatcher: false,
                },
            )
            .await
        }
        Task::Dispatcher => {
            serve::run(
                &config,
                Roles {
                    command_api: false,
                    projector: false,
                    dispatcher: true,
                },
            )
            .await
        }
        Task::TwilioSim(args) => sim::run(args).await,
        Task::Migrate => migrate::run(&config).await.map(drop),
        Task::Config(ConfigAction::Check) => {
            // Secrets print masked: `Secret`'s Debug never shows its value.
            println!("{config:#?}");
            for warning in config.warnings() {
                println!("warning: {warning}");
            }
            Ok(())
        }
        Task::Projections(action) => projections::run(&config, action).await,
        Task::Events(action) => events::run(&config, action).await,
        Task::Custodian(action) => custodian::run(&config, action).await,
        Task::Token(action) => token::run(&config, &action),
    }
}
