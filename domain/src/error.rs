//! Why the domain refuses a command.
//!
//! Every refusal is a typed value, never a panic: the command API maps each variant to one HTTP
//! problem, and tests compare refusals exactly instead of parsing messages.

use chrono::{DateTime, Utc};

use crate::template::RenderError;

/// A command the domain refused. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The command does not apply in the aggregate's current state.
    #[error("a {aggregate} that is {from} cannot {command}")]
    InvalidTransition {
        /// The aggregate's category.
        aggregate: &'static str,
        /// The name of the state it is in (e.g. `queued`, `inactive`).
        from: &'static str,
        /// The refused command, in words (e.g. `record a send`).
        command: &'static str,
    },
    /// A creation command for an aggregate that already exists.
    #[error("the {aggregate} already exists")]
    AlreadyExists {
        /// The aggregate's category.
        aggregate: &'static str,
    },
    /// A command other than creation for an aggregate that was never created.
    #[error("the {aggregate} does not exist")]
    NotFound {
        /// The aggregate's category.
        aggregate: &'static str,
    },
    /// A value breaks a rule of the domain.
    #[error("{field} is invalid: {reason}")]
    InvalidValue {
        /// The offending field, as the command names it.
        field: &'static str,
        /// The rule it breaks.
        reason: Violation,
    },
    /// A template's content or a notification's variables do not render.
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl DomainError {
    /// Shorthand for [`DomainError::InvalidValue`], the most common refusal.
    pub fn invalid(field: &'static str, reason: Violation) -> Self {
        DomainError::InvalidValue { field, reason }
    }
}

/// The rule a value breaks. Kept apart from the field so one rule (say, "too long") reads the
/// same for every field, and callers can react to the rule without matching on text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// Empty or only whitespace where text is required.
    #[error("must not be blank")]
    Blank,
    /// Longer than allowed, counted in characters (as Twilio counts `Body`).
    #[error("is {length} characters long, at most {max} are allowed")]
    TooLong {
        /// Its length in characters.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A number outside its allowed range.
    #[error("must be {expected}")]
    OutOfRange {
        /// The allowed range, in words (e.g. `between 1 and 10`).
        expected: &'static str,
    },
    /// Not an E.164 phone number, the only form WhatsApp addresses take.
    #[error("must be an E.164 number: + and 8 to 15 digits, not starting with 0")]
    NotE164,
    /// Not shaped like an email address.
    #[error("must look like name@example.org")]
    NotAnEmailAddress,
    /// Not one of Keryu's roles.
    #[error("must be admin, custodian, integrator or auditor")]
    UnknownRole,
    /// Not a JSON object where one is required.
    #[error("must be a JSON object")]
    NotAJsonObject,
    /// Not a Twilio Content API sid.
    #[error("must be HX followed by 32 hex digits")]
    NotAContentSid,
    /// Not a language code as WhatsApp templates use them.
    #[error("must be a language code like es, en_US or pt-BR")]
    NotALanguageCode,
    /// Not a password hash in PHC string form.
    #[error("must be a PHC string such as $argon2id$…")]
    NotAPasswordHash,
    /// A timer fired before the time it was set for.
    #[error("is before {not_before}, when the notification becomes due")]
    NotDue {
        /// When the notification becomes due.
        not_before: DateTime<Utc>,
    },
}
