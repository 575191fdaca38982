//! `keryu serve`, `keryu command-api` and `keryu projector`: the long-running roles, until
//! SIGTERM or Ctrl-C.

use anyhow::Context;
use keryu_command_api::{AppState, Settings, auth, idempotency, router};
use keryu_infra::config::Config;
use keryu_infra::postgres::PgEventStore;
use keryu_projections::alarms::AlarmsProjection;
use keryu_projections::directory::DirectoryProjection;
use keryu_projections::notifications::NotificationsProjection;
use keryu_projections::projector::Projector;
use keryu_projections::queries::QueryState;
use keryu_projections::subjects::SubjectsProjection;
use tokio::sync::watch;

use crate::migrate;

/// How often a command is decided again after losing a race with a concurrent command.
const COMMAND_ATTEMPTS: u32 = 5;

/// Which roles one process runs.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    /// The HTTP command API.
    pub command_api: bool,
    /// The projector keeping the read models up to date.
    pub projector: bool,
}

/// Migrates, then runs `roles` until a shutdown signal: in-flight requests and the projection
/// batch under way are finished first.
pub async fn run(config: &Config, roles: Roles) -> anyhow::Result<()> {
    let pool = migrate::run(config).await?;
    let store = PgEventStore::new(pool);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
    };

    // The read models' schemas exist before anything queries them, whichever roles run here.
    let notifications = Projector::new(store.clone(), NotificationsProjection);
    let subjects = Projector::new(store.clone(), SubjectsProjection);
    let directory = Projector::new(store.clone(), DirectoryProjection);
    let alarms = Projector::new(store.clone(), AlarmsProjection);
    notifications
        .prepare()
        .await
        .context("could not prepare the notifications read model")?;
    subjects
        .prepare()
        .await
        .context("could not prepare the subjects read model")?;
    directory
        .prepare()
        .await
        .context("could not prepare the directory read model")?;
    alarms
        .prepare()
        .await
        .context("could not prepare the alarms read model")?;

    let mut projectors = Vec::new();
    if roles.projector {
        let stop = until_stopped();
        projectors.push(tokio::spawn(async move { notifications.run(stop).await }));
        let stop = until_stopped();
        projectors.push(tokio::spawn(async move { subjects.run(stop).await }));
        let stop = until_stopped();
        projectors.push(tokio::spawn(async move { directory.run(stop).await }));
        let stop = until_stopped();
        projectors.push(tokio::spawn(async move { alarms.run(stop).await }));
    }
    if roles.command_api {
        serve_http(config, store, until_stopped()).await?;
    }
    for projector in projectors {
        projector.await.context("a projector failed")?;
    }
    Ok(())
}

async fn serve_http(
    config: &Config,
    store: PgEventStore,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (verifier, issuer) = auth::from_config(&config.auth)?;
    tokio::spawn(sweep_idempotency_keys(store.pool().clone()));
    let queries = QueryState::new(store.pool().clone(), verifier.clone());
    let state = AppState::new(
        store,
        verifier,
        issuer,
        Settings {
            default_max_attempts: config.commands.max_attempts,
            command_attempts: COMMAND_ATTEMPTS,
            body_limit: config.http.body_limit,
        },
    );
    let listener = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .with_context(|| format!("could not listen on {} (KERYU_HTTP_ADDR)", config.http.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "the HTTP API is listening");
    axum::serve(
        listener,
        router(state).merge(keryu_projections::queries::router(queries)),
    )
    .with_graceful_shutdown(stop)
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
    tracing::info!("shutting down: finishing the work in flight");
}
