//! Why the domain refuses a command.

use crate::template::RenderError;

/// A command the domain refused. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// The command does not apply in the aggregate's current state.
    #[error("a {aggregate} that is {state} cannot {command}")]
    InvalidTransition {
        /// The aggregate's category.
        aggregate: &'static str,
        /// The state it is in.
        state: &'static str,
        /// The refused command.
        command: &'static str,
    },
    /// A creation command for an aggregate that already exists.
    #[error("the {aggregate} already exists")]
    AlreadyExists {
        /// The aggregate's category.
        aggregate: &'static str,
    },
    /// A command for an aggregate that was never created.
    #[error("the {aggregate} does not exist")]
    NotFound {
        /// The aggregate's category.
        aggregate: &'static str,
    },
    /// A value breaks a rule of the domain.
    #[error("{field} is invalid: {reason}")]
    InvalidValue {
        /// The offending field.
        field: &'static str,
        /// The rule it breaks.
        reason: String,
    },
    /// A template's content or a notification's variables do not render.
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl DomainError {
    /// Shorthand for [`DomainError::InvalidValue`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DomainError::InvalidValue {
            field,
            reason: reason.into(),
        }
    }
}

/// Checks a required free-text field: not blank, at most `max` characters.
///
/// # Errors
/// [`DomainError::InvalidValue`] naming `field`.
pub(crate) fn require_text(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be blank"));
    }
    let length = value.chars().count();
    if length > max {
        return Err(DomainError::invalid(
            field,
            format!("is {length} characters long, at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// Checks that an aggregate which can be deactivated exists and is still active.
///
/// # Errors
/// [`DomainError::NotFound`] when it does not exist, [`DomainError::InvalidTransition`] from
/// the `inactive` state otherwise.
pub(crate) fn require_active(
    aggregate: &'static str,
    exists: bool,
    active: bool,
    command: &'static str,
) -> Result<(), DomainError> {
    if !exists {
        return Err(DomainError::NotFound { aggregate });
    }
    if !active {
        return Err(DomainError::InvalidTransition {
            aggregate,
            state: "inactive",
            command,
        });
    }
    Ok(())
}
