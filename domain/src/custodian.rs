//! Custodians: the people (and roles) using Keryu.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{require_active, require_text};
use crate::event::event_names;
use crate::{Aggregate, CustodianId, DomainError, Email, Role};

/// A password hash in PHC string form (argon2id), computed by an adapter: the domain never sees
/// a password. `Debug` prints a mask, so the hash never reaches a log through the state or an
/// event.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// The custodian aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Custodian {
    /// `None` until created.
    pub id: Option<CustodianId>,
    /// Login name.
    pub email: Option<Email>,
    /// Display name.
    pub name: String,
    /// What the custodian may do.
    pub role: Option<Role>,
    /// For password logins.
    pub password_hash: Option<PasswordHash>,
    /// Deactivated custodians cannot log in.
    pub active: bool,
}

/// Commands of [`Custodian`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustodianCommand {
    /// Create a custodian.
    Create {
        /// The new custodian's id.
        id: CustodianId,
        /// Login name.
        email: Email,
        /// Display name.
        name: String,
        /// Role.
        role: Role,
        /// Hash of the initial password.
        password_hash: PasswordHash,
        /// When.
        at: DateTime<Utc>,
    },
    /// Give another role.
    ChangeRole {
        /// The new role.
        role: Role,
        /// When.
        at: DateTime<Utc>,
    },
    /// Replace the password.
    ChangePassword {
        /// Hash of the new password.
        password_hash: PasswordHash,
        /// When.
        at: DateTime<Utc>,
    },
    /// Revoke access.
    Deactivate {
        /// When.
        at: DateTime<Utc>,
    },
}

/// Payload of [`CustodianEvent::CustodianCreated`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustodianCreated {
    /// The custodian's id.
    pub id: CustodianId,
    /// Login name.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Password hash.
    pub password_hash: PasswordHash,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`CustodianEvent::CustodianRoleChanged`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustodianRoleChanged {
    /// The new role.
    pub role: Role,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`CustodianEvent::CustodianPasswordChanged`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustodianPasswordChanged {
    /// The new hash.
    pub password_hash: PasswordHash,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`CustodianEvent::CustodianDeactivated`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustodianDeactivated {
    /// When.
    pub at: DateTime<Utc>,
}

/// Events of [`Custodian`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", content = "data")]
pub enum CustodianEvent {
    /// A custodian was created.
    CustodianCreated(CustodianCreated),
    /// Their role changed.
    CustodianRoleChanged(CustodianRoleChanged),
    /// Their password changed.
    CustodianPasswordChanged(CustodianPasswordChanged),
    /// Their access was revoked.
    CustodianDeactivated(CustodianDeactivated),
}

event_names!(CustodianEvent {
    CustodianCreated(CustodianCreated),
    CustodianRoleChanged(CustodianRoleChanged),
    CustodianPasswordChanged(CustodianPasswordChanged),
    CustodianDeactivated(CustodianDeactivated),
});

impl Aggregate for Custodian {
    const CATEGORY: &'static str = "custodian";
    type Command = CustodianCommand;
    type Event = CustodianEvent;

    fn decide(&self, command: CustodianCommand) -> Result<Vec<CustodianEvent>, DomainError> {
        let require_active =
            |command| require_active(Self::CATEGORY, self.id.is_some(), self.active, command);
        let event = match command {
            CustodianCommand::Create {
                id,
                email,
                name,
                role,
                password_hash,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists {
                        aggregate: Self::CATEGORY,
                    });
                }
                require_text("name", &name, 200)?;
                CustodianEvent::CustodianCreated(CustodianCreated {
                    id,
                    email,
                    name,
                    role,
                    password_hash,
                    at,
                })
            }
            CustodianCommand::ChangeRole { role, at } => {
                require_active("change role")?;
                if Some(role) == self.role {
                    return Ok(Vec::new());
                }
                CustodianEvent::CustodianRoleChanged(CustodianRoleChanged { role, at })
            }
            CustodianCommand::ChangePassword { password_hash, at } => {
                require_active("change password")?;
                CustodianEvent::CustodianPasswordChanged(CustodianPasswordChanged {
                    password_hash,
                    at,
                })
            }
            CustodianCommand::Deactivate { at } => {
                // Deactivating again is a harmless retry.
                if self.id.is_some() && !self.active {
                    return Ok(Vec::new());
                }
                require_active("deactivate")?;
                CustodianEvent::CustodianDeactivated(CustodianDeactivated { at })
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &CustodianEvent) -> Self {
        match event {
            CustodianEvent::CustodianCreated(created) => {
                self.id = Some(created.id);
                self.email = Some(created.email.clone());
                self.name.clone_from(&created.name);
                self.role = Some(created.role);
                self.password_hash = Some(created.password_hash.clone());
                self.active = true;
            }
            CustodianEvent::CustodianRoleChanged(changed) => self.role = Some(changed.role),
            CustodianEvent::CustodianPasswordChanged(changed) => {
                self.password_hash = Some(changed.password_hash.clone());
            }
            CustodianEvent::CustodianDeactivated(_) => self.active = false,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::DomainEvent;
    use crate::testing::{assert_stored_form, given, run_history};

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
            .then_refused();
        given::<Custodian>(&[created(), deactivated()])
            .when(CustodianCommand::Deactivate { at: at() })
            .then(&[]);
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
}
