//! The query API over the read models: notifications, subjects and dashboard counts, with their
//! freshness.
//!
//! Every answer carries `Keryu-Projection-Position`, the log position the read model had
//! reached when the query ran; `?min_position=N` (N from a command's `Keryu-Position`) waits up
//! to [`MAX_WAIT`] for the read model to reach N first: read-your-writes for integrators.
//! Custodians see only the notifications of subjects assigned to them.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use keryu_domain::Role;
use keryu_domain::notification::NotificationStatus;
use keryu_infra::http::auth::{Caller, HasTokenVerifier, TokenVerifier};
use keryu_infra::http::json::{IdPath, QueryParams};
use keryu_infra::http::problem::{Problem, ProblemKind};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

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
        .route("/api/notifications", get(list_notifications))
        .route("/api/notifications/list/", get(list_notifications))
        .route("/api/notifications/{id}", get(notification_status))
        .route("/api/notifications/{id}/status/", get(notification_status))
        .route("/api/subjects", get(list_subjects))
        .route("/api/subjects/list/", get(list_subjects))
        .route("/api/subjects/{id}", get(subject))
        .route("/api/templates", get(list_templates))
        .route("/api/templates/{id}", get(template))
        .route("/api/custodians", get(list_custodians))
        .route("/api/stats", get(stats))
        .with_state(state)
}

/// Filters and paging of `GET /api/notifications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListNotifications {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    subject_id: Option<Uuid>,
    #[serde(default)]
    alarm_id: Option<Uuid>,
    #[serde(default)]
    created_after: Option<DateTime<Utc>>,
    #[serde(default)]
    created_before: Option<DateTime<Utc>>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    min_position: Option<u64>,
}

/// `?min_position=N` on single-resource queries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    #[serde(default)]
    min_position: Option<u64>,
}

/// One notification as the read model knows it.
#[derive(Debug, Serialize, FromRow)]
pub struct NotificationView {
    id: Uuid,
    subject_id: Uuid,
    alarm_id: Option<Uuid>,
    recipient: String,
    template_id: Option<Uuid>,
    template_version: Option<i32>,
    status: String,
    attempt: i32,
    total_attempts: i32,
    max_attempts: i32,
    last_error_code: Option<i64>,
    last_error_message: Option<String>,
    failure_reason: Option<String>,
    provider_message_id: Option<String>,
    scheduled_for: Option<DateTime<Utc>>,
    not_before: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    queued_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
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

/// Waits (bounded) until the notifications read model has applied `min_position`, and returns
/// the position it has applied.
async fn freshness(pool: &PgPool, min_position: Option<u64>) -> Result<u64, Problem> {
    wait_for(pool, "projection_notifications", min_position).await
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

const NOTIFICATION_COLUMNS: &str = "id, subject_id, alarm_id, recipient, template_id, \
     template_version, status, attempt, total_attempts, max_attempts, last_error_code, \
     last_error_message, failure_reason, provider_message_id, scheduled_for, not_before, \
     created_at, queued_at, sent_at, delivered_at, read_at, failed_at, cancelled_at";

async fn list_notifications(
    State(state): State<QueryState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListNotifications>,
) -> Result<Response, Problem> {
    let limit = page_limit(query.limit)?;
    if let Some(status) = &query.status
        && !NotificationStatus::ALL
            .iter()
            .any(|known| known.as_str() == status)
    {
        return Err(Problem::new(
            ProblemKind::Validation,
            format!("status {status:?} is not a notification status"),
        ));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let position = freshness(&state.pool, query.min_position).await?;
    let items: Vec<NotificationView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM projection_notifications.notifications \
         WHERE ($1::text IS NULL OR status = $1) \
           AND ($2::uuid IS NULL OR subject_id = $2) \
           AND ($3::uuid IS NULL OR alarm_id = $3) \
           AND ($4::timestamptz IS NULL OR created_at > $4) \
           AND ($5::timestamptz IS NULL OR created_at < $5) \
           AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7)) \
           AND ($8::uuid IS NULL OR subject_id IN ( \
                SELECT subject_id FROM projection_subjects.subject_custodians \
                WHERE custodian_id = $8)) \
         ORDER BY created_at DESC, id DESC LIMIT $9"
    )))
    .bind(query.status)
    .bind(query.subject_id)
    .bind(query.alarm_id)
    .bind(query.created_after)
    .bind(query.created_before)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(custodian_scope(&caller))
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(unavailable)?;
    let page = into_page(items, limit, |row| (row.created_at, row.id));
    Ok(with_position(page, position))
}

