//! Scenario 3, saturation: how many sends per second Keryu sustains against an unlimited
//! simulator.
//!
//! `backlog` mode (the default with started services) isolates delivery: `keryu command-api`
//! and `keryu projector` run without a dispatcher while a backlog of queued notifications is
//! appended through the store and relayed to JetStream; then `keryu dispatcher` starts and the
//! simulator's arrival timestamps give the rate over the first T seconds. `flood` mode (the
//! only one against a running service) posts notifications as fast as N clients can for T
//! seconds and counts what reaches the simulator meanwhile — commands and sends then share
//! the machine, as in production.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::{Bench, CpuSample, busiest};
use crate::deployment::{Deployment, Roles, Spec};
use crate::fill::{Lifecycle, fill};
use crate::load::{Until, post_notifications};
use crate::report;
use crate::stats::{busiest_window, count_between, per_second};
use keryu_infra::personal_data::MasterKey;

/// How the offered load is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A backlog appended first, then a dispatcher drains it.
    Backlog,
    /// N clients posting while the dispatcher sends.
    Flood,
}

/// Options of the saturation scenario.
#[derive(Debug, Clone, Args)]
pub struct SaturationArgs {
    /// Seconds measured [default: 30; quick: 5].
    #[arg(long)]
    pub duration: Option<u64>,
    /// Queued notifications in backlog mode (the simulator keeps the latest 100,000)
    /// [default: 90000; quick: 3000].
    #[arg(long)]
    pub backlog: Option<u64>,
    /// backlog or flood [default: backlog with started services, flood with --api].
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Clients in flood mode [default: 64; quick: 16].
    #[arg(long)]
    pub concurrency: Option<usize>,
}

