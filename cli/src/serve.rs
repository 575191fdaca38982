//! `keryu serve` / `keryu command-api`: the HTTP command API until SIGTERM or Ctrl-C.

use anyhow::Context;
use keryu_command_api::{AppState, Settings, auth, idempotency, router};
use keryu_infra::config::Config;
use keryu_infra::postgres::PgEventStore;

use crate::migrate;

/// How often a command is decided again after losing a race with a concurrent command.
const COMMAND_ATTEMPTS: u32 = 5;

/// Migrates, then serves until a shutdown signal; in-flight requests are finished first.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let pool = migrate::run(config).await?;
    let (verifier, issuer) = auth::from_config(&config.auth)?;
    let state = AppState::new(
        PgEventStore::new(pool),
        verifier,
        issuer,
        Settings {
            default_max_attempts: config.commands.max_attempts,
            command_attempts: COMMAND_ATTEMPTS,
            body_limit: config.http.body_limit,
        },
    );
    tokio::spawn(sweep_idempotency_keys(state.store().pool().clone()));
    let listener = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .with_context(|| format!("could not listen on {} (KERYU_HTTP_ADDR)", config.http.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "the command API is listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")
}

/// Forgets idempotency records past their retention, hourly. Several instances sweeping at
/// once is harmless (the deletes just overlap).
async fn sweep_idempotency_keys(pool: sqlx::PgPool) {
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match idempotency::sweep_expired(&pool, idempotency::RETENTION).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "forgot expired idempotency keys"),
            Err(error) => tracing::warn!(%error, "could not sweep expired idempotency keys"),
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
