//! The directory: templates (latest version and approval state) and custodians.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use keryu_domain::Role;
use keryu_domain::template::TemplateStatus;
use keryu_infra::http::auth::Caller;
use keryu_infra::http::json::{IdPath, QueryParams};
use keryu_infra::http::problem::{Problem, ProblemKind};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    Freshness, Page, QueryState, decode_cursor, into_page, page_limit, unavailable, wait_for,
    with_position,
};

/// One template: its latest version and approval state.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct TemplateView {
    id: Uuid,
    name: String,
    /// The latest version.
    version: i32,
    /// The latest version's review state.
    #[schema(value_type = TemplateStatus)]
    status: String,
    content: String,
    /// Placeholder number to variable name.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    variables: serde_json::Value,
    language: String,
    content_sid: Option<String>,
    /// The version notifications may use, if any.
    approved_version: Option<i32>,
    rejection_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// One custodian, without secrets.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct CustodianView {
    id: Uuid,
    email: String,
    name: String,
    #[schema(value_type = Role)]
    role: String,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Paging of the directory lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Paging {
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

/// Templates with their latest version, newest first.
#[utoipa::path(
    get,
    path = "/api/templates",
    tag = "templates",
    operation_id = "list_templates",
    summary = "List templates",
    params(Paging),
    responses((status = 200, description = "A page of templates", body = Page<TemplateView>)),
)]
pub(super) async fn list_templates(
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

/// One template: its latest version and approval state.
#[utoipa::path(
    get,
    path = "/api/templates/{id}",
    tag = "templates",
    operation_id = "get_template",
    summary = "A template",
    params(("id" = Uuid, Path, description = "The template's id"), Freshness),
    responses((status = 200, description = "The template", body = TemplateView)),
)]
pub(super) async fn template(
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
#[utoipa::path(
    get,
    path = "/api/custodians",
    tag = "custodians",
    operation_id = "list_custodians",
    summary = "List custodians (admins and auditors)",
    params(Paging),
    responses((status = 200, description = "A page of custodians", body = Page<CustodianView>)),
)]
pub(super) async fn list_custodians(
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
