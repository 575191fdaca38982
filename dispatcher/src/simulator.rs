//! A stand-in for Twilio's Messages API, for tests, demos and load runs.
//!
//! It follows Twilio's published API closely enough that the real [`TwilioClient`] works
//! against it unchanged: the same paths, HTTP Basic auth, form fields, validation codes, error
//! bodies, Message resources, and signed status callbacks. What it adds is control: latency,
//! injected faults, a per-sender rate limit, and magic numbers with known outcomes.
//!
//! # Endpoints
//! - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: create (201 + Message resource).
//! - `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`: fetch (404, code 20404, if
//!   unknown or evicted).
//! - `GET /sim/messages[?to=whatsapp:+1…]` (no auth): every accepted message with the time the
//!   simulator received it ([`SimMessage`]), oldest first, for tests and latency benchmarks.
//! - `DELETE /sim/messages` (no auth): forget all messages, rate-limit and fault counters.
//!
//! # A create, step by step
//! 1. Wait [`SimulatorConfig::latency`] (every answer is delayed, errors included).
//! 2. HTTP Basic auth must be the configured Account SID and Auth Token, and the path's
//!    Account SID the same: else `401`, code 20003.
//! 3. Validation like Twilio's, each a `400`: `To` missing 21604; `From` missing 21603;
//!    one address `whatsapp:` and the other not 21910; `To` not E.164 21211, `From` 21212;
//!    none of `Body`, `ContentSid`, `MediaUrl` 21602; `Body` over 1600 characters 21617;
//!    `ContentSid` not `HX` + 32 hex 21655; `ContentVariables` without `ContentSid` 21654, or
//!    not a JSON object of non-empty strings 21656; `StatusCallback` not an absolute http(s)
//!    URL with a host (no `_`, at most 4000 characters) 21609. Messaging Services are not
//!    simulated: `From` is always required.
//! 4. The magic numbers below, whatever the configuration.
//! 5. [`SimulatorConfig::sender_mps`]: a token bucket per `From` (burst of one second's worth);
//!    when empty, `429`, code 20429, with `Retry-After` in whole seconds (at least 1).
//! 6. [`SimulatorConfig::fail_first_per_recipient`], then [`SimulatorConfig::fault_rate`]:
//!    `503`, code **20503** (Twilio's "service unavailable"), transient. Nothing is stored.
//! 7. Accepted: `201`, status `queued`, sid `SM` + 32 hex.
//!
//! # Magic numbers (the part after `whatsapp:`)
//! Synchronous, as Twilio's test credentials (reference §11):
//!
//! | `From` | answer | | `To` | answer |
//! |---|---|---|---|---|
//! | `+15005550001` | 400, 21212 invalid From | | `+15005550001` | 400, 21211 invalid To |
//! | `+15005550007` | 400, 21606 cannot send | | `+15005550002` | 400, 21612 unroutable |
//! | `+15005550008` | 400, 21611 queue full (transient) | | `+15005550003` | 400, 21408 no geo permission |
//! | | | | `+15005550004` | 400, 21610 unsubscribed |
//! | | | | `+15005550009` | 400, 21614 not a mobile number |
//!
//! Asynchronous, the simulator's own (201 `queued`, then the failure by callback and fetch):
//!
//! | `To` | outcome |
//! |---|---|
//! | `+15005550010` | `sent`, then `undelivered` with 30003 (unreachable handset, transient) |
//! | `+15005550011` | outside the 24 h window: a `Body` ends `failed` with 63016; a template is delivered |
//!
//! Every other number is accepted and goes `sent` → `delivered` → `read`.
//!
//! # Status and callbacks
//! A message's status advances one step per [`SimulatorConfig::callback_delay`] after it was
//! accepted (so fetch and `/sim/messages` show it moving even without callbacks). When the
//! create named a `StatusCallback` and [`SimulatorConfig::callbacks`] is on, each step is
//! posted there as Twilio does: form-encoded, signed with `X-Twilio-Signature`
//! ([`keryu_infra::twilio_signature::sign`] over the exact URL and every field), with an
//! `I-Twilio-Idempotency-Token`. No callback for the initial `queued` (as Twilio). A callback
//! that fails (no answer, non-2xx) is retried twice with backoff, then logged and dropped.
//!
//! # Bounds
//! The store keeps the [`SimulatorConfig::max_messages`] most recent messages; older ones are
//! dropped (and no longer fetchable). Handlers never hold a lock across an `.await`.
//!
//! [`TwilioClient`]: crate::twilio::TwilioClient

