//! The Twilio REST client: creates WhatsApp messages and fetches their status.
//!
//! It speaks the 2010-04-01 Messages API exactly as Twilio publishes it (form-encoded POSTs,
//! HTTP Basic with the Account SID and Auth Token, JSON answers), so the same client works
//! against `api.twilio.com` and against the [simulator](crate::simulator). It does one HTTP
//! call per method and never retries: whether and when to try again is the dispatcher's
//! decision, made from the [`SendError`] it gets back ([`SendError::kind`],
//! [`SendError::retry_after`]) and recorded as an event first.
//!
//! Nothing here logs the Auth Token or a whole phone number ([`mask_phone`]).

mod classify;
mod error;
mod message;
mod redact;

use std::sync::Arc;
use std::time::Duration;

use keryu_infra::config::Secret;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};

pub use classify::classify;
pub use error::{MAX_RETRY_AFTER, SendError, TwilioClientError, TwilioErrorBody};
pub use message::{MessageResource, OutgoingContent, OutgoingMessage, channel_address};
pub use redact::{mask_numbers, mask_phone};

/// The only version of the Messages API there is; it is part of every path.
pub const API_VERSION: &str = "2010-04-01";
/// Twilio's production API.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// How long an idle pooled connection is kept. Under Twilio's load balancers' idle limit, so
/// the pool rarely hands out a connection the server has just closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// Idle connections kept to the API host. A dispatcher sends to one host only; this bounds the
/// sockets a burst leaves behind while keeping enough warm for its usual concurrency.
const POOL_MAX_IDLE_PER_HOST: usize = 64;
/// TCP keep-alive probes notice connections a NAT or firewall silently dropped.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Where Twilio is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioSettings {
    /// Scheme and host of the API, e.g. [`DEFAULT_API_BASE`] or the simulator's
    /// `http://127.0.0.1:4010`; a trailing slash is ignored.
    pub api_base: String,
    /// The Account SID (`AC` + 32 hex): the Basic-auth user and part of every path.
    pub account_sid: String,
    /// The Auth Token: the Basic-auth password.
    pub auth_token: Secret,
    /// The longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// The longest wait for a whole request, connection included. A create that times out may
    /// still have been accepted by Twilio.
    pub request_timeout: Duration,
}

/// A Twilio REST client. Cloning is cheap and shares the connection pool, so one client should
/// serve a whole process.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    account_sid: String,
    auth_token: Secret,
    /// `{api_base}/2010-04-01/Accounts/{sid}/Messages`, the prefix of every URL.
    messages_url: String,
}

