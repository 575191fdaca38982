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
//! interval `T` further; `τ = (burst − 1)·T` lets an idle sender send `burst` messages back to
//! back. A 429 from Twilio pushes TAT forward by its `Retry-After`, which slows every
//! dispatcher down at once.
//!
//! The limit is Twilio's, counted when calls *arrive* there, and a call's way there varies:
//! with `T = 1/rate`, M + burst + 1 consecutive slots span only `burst/M` more than a second,
//! 12.5 ms at 80/s with a burst of 1, so one call held up that much longer than the call
//! M + burst slots later puts M + burst + 1 into one second. Slots are therefore planned as M
//! per `1 s + jitter` (`T = (1 s + jitter)/M`, [`SenderRateLimiter::new`]): the
//! sender runs at `M/(1 + jitter)` per second, 1 % under M with 10 ms, and a call may be held
//! up `jitter + burst·T` longer than a later one before Twilio sees more than M + burst in one
//! second.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// How many fresh slots a send that keeps missing its slot takes before it goes late anyway.
const FRESH_SLOTS: usize = 3;

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

impl Budget {
    /// `messages_per_second` per `1 s + jitter`, `burst` back to back; `None` when unlimited.
    fn new(messages_per_second: f64, burst: u32, jitter: Duration) -> Option<Budget> {
        (messages_per_second > 0.0).then(|| {
            let emission_interval = (1.0 + jitter.as_secs_f64()) / messages_per_second;
            Budget {
                emission_interval,
                burst_tolerance: f64::from(burst.max(1) - 1) * emission_interval,
            }
        })
    }
}

impl SenderRateLimiter {
    /// `messages_per_second` per sender (0 = unlimited), allowing `burst` back-to-back sends
    /// after an idle period (at least 1), planned per `1 s + jitter` so that calls whose way to
    /// Twilio differs by up to `jitter` (plus the burst's own slack) still arrive at most
    /// M + burst in any second (see the module's documentation).
    pub fn new(pool: PgPool, messages_per_second: f64, burst: u32, jitter: Duration) -> Self {
        SenderRateLimiter {
            pool,
            budget: Budget::new(messages_per_second, burst, jitter),
        }
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

    /// Waits until the send may leave: at `slot`, unless the wait ends more than half an
    /// emission interval after it, in which case at a fresh slot. Answers the slot it kept.
    ///
    /// A send that fell further behind (its claim was slow, the process stalled, even during
    /// this very wait) would go out together with the sends of the slots after it; it takes a
    /// new slot instead and the missed one stays unused. Lateness is judged when the wait
    /// ends, right before the call, since that is when the call leaves. A send that misses
    /// [`FRESH_SLOTS`] slots in a row, or whose fresh slot the database cannot give, goes late:
    /// the attempt is already claimed, and a send a little late beats one abandoned to its
    /// lease.
    pub async fn wait_to_send(&self, sender: &str, mut slot: Slot) -> Slot {
        let Some(budget) = self.budget else {
            return slot;
        };
        let allowed_lateness = Duration::from_secs_f64(budget.emission_interval / 2.0);
        for _ in 0..FRESH_SLOTS {
            slot.wait(Duration::ZERO).await;
            if !slot.missed_by_more_than(allowed_lateness) {
                return slot;
            }
            metrics::counter!("keryu_rate_limiter_missed_slots_total").increment(1);
            match self.reserve(sender).await {
                Ok(Some(fresh)) => slot = fresh,
                Ok(None) => return slot,
                Err(error) => {
                    tracing::warn!(%error, "could not take a fresh send slot; sending late");
                    return slot;
                }
            }
        }
        slot.wait(Duration::ZERO).await;
        slot
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
