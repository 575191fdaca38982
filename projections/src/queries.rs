//! The query API over the read models: notifications, subjects, alarms, templates, custodians
//! and dashboard counts, with their freshness. One module per resource; what they share (paging,
//! freshness, scoping) lives here.
//!
//! Every answer carries `Keryu-Projection-Position`, the log position the read model had
//! reached when the query ran; `?min_position=N` (N from a command's `Keryu-Position`) waits up
//! to [`MAX_WAIT`] for the read model to reach N first: read-your-writes for integrators.
//! Custodians see only the subjects assigned to them, and those subjects' notifications and
//! alarms.

mod alarms;
mod directory;
mod notifications;
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
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
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
    verifier: TokenVerifier,
}

impl QueryState {
    /// Queries on `pool`, authenticating with `verifier`.
    pub fn new(pool: PgPool, verifier: TokenVerifier) -> Self {
        QueryState { pool, verifier }
    }
}

impl HasTokenVerifier for QueryState {
    fn token_verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// The query routes, on the seed's paths and REST aliases.
pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/notifications", get(notifications::list_notifications))
        .route(
            "/api/notifications/list/",
            get(notifications::list_notifications),
        )
        .route(
            "/api/notifications/{id}",
            get(notifications::notification_status),
        )
        .route(
            "/api/notifications/{id}/status/",
            get(notifications::notification_status),
        )
        .route("/api/subjects", get(subjects::list_subjects))
        .route("/api/subjects/list/", get(subjects::list_subjects))
        .route("/api/subjects/{id}", get(subjects::subject))
        .route("/api/alarms", get(alarms::list_alarms))
        .route("/api/alarms/list/", get(alarms::list_alarms))
        .route("/api/alarms/{id}", get(alarms::alarm))
        .route("/api/templates", get(directory::list_templates))
        .route("/api/templates/{id}", get(directory::template))
        .route("/api/custodians", get(directory::list_custodians))
        .route("/api/stats", get(notifications::stats))
        .with_state(state)
}

/// `?min_position=N` on single-resource queries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
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
#[derive(Debug, Serialize)]
pub struct Page<T> {
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
