//! Custodians: the people (and roles) using Keryu.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checks::{require_active, require_text};
use crate::error::Violation;
use crate::event::event_enum;
use crate::{
    Aggregate, ContainsPersonalData, CustodianId, DataOwner, DomainError, Email, PersonalData,
    PhoneNumber, Role,
};

/// A password hash in PHC string form (argon2id), computed by an adapter: the domain never sees
/// a password. `Debug` prints a mask, so the hash never reaches a log through the state or an
/// event.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl PasswordHash {
    /// Checks the PHC shape (`$<algorithm>$…`, no whitespace), so that a password typed into
    /// the wrong field is refused instead of being stored as if it were a hash.
    fn validate(&self) -> Result<(), DomainError> {
        let algorithm = self
            .0
            .strip_prefix('$')
            .and_then(|rest| rest.split('$').next())
            .unwrap_or_default();
        let valid = !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && self.0.len() <= MAX_PASSWORD_HASH_BYTES
            && !self.0.chars().any(char::is_whitespace);
        if valid {
            Ok(())
        } else {
            Err(DomainError::invalid(
                "password_hash",
                Violation::NotAPasswordHash,
            ))
        }
    }
}

/// Far above any argon2 PHC string (about 100 bytes), low enough to refuse garbage.
const MAX_PASSWORD_HASH_BYTES: usize = 512;

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// The custodian aggregate.
///
/// Serialises (one way, without the password hash) so `keryu events replay` can print the
/// state as of a point in the log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Custodian {
    /// `None` until created.
    pub id: Option<CustodianId>,
    /// Login name.
    pub email: Option<Email>,
    /// Display name.
    pub name: String,
    /// What the custodian may do.
    pub role: Option<Role>,
    /// For password logins. Never serialised: a hash is a secret even in an audit.
    #[serde(skip)]
    pub password_hash: Option<PasswordHash>,
    /// Where alarms about the custodian's subjects reach them (WhatsApp); without one the
    /// custodian sees alarms in the API only.
    pub phone: Option<PhoneNumber>,
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
        /// Where alarms reach the custodian, if anywhere.
        phone: Option<PhoneNumber>,
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
    /// Where alarms reach the custodian (absent in events written before custodians had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneNumber>,
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

event_enum! {
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
}

/// A custodian's WhatsApp number is theirs. Their email and name stay readable: they sign in
/// with the email and the audit trail names who acted.
impl ContainsPersonalData for CustodianEvent {
    fn personal_data(&self) -> Option<PersonalData> {
        match self {
            CustodianEvent::CustodianCreated(_) => Some(PersonalData {
                owner: DataOwner::ThisStream,
                fields: &["phone"],
            }),
            _ => None,
        }
    }
}

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
                phone,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists {
                        aggregate: Self::CATEGORY,
                    });
                }
                require_text("name", &name, 200)?;
                password_hash.validate()?;
                CustodianEvent::CustodianCreated(CustodianCreated {
                    id,
                    email,
                    name,
                    role,
                    password_hash,
                    phone,
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
                password_hash.validate()?;
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
                self.phone.clone_from(&created.phone);
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
mod tests;
