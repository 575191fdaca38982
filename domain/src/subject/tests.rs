use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::testing::{assert_stored_form, given, run_history};
use crate::{DomainEvent, Violation};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
        .single()
        .expect("valid time")
}

fn phone(raw: &str) -> PhoneNumber {
    raw.parse().expect("valid phone")
}

fn registered() -> SubjectEvent {
    SubjectEvent::SubjectRegistered(SubjectRegistered {
        id: SubjectId(Uuid::nil()),
        name: Personal::Known("Ana".to_owned()),
        phone: Personal::Known(phone("+14155238886")),
        preferences: json!({ "language": "es" }),
        at: at(),
    })
}

fn erased() -> SubjectEvent {
    SubjectEvent::SubjectErased(Occurred { at: at() })
}

fn deactivated() -> SubjectEvent {
    SubjectEvent::SubjectDeactivated(Occurred { at: at() })
}

fn update(name: Option<&str>) -> SubjectCommand {
    SubjectCommand::Update {
        name: name.map(str::to_owned),
        phone: None,
        preferences: None,
        at: at(),
    }
}

#[test]
fn registers_once_with_valid_details() {
    let register = |name: &str, preferences| SubjectCommand::Register {
        id: SubjectId(Uuid::nil()),
        name: name.to_owned(),
        phone: phone("+14155238886"),
        preferences,
        at: at(),
    };
    let subject = given::<Subject>(&[])
        .when(register("Ana", json!({ "language": "es" })))
        .then(&[registered()]);
    assert!(subject.active);
    given::<Subject>(&[])
        .when(register(" ", json!({})))
        .then_error(DomainError::invalid("name", Violation::Blank));
    given::<Subject>(&[])
        .when(register("Ana", json!([1])))
        .then_error(DomainError::invalid(
            "preferences",
            Violation::NotAJsonObject,
        ));
    given::<Subject>(&[registered()])
        .when(register("Ana", json!({})))
        .then_error(DomainError::AlreadyExists {
            aggregate: "subject",
        });
}

#[test]
fn updates_record_only_what_changed() {
    given::<Subject>(&[registered()])
        .when(SubjectCommand::Update {
            name: Some("Ana".to_owned()),
            phone: Some(phone("+34600111222")),
            preferences: None,
            at: at(),
        })
        .then(&[SubjectEvent::SubjectUpdated(SubjectUpdated {
            name: None,
            phone: Some(phone("+34600111222")),
            preferences: None,
            at: at(),
        })]);
    given::<Subject>(&[registered()])
        .when(update(Some("Ana")))
        .then(&[]);
    given::<Subject>(&[registered()])
        .when(SubjectCommand::Update {
            name: None,
            phone: None,
            preferences: Some(json!("es")),
            at: at(),
        })
        .then_error(DomainError::invalid(
            "preferences",
            Violation::NotAJsonObject,
        ));
    given::<Subject>(&[])
        .when(update(Some("B")))
        .then_error(DomainError::NotFound {
            aggregate: "subject",
        });
}

#[test]
fn deactivation_is_final_and_idempotent() {
    let subject = given::<Subject>(&[registered()])
        .when(SubjectCommand::Deactivate { at: at() })
        .then(&[deactivated()]);
    assert!(!subject.active);
    given::<Subject>(&[registered(), deactivated()])
        .when(SubjectCommand::Deactivate { at: at() })
        .then(&[]);
    given::<Subject>(&[registered(), deactivated()])
        .when(update(Some("Other")))
        .then_error(DomainError::InvalidTransition {
            aggregate: "subject",
            from: "inactive",
            command: "update",
        });
    given::<Subject>(&[registered(), deactivated()])
        .when(SubjectCommand::AssignCustodians {
            custodian_ids: BTreeSet::new(),
            at: at(),
        })
        .then_error(DomainError::InvalidTransition {
            aggregate: "subject",
            from: "inactive",
            command: "assign custodians",
        });
    given::<Subject>(&[])
        .when(SubjectCommand::Deactivate { at: at() })
        .then_error(DomainError::NotFound {
            aggregate: "subject",
        });
}

#[test]
fn custodians_are_replaced_as_a_set() {
    let custodians = BTreeSet::from([
        CustodianId(Uuid::from_u128(1)),
        CustodianId(Uuid::from_u128(2)),
    ]);
    let assign = SubjectCommand::AssignCustodians {
        custodian_ids: custodians.clone(),
        at: at(),
    };
    let assigned = SubjectEvent::SubjectCustodiansAssigned(SubjectCustodiansAssigned {
        custodian_ids: custodians.clone(),
        at: at(),
    });
    let subject = given::<Subject>(&[registered()])
        .when(assign.clone())
        .then(std::slice::from_ref(&assigned));
    assert_eq!(subject.custodians, custodians);
    given::<Subject>(&[registered(), assigned])
        .when(assign)
        .then(&[]);
}

