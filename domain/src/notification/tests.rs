use std::collections::BTreeMap;

use chrono::{Duration, TimeZone};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::testing::{assert_stored_form, given, run_history};
use crate::{
    ContainsPersonalData, DataOwner, DomainEvent, NotificationId, RetryPolicy, SubjectId,
    TemplateId, Violation,
};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
        .single()
        .expect("valid time")
}

fn later(seconds: i64) -> DateTime<Utc> {
    at() + Duration::seconds(seconds)
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        jitter: 0.0,
        ..RetryPolicy::with_max_attempts(max_attempts).expect("valid policy")
    }
}

fn create(scheduled_for: Option<DateTime<Utc>>, max_attempts: u32) -> NotificationCommand {
    NotificationCommand::Create {
        id: NotificationId(Uuid::nil()),
        subject_id: SubjectId(Uuid::nil()),
        recipient: "+14155238886".parse().expect("valid phone"),
        content: NotificationContent::FreeText {
            body: "Hola".to_owned(),
        },
        scheduled_for,
        retry_policy: policy(max_attempts),
        alarm_id: None,
        at: at(),
    }
}

fn created(scheduled_for: Option<DateTime<Utc>>, max_attempts: u32) -> NotificationEvent {
    let Ok(events) = Notification::default().decide(create(scheduled_for, max_attempts)) else {
        panic!("create is accepted");
    };
    events[0].clone()
}

fn queued(attempt: u32) -> NotificationEvent {
    NotificationEvent::NotificationQueued(AttemptEvent { attempt, at: at() })
}

fn started(attempt: u32) -> NotificationEvent {
    NotificationEvent::DeliveryAttemptStarted(DeliveryAttemptStarted {
        attempt,
        dispatcher: "d1".to_owned(),
        at: at(),
    })
}

fn sent(attempt: u32) -> NotificationEvent {
    NotificationEvent::NotificationSent(NotificationSent {
        attempt,
        provider_message_id: "SM00000000000000000000000000000001".to_owned(),
        at: at(),
    })
}

fn attempt_failed(attempt: u32, kind: FailureKind) -> NotificationEvent {
    NotificationEvent::DeliveryAttemptFailed(DeliveryAttemptFailed {
        attempt,
        error: DeliveryError {
            code: Some(20429),
            message: "busy".to_owned(),
        },
        kind,
        at: at(),
    })
}

fn failed(reason: FailureReason) -> NotificationEvent {
    NotificationEvent::NotificationFailed(NotificationFailed { reason, at: at() })
}

fn retry_scheduled(next_attempt: u32, delay_ms: i64) -> NotificationEvent {
    NotificationEvent::RetryScheduled(RetryScheduled {
        next_attempt,
        not_before: at() + Duration::milliseconds(delay_ms),
        at: at(),
    })
}

fn reached(event: fn(StatusReached) -> NotificationEvent) -> NotificationEvent {
    event(StatusReached { at: at() })
}

fn undelivered() -> NotificationEvent {
    NotificationEvent::NotificationUndelivered(NotificationUndelivered {
        error: DeliveryError {
            code: Some(30008),
            message: "unknown".to_owned(),
        },
        at: at(),
    })
}

fn cancelled() -> NotificationEvent {
    NotificationEvent::NotificationCancelled(NotificationCancelled {
        reason: "no longer needed".to_owned(),
        at: at(),
    })
}

