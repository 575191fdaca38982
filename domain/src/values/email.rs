//! Email addresses of custodians: their login name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::error::Violation;

/// A plausible email address, normalised to lowercase so it can be used as a login name.
///
/// Only the shape is checked (`local@domain.tld`, no spaces, at most 254 characters): whether the
/// mailbox exists is not the domain's business.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let normalised = raw.trim().to_lowercase();
        let valid = normalised.len() <= 254
            && !normalised.chars().any(char::is_whitespace)
            && match normalised.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.split('.').count() >= 2
                        && domain.split('.').all(|label| !label.is_empty())
                }
                None => false,
            };
        if valid {
            Ok(Email(normalised))
        } else {
            Err(DomainError::invalid("email", Violation::NotAnEmailAddress))
        }
    }
}

impl TryFrom<String> for Email {
    type Error = DomainError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_validates() {
        let email: Email = " Ana@Example.ORG ".parse().expect("valid");
        assert_eq!(email.as_str(), "ana@example.org");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.org",
            "ana@example",
            "a b@example.org",
            "a@b@c.org",
            "ana@example..org",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad:?} accepted");
        }
    }
}