#[test]
fn every_event_has_its_stable_stored_form() {
    let events = [
        registered(),
        SubjectEvent::SubjectUpdated(SubjectUpdated {
            name: Some("B".to_owned()),
            phone: None,
            preferences: None,
            at: at(),
        }),
        deactivated(),
        SubjectEvent::SubjectCustodiansAssigned(SubjectCustodiansAssigned {
            custodian_ids: BTreeSet::new(),
            at: at(),
        }),
        erased(),
    ];
    for event in &events {
        assert_stored_form(event);
    }
    let names: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(names, SubjectEvent::EVENT_TYPES);
    // The stored names, spelled out: renaming a variant must not rename stored events.
    assert_eq!(
        SubjectEvent::EVENT_TYPES,
        [
            "SubjectRegistered",
            "SubjectUpdated",
            "SubjectDeactivated",
            "SubjectCustodiansAssigned",
            "SubjectErased",
        ]
    );
}

fn command() -> impl Strategy<Value = SubjectCommand> {
    let names = prop_oneof![Just("Ana"), Just("Luis"), Just("")];
    let phones = prop_oneof![Just("+14155238886"), Just("+34600111222")];
    prop_oneof![
        (names.clone(), phones.clone()).prop_map(|(name, number)| SubjectCommand::Register {
            id: SubjectId(Uuid::nil()),
            name: name.to_owned(),
            phone: phone(number),
            preferences: json!({}),
            at: at(),
        }),
        (proptest::option::of(names), proptest::option::of(phones)).prop_map(|(name, number)| {
            SubjectCommand::Update {
                name: name.map(str::to_owned),
                phone: number.map(phone),
                preferences: None,
                at: at(),
            }
        }),
        Just(SubjectCommand::Deactivate { at: at() }),
        prop::collection::btree_set(0u128..4, 0..3).prop_map(|ids| {
            SubjectCommand::AssignCustodians {
                custodian_ids: ids
                    .into_iter()
                    .map(|id| CustodianId(Uuid::from_u128(id)))
                    .collect(),
                at: at(),
            }
        }),
    ]
}

proptest! {
    #[test]
    fn any_history_replays_to_the_same_state(commands in prop::collection::vec(command(), 0..25)) {
        let (subject, history) = run_history::<Subject>(commands);
        let deactivated = history.iter().any(|e| matches!(e, SubjectEvent::SubjectDeactivated(_)));
        prop_assert_eq!(subject.active, subject.id.is_some() && !deactivated);
    }
}

#[test]
fn erasing_forgets_the_personal_data_and_deactivates_for_good() {
    let subject = given::<Subject>(&[registered()])
        .when(SubjectCommand::Erase { at: at() })
        .then(&[erased()]);
    assert!(subject.erased && !subject.active);
    assert_eq!((subject.name.as_str(), subject.phone), ("", None));
    assert_eq!(subject.preferences, serde_json::Value::Null);
    // Once erased, nothing but erasing again (a no-op) applies.
    given::<Subject>(&[registered(), erased()])
        .when(SubjectCommand::Erase { at: at() })
        .then(&[]);
    given::<Subject>(&[registered(), deactivated()])
        .when(SubjectCommand::Erase { at: at() })
        .then(&[erased()]);
    given::<Subject>(&[registered(), erased()])
        .when(update(Some("Bea")))
        .then_error(DomainError::InvalidTransition {
            aggregate: "subject",
            from: "inactive",
            command: "update",
        });
    given::<Subject>(&[])
        .when(SubjectCommand::Erase { at: at() })
        .then_error(DomainError::NotFound {
            aggregate: "subject",
        });
}

#[test]
fn a_registration_read_back_after_erasure_replays_without_the_personal_data() {
    let registration_after_erasure = SubjectEvent::SubjectRegistered(SubjectRegistered {
        id: SubjectId(Uuid::nil()),
        name: Personal::Erased,
        phone: Personal::Erased,
        preferences: serde_json::Value::Null,
        at: at(),
    });
    let subject = Subject::default()
        .evolve(&registration_after_erasure)
        .evolve(&erased());
    assert_eq!(subject.id, Some(SubjectId(Uuid::nil())));
    assert!(subject.erased && subject.phone.is_none() && subject.name.is_empty());
}

#[test]
fn personal_fields_are_declared_and_owned_by_the_subject() {
    let declared = registered()
        .personal_data()
        .expect("registration is personal");
    assert_eq!(declared.owner, DataOwner::ThisStream);
    assert_eq!(declared.fields, ["name", "phone", "preferences"]);
    assert_eq!(erased().personal_data(), None);
}
