//! Stream names: `<category>-<id>`, the unit of consistency.

use std::fmt;
use std::str::FromStr;

use keryu_domain::Aggregate;
use serde::{Deserialize, Serialize};

/// The name of one aggregate's stream, `<category>-<id>` (e.g. `notification-0190…`).
///
/// The category comes first so a reader can route by it (projections, NATS subjects) without
/// decoding the event; it is lowercase ASCII letters, digits and underscores and contains no `-`,
/// so the first `-` always separates it from the id. KurrentDB uses the same convention for its
/// `$ce-<category>` projections.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamName(String);

/// A stream name that does not follow `<category>-<id>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream name {name:?}: expected `<category>-<id>` with a lowercase category")]
pub struct InvalidStreamName {
    /// The rejected name.
    pub name: String,
}

impl StreamName {
    /// Builds the stream name of the aggregate `id` in `category`.
    ///
    /// # Errors
    /// [`InvalidStreamName`] when the category is empty or not lowercase `[a-z0-9_]`, or the id is
    /// empty.
    pub fn new(category: &str, id: impl fmt::Display) -> Result<Self, InvalidStreamName> {
        format!("{category}-{id}").parse()
    }

    /// The stream of the aggregate `A` with this `id`: `<A::CATEGORY>-<id>`.
    ///
    /// # Errors
    /// [`InvalidStreamName`] when `A::CATEGORY` is not a valid category (a bug in `A`).
    pub fn of<A: Aggregate>(id: impl fmt::Display) -> Result<Self, InvalidStreamName> {
        Self::new(A::CATEGORY, id)
    }

    /// The category, the part before the first `-`.
    pub fn category(&self) -> &str {
        self.split().0
    }

    /// The aggregate id, the part after the first `-`.
    pub fn id(&self) -> &str {
        self.split().1
    }

    /// The whole name as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn split(&self) -> (&str, &str) {
        // Validated at construction: the separator is always present.
        self.0.split_once('-').unwrap_or((&self.0, ""))
    }
}

impl FromStr for StreamName {
    type Err = InvalidStreamName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let valid = match name.split_once('-') {
            Some((category, id)) => {
                !category.is_empty()
                    && category
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !id.is_empty()
            }
            None => false,
        };
        if valid {
            Ok(StreamName(name.to_owned()))
        } else {
            Err(InvalidStreamName {
                name: name.to_owned(),
            })
        }
    }
}

impl TryFrom<String> for StreamName {
    type Error = InvalidStreamName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<StreamName> for String {
    fn from(name: StreamName) -> Self {
        name.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_category_from_id_at_the_first_dash() {
        let name = StreamName::new("notification", "0190a1b2-c3d4").expect("valid name");
        assert_eq!(name.category(), "notification");
        assert_eq!(name.id(), "0190a1b2-c3d4");
        assert_eq!(name.as_str(), "notification-0190a1b2-c3d4");
    }

    #[test]
    fn rejects_names_without_a_lowercase_category_or_an_id() {
        for bad in [
            "",
            "notification",
            "notification-",
            "-abc",
            "Notif-1",
            "a b-1",
        ] {
            assert!(bad.parse::<StreamName>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<StreamName>("\"subject-1\"").is_ok());
        assert!(serde_json::from_str::<StreamName>("\"subject\"").is_err());
    }
}
