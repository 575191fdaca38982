//! Scenario 2, end-to-end: notifications arrive at a fixed rate (open loop); the latency of
//! each is from its 202 reaching the client to the Twilio call reaching the simulator (both
//! clocks are this machine's). Then a sweep of rates finds where p99 breaks the threshold,
//! and the plot of latency against arrival rate is drawn.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::{Bench, CpuSample, busiest};
use crate::deployment::{Deployment, Spec};
use crate::load::open_loop;
use crate::stats::{Latency, LatencySummary};
use crate::{plot, report};

/// Options of the end-to-end scenario.
#[derive(Debug, Clone, Args)]
pub struct EndToEndArgs {
    /// Arrivals per second of the main run [default: 500; quick: 100].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of the main run [default: 60; quick: 5].
    #[arg(long)]
    pub duration: Option<u64>,
    /// Rates of the sweep, comma-separated [default: 100,250,500,750,1000,1250,1500,2000,3000;
    /// quick: 50,200,400].
    #[arg(long, value_delimiter = ',')]
    pub sweep: Option<Vec<f64>>,
    /// Seconds per sweep step [default: 15; quick: 4].
    #[arg(long)]
    pub step_duration: Option<u64>,
    /// The p99 that "breaks", in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    pub threshold_ms: f64,
    /// Skip the sweep (and the plot).
    #[arg(long)]
    pub no_sweep: bool,
    /// Go on sweeping after p99 broke the threshold (by default the sweep stops at the first
    /// break).
    #[arg(long)]
    pub full_sweep: bool,
    /// Where the plot goes.
    #[arg(long, default_value = "docs/benchmarks/latency-vs-rate.svg")]
    pub plot: PathBuf,
    /// Requests allowed to wait for an answer at once; beyond it arrivals are shed (counted).
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// Longest wait, in seconds, for the last messages to reach the simulator after a step.
    #[arg(long, default_value_t = 60)]
    pub drain_timeout: u64,
}

/// One fixed-rate run.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Offered arrivals per second.
    pub offered_rate: f64,
    /// Seconds of arrivals.
    pub seconds: f64,
    /// Requests sent.
    pub sent: u64,
    /// Answered 202.
    pub accepted: u64,
    /// Accepted per second of sending.
    pub accepted_per_second: f64,
    /// Not sent because too many were waiting.
    pub shed: u64,
    /// Other answers and failures.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Latest departure behind schedule, ms (the generator's own lag).
    pub max_departure_lag_ms: f64,
    /// Latency of the 202.
    pub command_latency: LatencySummary,
    /// Accepted notifications the simulator received.
    pub delivered: u64,
    /// Accepted notifications it did not receive before the drain timeout.
    pub missing: u64,
    /// Deliveries per second from the first to the last received.
    pub delivered_per_second: f64,
    /// From the 202 to the simulator's `received_at`.
    pub end_to_end_latency: LatencySummary,
    /// Deliveries stamped before their 202 arrived (clamped to 0 µs).
    pub received_before_accepted: u64,
    /// Cores each process kept busy during the step.
    pub cpu_cores: serde_json::Value,
}

