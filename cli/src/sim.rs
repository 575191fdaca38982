//! `keryu twilio-sim`: Twilio's Messages API, simulated, for tests, demos and load runs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use keryu_dispatcher::simulator::{self, SimulatorConfig};
use keryu_infra::config::Secret;

/// How the simulator behaves.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    addr: SocketAddr,
    /// The account it accepts (HTTP Basic user); Keryu's TWILIO_ACCOUNT_SID must match.
    #[arg(long, env = "TWILIO_ACCOUNT_SID", default_value = simulator::SIMULATOR_ACCOUNT_SID)]
    account_sid: String,
    /// The auth token it accepts and signs callbacks with; Keryu's TWILIO_AUTH_TOKEN must match.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", default_value = simulator::SIMULATOR_AUTH_TOKEN, hide_env_values = true)]
    auth_token: String,
    /// Delay before answering each request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share (0–1) of create requests answered with a transient 503.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// The first N create requests for each recipient are answered with a transient 503.
    #[arg(long, default_value_t = 0)]
    fail_first: u32,
    /// Messages per second per sender before answering 429 (default: unlimited).
    #[arg(long)]
    sender_mps: Option<f64>,
    /// Do not post status callbacks.
    #[arg(long)]
    no_callbacks: bool,
    /// Delay between the status callbacks of one message, in milliseconds.
    #[arg(long, default_value_t = 100)]
    callback_delay_ms: u64,
}

/// Serves the simulator until SIGTERM or Ctrl-C.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.fault_rate),
        "--fault-rate must be between 0 and 1"
    );
    let config = SimulatorConfig {
        account_sid: args.account_sid,
        auth_token: Secret::new(args.auth_token),
        latency: Duration::from_millis(args.latency_ms),
        fault_rate: args.fault_rate,
        fail_first_per_recipient: args.fail_first,
        sender_mps: args.sender_mps,
        callbacks: !args.no_callbacks,
        callback_delay: Duration::from_millis(args.callback_delay_ms),
        ..SimulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("could not listen on {}", args.addr))?;
    tracing::info!(addr = %listener.local_addr()?, account = %config.account_sid, "the Twilio simulator is listening");
    simulator::serve(listener, config, crate::serve::shutdown_signal())
        .await
        .context("the simulator failed")
}
