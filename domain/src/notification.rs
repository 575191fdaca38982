//! Notifications: one message to one person, from acceptance to read receipt.
//!
//! ```text
//! Created → Queued → Processing → Sent → Delivered → Read
//!             ▲          │          └─→ Undelivered (provider reports failed/undelivered)
//!             │          ├─ attempt failed, transient, attempts left → RetryScheduled ─┐
//!             │          └─ permanent error / max attempts / outcome unknown → Failed  │
//!             └──────────────────── timer due ─────────────────────────────────────────┘
//! Created → Scheduled (scheduled_for in the future) → Queued when due
//! Scheduled | Queued | RetryScheduled → Cancelled;  Failed → (manual retry) → Queued
//! ```
//!
//! A dispatcher's claim on an attempt is itself an event (`DeliveryAttemptStarted`), appended
//! with the version it read: of two dispatchers, only one can claim a given attempt. Attempts
//! are counted per round; a manual retry starts a new round, so the attempt number never
//! exceeds the retry policy's maximum.
//!
//! Choices worth knowing:
//! - **Cancelling** is allowed "only before a send attempt", read as: while no attempt is in
//!   flight — Scheduled, Queued or RetryScheduled. Once a dispatcher has claimed an attempt
//!   (Processing) the message may already be with Twilio, and afterwards it is.
//! - **Provider statuses** rank `sent < delivered < read`; `undelivered`/`failed` count only
//!   while the notification is Sent. A status that repeats or would move the notification
//!   backwards (a late `delivered` after `read`, a failure after a delivery receipt) is
//!   accepted and changes nothing (`Ok(vec![])`): Twilio does not order its callbacks, and
//!   answering an error would only make it retry them.
//! - **Created** is never observable from outside: creation always records
//!   `NotificationCreated` together with `NotificationQueued` or `NotificationScheduled`.

mod command;
mod event;
mod status;
mod upcast;

use chrono::{DateTime, Utc};

pub use command::{
    FailureKind, NotificationCommand, NotificationContent, OutcomeUnknownPolicy, ProviderStatus,
};
pub use event::{
    AttemptEvent, DeliveryAttemptFailed, DeliveryAttemptStarted, DeliveryError, FailureReason,
    NotificationCancelled, NotificationCreated, NotificationEvent, NotificationFailed,
    NotificationRetryRequested, NotificationScheduled, NotificationSent, NotificationUndelivered,
    RetryScheduled, StatusReached,
};
pub use status::NotificationStatus;

use crate::checks::{require_text, require_unit_interval};
use crate::error::Violation;
use crate::{Aggregate, DomainError, Personal, RetryPolicy};

/// The notification aggregate: what a read model or a dispatcher needs to know about one
/// notification, rebuilt from its events.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Notification {
    /// The facts fixed at creation; `None` until created.
    pub created: Option<NotificationCreated>,
    /// Where it is in its lifecycle.
    pub status: NotificationStatus,
    /// Attempts started in the current round (a manual retry starts a new round).
    pub attempt: u32,
    /// Attempts started over the notification's whole life.
    pub total_attempts: u32,
    /// The most recent error.
    pub last_error: Option<DeliveryError>,
    /// The provider's message id once sent.
    pub provider_message_id: Option<String>,
    /// While scheduled or waiting for a retry: when it becomes due.
    pub not_before: Option<DateTime<Utc>>,
    /// When it was last queued.
    pub queued_at: Option<DateTime<Utc>>,
    /// When the provider accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it reached the handset.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
}

/// Why a queued notification of an erased subject is cancelled instead of attempted.
pub const RECIPIENT_ERASED: &str = "the subject's personal data was erased";
/// The most characters of a provider message id Keryu stores (Twilio's are 34).
const MAX_PROVIDER_MESSAGE_ID_CHARS: usize = 64;
/// The most characters of a cancellation reason.
const MAX_REASON_CHARS: usize = 500;
/// The most characters naming who acted (a dispatcher, an admin), for the audit trail.
const MAX_ACTOR_CHARS: usize = 200;

impl Notification {
    /// Where the notification is in its lifecycle.
    pub fn status(&self) -> NotificationStatus {
        self.status
    }

    /// The subject was erased: there is nobody (and nothing) left to send.
    fn recipient_erased(&self) -> bool {
        self.created.as_ref().is_some_and(|created| {
            created.recipient == Personal::Erased || created.content == Personal::Erased
        })
    }

    fn create(command: NotificationCommand) -> Result<Vec<NotificationEvent>, DomainError> {
        let NotificationCommand::Create {
            id,
            subject_id,
            recipient,
            content,
            scheduled_for,
            retry_policy,
            alarm_id,
            at,
        } = command
        else {
            return Err(DomainError::NotFound {
                aggregate: Self::CATEGORY,
            });
        };
        retry_policy.validate()?;
        content.validate()?;
        // A time in the past means "now": the API refuses it, but a timer's late command must
        // not lose the notification.
        let due_later = scheduled_for.filter(|scheduled_for| *scheduled_for > at);
        let next = match due_later {
            Some(scheduled_for) => {
                NotificationEvent::NotificationScheduled(NotificationScheduled {
                    scheduled_for,
                    at,
                })
            }
            None => NotificationEvent::NotificationQueued(AttemptEvent { attempt: 1, at }),
        };
        let created = NotificationEvent::NotificationCreated(NotificationCreated {
            id,
            subject_id,
            recipient: recipient.into(),
            content: content.into(),
            scheduled_for,
            retry_policy,
            alarm_id,
            at,
        });
        Ok(vec![created, next])
    }

