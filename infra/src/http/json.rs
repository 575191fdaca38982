//! The JSON body extractor of the API: axum's, with its rejections answered as problems.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::problem::{Problem, ProblemKind};

/// A request body parsed as `T`. Request types deny unknown fields, so a typo in a field name is
/// an error rather than a silently ignored value.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(problem_for(&rejection)),
        }
    }
}

fn problem_for(rejection: &JsonRejection) -> Problem {
    let kind = match rejection {
        JsonRejection::MissingJsonContentType(_) => ProblemKind::UnsupportedMediaType,
        // Well-formed JSON of the wrong shape or with an invalid value (unknown field, bad
        // phone number, …): the request is understood but not acceptable.
        JsonRejection::JsonDataError(_) => ProblemKind::Validation,
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ProblemKind::PayloadTooLarge,
        _ => ProblemKind::MalformedRequest,
    };
    Problem::new(kind, rejection.body_text())
}

/// A request body that may be left out entirely (then `T::default()`), for commands whose
/// fields are all optional (`cancel`, `resolve`): clients need not send `{}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJsonBody<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let kind = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ProblemKind::PayloadTooLarge
                } else {
                    ProblemKind::MalformedRequest
                };
                Problem::new(kind, rejection.body_text())
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalJsonBody)
            .map_err(|error| {
                let kind = if error.is_data() {
                    ProblemKind::Validation
                } else {
                    ProblemKind::MalformedRequest
                };
                Problem::new(kind, error.to_string())
            })
    }
}

/// The `{id}` of a resource path, answered with a problem when it is not a UUID.
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub uuid::Uuid);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdPath {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<uuid::Uuid>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| IdPath(id))
            .map_err(|rejection| Problem::new(ProblemKind::MalformedRequest, rejection.body_text()))
    }
}

/// Query-string parameters parsed as `T` (which should deny unknown fields), answered with a
/// problem when they do not parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| Problem::new(ProblemKind::Validation, rejection.body_text()))
    }
}
