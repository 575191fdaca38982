//! Subjects, with the custodians assigned to them.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use keryu_domain::PhoneNumber;
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

/// One subject as the read model knows it, with its custodians.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct SubjectView {
    id: Uuid,
    /// `null` once erased.
    name: Option<String>,
    /// `null` once erased.
    phone: Option<String>,
    /// Free-form, as the integrator gave them; `null` once erased.
    #[schema(value_type = Option<Object>)]
    preferences: Option<serde_json::Value>,
    /// `false` once deactivated (and once erased).
    active: bool,
    /// `true` once the subject's personal data was erased.
    erased: bool,
    /// The custodians looking after the subject.
    custodian_ids: Vec<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Paging of `GET /api/subjects`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListSubjects {
    /// Only active (`true`) or deactivated (`false`) subjects.
    #[serde(default)]
    active: Option<bool>,
    /// Only the subject with this WhatsApp number (E.164). Matched by its keyed fingerprint:
    /// the read model keeps no index of numbers.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    phone: Option<PhoneNumber>,
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

const SUBJECT_SELECT: &str = "SELECT s.id, s.name, s.phone, s.preferences, s.active, s.erased, \
     coalesce(array_agg(c.custodian_id) FILTER (WHERE c.custodian_id IS NOT NULL), '{}') \
     AS custodian_ids, s.created_at, s.updated_at \
     FROM projection_subjects.subjects s \
     LEFT JOIN projection_subjects.subject_custodians c ON c.subject_id = s.id";

/// Subjects with their custodians, newest first, optionally the one with a given number.
/// Custodians see only their own subjects.
#[utoipa::path(
    get,
    path = "/api/subjects",
    tag = "subjects",
    operation_id = "list_subjects",
    summary = "List subjects (also GET /api/subjects/list/)",
    params(ListSubjects),
    responses((status = 200, description = "A page of subjects", body = Page<SubjectView>)),
)]
pub(super) async fn list_subjects(
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
           AND ($5::text IS NULL OR s.phone_fingerprint = $5) \
         GROUP BY s.id ORDER BY s.created_at DESC, s.id DESC LIMIT $6"
    )))
    .bind(query.active)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(custodian_scope(&caller))
    .bind(
        query
            .phone
            .as_ref()
            .map(|phone| state.phones.fingerprint(phone)),
    )
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(unavailable)?;
    let page = into_page(items, limit, |row| (row.created_at, row.id));
    Ok(with_position(page, position))
}

/// One subject with its custodians.
#[utoipa::path(
    get,
    path = "/api/subjects/{id}",
    tag = "subjects",
    operation_id = "get_subject",
    summary = "A subject",
    params(("id" = Uuid, Path, description = "The subject's id"), Freshness),
    responses((status = 200, description = "The subject", body = SubjectView)),
)]
pub(super) async fn subject(
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
