//! The request context recorded in every event's metadata.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keryu_infra::event_store::{Actor, EventMetadata};
use uuid::Uuid;

use crate::auth::Caller;

/// Correlation and tracing context of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// From `X-Request-Id` when it is a UUID, otherwise new: ties every event of the request
    /// together and to the integrator's own logs.
    pub correlation_id: Uuid,
    /// The W3C `traceparent` header, when well-formed.
    pub traceparent: Option<String>,
}

impl RequestContext {
    /// The metadata of events appended on behalf of `caller` in this request.
    pub fn metadata(&self, caller: &Caller) -> EventMetadata {
        EventMetadata {
            correlation_id: self.correlation_id,
            causation_id: None,
            actor: Some(Actor {
                id: caller.subject.clone(),
                role: caller.role.as_str().to_owned(),
            }),
            traceparent: self.traceparent.clone(),
        }
    }
}

/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, the only version defined so far.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    matches!(parts.as_slice(), [version, trace, span, flags]
        if hex(version, 2) && hex(trace, 32) && hex(span, 16) && hex(flags, 2)
            && trace.bytes().any(|b| b != b'0') && span.bytes().any(|b| b != b'0'))
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        Ok(RequestContext {
            correlation_id: header("x-request-id")
                .and_then(|id| Uuid::parse_str(id.trim()).ok())
                .unwrap_or_else(Uuid::now_v7),
            // The request's own span when traces are exported (so the chain continues from
            // it), else the caller's header as it came.
            traceparent: keryu_infra::telemetry::current_traceparent().or_else(|| {
                header("traceparent")
                    .filter(|value| is_traceparent(value))
                    .map(str::to_owned)
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_w3c_traceparents() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            assert!(!is_traceparent(bad), "{bad:?}");
        }
    }
}