/// Runs the main run and the sweep, writes `end-to-end.json` and the plot.
///
/// # Errors
/// When the services cannot start or a result cannot be written.
pub async fn run(bench: &Bench, args: &EndToEndArgs) -> anyhow::Result<()> {
    let rate = bench.pick(args.rate, 500.0, 100.0);
    let duration = Duration::from_secs(bench.pick(args.duration, 60, 5));
    let sweep = bench.pick(
        args.sweep.clone(),
        vec![
            100.0, 250.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0, 2000.0, 3000.0,
        ],
        vec![50.0, 200.0, 400.0],
    );
    let step_duration = Duration::from_secs(bench.pick(args.step_duration, 15, 4));
    // The sweep runs first, from the lowest rate, each step on a system that kept up with
    // the previous one; the main run then gets services of its own, so that neither sees
    // the other's backlog.
    let mut steps: Vec<Step> = Vec::new();
    let mut breaks_at = None;
    if !args.no_sweep {
        let deployment = Rc::new(
            Deployment::for_scenario(&bench.global, &Spec::serve("end-to-end-sweep")).await?,
        );
        for (index, &step_rate) in sweep.iter().enumerate() {
            eprintln!(
                "end-to-end sweep: {step_rate}/s for {} s",
                step_duration.as_secs()
            );
            let measured = step(
                bench,
                &deployment,
                args,
                step_rate,
                step_duration,
                &format!("s{index}"),
            )
            .await?;
            eprintln!(
                "  {step_rate}/s: accepted {:.0}/s, delivered {:.0}/s, e2e {}",
                measured.accepted_per_second,
                measured.delivered_per_second,
                measured.end_to_end_latency.short()
            );
            let broke = breaks(&measured, args.threshold_ms);
            steps.push(measured);
            if broke && !args.full_sweep {
                breaks_at = Some(step_rate);
                break;
            }
            if broke && breaks_at.is_none() {
                breaks_at = Some(step_rate);
            }
        }
        if let Ok(deployment) = Rc::try_unwrap(deployment) {
            deployment.stop().await?;
        }
    }

    eprintln!("end-to-end: {rate}/s for {} s", duration.as_secs());
    let deployment =
        Rc::new(Deployment::for_scenario(&bench.global, &Spec::serve("end-to-end")).await?);
    let main = step(bench, &deployment, args, rate, duration, "main").await?;
    let owned = deployment.is_owned();
    if let Ok(deployment) = Rc::try_unwrap(deployment) {
        deployment.stop().await?;
    }

    let last_under = steps
        .iter()
        .filter(|s| !breaks(s, args.threshold_ms))
        .map(|s| s.offered_rate)
        .filter(|r| breaks_at.is_none_or(|b| *r < b))
        .fold(None, |best: Option<f64>, r| {
            Some(best.map_or(r, |b| b.max(r)))
        });
    if !steps.is_empty() {
        let points: Vec<plot::Point> = steps
            .iter()
            .map(|s| plot::Point {
                rate: s.offered_rate,
                p50_ms: s.end_to_end_latency.p50_ms,
                p90_ms: s.end_to_end_latency.p90_ms,
                p99_ms: s.end_to_end_latency.p99_ms,
            })
            .collect();
        plot::latency_vs_rate(
            &args.plot,
            &points,
            args.threshold_ms,
            &bench.machine.line(),
        )?;
        eprintln!("plot: {}", args.plot.display());
    }

    let mut summary = format!(
        "{rate}/s for {} s: e2e p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} delivered, {} missing, {} errors); 202 p99 {:.1} ms",
        duration.as_secs(),
        main.end_to_end_latency.p50_ms,
        main.end_to_end_latency.p99_ms,
        main.end_to_end_latency.max_ms,
        main.delivered,
        main.missing,
        main.errors.values().sum::<u64>(),
        main.command_latency.p99_ms,
    );
    match (breaks_at, last_under) {
        (Some(broke), Some(under)) => summary.push_str(&format!(
            "; p99 breaks {} ms between {under}/s and {broke}/s",
            args.threshold_ms
        )),
        (Some(broke), None) => summary.push_str(&format!(
            "; p99 above {} ms already at {broke}/s",
            args.threshold_ms
        )),
        (None, Some(under)) => summary.push_str(&format!(
            "; p99 under {} ms up to {under}/s (the highest rate swept)",
            args.threshold_ms
        )),
        (None, None) => {}
    }
    summary.push_str(&format!("; cores: {}", busiest(&main.cpu_cores)));
    report::write(
        &bench.global.out,
        "end-to-end",
        &bench.machine,
        json!({
            "rate": rate,
            "duration_seconds": duration.as_secs(),
            "sweep": sweep,
            "step_duration_seconds": step_duration.as_secs(),
            "threshold_ms": args.threshold_ms,
            "started_services": owned,
            "callbacks": !bench.global.no_callbacks,
            "db_connections": bench.global.db_connections,
            "dispatcher_concurrency": bench.global.dispatcher_concurrency,
        }),
        json!({
            "main": main,
            "sweep": steps,
            "p99_breaks_threshold_at_rate": breaks_at,
            "highest_rate_under_threshold": last_under,
            "targets": { "rate": 500, "p50_ms_below": 20.0, "p99_ms_below": 100.0 },
        }),
        &summary,
    )?;
    Ok(())
}