    /// A timer fired: queue the next attempt, if it is due.
    fn queue(&self, at: DateTime<Utc>) -> Result<Vec<NotificationEvent>, DomainError> {
        if let Some(not_before) = self.not_before.filter(|not_before| at < *not_before) {
            return Err(DomainError::invalid("at", Violation::NotDue { not_before }));
        }
        Ok(vec![NotificationEvent::NotificationQueued(AttemptEvent {
            attempt: self.attempt + 1,
            at,
        })])
    }

    /// After a failed or unknown attempt: another attempt later if `retryable` and the round has
    /// attempts left, otherwise give up for `reason` (or because the round is exhausted).
    fn after_failure(
        &self,
        policy: &RetryPolicy,
        retryable: bool,
        reason: FailureReason,
        random_unit: f64,
        at: DateTime<Utc>,
    ) -> Result<NotificationEvent, DomainError> {
        require_unit_interval(random_unit)?;
        if !retryable {
            return Ok(NotificationEvent::NotificationFailed(NotificationFailed {
                reason,
                at,
            }));
        }
        if self.attempt >= policy.max_attempts {
            return Ok(NotificationEvent::NotificationFailed(NotificationFailed {
                reason: FailureReason::MaxAttemptsReached,
                at,
            }));
        }
        let attempt = self.attempt + 1;
        let not_before = at
            .checked_add_signed(policy.delay_before_attempt(attempt, random_unit))
            .ok_or(DomainError::invalid(
                "at",
                Violation::OutOfRange {
                    expected: "a time a retry delay can be added to",
                },
            ))?;
        Ok(NotificationEvent::RetryScheduled(RetryScheduled {
            next_attempt: attempt,
            not_before,
            at,
        }))
    }

    /// A provider callback after sending. Callbacks arrive late, twice or out of order, so a
    /// status that would move the notification backwards (or repeats it) changes nothing; see
    /// the module docs.
    fn on_provider_status(
        &self,
        status: ProviderStatus,
        error_code: Option<i64>,
        error_message: Option<String>,
        at: DateTime<Utc>,
    ) -> Vec<NotificationEvent> {
        use NotificationStatus as S;
        let event = match (self.status, status) {
            (S::Sent, ProviderStatus::Delivered) => {
                NotificationEvent::NotificationDelivered(StatusReached { at })
            }
            (S::Sent | S::Delivered, ProviderStatus::Read) => {
                NotificationEvent::NotificationRead(StatusReached { at })
            }
            (S::Sent, ProviderStatus::Undelivered | ProviderStatus::Failed) => {
                NotificationEvent::NotificationUndelivered(NotificationUndelivered {
                    error: DeliveryError {
                        code: error_code,
                        message: error_message
                            .unwrap_or_else(|| "the provider could not deliver it".to_owned()),
                    },
                    at,
                })
            }
            _ => return Vec::new(),
        };
        vec![event]
    }
}

impl Aggregate for Notification {
    const CATEGORY: &'static str = "notification";
    type Command = NotificationCommand;
    type Event = NotificationEvent;

