//! Alarms, with the notifications they caused and their delivery state.
//!
//! Everything an alarm answer contains comes from the alarms read model alone (see
//! [`crate::alarms`]), so its `Keryu-Projection-Position` covers the notifications too.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use keryu_domain::alarm::{AlarmStatus, Location, Situation};
use keryu_domain::notification::NotificationStatus;
use keryu_infra::http::auth::Caller;
use keryu_infra::http::json::{IdPath, QueryParams};
use keryu_infra::http::problem::{Problem, ProblemKind};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    Freshness, Page, QueryState, custodian_scope, decode_cursor, into_page, page_limit,
    unavailable, wait_for, with_position,
};
use crate::alarms::alarm_status;

const SCHEMA: &str = "projection_alarms";

/// Filters and paging of `GET /api/alarms`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListAlarms {
    /// Only alarms in this status.
    #[serde(default)]
    status: Option<AlarmStatus>,
    /// Only alarms about this subject.
    #[serde(default)]
    subject_id: Option<Uuid>,
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

/// One alarm as the read model knows it, with its notifications counted by delivery state.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct AlarmView {
    id: Uuid,
    /// The subject concerned.
    subject_id: Uuid,
    #[schema(value_type = Situation)]
    situation: String,
    /// In the raiser's words.
    description: String,
    /// Last known location, if the raiser gave one.
    #[sqlx(json(nullable))]
    location: Option<Location>,
    #[schema(value_type = AlarmStatus)]
    status: String,
    /// Who raised it (the token's subject).
    raised_by: String,
    raised_at: DateTime<Utc>,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<DateTime<Utc>>,
    resolved_by: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
    /// How it ended, in the resolver's words.
    resolution_note: Option<String>,
    /// When the alarm last changed.
    updated_at: DateTime<Utc>,
    /// The notifications the alarm caused, counted by delivery status (statuses with none are
    /// left out).
    #[sqlx(json)]
    notifications_by_status: BTreeMap<String, i64>,
    /// Every notification the alarm caused.
    notifications_total: i64,
}

/// One alarm and every notification it caused.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmDetail {
    #[serde(flatten)]
    alarm: AlarmView,
    /// Oldest first.
    notifications: Vec<AlarmNotificationView>,
}

/// A notification an alarm caused, and how far its delivery got.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct AlarmNotificationView {
    /// The notification's id (its full record: `GET /api/notifications/{id}`).
    id: Uuid,
    /// The phone number it goes to, in full as on `GET /api/notifications/{id}`; `null` once
    /// the alarm's subject was erased.
    recipient: Option<String>,
    #[schema(value_type = NotificationStatus)]
    status: String,
    /// Attempts started in the current round (a manual retry starts a new round).
    attempt: i32,
    /// Attempts started over the notification's whole life.
    total_attempts: i32,
    max_attempts: i32,
    /// The most recent error.
    last_error_message: Option<String>,
    created_at: DateTime<Utc>,
    queued_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    /// When its delivery state last changed.
    updated_at: DateTime<Utc>,
}

/// The alarm columns and, per alarm, its notifications counted by status. The lateral
/// aggregate always yields one row, so alarms without notifications count `{}` and 0.
const ALARM_SELECT: &str = "SELECT a.id, a.subject_id, a.situation, a.description, a.location, \
     a.status, a.raised_by, a.raised_at, a.acknowledged_by, a.acknowledged_at, a.resolved_by, \
     a.resolved_at, a.resolution_note, a.updated_at, \
     coalesce(c.by_status, '{}'::jsonb) AS notifications_by_status, \
     coalesce(c.total, 0)::bigint AS notifications_total \
     FROM projection_alarms.alarms a \
     CROSS JOIN LATERAL ( \
         SELECT jsonb_object_agg(status, count) AS by_status, sum(count) AS total \
         FROM (SELECT status, count(*) AS count FROM projection_alarms.alarm_notifications \
               WHERE alarm_id = a.id GROUP BY status) counts) c";

/// Only custodians are scoped, to alarms of the subjects assigned to them (`$n` is the
/// custodian's id, or null for everyone else).
fn scoped(parameter: u8) -> String {
    format!(
        "(${parameter}::uuid IS NULL OR a.subject_id IN ( \
             SELECT subject_id FROM projection_subjects.subject_custodians \
             WHERE custodian_id = ${parameter}))"
    )
}

/// Alarms, newest raised first, each with its notifications counted by delivery status.
/// Custodians see only alarms of their subjects.
#[utoipa::path(
    get,
    path = "/api/alarms",
    tag = "alarms",
    operation_id = "list_alarms",
    summary = "List alarms (also GET /api/alarms/list/)",
    params(ListAlarms),
    responses((status = 200, description = "A page of alarms", body = Page<AlarmView>)),
)]
pub(super) async fn list_alarms(
    State(state): State<QueryState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListAlarms>,
) -> Result<Response, Problem> {
    let limit = page_limit(query.limit)?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let position = wait_for(&state.pool, SCHEMA, query.min_position).await?;
    let items: Vec<AlarmView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ALARM_SELECT} \
         WHERE ($1::text IS NULL OR a.status = $1) \
           AND ($2::uuid IS NULL OR a.subject_id = $2) \
           AND ($3::timestamptz IS NULL OR (a.raised_at, a.id) < ($3, $4)) \
           AND {scope} \
         ORDER BY a.raised_at DESC, a.id DESC LIMIT $6",
        scope = scoped(5)
    )))
    .bind(query.status.map(alarm_status))
    .bind(query.subject_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(custodian_scope(&caller))
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(unavailable)?;
    let page = into_page(items, limit, |row| (row.raised_at, row.id));
    Ok(with_position(page, position))
}

/// One alarm with every notification it caused and their delivery state.
#[utoipa::path(
    get,
    path = "/api/alarms/{id}",
    tag = "alarms",
    operation_id = "get_alarm",
    summary = "An alarm and the notifications it caused",
    params(("id" = Uuid, Path, description = "The alarm's id"), Freshness),
    responses((status = 200, description = "The alarm", body = AlarmDetail)),
)]
pub(super) async fn alarm(
    State(state): State<QueryState>,
    caller: Caller,
    IdPath(id): IdPath,
    QueryParams(freshness_wanted): QueryParams<Freshness>,
) -> Result<Response, Problem> {
    let position = wait_for(&state.pool, SCHEMA, freshness_wanted.min_position).await?;
    // One snapshot for both statements: the counts always agree with the notifications listed,
    // even while the projector commits in between.
    let mut snapshot = state
        .pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(unavailable)?;
    let alarm: Option<AlarmView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ALARM_SELECT} WHERE a.id = $1 AND {scope}",
        scope = scoped(2)
    )))
    .bind(id)
    .bind(custodian_scope(&caller))
    .fetch_optional(&mut *snapshot)
    .await
    .map_err(unavailable)?;
    let alarm = alarm.ok_or_else(|| Problem::new(ProblemKind::NotFound, "no such alarm"))?;
    let notifications: Vec<AlarmNotificationView> = sqlx::query_as(
        "SELECT id, recipient, status, attempt, total_attempts, max_attempts, \
         last_error_message, created_at, queued_at, sent_at, delivered_at, read_at, failed_at, \
         cancelled_at, updated_at FROM projection_alarms.alarm_notifications \
         WHERE alarm_id = $1 ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(&mut *snapshot)
    .await
    .map_err(unavailable)?;
    snapshot.commit().await.map_err(unavailable)?;
    Ok(with_position(
        AlarmDetail {
            alarm,
            notifications,
        },
        position,
    ))
}
