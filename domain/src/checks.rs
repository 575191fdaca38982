//! Checks several aggregates share, so one rule is written (and worded) once.

use crate::DomainError;
use crate::error::Violation;

/// Checks a required free-text field: not blank, at most `max` characters.
///
/// # Errors
/// [`Violation::Blank`] or [`Violation::TooLong`] naming `field`.
pub(crate) fn require_text(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, Violation::Blank));
    }
    require_at_most(field, value, max)
}

/// Checks a text's length in characters (how Twilio counts), blank or not.
///
/// # Errors
/// [`Violation::TooLong`] naming `field`.
pub(crate) fn require_at_most(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), DomainError> {
    let length = value.chars().count();
    if length > max {
        return Err(DomainError::invalid(
            field,
            Violation::TooLong { length, max },
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
            from: "inactive",
            command,
        });
    }
    Ok(())
}

/// Checks a Twilio Content API sid: `HX` and 32 hex digits (`^HX[0-9a-fA-F]{32}$`).
///
/// # Errors
/// [`Violation::NotAContentSid`] naming `content_sid`.
pub(crate) fn require_content_sid(sid: &str) -> Result<(), DomainError> {
    let valid = sid.len() == 34
        && sid
            .strip_prefix("HX")
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if valid {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "content_sid",
            Violation::NotAContentSid,
        ))
    }
}

/// Checks a number the caller drew at random: it must lie in `[0, 1)`.
///
/// # Errors
/// [`Violation::OutOfRange`] naming `random_unit`.
pub(crate) fn require_unit_interval(random_unit: f64) -> Result<(), DomainError> {
    if (0.0..1.0).contains(&random_unit) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "random_unit",
            Violation::OutOfRange {
                expected: "at least 0 and below 1",
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_must_be_present_and_short_enough() {
        assert_eq!(
            require_text("name", " \t", 5),
            Err(DomainError::invalid("name", Violation::Blank))
        );
        assert_eq!(
            require_text("name", "ñandúes", 5),
            Err(DomainError::invalid(
                "name",
                Violation::TooLong { length: 7, max: 5 }
            ))
        );
        assert_eq!(require_text("name", "ñandú", 5), Ok(()));
        assert_eq!(require_at_most("body", "", 5), Ok(()));
    }

    #[test]
    fn content_sids_are_hx_and_32_hex_digits() {
        assert_eq!(
            require_content_sid("HX0123456789abcdefABCDEF0123456789"),
            Ok(())
        );
        for bad in [
            "",
            "HX123",
            "MG0123456789abcdef0123456789abcdef",
            "HX0123456789abcdef0123456789abcdeg",
            "HX0123456789abcdef0123456789abcdef0",
            "HXñ123456789abcdef0123456789abcde",
        ] {
            assert!(require_content_sid(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn random_units_lie_in_the_half_open_unit_interval() {
        for good in [0.0, 0.5, 0.999_999] {
            assert_eq!(require_unit_interval(good), Ok(()));
        }
        for bad in [-0.1, 1.0, f64::NAN, f64::INFINITY] {
            assert!(require_unit_interval(bad).is_err(), "{bad} accepted");
        }
    }
}
