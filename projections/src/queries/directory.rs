//! The directory: templates (latest version and approval state) and custodians.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use keryu_domain::Role;
use keryu_infra::http::auth::Caller;
use keryu_infra::http::json::{IdPath, QueryParams};
use keryu_infra::http::problem::{Problem, ProblemKind};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::{
    Freshness, Page, QueryState, decode_cursor, into_page, page_limit, unavailable, wait_for,
    with_position,
};

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
