//! Alarm fan-out: a raised alarm becomes one notification per active custodian of its subject.
//!
//! The notifications use the `notification_alert` template — `{{1}}` subject name, `{{2}}`
//! alert type, `{{3}}` the alarm's description, `{{4}}` the action required — and fall back to
//! the same four facts as free text while no version of that template is approved: an alarm is
//! never dropped for want of a template. Each notification's id is derived from the alarm and
//! the custodian (UUID v5), so a replayed or redelivered alarm creates the same stream again,
//! which the domain refuses as already existing: nobody is notified twice.
//!
//! The subject, its custodians and the template are loaded from their streams, not from read
//! models, so the fan-out never acts on a read model that has not caught up yet; and each
//! notification is appended only while the subject's and its custodian's streams are still as
//! read, so a custodian deactivated, renumbered or unassigned meanwhile is not notified on the
//! old state.

use std::collections::BTreeMap;

use keryu_domain::alarm::{AlarmEvent, AlarmRaised};
use keryu_domain::custodian::Custodian;
use keryu_domain::notification::{Notification, NotificationCommand, NotificationContent};
use keryu_domain::subject::Subject;
use keryu_domain::template::MessageTemplate;
use keryu_domain::{Aggregate, CustodianId, DomainError, NotificationId, RetryPolicy};
use keryu_infra::event_store::{
    Actor, EventMetadata, ExpectedVersion, Precondition, RecordedEvent, StreamName,
};
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository::{self, CommandError};
use uuid::Uuid;

use crate::reaction::{Reaction, ReactionError};

/// The template alarm notifications use.
pub const ALERT_TEMPLATE: &str = "notification_alert";

/// Turns raised alarms into notifications.
pub struct AlarmFanOut {
    store: PgEventStore,
    max_attempts: u32,
}

impl AlarmFanOut {
    /// A fan-out appending to `store`, giving each notification `max_attempts` attempts.
    pub fn new(store: PgEventStore, max_attempts: u32) -> Self {
        AlarmFanOut {
            store,
            max_attempts,
        }
    }

    /// The id of the notification telling `custodian` about `alarm`: the same every time.
    pub fn notification_id(alarm: Uuid, custodian: CustodianId) -> NotificationId {
        NotificationId(Uuid::new_v5(&alarm, custodian.0.as_bytes()))
    }

    /// Fans `raised` out; decided again from fresh reads when the subject or a custodian
    /// changed between being read and a notification being appended.
    async fn fan_out(
        &self,
        raised: &AlarmRaised,
        cause: &RecordedEvent,
    ) -> Result<(), ReactionError> {
        for _ in 0..FAN_OUT_ATTEMPTS {
            if self.fan_out_once(raised, cause).await? == Pass::Done {
                return Ok(());
            }
            tracing::debug!(alarm = %raised.id.0, "the subject or a custodian changed during the fan-out; deciding again");
        }
        Err(format!(
            "the subject or custodians of alarm {} kept changing during its fan-out",
            raised.id.0
        )
        .into())
    }

