//! Notifications: the list with its filters, one notification's status, and the counts by
//! status for dashboards.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use keryu_domain::Role;
use keryu_domain::notification::{FailureReason, NotificationStatus};
use keryu_infra::http::auth::Caller;
use keryu_infra::http::json::{IdPath, QueryParams};
use keryu_infra::http::problem::{Problem, ProblemKind};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    Freshness, Page, QueryState, custodian_scope, decode_cursor, into_page, page_limit,
    unavailable, wait_for, with_position,
};

/// Filters and paging of `GET /api/notifications`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListNotifications {
    /// Only notifications in this status.
    #[serde(default)]
    #[param(value_type = Option<NotificationStatus>)]
    status: Option<String>,
    /// Only notifications about this subject.
    #[serde(default)]
    subject_id: Option<Uuid>,
    /// Only notifications this alarm caused.
    #[serde(default)]
    alarm_id: Option<Uuid>,
    /// Only notifications created after this time.
    #[serde(default)]
    created_after: Option<DateTime<Utc>>,
    /// Only notifications created before this time.
    #[serde(default)]
    created_before: Option<DateTime<Utc>>,
    /// Page size, 1 to 500 (default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    #[serde(default)]
    cursor: Option<String>,
    /// Wait (up to 5 s) until the read model has applied this log position.
    #[serde(default)]
    min_position: Option<u64>,
}

/// One notification as the read model knows it.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct NotificationView {
    id: Uuid,
    subject_id: Uuid,
    alarm_id: Option<Uuid>,
    /// `null` once the subject was erased.
    recipient: Option<String>,
    template_id: Option<Uuid>,
    template_version: Option<i32>,
    #[schema(value_type = NotificationStatus)]
    status: String,
    attempt: i32,
    total_attempts: i32,
    max_attempts: i32,
    last_error_code: Option<i64>,
    last_error_message: Option<String>,
    #[schema(value_type = Option<FailureReason>)]
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

/// Notification counts by status, for dashboards.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// Statuses with at least one notification, and how many.
    notifications_by_status: std::collections::BTreeMap<String, i64>,
    /// Every notification.
    notifications_total: i64,
}

/// Waits (bounded) until the notifications read model has applied `min_position`, and returns
/// the position it has applied.
async fn freshness(pool: &PgPool, min_position: Option<u64>) -> Result<u64, Problem> {
    wait_for(pool, "projection_notifications", min_position).await
}

const NOTIFICATION_COLUMNS: &str = "id, subject_id, alarm_id, recipient, template_id, \
     template_version, status, attempt, total_attempts, max_attempts, last_error_code, \
     last_error_message, failure_reason, provider_message_id, scheduled_for, not_before, \
     created_at, queued_at, sent_at, delivered_at, read_at, failed_at, cancelled_at";

/// Notifications, newest first, filtered and paged by a keyset cursor. Custodians see only
/// their subjects' notifications.
#[utoipa::path(
    get,
    path = "/api/notifications",
    tag = "notifications",
    operation_id = "list_notifications",
    summary = "List notifications (also GET /api/notifications/list/)",
    params(ListNotifications),
    responses((status = 200, description = "A page of notifications", body = Page<NotificationView>)),
)]
pub(super) async fn list_notifications(
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

/// One notification's status, attempts and timestamps.
#[utoipa::path(
    get,
    path = "/api/notifications/{id}",
    tag = "notifications",
    operation_id = "get_notification",
    summary = "A notification's status (also GET /api/notifications/{id}/status/)",
    params(("id" = Uuid, Path, description = "The notification's id"), Freshness),
    responses((status = 200, description = "The notification", body = NotificationView)),
)]
pub(super) async fn notification_status(
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

/// Counts by status from the read model's counters. Custodians are refused: the counters span
/// every subject.
#[utoipa::path(
    get,
    path = "/api/stats",
    tag = "stats",
    operation_id = "get_stats",
    summary = "Notification counts by status (not for custodians)",
    params(Freshness),
    responses((status = 200, description = "The counts", body = Stats)),
)]
pub(super) async fn stats(
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