/// A history reaching each status.
fn history(status: NotificationStatus) -> Vec<NotificationEvent> {
    use NotificationStatus as S;
    let base = vec![created(None, 3), queued(1)];
    let processing = [base.clone(), vec![started(1)]].concat();
    let sent_history = [processing.clone(), vec![sent(1)]].concat();
    match status {
        S::Created => vec![created(None, 3)],
        S::Scheduled => vec![
            created(Some(later(60)), 3),
            NotificationEvent::NotificationScheduled(NotificationScheduled {
                scheduled_for: later(60),
                at: at(),
            }),
        ],
        S::Queued => base,
        S::Processing => processing,
        S::Sent => sent_history,
        S::Delivered => [
            sent_history,
            vec![reached(NotificationEvent::NotificationDelivered)],
        ]
        .concat(),
        S::Read => [
            sent_history,
            vec![reached(NotificationEvent::NotificationRead)],
        ]
        .concat(),
        S::Undelivered => [sent_history, vec![undelivered()]].concat(),
        S::RetryScheduled => [
            processing,
            vec![
                attempt_failed(1, FailureKind::Transient),
                retry_scheduled(2, 1_000),
            ],
        ]
        .concat(),
        S::Failed => [
            processing,
            vec![
                attempt_failed(1, FailureKind::Permanent),
                failed(FailureReason::PermanentError),
            ],
        ]
        .concat(),
        S::Cancelled => [base, vec![cancelled()]].concat(),
    }
}

/// One command of each kind, with values valid in the state that accepts it.
fn commands() -> Vec<NotificationCommand> {
    vec![
        create(None, 3),
        NotificationCommand::Queue { at: later(3_600) },
        NotificationCommand::StartAttempt {
            dispatcher: "d2".to_owned(),
            at: at(),
        },
        NotificationCommand::RecordSent {
            provider_message_id: "SM1".to_owned(),
            at: at(),
        },
        NotificationCommand::RecordAttemptFailure {
            error_code: Some(21211),
            error_message: "invalid To".to_owned(),
            kind: FailureKind::Permanent,
            random_unit: 0.5,
            at: at(),
        },
        NotificationCommand::RecordOutcomeUnknown {
            policy: OutcomeUnknownPolicy::Fail,
            random_unit: 0.5,
            at: at(),
        },
        NotificationCommand::RecordProviderStatus {
            status: ProviderStatus::Read,
            error_code: None,
            error_message: None,
            at: at(),
        },
        NotificationCommand::Cancel {
            reason: "changed plans".to_owned(),
            at: at(),
        },
        NotificationCommand::Retry {
            requested_by: "admin".to_owned(),
            at: at(),
        },
    ]
}

/// The whole state machine: which command each status accepts, and the status it leads to
/// (with the values of `commands()`); every other command is refused with a typed error.
#[test]
fn every_status_accepts_exactly_its_commands() {
    use NotificationStatus as S;
    let accepted: &[(S, &[(&str, S)])] = &[
        (S::Created, &[]),
        (
            S::Scheduled,
            &[("queue", S::Queued), ("cancel", S::Cancelled)],
        ),
        (
            S::Queued,
            &[
                ("start an attempt", S::Processing),
                ("cancel", S::Cancelled),
            ],
        ),
        (
            S::Processing,
            &[
                ("record a send", S::Sent),
                ("record a failed attempt", S::Failed),
                ("record an unknown outcome", S::Failed),
            ],
        ),
        (S::Sent, &[("record a provider status", S::Read)]),
        (S::Delivered, &[("record a provider status", S::Read)]),
        (S::Read, &[("record a provider status", S::Read)]),
        (
            S::Undelivered,
            &[("record a provider status", S::Undelivered)],
        ),
        (
            S::RetryScheduled,
            &[("queue", S::Queued), ("cancel", S::Cancelled)],
        ),
        (S::Failed, &[("retry", S::Queued)]),
        (S::Cancelled, &[]),
    ];
    assert_eq!(accepted.len(), NotificationStatus::ALL.len());
    for (status, allowed) in accepted {
        let state = Notification::replay(&history(*status));
        assert_eq!(state.status(), *status, "history of {status:?}");
        for command in commands() {
            let name = command.name();
            let outcome = state.decide(command);
            if let Some((_, next)) = allowed.iter().find(|(allowed, _)| *allowed == name) {
                let Ok(events) = outcome else {
                    panic!("{status:?} refused {name}: {outcome:?}");
                };
                let after = events.iter().fold(state.clone(), Notification::evolve);
                assert_eq!(after.status(), *next, "{status:?} then {name}");
            } else if name == "create" {
                assert_eq!(
                    outcome,
                    Err(DomainError::AlreadyExists {
                        aggregate: "notification"
                    })
                );
            } else {
                assert_eq!(
                    outcome,
                    Err(DomainError::InvalidTransition {
                        aggregate: "notification",
                        from: status.as_str(),
                        command: name,
                    }),
                    "{status:?} accepted {name}"
                );
            }
        }
    }
}

