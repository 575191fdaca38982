//! What can be asked of a notification.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AlarmId, NotificationId, PhoneNumber, RetryPolicy, SubjectId, TemplateId};

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotificationContent {
    /// Free text, sent as Twilio `Body` (only inside WhatsApp's 24-hour window).
    FreeText {
        /// The message.
        body: String,
    },
    /// An approved template, rendered when the notification was accepted.
    Template {
        /// Which template.
        template_id: TemplateId,
        /// Which approved version.
        template_version: u32,
        /// Twilio Content sid, when sent as a WhatsApp template (`ContentSid`).
        content_sid: Option<String>,
        /// Values for `{{1}}`…`{{n}}` (Twilio `ContentVariables`).
        variables: BTreeMap<String, String>,
        /// The text as rendered from the version and variables (Twilio `Body` without a sid).
        rendered_body: String,
    },
}

impl NotificationContent {
    /// The text the recipient will read.
    pub fn body(&self) -> &str {
        match self {
            NotificationContent::FreeText { body } => body,
            NotificationContent::Template { rendered_body, .. } => rendered_body,
        }
    }
}

/// Whether a failed attempt may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Timeouts, 5xx, rate limits: retry with backoff.
    Transient,
    /// Invalid number, opted out, outside the window…: retrying the same request cannot help.
    Permanent,
}

/// What to do with an attempt whose outcome is unknown (a dispatcher crashed between calling
/// Twilio and recording the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutcomeUnknownPolicy {
    /// Try again: the recipient might get the message twice.
    Retry,
    /// Give up: the recipient might get nothing.
    Fail,
}

/// A delivery status reported by the provider after the message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    /// Reached the handset.
    Delivered,
    /// Opened by the recipient (WhatsApp).
    Read,
    /// The channel could not deliver it.
    Undelivered,
    /// The provider gave up on it after accepting it (e.g. 63016, outside the window).
    Failed,
}

/// Commands of [`super::Notification`].
#[derive(Debug, Clone, PartialEq)]
pub enum NotificationCommand {
    /// Accept a new notification: queue it now, or schedule it for later.
    Create {
        /// The new notification's id.
        id: NotificationId,
        /// The subject it is about.
        subject_id: SubjectId,
        /// Where it goes.
        recipient: PhoneNumber,
        /// What it says.
        content: NotificationContent,
        /// Not before this time, if in the future.
        scheduled_for: Option<DateTime<Utc>>,
        /// How often and how patiently to try.
        retry_policy: RetryPolicy,
        /// The alarm that caused it, if any.
        alarm_id: Option<AlarmId>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A timer fired: a scheduled notification or a retry is due.
    Queue {
        /// When.
        at: DateTime<Utc>,
    },
    /// A dispatcher claims the notification for the next attempt.
    StartAttempt {
        /// Which dispatcher (for the audit trail).
        dispatcher: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider accepted the message.
    RecordSent {
        /// The provider's message id (Twilio `SM…`).
        provider_message_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider refused the message or could not be reached.
    RecordAttemptFailure {
        /// The provider's error code, if it gave one.
        error_code: Option<i64>,
        /// What went wrong.
        error_message: String,
        /// Whether trying again may help.
        kind: FailureKind,
        /// A number in `[0, 1)` drawn by the caller, for the retry's jitter.
        random_unit: f64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A claimed attempt has no recorded outcome after its lease.
    RecordOutcomeUnknown {
        /// What to do about it.
        policy: OutcomeUnknownPolicy,
        /// A number in `[0, 1)` drawn by the caller, for the retry's jitter.
        random_unit: f64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A status callback from the provider.
    RecordProviderStatus {
        /// The reported status.
        status: ProviderStatus,
        /// The provider's error code, for failures.
        error_code: Option<i64>,
        /// The provider's error message, for failures.
        error_message: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stop a notification that is waiting (scheduled, queued or waiting for a retry).
    Cancel {
        /// Why, for the audit trail.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Try a failed notification again, with a fresh round of attempts.
    Retry {
        /// Who asked.
        requested_by: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl NotificationCommand {
    /// The command's name in errors.
    pub(super) fn name(&self) -> &'static str {
        match self {
            NotificationCommand::Create { .. } => "create",
            NotificationCommand::Queue { .. } => "queue",
            NotificationCommand::StartAttempt { .. } => "start an attempt",
            NotificationCommand::RecordSent { .. } => "record a send",
            NotificationCommand::RecordAttemptFailure { .. } => "record a failed attempt",
            NotificationCommand::RecordOutcomeUnknown { .. } => "record an unknown outcome",
            NotificationCommand::RecordProviderStatus { .. } => "record a provider status",
            NotificationCommand::Cancel { .. } => "cancel",
            NotificationCommand::Retry { .. } => "retry",
        }
    }
}
