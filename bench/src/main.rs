//! `keryu-bench`: the benchmark harness of Keryu.
//!
//! It starts `keryu serve` and `keryu twilio-sim` on a fresh database and JetStream names of
//! their own (or targets a running service), runs one bounded scenario or all of them, prints a
//! one-line summary per scenario and writes the figures as JSON under `target/bench/`. Every
//! figure is reported beside the machine's own limit (raw PostgreSQL inserts at the same
//! concurrency), because absolute numbers on a shared machine are noise.
//!
//! The load generator runs on one thread (a current-thread Tokio runtime) so that, on a small
//! machine, it takes at most one core from the system under test.

mod baseline;
mod deployment;
mod fill;
mod load;
mod machine;
mod plot;
mod report;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Benchmarks Keryu: commands, end-to-end latency, saturation, rate limiting, rebuild, memory.
///
/// By default each scenario starts its own `keryu serve` + `keryu twilio-sim` on a fresh
/// database (dropped afterwards) and writes `<out>/<scenario>.json`.
#[derive(Debug, Parser)]
#[command(name = "keryu-bench", version, about, long_about)]
pub struct Cli {
    /// Options shared by every scenario.
    #[command(flatten)]
    pub global: Global,
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options shared by every scenario.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Smoke run: every default duration and size shrinks to seconds.
    #[arg(long, global = true)]
    pub quick: bool,
    /// The keryu binary (default: `keryu` next to this executable).
    #[arg(long, global = true, env = "KERYU_BENCH_KERYU")]
    pub keryu: Option<PathBuf>,
    /// Where JSON results (and process logs) go.
    #[arg(long, global = true, default_value = "target/bench")]
    pub out: PathBuf,
    /// The PostgreSQL server for fresh databases (its database part names the admin database).
    #[arg(
        long,
        global = true,
        env = "KERYU_BENCH_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    )]
    pub postgres: String,
    /// The NATS server the started services use.
    #[arg(
        long,
        global = true,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats: String,
    /// Target a running Keryu API at this base URL instead of starting one.
    #[arg(long, global = true, requires_all = ["sim", "token"])]
    pub api: Option<String>,
    /// The Twilio simulator the running service sends to (with `--api`).
    #[arg(long, global = true)]
    pub sim: Option<String>,
    /// A bearer token (integrator or admin) for the running service (with `--api`).
    #[arg(long, global = true, env = "KERYU_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The pid of the running `keryu serve`, to read its memory (with `--api`).
    #[arg(long, global = true)]
    pub serve_pid: Option<u32>,
    /// KERYU_DATABASE_MAX_CONNECTIONS of the started services.
    #[arg(long, global = true, default_value_t = 16)]
    pub db_connections: u32,
    /// KERYU_DISPATCHER_CONCURRENCY of the started services.
    #[arg(long, global = true, default_value_t = 32)]
    pub dispatcher_concurrency: u32,
    /// Start the simulator without status callbacks (by default it posts sent, delivered and
    /// read back to Keryu, as Twilio does, which triples the commands per message).
    #[arg(long, global = true)]
    pub no_callbacks: bool,
    /// Subjects created for the notifications to go to.
    #[arg(long, global = true, default_value_t = 50)]
    pub subjects: usize,
    /// Keep the databases and JetStream streams of started services.
    #[arg(long, global = true)]
    pub keep: bool,
}

/// The scenarios of the benchmark issue.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N concurrent clients posting CreateNotification for T seconds, beside raw PostgreSQL
    /// inserts at the same concurrency.
    Commands(scenarios::commands::CommandsArgs),
    /// A fixed arrival rate; latency from the 202 to the simulator receiving the Twilio call,
    /// then a sweep of rates to find where p99 breaks the threshold (and the plot).
    EndToEnd(scenarios::end_to_end::EndToEndArgs),
    /// Unlimited simulator: the most sends per second sustained.
    Saturation(scenarios::saturation::SaturationArgs),
    /// A configured per-sender rate M: achieved rate and the worst 1-second window.
    RateLimit(scenarios::rate_limit::RateLimitArgs),
    /// Events per second of `keryu projections rebuild --all` over a generated log.
    Rebuild(scenarios::rebuild::RebuildArgs),
    /// Peak RSS of `keryu serve` under the commands scenario, and idle RSS.
    Memory(scenarios::commands::CommandsArgs),
    /// Raw PostgreSQL single-row inserts (500-byte JSONB, bigserial key) at N clients.
    Baseline(baseline::BaselineArgs),
    /// Every scenario, one after the other, with their defaults.
    All,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("keryu-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(scenarios::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keryu-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
