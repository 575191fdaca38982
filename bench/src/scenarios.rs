//! The scenarios of the benchmark issue, and `all`.

pub mod commands;
pub mod end_to_end;
pub mod rate_limit;
pub mod rebuild;
pub mod saturation;

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::machine::{Machine, cpu_seconds, reaped_children_cpu_seconds};
use crate::{Cli, Global, Scenario, baseline, report};

/// What every scenario gets: the shared options and the machine's description.
#[derive(Debug, Clone)]
pub struct Bench {
    /// The shared options.
    pub global: Global,
    /// What the figures are measured on.
    pub machine: Machine,
    /// Tags this run's bodies and names.
    pub run_tag: String,
}

impl Bench {
    /// `given`, else the full or the quick default.
    pub fn pick<T>(&self, given: Option<T>, full: T, quick: T) -> T {
        given.unwrap_or(if self.global.quick { quick } else { full })
    }
}

/// Runs the scenario `cli` names.
///
/// # Errors
/// When a scenario fails (with `all`: after the others ran, naming the ones that failed).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let admin = sqlx::PgPool::connect(&cli.global.postgres)
        .await
        .context("cannot connect to PostgreSQL (--postgres)")?;
    let machine = Machine::gather(&admin, &cli.global.nats).await;
    admin.close().await;
    eprintln!("keryu-bench on {}", machine.line());
    let bench = Bench {
        global: cli.global,
        machine,
        run_tag: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
    };
    match cli.scenario {
        Scenario::Commands(args) => commands::run(&bench, &args, commands::Write::Commands).await,
        Scenario::Memory(args) => commands::run(&bench, &args, commands::Write::Memory).await,
        Scenario::EndToEnd(args) => end_to_end::run(&bench, &args).await,
        Scenario::Saturation(args) => saturation::run(&bench, &args).await,
        Scenario::RateLimit(args) => rate_limit::run(&bench, &args).await,
        Scenario::Rebuild(args) => rebuild::run(&bench, &args).await,
        Scenario::Baseline(args) => run_baseline(&bench, &args).await,
        Scenario::All => run_all(&bench).await,
    }
}

async fn run_all(bench: &Bench) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    let mut outcome = |name: &'static str, result: anyhow::Result<()>| {
        if let Err(error) = result {
            eprintln!("keryu-bench: {name} failed: {error:#}");
            failed.push(name);
        }
    };
    for (name, write) in [
        ("commands", commands::Write::Commands),
        ("memory", commands::Write::Memory),
    ] {
        outcome(
            name,
            commands::run(bench, &defaults::<commands::CommandsArgs>()?, write).await,
        );
    }
    outcome(
        "end-to-end",
        end_to_end::run(bench, &defaults::<end_to_end::EndToEndArgs>()?).await,
    );
    outcome(
        "saturation",
        saturation::run(bench, &defaults::<saturation::SaturationArgs>()?).await,
    );
    outcome(
        "rate-limit",
        rate_limit::run(bench, &defaults::<rate_limit::RateLimitArgs>()?).await,
    );
    outcome(
        "rebuild",
        rebuild::run(bench, &defaults::<rebuild::RebuildArgs>()?).await,
    );
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("failed: {}", failed.join(", "))
    }
}

/// A scenario's options as its command line would give them with no flag, so that `all`
/// runs each scenario with exactly the defaults its own subcommand documents.
fn defaults<T: clap::Args + clap::FromArgMatches>() -> anyhow::Result<T> {
    let command = T::augment_args(clap::Command::new("defaults"));
    let matches = command.try_get_matches_from(["defaults"])?;
    Ok(T::from_arg_matches(&matches)?)
}

async fn run_baseline(bench: &Bench, args: &baseline::BaselineArgs) -> anyhow::Result<()> {
    let concurrency = bench.pick(args.concurrency, 64, 16);
    let duration = Duration::from_secs(bench.pick(args.duration, 15, 3));
    let measured = baseline::run(&bench.global.postgres, concurrency, duration).await?;
    let summary = format!(
        "{} clients, {:.0} s: {:.0} inserts/s, {}",
        concurrency,
        measured.elapsed_seconds,
        measured.inserts_per_second,
        measured.latency.short()
    );
    report::write(
        &bench.global.out,
        "baseline",
        &bench.machine,
        json!({ "concurrency": concurrency, "duration_seconds": duration.as_secs() }),
        json!(measured),
        &summary,
    )?;
    Ok(())
}

/// CPU seconds used so far by the processes of a run: each started process, every
/// `postgres` backend, and this harness. Differences of two samples over a phase show which
/// process was busy.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    at: Option<std::time::Instant>,
    by_process: Vec<(String, f64)>,
}

impl CpuSample {
    /// Samples `processes` (name, pid), PostgreSQL's processes and this one.
    pub fn take(processes: &[(String, u32)]) -> CpuSample {
        let mut by_process: Vec<(String, f64)> = processes
            .iter()
            .filter_map(|(name, pid)| cpu_seconds(*pid).map(|cpu| (name.clone(), cpu)))
            .collect();
        by_process.push(("postgres (all backends)".to_owned(), postgres_cpu_seconds()));
        if let Some(own) = cpu_seconds(std::process::id()) {
            by_process.push(("keryu-bench".to_owned(), own));
        }
        CpuSample {
            at: Some(std::time::Instant::now()),
            by_process,
        }
    }

    /// Cores each process kept busy between `earlier` and this sample.
    pub fn cores_since(&self, earlier: &CpuSample) -> serde_json::Value {
        let seconds = match (self.at, earlier.at) {
            (Some(now), Some(then)) => now.duration_since(then).as_secs_f64().max(1e-9),
            _ => return json!({}),
        };
        let mut cores = serde_json::Map::new();
        for (name, cpu) in &self.by_process {
            // A process started after `earlier` had used nothing then.
            let before = earlier
                .by_process
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, before)| *before);
            let used = ((cpu - before) / seconds * 100.0).round() / 100.0;
            cores.insert(name.clone(), json!(used));
        }
        cores.into()
    }
}

/// CPU seconds of every process whose command name is `postgres`, with those of the backends
/// that exited (a closed connection): the postmaster has reaped them, so their time is in its
/// children's time. Without it, a backend ending between two samples took its whole past with
/// it, and the server's share could even come out below what it used.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(|pid| Some(cpu_seconds(pid)? + reaped_children_cpu_seconds(pid)?))
        .sum()
}

/// A text of the cores used per process, busiest first, for summaries.
pub fn busiest(cores: &serde_json::Value) -> String {
    let mut pairs: Vec<(String, f64)> = cores
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(name, value)| (name.clone(), value.as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    pairs
        .iter()
        .map(|(name, used)| format!("{name} {used:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
