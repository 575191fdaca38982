//! Aggregate states as JSON, folded by the domain's own `evolve`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use keryu_domain::alarm::Alarm;
use keryu_domain::custodian::Custodian;
use keryu_domain::notification::{DeliveryError, Notification, NotificationStatus};
use keryu_domain::subject::Subject;
use keryu_domain::template::MessageTemplate;
use keryu_domain::{Aggregate, AlarmId, NotificationId, SubjectId};
use keryu_infra::event_store::RecordedEvent;
use serde::Serialize;
use serde_json::Value;

/// The state of the aggregate of `category` after `events`; `None` for a category this build
/// has no aggregate for.
///
/// # Errors
/// When an event does not decode into its aggregate's events.
pub fn state_of(category: &str, events: &[RecordedEvent]) -> anyhow::Result<Option<Value>> {
    let state = match category {
        Notification::CATEGORY => {
            serde_json::to_value(NotificationState::of(&fold::<Notification>(events)?))?
        }
        Subject::CATEGORY => serde_json::to_value(fold::<Subject>(events)?)?,
        MessageTemplate::CATEGORY => serde_json::to_value(fold::<MessageTemplate>(events)?)?,
        Alarm::CATEGORY => serde_json::to_value(fold::<Alarm>(events)?)?,
        Custodian::CATEGORY => serde_json::to_value(fold::<Custodian>(events)?)?,
        _ => return Ok(None),
    };
    Ok(Some(state))
}

fn fold<A: Aggregate>(events: &[RecordedEvent]) -> anyhow::Result<A> {
    events.iter().try_fold(A::default(), |state, recorded| {
        let event: A::Event = recorded.to_domain().with_context(|| {
            format!(
                "the event at position {} does not decode",
                recorded.position
            )
        })?;
        Ok(state.evolve(&event))
    })
}

/// One notification's status, attempts and timestamps (without its recipient and content,
/// which its events show).
#[derive(Debug, Serialize)]
pub struct NotificationState {
    id: Option<NotificationId>,
    subject_id: Option<SubjectId>,
    alarm_id: Option<AlarmId>,
    status: NotificationStatus,
    attempt: u32,
    total_attempts: u32,
    max_attempts: Option<u32>,
    created_at: Option<DateTime<Utc>>,
    scheduled_for: Option<DateTime<Utc>>,
    not_before: Option<DateTime<Utc>>,
    queued_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    provider_message_id: Option<String>,
    last_error: Option<DeliveryError>,
}

impl NotificationState {
    fn of(notification: &Notification) -> Self {
        let created = notification.created.as_ref();
        NotificationState {
            id: created.map(|created| created.id),
            subject_id: created.map(|created| created.subject_id),
            alarm_id: created.and_then(|created| created.alarm_id),
            status: notification.status,
            attempt: notification.attempt,
            total_attempts: notification.total_attempts,
            max_attempts: created.map(|created| created.retry_policy.max_attempts),
            created_at: created.map(|created| created.at),
            scheduled_for: created.and_then(|created| created.scheduled_for),
            not_before: notification.not_before,
            queued_at: notification.queued_at,
            sent_at: notification.sent_at,
            delivered_at: notification.delivered_at,
            read_at: notification.read_at,
            provider_message_id: notification.provider_message_id.clone(),
            last_error: notification.last_error.clone(),
        }
    }
}

/// A notification in the replay of every notification: its status and attempts.
#[derive(Debug, Serialize)]
pub struct NotificationSummary {
    status: NotificationStatus,
    attempt: u32,
    total_attempts: u32,
}

impl NotificationSummary {
    /// The summary of `notification`.
    pub fn of(notification: &Notification) -> Self {
        NotificationSummary {
            status: notification.status,
            attempt: notification.attempt,
            total_attempts: notification.total_attempts,
        }
    }
}
