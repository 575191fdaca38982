//! Template commands: create, edit, submit, approve, reject.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use keryu_domain::TemplateId;
use keryu_domain::template::{MessageTemplate, TemplateCommand, TemplateContent, TemplateStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::aggregates::execute;
use crate::auth::Caller;
use crate::context::RequestContext;
use crate::json::{IdPath, JsonBody};
use crate::problem::{Problem, ProblemDocument};
use crate::rbac::{Action, authorize};
use crate::response::Accepted;
use crate::state::AppState;

/// `POST /api/templates`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    name: String,
    content: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    language: String,
    #[serde(default)]
    content_sid: Option<String>,
}

/// The editable content of a template (`PUT /api/templates/{id}`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentFields {
    content: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    language: String,
    #[serde(default)]
    content_sid: Option<String>,
}

impl From<ContentFields> for TemplateContent {
    fn from(fields: ContentFields) -> Self {
        TemplateContent {
            content: fields.content,
            variables: fields.variables,
            language: fields.language,
            content_sid: fields.content_sid,
        }
    }
}

/// `POST /api/templates/{id}/reject`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectTemplate {
    reason: String,
}

/// What a template command answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateAccepted {
    id: TemplateId,
    name: String,
    version: u32,
    status: TemplateStatus,
    approved_version: Option<u32>,
}

async fn run(
    state: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: TemplateId,
    command: TemplateCommand,
    status: StatusCode,
) -> Result<Accepted<TemplateAccepted>, Problem> {
    let executed = execute::<MessageTemplate>(state, id, command, caller, context).await?;
    let template = executed.state;
    Ok(Accepted {
        status,
        location: (status == StatusCode::CREATED).then(|| format!("/api/templates/{id}")),
        body: TemplateAccepted {
            id,
            name: template.name,
            version: template.version,
            status: template.status,
            approved_version: template.approved.map(|approved| approved.version),
        },
        position: executed.position,
    })
}

/// Writes a new template as draft version 1.
#[utoipa::path(
    post,
    path = "/api/templates",
    tag = "templates",
    summary = "Write a template as draft version 1",
    request_body = CreateTemplate,
    responses(
        (status = 201, description = "Accepted", body = TemplateAccepted, headers(("Location" = String, description = "The new resource"), ("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<CreateTemplate>,
) -> Result<Accepted<TemplateAccepted>, Problem> {
    authorize(&caller, Action::EditTemplate)?;
    let id = MessageTemplate::id_for_name(&request.name);
    let command = TemplateCommand::Create {
        id,
        name: request.name.trim().to_owned(),
        content: TemplateContent {
            content: request.content,
            variables: request.variables,
            language: request.language,
            content_sid: request.content_sid,
        },
        at: Utc::now(),
    };
    run(&state, &caller, &context, id, command, StatusCode::CREATED).await
}

/// Edits a template (a new version once submitted or approved).
#[utoipa::path(
    put,
    path = "/api/templates/{id}",
    tag = "templates",
    summary = "Edit a template (a new version once submitted or approved)",
    params(("id" = Uuid, Path, description = "The resource's id")),
    request_body = ContentFields,
    responses(
        (status = 200, description = "Accepted", body = TemplateAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<ContentFields>,
) -> Result<Accepted<TemplateAccepted>, Problem> {
    authorize(&caller, Action::EditTemplate)?;
    let command = TemplateCommand::Edit {
        content: request.into(),
        at: Utc::now(),
    };
    run(
        &state,
        &caller,
        &context,
        TemplateId(id),
        command,
        StatusCode::OK,
    )
    .await
}

/// Asks for approval of the latest version.
#[utoipa::path(
    post,
    path = "/api/templates/{id}/submit",
    tag = "templates",
    summary = "Ask for approval of the latest version",
    params(("id" = Uuid, Path, description = "The resource's id")),
    responses(
        (status = 200, description = "Accepted", body = TemplateAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
) -> Result<Accepted<TemplateAccepted>, Problem> {
    authorize(&caller, Action::EditTemplate)?;
    let command = TemplateCommand::Submit { at: Utc::now() };
    run(
        &state,
        &caller,
        &context,
        TemplateId(id),
        command,
        StatusCode::OK,
    )
    .await
}

/// Approves the submitted version (admins).
#[utoipa::path(
    post,
    path = "/api/templates/{id}/approve",
    tag = "templates",
    summary = "Approve the submitted version (admins)",
    params(("id" = Uuid, Path, description = "The resource's id")),
    responses(
        (status = 200, description = "Accepted", body = TemplateAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
) -> Result<Accepted<TemplateAccepted>, Problem> {
    authorize(&caller, Action::ReviewTemplate)?;
    let command = TemplateCommand::Approve {
        by: caller.subject.clone(),
        at: Utc::now(),
    };
    run(
        &state,
        &caller,
        &context,
        TemplateId(id),
        command,
        StatusCode::OK,
    )
    .await
}

/// Rejects the submitted version (admins).
#[utoipa::path(
    post,
    path = "/api/templates/{id}/reject",
    tag = "templates",
    summary = "Reject the submitted version (admins)",
    params(("id" = Uuid, Path, description = "The resource's id")),
    request_body = RejectTemplate,
    responses(
        (status = 200, description = "Accepted", body = TemplateAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<RejectTemplate>,
) -> Result<Accepted<TemplateAccepted>, Problem> {
    authorize(&caller, Action::ReviewTemplate)?;
    let command = TemplateCommand::Reject {
        by: caller.subject.clone(),
        reason: request.reason,
        at: Utc::now(),
    };
    run(
        &state,
        &caller,
        &context,
        TemplateId(id),
        command,
        StatusCode::OK,
    )
    .await
}
