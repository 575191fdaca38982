//! Scenario 5, rebuild: a log of E events (whole deliveries: created, queued, attempted,
//! sent, delivered, read, and their subjects) appended through the store's own append path,
//! then `keryu projections rebuild --all` timed from outside.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::Bench;
use crate::deployment::{database_url, drop_database, keryu_binary};
use crate::fill::{Lifecycle, fill};
use crate::machine::kib_field;
use crate::report;
use keryu_infra::personal_data::MasterKey;

/// Options of the rebuild scenario.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// Events in the generated log [default: 1000000; quick: 50000].
    #[arg(long)]
    pub events: Option<u64>,
    /// Streams appended per transaction while generating.
    #[arg(long, default_value_t = 200)]
    pub streams_per_transaction: usize,
}

/// One projection's rebuild, as `keryu projections rebuild` reported it.
#[derive(Debug, Clone, Serialize)]
pub struct Rebuilt {
    /// The projection.
    pub projection: String,
    /// Events it replayed.
    pub events: u64,
    /// Seconds from the start of `rebuild --all` until this read model was swapped in (they
    /// are rebuilt concurrently).
    pub seconds: f64,
    /// Events per second.
    pub events_per_second: f64,
}

/// Runs the scenario and writes `rebuild.json`.
///
/// # Errors
/// When the log cannot be generated, the rebuild fails, or a result cannot be written.
pub async fn run(bench: &Bench, args: &RebuildArgs) -> anyhow::Result<()> {
    let target = bench.pick(args.events, 1_000_000, 50_000);
    let keryu = keryu_binary(&bench.global)?;
    let name = format!(
        "keryu_bench_rebuild_{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    let url = database_url(&bench.global.postgres, &name)?;
    let result = measure(bench, args, &keryu, &url, target).await;
    if bench.global.keep {
        eprintln!("keryu-bench: kept database {name}");
    } else {
        drop_database(&bench.global.postgres, &name).await?;
    }
    result
}

async fn measure(
    bench: &Bench,
    args: &RebuildArgs,
    keryu: &std::path::Path,
    url: &str,
    target: u64,
) -> anyhow::Result<()> {
    let env = [("DATABASE_URL", url), ("KERYU_LOG", "warn")];
    let migrated = Command::new(keryu)
        .arg("migrate")
        .envs(env)
        .output()
        .context("cannot run keryu migrate")?;
    if !migrated.status.success() {
        bail!(
            "keryu migrate failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
    }
    eprintln!("rebuild: appending {target} events through the event store");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await?;
    let store = keryu_infra::postgres::PgEventStore::new(pool.clone(), MasterKey::development());
    let filled = fill(
        &store,
        target,
        None,
        Lifecycle::Read,
        args.streams_per_transaction,
    )
    .await?;
    let table_size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('events'))")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    eprintln!(
        "rebuild: {} events appended in {:.1} s ({:.0}/s, {} transactions); the log takes {table_size}; \
         running keryu projections rebuild --all",
        filled.events, filled.elapsed_seconds, filled.events_per_second, filled.transactions
    );

    let keryu = keryu.to_path_buf();
    let url = url.to_owned();
    let logs = bench.global.out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let stderr_log = std::fs::File::create(logs.join("rebuild-projections.log"))?;
    let (elapsed, rebuilt, peak_rss_kib, status) =
        tokio::task::spawn_blocking(move || run_rebuild(&keryu, &url, stderr_log)).await??;
    if !status {
        bail!(
            "keryu projections rebuild --all failed; see {}",
            logs.join("rebuild-projections.log").display()
        );
    }
    let total_seconds = elapsed.as_secs_f64();
    let log_rate = filled.events as f64 / total_seconds;
    let replayed: u64 = rebuilt.iter().map(|r| r.events).sum();
    let slowest = rebuilt
        .iter()
        .min_by(|a, b| a.events_per_second.total_cmp(&b.events_per_second));
    let summary = format!(
        "{} events: rebuild --all took {total_seconds:.1} s = {log_rate:.0} log events/s for all {} read models \
         ({:.0} events/s per read model, slowest {} at {:.0}/s); peak RSS {:.0} MiB",
        filled.events,
        rebuilt.len(),
        replayed as f64 / total_seconds,
        slowest.map_or("?", |s| s.projection.as_str()),
        slowest.map_or(0.0, |s| s.events_per_second),
        peak_rss_kib as f64 / 1024.0,
    );
    report::write(
        &bench.global.out,
        "rebuild",
        &bench.machine,
        json!({
            "events": target,
            "streams_per_transaction": args.streams_per_transaction,
        }),
        json!({
            "log": filled,
            "events_table_size": table_size,
            "rebuild_seconds": total_seconds,
            "log_events_per_second": log_rate,
            "replayed_events": replayed,
            "replayed_events_per_second": replayed as f64 / total_seconds,
            "projections": rebuilt,
            "peak_rss_mib": peak_rss_kib as f64 / 1024.0,
            "targets": { "events_per_second_at_least": 50_000 },
        }),
        &summary,
    )?;
    Ok(())
}

/// Runs `keryu projections rebuild --all`, timing each "rebuilt from N events" line from the
/// start (the read models are rebuilt concurrently) and sampling the process's peak RSS. Returns the total time, each projection, the
/// peak RSS in KiB and whether it succeeded.
fn run_rebuild(
    keryu: &std::path::Path,
    url: &str,
    stderr_log: std::fs::File,
) -> anyhow::Result<(Duration, Vec<Rebuilt>, u64, bool)> {
    let started = Instant::now();
    let mut child = Command::new(keryu)
        .args(["projections", "rebuild", "--all"])
        .env("DATABASE_URL", url)
        .env("KERYU_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr_log)
        .spawn()
        .context("cannot run keryu projections rebuild")?;
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let done = done.clone();
        let peak = peak.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(hwm) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|status| kib_field(&status, "VmHWM:"))
                {
                    peak.fetch_max(hwm, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut rebuilt = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some((projection, events)) = parse_rebuilt(&line) {
                let seconds = started.elapsed().as_secs_f64();
                rebuilt.push(Rebuilt {
                    projection,
                    events,
                    seconds,
                    events_per_second: events as f64 / seconds.max(1e-9),
                });
            }
        }
    }
    let status = child.wait()?;
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    Ok((
        elapsed,
        rebuilt,
        peak.load(Ordering::Relaxed),
        status.success(),
    ))
}

/// `"notifications: rebuilt from 1000 events, now at position 1000"` → `("notifications", 1000)`.
fn parse_rebuilt(line: &str) -> Option<(String, u64)> {
    let (projection, rest) = line.split_once(": rebuilt from ")?;
    let events = rest.split_whitespace().next()?.parse().ok()?;
    Some((projection.trim().to_owned(), events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rebuild_lines() {
        assert_eq!(
            parse_rebuilt("notifications: rebuilt from 1000 events, now at position 1003"),
            Some(("notifications".to_owned(), 1000))
        );
        assert_eq!(parse_rebuilt("notifications:  50% (500 of 1000)"), None);
    }
}