    /// The whole state machine is the `match` below: each arm is one accepted (status,
    /// command) pair; every other pair is an [`DomainError::InvalidTransition`].
    fn decide(&self, command: NotificationCommand) -> Result<Vec<NotificationEvent>, DomainError> {
        use NotificationCommand as C;
        use NotificationStatus as S;
        let Some(created) = &self.created else {
            return Notification::create(command);
        };
        let policy = &created.retry_policy;
        let refused = DomainError::InvalidTransition {
            aggregate: Self::CATEGORY,
            from: self.status.as_str(),
            command: command.name(),
        };
        match (self.status, command) {
            (_, C::Create { .. }) => Err(DomainError::AlreadyExists {
                aggregate: Self::CATEGORY,
            }),
            (S::Scheduled | S::RetryScheduled, C::Queue { at }) => self.queue(at),
            (S::Queued, C::StartAttempt { dispatcher, at }) => {
                require_text("dispatcher", &dispatcher, MAX_ACTOR_CHARS)?;
                if self.recipient_erased() {
                    return Ok(vec![NotificationEvent::NotificationCancelled(
                        NotificationCancelled {
                            reason: RECIPIENT_ERASED.to_owned(),
                            at,
                        },
                    )]);
                }
                Ok(vec![NotificationEvent::DeliveryAttemptStarted(
                    DeliveryAttemptStarted {
                        attempt: self.attempt + 1,
                        dispatcher,
                        at,
                    },
                )])
            }
            (
                S::Processing,
                C::RecordSent {
                    provider_message_id,
                    at,
                },
            ) => {
                require_text(
                    "provider_message_id",
                    &provider_message_id,
                    MAX_PROVIDER_MESSAGE_ID_CHARS,
                )?;
                Ok(vec![NotificationEvent::NotificationSent(
                    NotificationSent {
                        attempt: self.attempt,
                        provider_message_id,
                        at,
                    },
                )])
            }
            (
                S::Processing,
                C::RecordAttemptFailure {
                    error_code,
                    error_message,
                    kind,
                    random_unit,
                    at,
                },
            ) => {
                let retryable = kind == FailureKind::Transient;
                let next = self.after_failure(
                    policy,
                    retryable,
                    FailureReason::PermanentError,
                    random_unit,
                    at,
                )?;
                let failed = NotificationEvent::DeliveryAttemptFailed(DeliveryAttemptFailed {
                    attempt: self.attempt,
                    error: DeliveryError {
                        code: error_code,
                        message: error_message,
                    },
                    kind,
                    at,
                });
                Ok(vec![failed, next])
            }
            (
                S::Processing,
                C::RecordOutcomeUnknown {
                    policy: on_unknown,
                    random_unit,
                    at,
                },
            ) => {
                let retryable = on_unknown == OutcomeUnknownPolicy::Retry;
                let next = self.after_failure(
                    policy,
                    retryable,
                    FailureReason::OutcomeUnknown,
                    random_unit,
                    at,
                )?;
                let unknown = NotificationEvent::DeliveryOutcomeUnknown(AttemptEvent {
                    attempt: self.attempt,
                    at,
                });
                Ok(vec![unknown, next])
            }
            (
                S::Sent | S::Delivered | S::Read | S::Undelivered,
                C::RecordProviderStatus {
                    status,
                    error_code,
                    error_message,
                    at,
                },
            ) => Ok(self.on_provider_status(status, error_code, error_message, at)),
            (S::Scheduled | S::Queued | S::RetryScheduled, C::Cancel { reason, at }) => {
                require_text("reason", &reason, MAX_REASON_CHARS)?;
                Ok(vec![NotificationEvent::NotificationCancelled(
                    NotificationCancelled { reason, at },
                )])
            }
            (S::Failed, C::Retry { requested_by, at }) => {
                require_text("requested_by", &requested_by, MAX_ACTOR_CHARS)?;
                Ok(vec![
                    NotificationEvent::NotificationRetryRequested(NotificationRetryRequested {
                        requested_by,
                        at,
                    }),
                    NotificationEvent::NotificationQueued(AttemptEvent { attempt: 1, at }),
                ])
            }
            _ => Err(refused),
        }
    }

    fn evolve(mut self, event: &NotificationEvent) -> Self {
        use NotificationStatus as S;
        match event {
            NotificationEvent::NotificationCreated(created) => {
                self.created = Some(created.clone());
                self.status = S::Created;
            }
            NotificationEvent::NotificationScheduled(scheduled) => {
                self.status = S::Scheduled;
                self.not_before = Some(scheduled.scheduled_for);
            }
            NotificationEvent::NotificationQueued(queued) => {
                self.status = S::Queued;
                self.not_before = None;
                self.queued_at = Some(queued.at);
            }
            NotificationEvent::DeliveryAttemptStarted(started) => {
                self.status = S::Processing;
                self.attempt = started.attempt;
                self.total_attempts = self.total_attempts.saturating_add(1);
            }
            NotificationEvent::NotificationSent(sent) => {
                self.status = S::Sent;
                self.provider_message_id = Some(sent.provider_message_id.clone());
                self.sent_at = Some(sent.at);
            }
            NotificationEvent::DeliveryAttemptFailed(failed) => {
                self.last_error = Some(failed.error.clone());
            }
            NotificationEvent::DeliveryOutcomeUnknown(_) => {
                self.last_error = Some(DeliveryError {
                    code: None,
                    message: "the attempt's outcome is unknown".to_owned(),
                });
            }
            NotificationEvent::RetryScheduled(retry) => {
                self.status = S::RetryScheduled;
                self.not_before = Some(retry.not_before);
            }
            NotificationEvent::NotificationFailed(_) => {
                self.status = S::Failed;
                self.not_before = None;
            }
            NotificationEvent::NotificationDelivered(reached) => {
                self.status = S::Delivered;
                self.delivered_at = Some(reached.at);
            }
            NotificationEvent::NotificationRead(reached) => {
                self.status = S::Read;
                self.read_at = Some(reached.at);
            }
            NotificationEvent::NotificationUndelivered(undelivered) => {
                self.status = S::Undelivered;
                self.last_error = Some(undelivered.error.clone());
            }
            NotificationEvent::NotificationCancelled(_) => {
                self.status = S::Cancelled;
                self.not_before = None;
            }
            NotificationEvent::NotificationRetryRequested(_) => self.attempt = 0,
        }
        self
    }
}

#[cfg(test)]
mod tests;