async fn notification_status(
    State(state): State<QueryState>,
    caller: Caller,
    IdPath(id): IdPath,
    QueryParams(freshness_wanted): QueryParams<Freshness>,
) -> Result<Response, Problem> {
    let position = freshness(&state.pool, freshness_wanted.min_position).await?;
    let view: Option<NotificationView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM projection_notifications.notifications \
         WHERE id = $1 AND ($2::uuid IS NULL OR subject_id IN ( \
                SELECT subject_id FROM projection_subjects.subject_custodians \
                WHERE custodian_id = $2))"
    )))
    .bind(id)
    .bind(custodian_scope(&caller))
    .fetch_optional(&state.pool)
    .await
    .map_err(unavailable)?;
    let view = view.ok_or_else(|| Problem::new(ProblemKind::NotFound, "no such notification"))?;
    Ok(with_position(view, position))
}

/// One subject as the read model knows it, with its custodians.
#[derive(Debug, Serialize, FromRow)]
pub struct SubjectView {
    id: Uuid,
    name: String,
    phone: String,
    preferences: serde_json::Value,
    active: bool,
    custodian_ids: Vec<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Paging of `GET /api/subjects`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSubjects {
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    min_position: Option<u64>,
}

/// Notification counts by status, for dashboards.
#[derive(Debug, Serialize)]
pub struct Stats {
    notifications_by_status: std::collections::BTreeMap<String, i64>,
    notifications_total: i64,
}

const SUBJECT_SELECT: &str = "SELECT s.id, s.name, s.phone, s.preferences, s.active, \
     coalesce(array_agg(c.custodian_id) FILTER (WHERE c.custodian_id IS NOT NULL), '{}') \
     AS custodian_ids, s.created_at, s.updated_at \
     FROM projection_subjects.subjects s \
     LEFT JOIN projection_subjects.subject_custodians c ON c.subject_id = s.id";

async fn list_subjects(
    State(state): State<QueryState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListSubjects>,
) -> Result<Response, Problem> {
    let limit = page_limit(query.limit)?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let position = wait_for(&state.pool, "projection_subjects", query.min_position).await?;
    let items: Vec<SubjectView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SUBJECT_SELECT} \
         WHERE ($1::boolean IS NULL OR s.active = $1) \
           AND ($2::timestamptz IS NULL OR (s.created_at, s.id) < ($2, $3)) \
           AND ($4::uuid IS NULL OR s.id IN ( \
                SELECT subject_id FROM projection_subjects.subject_custodians \
                WHERE custodian_id = $4)) \
         GROUP BY s.id ORDER BY s.created_at DESC, s.id DESC LIMIT $5"
    )))
    .bind(query.active)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(custodian_scope(&caller))
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(unavailable)?;
    let page = into_page(items, limit, |row| (row.created_at, row.id));
    Ok(with_position(page, position))
}

async fn subject(
    State(state): State<QueryState>,
    caller: Caller,
    IdPath(id): IdPath,
    QueryParams(freshness_wanted): QueryParams<Freshness>,
) -> Result<Response, Problem> {
    let position = wait_for(
        &state.pool,
        "projection_subjects",
        freshness_wanted.min_position,
    )
    .await?;
    let view: Option<SubjectView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SUBJECT_SELECT} WHERE s.id = $1 AND ($2::uuid IS NULL OR s.id IN ( \
                SELECT subject_id FROM projection_subjects.subject_custodians \
                WHERE custodian_id = $2)) GROUP BY s.id"
    )))
    .bind(id)
    .bind(custodian_scope(&caller))
    .fetch_optional(&state.pool)
    .await
    .map_err(unavailable)?;
    let view = view.ok_or_else(|| Problem::new(ProblemKind::NotFound, "no such subject"))?;
    Ok(with_position(view, position))
}

