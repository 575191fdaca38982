//! The per-sender rate limit: a token bucket per `From`.
//!
//! A bucket holds up to one second's worth of messages (at least one) and refills at the
//! configured rate, so a sender may burst briefly and then sustains exactly `mps`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::state::lock;

/// Token buckets by sender.
#[derive(Debug)]
pub(super) struct SenderLimiter {
    mps: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl SenderLimiter {
    /// A limiter allowing `mps` messages per second per sender (`mps` > 0).
    pub fn new(mps: f64) -> Self {
        SenderLimiter {
            mps,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `sender` at `now`, or says how long until one is available.
    pub fn take(&self, sender: &str, now: Instant) -> Result<(), Duration> {
        let capacity = self.mps.max(1.0);
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry(sender.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.mps).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.mps))
        }
    }

    /// Forgets every bucket.
    pub fn reset(&self) {
        lock(&self.buckets).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_one_second_then_the_rate() {
        let limiter = SenderLimiter::new(2.0);
        let start = Instant::now();
        assert!(limiter.take("a", start).is_ok());
        assert!(limiter.take("a", start).is_ok());
        let wait = limiter.take("a", start).expect_err("the bucket is empty");
        assert_eq!(wait, Duration::from_millis(500));
        // Another sender has its own bucket.
        assert!(limiter.take("b", start).is_ok());
        // Half a second later one token is back.
        let later = start + Duration::from_millis(500);
        assert!(limiter.take("a", later).is_ok());
        assert!(limiter.take("a", later).is_err());
    }

    #[test]
    fn a_rate_below_one_still_allows_one_message() {
        let limiter = SenderLimiter::new(0.5);
        let start = Instant::now();
        assert!(limiter.take("a", start).is_ok());
        assert_eq!(limiter.take("a", start), Err(Duration::from_secs(2)));
    }
}
