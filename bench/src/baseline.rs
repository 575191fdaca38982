//! The machine's own limit: single-row INSERTs of a 500-byte JSONB document with a bigserial
//! key, one transaction each (autocommit, so one WAL flush each with fsync on), by N clients
//! on N connections, through sqlx like Keryu (prepared statements, no ping per query).

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::deployment::{database_url, drop_database};
use crate::stats::{Latency, LatencySummary};

/// Options of the baseline.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    /// Concurrent clients, each with its own connection [default: 64; quick: 16].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Seconds of inserting [default: 15; quick: 3].
    #[arg(long)]
    pub duration: Option<u64>,
}

/// What the baseline measured.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// Concurrent clients.
    pub concurrency: usize,
    /// Committed inserts per second.
    pub inserts_per_second: f64,
    /// Committed inserts.
    pub inserts: u64,
    /// Failed inserts.
    pub errors: u64,
    /// Seconds measured.
    pub elapsed_seconds: f64,
    /// Latency of one insert (one commit).
    pub latency: LatencySummary,
}

/// A JSON document of about 500 bytes once stored.
fn payload() -> serde_json::Value {
    serde_json::json!({
        "type": "NotificationCreated",
        "notification_id": Uuid::new_v4(),
        "subject_id": Uuid::new_v4(),
        "recipient": "+15550100001",
        "content": { "kind": "free_text", "body": "x".repeat(300) },
        "retry_policy": { "max_attempts": 3 },
        "at": "2026-11-28T12:00:00.000000Z",
    })
}

/// Runs `concurrency` clients inserting for `duration` into a fresh database on the server of
/// `server_url`, dropped afterwards.
///
/// # Errors
/// When the database cannot be created or reached.
pub async fn run(
    server_url: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Baseline> {
    let name = format!(
        "keryu_bench_baseline_{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    let admin = sqlx::PgPool::connect(server_url)
        .await
        .context("cannot connect to --postgres")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let measured = measure(&database_url(server_url, &name)?, concurrency, duration).await;
    drop_database(server_url, &name).await?;
    measured
}

async fn measure(url: &str, concurrency: usize, duration: Duration) -> anyhow::Result<Baseline> {
    let concurrency = concurrency.max(1);
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency).unwrap_or(u32::MAX))
        .min_connections(u32::try_from(concurrency).unwrap_or(u32::MAX))
        // As Keryu's pool: no ping before every insert.
        .test_before_acquire(false)
        .connect(url)
        .await
        .context("cannot connect to the baseline database")?;
    sqlx::query(
        "CREATE TABLE baseline (id bigserial PRIMARY KEY, payload jsonb NOT NULL, \
         recorded_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await?;
    let document = Rc::new(payload());
    // Warm every connection (and its prepared statement) before measuring.
    let warm: Vec<_> = (0..concurrency).map(|_| insert(&pool, &document)).collect();
    futures_util::future::join_all(warm).await;

    let stop = Rc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let pool = pool.clone();
            let stop = stop.clone();
            let document = document.clone();
            async move {
                let mut latency = Latency::new();
                let mut errors = 0u64;
                while !stop.load(Ordering::Relaxed) && started.elapsed() < duration {
                    let sent = Instant::now();
                    match insert(&pool, &document).await {
                        Ok(()) => latency.record(sent.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (latency, errors)
            }
        })
        .collect();
    let mut latency = Latency::new();
    let mut errors = 0;
    for (one, failed) in futures_util::future::join_all(workers).await {
        latency.merge(&one);
        errors += failed;
    }
    let elapsed = started.elapsed();
    pool.close().await;
    Ok(Baseline {
        concurrency,
        inserts_per_second: latency.count() as f64 / elapsed.as_secs_f64(),
        inserts: latency.count(),
        errors,
        elapsed_seconds: elapsed.as_secs_f64(),
        latency: latency.summary(),
    })
}

async fn insert(pool: &sqlx::PgPool, document: &serde_json::Value) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO baseline (payload) VALUES ($1)")
        .bind(document)
        .execute(pool)
        .await
        .map(drop)
}