impl TwilioClient {
    /// Builds the client and its connection pool.
    ///
    /// # Errors
    /// [`TwilioClientError::InvalidSettings`] when the base URL is not http(s) or the Account
    /// SID is not an `AC…` SID; [`TwilioClientError::Build`] when the HTTP client (its TLS
    /// configuration) cannot be built.
    pub fn new(settings: TwilioSettings) -> Result<Self, TwilioClientError> {
        let api_base = settings.api_base.trim_end_matches('/');
        let is_http = reqwest::Url::parse(api_base)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
        if !is_http {
            return Err(TwilioClientError::InvalidSettings(format!(
                "the API base {api_base:?} is not an http(s) URL"
            )));
        }
        let sid = &settings.account_sid;
        if !(sid.len() == 34
            && sid.starts_with("AC")
            && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(TwilioClientError::InvalidSettings(
                "the Account SID is not `AC` followed by 32 hex digits".to_owned(),
            ));
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("keryu/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            // Requests are small and latency-bound: do not let Nagle hold them back.
            .tcp_nodelay(true)
            .tcp_keepalive(TCP_KEEPALIVE)
            // Twilio does not redirect API calls; following one would resend the credentials
            // (and the message) somewhere unexpected.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(TwilioClientError::Build)?;
        Ok(TwilioClient {
            inner: Arc::new(Inner {
                http,
                messages_url: format!("{api_base}/{API_VERSION}/Accounts/{sid}/Messages"),
                account_sid: settings.account_sid,
                auth_token: settings.auth_token,
            }),
        })
    }

    /// Whether Twilio's API answers at all: a `GET` of the account's message list, whose
    /// status (even 401 or 404) proves the base is reachable. For readiness probes.
    ///
    /// # Errors
    /// [`SendError::Unreachable`] when nothing answered in time.
    pub async fn ping(&self) -> Result<u16, SendError> {
        self.inner
            .http
            .get(format!("{}.json?PageSize=1", self.inner.messages_url))
            .basic_auth(
                &self.inner.account_sid,
                Some(self.inner.auth_token.expose()),
            )
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await
            .map(|response| response.status().as_u16())
            .map_err(|error| SendError::Unreachable {
                reason: error.to_string(),
                timed_out: error.is_timeout(),
            })
    }

    /// Asks Twilio to send `message` (`POST /2010-04-01/Accounts/{sid}/Messages.json`).
    ///
    /// A `201` means Twilio accepted it (status `queued`); delivery is reported later by status
    /// callbacks. Not idempotent: after an [`SendError::Unreachable`] the message may or may not
    /// exist at Twilio, and a retry may send it twice.
    ///
    /// # Errors
    /// [`SendError::Rejected`] when Twilio answered an error body, [`SendError::Unreachable`]
    /// when it could not be reached in time or answered something unparseable.
    pub async fn create_message(
        &self,
        message: &OutgoingMessage,
    ) -> Result<MessageResource, SendError> {
        let url = format!("{}.json", self.inner.messages_url);
        tracing::debug!(
            to = %mask_phone(&message.to),
            from = %mask_phone(&message.from),
            template = matches!(message.content, OutgoingContent::Template { .. }),
            "creating a Twilio message"
        );
        let mut request = self.authenticated(self.inner.http.post(url));
        // The trace continues into the call (Twilio ignores the header; a proxy or the
        // simulator may record it).
        if let Some(traceparent) = keryu_infra::telemetry::current_traceparent() {
            request = request.header("traceparent", traceparent);
        }
        let result = send(request.form(&message.form())).await;
        if let Err(error) = &result {
            tracing::debug!(to = %mask_phone(&message.to), %error, "Twilio did not accept a message");
        }
        result
    }

    /// Reads a message's current state (`GET …/Messages/{Sid}.json`), e.g. to settle an attempt
    /// whose create timed out, or to poll when callbacks are lost.
    ///
    /// # Errors
    /// As [`TwilioClient::create_message`]; an unknown SID is `Rejected` with code 20404.
    pub async fn fetch_message(&self, sid: &str) -> Result<MessageResource, SendError> {
        let url = format!("{}/{}.json", self.inner.messages_url, path_segment(sid));
        send(self.authenticated(self.inner.http.get(url))).await
    }

    fn authenticated(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(
            &self.inner.account_sid,
            Some(self.inner.auth_token.expose()),
        )
    }
}

/// `segment` percent-encoded so that it stays one path segment whatever it contains (a SID
/// is alphanumeric; anything else must not be able to reach another endpoint).
fn path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Sends the request and turns the answer into a resource or a [`SendError`].
async fn send(request: reqwest::RequestBuilder) -> Result<MessageResource, SendError> {
    let response = request.send().await.map_err(SendError::transport)?;
    let status = response.status();
    let retry_after = error::retry_after(response.headers());
    let body = response.bytes().await.map_err(SendError::transport)?;
    if status.is_success() {
        serde_json::from_slice(&body).map_err(|error| SendError::Unreachable {
            reason: format!("HTTP {status} with a body that is not a Message resource: {error}"),
            timed_out: false,
        })
    } else {
        Err(SendError::from_error_answer(
            status.as_u16(),
            &body,
            retry_after,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sid_stays_one_path_segment() {
        assert_eq!(
            path_segment("SM0123456789abcdef0123456789abcdef"),
            "SM0123456789abcdef0123456789abcdef"
        );
        assert_eq!(path_segment("../Calls?x=1#"), "..%2FCalls%3Fx%3D1%23");
    }
}
