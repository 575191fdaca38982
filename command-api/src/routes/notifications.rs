//! Notification commands: create, retry, cancel.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keryu_domain::notification::{Notification, NotificationCommand, NotificationContent};
use keryu_domain::subject::Subject;
use keryu_domain::template::MessageTemplate;
use keryu_domain::{DomainError, NotificationId, PhoneNumber, RetryPolicy, SubjectId, TemplateId};
use keryu_infra::event_store::{ExpectedVersion, Precondition};
use keryu_infra::repository::Executed;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aggregates::{self, execute, load, stream_of};
use crate::auth::Caller;
use crate::context::RequestContext;
use crate::json::{IdPath, JsonBody, OptionalJsonBody};
use crate::problem::{Problem, ProblemDocument, ProblemKind};
use crate::rbac::{Action, authorize, require_custodian_of, require_subject_access};
use crate::response::Accepted;
use crate::state::AppState;
use crate::subject_cache::Recipient;

/// How many times a notification is decided from its subject before the request gives up:
/// the first time from the cache, again after each change of the subject found at the append.
const SUBJECT_ATTEMPTS: u32 = 3;

/// `POST /api/notifications`: a message to a subject, as free text or from an approved template.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotification {
    subject_id: Uuid,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    template: Option<TemplateRef>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    scheduled_for: Option<DateTime<Utc>>,
    #[serde(default)]
    max_attempts: Option<u32>,
}

