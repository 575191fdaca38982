//! Message templates: reusable message text with `{{1}}`…`{{n}}` variables, approved before use.
//!
//! A template is written as a draft, submitted, and approved or rejected by an admin; only an
//! approved version may be sent. Editing a draft or a rejected version changes it in place;
//! editing a submitted or approved version starts a new version as a draft, while the last
//! approved version stays usable until the new one is approved — so fixing a typo never stops
//! notifications that already rely on the template.

mod content;
mod render;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use content::TemplateContent;
pub use render::{MAX_BODY_CHARS, MAX_WHATSAPP_TEMPLATE_CHARS, RenderError, placeholders, render};

use crate::checks::require_text;
use crate::event::event_enum;
use crate::notification::NotificationContent;
use crate::{Aggregate, ContainsPersonalData, DomainError, PersonalData, TemplateId};

/// Namespace of name-derived template ids (UUID v5).
const TEMPLATE_NAMESPACE: Uuid = Uuid::from_u128(0x6b65_7279_7500_4000_8000_7465_6d70_6c74);

/// Where a template version is in its review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TemplateStatus {
    /// Being written; may be edited in place.
    #[default]
    Draft,
    /// Waiting for an admin's decision.
    Submitted,
    /// May be used by notifications.
    Approved,
    /// Refused; may be edited and submitted again.
    Rejected,
}

impl TemplateStatus {
    fn name(self) -> &'static str {
        match self {
            TemplateStatus::Draft => "draft",
            TemplateStatus::Submitted => "submitted",
            TemplateStatus::Approved => "approved",
            TemplateStatus::Rejected => "rejected",
        }
    }
}

/// The version of a template that notifications may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovedVersion {
    /// Its version number.
    pub version: u32,
    /// Its content.
    pub content: TemplateContent,
}

/// The template aggregate.
///
/// Serialises (one way) so `keryu events replay` can print the state as of a point in the log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MessageTemplate {
    /// `None` until created.
    pub id: Option<TemplateId>,
    /// Unique, human-chosen name (e.g. `notification_alert`).
    pub name: String,
    /// The latest version's number, from 1.
    pub version: u32,
    /// The latest version's content.
    pub content: Option<TemplateContent>,
    /// The latest version's review state.
    pub status: TemplateStatus,
    /// The newest approved version, if any.
    pub approved: Option<ApprovedVersion>,
    /// Why the latest version was rejected.
    pub rejection_reason: Option<String>,
}

