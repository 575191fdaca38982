//! Alarm commands: raise, acknowledge, resolve.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use keryu_domain::alarm::{Alarm, AlarmCommand, AlarmStatus, Location, Situation};
use keryu_domain::subject::Subject;
use keryu_domain::{AlarmId, SubjectId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aggregates::{execute, load};
use crate::auth::Caller;
use crate::context::RequestContext;
use crate::json::{IdPath, JsonBody, OptionalJsonBody};
use crate::problem::{Problem, ProblemDocument, ProblemKind};
use crate::rbac::{Action, authorize, require_subject_access};
use crate::response::Accepted;
use crate::state::AppState;

/// `POST /api/alarms`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RaiseAlarm {
    subject_id: Uuid,
    situation: Situation,
    description: String,
    #[serde(default)]
    location: Option<Location>,
}

/// `POST /api/alarms/{id}/resolve`, all fields optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveAlarm {
    #[serde(default)]
    note: Option<String>,
}

/// What an alarm command answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmAccepted {
    id: AlarmId,
    status: AlarmStatus,
}

async fn run(
    state: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: AlarmId,
    command: AlarmCommand,
    status: StatusCode,
) -> Result<Accepted<AlarmAccepted>, Problem> {
    let executed = execute::<Alarm>(state, id, command, caller, context).await?;
    Ok(Accepted {
        status,
        location: (status == StatusCode::CREATED).then(|| format!("/api/alarms/{id}")),
        body: AlarmAccepted {
            id,
            status: executed.state.status,
        },
        position: executed.position,
    })
}

/// Raises an alarm for an active subject.
#[utoipa::path(
    post,
    path = "/api/alarms",
    tag = "alarms",
    summary = "Raise an alarm for a subject",
    request_body = RaiseAlarm,
    responses(
        (status = 201, description = "Accepted", body = AlarmAccepted, headers(("Location" = String, description = "The new resource"), ("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn raise(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<RaiseAlarm>,
) -> Result<Accepted<AlarmAccepted>, Problem> {
    authorize(&caller, Action::RaiseAlarm)?;
    let subject_id = SubjectId(request.subject_id);
    let subject = load::<Subject>(&state, subject_id).await?.state;
    if !subject.active || require_subject_access(&caller, &subject).is_err() {
        return Err(Problem::new(
            ProblemKind::Validation,
            "subject_id: no such active subject",
        ));
    }
    let id = AlarmId(Uuid::now_v7());
    let command = AlarmCommand::Raise {
        id,
        subject_id,
        situation: request.situation,
        description: request.description,
        location: request.location,
        raised_by: caller.subject.clone(),
        at: Utc::now(),
    };
    run(&state, &caller, &context, id, command, StatusCode::CREATED).await
}

/// An existing alarm whose subject the caller may act on.
async fn accessible_alarm(state: &AppState, caller: &Caller, id: AlarmId) -> Result<(), Problem> {
    let alarm = load::<Alarm>(state, id).await?.state;
    let not_found = || Problem::new(ProblemKind::NotFound, "no such alarm");
    let subject_id = alarm.subject_id.ok_or_else(not_found)?;
    let subject = load::<Subject>(state, subject_id).await?.state;
    require_subject_access(caller, &subject).map_err(|_| not_found())
}

/// Says someone is on it.
#[utoipa::path(
    post,
    path = "/api/alarms/{id}/acknowledge",
    tag = "alarms",
    summary = "Say someone is on it",
    params(("id" = Uuid, Path, description = "The resource's id")),
    responses(
        (status = 200, description = "Accepted", body = AlarmAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
) -> Result<Accepted<AlarmAccepted>, Problem> {
    authorize(&caller, Action::HandleAlarm)?;
    let id = AlarmId(id);
    accessible_alarm(&state, &caller, id).await?;
    let command = AlarmCommand::Acknowledge {
        by: caller.subject.clone(),
        at: Utc::now(),
    };
    run(&state, &caller, &context, id, command, StatusCode::OK).await
}

/// Closes the alarm.
#[utoipa::path(
    post,
    path = "/api/alarms/{id}/resolve",
    tag = "alarms",
    summary = "Close the alarm",
    params(("id" = Uuid, Path, description = "The resource's id")),
    request_body = Option<ResolveAlarm>,
    responses(
        (status = 200, description = "Accepted", body = AlarmAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
    OptionalJsonBody(request): OptionalJsonBody<ResolveAlarm>,
) -> Result<Accepted<AlarmAccepted>, Problem> {
    authorize(&caller, Action::HandleAlarm)?;
    let id = AlarmId(id);
    accessible_alarm(&state, &caller, id).await?;
    let command = AlarmCommand::Resolve {
        by: caller.subject.clone(),
        note: request.note,
        at: Utc::now(),
    };
    run(&state, &caller, &context, id, command, StatusCode::OK).await
}
