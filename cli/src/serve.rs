//! `keryu serve`, `keryu command-api`, `keryu projector` and `keryu dispatcher`: the
//! long-running roles, until SIGTERM or Ctrl-C.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use axum::Router;
use keryu_command_api::webhooks::StatusWebhook;
use keryu_command_api::{AppState, Settings, auth, idempotency, router};
use keryu_dispatcher::dispatch::{Dispatcher, DispatcherSettings, TwilioCheck};
use keryu_dispatcher::rate_limit::SenderRateLimiter;
use keryu_dispatcher::simulator::{self, SimulatorConfig};
use keryu_dispatcher::twilio::{TwilioClient, TwilioSettings};
use keryu_infra::config::{Config, NatsConfig, Secret, TwilioConfig};
use keryu_infra::http::ops::{DatabaseCheck, NatsCheck, Ops, track_requests};
use keryu_infra::http::protection::protect;
use keryu_infra::nats;
use keryu_infra::postgres::PgEventStore;
use keryu_infra::telemetry;
use keryu_projections::alarm_fanout::AlarmFanOut;
use keryu_projections::alarms::AlarmsProjection;
use keryu_projections::directory::DirectoryProjection;
use keryu_projections::lag::{LagCheck, LagProbe};
use keryu_projections::notifications::NotificationsProjection;
use keryu_projections::projection::Projection;
use keryu_projections::projector::Projector;
use keryu_projections::queries::QueryState;
use keryu_projections::reaction::{Reaction, Reactor};
use keryu_projections::relay::Relay;
use keryu_projections::subjects::SubjectsProjection;
use keryu_projections::timers::{Scheduler, SchedulerSettings, TimersProjection};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::migrate;

/// How often a command is decided again after losing a race with a concurrent command.
const COMMAND_ATTEMPTS: u32 = 5;

/// Which roles one process runs.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    /// The HTTP command and query API, with the Twilio status webhook.
    pub command_api: bool,
    /// The projectors, the outbox relay, the timers and the alarm fan-out.
    pub projector: bool,
    /// The JetStream consumer sending through Twilio.
    pub dispatcher: bool,
}

/// A future resolving when the process is asked to stop; cheap to make many of.
#[derive(Clone)]
struct Stop(watch::Receiver<bool>);

impl Stop {
    fn signalled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.0.clone();
        async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }
    }
}

/// Migrates, then runs `roles` until a shutdown signal: in-flight requests, sends and batches
/// are finished first. Every process serves `/healthz`, `/readyz` and `/metrics` on
/// `KERYU_HTTP_ADDR`; the command-api role adds the API there.
pub async fn run(config: &Config, roles: Roles) -> anyhow::Result<()> {
    let metrics = telemetry::metrics();
    let pool = migrate::run(config).await?;
    let store = PgEventStore::new(pool, config.privacy.master_key()?);
    let (stop_sender, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_sender.send(true);
    });
    let stop = Stop(stopped);
    let twilio = twilio_account(config, roles, &stop).await?;
    let nats = if roles.projector || roles.dispatcher {
        Some(
            nats::connect(&config.nats)
                .await
                .context("could not connect to NATS (NATS_URL)")?,
        )
    } else {
        None
    };

    let lag = LagProbe::new(
        store.pool().clone(),
        PROJECTIONS.to_vec(),
        vec![RELAY, FAN_OUT],
    );
    let mut ops = Ops::new(metrics)
        .with_check(DatabaseCheck(store.pool().clone()))
        .with_refresher(lag.clone());
    if let Some(client) = &nats {
        ops = ops.with_check(NatsCheck(client.clone()));
    }
    if roles.projector {
        ops = ops.with_check(LagCheck {
            probe: lag,
            max_events: config.observability.ready_max_lag_events,
        });
    }

    // The read models' schemas exist before anything queries them, whichever roles run here.
    let mut tasks = JoinSet::new();
    spawn_projector(&mut tasks, &store, NotificationsProjection, roles, &stop).await?;
    let subjects = SubjectsProjection::new(config.privacy.phone_lookup());
    spawn_projector(&mut tasks, &store, subjects, roles, &stop).await?;
    spawn_projector(&mut tasks, &store, DirectoryProjection, roles, &stop).await?;
    spawn_projector(&mut tasks, &store, AlarmsProjection, roles, &stop).await?;
    spawn_projector(&mut tasks, &store, TimersProjection, roles, &stop).await?;
    if let (true, Some(client)) = (roles.projector, &nats) {
        spawn_followers(&mut tasks, config, &store, client.clone(), &stop);
    }
    if let (true, Some(client)) = (roles.dispatcher, &nats) {
        let dispatcher = dispatcher(config, &twilio, &store)?;
        ops = ops.with_check(TwilioCheck(dispatcher.client().clone()));
        tasks.spawn(run_dispatcher(
            dispatcher,
            client.clone(),
            config.nats.clone(),
            config.dispatcher.concurrency,
            stop.clone(),
        ));
    }
    let api = roles
        .command_api
        .then(|| api_router(config, &twilio, store.clone()))
        .transpose()?;
    serve_http(config, ops, api, stop.signalled()).await?;
    while let Some(finished) = tasks.join_next().await {
        finished.context("a role panicked")??;
    }
    Ok(())
}