/// Commands of [`MessageTemplate`].
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateCommand {
    /// Write a new template as draft version 1.
    Create {
        /// The new template's id.
        id: TemplateId,
        /// Its unique name.
        name: String,
        /// Its content.
        content: TemplateContent,
        /// When.
        at: DateTime<Utc>,
    },
    /// Change the content (in place, or as a new version; see the module docs).
    Edit {
        /// The new content.
        content: TemplateContent,
        /// When.
        at: DateTime<Utc>,
    },
    /// Ask for approval of the latest version.
    Submit {
        /// When.
        at: DateTime<Utc>,
    },
    /// Approve the submitted version (admins only, checked at the API).
    Approve {
        /// Who approved.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Refuse the submitted version.
    Reject {
        /// Who rejected.
        by: String,
        /// Why, for the author.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Payload of [`TemplateEvent::TemplateCreated`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateCreated {
    /// The template's id.
    pub id: TemplateId,
    /// Its unique name.
    pub name: String,
    /// Version 1's content.
    pub content: TemplateContent,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of the events that change a template's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateContentChanged {
    /// The version the content belongs to.
    pub version: u32,
    /// The new content.
    pub content: TemplateContent,
    /// When.
    pub at: DateTime<Utc>,
}

/// Payload of review events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateReviewed {
    /// The version reviewed.
    pub version: u32,
    /// Who acted (absent for a submission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why it was rejected (rejections only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

event_enum! {
    /// Events of [`MessageTemplate`].
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(tag = "type", content = "data")]
    pub enum TemplateEvent {
        /// A template was written as draft version 1.
        TemplateCreated(TemplateCreated),
        /// A draft or rejected version was edited in place (back to draft).
        TemplateEdited(TemplateContentChanged),
        /// A submitted or approved version was edited: a new draft version exists.
        TemplateVersionCreated(TemplateContentChanged),
        /// The latest version awaits approval.
        TemplateSubmitted(TemplateReviewed),
        /// The submitted version may now be used.
        TemplateApproved(TemplateReviewed),
        /// The submitted version was refused.
        TemplateRejected(TemplateReviewed),
    }
}

/// Templates are the organisation's wording, not anybody's personal data.
impl ContainsPersonalData for TemplateEvent {
    fn personal_data(&self) -> Option<PersonalData> {
        None
    }
}

impl MessageTemplate {
    /// The id of the template called `name` (case and surrounding space ignored).
    ///
    /// Deriving the id from the name makes the name unique for free — creating a second
    /// template of the same name is creating the same stream twice, which the store refuses —
    /// and lets a notification (or the alarm fan-out) name its template without a lookup table.
    pub fn id_for_name(name: &str) -> TemplateId {
        TemplateId(Uuid::new_v5(
            &TEMPLATE_NAMESPACE,
            name.trim().to_lowercase().as_bytes(),
        ))
    }

    /// What a notification using the approved version with `variables` says: the rendered
    /// text, and the Content sid and variables when Twilio renders it as a WhatsApp template.
    ///
    /// # Errors
    /// [`DomainError::NotFound`] when no version is approved; [`DomainError::Render`] when
    /// `variables` do not fill the placeholders.
    pub fn notification_content(
        &self,
        variables: BTreeMap<String, String>,
    ) -> Result<NotificationContent, DomainError> {
        let (Some(template_id), Some(approved)) = (self.id, &self.approved) else {
            return Err(DomainError::NotFound {
                aggregate: Self::CATEGORY,
            });
        };
        let rendered_body = render(&approved.content.content, &variables)?;
        Ok(NotificationContent::Template {
            template_id,
            template_version: approved.version,
            content_sid: approved.content.content_sid.clone(),
            variables,
            rendered_body,
        })
    }

    fn refuse(&self, command: &'static str) -> DomainError {
        DomainError::InvalidTransition {
            aggregate: Self::CATEGORY,
            from: self.status.name(),
            command,
        }
    }

    fn review(
        &self,
        by: Option<String>,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> TemplateReviewed {
        TemplateReviewed {
            version: self.version,
            by,
            reason,
            at,
        }
    }
}

impl Aggregate for MessageTemplate {
    const CATEGORY: &'static str = "template";
    type Command = TemplateCommand;
    type Event = TemplateEvent;

    fn decide(&self, command: TemplateCommand) -> Result<Vec<TemplateEvent>, DomainError> {
        if self.id.is_none() && !matches!(command, TemplateCommand::Create { .. }) {
            return Err(DomainError::NotFound {
                aggregate: Self::CATEGORY,
            });
        }
        let event = match command {
            TemplateCommand::Create {
                id,
                name,
                content,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists {
                        aggregate: Self::CATEGORY,
                    });
                }
                require_text("name", &name, 100)?;
                content.validate()?;
                TemplateEvent::TemplateCreated(TemplateCreated {
                    id,
                    name,
                    content,
                    at,
                })
            }
            TemplateCommand::Edit { content, at } => {
                content.validate()?;
                if self.content.as_ref() == Some(&content) {
                    return Ok(Vec::new());
                }
                match self.status {
                    TemplateStatus::Draft | TemplateStatus::Rejected => {
                        TemplateEvent::TemplateEdited(TemplateContentChanged {
                            version: self.version,
                            content,
                            at,
                        })
                    }
                    TemplateStatus::Submitted | TemplateStatus::Approved => {
                        TemplateEvent::TemplateVersionCreated(TemplateContentChanged {
                            version: self.version + 1,
                            content,
                            at,
                        })
                    }
                }
            }
            TemplateCommand::Submit { at } => match self.status {
                TemplateStatus::Draft | TemplateStatus::Rejected => {
                    TemplateEvent::TemplateSubmitted(self.review(None, None, at))
                }
                TemplateStatus::Submitted | TemplateStatus::Approved => {
                    return Err(self.refuse("submit"));
                }
            },
            TemplateCommand::Approve { by, at } => match self.status {
                TemplateStatus::Submitted => {
                    TemplateEvent::TemplateApproved(self.review(Some(by), None, at))
                }
                _ => return Err(self.refuse("approve")),
            },
            TemplateCommand::Reject { by, reason, at } => match self.status {
                TemplateStatus::Submitted => {
                    require_text("reason", &reason, 1_000)?;
                    TemplateEvent::TemplateRejected(self.review(Some(by), Some(reason), at))
                }
                _ => return Err(self.refuse("reject")),
            },
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &TemplateEvent) -> Self {
        match event {
            TemplateEvent::TemplateCreated(created) => {
                self.id = Some(created.id);
                self.name.clone_from(&created.name);
                self.version = 1;
                self.content = Some(created.content.clone());
                self.status = TemplateStatus::Draft;
            }
            TemplateEvent::TemplateEdited(changed)
            | TemplateEvent::TemplateVersionCreated(changed) => {
                self.version = changed.version;
                self.content = Some(changed.content.clone());
                self.status = TemplateStatus::Draft;
                self.rejection_reason = None;
            }
            TemplateEvent::TemplateSubmitted(_) => self.status = TemplateStatus::Submitted,
            TemplateEvent::TemplateApproved(review) => {
                self.status = TemplateStatus::Approved;
                self.approved = self.content.clone().map(|content| ApprovedVersion {
                    version: review.version,
                    content,
                });
            }
            TemplateEvent::TemplateRejected(review) => {
                self.status = TemplateStatus::Rejected;
                self.rejection_reason.clone_from(&review.reason);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests;