/// Runs the scenario and writes `saturation.json`.
///
/// # Errors
/// When the services cannot start or a result cannot be written.
pub async fn run(bench: &Bench, args: &SaturationArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs(bench.pick(args.duration, 30, 5));
    let external = bench.global.api.is_some();
    let mode = args
        .mode
        .unwrap_or(if external { Mode::Flood } else { Mode::Backlog });
    anyhow::ensure!(
        !(external && mode == Mode::Backlog),
        "backlog mode needs services this run starts (drop --api)"
    );
    let spec = Spec {
        roles: if mode == Mode::Backlog {
            Roles::Split
        } else {
            Roles::Serve
        },
        ..Spec::serve("saturation")
    };
    let mut deployment = Deployment::for_scenario(&bench.global, &spec).await?;
    let mut setup = json!({});
    let (cpu, started) = match mode {
        Mode::Backlog => {
            let backlog = bench.pick(args.backlog, 90_000, 3_000);
            eprintln!("saturation: appending a backlog of {backlog} queued notifications");
            let url = deployment
                .database_url()
                .context("a started deployment has a database")?
                .to_owned();
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await?;
            let store =
                keryu_infra::postgres::PgEventStore::new(pool.clone(), MasterKey::development());
            let filled = fill(&store, 0, Some(backlog), Lifecycle::Queued, 500).await?;
            let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&pool)
                .await?;
            pool.close().await;
            eprintln!("saturation: waiting for the relay to publish {events} events");
            let relayed = wait_for_relay(&bench.global.nats, deployment.stream(), events).await?;
            deployment.reset_sim().await?;
            let cpu_before = CpuSample::take(&deployment.pids());
            let started = Instant::now();
            eprintln!(
                "saturation: starting the dispatcher; measuring {} s",
                duration.as_secs()
            );
            deployment.start_dispatcher("saturation")?;
            setup = json!({ "backlog": filled, "relay_seconds": relayed.as_secs_f64() });
            // The dispatcher needs a moment to start; measure a whole window after its first send.
            tokio::time::sleep(duration + Duration::from_secs(5)).await;
            let cpu = CpuSample::take(&deployment.pids()).cores_since(&cpu_before);
            (cpu, started)
        }
        Mode::Flood => {
            let concurrency = bench.pick(args.concurrency, 64, 16);
            eprintln!(
                "saturation: {concurrency} clients posting for {} s",
                duration.as_secs()
            );
            deployment.reset_sim().await?;
            let cpu_before = CpuSample::take(&deployment.pids());
            let started = Instant::now();
            let tag = bench.run_tag.clone();
            let (posted_through, posted) = post_notifications(
                deployment,
                concurrency,
                Until::Elapsed(duration),
                move |seq| format!("Keryu saturation {tag} #{seq}"),
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            let cpu = CpuSample::take(&posted_through.pids()).cores_since(&cpu_before);
            deployment = posted_through;
            setup = json!({ "posted": posted.report(), "concurrency": concurrency });
            (cpu, started)
        }
    };
    let listed = deployment.sim_messages().await?;
    let setup_seconds = started.elapsed().as_secs_f64();
    let owned = deployment.is_owned();
    deployment.stop().await?;

    let times = listed.sorted_arrivals();
    let window = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
    let (first, last) = (
        times.first().copied().unwrap_or(0),
        times.last().copied().unwrap_or(0),
    );
    let drained_early = last < first + window;
    let measured_micros = if drained_early {
        (last - first).max(1)
    } else {
        window
    };
    let sends = count_between(&times, first, first + measured_micros + 1);
    let rate = sends as f64 / (measured_micros as f64 / 1e6);
    let seconds = per_second(&times, first, first + measured_micros);
    let summary = format!(
        "{}: {rate:.0} sends/s over {:.1} s ({sends} sends{}; slowest second {}, busiest 1-s window {}); cores: {}",
        match mode {
            Mode::Backlog => "backlog drained by keryu dispatcher",
            Mode::Flood => "posting and sending at once",
        },
        measured_micros as f64 / 1e6,
        if drained_early {
            ", the backlog ran out first"
        } else {
            ""
        },
        seconds.iter().min().copied().unwrap_or(0),
        busiest_window(&times, 1_000_000),
        busiest(&cpu),
    );
    report::write(
        &bench.global.out,
        "saturation",
        &bench.machine,
        json!({
            "mode": mode,
            "duration_seconds": duration.as_secs(),
            "started_services": owned,
            "callbacks": !bench.global.no_callbacks,
            "db_connections": bench.global.db_connections,
            "dispatcher_concurrency": bench.global.dispatcher_concurrency,
        }),
        json!({
            "sends_per_second": rate,
            "sends": sends,
            "measured_seconds": measured_micros as f64 / 1e6,
            "drained_early": drained_early,
            "received_total": times.len(),
            "evicted": listed.evicted,
            "per_second": seconds,
            "busiest_one_second_window": busiest_window(&times, 1_000_000),
            "cpu_cores": cpu,
            "setup": setup,
            "seconds_from_start_to_listing": setup_seconds,
            "targets": { "sends_per_second_at_least": 3000 },
        }),
        &summary,
    )?;
    Ok(())
}

/// Waits until the JetStream stream holds `events` messages; returns how long it took.
async fn wait_for_relay(nats: &str, stream: Option<&str>, events: i64) -> anyhow::Result<Duration> {
    let stream = stream.context("a started deployment has a stream")?;
    let client = async_nats::connect(nats).await?;
    let jetstream = async_nats::jetstream::new(client);
    let started = Instant::now();
    let target = u64::try_from(events).unwrap_or(0);
    let mut last = 0;
    let mut last_growth = Instant::now();
    loop {
        if let Ok(found) = jetstream.get_stream(stream).await
            && let Ok(info) = found.get_info().await
        {
            if info.state.messages >= target {
                return Ok(started.elapsed());
            }
            if info.state.messages != last {
                last = info.state.messages;
                last_growth = Instant::now();
            }
        }
        anyhow::ensure!(
            last_growth.elapsed() < Duration::from_secs(120),
            "the relay stopped at {last} of {target} events"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