/// A template named by id or by name (exactly one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    #[serde(default)]
    id: Option<Uuid>,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/notifications/{id}/cancel`, all fields optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelNotification {
    #[serde(default)]
    reason: Option<String>,
}

/// What a notification command answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationAccepted {
    id: NotificationId,
    status: &'static str,
}

fn validation(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::Validation, detail)
}

/// Creates a notification; 202 because delivery happens later.
#[utoipa::path(
    post,
    path = "/api/notifications",
    tag = "notifications",
    summary = "Create a notification (also `POST /api/notifications/create/`)",
    request_body = CreateNotification,
    responses(
        (status = 202, description = "Accepted", body = NotificationAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<CreateNotification>,
) -> Result<Accepted<NotificationAccepted>, Problem> {
    authorize(&caller, Action::CreateNotification)?;
    let now = Utc::now();
    if request.scheduled_for.is_some_and(|at| at <= now) {
        return Err(validation("scheduled_for must be in the future"));
    }
    let max_attempts = request
        .max_attempts
        .unwrap_or(state.settings().default_max_attempts);
    let retry_policy = RetryPolicy::with_max_attempts(max_attempts)?;
    let subject_id = SubjectId(request.subject_id);
    let recipient = notifiable_subject(&state, &caller, subject_id).await?;
    let content = match (request.body, request.template) {
        (Some(body), None) if request.variables.is_empty() => {
            NotificationContent::FreeText { body }
        }
        (Some(_), None) => return Err(validation("variables need a template")),
        (None, Some(template)) => template_content(&state, template, request.variables).await?,
        _ => return Err(validation("give either a body or a template")),
    };
    let id = NotificationId(Uuid::now_v7());
    let command_to = |recipient| NotificationCommand::Create {
        id,
        subject_id,
        recipient,
        content: content.clone(),
        scheduled_for: request.scheduled_for,
        retry_policy,
        alarm_id: None,
        at: now,
    };
    let executed = create_while_unchanged(
        &state, &caller, &context, id, subject_id, recipient, command_to,
    )
    .await?;
    Ok(Accepted {
        status: StatusCode::ACCEPTED,
        location: Some(format!("/api/notifications/{id}")),
        body: NotificationAccepted {
            id,
            status: executed.state.status.as_str(),
        },
        position: executed.position,
    })
}

/// Creates notification `id` with the command `command_to` makes for the subject's number,
/// appended only if the subject's stream is still at the version `recipient` was taken from
/// (possibly this process's cache): a subject changed since (deactivated, erased, another
/// number) is read again and the notification decided anew — never created for what no longer
/// holds — up to [`SUBJECT_ATTEMPTS`] times in all.
async fn create_while_unchanged(
    state: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: NotificationId,
    subject_id: SubjectId,
    mut recipient: Recipient,
    command_to: impl Fn(PhoneNumber) -> NotificationCommand,
) -> Result<Executed<Notification>, Problem> {
    let subject_stream = stream_of::<Subject>(subject_id)?;
    for _ in 0..SUBJECT_ATTEMPTS {
        let unchanged_subject = Precondition {
            stream: subject_stream.clone(),
            expected: ExpectedVersion::Exact(recipient.version),
        };
        let command = command_to(recipient.phone);
        let created = aggregates::create::<Notification>(
            state,
            id,
            command,
            caller,
            context,
            &[unchanged_subject],
        )
        .await?;
        if let Some(executed) = created {
            return Ok(executed);
        }
        tracing::debug!(subject = %subject_id, "the subject changed; deciding again");
        state.subjects().forget(subject_id);
        recipient = notifiable_subject(state, caller, subject_id).await?;
    }
    Err(Problem::new(
        ProblemKind::Conflict,
        "the subject kept changing concurrently; retry the request",
    ))
}

/// An active subject with a phone that the caller may notify: from the cache when it has the
/// subject and would accept, otherwise read from the subject's stream (and cached). A refusal
/// is always decided against the stream, never the cache, so a stale entry can cost a retry
/// but never a wrong refusal. A missing or foreign subject is a validation error of the
/// request, not a missing resource.
async fn notifiable_subject(
    state: &AppState,
    caller: &Caller,
    subject_id: SubjectId,
) -> Result<Recipient, Problem> {
    if let Some(cached) = state.subjects().get(subject_id)
        && require_custodian_of(caller, &cached.custodians).is_ok()
    {
        return Ok(cached);
    }
    let loaded = load::<Subject>(state, subject_id).await?;
    let no_such_subject = || validation("subject_id: no such active subject");
    require_subject_access(caller, &loaded.state).map_err(|_| no_such_subject())?;
    let recipient = Recipient::of(loaded).ok_or_else(no_such_subject)?;
    state.subjects().insert(subject_id, recipient.clone());
    Ok(recipient)
}

/// Renders the approved version of the referenced template with `variables`.
async fn template_content(
    state: &AppState,
    template: TemplateRef,
    variables: BTreeMap<String, String>,
) -> Result<NotificationContent, Problem> {
    let template_id = match (template.id, template.name) {
        (Some(id), None) => TemplateId(id),
        (None, Some(name)) => MessageTemplate::id_for_name(&name),
        _ => return Err(validation("template: give either an id or a name")),
    };
    let template = load::<MessageTemplate>(state, template_id).await?.state;
    template
        .notification_content(variables)
        .map_err(|error| match error {
            DomainError::NotFound { .. } => validation("template: no such approved template"),
            other => validation(format!("variables: {other}")),
        })
}

/// Loads a notification the caller may act on (custodians: of their subjects only).
async fn accessible(state: &AppState, caller: &Caller, id: NotificationId) -> Result<(), Problem> {
    let notification = load::<Notification>(state, id).await?.state;
    let not_found = || Problem::new(ProblemKind::NotFound, "no such notification");
    let created = notification.created.ok_or_else(not_found)?;
    let subject = load::<Subject>(state, created.subject_id).await?.state;
    require_subject_access(caller, &subject).map_err(|_| not_found())
}

/// Retries a failed notification with a fresh round of attempts.
#[utoipa::path(
    post,
    path = "/api/notifications/{id}/retry",
    tag = "notifications",
    summary = "Retry a failed notification with a fresh round of attempts (also `…/retry/`)",
    params(("id" = Uuid, Path, description = "The resource's id")),
    responses(
        (status = 202, description = "Accepted", body = NotificationAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
) -> Result<Accepted<NotificationAccepted>, Problem> {
    authorize(&caller, Action::RetryNotification)?;
    let id = NotificationId(id);
    accessible(&state, &caller, id).await?;
    let command = NotificationCommand::Retry {
        requested_by: caller.subject.clone(),
        at: Utc::now(),
    };
    answer(
        execute::<Notification>(&state, id, command, &caller, &context).await?,
        id,
    )
}

/// Cancels a notification that is still waiting to be sent.
#[utoipa::path(
    post,
    path = "/api/notifications/{id}/cancel",
    tag = "notifications",
    summary = "Cancel a notification that is still waiting to be sent",
    params(("id" = Uuid, Path, description = "The resource's id")),
    request_body = Option<CancelNotification>,
    responses(
        (status = 202, description = "Accepted", body = NotificationAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
    OptionalJsonBody(request): OptionalJsonBody<CancelNotification>,
) -> Result<Accepted<NotificationAccepted>, Problem> {
    authorize(&caller, Action::CancelNotification)?;
    let id = NotificationId(id);
    accessible(&state, &caller, id).await?;
    let command = NotificationCommand::Cancel {
        reason: request
            .reason
            .unwrap_or_else(|| format!("cancelled by {}", caller.subject)),
        at: Utc::now(),
    };
    answer(
        execute::<Notification>(&state, id, command, &caller, &context).await?,
        id,
    )
}

fn answer(
    executed: Executed<Notification>,
    id: NotificationId,
) -> Result<Accepted<NotificationAccepted>, Problem> {
    Ok(Accepted {
        status: StatusCode::ACCEPTED,
        location: None,
        body: NotificationAccepted {
            id,
            status: executed.state.status.as_str(),
        },
        position: executed.position,
    })
}