#[test]
fn nothing_but_create_applies_before_creation() {
    for command in commands().into_iter().skip(1) {
        given::<Notification>(&[])
            .when(command)
            .then_error(DomainError::NotFound {
                aggregate: "notification",
            });
    }
}

#[test]
fn create_queues_now_or_schedules_for_later() {
    given::<Notification>(&[])
        .when(create(None, 3))
        .then(&[created(None, 3), queued(1)]);
    given::<Notification>(&[])
        .when(create(Some(at() - Duration::seconds(5)), 3))
        .then(&[created(Some(at() - Duration::seconds(5)), 3), queued(1)]);
    let scheduled = given::<Notification>(&[])
        .when(create(Some(later(60)), 3))
        .then(&[
            created(Some(later(60)), 3),
            NotificationEvent::NotificationScheduled(NotificationScheduled {
                scheduled_for: later(60),
                at: at(),
            }),
        ]);
    assert_eq!(scheduled.not_before, Some(later(60)));
}

#[test]
fn create_validates_its_content_and_policy() {
    let with = |content, retry_policy| NotificationCommand::Create {
        id: NotificationId(Uuid::nil()),
        subject_id: SubjectId(Uuid::nil()),
        recipient: "+14155238886".parse().expect("valid phone"),
        content,
        scheduled_for: None,
        retry_policy,
        alarm_id: None,
        at: at(),
    };
    let text = |body: String| NotificationContent::FreeText { body };
    let template =
        |content_sid: Option<&str>, rendered_body: String| NotificationContent::Template {
            template_id: TemplateId(Uuid::nil()),
            template_version: 2,
            content_sid: content_sid.map(str::to_owned),
            variables: BTreeMap::from([("1".to_owned(), "Ana".to_owned())]),
            rendered_body,
        };
    let sid = "HX0123456789abcdef0123456789abcdef";
    let mut too_many = policy(3);
    too_many.max_attempts = 11;
    let version_zero = NotificationContent::Template {
        template_id: TemplateId(Uuid::nil()),
        template_version: 0,
        content_sid: None,
        variables: BTreeMap::new(),
        rendered_body: "Hola".to_owned(),
    };
    let cases = [
        (
            with(text(" ".to_owned()), policy(3)),
            DomainError::invalid("body", Violation::Blank),
        ),
        (
            with(text("x".repeat(1_601)), policy(3)),
            DomainError::invalid(
                "body",
                Violation::TooLong {
                    length: 1_601,
                    max: 1_600,
                },
            ),
        ),
        (
            with(text("ok".to_owned()), too_many),
            DomainError::invalid(
                "max_attempts",
                Violation::OutOfRange {
                    expected: "between 1 and 10",
                },
            ),
        ),
        (
            with(version_zero, policy(3)),
            DomainError::invalid(
                "template_version",
                Violation::OutOfRange {
                    expected: "at least 1",
                },
            ),
        ),
        (
            with(template(Some("HX1"), "Hola Ana".to_owned()), policy(3)),
            DomainError::invalid("content_sid", Violation::NotAContentSid),
        ),
        (
            with(template(Some(sid), "x".repeat(1_025)), policy(3)),
            DomainError::invalid(
                "rendered_body",
                Violation::TooLong {
                    length: 1_025,
                    max: 1_024,
                },
            ),
        ),
    ];
    for (command, expected) in cases {
        given::<Notification>(&[])
            .when(command)
            .then_error(expected);
    }
    for accepted in [
        template(None, "Hola Ana".to_owned()),
        template(None, "x".repeat(1_600)),
        template(Some(sid), "x".repeat(1_024)),
    ] {
        assert!(
            Notification::default()
                .decide(with(accepted, policy(3)))
                .is_ok()
        );
    }
}

