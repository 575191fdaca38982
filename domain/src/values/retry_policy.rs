//! How long to wait before the next delivery attempt.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::error::Violation;

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
    /// The longest delay a policy may ask for: a day covers Meta's daily messaging limits
    /// (Twilio 63018, 63038), and a bound keeps every `at + delay` representable.
    pub const MAX_DELAY_MS: u64 = 24 * 60 * 60 * 1_000;

    /// A validated policy; the only way adapters should build one from outside input.
    ///
    /// # Errors
    /// As [`RetryPolicy::validate`].
    pub fn new(
        max_attempts: u32,
        base_delay_ms: u64,
        multiplier: f64,
        max_delay_ms: u64,
        jitter: f64,
    ) -> Result<Self, DomainError> {
        let policy = RetryPolicy {
            max_attempts,
            base_delay_ms,
            multiplier,
            max_delay_ms,
            jitter,
        };
        policy.validate()?;
        Ok(policy)
    }

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

    /// Checks every parameter's range. The fields are public (the policy is plain data in an
    /// event), so the notification checks its policy again when it is created.
    ///
    /// # Errors
    /// [`DomainError::InvalidValue`] with [`Violation::OutOfRange`], naming the first parameter
    /// out of range.
    pub fn validate(&self) -> Result<(), DomainError> {
        let out_of_range =
            |field, expected| DomainError::invalid(field, Violation::OutOfRange { expected });
        if !(1..=10).contains(&self.max_attempts) {
            return Err(out_of_range("max_attempts", "between 1 and 10"));
        }
        if self.max_delay_ms == 0 || self.max_delay_ms > Self::MAX_DELAY_MS {
            return Err(out_of_range(
                "max_delay_ms",
                "positive and at most a day (86400000)",
            ));
        }
        if self.base_delay_ms == 0 || self.base_delay_ms > self.max_delay_ms {
            return Err(out_of_range(
                "base_delay_ms",
                "positive and at most max_delay_ms",
            ));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(out_of_range("multiplier", "a finite number of at least 1"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(out_of_range("jitter", "between 0 and 1"));
        }
        Ok(())
    }

    /// The delay before `attempt` (2 for the first retry; 1 or less reads as 2), with
    /// `random_unit` in `[0, 1)` drawn by the caller so that the decision stays replayable.
    ///
    /// The exponential delay `base × multiplier^(attempt−2)`, capped at `max_delay`, is then
    /// shortened by `jitter × random_unit` of itself. This is "equal jitter" (AWS's name for
    /// jitter 0.5) generalised to any fraction, chosen over "full jitter" (jitter 1) because:
    /// - the delay never exceeds the exponential value nor `max_delay`, so the cap is a true
    ///   upper bound on how late a retry can be;
    /// - a floor of `(1 − jitter) × delay` remains, so a retry after a rate limit (Twilio
    ///   20429, 63018) never comes back almost at once, as full jitter allows.
    ///
    /// Values of `random_unit` outside `[0, 1]` are clamped (and NaN reads as 0), as are the
    /// parameters of a policy that was never validated, so this never panics; the notification
    /// refuses such values before they get here.
    pub fn delay_before_attempt(&self, attempt: u32, random_unit: f64) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(2)).unwrap_or(i32::MAX);
        #[allow(clippy::cast_precision_loss)] // delays are far below 2^52 ms
        let capped = (self.base_delay_ms as f64 * self.multiplier.powi(exponent))
            .min(self.max_delay_ms as f64)
            .max(0.0);
        let random_unit = if random_unit.is_finite() {
            random_unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = capped * (1.0 - self.jitter.clamp(0.0, 1.0) * random_unit);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0 ≤ value ≤ cap
        Duration::milliseconds(jittered.round() as i64)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
            RetryPolicy {
                max_delay_ms: RetryPolicy::MAX_DELAY_MS + 1,
                ..RetryPolicy::default()
            },
            RetryPolicy {
                multiplier: f64::NAN,
                ..RetryPolicy::default()
            },
        ];
        for policy in bad {
            assert!(policy.validate().is_err(), "{policy:?}");
        }
        assert_eq!(
            RetryPolicy::new(3, 1_000, 2.0, 60_000, -0.1),
            Err(DomainError::invalid(
                "jitter",
                Violation::OutOfRange {
                    expected: "between 0 and 1"
                }
            ))
        );
        assert_eq!(
            RetryPolicy::new(3, 1_000, 4.0, 900_000, 0.2),
            Ok(RetryPolicy::default())
        );
    }

    fn valid_policy() -> impl Strategy<Value = RetryPolicy> {
        (1u32..=10, 1u64..=60_000, 1.0f64..10.0, 0.0f64..=1.0).prop_flat_map(
            |(max_attempts, base_delay_ms, multiplier, jitter)| {
                (base_delay_ms..=RetryPolicy::MAX_DELAY_MS).prop_map(move |max_delay_ms| {
                    RetryPolicy {
                        max_attempts,
                        base_delay_ms,
                        multiplier,
                        max_delay_ms,
                        jitter,
                    }
                })
            },
        )
    }

    proptest! {
        /// Whatever the draw, a delay lies between the jitter's floor and the cap, and without
        /// jitter delays never shrink from one attempt to the next.
        #[test]
        fn delays_stay_between_the_floor_and_the_cap(
            policy in valid_policy(),
            attempt in 0u32..40,
            random_unit in 0.0f64..1.0,
        ) {
            prop_assert!(policy.validate().is_ok());
            let delay = policy.delay_before_attempt(attempt, random_unit).num_milliseconds();
            let undisturbed = policy.delay_before_attempt(attempt, 0.0).num_milliseconds();
            let next = policy.delay_before_attempt(attempt + 1, 0.0).num_milliseconds();
            let max = i64::try_from(policy.max_delay_ms).unwrap_or(i64::MAX);
            prop_assert!(delay <= undisturbed && undisturbed <= max);
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            let floor = (undisturbed as f64 * (1.0 - policy.jitter)).floor() as i64;
            prop_assert!(delay >= floor, "{delay} < {floor}");
            prop_assert!(undisturbed <= next);
        }
    }
}
