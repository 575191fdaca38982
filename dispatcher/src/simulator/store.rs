//! The messages the simulator accepted, their simulated lifecycle, and how they are shown.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::validate::CreateRequest;
use crate::twilio::{API_VERSION, MessageResource};

/// How an accepted message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// `sent` → `delivered` → `read`.
    Read,
    /// `sent` → `undelivered` (30003, unreachable handset).
    Undelivered,
    /// `failed` (63016, free-form text outside the 24 h window).
    OutsideWindow,
}

/// One status change after `queued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    pub status: &'static str,
    pub error: Option<(i64, &'static str)>,
}

const SENT: Step = Step {
    status: "sent",
    error: None,
};

impl Outcome {
    /// The statuses the message goes through after `queued`, one per callback delay.
    pub fn steps(self) -> &'static [Step] {
        match self {
            Outcome::Read => &[
                SENT,
                Step {
                    status: "delivered",
                    error: None,
                },
                Step {
                    status: "read",
                    error: None,
                },
            ],
            Outcome::Undelivered => &[
                SENT,
                Step {
                    status: "undelivered",
                    error: Some((30003, "Unreachable destination handset")),
                },
            ],
            Outcome::OutsideWindow => &[Step {
                status: "failed",
                error: Some((
                    63016,
                    "Failed to send freeform message because you are outside the allowed window. \
                     If you want to send messages outside this window, please use a Template.",
                )),
            }],
        }
    }
}

/// A message the simulator accepted. Immutable: its status is derived from the time elapsed.
#[derive(Debug)]
pub(super) struct Accepted {
    pub sid: String,
    pub account_sid: String,
    pub request: CreateRequest,
    pub outcome: Outcome,
    /// When the request arrived (before the simulated latency), to the microsecond.
    pub received_at: DateTime<Utc>,
    /// When it was accepted, on the wall clock (for Twilio's dates) …
    pub accepted_at: DateTime<Utc>,
    /// … and on the monotonic clock (for the lifecycle).
    pub accepted: Instant,
}

impl Accepted {
    /// How many of the outcome's steps are done at `now`.
    pub fn steps_done(&self, delay: Duration, now: Instant) -> usize {
        let total = self.outcome.steps().len();
        if delay.is_zero() {
            return total;
        }
        let elapsed = now.saturating_duration_since(self.accepted);
        let done = elapsed.as_nanos() / delay.as_nanos();
        usize::try_from(done).map_or(total, |done| done.min(total))
    }

    /// The status (and error) at `now`.
    pub fn status(&self, delay: Duration, now: Instant) -> Step {
        match self.steps_done(delay, now) {
            0 => Step {
                status: "queued",
                error: None,
            },
            done => self.outcome.steps()[done - 1],
        }
    }

    /// The Message resource Twilio would answer at `now`.
    pub fn resource(&self, delay: Duration, now: Instant) -> MessageResource {
        let done = self.steps_done(delay, now);
        let step = self.status(delay, now);
        let step_time = |index: usize| {
            let offset = delay.saturating_mul(u32::try_from(index).unwrap_or(u32::MAX));
            self.accepted_at + chrono::Duration::from_std(offset).unwrap_or_default()
        };
        let sent_step = self
            .outcome
            .steps()
            .iter()
            .position(|step| step.status == "sent");
        let date_sent = sent_step
            .filter(|index| *index < done)
            .map(|index| step_time(index + 1).to_rfc2822());
        let uri = format!(
            "/{API_VERSION}/Accounts/{}/Messages/{}",
            self.account_sid, self.sid
        );
        MessageResource {
            sid: self.sid.clone(),
            status: step.status.to_owned(),
            error_code: step.error.map(|(code, _)| code),
            error_message: step.error.map(|(_, message)| message.to_owned()),
            to: Some(self.request.to.clone()),
            from: Some(self.request.from.clone()),
            body: self.request.body.clone(),
            account_sid: Some(self.account_sid.clone()),
            messaging_service_sid: None,
            direction: Some("outbound-api".to_owned()),
            num_segments: Some("1".to_owned()),
            num_media: Some(self.request.media_url.len().to_string()),
            price: None,
            price_unit: Some("USD".to_owned()),
            api_version: Some(API_VERSION.to_owned()),
            date_created: Some(self.accepted_at.to_rfc2822()),
            date_updated: Some(step_time(done).to_rfc2822()),
            date_sent,
            subresource_uris: Some(BTreeMap::from([(
                "media".to_owned(),
                format!("{uri}/Media.json"),
            )])),
            uri: Some(format!("{uri}.json")),
        }
    }