#[test]
fn a_scheduled_notification_is_queued_only_when_due() {
    let scheduled = history(NotificationStatus::Scheduled);
    given::<Notification>(&scheduled)
        .when(NotificationCommand::Queue { at: later(59) })
        .then_error(DomainError::invalid(
            "at",
            Violation::NotDue {
                not_before: later(60),
            },
        ));
    given::<Notification>(&scheduled)
        .when(NotificationCommand::Queue { at: later(60) })
        .then(&[NotificationEvent::NotificationQueued(AttemptEvent {
            attempt: 1,
            at: later(60),
        })]);
}

#[test]
fn a_transient_failure_schedules_a_retry_with_backoff() {
    let state = given::<Notification>(&history(NotificationStatus::Processing))
        .when(NotificationCommand::RecordAttemptFailure {
            error_code: Some(20429),
            error_message: "busy".to_owned(),
            kind: FailureKind::Transient,
            random_unit: 0.0,
            at: at(),
        })
        .then(&[
            attempt_failed(1, FailureKind::Transient),
            retry_scheduled(2, 1_000),
        ]);
    assert_eq!(state.status, NotificationStatus::RetryScheduled);
    assert_eq!(state.last_error.and_then(|e| e.code), Some(20429));

    // Not before the backoff has passed; then attempt 2.
    let waiting = history(NotificationStatus::RetryScheduled);
    given::<Notification>(&waiting)
        .when(NotificationCommand::Queue { at: later(0) })
        .then_refused();
    let requeued = given::<Notification>(&waiting)
        .when(NotificationCommand::Queue { at: later(1) })
        .then(&[NotificationEvent::NotificationQueued(AttemptEvent {
            attempt: 2,
            at: later(1),
        })]);
    given::<Notification>(
        &[
            waiting,
            vec![NotificationEvent::NotificationQueued(AttemptEvent {
                attempt: 2,
                at: later(1),
            })],
        ]
        .concat(),
    )
    .when(NotificationCommand::StartAttempt {
        dispatcher: "d1".to_owned(),
        at: later(1),
    })
    .then(&[NotificationEvent::DeliveryAttemptStarted(
        DeliveryAttemptStarted {
            attempt: 2,
            dispatcher: "d1".to_owned(),
            at: later(1),
        },
    )]);
    assert_eq!(requeued.status, NotificationStatus::Queued);
}

#[test]
fn a_permanent_failure_fails_at_once() {
    given::<Notification>(&history(NotificationStatus::Processing))
        .when(NotificationCommand::RecordAttemptFailure {
            error_code: Some(21610),
            error_message: "unsubscribed".to_owned(),
            kind: FailureKind::Permanent,
            random_unit: 0.3,
            at: at(),
        })
        .then(&[
            NotificationEvent::DeliveryAttemptFailed(DeliveryAttemptFailed {
                attempt: 1,
                error: DeliveryError {
                    code: Some(21610),
                    message: "unsubscribed".to_owned(),
                },
                kind: FailureKind::Permanent,
                at: at(),
            }),
            failed(FailureReason::PermanentError),
        ]);
}

