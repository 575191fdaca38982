//! Per-sender rate limiting shared by every dispatcher process.
//!
//! WhatsApp limits each sender number (80 messages/s by default, 1 in the sandbox), and the
//! limit belongs to the number, not to a process: with N dispatchers, each must take its share
//! of one budget. The budget is one GCRA row per sender in PostgreSQL (`sender_rate_limits`):
//! a send reserves the next free slot with a single `UPSERT … RETURNING` and sleeps until it.
//! Because every process reserves from the same row, N dispatchers together never exceed the
//! rate, a busy process simply gets more slots than an idle one, and no coordinator is needed.
//!
//! GCRA in one line: the row holds the *theoretical arrival time* (TAT) — when the budget is
//! next fully spent. A send takes slot `max(TAT, now − τ)` and pushes TAT one emission
//! interval `T = 1/rate` further; `τ = (burst − 1)·T` lets an idle sender send `burst`
//! messages back to back. A 429 from Twilio pushes TAT forward by its `Retry-After`, which
//! slows every dispatcher down at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A reserved send slot, in the database's clock (shared by every dispatcher).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// When the send may happen.
    pub at: DateTime<Utc>,
    /// When the slot was reserved.
    pub now: DateTime<Utc>,
}

/// Reserves send slots per sender number.
#[derive(Debug, Clone)]
pub struct SenderRateLimiter {
    pool: PgPool,
    /// `None` = unlimited.
    budget: Option<Budget>,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Seconds between two sends at the sustained rate (T).
    emission_interval: f64,
    /// Seconds a burst may run ahead of the sustained rate (τ).
    burst_tolerance: f64,
}

impl SenderRateLimiter {
    /// `messages_per_second` per sender (0 = unlimited), allowing `burst` back-to-back sends
    /// after an idle period (at least 1).
    pub fn new(pool: PgPool, messages_per_second: f64, burst: u32) -> Self {
        let budget = (messages_per_second > 0.0).then(|| {
            let emission_interval = 1.0 / messages_per_second;
            Budget {
                emission_interval,
                burst_tolerance: f64::from(burst.max(1) - 1) * emission_interval,
            }
        });
        SenderRateLimiter { pool, budget }
    }

    /// Waits until `sender` may send one more message, and takes that slot.
    ///
    /// # Errors
    /// When the database fails; no slot is taken then.
    pub async fn acquire(&self, sender: &str) -> Result<(), sqlx::Error> {
        if let Some(slot) = self.reserve(sender).await? {
            let wait = (slot.at - slot.now).to_std().unwrap_or_default();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        Ok(())
    }

    /// Takes `sender`'s next send slot without waiting for it; `None` when unlimited.
    ///
    /// # Errors
    /// When the database fails; no slot is taken then.
    pub async fn reserve(&self, sender: &str) -> Result<Option<Slot>, sqlx::Error> {
        let Some(budget) = self.budget else {
            return Ok(None);
        };
        let (at, now) = sqlx::query_as(
            "INSERT INTO sender_rate_limits AS limits (sender, theoretical_arrival) \
             VALUES ($1, clock_timestamp() - make_interval(secs => $3) \
                         + make_interval(secs => $2)) \
             ON CONFLICT (sender) DO UPDATE SET theoretical_arrival = \
                 greatest(limits.theoretical_arrival, \
                          clock_timestamp() - make_interval(secs => $3)) \
                 + make_interval(secs => $2) \
             RETURNING theoretical_arrival - make_interval(secs => $2), clock_timestamp()",
        )
        .bind(sender)
        .bind(budget.emission_interval)
        .bind(budget.burst_tolerance)
        .fetch_one(&self.pool)
        .await?;
        Ok(Some(Slot { at, now }))
    }

    /// Twilio said "too many requests": no dispatcher sends from `sender` for `pause`.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn slow_down(&self, sender: &str, pause: Duration) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO sender_rate_limits AS limits (sender, theoretical_arrival) \
             VALUES ($1, clock_timestamp() + make_interval(secs => $2)) \
             ON CONFLICT (sender) DO UPDATE SET theoretical_arrival = \
                 greatest(limits.theoretical_arrival, \
                          clock_timestamp() + make_interval(secs => $2))",
        )
        .bind(sender)
        .bind(pause.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
