//! Subject commands: register, update, deactivate, erase, assign custodians.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use keryu_domain::custodian::Custodian;
use keryu_domain::subject::{Subject, SubjectCommand};
use keryu_domain::{CustodianId, PhoneNumber, SubjectId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aggregates::{execute, load};
use crate::auth::Caller;
use crate::context::RequestContext;
use crate::json::{IdPath, JsonBody};
use crate::problem::{Problem, ProblemDocument, ProblemKind};
use crate::rbac::{Action, authorize, require_subject_access};
use crate::response::Accepted;
use crate::state::AppState;

/// `POST /api/subjects`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubject {
    name: String,
    phone: PhoneNumber,
    #[serde(default = "empty_object")]
    preferences: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// `PUT /api/subjects/{id}`: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone: Option<PhoneNumber>,
    #[serde(default)]
    preferences: Option<serde_json::Value>,
}

/// `PUT /api/subjects/{id}/custodians`: the complete new set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignCustodians {
    custodian_ids: BTreeSet<Uuid>,
}

/// What a subject command answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectAccepted {
    id: SubjectId,
    active: bool,
    custodian_ids: BTreeSet<CustodianId>,
}

async fn run(
    state: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: SubjectId,
    command: SubjectCommand,
    status: StatusCode,
) -> Result<Accepted<SubjectAccepted>, Problem> {
    let executed = execute::<Subject>(state, id, command, caller, context).await?;
    // Not needed for correctness (a notification decided from a stale entry is refused by the
    // store), but spares the next one that retry, and drops an erased subject's number at once.
    state.subjects().forget(id);
    Ok(Accepted {
        status,
        location: (status == StatusCode::CREATED).then(|| format!("/api/subjects/{id}")),
        body: SubjectAccepted {
            id,
            active: executed.state.active,
            custodian_ids: executed.state.custodians,
        },
        position: executed.position,
    })
}

/// An existing subject the caller may act on.
async fn accessible(state: &AppState, caller: &Caller, id: SubjectId) -> Result<(), Problem> {
    let subject = load::<Subject>(state, id).await?.state;
    if subject.id.is_none() {
        return Err(Problem::new(ProblemKind::NotFound, "no such subject"));
    }
    require_subject_access(caller, &subject)
}

/// Registers a subject.
#[utoipa::path(
    post,
    path = "/api/subjects",
    tag = "subjects",
    summary = "Register a subject (also `POST /api/subjects/create/`)",
    request_body = CreateSubject,
    responses(
        (status = 201, description = "Accepted", body = SubjectAccepted, headers(("Location" = String, description = "The new resource"), ("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<CreateSubject>,
) -> Result<Accepted<SubjectAccepted>, Problem> {
    authorize(&caller, Action::CreateSubject)?;
    let id = SubjectId(Uuid::now_v7());
    let command = SubjectCommand::Register {
        id,
        name: request.name,
        phone: request.phone,
        preferences: request.preferences,
        at: Utc::now(),
    };
    run(&state, &caller, &context, id, command, StatusCode::CREATED).await
}

/// Changes a subject's details.
#[utoipa::path(
    put,
    path = "/api/subjects/{id}",
    tag = "subjects",
    summary = "Change a subject's details (also `PUT /api/subjects/{id}/update/`)",
    params(("id" = Uuid, Path, description = "The resource's id")),
    request_body = UpdateSubject,
    responses(
        (status = 200, description = "Accepted", body = SubjectAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<UpdateSubject>,
) -> Result<Accepted<SubjectAccepted>, Problem> {
    authorize(&caller, Action::UpdateSubject)?;
    let id = SubjectId(id);
    accessible(&state, &caller, id).await?;
    let command = SubjectCommand::Update {
        name: request.name,
        phone: request.phone,
        preferences: request.preferences,
        at: Utc::now(),
    };
    run(&state, &caller, &context, id, command, StatusCode::OK).await
}

/// Deactivates a subject: the log keeps its history, it just receives nothing more.
#[utoipa::path(
    delete,
    path = "/api/subjects/{id}",
    tag = "subjects",
    summary = "Deactivate a subject (also `DELETE /api/subjects/{id}/delete/`)",
    params(("id" = Uuid, Path, description = "The resource's id")),
    responses(
        (status = 200, description = "Accepted", body = SubjectAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
) -> Result<Accepted<SubjectAccepted>, Problem> {
    authorize(&caller, Action::DeactivateSubject)?;
    let command = SubjectCommand::Deactivate { at: Utc::now() };
    run(
        &state,
        &caller,
        &context,
        SubjectId(id),
        command,
        StatusCode::OK,
    )
    .await
}

/// Erases a subject's personal data for good (the right to erasure): records `SubjectErased`,
/// then destroys the subject's data key, so their name, number and preferences and the number
/// and text of every notification about them read back as `null` from the log, the read models
/// and any replay or rebuild. The log itself is untouched and stays verifiable. Repeating the
/// request is harmless (and finishes an erasure whose key destruction failed).
#[utoipa::path(
    post,
    path = "/api/subjects/{id}/erase",
    tag = "subjects",
    summary = "Erase a subject's personal data (admins only; irreversible)",
    params(("id" = Uuid, Path, description = "The resource's id")),
    responses(
        (status = 200, description = "Erased", body = SubjectAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
) -> Result<Accepted<SubjectAccepted>, Problem> {
    authorize(&caller, Action::EraseSubject)?;
    let command = SubjectCommand::Erase { at: Utc::now() };
    let erased = run(
        &state,
        &caller,
        &context,
        SubjectId(id),
        command,
        StatusCode::OK,
    )
    .await?;
    // The event first: should destroying the key fail, a retry finds the subject erased (a
    // no-op) and destroys it then.
    state.store().vault().erase(id).await.map_err(|error| {
        tracing::error!(%error, subject = %id, "the subject's data key could not be destroyed");
        Problem::new(
            ProblemKind::Unavailable,
            "the erasure is recorded but not finished; repeat the request",
        )
    })?;
    Ok(erased)
}

/// Replaces the subject's custodians; every one must exist and be active.
#[utoipa::path(
    put,
    path = "/api/subjects/{id}/custodians",
    tag = "subjects",
    summary = "Replace the subject's custodians",
    params(("id" = Uuid, Path, description = "The resource's id")),
    request_body = AssignCustodians,
    responses(
        (status = 200, description = "Accepted", body = SubjectAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn assign_custodians(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<AssignCustodians>,
) -> Result<Accepted<SubjectAccepted>, Problem> {
    authorize(&caller, Action::AssignCustodians)?;
    // Checked against the custodians' own streams (strongly consistent), not a read model: an
    // assignment to a custodian deactivated a moment ago must fail.
    for custodian in &request.custodian_ids {
        let loaded = load::<Custodian>(&state, custodian).await?.state;
        if !loaded.active {
            return Err(Problem::new(
                ProblemKind::Validation,
                format!("custodian_ids: no active custodian {custodian}"),
            ));
        }
    }
    let command = SubjectCommand::AssignCustodians {
        custodian_ids: request.custodian_ids.into_iter().map(CustodianId).collect(),
        at: Utc::now(),
    };
    run(
        &state,
        &caller,
        &context,
        SubjectId(id),
        command,
        StatusCode::OK,
    )
    .await
}