#[test]
fn the_last_attempt_of_a_round_fails_and_a_manual_retry_starts_a_new_round() {
    let last_attempt = vec![created(None, 1), queued(1), started(1)];
    let timeout = NotificationEvent::DeliveryAttemptFailed(DeliveryAttemptFailed {
        attempt: 1,
        error: DeliveryError {
            code: None,
            message: "timeout".to_owned(),
        },
        kind: FailureKind::Transient,
        at: at(),
    });
    let state = given::<Notification>(&last_attempt)
        .when(NotificationCommand::RecordAttemptFailure {
            error_code: None,
            error_message: "timeout".to_owned(),
            kind: FailureKind::Transient,
            random_unit: 0.0,
            at: at(),
        })
        .then(&[timeout.clone(), failed(FailureReason::MaxAttemptsReached)]);
    assert_eq!(state.status, NotificationStatus::Failed);

    let failed_history = [
        last_attempt,
        vec![timeout, failed(FailureReason::MaxAttemptsReached)],
    ]
    .concat();
    let retried = given::<Notification>(&failed_history)
        .when(NotificationCommand::Retry {
            requested_by: "admin".to_owned(),
            at: at(),
        })
        .then(&[
            NotificationEvent::NotificationRetryRequested(NotificationRetryRequested {
                requested_by: "admin".to_owned(),
                at: at(),
            }),
            queued(1),
        ]);
    assert_eq!((retried.attempt, retried.total_attempts), (0, 1));
}

#[test]
fn an_unknown_outcome_follows_the_policy() {
    let processing = history(NotificationStatus::Processing);
    let unknown = || {
        NotificationEvent::DeliveryOutcomeUnknown(AttemptEvent {
            attempt: 1,
            at: at(),
        })
    };
    given::<Notification>(&processing)
        .when(NotificationCommand::RecordOutcomeUnknown {
            policy: OutcomeUnknownPolicy::Retry,
            random_unit: 0.0,
            at: at(),
        })
        .then(&[unknown(), retry_scheduled(2, 1_000)]);
    given::<Notification>(&processing)
        .when(NotificationCommand::RecordOutcomeUnknown {
            policy: OutcomeUnknownPolicy::Fail,
            random_unit: 0.0,
            at: at(),
        })
        .then(&[unknown(), failed(FailureReason::OutcomeUnknown)]);
}

/// Every provider status in every state that accepts one: ranks `sent < delivered < read`,
/// failures only while sent, everything else a no-op.
#[test]
fn provider_statuses_never_move_backwards() {
    use NotificationStatus as S;
    use ProviderStatus as P;
    let status = |status| NotificationCommand::RecordProviderStatus {
        status,
        error_code: Some(30008),
        error_message: Some("unknown".to_owned()),
        at: at(),
    };
    let delivered = || vec![reached(NotificationEvent::NotificationDelivered)];
    let read = || vec![reached(NotificationEvent::NotificationRead)];
    let nothing = Vec::new;
    let cases = [
        (S::Sent, P::Delivered, delivered()),
        (S::Sent, P::Read, read()),
        (S::Sent, P::Undelivered, vec![undelivered()]),
        (S::Sent, P::Failed, vec![undelivered()]),
        (S::Delivered, P::Delivered, nothing()),
        (S::Delivered, P::Read, read()),
        (S::Delivered, P::Undelivered, nothing()),
        (S::Delivered, P::Failed, nothing()),
        (S::Read, P::Delivered, nothing()),
        (S::Read, P::Read, nothing()),
        (S::Read, P::Undelivered, nothing()),
        (S::Read, P::Failed, nothing()),
        (S::Undelivered, P::Delivered, nothing()),
        (S::Undelivered, P::Read, nothing()),
        (S::Undelivered, P::Undelivered, nothing()),
        (S::Undelivered, P::Failed, nothing()),
    ];
    for (from, reported, expected) in cases {
        given::<Notification>(&history(from))
            .when(status(reported))
            .then(&expected);
    }
}

#[test]
fn a_failure_without_a_message_gets_one() {
    let state = given::<Notification>(&history(NotificationStatus::Sent))
        .when(NotificationCommand::RecordProviderStatus {
            status: ProviderStatus::Failed,
            error_code: Some(63016),
            error_message: None,
            at: at(),
        })
        .then(&[NotificationEvent::NotificationUndelivered(
            NotificationUndelivered {
                error: DeliveryError {
                    code: Some(63016),
                    message: "the provider could not deliver it".to_owned(),
                },
                at: at(),
            },
        )]);
    assert_eq!(state.status(), NotificationStatus::Undelivered);
    assert_eq!(state.last_error.and_then(|error| error.code), Some(63016));
}

