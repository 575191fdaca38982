//! Subjects: the people notifications are about and sent to, and who looks after them.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checks::{require_active, require_text};
use crate::error::Violation;
use crate::event::event_enum;
use crate::{
    Aggregate, ContainsPersonalData, CustodianId, DataOwner, DomainError, Personal, PersonalData,
    PhoneNumber, SubjectId,
};

/// The subject aggregate.
///
/// Serialises (one way) so `keryu events replay` can print the state as of a point in the log.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Subject {
    /// `None` until registered.
    pub id: Option<SubjectId>,
    /// Display name.
    pub name: String,
    /// WhatsApp number notifications go to.
    pub phone: Option<PhoneNumber>,
    /// Free-form preferences (a JSON object), e.g. language or quiet hours.
    pub preferences: serde_json::Value,
    /// Deactivated subjects receive nothing; the log keeps their history.
    pub active: bool,
    /// Custodians who look after this subject (and are notified by its alarms).
    pub custodians: BTreeSet<CustodianId>,
    /// The subject's personal data was erased: name, number and preferences are gone from
    /// every event (their key is destroyed) and the subject is inactive for good.
    pub erased: bool,
}

/// Commands of [`Subject`].
#[derive(Debug, Clone, PartialEq)]
pub enum SubjectCommand {
    /// Register a new subject.
    Register {
        /// The new subject's id.
        id: SubjectId,
        /// Display name.
        name: String,
        /// WhatsApp number.
        phone: PhoneNumber,
        /// Preferences, a JSON object.
        preferences: serde_json::Value,
        /// When.
        at: DateTime<Utc>,
    },
    /// Change some details; absent fields stay as they are.
    Update {
        /// New name.
        name: Option<String>,
        /// New number.
        phone: Option<PhoneNumber>,
        /// New preferences (replaces the object).
        preferences: Option<serde_json::Value>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stop notifying the subject (what "delete" means in an append-only log).
    Deactivate {
        /// When.
        at: DateTime<Utc>,
    },
    /// Erase the subject's personal data (the right to erasure). Its events stay in the log,
    /// but the key their personal fields are encrypted with is destroyed once this is recorded.
    Erase {
        /// When.
        at: DateTime<Utc>,
    },
    /// Replace the set of custodians.
    AssignCustodians {
        /// The new set.
        custodian_ids: BTreeSet<CustodianId>,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Payload of [`SubjectEvent::SubjectRegistered`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubjectRegistered {
    /// The subject's id.
    pub id: SubjectId,
    /// Display name; `null` once erased.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Personal<String>,
    /// WhatsApp number; `null` once erased.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<PhoneNumber>))]
    pub phone: Personal<PhoneNumber>,
    /// Preferences; `null` once erased.
    pub preferences: serde_json::Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`SubjectEvent::SubjectUpdated`]: only the fields that changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubjectUpdated {
    /// New name, if changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New number, if changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneNumber>,
    /// New preferences, if changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<serde_json::Value>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of [`SubjectEvent::SubjectCustodiansAssigned`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubjectCustodiansAssigned {
    /// The complete new set.
    pub custodian_ids: BTreeSet<CustodianId>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of events that only carry a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Occurred {
    /// When.
    pub at: DateTime<Utc>,
}

event_enum! {
    /// Events of [`Subject`].
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(tag = "type", content = "data")]
    pub enum SubjectEvent {
        /// A subject was registered.
        SubjectRegistered(SubjectRegistered),
        /// Some details changed.
        SubjectUpdated(SubjectUpdated),
        /// The subject was deactivated.
        SubjectDeactivated(Occurred),
        /// The subject's custodians were replaced.
        SubjectCustodiansAssigned(SubjectCustodiansAssigned),
        /// The subject's personal data was erased.
        SubjectErased(Occurred),
    }
}

/// A subject's name, number and preferences are theirs, encrypted with their key.
impl ContainsPersonalData for SubjectEvent {
    fn personal_data(&self) -> Option<PersonalData> {
        match self {
            SubjectEvent::SubjectRegistered(_) | SubjectEvent::SubjectUpdated(_) => {
                Some(PersonalData {
                    owner: DataOwner::ThisStream,
                    fields: &["name", "phone", "preferences"],
                })
            }
            SubjectEvent::SubjectDeactivated(_)
            | SubjectEvent::SubjectCustodiansAssigned(_)
            | SubjectEvent::SubjectErased(_) => None,
        }
    }
}

fn validate_preferences(preferences: &serde_json::Value) -> Result<(), DomainError> {
    if preferences.is_object() {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "preferences",
            Violation::NotAJsonObject,
        ))
    }
}

impl Subject {
    fn require_active(&self, command: &'static str) -> Result<(), DomainError> {
        require_active(Self::CATEGORY, self.id.is_some(), self.active, command)
    }
}

impl Aggregate for Subject {
    const CATEGORY: &'static str = "subject";
    type Command = SubjectCommand;
    type Event = SubjectEvent;

    fn decide(&self, command: SubjectCommand) -> Result<Vec<SubjectEvent>, DomainError> {
        let event = match command {
            SubjectCommand::Register {
                id,
                name,
                phone,
                preferences,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists {
                        aggregate: Self::CATEGORY,
                    });
                }
                require_text("name", &name, 200)?;
                validate_preferences(&preferences)?;
                SubjectEvent::SubjectRegistered(SubjectRegistered {
                    id,
                    name: name.into(),
                    phone: phone.into(),
                    preferences,
                    at,
                })
            }
            SubjectCommand::Update {
                name,
                phone,
                preferences,
                at,
            } => {
                self.require_active("update")?;
                if let Some(name) = &name {
                    require_text("name", name, 200)?;
                }
                if let Some(preferences) = &preferences {
                    validate_preferences(preferences)?;
                }
                let update = SubjectUpdated {
                    name: name.filter(|name| *name != self.name),
                    phone: phone.filter(|phone| Some(phone) != self.phone.as_ref()),
                    preferences: preferences.filter(|p| *p != self.preferences),
                    at,
                };
                if update.name.is_none() && update.phone.is_none() && update.preferences.is_none() {
                    return Ok(Vec::new());
                }
                SubjectEvent::SubjectUpdated(update)
            }
            SubjectCommand::Deactivate { at } => {
                // Deactivating again is a harmless retry.
                if self.id.is_some() && !self.active {
                    return Ok(Vec::new());
                }
                self.require_active("deactivate")?;
                SubjectEvent::SubjectDeactivated(Occurred { at })
            }
            SubjectCommand::Erase { at } => {
                if self.id.is_none() {
                    return Err(DomainError::NotFound {
                        aggregate: Self::CATEGORY,
                    });
                }
                // Erasing again is a harmless retry (the key may still need destroying).
                if self.erased {
                    return Ok(Vec::new());
                }
                SubjectEvent::SubjectErased(Occurred { at })
            }
            SubjectCommand::AssignCustodians { custodian_ids, at } => {
                self.require_active("assign custodians")?;
                if custodian_ids == self.custodians {
                    return Ok(Vec::new());
                }
                SubjectEvent::SubjectCustodiansAssigned(SubjectCustodiansAssigned {
                    custodian_ids,
                    at,
                })
            }
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &SubjectEvent) -> Self {
        match event {
            SubjectEvent::SubjectRegistered(registered) => {
                self.id = Some(registered.id);
                self.name = registered.name.known().cloned().unwrap_or_default();
                self.phone = registered.phone.known().cloned();
                self.preferences = registered.preferences.clone();
                self.active = true;
            }
            SubjectEvent::SubjectUpdated(update) => {
                if let Some(name) = &update.name {
                    self.name.clone_from(name);
                }
                if let Some(phone) = &update.phone {
                    self.phone = Some(phone.clone());
                }
                if let Some(preferences) = &update.preferences {
                    self.preferences = preferences.clone();
                }
            }
            SubjectEvent::SubjectDeactivated(_) => self.active = false,
            SubjectEvent::SubjectErased(_) => {
                self.name.clear();
                self.phone = None;
                self.preferences = serde_json::Value::Null;
                self.active = false;
                self.erased = true;
            }
            SubjectEvent::SubjectCustodiansAssigned(assigned) => {
                self.custodians.clone_from(&assigned.custodian_ids);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests;
