//! How far behind the log each follower is: scrape-time gauges for `/metrics` and a readiness
//! check for the projector.
//!
//! Lag is measured in events (head position minus checkpoint) and in seconds (age of the
//! oldest event not yet applied — zero when caught up), for read-model projections (checkpoint
//! in their schema) and for processes (checkpoint in `process_checkpoints`).

use chrono::Utc;
use keryu_infra::http::ops::{BoxFuture, CheckOutcome, GaugeRefresher, ReadinessCheck};
use serde_json::json;
use sqlx::{AssertSqlSafe, PgPool};

use crate::projector::live_schema;

/// One follower's position against the head of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    /// The follower's name.
    pub name: String,
    /// Events not yet applied.
    pub events: i64,
    /// Age of the oldest event not yet applied, in seconds.
    pub seconds: f64,
    /// Events skipped as unknown (projections only).
    pub unknown: i64,
}

/// Reads the lag of the named projections and processes.
#[derive(Debug, Clone)]
pub struct LagProbe {
    pool: PgPool,
    projections: Vec<&'static str>,
    processes: Vec<&'static str>,
}

impl LagProbe {
    /// A probe of `projections` (by projection name) and `processes` (by reaction name).
    pub fn new(pool: PgPool, projections: Vec<&'static str>, processes: Vec<&'static str>) -> Self {
        LagProbe {
            pool,
            projections,
            processes,
        }
    }

    /// The head of the log and every follower's lag.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn read(&self) -> Result<(i64, Vec<Lag>), sqlx::Error> {
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
            .fetch_one(&self.pool)
            .await?;
        let mut lags = Vec::new();
        for name in &self.projections {
            let (position, unknown): (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT position, unknown_events FROM {}.checkpoint",
                live_schema(name)
            )))
            .fetch_one(&self.pool)
            .await?;
            lags.push(self.lag(name, head, position, unknown).await?);
        }
        for name in &self.processes {
            let position: Option<i64> =
                sqlx::query_scalar("SELECT position FROM process_checkpoints WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
            lags.push(self.lag(name, head, position.unwrap_or(0), 0).await?);
        }
        Ok((head, lags))
    }

    async fn lag(
        &self,
        name: &str,
        head: i64,
        position: i64,
        unknown: i64,
    ) -> Result<Lag, sqlx::Error> {
        let oldest: Option<chrono::DateTime<Utc>> = sqlx::query_scalar(
            "SELECT recorded_at FROM events WHERE global_position > $1 \
             ORDER BY global_position LIMIT 1",
        )
        .bind(position)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Lag {
            name: name.to_owned(),
            events: (head - position).max(0),
            seconds: oldest.map_or(0.0, |at| {
                (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
            }),
            unknown,
        })
    }
}

impl GaugeRefresher for LagProbe {
    fn refresh(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (head, lags) = match self.read().await {
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(%error, "could not read the followers' lag");
                    return;
                }
            };
            metrics::gauge!("keryu_log_head_position").set(head as f64);
            for lag in lags {
                let name = lag.name;
                metrics::gauge!("keryu_projection_lag_events", "projection" => name.clone())
                    .set(lag.events as f64);
                metrics::gauge!("keryu_projection_lag_seconds", "projection" => name.clone())
                    .set(lag.seconds);
                metrics::gauge!("keryu_projection_unknown_events", "projection" => name)
                    .set(lag.unknown as f64);
            }
            let due: Result<i64, _> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {}.timers WHERE due_at <= now() AND fired_at IS NULL",
                live_schema("timers")
            )))
            .fetch_one(&self.pool)
            .await;
            if let Ok(due) = due {
                metrics::gauge!("keryu_timers_due").set(due as f64);
            }
        })
    }
}

/// Ready while every follower is within `max_events` of the head of the log.
pub struct LagCheck {
    /// What to measure.
    pub probe: LagProbe,
    /// The most events a follower may be behind and still count as ready.
    pub max_events: i64,
}

impl ReadinessCheck for LagCheck {
    fn name(&self) -> &'static str {
        "projection_lag"
    }

    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin(async move {
            match self.probe.read().await {
                Ok((head, lags)) => {
                    let behind: Vec<&Lag> = lags
                        .iter()
                        .filter(|lag| lag.events > self.max_events)
                        .collect();
                    let detail = json!({
                        "head": head,
                        "max_events": self.max_events,
                        "lag": lags.iter().map(|lag| (lag.name.clone(), json!(lag.events))).collect::<serde_json::Map<_, _>>(),
                    });
                    if behind.is_empty() {
                        CheckOutcome::pass(detail)
                    } else {
                        CheckOutcome { ok: false, detail }
                    }
                }
                Err(error) => CheckOutcome::fail(error),
            }
        })
    }
}
