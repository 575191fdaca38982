//! Notifications: one message to one person, from acceptance to read receipt.
//!
//! ```text
//! Created → Queued → Processing → Sent → Delivered → Read
//!             ▲          │          └──────────┴─→ Undelivered (provider callback)
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

mod command;
mod event;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use command::{
    FailureKind, NotificationCommand, NotificationContent, OutcomeUnknownPolicy, ProviderStatus,
};
pub use event::{
    AttemptEvent, DeliveryAttemptFailed, DeliveryAttemptStarted, DeliveryError, FailureReason,
    NotificationCancelled, NotificationCreated, NotificationEvent, NotificationFailed,
    NotificationRetryRequested, NotificationScheduled, NotificationSent, NotificationUndelivered,
    RetryScheduled, StatusReached,
};

use crate::error::require_text;
use crate::template::MAX_BODY_CHARS;
use crate::{Aggregate, DomainError};

/// Where a notification is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// Accepted (a transient state: always followed by Scheduled or Queued).
    #[default]
    Created,
    /// Waiting for its scheduled time.
    Scheduled,
    /// Waiting for a dispatcher.
    Queued,
    /// A dispatcher is sending it.
    Processing,
    /// The provider accepted it.
    Sent,
    /// It reached the handset.
    Delivered,
    /// The recipient read it.
    Read,
    /// Waiting for the next attempt.
    RetryScheduled,
    /// No more attempts (until a manual retry).
    Failed,
    /// Stopped before being sent.
    Cancelled,
    /// The provider could not deliver it after sending.
    Undelivered,
}

impl NotificationStatus {
    /// Every status, for exhaustive tests and dashboards.
    pub const ALL: [NotificationStatus; 11] = [
        NotificationStatus::Created,
        NotificationStatus::Scheduled,
        NotificationStatus::Queued,
        NotificationStatus::Processing,
        NotificationStatus::Sent,
        NotificationStatus::Delivered,
        NotificationStatus::Read,
        NotificationStatus::RetryScheduled,
        NotificationStatus::Failed,
        NotificationStatus::Cancelled,
        NotificationStatus::Undelivered,
    ];

    /// The status as the API and read models spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Created => "created",
            NotificationStatus::Scheduled => "scheduled",
            NotificationStatus::Queued => "queued",
            NotificationStatus::Processing => "processing",
            NotificationStatus::Sent => "sent",
            NotificationStatus::Delivered => "delivered",
            NotificationStatus::Read => "read",
            NotificationStatus::RetryScheduled => "retry_scheduled",
            NotificationStatus::Failed => "failed",
            NotificationStatus::Cancelled => "cancelled",
            NotificationStatus::Undelivered => "undelivered",
        }
    }
}

/// The notification aggregate.
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

impl Notification {
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
        require_text("body", content.body(), MAX_BODY_CHARS)?;
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
            recipient,
            content,
            scheduled_for,
            retry_policy,
            alarm_id,
            at,
        });
        Ok(vec![created, next])
    }

    /// After a failed or unknown attempt: another attempt later if `retryable` and the round has
    /// attempts left, otherwise give up for `reason` (or because the round is exhausted).
    fn after_failure(
        &self,
        created: &NotificationCreated,
        retryable: bool,
        reason: FailureReason,
        random_unit: f64,
        at: DateTime<Utc>,
    ) -> NotificationEvent {
        let policy = created.retry_policy;
        if retryable && self.attempt < policy.max_attempts {
            let attempt = self.attempt + 1;
            NotificationEvent::RetryScheduled(RetryScheduled {
                attempt,
                not_before: at + policy.delay_before_attempt(attempt, random_unit),
                at,
            })
        } else {
            let reason = if retryable {
                FailureReason::MaxAttemptsReached
            } else {
                reason
            };
            NotificationEvent::NotificationFailed(NotificationFailed { reason, at })
        }
    }

    /// A provider callback after sending. Callbacks arrive late, twice or out of order, so a
    /// status that would move the notification backwards (or repeats it) changes nothing.
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
            (S::Sent | S::Delivered, ProviderStatus::Undelivered | ProviderStatus::Failed) => {
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

    fn require_due(&self, at: DateTime<Utc>) -> Result<(), DomainError> {
        match self.not_before {
            Some(not_before) if at < not_before => Err(DomainError::invalid(
                "at",
                format!("the notification is not due before {not_before}"),
            )),
            _ => Ok(()),
        }
    }
}

