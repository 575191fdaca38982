//! The operations endpoints every Keryu process serves, whatever its roles:
//! `GET /healthz` (the process is alive), `GET /readyz` (its dependencies answer, with JSON
//! details per check) and `GET /metrics` (Prometheus text), plus the middleware that counts
//! and times every HTTP request by route.
//!
//! Readiness is a list of [`ReadinessCheck`]s chosen by the roles a process runs (the database
//! for all, NATS for the relay and the dispatcher, Twilio for the dispatcher, projection lag
//! for the projector). Some metrics are state rather than events (lag, due timers); a
//! [`GaugeRefresher`] computes them when `/metrics` is scraped, so they cost nothing between
//! scrapes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use tracing::Instrument;

/// A boxed future, so checks of different types live in one list.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long one readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The outcome of one readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    /// Whether the dependency is usable.
    pub ok: bool,
    /// What was found (latency, lag, the error), for the operator reading `/readyz`.
    pub detail: Value,
}

impl CheckOutcome {
    /// A passing check with `detail`.
    pub fn pass(detail: Value) -> Self {
        CheckOutcome { ok: true, detail }
    }

    /// A failing check saying why.
    pub fn fail(reason: impl std::fmt::Display) -> Self {
        CheckOutcome {
            ok: false,
            detail: json!({ "error": reason.to_string() }),
        }
    }
}

/// One dependency a process needs before it can do its work.
pub trait ReadinessCheck: Send + Sync {
    /// The name in `/readyz`'s answer.
    fn name(&self) -> &'static str;
    /// Looks at the dependency now.
    fn check(&self) -> BoxFuture<'_, CheckOutcome>;
}

/// Updates gauges that describe state just before `/metrics` renders them.
pub trait GaugeRefresher: Send + Sync {
    /// Reads the state and sets the gauges; failures are logged, never fatal to a scrape.
    fn refresh(&self) -> BoxFuture<'_, ()>;
}

/// PostgreSQL answers a trivial query.
pub struct DatabaseCheck(pub PgPool);

impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin(async move {
            let started = Instant::now();
            match sqlx::query("SELECT 1").execute(&self.0).await {
                Ok(_) => CheckOutcome::pass(
                    json!({ "latency_ms": started.elapsed().as_secs_f64() * 1000.0 }),
                ),
                Err(error) => CheckOutcome::fail(error),
            }
        })
    }
}

/// The NATS connection is up.
pub struct NatsCheck(pub async_nats::Client);

impl ReadinessCheck for NatsCheck {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin(async move {
            match self.0.connection_state() {
                async_nats::connection::State::Connected => {
                    CheckOutcome::pass(json!({ "state": "connected" }))
                }
                other => CheckOutcome::fail(format!("NATS connection is {other:?}")),
            }
        })
    }
}

/// What the operations routes serve; built once per process, then shared by the routes.
pub struct Ops {
    checks: Vec<Box<dyn ReadinessCheck>>,
    refreshers: Vec<Box<dyn GaugeRefresher>>,
    metrics: PrometheusHandle,
}

impl Ops {
    /// Operations routes with no checks yet, rendering `metrics`.
    pub fn new(metrics: PrometheusHandle) -> Self {
        Ops {
            checks: Vec::new(),
            refreshers: Vec::new(),
            metrics,
        }
    }

    /// Adds a readiness check.
    #[must_use]
    pub fn with_check(mut self, check: impl ReadinessCheck + 'static) -> Self {
        self.checks.push(Box::new(check));
        self
    }

    /// Adds a scrape-time gauge refresher.
    #[must_use]
    pub fn with_refresher(mut self, refresher: impl GaugeRefresher + 'static) -> Self {
        self.refreshers.push(Box::new(refresher));
        self
    }

    /// `/healthz`, `/readyz` and `/metrics`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(render_metrics))
            .with_state(Arc::new(self))
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    let outcomes = futures_util::future::join_all(ops.checks.iter().map(|check| async move {
        let outcome = tokio::time::timeout(CHECK_TIMEOUT, check.check())
            .await
            .unwrap_or_else(|_| CheckOutcome::fail("timed out"));
        (check.name(), outcome)
    }))
    .await;
    let ready = outcomes.iter().all(|(_, outcome)| outcome.ok);
    let checks: serde_json::Map<String, Value> = outcomes
        .into_iter()
        .map(|(name, outcome)| (name.to_owned(), json!(outcome)))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "not_ready" }, "checks": checks });
    (status, Json(body)).into_response()
}

async fn render_metrics(State(ops): State<Arc<Ops>>) -> Response {
    futures_util::future::join_all(ops.refreshers.iter().map(|refresher| refresher.refresh()))
        .await;
    let mut response = ops.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Middleware counting and timing every request by method, matched route and status, each in
/// a span that continues the caller's W3C trace (`traceparent`).
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!("http.request", http.method = %method, http.route = %route);
    crate::telemetry::continue_trace(
        &span,
        request
            .headers()
            .get("traceparent")
            .and_then(|value| value.to_str().ok()),
    );
    let response = next.run(request).instrument(span).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("keryu_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("keryu_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