#[test]
fn random_units_outside_the_unit_interval_are_refused() {
    let out_of_range = DomainError::invalid(
        "random_unit",
        Violation::OutOfRange {
            expected: "at least 0 and below 1",
        },
    );
    for random_unit in [1.0, -0.5, f64::NAN] {
        given::<Notification>(&history(NotificationStatus::Processing))
            .when(NotificationCommand::RecordAttemptFailure {
                error_code: None,
                error_message: "timeout".to_owned(),
                kind: FailureKind::Transient,
                random_unit,
                at: at(),
            })
            .then_error(out_of_range.clone());
        given::<Notification>(&history(NotificationStatus::Processing))
            .when(NotificationCommand::RecordOutcomeUnknown {
                policy: OutcomeUnknownPolicy::Retry,
                random_unit,
                at: at(),
            })
            .then_error(out_of_range.clone());
    }
}

#[test]
fn a_retry_that_would_end_after_the_last_representable_time_is_refused() {
    let far = DateTime::<Utc>::MAX_UTC - Duration::milliseconds(500);
    given::<Notification>(&history(NotificationStatus::Processing))
        .when(NotificationCommand::RecordAttemptFailure {
            error_code: None,
            error_message: "timeout".to_owned(),
            kind: FailureKind::Transient,
            random_unit: 0.0,
            at: far,
        })
        .then_error(DomainError::invalid(
            "at",
            Violation::OutOfRange {
                expected: "a time a retry delay can be added to",
            },
        ));
}

#[test]
fn cancel_needs_a_reason() {
    given::<Notification>(&history(NotificationStatus::Queued))
        .when(NotificationCommand::Cancel {
            reason: String::new(),
            at: at(),
        })
        .then_refused();
    given::<Notification>(&history(NotificationStatus::Queued))
        .when(NotificationCommand::Cancel {
            reason: "no longer needed".to_owned(),
            at: at(),
        })
        .then(&[cancelled()]);
}

#[test]
fn every_event_has_its_stable_stored_form() {
    let events = [
        created(Some(later(5)), 3),
        NotificationEvent::NotificationScheduled(NotificationScheduled {
            scheduled_for: later(5),
            at: at(),
        }),
        queued(1),
        started(1),
        sent(1),
        attempt_failed(1, FailureKind::Transient),
        NotificationEvent::DeliveryOutcomeUnknown(AttemptEvent {
            attempt: 1,
            at: at(),
        }),
        retry_scheduled(2, 1_000),
        failed(FailureReason::MaxAttemptsReached),
        reached(NotificationEvent::NotificationDelivered),
        reached(NotificationEvent::NotificationRead),
        undelivered(),
        cancelled(),
        NotificationEvent::NotificationRetryRequested(NotificationRetryRequested {
            requested_by: "admin".to_owned(),
            at: at(),
        }),
    ];
    for event in &events {
        assert_stored_form(event);
    }
    let names: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(names, NotificationEvent::EVENT_TYPES);
    // Versions only go up, one upcaster each: RetryScheduled renamed a field in version 2.
    for event in &events {
        let expected = if event.event_type() == "RetryScheduled" {
            2
        } else {
            1
        };
        assert_eq!(event.schema_version(), expected, "{}", event.event_type());
    }
    // The stored names, spelled out: renaming a variant must not rename stored events.
    assert_eq!(
        NotificationEvent::EVENT_TYPES,
        [
            "NotificationCreated",
            "NotificationScheduled",
            "NotificationQueued",
            "DeliveryAttemptStarted",
            "NotificationSent",
            "DeliveryAttemptFailed",
            "DeliveryOutcomeUnknown",
            "RetryScheduled",
            "NotificationFailed",
            "NotificationDelivered",
            "NotificationRead",
            "NotificationUndelivered",
            "NotificationCancelled",
            "NotificationRetryRequested",
        ]
    );
}