    /// The test view of the message at `now`.
    pub fn view(&self, delay: Duration, now: Instant) -> SimMessage {
        let step = self.status(delay, now);
        SimMessage {
            sid: self.sid.clone(),
            account_sid: self.account_sid.clone(),
            to: self.request.to.clone(),
            from: self.request.from.clone(),
            body: self.request.body.clone(),
            content_sid: self.request.content_sid.clone(),
            content_variables: self.request.content_variables.clone(),
            media_url: self.request.media_url.clone(),
            status_callback: self.request.status_callback.clone(),
            status: step.status.to_owned(),
            error_code: step.error.map(|(code, _)| code),
            received_at: self.received_at,
            received_at_micros: self.received_at.timestamp_micros(),
        }
    }
}

/// One accepted message as `GET /sim/messages` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimMessage {
    /// Its Twilio SID.
    pub sid: String,
    /// The account that created it.
    pub account_sid: String,
    /// `To` as posted (`whatsapp:+…`).
    pub to: String,
    /// `From` as posted.
    pub from: String,
    /// `Body`, if posted.
    pub body: Option<String>,
    /// `ContentSid`, if posted.
    pub content_sid: Option<String>,
    /// `ContentVariables`, parsed (it was validated as a JSON object of strings).
    pub content_variables: Option<BTreeMap<String, String>>,
    /// Every `MediaUrl`.
    pub media_url: Vec<String>,
    /// `StatusCallback`, if posted.
    pub status_callback: Option<String>,
    /// Its current simulated status.
    pub status: String,
    /// The error code of a failed or undelivered message.
    pub error_code: Option<i64>,
    /// When the create request reached the simulator (before the simulated latency), to the
    /// microsecond: benchmarks subtract it from their own send times.
    pub received_at: DateTime<Utc>,
    /// `received_at` as microseconds since the Unix epoch.
    pub received_at_micros: i64,
}

/// The body of `GET /sim/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimMessages {
    /// Stored messages, oldest first.
    pub messages: Vec<SimMessage>,
    /// Messages dropped to stay under the configured maximum since the last reset.
    pub evicted: u64,
}

/// Accepted messages by SID, in arrival order, at most `max` of them.
#[derive(Debug)]
pub(super) struct Store {
    max: usize,
    by_sid: HashMap<String, Arc<Accepted>>,
    order: VecDeque<Arc<Accepted>>,
    evicted: u64,
}

impl Store {
    pub fn new(max: usize) -> Self {
        Store {
            max: max.max(1),
            by_sid: HashMap::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Keeps `message`, dropping the oldest one when full.
    pub fn insert(&mut self, message: Arc<Accepted>) {
        while self.order.len() >= self.max {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.by_sid.remove(&oldest.sid);
            self.evicted += 1;
        }
        self.by_sid.insert(message.sid.clone(), message.clone());
        self.order.push_back(message);
    }

    pub fn get(&self, sid: &str) -> Option<Arc<Accepted>> {
        self.by_sid.get(sid).cloned()
    }

    /// The stored messages (those sent to `to`, if given), oldest first, and the eviction count.
    pub fn list(&self, to: Option<&str>) -> (Vec<Arc<Accepted>>, u64) {
        let messages = self
            .order
            .iter()
            .filter(|message| to.is_none_or(|to| message.request.to == to))
            .cloned()
            .collect();
        (messages, self.evicted)
    }

    pub fn clear(&mut self) {
        self.by_sid.clear();
        self.order.clear();
        self.evicted = 0;
    }
}
