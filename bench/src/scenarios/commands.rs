//! Scenario 1, commands: N clients posting CreateNotification in a closed loop for T seconds,
//! beside the baseline (raw inserts at the same concurrency); and scenario 6, memory: the
//! idle and peak RSS of `keryu serve` around that load.
//!
//! The commands scenario measures the command side: `keryu command-api` alone, as it runs when
//! the roles are deployed apart, so that the projector and the dispatcher (which catch up
//! afterwards) do not take its cores. `--serve` measures it inside `keryu serve` instead,
//! every role sharing the cores; the memory scenario always does.

use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::{Bench, CpuSample, busiest};
use crate::deployment::{Deployment, Roles, Spec};
use crate::load::{Until, post_notifications};
use crate::machine::memory_of;
use crate::{baseline, report};

/// Options of the commands (and memory) scenario.
#[derive(Debug, Clone, Args)]
pub struct CommandsArgs {
    /// Concurrent HTTP clients [default: 64; quick: 16].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Seconds of load [default: 30; quick: 5].
    #[arg(long)]
    pub duration: Option<u64>,
    /// Seconds of the baseline [default: 15; quick: 3].
    #[arg(long)]
    pub baseline_duration: Option<u64>,
    /// Skip the baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Seconds `keryu serve` idles before its idle RSS is read [default: 5; quick: 2].
    #[arg(long)]
    pub idle_seconds: Option<u64>,
    /// Post to `keryu serve` (every role in one process, delivering what it accepts) instead
    /// of `keryu command-api` alone. The memory scenario always does.
    #[arg(long)]
    pub serve: bool,
}

/// Which scenario a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Scenario 1: `commands.json`.
    Commands,
    /// Scenario 6: `memory.json`, always of `keryu serve`.
    Memory,
}

/// Runs the scenario `write` names and writes its file.
///
/// # Errors
/// When the services cannot start or a result cannot be written.
pub async fn run(bench: &Bench, args: &CommandsArgs, write: Write) -> anyhow::Result<()> {
    let concurrency = bench.pick(args.concurrency, 64, 16);
    let duration = Duration::from_secs(bench.pick(args.duration, 30, 5));
    let baseline_duration = Duration::from_secs(bench.pick(args.baseline_duration, 15, 3));
    let idle = Duration::from_secs(bench.pick(args.idle_seconds, 5, 2));
    eprintln!(
        "commands: {concurrency} clients for {} s (then the baseline)",
        duration.as_secs()
    );

    let spec = if write == Write::Memory || args.serve {
        Spec::serve("commands")
    } else {
        Spec {
            roles: Roles::CommandApi,
            ..Spec::serve("commands")
        }
    };
    let deployment = Deployment::for_scenario(&bench.global, &spec).await?;
    tokio::time::sleep(idle).await;
    let idle_memory = deployment.api_pid.and_then(memory_of);
    let cpu_before = CpuSample::take(&deployment.pids());

    let tag = bench.run_tag.clone();
    let (deployment, measured) = post_notifications(
        deployment,
        concurrency,
        Until::Elapsed(duration),
        move |seq| format!("Keryu benchmark {tag} #{seq}: your appointment is tomorrow at 10:00."),
    )
    .await?;
    let cpu = CpuSample::take(&deployment.pids()).cores_since(&cpu_before);
    let loaded_memory = deployment.api_pid.and_then(memory_of);
    tokio::time::sleep(idle).await;
    let after_memory = deployment.api_pid.and_then(memory_of);
    let owned = deployment.is_owned();
    deployment.stop().await?;

    let baseline = if args.no_baseline || write == Write::Memory {
        None
    } else {
        eprintln!(
            "baseline: {concurrency} clients for {} s",
            baseline_duration.as_secs()
        );
        Some(baseline::run(&bench.global.postgres, concurrency, baseline_duration).await?)
    };
    let ratio = baseline
        .as_ref()
        .map(|b| measured.ok_per_second() / b.inserts_per_second.max(1e-9));

    let latency = measured.latency.summary();
    let mut summary = format!(
        "{concurrency} clients, {:.0} s: {:.0} accepted/s, {}, {} errors",
        measured.elapsed.as_secs_f64(),
        measured.ok_per_second(),
        latency.short(),
        measured.error_count(),
    );
    if let (Some(baseline), Some(ratio)) = (&baseline, ratio) {
        summary.push_str(&format!(
            "; {ratio:.2}× raw inserts ({:.0}/s at {concurrency})",
            baseline.inserts_per_second
        ));
    }
    if let Some(peak) = loaded_memory {
        summary.push_str(&format!(
            "; {} peak RSS {:.0} MiB",
            spec.roles, peak.peak_rss_mib
        ));
    }
    summary.push_str(&format!("; cores: {}", busiest(&cpu)));
    let config = json!({
        "concurrency": concurrency,
        "duration_seconds": duration.as_secs(),
        "baseline_duration_seconds": baseline_duration.as_secs(),
        "started_services": owned,
        "db_connections": bench.global.db_connections,
        "callbacks": !bench.global.no_callbacks,
        "subjects": bench.global.subjects,
        "roles": spec.roles.to_string(),
    });
    if write == Write::Commands {
        report::write(
            &bench.global.out,
            "commands",
            &bench.machine,
            config.clone(),
            json!({
                "commands": measured.report(),
                "baseline": baseline,
                "ratio_to_baseline": ratio,
                "cpu_cores_during_load": cpu,
                "api_process_memory": { "idle": idle_memory, "loaded": loaded_memory, "after": after_memory },
                "targets": {
                    "ratio_to_baseline_at_least": 0.7,
                    "p99_ms_below": 20.0,
                },
            }),
            &summary,
        )?;
    }
    if write == Write::Memory {
        let summary = match (idle_memory, loaded_memory) {
            (Some(idle), Some(loaded)) => format!(
                "keryu serve: idle RSS {:.1} MiB, peak RSS {:.1} MiB under {concurrency} clients \
                 ({:.0} accepted/s), RSS {:.1} MiB after",
                idle.rss_mib,
                loaded.peak_rss_mib,
                measured.ok_per_second(),
                after_memory.map_or(0.0, |m| m.rss_mib),
            ),
            _ => "keryu serve's pid is unknown (pass --serve-pid with --api)".to_owned(),
        };
        report::write(
            &bench.global.out,
            "memory",
            &bench.machine,
            config,
            json!({
                "idle": idle_memory,
                "under_load": loaded_memory,
                "after_load": after_memory,
                "accepted_per_second": measured.ok_per_second(),
                "targets": { "peak_rss_mib_below": 100.0, "idle_rss_mib_below": 30.0 },
            }),
            &summary,
        )?;
    }
    Ok(())
}
