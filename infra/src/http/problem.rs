//! RFC 9457 problem details: the one shape of every error answer of the HTTP API.
//!
//! Each kind of problem has a stable `type` (a relative URI, `/problems/<slug>`) that clients may
//! branch on, a fixed title and HTTP status; `detail` explains this occurrence. Errors of the
//! layers below are mapped to a problem once, here, and nowhere else.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keryu_domain::DomainError;
use serde::Serialize;

use crate::repository::CommandError;

/// The kinds of problem the API reports. Adding one is fine; renaming a slug breaks clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The body is not JSON, not the expected shape, or has unknown fields.
    MalformedRequest,
    /// Well-formed, but a value breaks a rule (E.164 number, length, range …).
    Validation,
    /// No valid bearer token.
    Unauthenticated,
    /// The token is valid but its role may not do this.
    Forbidden,
    /// The resource does not exist (or is not visible to the caller).
    NotFound,
    /// The endpoint exists but not with this HTTP method.
    MethodNotAllowed,
    /// The command does not apply to the resource's current state.
    InvalidTransition,
    /// The resource kept changing under concurrent commands; retry later.
    Conflict,
    /// An `Idempotency-Key` was reused with a different request.
    IdempotencyKeyReused,
    /// An `Idempotency-Key` is being processed by another request right now.
    IdempotencyKeyInProgress,
    /// The body is larger than the API accepts.
    PayloadTooLarge,
    /// A rate limit was exceeded (429, with `Retry-After`).
    TooManyRequests,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// A dependency (the database) is unavailable; retrying later may succeed.
    Unavailable,
    /// A bug: the request was fine but the server failed.
    Internal,
}

impl ProblemKind {
    /// The stable slug of this kind, the last segment of its `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::MalformedRequest => "malformed-request",
            ProblemKind::Validation => "validation",
            ProblemKind::Unauthenticated => "unauthenticated",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::InvalidTransition => "invalid-transition",
            ProblemKind::Conflict => "conflict",
            ProblemKind::IdempotencyKeyReused => "idempotency-key-reused",
            ProblemKind::IdempotencyKeyInProgress => "idempotency-key-in-progress",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::TooManyRequests => "too-many-requests",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::Unavailable => "unavailable",
            ProblemKind::Internal => "internal",
        }
    }

    /// A short, human-readable summary that never changes between occurrences.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::MalformedRequest => "The request is malformed",
            ProblemKind::Validation => "A value in the request is not valid",
            ProblemKind::Unauthenticated => "Authentication is required",
            ProblemKind::Forbidden => "The caller may not do this",
            ProblemKind::NotFound => "The resource does not exist",
            ProblemKind::MethodNotAllowed => "The endpoint does not take this method",
            ProblemKind::InvalidTransition => "The command does not apply in the current state",
            ProblemKind::Conflict => "The resource changed concurrently",
            ProblemKind::IdempotencyKeyReused => "The idempotency key was used for another request",
            ProblemKind::IdempotencyKeyInProgress => {
                "A request with this idempotency key is running"
            }
            ProblemKind::PayloadTooLarge => "The request body is too large",
            ProblemKind::TooManyRequests => "Too many requests",
            ProblemKind::UnsupportedMediaType => "The request body must be application/json",
            ProblemKind::Unavailable => "The service is temporarily unavailable",
            ProblemKind::Internal => "The server failed",
        }
    }

    /// The HTTP status every occurrence of this kind is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::MalformedRequest => StatusCode::BAD_REQUEST,
            ProblemKind::Validation | ProblemKind::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ProblemKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden => StatusCode::FORBIDDEN,
            ProblemKind::NotFound => StatusCode::NOT_FOUND,
            ProblemKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemKind::InvalidTransition
            | ProblemKind::Conflict
            | ProblemKind::IdempotencyKeyInProgress => StatusCode::CONFLICT,
            ProblemKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ProblemKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One problem occurrence, rendered as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    kind: ProblemKind,
    detail: String,
}

impl Problem {
    /// A problem of `kind`, with `detail` explaining this occurrence to the client. The detail is
    /// shown to callers: it must never contain secrets or another tenant's data.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            detail: detail.into(),
        }
    }

    /// The kind of this problem.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The explanation of this occurrence.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// The JSON body of RFC 9457, as documented in the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemDocument {
    /// Stable identifier of the kind of problem, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Fixed summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let body = ProblemDocument {
            type_uri: format!("/problems/{}", self.kind.slug()),
            title: self.kind.title().to_owned(),
            status: status.as_u16(),
            detail: self.detail,
        };
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<DomainError> for Problem {
    fn from(error: DomainError) -> Self {
        let kind = match &error {
            DomainError::NotFound { .. } => ProblemKind::NotFound,
            DomainError::AlreadyExists { .. } => ProblemKind::Conflict,
            DomainError::InvalidTransition { .. } => ProblemKind::InvalidTransition,
            DomainError::InvalidValue { .. } | DomainError::Render(_) => ProblemKind::Validation,
        };
        Problem::new(kind, error.to_string())
    }
}

impl From<CommandError> for Problem {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Domain(error) => error.into(),
            CommandError::Contention { .. } => Problem::new(
                ProblemKind::Conflict,
                "the resource kept changing concurrently; retry the request",
            ),
            CommandError::PreconditionFailed { .. } => Problem::new(
                ProblemKind::Conflict,
                "what the request depends on changed concurrently; retry the request",
            ),
            CommandError::Store(error) => {
                tracing::error!(error = %error_chain(&error), "the event store failed");
                Problem::new(ProblemKind::Unavailable, "the event store is unavailable")
            }
            error @ (CommandError::Codec(_) | CommandError::Append(_)) => {
                tracing::error!(error = %error_chain(&error), "a command failed unexpectedly");
                Problem::new(ProblemKind::Internal, "the command failed")
            }
        }
    }
}

/// An error and its sources on one line, for logs.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use keryu_domain::DomainError;

    use super::*;
    use crate::event_store::StreamName;

    #[test]
    fn command_errors_map_to_stable_problems() {
        let stream = StreamName::new("subject", "1").expect("stream");
        let cases = [
            (
                CommandError::Contention {
                    stream,
                    attempts: 5,
                },
                ProblemKind::Conflict,
            ),
            (
                CommandError::PreconditionFailed {
                    stream: StreamName::new("subject", "2").expect("stream"),
                },
                ProblemKind::Conflict,
            ),
            (
                CommandError::Domain(DomainError::NotFound {
                    aggregate: "subject",
                }),
                ProblemKind::NotFound,
            ),
            (
                CommandError::Domain(DomainError::AlreadyExists {
                    aggregate: "subject",
                }),
                ProblemKind::Conflict,
            ),
        ];
        for (error, kind) in cases {
            let problem = Problem::from(error);
            assert_eq!(problem.kind(), kind);
            assert_eq!(problem.into_response().status(), kind.status());
        }
    }
}