mod answer;
mod callbacks;
mod limiter;
mod magic;
mod routes;
mod state;
mod store;
mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keryu_infra::config::Secret;

pub use store::{SimMessage, SimMessages};

/// The simulator's fixed, well-known Account SID. Public on purpose: it identifies nothing real.
pub const SIMULATOR_ACCOUNT_SID: &str = "ACc0ffee00000000000000000000000000";
/// The simulator's default Auth Token. **Not a secret**: it is published here so demos and
/// tests can sign and verify callbacks; never reuse it for a real account.
pub const SIMULATOR_AUTH_TOKEN: &str = "keryu-simulator-token-not-secret";

/// How the simulator behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// The only Account SID accepted (Basic-auth user and path).
    pub account_sid: String,
    /// The only Auth Token accepted; it also signs the callbacks.
    pub auth_token: Secret,
    /// Added before every answer, to look like a remote API.
    pub latency: Duration,
    /// The share (0–1) of otherwise valid creates answered `503`, code 20503, at random.
    pub fault_rate: f64,
    /// Deterministic transient faults: the first N creates for each distinct `To` answer
    /// `503`, code 20503. 0 turns it off. The counts are kept per recipient until a reset, so
    /// a load run with this on and millions of distinct recipients grows with them.
    pub fail_first_per_recipient: u32,
    /// Messages per second each `From` may create; above it `429`, code 20429, with
    /// `Retry-After`. `None` is unlimited.
    pub sender_mps: Option<f64>,
    /// Whether to post status callbacks to the `StatusCallback` of each create.
    pub callbacks: bool,
    /// Time between `queued` → `sent` → `delivered` → `read` (and the callbacks).
    pub callback_delay: Duration,
    /// The most messages kept in memory; the oldest are dropped first.
    pub max_messages: usize,
}

impl Default for SimulatorConfig {
    /// A demo that looks like Twilio: 50 ms per call, no faults, Twilio's default WhatsApp
    /// sender throughput (80 MPS), callbacks one second apart, the last 100 000 messages kept.
    fn default() -> Self {
        SimulatorConfig {
            account_sid: SIMULATOR_ACCOUNT_SID.to_owned(),
            auth_token: Secret::new(SIMULATOR_AUTH_TOKEN),
            latency: Duration::from_millis(50),
            fault_rate: 0.0,
            fail_first_per_recipient: 0,
            sender_mps: Some(80.0),
            callbacks: true,
            callback_delay: Duration::from_secs(1),
            max_messages: 100_000,
        }
    }
}

/// A running simulator's state: the messages it accepted and its counters. Cloning shares it,
/// so a test can keep one handle and serve its [`Simulator::router`].
#[derive(Debug, Clone)]
pub struct Simulator {
    state: Arc<state::State>,
}

impl Simulator {
    /// A simulator with no messages yet.
    pub fn new(config: SimulatorConfig) -> Self {
        Simulator {
            state: Arc::new(state::State::new(config)),
        }
    }

    /// The HTTP API, sharing this simulator's state.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Every stored message as `/sim/messages` shows it, oldest first.
    pub fn messages(&self) -> Vec<SimMessage> {
        self.state.snapshot(None).messages
    }

    /// Forgets every message and resets the rate-limit and fault counters.
    pub fn reset(&self) {
        self.state.reset();
    }
}

/// The HTTP API of a fresh simulator.
pub fn router(config: SimulatorConfig) -> axum::Router {
    Simulator::new(config).router()
}

/// Serves a fresh simulator on `listener` until `shutdown` completes.
///
/// # Errors
/// The listener's I/O errors.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SimulatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, account_sid = %config.account_sid, "Twilio simulator listening");
    }
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}
