//! Alarms: something happened to a subject; its custodians must know.
//!
//! Raising an alarm is the trigger; the delivery side fans it out into one notification per
//! custodian. Acknowledging tells everyone someone is on it; resolving closes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checks::require_text;
use crate::error::Violation;
use crate::event::event_enum;
use crate::{
    Aggregate, AlarmId, ContainsPersonalData, DataOwner, DomainError, PersonalData, SubjectId,
};

/// What kind of situation an alarm reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Situation {
    /// The subject is missing.
    Lost,
    /// The subject is hurt.
    Injured,
    /// Someone found the subject and wants to get in touch.
    Contact,
    /// A drill: exercises the whole path without a real emergency.
    Test,
}

impl Situation {
    /// The alert type as custodians read it (`{{2}}` of the `notification_alert` template).
    pub fn label(self) -> &'static str {
        match self {
            Situation::Lost => "Missing person",
            Situation::Injured => "Injury",
            Situation::Contact => "Contact request",
            Situation::Test => "Test alert",
        }
    }

    /// What a custodian should do (`{{4}}` of the `notification_alert` template).
    pub fn action_required(self) -> &'static str {
        match self {
            Situation::Lost => "Contact the authorities and check the last known location.",
            Situation::Injured => "Call emergency services or go to the subject now.",
            Situation::Contact => "Get in touch with the person who found the subject.",
            Situation::Test => "No action needed: this is a drill.",
        }
    }
}

/// Where the subject was last seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Degrees north, −90 to 90.
    pub latitude: f64,
    /// Degrees east, −180 to 180.
    pub longitude: f64,
}

impl Location {
    fn validate(&self) -> Result<(), DomainError> {
        // `contains` is false for NaN, so no separate finiteness check is needed.
        if !(-90.0..=90.0).contains(&self.latitude) {
            return Err(DomainError::invalid(
                "latitude",
                Violation::OutOfRange {
                    expected: "between -90 and 90",
                },
            ));
        }
        if !(-180.0..=180.0).contains(&self.longitude) {
            return Err(DomainError::invalid(
                "longitude",
                Violation::OutOfRange {
                    expected: "between -180 and 180",
                },
            ));
        }
        Ok(())
    }
}

/// Where an alarm is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlarmStatus {
    /// Raised, nobody has reacted yet.
    #[default]
    Raised,
    /// Someone is on it.
    Acknowledged,
    /// Closed.
    Resolved,
}

impl AlarmStatus {
    fn name(self) -> &'static str {
        match self {
            AlarmStatus::Raised => "raised",
            AlarmStatus::Acknowledged => "acknowledged",
            AlarmStatus::Resolved => "resolved",
        }
    }
}

/// The alarm aggregate.
///
/// Serialises (one way) so `keryu events replay` can print the state as of a point in the log.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Alarm {
    /// `None` until raised.
    pub id: Option<AlarmId>,
    /// The subject concerned.
    pub subject_id: Option<SubjectId>,
    /// What happened.
    pub situation: Option<Situation>,
    /// In the raiser's words.
    pub description: String,
    /// Last known location.
    pub location: Option<Location>,
    /// Where the alarm is in its life.
    pub status: AlarmStatus,
}

impl Alarm {
    /// Whether the alarm was raised and is not resolved.
    pub fn is_open(&self) -> bool {
        self.id.is_some() && self.status != AlarmStatus::Resolved
    }
}

/// Commands of [`Alarm`].
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmCommand {
    /// Raise a new alarm for a subject.
    Raise {
        /// The new alarm's id.
        id: AlarmId,
        /// The subject concerned.
        subject_id: SubjectId,
        /// What happened.
        situation: Situation,
        /// Details, in the raiser's words.
        description: String,
        /// Last known location.
        location: Option<Location>,
        /// Who raised it.
        raised_by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Say someone is on it.
    Acknowledge {
        /// Who.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Close the alarm.
    Resolve {
        /// Who.
        by: String,
        /// How it ended.
        note: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Payload of [`AlarmEvent::AlarmRaised`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmRaised {
    /// The alarm's id.
    pub id: AlarmId,
    /// The subject concerned.
    pub subject_id: SubjectId,
    /// What happened.
    pub situation: Situation,
    /// Details.
    pub description: String,
    /// Last known location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Who raised it.
    pub raised_by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of the events that move an alarm along.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlarmHandled {
    /// Who acted.
    pub by: String,
    /// A note (resolutions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

event_enum! {
    /// Events of [`Alarm`].
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(tag = "type", content = "data")]
    pub enum AlarmEvent {
        /// An alarm was raised.
        AlarmRaised(AlarmRaised),
        /// Someone is on it.
        AlarmAcknowledged(AlarmHandled),
        /// It is closed.
        AlarmResolved(AlarmHandled),
    }
}

/// Where the subject was is theirs: the location is encrypted with the subject's key.
impl ContainsPersonalData for AlarmEvent {
    fn personal_data(&self) -> Option<PersonalData> {
        match self {
            AlarmEvent::AlarmRaised(raised) => Some(PersonalData {
                owner: DataOwner::Other(raised.subject_id.0),
                fields: &["location"],
            }),
            _ => None,
        }
    }
}

impl Aggregate for Alarm {
    const CATEGORY: &'static str = "alarm";
    type Command = AlarmCommand;
    type Event = AlarmEvent;

    fn decide(&self, command: AlarmCommand) -> Result<Vec<AlarmEvent>, DomainError> {
        let refuse = |command| DomainError::InvalidTransition {
            aggregate: Self::CATEGORY,
            from: self.status.name(),
            command,
        };
        if self.id.is_none() && !matches!(command, AlarmCommand::Raise { .. }) {
            return Err(DomainError::NotFound {
                aggregate: Self::CATEGORY,
            });
        }
        let event = match command {
            AlarmCommand::Raise {
                id,
                subject_id,
                situation,
                description,
                location,
                raised_by,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists {
                        aggregate: Self::CATEGORY,
                    });
                }
                require_text("description", &description, 1_000)?;
                if let Some(location) = &location {
                    location.validate()?;
                }
                AlarmEvent::AlarmRaised(AlarmRaised {
                    id,
                    subject_id,
                    situation,
                    description,
                    location,
                    raised_by,
                    at,
                })
            }
            AlarmCommand::Acknowledge { by, at } => match self.status {
                AlarmStatus::Raised => {
                    AlarmEvent::AlarmAcknowledged(AlarmHandled { by, note: None, at })
                }
                AlarmStatus::Acknowledged | AlarmStatus::Resolved => {
                    return Err(refuse("acknowledge"));
                }
            },
            AlarmCommand::Resolve { by, note, at } => match self.status {
                AlarmStatus::Raised | AlarmStatus::Acknowledged => {
                    if let Some(note) = &note {
                        require_text("note", note, 1_000)?;
                    }
                    AlarmEvent::AlarmResolved(AlarmHandled { by, note, at })
                }
                AlarmStatus::Resolved => return Err(refuse("resolve")),
            },
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &AlarmEvent) -> Self {
        match event {
            AlarmEvent::AlarmRaised(raised) => {
                self.id = Some(raised.id);
                self.subject_id = Some(raised.subject_id);
                self.situation = Some(raised.situation);
                self.description.clone_from(&raised.description);
                self.location = raised.location;
                self.status = AlarmStatus::Raised;
            }
            AlarmEvent::AlarmAcknowledged(_) => self.status = AlarmStatus::Acknowledged,
            AlarmEvent::AlarmResolved(_) => self.status = AlarmStatus::Resolved,
        }
        self
    }
}

#[cfg(test)]
mod tests;
