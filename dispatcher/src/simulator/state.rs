//! Everything the simulator's handlers share. Each lock guards one small structure and is held
//! for a few map operations, never across an `.await`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::SimulatorConfig;
use super::answer::random_sid;
use super::callbacks::CallbackPoster;
use super::limiter::SenderLimiter;
use super::store::{SimMessages, Store};

/// The simulator's shared state.
#[derive(Debug)]
pub(super) struct State {
    pub config: SimulatorConfig,
    pub store: Mutex<Store>,
    /// `None` when unlimited.
    pub limiter: Option<SenderLimiter>,
    /// Creates seen per `To`, only counted while `fail_first_per_recipient` > 0.
    pub creates_per_recipient: Mutex<HashMap<String, u32>>,
    /// `None` if its HTTP client could not be built (then no callbacks are posted).
    pub callbacks: Option<CallbackPoster>,
    /// This simulator's WhatsApp sender installation, echoed in callbacks.
    pub channel_install_sid: String,
}

impl State {
    pub fn new(config: SimulatorConfig) -> Self {
        let limiter = config
            .sender_mps
            .filter(|mps| mps.is_finite() && *mps > 0.0)
            .map(SenderLimiter::new);
        let callbacks = match CallbackPoster::new() {
            Ok(poster) => Some(poster),
            Err(error) => {
                tracing::error!(%error, "cannot build the HTTP client for status callbacks; none will be posted");
                None
            }
        };
        State {
            store: Mutex::new(Store::new(config.max_messages)),
            limiter,
            creates_per_recipient: Mutex::new(HashMap::new()),
            callbacks,
            channel_install_sid: random_sid("XE"),
            config,
        }
    }

    /// The callback delay, also the pace of the simulated lifecycle.
    pub fn delay(&self) -> Duration {
        self.config.callback_delay
    }

    /// Whether this create is one of the first N for its recipient (and must fail).
    pub fn fails_first(&self, to: &str) -> bool {
        let limit = self.config.fail_first_per_recipient;
        if limit == 0 {
            return false;
        }
        let mut counts = lock(&self.creates_per_recipient);
        let count = counts.entry(to.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        *count <= limit
    }

    /// Whether a random fault hits this create.
    pub fn random_fault(&self) -> bool {
        let rate = self.config.fault_rate;
        // Comparing a draw in [0, 1) also handles 0, 1 and NaN (never) without panicking.
        rate > 0.0 && rand::random::<f64>() < rate
    }

    /// The stored messages (sent to `to`, if given) as `/sim/messages` shows them.
    pub fn snapshot(&self, to: Option<&str>) -> SimMessages {
        let (messages, evicted) = lock(&self.store).list(to);
        let now = Instant::now();
        SimMessages {
            messages: messages
                .iter()
                .map(|message| message.view(self.delay(), now))
                .collect(),
            evicted,
        }
    }

    pub fn reset(&self) {
        lock(&self.store).clear();
        lock(&self.creates_per_recipient).clear();
        if let Some(limiter) = &self.limiter {
            limiter.reset();
        }
    }
}

/// Locks `mutex`, recovering from a panic elsewhere: the guarded maps stay consistent after
/// any single operation, and a simulator must keep answering.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