impl Aggregate for Notification {
    const CATEGORY: &'static str = "notification";
    type Command = NotificationCommand;
    type Event = NotificationEvent;

    fn decide(&self, command: NotificationCommand) -> Result<Vec<NotificationEvent>, DomainError> {
        use NotificationCommand as C;
        use NotificationStatus as S;
        let Some(created) = &self.created else {
            return Notification::create(command);
        };
        let refused = DomainError::InvalidTransition {
            aggregate: Self::CATEGORY,
            state: self.status.as_str(),
            command: command.name(),
        };
        let events = match (self.status, command) {
            (_, C::Create { .. }) => {
                return Err(DomainError::AlreadyExists {
                    aggregate: Self::CATEGORY,
                });
            }
            (S::Scheduled | S::RetryScheduled, C::Queue { at }) => {
                self.require_due(at)?;
                vec![NotificationEvent::NotificationQueued(AttemptEvent {
                    attempt: self.attempt + 1,
                    at,
                })]
            }
            (S::Queued, C::StartAttempt { dispatcher, at }) => {
                vec![NotificationEvent::DeliveryAttemptStarted(
                    DeliveryAttemptStarted {
                        attempt: self.attempt + 1,
                        dispatcher,
                        at,
                    },
                )]
            }
            (
                S::Processing,
                C::RecordSent {
                    provider_message_id,
                    at,
                },
            ) => {
                require_text("provider_message_id", &provider_message_id, 64)?;
                vec![NotificationEvent::NotificationSent(NotificationSent {
                    attempt: self.attempt,
                    provider_message_id,
                    at,
                })]
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
                let failed = NotificationEvent::DeliveryAttemptFailed(DeliveryAttemptFailed {
                    attempt: self.attempt,
                    error: DeliveryError {
                        code: error_code,
                        message: error_message,
                    },
                    kind,
                    at,
                });
                let retryable = kind == FailureKind::Transient;
                let next = self.after_failure(
                    created,
                    retryable,
                    FailureReason::PermanentError,
                    random_unit,
                    at,
                );
                vec![failed, next]
            }
            (
                S::Processing,
                C::RecordOutcomeUnknown {
                    policy,
                    random_unit,
                    at,
                },
            ) => {
                let unknown = NotificationEvent::DeliveryOutcomeUnknown(AttemptEvent {
                    attempt: self.attempt,
                    at,
                });
                let retryable = policy == OutcomeUnknownPolicy::Retry;
                let next = self.after_failure(
                    created,
                    retryable,
                    FailureReason::OutcomeUnknown,
                    random_unit,
                    at,
                );
                vec![unknown, next]
            }
            (
                S::Sent | S::Delivered | S::Read | S::Undelivered,
                C::RecordProviderStatus {
                    status,
                    error_code,
                    error_message,
                    at,
                },
            ) => self.on_provider_status(status, error_code, error_message, at),
            (S::Scheduled | S::Queued | S::RetryScheduled, C::Cancel { reason, at }) => {
                require_text("reason", &reason, 500)?;
                vec![NotificationEvent::NotificationCancelled(
                    NotificationCancelled { reason, at },
                )]
            }
            (S::Failed, C::Retry { requested_by, at }) => vec![
                NotificationEvent::NotificationRetryRequested(NotificationRetryRequested {
                    requested_by,
                    at,
                }),
                NotificationEvent::NotificationQueued(AttemptEvent { attempt: 1, at }),
            ],
            _ => return Err(refused),
        };
        Ok(events)
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
                self.total_attempts += 1;
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
