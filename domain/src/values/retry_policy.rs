//! How long to wait before the next delivery attempt.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The retry schedule of one notification, kept as data in its `NotificationCreated` event so
/// that changing the service's defaults never changes the history of notifications already
/// accepted.
///
/// The delay before attempt `n` (n ≥ 2) is `base_delay × multiplier^(n−2)`, capped at
/// `max_delay`, then shortened by a random fraction of at most `jitter`: with many
/// notifications failing at once (a provider outage), their retries spread out instead of
/// hitting the provider in one wave, while no retry ever waits longer than the cap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in one round, the first included (1–10).
    pub max_attempts: u32,
    /// Delay before the second attempt, in milliseconds.
    pub base_delay_ms: u64,
    /// Growth of the delay per further attempt (≥ 1).
    pub multiplier: f64,
    /// Upper bound of any delay, in milliseconds.
    pub max_delay_ms: u64,
    /// Largest fraction of a delay removed at random (0–1).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// Three attempts: after about 1 s, then about 4 s; delays capped at 15 minutes.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 1_000,
            multiplier: 4.0,
            max_delay_ms: 15 * 60 * 1_000,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The default schedule with another number of attempts.
    ///
    /// # Errors
    /// As [`RetryPolicy::validate`].
    pub fn with_max_attempts(max_attempts: u32) -> Result<Self, DomainError> {
        let policy = RetryPolicy {
            max_attempts,
            ..RetryPolicy::default()
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Checks every parameter's range.
    ///
    /// # Errors
    /// [`DomainError::InvalidValue`] naming the first parameter out of range.
    pub fn validate(&self) -> Result<(), DomainError> {
        if !(1..=10).contains(&self.max_attempts) {
            return Err(DomainError::invalid(
                "max_attempts",
                "must be between 1 and 10",
            ));
        }
        if self.base_delay_ms == 0 || self.base_delay_ms > self.max_delay_ms {
            return Err(DomainError::invalid(
                "base_delay_ms",
                "must be positive and at most max_delay_ms",
            ));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(DomainError::invalid("multiplier", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(DomainError::invalid("jitter", "must be between 0 and 1"));
        }
        Ok(())
    }

    /// The delay before `attempt` (2 for the first retry), with `random_unit` in `[0, 1)` drawn
    /// by the caller.
    pub fn delay_before_attempt(&self, attempt: u32, random_unit: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(2)).unwrap_or(i32::MAX);
        #[allow(clippy::cast_precision_loss)] // delays are far below 2^52 ms
        let capped = (self.base_delay_ms as f64 * self.multiplier.powi(exponent))
            .min(self.max_delay_ms as f64);
        let random_unit = if random_unit.is_finite() {
            random_unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = capped * (1.0 - self.jitter * random_unit);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0 ≤ value ≤ cap
        Duration::milliseconds(jittered.round() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let delays: Vec<i64> = (2..=7)
            .map(|attempt| policy.delay_before_attempt(attempt, 0.5).num_milliseconds())
            .collect();
        assert_eq!(delays, [1_000, 4_000, 16_000, 64_000, 256_000, 900_000]);
    }

    #[test]
    fn jitter_only_shortens_within_its_fraction() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay_before_attempt(2, 0.0).num_milliseconds(),
            1_000
        );
        assert_eq!(policy.delay_before_attempt(2, 1.0).num_milliseconds(), 800);
        assert_eq!(policy.delay_before_attempt(2, 0.5).num_milliseconds(), 900);
    }

    #[test]
    fn out_of_range_parameters_are_refused() {
        assert!(RetryPolicy::default().validate().is_ok());
        assert!(RetryPolicy::with_max_attempts(0).is_err());
        assert!(RetryPolicy::with_max_attempts(11).is_err());
        let bad = [
            RetryPolicy {
                multiplier: 0.5,
                ..RetryPolicy::default()
            },
            RetryPolicy {
                jitter: 1.5,
                ..RetryPolicy::default()
            },
            RetryPolicy {
                base_delay_ms: 0,
                ..RetryPolicy::default()
            },
            RetryPolicy {
                base_delay_ms: 10,
                max_delay_ms: 5,
                ..RetryPolicy::default()
            },
        ];
        for policy in bad {
            assert!(policy.validate().is_err(), "{policy:?}");
        }
    }
}
