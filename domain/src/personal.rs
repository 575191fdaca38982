//! Personal data in events: which fields are about a person, whose they are, and what an event
//! looks like once that person's data has been erased.
//!
//! The log is append-only and hash-chained, so personal data cannot be deleted from it. Instead
//! the store encrypts the fields an event declares here with a key of the person they belong
//! to, and erasing the person destroys the key (crypto-shredding). The domain's part is to say
//! which fields those are ([`ContainsPersonalData`]) and to cope with reading them back as
//! [`Personal::Erased`]: an event recorded before an erasure still replays, only without the
//! erased values.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A value about a person that may have been erased since it was recorded.
///
/// Serialises as the value itself, and as `null` once erased: the store writes `null` in place
/// of fields it can no longer decrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Personal<T> {
    /// The value as recorded.
    Known(T),
    /// The person's data was erased; the value is gone for good.
    Erased,
}

impl<T> Personal<T> {
    /// The value, unless erased.
    pub fn known(&self) -> Option<&T> {
        match self {
            Personal::Known(value) => Some(value),
            Personal::Erased => None,
        }
    }

    /// The value, unless erased.
    pub fn into_known(self) -> Option<T> {
        match self {
            Personal::Known(value) => Some(value),
            Personal::Erased => None,
        }
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Personal::Known(value)
    }
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.known().serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(deserializer)?.map_or(Personal::Erased, Personal::Known))
    }
}

/// Whose personal data an event carries: the key it is encrypted with belongs to this owner,
/// and erasing the owner makes it unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOwner {
    /// The aggregate the event belongs to (a subject's own events, a custodian's).
    ThisStream,
    /// Another aggregate's person, e.g. the subject a notification goes to.
    Other(Uuid),
}

/// The personal fields of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalData {
    /// Whose data the fields are.
    pub owner: DataOwner,
    /// Top-level fields of the event's payload that hold personal data. A field the payload
    /// omits (an unchanged `Option`) is simply skipped.
    pub fields: &'static [&'static str],
}

/// Declares the personal data of an event type. Every event enum implements it, so adding an
/// event forces a decision about what in it is personal.
pub trait ContainsPersonalData {
    /// The personal fields of this event, `None` when it has none.
    fn personal_data(&self) -> Option<PersonalData>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_value_serialises_as_itself_and_erased_as_null() {
        let known: Personal<String> = Personal::Known("+34600000000".into());
        assert_eq!(
            serde_json::to_value(&known).expect("test value"),
            "+34600000000"
        );
        assert_eq!(
            serde_json::to_value(Personal::<String>::Erased).expect("test value"),
            serde_json::Value::Null
        );
        let back: Personal<String> =
            serde_json::from_value(serde_json::Value::Null).expect("test value");
        assert_eq!(back, Personal::Erased);
        let back: Personal<String> = serde_json::from_str("\"x\"").expect("test value");
        assert_eq!(back, Personal::Known("x".into()));
    }
}
