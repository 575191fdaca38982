//! What can go wrong talking to Twilio, in the two shapes the dispatcher needs to decide.

use std::error::Error as _;
use std::time::Duration;

use keryu_domain::notification::FailureKind;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};

use super::classify::classify;
use super::redact::mask_numbers;

/// The longest `Retry-After` honoured. A server asking for more is either confused or asking
/// for a pause the dispatcher's own backoff already provides; one bad header must not park a
/// notification for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The most characters of an unparseable answer quoted in an error.
const QUOTED_BODY_CHARS: usize = 200;

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TwilioClientError {
    /// A setting cannot work (not an http(s) base URL, not an Account SID).
    #[error("invalid Twilio settings: {0}")]
    InvalidSettings(String),
    /// reqwest refused the configuration (e.g. TLS could not be initialised).
    #[error("cannot build the Twilio HTTP client")]
    Build(#[source] reqwest::Error),
}

/// A failed call to Twilio: either Twilio said no, or we do not know what Twilio said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Twilio answered with an error body (reference §5): the request was refused and, for a
    /// create, no message exists.
    #[error("Twilio refused the request (HTTP {http_status}, code {code}): {}", mask_numbers(.message))]
    Rejected {
        /// The HTTP status of the answer.
        http_status: u16,
        /// Twilio's error code (`21211`, `20429`, …; see reference §9).
        code: i64,
        /// Twilio's explanation. It may quote the phone number; [`std::fmt::Display`] masks it.
        message: String,
        /// How long Twilio asked us to wait (from `Retry-After`, at most [`MAX_RETRY_AFTER`]).
        retry_after: Option<Duration>,
    },
    /// Twilio could not be reached, did not answer in time, or answered something that is not
    /// the Messages API. For a create the outcome is unknown: the message may exist.
    #[error("Twilio is unreachable{}: {reason}", timeout_note(.timed_out))]
    Unreachable {
        /// What happened, for the log and the failure event.
        reason: String,
        /// Whether a timeout (connect or whole request) ended the call.
        timed_out: bool,
    },
}

impl SendError {
    /// Whether trying again may help: [`classify`] for Twilio's answers, always transient when
    /// Twilio could not be reached.
    pub fn kind(&self) -> FailureKind {
        match self {
            SendError::Rejected {
                http_status, code, ..
            } => classify(*http_status, Some(*code)),
            SendError::Unreachable { .. } => FailureKind::Transient,
        }
    }

    /// Twilio's error code, when Twilio answered one.
    pub fn code(&self) -> Option<i64> {
        match self {
            SendError::Rejected { code, .. } => Some(*code),
            SendError::Unreachable { .. } => None,
        }
    }

    /// The wait Twilio asked for before the next try, when it asked.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Rejected { retry_after, .. } => *retry_after,
            SendError::Unreachable { .. } => None,
        }
    }

    /// A call that failed below HTTP (DNS, connect, TLS, timeout, a body cut short).
    pub(crate) fn transport(error: reqwest::Error) -> SendError {
        let timed_out = error.is_timeout();
        // reqwest's own message is generic ("error sending request"); the cause is in the chain.
        let error = error.without_url();
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        SendError::Unreachable { reason, timed_out }
    }

    /// A non-2xx answer: Twilio's error body when there is one. Anything else (a proxy's HTML
    /// page, an empty body) did not come from the Messages API and counts as unreachable.
    pub(crate) fn from_error_answer(
        http_status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> SendError {
        match serde_json::from_slice::<TwilioErrorBody>(body) {
            Ok(error) => SendError::Rejected {
                http_status,
                // twilio-python's fallback: an error body without a code stands for its status.
                code: error.code.unwrap_or(i64::from(http_status)),
                message: error
                    .message
                    .unwrap_or_else(|| format!("HTTP {http_status} without a message")),
                retry_after,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let quoted: String = text.chars().take(QUOTED_BODY_CHARS).collect();
                SendError::Unreachable {
                    reason: format!(
                        "HTTP {http_status} without a Twilio error body: {:?}",
                        mask_numbers(&quoted)
                    ),
                    timed_out: false,
                }
            }
        }
    }
}

fn timeout_note(timed_out: &bool) -> &'static str {
    if *timed_out { " (timed out)" } else { "" }
}

/// Twilio's error body (reference §5), shared by the client (which parses it) and the
/// simulator (which answers it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwilioErrorBody {
    /// Twilio's error code.
    pub code: Option<i64>,
    /// A human-readable explanation.
    pub message: Option<String>,
    /// `https://www.twilio.com/docs/errors/<code>`.
    #[serde(default)]
    pub more_info: Option<String>,
    /// The HTTP status again.
    #[serde(default)]
    pub status: Option<u16>,
}

impl TwilioErrorBody {
    /// The body Twilio answers for `code` with `status`.
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        TwilioErrorBody {
            code: Some(code),
            message: Some(message.into()),
            more_info: Some(format!("https://www.twilio.com/docs/errors/{code}")),
            status: Some(status),
        }
    }
}

/// The `Retry-After` of an answer in whole seconds (the form Twilio uses), capped at
/// [`MAX_RETRY_AFTER`]. An HTTP-date or garbage is ignored rather than trusted.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(retry_after) {
            headers.insert(RETRY_AFTER, value);
        }
        headers
    }

    #[test]
    fn retry_after_is_whole_seconds_capped_at_a_minute() {
        assert_eq!(retry_after(&headers("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers(" 0 ")), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("86400")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(retry_after(&headers("1.5")), None);
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn an_error_body_is_a_rejection_and_anything_else_is_unreachable() {
        let body = br#"{"code":21211,"message":"The 'To' number +15005550001 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#;
        let error = SendError::from_error_answer(400, body, None);
        assert_eq!(error.code(), Some(21211));
        assert_eq!(error.kind(), FailureKind::Permanent);
        assert!(!error.to_string().contains("15005550001"), "{error}");

        let limited = SendError::from_error_answer(
            429,
            br#"{"code":20429,"message":"Too Many Requests","status":429}"#,
            Some(Duration::from_secs(2)),
        );
        assert_eq!(limited.kind(), FailureKind::Transient);
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));

        let without_code = SendError::from_error_answer(404, br#"{"message":"gone"}"#, None);
        assert_eq!(without_code.code(), Some(404));

        let proxy = SendError::from_error_answer(502, b"<html>Bad Gateway</html>", None);
        assert!(matches!(
            proxy,
            SendError::Unreachable {
                timed_out: false,
                ..
            }
        ));
        assert_eq!(proxy.kind(), FailureKind::Transient);
        assert_eq!(proxy.code(), None);
    }
}
