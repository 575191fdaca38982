//! Logs and metrics of a Keryu process.
//!
//! Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported over OTLP, and the W3C
//! trace context travels HTTP request → event metadata → NATS headers → dispatcher → Twilio
//! call ([`continue_trace`], [`current_traceparent`]), so one trace shows a notification's path.
//! Logs go to standard error, human-readable by default or one JSON object per line with
//! `KERYU_LOG_FORMAT=json` (what log shippers want); the filter is `KERYU_LOG`. Metrics are
//! recorded through the `metrics` facade anywhere in the code and rendered in Prometheus' text
//! format by `GET /metrics` ([`crate::http::ops`]); every metric Keryu records is described
//! here, in one list an operator can read.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people at a terminal.
    Pretty,
    /// One JSON object per line, for log pipelines.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "pretty" | "text" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not one of pretty, json")),
        }
    }
}

/// The process's tracing pipeline; [`Telemetry::shutdown`] flushes spans still buffered.
#[must_use = "call shutdown() before exiting, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the process's log subscriber, filtered by `KERYU_LOG` (default `info`, or `debug`
/// with the seed's `DEBUG=true`), and — when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set — exports its spans over OTLP (HTTP, JSON encoding,
/// batched) with `service.name` = `service`.
pub fn init(format: LogFormat, service: &'static str) -> Telemetry {
    let filter = EnvFilter::try_from_env("KERYU_LOG").unwrap_or_else(|_| {
        // The seed's DEBUG switch: more detail when no explicit filter is given.
        let debug = std::env::var("DEBUG")
            .is_ok_and(|value| matches!(value.trim(), "1" | "true" | "True" | "yes"));
        EnvFilter::new(if debug { "debug" } else { "info" })
    });
    let logs = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|endpoint| !endpoint.trim().is_empty())
        .and_then(|_| tracer_provider(service));
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_filter(EnvFilter::new("keryu=info,keryu_infra=info,keryu_command_api=info,keryu_projections=info,keryu_dispatcher=info"))
    });
    tracing_subscriber::registry()
        .with(traces)
        .with(logs.with_filter(filter))
        .init();
    Telemetry { provider }
}

fn tracer_provider(service: &'static str) -> Option<SdkTracerProvider> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .build();
    match exporter {
        Ok(exporter) => Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    Resource::builder()
                        .with_service_name(
                            std::env::var("OTEL_SERVICE_NAME")
                                .unwrap_or_else(|_| service.to_owned()),
                        )
                        .build(),
                )
                .build(),
        ),
        Err(error) => {
            eprintln!("keryu: OpenTelemetry export is disabled: {error}");
            None
        }
    }
}

impl Telemetry {
    /// Sends the spans still buffered; call once, before the process exits.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("keryu: could not flush traces: {error}");
        }
    }
}

/// Makes `span` a child of the W3C `traceparent` it was given (an HTTP header, an event's
/// metadata, a NATS header), so one trace follows a notification across processes.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The W3C `traceparent` of the current span, to store in event metadata and pass on; `None`
/// when no trace is being exported.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// Latency buckets in seconds: from a fast append (sub-millisecond) to a slow Twilio call.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's metrics registry, installed on first use (once per process, so tests that
/// start several servers in one process share it).
pub fn metrics() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .map(PrometheusBuilder::build_recorder);
            let handle = match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!("a metrics recorder was already installed");
                    }
                    handle
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics are disabled");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            describe();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                runtime.spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        every.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            handle
        })
        .clone()
}

/// Every metric Keryu records, with its meaning.
fn describe() {
    describe_counter!(
        "keryu_http_requests_total",
        "HTTP requests by method, route (the command or query) and status"
    );
    describe_histogram!(
        "keryu_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by method and route"
    );
    describe_counter!(
        "keryu_commands_total",
        "Commands by aggregate and outcome (accepted, no_op, refused, contention, stale, error)"
    );
    describe_histogram!(
        "keryu_event_store_append_duration_seconds",
        metrics::Unit::Seconds,
        "Time to append a batch of events, transaction included"
    );
    describe_histogram!(
        "keryu_event_store_group_size",
        "Appends committed together in one transaction (group commit)"
    );
    describe_histogram!(
        "keryu_event_store_read_batch_size",
        "Stream reads answered together by one query"
    );
    describe_counter!(
        "keryu_event_store_groups_looked_up_total",
        "Groups of appends decided again on a lookup because what their appends expect did not \
         hold (a stale caller, a retried append, another process's write) or, writing nothing, \
         could not be checked by a write"
    );
    describe_counter!(
        "keryu_event_store_groups_decided_again_total",
        "Groups of appends decided again under the write lock because another process \
         appended to one of their streams after their lookup (write contention between replicas)"
    );
    describe_counter!(
        "keryu_event_store_conflicts_total",
        "Appends refused because the stream, or one a precondition names, moved (optimistic concurrency)"
    );
    describe_gauge!(
        "keryu_log_head_position",
        "Global position of the last event in the log"
    );
    describe_gauge!(
        "keryu_projection_lag_events",
        "Events in the log a projection or process has not applied yet"
    );
    describe_gauge!(
        "keryu_projection_lag_seconds",
        "Age of the oldest event a projection or process has not applied yet"
    );
    describe_gauge!(
        "keryu_projection_unknown_events",
        "Events a projection skipped because this build does not know them"
    );
    describe_gauge!(
        "keryu_jetstream_pending_messages",
        "Queued-notification messages waiting in the dispatcher's JetStream consumer"
    );
    describe_counter!(
        "keryu_sends_total",
        "Twilio create-message calls by outcome (sent, transient, permanent) and error code"
    );
    describe_histogram!(
        "keryu_twilio_request_duration_seconds",
        metrics::Unit::Seconds,
        "Latency of Twilio create-message calls"
    );
    describe_histogram!(
        "keryu_rate_limiter_wait_seconds",
        metrics::Unit::Seconds,
        "Time a send waited for its sender's rate-limit slot"
    );
    describe_counter!(
        "keryu_timers_fired_total",
        "Timers fired by kind (scheduled, retry, lease)"
    );
    describe_gauge!("keryu_timers_due", "Timers due now and not yet fired");
}
