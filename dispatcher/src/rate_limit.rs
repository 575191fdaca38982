//! Per-sender rate limiting shared by every dispatcher process.
//!
//! WhatsApp limits each sender number (80 messages/s by default, 1 in the sandbox), and the
//! limit belongs to the number, not to a process: with N dispatchers, each must take its share
//! of one budget. The budget is one GCRA row per sender in PostgreSQL (`sender_rate_limits`):
//! a send reserves the next free slot with a single `UPSERT … RETURNING` and calls Twilio at
//! that slot ([`Slot::wait`]).
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
///
/// It is waited for on this host's clock, which must be synchronised with the database's
/// (NTP): an offset shifts this process's sends, as a whole, against other processes'. The
/// alternative, counting the distance to the slot from when the answer arrived, would add the
/// answer's own delay to each send — a delay that varies with the process's load, and so
/// bunched sends together under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// When the send may happen.
    pub at: DateTime<Utc>,
    /// When the slot was reserved.
    pub now: DateTime<Utc>,
}

impl Slot {
    /// Sleeps until `lead` before the slot (returns at once when that has passed).
    pub async fn wait(&self, lead: Duration) {
        tokio::time::sleep(time_until(self.at, lead, Utc::now())).await;
    }

    /// Whether the slot passed more than `tolerance` ago.
    fn missed_by_more_than(&self, tolerance: Duration) -> bool {
        chrono::Duration::from_std(tolerance)
            .is_ok_and(|tolerance| Utc::now() > self.at + tolerance)
    }
}

/// How long from `now` until `lead` before `at` (zero when that has passed).
fn time_until(at: DateTime<Utc>, lead: Duration, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or_default().saturating_sub(lead)
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

    /// The slot to send at: `slot` itself, unless it passed more than half an emission
    /// interval ago, in which case a fresh one.
    ///
    /// Slots are one interval apart, so sends made within half an interval of their slots
    /// never put more than M + 1 in any one-second window. A send that fell further behind
    /// (its claim was slow, the process stalled) would go out together with the sends of the
    /// slots after it; it takes a new slot instead and the missed one stays unused. Should the
    /// database fail meanwhile, the missed slot is kept: the attempt is already claimed, and a
    /// send a little late beats one abandoned to its lease.
    pub async fn on_time(&self, sender: &str, slot: Slot) -> Slot {
        let Some(budget) = self.budget else {
            return slot;
        };
        if !slot.missed_by_more_than(Duration::from_secs_f64(budget.emission_interval / 2.0)) {
            return slot;
        }
        metrics::counter!("keryu_rate_limiter_missed_slots_total").increment(1);
        match self.reserve(sender).await {
            Ok(fresh) => fresh.unwrap_or(slot),
            Err(error) => {
                tracing::warn!(%error, "could not take a fresh send slot; sending late");
                slot
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_waited_for_until_the_lead_before_it() {
        let now = Utc::now();
        let at = now + chrono::Duration::seconds(1);
        assert_eq!(
            time_until(at, Duration::from_millis(250), now),
            Duration::from_millis(750)
        );
        assert_eq!(time_until(at, Duration::ZERO, now), Duration::from_secs(1));
        // A slot already passed, or a lead longer than the wait, does not wait at all.
        assert_eq!(
            time_until(at, Duration::ZERO, at + chrono::Duration::milliseconds(1)),
            Duration::ZERO
        );
        assert_eq!(time_until(at, Duration::from_secs(5), now), Duration::ZERO);
    }
}