/// Counts by status from the read model's counters. Custodians are refused: the counters span
/// every subject.
async fn stats(
    State(state): State<QueryState>,
    caller: Caller,
    QueryParams(freshness_wanted): QueryParams<Freshness>,
) -> Result<Response, Problem> {
    if caller.role == Role::Custodian {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            "statistics span every subject; custodians list their own notifications instead",
        ));
    }
    let position = freshness(&state.pool, freshness_wanted.min_position).await?;
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count FROM projection_notifications.notification_status_counts \
         WHERE count > 0 ORDER BY status",
    )
    .fetch_all(&state.pool)
    .await
    .map_err(unavailable)?;
    let notifications_total = counts.iter().map(|(_, count)| count).sum();
    Ok(with_position(
        Stats {
            notifications_by_status: counts.into_iter().collect(),
            notifications_total,
        },
        position,
    ))
}

/// One template: its latest version and approval state.
#[derive(Debug, Serialize, FromRow)]
pub struct TemplateView {
    id: Uuid,
    name: String,
    version: i32,
    status: String,
    content: String,
    variables: serde_json::Value,
    language: String,
    content_sid: Option<String>,
    approved_version: Option<i32>,
    rejection_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// One custodian, without secrets.
#[derive(Debug, Serialize, FromRow)]
pub struct CustodianView {
    id: Uuid,
    email: String,
    name: String,
    role: String,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Paging of the directory lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    min_position: Option<u64>,
}

const TEMPLATE_COLUMNS: &str = "id, name, version, status, content, variables, language, \
     content_sid, approved_version, rejection_reason, created_at, updated_at";
const CUSTODIAN_COLUMNS: &str = "id, email, name, role, active, created_at, updated_at";

/// Fetches one page of `table` (in the directory read model), newest first, and the cursor
/// of the next page.
async fn directory_page<T>(
    pool: &PgPool,
    table: &str,
    columns: &str,
    paging: &Paging,
    key: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> Result<Page<T>, Problem>
where
    T: for<'r> FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let limit = page_limit(paging.limit)?;
    let after = paging.cursor.as_deref().map(decode_cursor).transpose()?;
    let items: Vec<T> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM projection_directory.{table} \
         WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2)) \
         ORDER BY created_at DESC, id DESC LIMIT $3"
    )))
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    Ok(into_page(items, limit, key))
}

async fn list_templates(
    State(state): State<QueryState>,
    _caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Response, Problem> {
    let position = wait_for(&state.pool, "projection_directory", paging.min_position).await?;
    let page = directory_page(
        &state.pool,
        "templates",
        TEMPLATE_COLUMNS,
        &paging,
        |t: &TemplateView| (t.created_at, t.id),
    )
    .await?;
    Ok(with_position(page, position))
}

async fn template(
    State(state): State<QueryState>,
    _caller: Caller,
    IdPath(id): IdPath,
    QueryParams(freshness_wanted): QueryParams<Freshness>,
) -> Result<Response, Problem> {
    let position = wait_for(
        &state.pool,
        "projection_directory",
        freshness_wanted.min_position,
    )
    .await?;
    let view: Option<TemplateView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TEMPLATE_COLUMNS} FROM projection_directory.templates WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&state.pool)
    .await
    .map_err(unavailable)?;
    let view = view.ok_or_else(|| Problem::new(ProblemKind::NotFound, "no such template"))?;
    Ok(with_position(view, position))
}

/// Custodians are listed to admins and auditors only: who may act in Keryu is their business.
async fn list_custodians(
    State(state): State<QueryState>,
    caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Response, Problem> {
    if !matches!(caller.role, Role::Admin | Role::Auditor) {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            format!("the {} role may not list custodians", caller.role),
        ));
    }
    let position = wait_for(&state.pool, "projection_directory", paging.min_position).await?;
    let page = directory_page(
        &state.pool,
        "custodians",
        CUSTODIAN_COLUMNS,
        &paging,
        |c: &CustodianView| (c.created_at, c.id),
    )
    .await?;
    Ok(with_position(page, position))
}