    /// One pass over the subject's custodians. Each notification is appended only while the
    /// subject's and the custodian's streams are still at the versions it was decided from, so
    /// nobody is notified on the strength of an assignment, a number or an active flag that no
    /// longer holds. [`Pass::Changed`] at the first that does not: the notifications already
    /// created stay, and the next pass meets them as already existing.
    async fn fan_out_once(
        &self,
        raised: &AlarmRaised,
        cause: &RecordedEvent,
    ) -> Result<Pass, ReactionError> {
        let (subject, subject_unchanged) = self.load::<Subject>(raised.subject_id.0).await?;
        let (template, _) = self
            .load::<MessageTemplate>(MessageTemplate::id_for_name(ALERT_TEMPLATE).0)
            .await?;
        let content = alert_content(&template, &subject.name, raised)?;
        let retry_policy = RetryPolicy::with_max_attempts(self.max_attempts)?;
        let metadata = EventMetadata {
            correlation_id: cause.metadata.correlation_id,
            causation_id: Some(cause.event_id),
            actor: Some(Actor {
                id: "alarm-fanout".to_owned(),
                role: "system".to_owned(),
            }),
            traceparent: cause.metadata.traceparent.clone(),
        };
        for custodian_id in &subject.custodians {
            let (custodian, custodian_unchanged) = self.load::<Custodian>(custodian_id.0).await?;
            let Some(phone) = custodian.phone.filter(|_| custodian.active) else {
                tracing::info!(alarm = %raised.id.0, custodian = %custodian_id.0,
                    "custodian is inactive or has no phone; not notified");
                continue;
            };
            let id = Self::notification_id(raised.id.0, *custodian_id);
            let create = NotificationCommand::Create {
                id,
                subject_id: raised.subject_id,
                recipient: phone,
                content: content.clone(),
                scheduled_for: None,
                retry_policy,
                alarm_id: Some(raised.id),
                at: raised.at,
            };
            let unchanged: Vec<Precondition> = [subject_unchanged.clone(), custodian_unchanged]
                .into_iter()
                .flatten()
                .collect();
            // The id is new unless this alarm was fanned out before; then the command meets
            // the notification as already existing.
            let stream = StreamName::of::<Notification>(id.0)?;
            match repository::create_if::<Notification>(
                &self.store,
                &stream,
                create,
                &metadata,
                2,
                &unchanged,
            )
            .await
            {
                Ok(_) | Err(CommandError::Domain(DomainError::AlreadyExists { .. })) => {}
                Err(CommandError::PreconditionFailed { .. }) => return Ok(Pass::Changed),
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Pass::Done)
    }

    /// The aggregate `A` with id `id`, and the precondition that its stream is still as read
    /// (`None` when there is no stream: nothing was decided from it).
    async fn load<A: Aggregate>(
        &self,
        id: Uuid,
    ) -> Result<(A, Option<Precondition>), ReactionError> {
        let stream = StreamName::of::<A>(id)?;
        let loaded = repository::load::<A>(&self.store, &stream).await?;
        let unchanged = loaded.version.map(|version| Precondition {
            stream,
            expected: ExpectedVersion::Exact(version),
        });
        Ok((loaded.state, unchanged))
    }
}

/// How many passes the fan-out of one alarm makes while its subject or custodians keep
/// changing under it, before the batch is handed over again later.
const FAN_OUT_ATTEMPTS: u32 = 3;

/// How a pass of the fan-out ended.
#[derive(Debug, PartialEq, Eq)]
enum Pass {
    /// Every reachable custodian has their notification.
    Done,
    /// The subject or a custodian changed since it was read; nothing was written for them.
    Changed,
}

/// The alert as the approved `notification_alert` template renders it, or as free text when
/// no version is approved.
fn alert_content(
    template: &MessageTemplate,
    subject_name: &str,
    raised: &AlarmRaised,
) -> Result<NotificationContent, DomainError> {
    let facts = [
        subject_name,
        raised.situation.label(),
        raised.description.as_str(),
        raised.situation.action_required(),
    ];
    let variables: BTreeMap<String, String> = facts
        .iter()
        .enumerate()
        .map(|(index, fact)| ((index + 1).to_string(), (*fact).to_owned()))
        .collect();
    match template.notification_content(variables) {
        Err(DomainError::NotFound { .. }) => Ok(NotificationContent::FreeText {
            body: format!("{}: {}. {} {}", facts[1], facts[0], facts[2], facts[3]),
        }),
        rendered => rendered,
    }
}

impl Reaction for AlarmFanOut {
    fn name(&self) -> &'static str {
        "alarm_fanout"
    }

    async fn react(&self, events: &[RecordedEvent]) -> Result<(), ReactionError> {
        for event in events {
            if event.stream.category() != keryu_domain::alarm::Alarm::CATEGORY
                || event.event_type != "AlarmRaised"
            {
                continue;
            }
            match event.to_domain::<AlarmEvent>() {
                Ok(AlarmEvent::AlarmRaised(raised)) => self.fan_out(&raised, event).await?,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(position = %event.position, %error, "skipped an alarm event this build cannot read");
                }
            }
        }
        Ok(())
    }
}
