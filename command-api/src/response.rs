//! Answers of accepted commands, and the mapping of command errors to problems.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keryu_domain::DomainError;
use keryu_infra::event_store::Position;
use keryu_infra::repository::CommandError;
use serde::Serialize;

use crate::problem::{Problem, ProblemKind};

/// The global position of the last event a command appended: a query may wait for the read
/// models to reach it (read-your-writes).
pub const KERYU_POSITION: HeaderName = HeaderName::from_static("keryu-position");

/// An accepted command's answer: a status, a JSON body, and where to look next.
pub struct Accepted<B> {
    /// 201 for creations, 202 for work that continues asynchronously, 200 otherwise.
    pub status: StatusCode,
    /// The resource's URL, for creations.
    pub location: Option<String>,
    /// What the command did.
    pub body: B,
    /// The position of its last event, `None` when it changed nothing.
    pub position: Option<Position>,
}

impl<B: Serialize> IntoResponse for Accepted<B> {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        if let Some(location) = self.location.and_then(|l| HeaderValue::try_from(l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        if let Some(position) = self.position {
            headers.insert(KERYU_POSITION, HeaderValue::from(position.0));
        }
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