/// Every read model, by projection name (for lag and readiness).
const PROJECTIONS: [&str; 5] = ["notifications", "subjects", "directory", "alarms", "timers"];
/// The relay's checkpoint name.
const RELAY: &str = "outbox_relay";
/// The alarm fan-out's checkpoint name.
const FAN_OUT: &str = "alarm_fanout";

/// Prepares `projection`'s read model and, for the projector role, keeps it up to date.
async fn spawn_projector<P: Projection>(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    store: &PgEventStore,
    projection: P,
    roles: Roles,
    stop: &Stop,
) -> anyhow::Result<()> {
    let name = projection.name();
    let projector = Projector::new(store.clone(), projection);
    projector
        .prepare()
        .await
        .with_context(|| format!("could not prepare the {name} read model"))?;
    if roles.projector {
        let stop = stop.signalled();
        tasks.spawn(async move {
            projector.run(stop).await;
            Ok(())
        });
    }
    Ok(())
}

/// The log followers with effects outside the read models: the relay (once JetStream
/// answers), the alarm fan-out and the timers' scheduler.
fn spawn_followers(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    config: &Config,
    store: &PgEventStore,
    client: async_nats::Client,
    stop: &Stop,
) {
    let fan_out = AlarmFanOut::new(store.clone(), config.commands.max_attempts);
    spawn_reactor(tasks, store, fan_out, stop);

    let scheduler = Scheduler::new(
        store.clone(),
        SchedulerSettings::new(
            Duration::from_secs(config.dispatcher.lease_seconds),
            config.dispatcher.outcome_unknown_policy,
        ),
    );
    let signalled = stop.signalled();
    tasks.spawn(async move {
        scheduler.run(signalled).await;
        Ok(())
    });

    let jetstream = jetstream::new(client);
    let nats_config = config.nats.clone();
    let store = store.clone();
    let stop = stop.clone();
    tasks.spawn(async move {
        // NATS may be down at start: commands are accepted meanwhile, and the relay catches up.
        let ensured = retry_until_stopped(&stop, "create the JetStream stream", || {
            nats::ensure_stream(&jetstream, &nats_config)
        })
        .await;
        if ensured.is_some() {
            Relay::new(jetstream, &nats_config)
                .following(&store)
                .run(stop.signalled())
                .await;
        }
        Ok(())
    });
}

fn spawn_reactor<R: Reaction>(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    store: &PgEventStore,
    reaction: R,
    stop: &Stop,
) {
    let reactor = Reactor::new(store.clone(), reaction);
    let stop = stop.signalled();
    tasks.spawn(async move {
        reactor.run(stop).await;
        Ok(())
    });
}

