use chrono::TimeZone;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::testing::{assert_stored_form, given, run_history};
use crate::{DomainEvent, Violation};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
        .single()
        .expect("valid time")
}

fn raise(location: Option<Location>) -> AlarmCommand {
    AlarmCommand::Raise {
        id: AlarmId(Uuid::nil()),
        subject_id: SubjectId(Uuid::nil()),
        situation: Situation::Lost,
        description: "Not home".to_owned(),
        location,
        raised_by: "integrator".to_owned(),
        at: at(),
    }
}

fn raised() -> AlarmEvent {
    AlarmEvent::AlarmRaised(AlarmRaised {
        id: AlarmId(Uuid::nil()),
        subject_id: SubjectId(Uuid::nil()),
        situation: Situation::Lost,
        description: "Not home".to_owned(),
        location: None,
        raised_by: "integrator".to_owned(),
        at: at(),
    })
}

fn handled(note: Option<&str>) -> AlarmHandled {
    AlarmHandled {
        by: "ana".to_owned(),
        note: note.map(str::to_owned),
        at: at(),
    }
}

fn acknowledge() -> AlarmCommand {
    AlarmCommand::Acknowledge {
        by: "ana".to_owned(),
        at: at(),
    }
}

fn resolve() -> AlarmCommand {
    AlarmCommand::Resolve {
        by: "ana".to_owned(),
        note: Some("Found".to_owned()),
        at: at(),
    }
}

#[test]
fn raise_acknowledge_resolve() {
    given::<Alarm>(&[]).when(raise(None)).then(&[raised()]);
    given::<Alarm>(&[raised()])
        .when(acknowledge())
        .then(&[AlarmEvent::AlarmAcknowledged(handled(None))]);
    let closed = given::<Alarm>(&[raised(), AlarmEvent::AlarmAcknowledged(handled(None))])
        .when(resolve())
        .then(&[AlarmEvent::AlarmResolved(handled(Some("Found")))]);
    assert!(!closed.is_open());
    // Resolving without acknowledging first is allowed.
    given::<Alarm>(&[raised()])
        .when(resolve())
        .then(&[AlarmEvent::AlarmResolved(handled(Some("Found")))]);
}

#[test]
fn refused_transitions() {
    let acknowledged = [raised(), AlarmEvent::AlarmAcknowledged(handled(None))];
    let resolved = [raised(), AlarmEvent::AlarmResolved(handled(None))];
    given::<Alarm>(&[raised()])
        .when(raise(None))
        .then_error(DomainError::AlreadyExists { aggregate: "alarm" });
    given::<Alarm>(&[])
        .when(acknowledge())
        .then_error(DomainError::NotFound { aggregate: "alarm" });
    given::<Alarm>(&acknowledged)
        .when(acknowledge())
        .then_error(DomainError::InvalidTransition {
            aggregate: "alarm",
            from: "acknowledged",
            command: "acknowledge",
        });
    given::<Alarm>(&resolved)
        .when(acknowledge())
        .then_error(DomainError::InvalidTransition {
            aggregate: "alarm",
            from: "resolved",
            command: "acknowledge",
        });
    given::<Alarm>(&resolved)
        .when(resolve())
        .then_error(DomainError::InvalidTransition {
            aggregate: "alarm",
            from: "resolved",
            command: "resolve",
        });
    given::<Alarm>(&[])
        .when(AlarmCommand::Raise {
            id: AlarmId(Uuid::nil()),
            subject_id: SubjectId(Uuid::nil()),
            situation: Situation::Test,
            description: " ".to_owned(),
            location: None,
            raised_by: "integrator".to_owned(),
            at: at(),
        })
        .then_error(DomainError::invalid("description", Violation::Blank));
    for bad in [
        Location {
            latitude: 91.0,
            longitude: 0.0,
        },
        Location {
            latitude: 0.0,
            longitude: -181.0,
        },
        Location {
            latitude: f64::NAN,
            longitude: 0.0,
        },
    ] {
        assert!(matches!(
            given::<Alarm>(&[]).when(raise(Some(bad))).then_refused(),
            DomainError::InvalidValue {
                field: "latitude" | "longitude",
                reason: Violation::OutOfRange { .. }
            }
        ));
    }
}

#[test]
fn every_event_has_its_stable_stored_form() {
    let events = [
        raised(),
        AlarmEvent::AlarmAcknowledged(handled(None)),
        AlarmEvent::AlarmResolved(handled(Some("ok"))),
    ];
    for event in &events {
        assert_stored_form(event);
    }
    let names: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(names, AlarmEvent::EVENT_TYPES);
    // The stored names, spelled out: renaming a variant must not rename stored events.
    assert_eq!(
        AlarmEvent::EVENT_TYPES,
        ["AlarmRaised", "AlarmAcknowledged", "AlarmResolved"]
    );
}

proptest! {
    #[test]
    fn any_history_replays_to_the_same_state(choices in prop::collection::vec(0u8..3, 0..12)) {
        let commands = choices
            .into_iter()
            .map(|choice| match choice {
                0 => raise(Some(Location { latitude: 40.4, longitude: -3.7 })),
                1 => acknowledge(),
                _ => resolve(),
            })
            .collect();
        run_history::<Alarm>(commands);
    }
}
