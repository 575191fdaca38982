//! Signed status callbacks, posted in the background as a message moves through its steps.

use std::sync::Arc;
use std::time::Duration;

use keryu_infra::twilio_signature;
use tokio::sync::Semaphore;

use super::answer::random_sid;
use super::state::State;
use super::store::{Accepted, Step};
use crate::twilio::{API_VERSION, mask_phone};

/// Tries per callback: Twilio retries too, and a receiver restarting must not lose statuses.
const ATTEMPTS: u32 = 3;
/// The wait before the first retry; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Callback posts in flight at once, so a slow receiver under a load run cannot exhaust the
/// simulator's sockets; the rest wait their turn.
const MAX_IN_FLIGHT: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Posts callbacks: one HTTP client and a bound on concurrent posts.
#[derive(Debug)]
pub(super) struct CallbackPoster {
    http: reqwest::Client,
    in_flight: Semaphore,
}

impl CallbackPoster {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent("TwilioProxy/1.1")
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(CallbackPoster {
            http,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        })
    }

    /// Posts `fields` to `url`, signed with `auth_token`, retrying a few times. Failures are
    /// logged, never raised: a receiver's trouble must not affect the simulator.
    async fn post(&self, url: &str, auth_token: &str, fields: &[(String, String)], to: &str) {
        let signature = twilio_signature::sign(auth_token, url, fields);
        // One token per callback, the same on its retries, so receivers can de-duplicate.
        let idempotency_token = random_sid("");
        let mut backoff = FIRST_BACKOFF;
        let mut last_error = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            let Ok(_permit) = self.in_flight.acquire().await else {
                return;
            };
            let answer = self
                .http
                .post(url)
                .header(twilio_signature::HEADER, &signature)
                .header("I-Twilio-Idempotency-Token", &idempotency_token)
                .form(fields)
                .send()
                .await;
            match answer {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => last_error = format!("HTTP {}", response.status()),
                Err(error) => last_error = error.without_url().to_string(),
            }
        }
        let status = field(fields, "MessageStatus");
        let sid = field(fields, "MessageSid");
        tracing::warn!(
            sid,
            status,
            to = %mask_phone(to),
            error = %last_error,
            attempts = ATTEMPTS,
            "could not deliver a status callback; dropped it"
        );
    }
}

/// Starts posting the callbacks of `message` in the background, if it asked for them and the
/// simulator posts them.
pub(super) fn spawn(state: &Arc<State>, message: &Arc<Accepted>) {
    if !state.config.callbacks
        || message.request.status_callback.is_none()
        || state.callbacks.is_none()
    {
        return;
    }
    tokio::spawn(run(state.clone(), message.clone()));
}

async fn run(state: Arc<State>, message: Arc<Accepted>) {
    let (Some(poster), Some(url)) = (&state.callbacks, &message.request.status_callback) else {
        return;
    };
    let start = tokio::time::Instant::from_std(message.accepted);
    let mut due = start;
    for step in message.outcome.steps() {
        due += state.delay();
        tokio::time::sleep_until(due).await;
        let fields = fields(&state, &message, step);
        poster
            .post(
                url,
                state.config.auth_token.expose(),
                &fields,
                &message.request.to,
            )
            .await;
    }
}

/// The fields Twilio posts for `step` of `message` (reference §6).
fn fields(state: &State, message: &Accepted, step: &Step) -> Vec<(String, String)> {
    let mut fields: Vec<(&str, String)> = vec![
        ("MessageSid", message.sid.clone()),
        ("SmsSid", message.sid.clone()),
        ("MessageStatus", step.status.to_owned()),
        ("SmsStatus", step.status.to_owned()),
        ("AccountSid", message.account_sid.clone()),
        ("From", message.request.from.clone()),
        ("To", message.request.to.clone()),
        ("ApiVersion", API_VERSION.to_owned()),
    ];
    if message.request.is_whatsapp() {
        fields.push(("ChannelPrefix", "whatsapp".to_owned()));
        fields.push(("ChannelInstallSid", state.channel_install_sid.clone()));
        fields.push(("ChannelToAddress", channel_to_address(&message.request.to)));
    }
    match step.status {
        "sent" => fields.push(("StructuredMessage", "false".to_owned())),
        "delivered" => fields.push(("EventType", "DELIVERED".to_owned())),
        "read" => fields.push(("EventType", "READ".to_owned())),
        _ => {}
    }
    if let Some((code, message)) = step.error {
        fields.push(("ErrorCode", code.to_string()));
        fields.push(("ErrorMessage", message.to_owned()));
    }
    fields
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// The recipient as Twilio echoes it in `ChannelToAddress`: E.164 with the last four digits
/// masked (`+8529412XXXX`).
fn channel_to_address(to: &str) -> String {
    let number = to.strip_prefix("whatsapp:").unwrap_or(to);
    let keep = number.len().saturating_sub(4);
    format!("{}XXXX", &number[..keep])
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_address_hides_the_last_four_digits() {
        assert_eq!(channel_to_address("whatsapp:+85294123456"), "+8529412XXXX");
        assert_eq!(channel_to_address("+12"), "XXXX");
    }
}