/// Calls `attempt` until it succeeds (`Some`) or the process stops (`None`), pausing up to 5 s.
async fn retry_until_stopped<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    stop: &Stop,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    let mut delay = Duration::from_millis(200);
    let stopped = stop.signalled();
    tokio::pin!(stopped);
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(error) => tracing::warn!(%error, ?delay, "could not {what}; retrying"),
        }
        tokio::select! {
            () = &mut stopped => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// The Twilio account this process talks to: the configured one, or — without
/// `TWILIO_ACCOUNT_SID` — the simulator, started in-process when this process dispatches.
async fn twilio_account(
    config: &Config,
    roles: Roles,
    stop: &Stop,
) -> anyhow::Result<TwilioConfig> {
    if config.twilio.account_sid.is_some() {
        return Ok(config.twilio.clone());
    }
    let simulated = SimulatorConfig::default();
    let mut twilio = TwilioConfig {
        account_sid: Some(simulated.account_sid.clone()),
        auth_token: simulated.auth_token.clone(),
        ..config.twilio.clone()
    };
    if roles.dispatcher {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("could not start the in-process Twilio simulator")?;
        let addr = listener.local_addr()?;
        twilio.api_base = format!("http://{addr}");
        tracing::warn!(
            %addr,
            "TWILIO_ACCOUNT_SID is not set: messages go to the in-process Twilio SIMULATOR, \
             nobody receives them"
        );
        tokio::spawn(simulator::serve(listener, simulated, stop.signalled()));
    }
    Ok(twilio)
}

fn dispatcher(
    config: &Config,
    twilio: &TwilioConfig,
    store: &PgEventStore,
) -> anyhow::Result<Dispatcher> {
    let client = TwilioClient::new(TwilioSettings {
        api_base: twilio.api_base.clone(),
        account_sid: twilio.account_sid.clone().unwrap_or_default(),
        auth_token: Secret::new(twilio.auth_token.expose()),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_millis(twilio.request_timeout_ms),
    })
    .context("could not build the Twilio client")?;
    let limiter = SenderRateLimiter::new(
        store.pool().clone(),
        config.dispatcher.sender_mps,
        config.dispatcher.sender_burst,
        Duration::from_millis(config.dispatcher.sender_jitter_ms),
    );
    Ok(Dispatcher::new(
        store.clone(),
        client,
        limiter,
        DispatcherSettings {
            id: config.dispatcher.id.clone(),
            sender: twilio.sender.clone(),
            concurrency: config.dispatcher.concurrency,
            twilio: twilio.clone(),
        },
    ))
}

/// Consumes queued notifications once NATS answers, until stopped.
async fn run_dispatcher(
    dispatcher: Dispatcher,
    client: async_nats::Client,
    nats_config: NatsConfig,
    concurrency: usize,
    stop: Stop,
) -> anyhow::Result<()> {
    let jetstream = jetstream::new(client);
    let Some(consumer) = retry_until_stopped(&stop, "create the dispatcher's consumer", || {
        Dispatcher::consumer(&jetstream, &nats_config, concurrency)
    })
    .await
    else {
        return Ok(());
    };
    tracing::info!(consumer = %nats_config.dispatcher_consumer, "the dispatcher is consuming");
    dispatcher
        .run(consumer, stop.signalled())
        .await
        .map_err(|error| anyhow::anyhow!("the dispatcher failed: {error}"))
}

/// The command and query API with the Twilio status webhook.
fn api_router(
    config: &Config,
    twilio: &TwilioConfig,
    store: PgEventStore,
) -> anyhow::Result<Router> {
    let (verifier, issuer) = auth::from_config(&config.auth)?;
    tokio::spawn(sweep_idempotency_keys(store.pool().clone()));
    let queries = QueryState::new(
        store.clone(),
        verifier.clone(),
        config.privacy.phone_lookup(),
    );
    let webhook = StatusWebhook::new(
        store.clone(),
        twilio.auth_token.clone(),
        twilio.public_base_url.clone(),
        COMMAND_ATTEMPTS,
    );
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
    Ok(router(state)
        .merge(keryu_projections::queries::router(queries))
        .merge(webhook.router()))
}

/// Serves the operations routes, and the API when this process runs it, until `stop`.
async fn serve_http(
    config: &Config,
    ops: Ops,
    api: Option<Router>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut app = ops.router();
    if let Some(api) = api {
        // Probes and scrapes reach the ops routes by pod address: only the API is behind the
        // host check and the rate limits.
        app = app.merge(protect(api, &config.http));
    }
    let app = app
        .layer(axum::middleware::from_fn(track_requests))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .with_context(|| format!("could not listen on {} (KERYU_HTTP_ADDR)", config.http.addr))?;
    tracing::info!(addr = %listener.local_addr()?, "listening for HTTP");
    axum::serve(listener, app)
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

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
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
