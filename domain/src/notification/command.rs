//! What can be asked of a notification.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checks::{require_at_most, require_content_sid, require_text};
use crate::error::Violation;
use crate::template::{MAX_BODY_CHARS, MAX_WHATSAPP_TEMPLATE_CHARS};
use crate::{
    AlarmId, DomainError, NotificationId, PhoneNumber, RetryPolicy, SubjectId, TemplateId,
};

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

    /// Checks what Twilio would otherwise refuse only after the notification was accepted: a
    /// blank or too long body (21617), a malformed Content sid (21655), a WhatsApp template
    /// longer than Meta allows (63021).
    ///
    /// # Errors
    /// [`DomainError::InvalidValue`] naming the field.
    pub(super) fn validate(&self) -> Result<(), DomainError> {
        match self {
            NotificationContent::FreeText { body } => require_text("body", body, MAX_BODY_CHARS),
            NotificationContent::Template {
                template_version,
                content_sid,
                rendered_body,
                ..
            } => {
                if *template_version == 0 {
                    return Err(DomainError::invalid(
                        "template_version",
                        Violation::OutOfRange {
                            expected: "at least 1",
                        },
                    ));
                }
                require_text("rendered_body", rendered_body, MAX_BODY_CHARS)?;
                if let Some(sid) = content_sid {
                    require_content_sid(sid)?;
                    require_at_most("rendered_body", rendered_body, MAX_WHATSAPP_TEMPLATE_CHARS)?;
                }
                Ok(())
            }
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
    /// A timer fired: a scheduled notification or a retry is due. Refused with
    /// [`Violation::NotDue`] when `at` is before the due time, so an early timer cannot
    /// shorten a backoff.
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
        /// A number in `[0, 1)` drawn by the caller, for the retry's jitter (randomness is an
        /// input, so the decision replays exactly).
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
    /// A status callback from the provider. Repeated or stale statuses are accepted and change
    /// nothing, because Twilio neither orders nor de-duplicates its callbacks.
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
    /// Stop a notification that is waiting (scheduled, queued or waiting for a retry): "only
    /// before a send attempt" means while no attempt is in flight, since a claimed attempt may
    /// already have reached Twilio.
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
