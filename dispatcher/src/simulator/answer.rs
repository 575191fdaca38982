//! Twilio's error answer (reference §5), and the request id header Twilio puts on every answer.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::twilio::TwilioErrorBody;

/// Twilio's per-request id header (`RQ` + 32 hex).
pub(super) const REQUEST_ID: HeaderName = HeaderName::from_static("twilio-request-id");

/// A request Twilio would refuse: status, code and message of its error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
    /// Whole seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A `400` validation error.
    pub fn invalid(code: i64, message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The `401` of wrong or missing credentials.
    pub fn unauthenticated() -> Self {
        Refusal::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    }

    /// The `404` of an unknown resource at `path`.
    pub fn not_found(path: &str) -> Self {
        Refusal::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {path} was not found"),
        )
    }

    /// The `503` of an injected fault.
    pub fn unavailable() -> Self {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Service is unavailable. Please try again",
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = TwilioErrorBody::new(self.status.as_u16(), self.code, self.message);
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, request_id());
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}

/// A fresh `Twilio-Request-Id` value.
pub(super) fn request_id() -> HeaderValue {
    // Always ASCII hex, so always a valid header value.
    HeaderValue::from_str(&random_sid("RQ")).unwrap_or(HeaderValue::from_static("RQ"))
}

/// `prefix` + 32 random lowercase hex digits: the shape of every Twilio SID.
pub(super) fn random_sid(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}