/// Whether a step broke the threshold: p99 above it, or not everything delivered.
fn breaks(step: &Step, threshold_ms: f64) -> bool {
    step.end_to_end_latency.p99_ms > threshold_ms || step.missing > 0 || step.shed > 0
}

async fn step(
    bench: &Bench,
    deployment: &Rc<Deployment>,
    args: &EndToEndArgs,
    rate: f64,
    duration: Duration,
    name: &str,
) -> anyhow::Result<Step> {
    deployment.reset_sim().await?;
    let prefix = format!("Keryu e2e {}-{name} #", bench.run_tag);
    let make = {
        let deployment = deployment.clone();
        let prefix = prefix.clone();
        Rc::new(move |seq: u64| {
            deployment.create_notification(
                seq,
                format!("{prefix}{seq}: your appointment is tomorrow at 10:00."),
            )
        })
    };
    let cpu_before = CpuSample::take(&deployment.pids());
    let sent = open_loop(rate, duration, args.max_in_flight, 202, make).await;
    let accepted: HashMap<u64, i64> = sent
        .accepted()
        .filter_map(|a| a.accepted_micros.map(|at| (a.seq, at)))
        .collect();

    // Wait until the simulator holds every accepted notification, or stops receiving.
    let deadline = Instant::now() + Duration::from_secs(args.drain_timeout);
    let mut last_count = 0;
    let mut last_growth = Instant::now();
    let received: HashMap<u64, i64> = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let listed = deployment.sim_messages().await?;
        let received: HashMap<u64, i64> = listed
            .messages
            .iter()
            .filter_map(|m| {
                let rest = m.body.as_deref()?.strip_prefix(prefix.as_str())?;
                let seq: u64 = rest.split(':').next()?.parse().ok()?;
                Some((seq, m.received_at_micros))
            })
            .collect();
        if received.len() != last_count {
            last_count = received.len();
            last_growth = Instant::now();
        }
        let all = accepted.keys().all(|seq| received.contains_key(seq));
        if all || Instant::now() > deadline || last_growth.elapsed() > Duration::from_secs(15) {
            break received;
        }
    };
    let cpu = CpuSample::take(&deployment.pids()).cores_since(&cpu_before);

    let mut latency = Latency::new();
    let mut early = 0;
    let mut delivered_times = Vec::new();
    for (seq, accepted_at) in &accepted {
        if let Some(received_at) = received.get(seq) {
            let micros = received_at - accepted_at;
            if micros < 0 {
                early += 1;
            }
            latency.record_micros(u64::try_from(micros.max(0)).unwrap_or(0));
            delivered_times.push(*received_at);
        }
    }
    delivered_times.sort_unstable();
    let delivered = delivered_times.len() as u64;
    let delivered_span = match (delivered_times.first(), delivered_times.last()) {
        (Some(first), Some(last)) if last > first => (last - first) as f64 / 1e6,
        _ => duration.as_secs_f64(),
    };
    let max_lag = sent
        .arrivals
        .iter()
        .map(|a| a.lag)
        .max()
        .unwrap_or_default();
    Ok(Step {
        offered_rate: rate,
        seconds: duration.as_secs_f64(),
        sent: sent.arrivals.len() as u64,
        accepted: accepted.len() as u64,
        accepted_per_second: accepted.len() as f64 / sent.sending.as_secs_f64().max(1e-9),
        shed: sent.shed,
        errors: sent.errors.clone(),
        max_departure_lag_ms: max_lag.as_secs_f64() * 1000.0,
        command_latency: sent.answer_latency().summary(),
        delivered,
        missing: accepted.len() as u64 - delivered,
        delivered_per_second: delivered as f64 / delivered_span.max(1e-9),
        end_to_end_latency: latency.summary(),
        received_before_accepted: early,
        cpu_cores: cpu,
    })
}
