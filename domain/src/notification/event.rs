//! What happened to a notification.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::command::{FailureKind, NotificationContent};
use super::upcast;
use crate::event::event_enum;
use crate::{
    AlarmId, ContainsPersonalData, DataOwner, NotificationId, Personal, PersonalData, PhoneNumber,
    RetryPolicy, SubjectId,
};

/// Payload of [`NotificationEvent::NotificationCreated`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationCreated {
    /// The notification's id.
    pub id: NotificationId,
    /// The subject it is about.
    pub subject_id: SubjectId,
    /// Where it goes; `null` once the subject was erased.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<PhoneNumber>))]
    pub recipient: Personal<PhoneNumber>,
    /// What it says; `null` once the subject was erased.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<NotificationContent>))]
    pub content: Personal<NotificationContent>,
    /// Not before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Its retry schedule, fixed at creation.
    pub retry_policy: RetryPolicy,
    /// The alarm that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_id: Option<AlarmId>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`NotificationEvent::NotificationScheduled`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationScheduled {
    /// When it becomes due.
    pub scheduled_for: DateTime<Utc>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of events about one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptEvent {
    /// The attempt's number within its round, from 1.
    pub attempt: u32,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`NotificationEvent::DeliveryAttemptStarted`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttemptStarted {
    /// The attempt's number within its round, from 1.
    pub attempt: u32,
    /// The dispatcher that claimed it.
    pub dispatcher: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`NotificationEvent::NotificationSent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationSent {
    /// The attempt that succeeded.
    pub attempt: u32,
    /// The provider's message id.
    pub provider_message_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Why an attempt or a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryError {
    /// The provider's error code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// What went wrong.
    pub message: String,
}

/// Payload of [`NotificationEvent::DeliveryAttemptFailed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttemptFailed {
    /// The attempt that failed.
    pub attempt: u32,
    /// Why.
    pub error: DeliveryError,
    /// Whether retrying may help.
    pub kind: FailureKind,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`NotificationEvent::RetryScheduled`].
///
/// Schema version 2. Version 1 named `next_attempt` plain `attempt`, which in every other attempt
/// event names an attempt that happened: appended with the failure of attempt 1, the retry read
/// as an event about attempt 2, which had not happened and might never (a cancellation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryScheduled {
    /// The attempt that will be made when the retry is due: the failed attempt's number plus
    /// one.
    pub next_attempt: u32,
    /// Not before this time.
    pub not_before: DateTime<Utc>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Why a notification ended failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The provider refused it for good.
    PermanentError,
    /// Every attempt of the round failed.
    MaxAttemptsReached,
    /// An attempt's outcome was unknown and the policy said to give up.
    OutcomeUnknown,
}

/// Payload of [`NotificationEvent::NotificationFailed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationFailed {
    /// Why.
    pub reason: FailureReason,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`NotificationEvent::NotificationUndelivered`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationUndelivered {
    /// What the provider reported.
    pub error: DeliveryError,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`NotificationEvent::NotificationCancelled`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationCancelled {
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`NotificationEvent::NotificationRetryRequested`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationRetryRequested {
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of events that only carry a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusReached {
    /// When.
    pub at: DateTime<Utc>,
}

event_enum! {
    /// Events of [`super::Notification`].
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(tag = "type", content = "data")]
    pub enum NotificationEvent {
        /// A notification was accepted.
        NotificationCreated(NotificationCreated),
        /// It waits for its scheduled time.
        NotificationScheduled(NotificationScheduled),
        /// It waits for a dispatcher (the dispatcher subscribes to this event).
        NotificationQueued(AttemptEvent),
        /// A dispatcher claimed it for an attempt.
        DeliveryAttemptStarted(DeliveryAttemptStarted),
        /// The provider accepted it.
        NotificationSent(NotificationSent),
        /// An attempt failed.
        DeliveryAttemptFailed(DeliveryAttemptFailed),
        /// An attempt's outcome is unknown (its dispatcher vanished).
        DeliveryOutcomeUnknown(AttemptEvent),
        /// Another attempt will be made later.
        RetryScheduled(RetryScheduled) = 2 via [upcast::retry_scheduled_v1],
        /// No further attempt will be made (until a manual retry).
        NotificationFailed(NotificationFailed),
        /// The provider reports it reached the handset.
        NotificationDelivered(StatusReached),
        /// The provider reports the recipient read it.
        NotificationRead(StatusReached),
        /// The provider reports it could not be delivered after all.
        NotificationUndelivered(NotificationUndelivered),
        /// It was stopped before being sent.
        NotificationCancelled(NotificationCancelled),
        /// Someone asked to try a failed notification again.
        NotificationRetryRequested(NotificationRetryRequested),
    }
}

/// The number and the text of a notification belong to the subject it is about: erasing the
/// subject makes both unreadable in every notification it was ever sent. Provider error
/// messages, which may quote the number, are masked before they are recorded.
impl ContainsPersonalData for NotificationEvent {
    fn personal_data(&self) -> Option<PersonalData> {
        match self {
            NotificationEvent::NotificationCreated(created) => Some(PersonalData {
                owner: DataOwner::Other(created.subject_id.0),
                fields: &["recipient", "content"],
            }),
            _ => None,
        }
    }
}
