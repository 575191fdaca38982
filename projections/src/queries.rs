//! The query API over the read models: notifications, subjects, alarms, templates, custodians
//! and dashboard counts, with their freshness. One module per resource; what they share (paging,
//! freshness, scoping) lives here. Beside them, for auditors, the event log itself
//! ([`events`]): read from the store, not from a read model.
//!
//! Every answer carries `Keryu-Projection-Position`, the log position the read model had
//! reached when the query ran; `?min_position=N` (N from a command's `Keryu-Position`) waits up
//! to [`MAX_WAIT`] for the read model to reach N first: read-your-writes for integrators.
//! Custodians see only the subjects assigned to them, and those subjects' notifications and
//! alarms.

mod alarms;
mod directory;
pub mod events;
mod notifications;
mod openapi;
mod subjects;

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use keryu_domain::Role;
use keryu_infra::http::auth::{Caller, HasTokenVerifier, TokenVerifier};
use keryu_infra::http::problem::{Problem, ProblemKind};
use keryu_infra::personal_data::PhoneLookup;
use keryu_infra::postgres::PgEventStore;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::openapi::OpenApi;
use utoipa::{IntoParams, OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use alarms::{AlarmDetail, AlarmNotificationView, AlarmView, ListAlarms};
pub use directory::{CustodianView, Paging, TemplateView};
pub use notifications::{ListNotifications, NotificationView, Stats};
pub use subjects::{ListSubjects, SubjectView};

/// How fresh an answer is: the last log position its read model had applied.
pub const KERYU_PROJECTION_POSITION: HeaderName =
    HeaderName::from_static("keryu-projection-position");
/// Longest `min_position` wait.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// Largest page.
pub const MAX_LIMIT: u32 = 500;
const DEFAULT_LIMIT: u32 = 50;

/// What the query routes need.
#[derive(Clone)]
pub struct QueryState {
    pool: PgPool,
    store: PgEventStore,
    verifier: TokenVerifier,
    phones: PhoneLookup,
}

impl QueryState {
    /// Queries on the read models beside `store`'s log (one database), and on the log itself,
    /// authenticating with `verifier`. The event log routes read through the store, so they see
    /// events exactly as every other reader of the log does. Lookups by phone number use
    /// `phones`, the fingerprints the subjects projection stored.
    pub fn new(store: PgEventStore, verifier: TokenVerifier, phones: PhoneLookup) -> Self {
        QueryState {
            pool: store.pool().clone(),
            store,
            verifier,
            phones,
        }
    }
}

impl HasTokenVerifier for QueryState {
    fn token_verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// The query routes, each documented by its handler's `#[utoipa::path]`, and the OpenAPI
/// document they make up. The seed's alias paths are added by [`router`] and named in the
/// summaries.
fn documented_routes() -> (Router<QueryState>, OpenApi) {
    let (read_models, mut document) = OpenApiRouter::with_openapi(openapi::QueryDoc::openapi())
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(notifications::notification_status))
        .routes(routes!(notifications::stats))
        .routes(routes!(subjects::list_subjects))
        .routes(routes!(subjects::subject))
        .routes(routes!(alarms::list_alarms))
        .routes(routes!(alarms::alarm))
        .routes(routes!(directory::list_templates))
        .routes(routes!(directory::template))
        .routes(routes!(directory::list_custodians))
        .split_for_parts();
    openapi::apply_conventions(&mut document, openapi::Source::ReadModel);
    let (log, mut log_document) = OpenApiRouter::new()
        .routes(routes!(events::list_events))
        .routes(routes!(events::stream_events))
        .routes(routes!(events::notification_history))
        .split_for_parts();
    openapi::apply_conventions(&mut log_document, openapi::Source::EventLog);
    document.merge(log_document);
    (read_models.merge(log), document)
}

/// The OpenAPI document of the query routes. The command API merges it into the document it
/// serves and keeps under `schemas/`, since both sets of routes are served together.
pub fn openapi() -> OpenApi {
    documented_routes().1
}

/// The query routes, on the REST paths and the seed's aliases.
pub fn router(state: QueryState) -> Router {
    let (documented, _) = documented_routes();
    documented
        .route(
            "/api/notifications/list/",
            get(notifications::list_notifications),
        )
        .route(
            "/api/notifications/{id}/status/",
            get(notifications::notification_status),
        )
        .route("/api/subjects/list/", get(subjects::list_subjects))
        .route("/api/alarms/list/", get(alarms::list_alarms))
        .with_state(state)
}

/// `?min_position=N` on single-resource queries.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    /// Wait (up to 5 s) until the read model has applied this log position, e.g. a command's
    /// `Keryu-Position`.
    #[serde(default)]
    min_position: Option<u64>,
}

/// Only custodians are scoped: to the subjects assigned to them (a subject that is not a
/// custodian id sees nothing).
fn custodian_scope(caller: &Caller) -> Option<Uuid> {
    (caller.role == Role::Custodian)
        .then(|| Uuid::parse_str(&caller.subject).unwrap_or(Uuid::nil()))
}

/// `<created_at in microseconds>_<id>`: the keyset of the last row of a page.
fn cursor_of(created_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{id}", created_at.timestamp_micros())
}

/// A page of any list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// This page's items.
    items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Cuts the `limit + 1` rows a list query fetched into a page, and the cursor of the next page
/// when there is one (the extra row says so).
fn into_page<T>(
    mut items: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            items.last().map(|row| {
                let (created_at, id) = key(row);
                cursor_of(created_at, id)
            })
        })
        .flatten();
    Page { items, next_cursor }
}

fn page_limit(limit: Option<u32>) -> Result<u32, Problem> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::new(
            ProblemKind::Validation,
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ))
    }
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), Problem> {
    cursor
        .split_once('_')
        .and_then(|(micros, id)| {
            let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
            Some((at, Uuid::parse_str(id).ok()?))
        })
        .ok_or_else(|| Problem::new(ProblemKind::Validation, "cursor is not one this API gave"))
}

/// Waits (bounded) until the read model in `schema` has applied `min_position`, and returns the
/// position it has applied.
async fn wait_for(pool: &PgPool, schema: &str, min_position: Option<u64>) -> Result<u64, Problem> {
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    loop {
        let position: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT position FROM {schema}.checkpoint"
        )))
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
        let position = position.unsigned_abs();
        if min_position.is_none_or(|wanted| position >= wanted)
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(position);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn unavailable(error: sqlx::Error) -> Problem {
    tracing::error!(%error, "a read model query failed");
    Problem::new(ProblemKind::Unavailable, "the read models are unavailable")
}

fn with_position(body: impl Serialize, position: u64) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(KERYU_PROJECTION_POSITION, HeaderValue::from(position));
    response
}
