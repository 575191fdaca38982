//! Scenario 4, rate limit: Keryu configured for M messages per second per sender, offered
//! more than M; the simulator's arrival timestamps give the achieved rate over T seconds and
//! the busiest sliding one-second window.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::Bench;
use crate::deployment::{Deployment, Spec};
use crate::fill::{Lifecycle, fill};
use crate::load::{Until, post_notifications};
use crate::report;
use crate::stats::{busiest_window, count_between, per_second};
use keryu_infra::personal_data::MasterKey;

/// Options of the rate-limit scenario.
#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    /// KERYU_SENDER_MPS, the configured rate M [default: 80 (WhatsApp's default); quick: 20].
    #[arg(long)]
    pub mps: Option<f64>,
    /// KERYU_SENDER_BURST [default: 1].
    #[arg(long)]
    pub burst: Option<u32>,
    /// Seconds measured [default: 60; quick: 10].
    #[arg(long)]
    pub duration: Option<u64>,
    /// Seconds after the first send before the window starts (the relay and the dispatcher
    /// warm up on a backlog that appeared at once) [default: 5; quick: 2].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Clients posting the backlog to a running service (`--api`) [default: 16].
    #[arg(long)]
    pub concurrency: Option<usize>,
}

/// Runs the scenario and writes `rate-limit.json`.
///
/// # Errors
/// When the services cannot start or a result cannot be written.
pub async fn run(bench: &Bench, args: &RateLimitArgs) -> anyhow::Result<()> {
    let mps = bench.pick(args.mps, 80.0, 20.0);
    let burst = args.burst.unwrap_or(1);
    let duration = Duration::from_secs(bench.pick(args.duration, 60, 10));
    let concurrency = args.concurrency.unwrap_or(16);
    let warmup = Duration::from_secs(bench.pick(args.warmup, 5, 2));
    let spec = Spec {
        sender_mps: mps,
        sender_burst: burst,
        ..Spec::serve("rate-limit")
    };
    let deployment = Deployment::for_scenario(&bench.global, &spec).await?;
    deployment.reset_sim().await?;
    // More than T seconds' worth, so the sender is never idle during the window.
    let backlog = (mps * (duration + warmup).as_secs_f64() * 1.2).ceil() as u64;
    eprintln!(
        "rate-limit: M = {mps}/s, burst {burst}; posting {backlog} notifications, measuring {} s",
        duration.as_secs()
    );
    let started = Instant::now();
    // With services of its own, the backlog is appended through the store (seconds, so the
    // sender is busy from the start whatever the command path's speed); against a running
    // service it is posted.
    let (deployment, posted) = match deployment.database_url().map(str::to_owned) {
        Some(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await?;
            let store =
                keryu_infra::postgres::PgEventStore::new(pool.clone(), MasterKey::development());
            let filled = fill(&store, 0, Some(backlog), Lifecycle::Queued, 500).await?;
            pool.close().await;
            (deployment, json!({ "appended": filled }))
        }
        None => {
            let tag = bench.run_tag.clone();
            let (deployment, posted) =
                post_notifications(deployment, concurrency, Until::Sent(backlog), move |seq| {
                    format!("Keryu rate {tag} #{seq}")
                })
                .await?;
            (deployment, json!({ "posted": posted.report() }))
        }
    };

    // Wait until the window after the first send is over (or nothing arrives for a minute).
    let mut first_seen: Option<Instant> = None;
    let listed = loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let listed = deployment.sim_messages().await?;
        if !listed.messages.is_empty() && first_seen.is_none() {
            first_seen = Some(Instant::now());
        }
        let over = first_seen
            .is_some_and(|seen| seen.elapsed() > duration + warmup + Duration::from_secs(3));
        if over || (first_seen.is_none() && started.elapsed() > Duration::from_secs(120)) {
            break listed;
        }
    };
    let owned = deployment.is_owned();
    deployment.stop().await?;

    let times = listed.sorted_arrivals();
    let first =
        times.first().copied().unwrap_or(0) + i64::try_from(warmup.as_micros()).unwrap_or(0);
    let window = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
    let in_window: Vec<i64> = times
        .iter()
        .copied()
        .filter(|t| *t >= first && *t < first + window)
        .collect();
    let sends = count_between(&times, first, first + window);
    let achieved = sends as f64 / duration.as_secs_f64();
    let deviation_percent = (achieved - mps) / mps * 100.0;
    let busiest = busiest_window(&in_window, 1_000_000);
    let seconds = per_second(&times, first, first + window);
    let short_of_backlog = times
        .last()
        .is_none_or(|last| *last < first + window - 1_000_000);
    let allowed = mps.floor() as usize + burst as usize;
    let summary = format!(
        "M = {mps}/s, burst {burst}, {} s: achieved {achieved:.2}/s ({deviation_percent:+.2} %), \
         busiest 1-s window {busiest} (limit M+burst = {allowed}), calendar seconds {}–{}{}",
        duration.as_secs(),
        seconds.iter().min().copied().unwrap_or(0),
        seconds.iter().max().copied().unwrap_or(0),
        if short_of_backlog {
            "; the backlog ran out before the window ended"
        } else {
            ""
        },
    );
    report::write(
        &bench.global.out,
        "rate-limit",
        &bench.machine,
        json!({
            "mps": mps,
            "burst": burst,
            "duration_seconds": duration.as_secs(),
            "warmup_seconds": warmup.as_secs(),
            "backlog": backlog,
            "concurrency": concurrency,
            "started_services": owned,
            "callbacks": !bench.global.no_callbacks,
        }),
        json!({
            "achieved_mps": achieved,
            "deviation_percent": deviation_percent,
            "within_2_percent": deviation_percent.abs() <= 2.0,
            "sends_in_window": sends,
            "busiest_one_second_window": busiest,
            "busiest_within_m_plus_burst": busiest <= allowed,
            "per_second": seconds,
            "received_total": times.len(),
            "arrivals": in_window,
            "backlog_ran_out": short_of_backlog,
            "backlog": posted,
            "targets": { "deviation_percent_within": 2.0, "busiest_window_at_most": allowed },
        }),
        &summary,
    )?;
    Ok(())
}