/// Any command, with values chosen so that every transition is reachable.
fn command() -> impl Strategy<Value = NotificationCommand> {
    let time = (0i64..7_200).prop_map(later);
    let kind = prop_oneof![Just(FailureKind::Transient), Just(FailureKind::Permanent)];
    let policy_choice = prop_oneof![
        Just(OutcomeUnknownPolicy::Retry),
        Just(OutcomeUnknownPolicy::Fail)
    ];
    let provider = prop_oneof![
        Just(ProviderStatus::Delivered),
        Just(ProviderStatus::Read),
        Just(ProviderStatus::Undelivered),
        Just(ProviderStatus::Failed),
    ];
    prop_oneof![
        (proptest::option::of(time.clone()), 1u32..5).prop_map(|(when, max)| create(when, max)),
        time.clone()
            .prop_map(|at| NotificationCommand::Queue { at }),
        Just(NotificationCommand::StartAttempt {
            dispatcher: "d".to_owned(),
            at: at()
        }),
        Just(NotificationCommand::RecordSent {
            provider_message_id: "SM1".to_owned(),
            at: at()
        }),
        (kind, 0.0f64..1.0).prop_map(|(kind, random_unit)| {
            NotificationCommand::RecordAttemptFailure {
                error_code: Some(20429),
                error_message: "busy".to_owned(),
                kind,
                random_unit,
                at: at(),
            }
        }),
        (policy_choice, 0.0f64..1.0).prop_map(|(policy, random_unit)| {
            NotificationCommand::RecordOutcomeUnknown {
                policy,
                random_unit,
                at: at(),
            }
        }),
        provider.prop_map(|status| NotificationCommand::RecordProviderStatus {
            status,
            error_code: None,
            error_message: None,
            at: at(),
        }),
        Just(NotificationCommand::Cancel {
            reason: "r".to_owned(),
            at: at()
        }),
        Just(NotificationCommand::Retry {
            requested_by: "admin".to_owned(),
            at: at()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any sequence of accepted commands yields a state that its events alone reproduce, and the
    /// attempt number never passes the policy's maximum at any step.
    #[test]
    fn histories_replay_and_attempts_stay_within_the_maximum(
        commands in prop::collection::vec(command(), 0..60)
    ) {
        let mut state = Notification::default();
        for command in commands.clone() {
            if let Ok(events) = state.decide(command) {
                state = events.iter().fold(state, Notification::evolve);
            }
            if let Some(created) = &state.created {
                prop_assert!(state.attempt <= created.retry_policy.max_attempts);
            }
            prop_assert!(state.attempt <= state.total_attempts);
        }
        let (replayed, history) = run_history::<Notification>(commands);
        prop_assert_eq!(&replayed, &state);
        let starts = history
            .iter()
            .filter(|e| matches!(e, NotificationEvent::DeliveryAttemptStarted(_)))
            .count();
        prop_assert_eq!(u32::try_from(starts).ok(), Some(state.total_attempts));
    }
}

#[test]
fn a_queued_notification_of_an_erased_subject_is_cancelled_instead_of_attempted() {
    let NotificationEvent::NotificationCreated(mut read_back) = created(None, 3) else {
        panic!("the first event is the creation");
    };
    read_back.recipient = Personal::Erased;
    read_back.content = Personal::Erased;
    given::<Notification>(&[NotificationEvent::NotificationCreated(read_back), queued(1)])
        .when(NotificationCommand::StartAttempt {
            dispatcher: "d-1".to_owned(),
            at: at(),
        })
        .then(&[NotificationEvent::NotificationCancelled(
            NotificationCancelled {
                reason: RECIPIENT_ERASED.to_owned(),
                at: at(),
            },
        )]);
}

#[test]
fn the_number_and_the_text_belong_to_the_subject() {
    let declared = created(None, 3)
        .personal_data()
        .expect("a creation carries personal data");
    assert_eq!(declared.owner, DataOwner::Other(Uuid::nil()));
    assert_eq!(declared.fields, ["recipient", "content"]);
    assert_eq!(queued(1).personal_data(), None);
}
