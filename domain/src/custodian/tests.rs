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

fn hash() -> PasswordHash {
    PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned())
}

fn create(role: Role) -> CustodianCommand {
    CustodianCommand::Create {
        id: CustodianId(Uuid::nil()),
        email: "ana@example.org".parse().expect("valid email"),
        name: "Ana".to_owned(),
        role,
        password_hash: hash(),
        phone: Some("+15551230001".parse().expect("valid phone")),
        at: at(),
    }
}

fn created() -> CustodianEvent {
    CustodianEvent::CustodianCreated(CustodianCreated {
        id: CustodianId(Uuid::nil()),
        email: "ana@example.org".parse().expect("valid email"),
        name: "Ana".to_owned(),
        role: Role::Custodian,
        password_hash: hash(),
        phone: Some("+15551230001".parse().expect("valid phone")),
        at: at(),
    })
}

fn deactivated() -> CustodianEvent {
    CustodianEvent::CustodianDeactivated(CustodianDeactivated { at: at() })
}

#[test]
fn lifecycle() {
    given::<Custodian>(&[])
        .when(create(Role::Custodian))
        .then(&[created()]);
    given::<Custodian>(&[created()])
        .when(CustodianCommand::ChangeRole {
            role: Role::Admin,
            at: at(),
        })
        .then(
            &[CustodianEvent::CustodianRoleChanged(CustodianRoleChanged {
                role: Role::Admin,
                at: at(),
            })],
        );
    given::<Custodian>(&[created()])
        .when(CustodianCommand::ChangeRole {
            role: Role::Custodian,
            at: at(),
        })
        .then(&[]);
    given::<Custodian>(&[created()])
        .when(CustodianCommand::ChangePassword {
            password_hash: hash(),
            at: at(),
        })
        .then(&[CustodianEvent::CustodianPasswordChanged(
            CustodianPasswordChanged {
                password_hash: hash(),
                at: at(),
            },
        )]);
    let gone = given::<Custodian>(&[created()])
        .when(CustodianCommand::Deactivate { at: at() })
        .then(&[deactivated()]);
    assert!(!gone.active);
}

#[test]
fn refused_transitions() {
    given::<Custodian>(&[created()])
        .when(create(Role::Admin))
        .then_error(DomainError::AlreadyExists {
            aggregate: "custodian",
        });
    given::<Custodian>(&[])
        .when(CustodianCommand::Deactivate { at: at() })
        .then_error(DomainError::NotFound {
            aggregate: "custodian",
        });
    given::<Custodian>(&[created(), deactivated()])
        .when(CustodianCommand::ChangeRole {
            role: Role::Admin,
            at: at(),
        })
        .then_error(DomainError::InvalidTransition {
            aggregate: "custodian",
            from: "inactive",
            command: "change role",
        });
    given::<Custodian>(&[created(), deactivated()])
        .when(CustodianCommand::ChangePassword {
            password_hash: hash(),
            at: at(),
        })
        .then_error(DomainError::InvalidTransition {
            aggregate: "custodian",
            from: "inactive",
            command: "change password",
        });
    given::<Custodian>(&[created(), deactivated()])
        .when(CustodianCommand::Deactivate { at: at() })
        .then(&[]);
}

#[test]
fn only_phc_strings_are_stored_as_password_hashes() {
    let not_a_hash = DomainError::invalid("password_hash", Violation::NotAPasswordHash);
    for bad in [
        "",
        "hunter2",
        "$",
        "$$x",
        "$Argon2id$v=19",
        "$argon2id$v=19 m=1",
    ] {
        given::<Custodian>(&[created()])
            .when(CustodianCommand::ChangePassword {
                password_hash: PasswordHash(bad.to_owned()),
                at: at(),
            })
            .then_error(not_a_hash.clone());
    }
    given::<Custodian>(&[])
        .when(CustodianCommand::Create {
            id: CustodianId(Uuid::nil()),
            email: "ana@example.org".parse().expect("valid email"),
            name: "Ana".to_owned(),
            role: Role::Admin,
            password_hash: PasswordHash("hunter2".to_owned()),
            phone: None,
            at: at(),
        })
        .then_error(not_a_hash);
}

#[test]
fn the_hash_never_appears_in_debug_output() {
    let custodian = Custodian::replay(&[created()]);
    let printed = format!("{custodian:?} {:?}", created());
    assert!(!printed.contains("argon2id"), "{printed}");
}

#[test]
fn every_event_has_its_stable_stored_form() {
    let events = [
        created(),
        CustodianEvent::CustodianRoleChanged(CustodianRoleChanged {
            role: Role::Auditor,
            at: at(),
        }),
        CustodianEvent::CustodianPasswordChanged(CustodianPasswordChanged {
            password_hash: hash(),
            at: at(),
        }),
        deactivated(),
    ];
    for event in &events {
        assert_stored_form(event);
    }
    let names: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(names, CustodianEvent::EVENT_TYPES);
    // The stored names, spelled out: renaming a variant must not rename stored events.
    assert_eq!(
        CustodianEvent::EVENT_TYPES,
        [
            "CustodianCreated",
            "CustodianRoleChanged",
            "CustodianPasswordChanged",
            "CustodianDeactivated",
        ]
    );
}

proptest! {
    #[test]
    fn any_history_replays_to_the_same_state(choices in prop::collection::vec((0u8..4, 0usize..4), 0..12)) {
        let commands = choices
            .into_iter()
            .map(|(choice, role)| match choice {
                0 => create(Role::ALL[role]),
                1 => CustodianCommand::ChangeRole { role: Role::ALL[role], at: at() },
                2 => CustodianCommand::ChangePassword { password_hash: hash(), at: at() },
                _ => CustodianCommand::Deactivate { at: at() },
            })
            .collect();
        run_history::<Custodian>(commands);
    }
}
