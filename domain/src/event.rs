//! What the event store needs to know about a domain event.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A fact recorded by an aggregate.
///
/// Event enums serialise adjacently tagged — `{"type": "<stable name>", "data": {…}}` — so the
/// store can keep the type name and the payload in separate columns. The names are part of the
/// stored log: they are never renamed, and a payload change bumps [`schema_version`].
///
/// [`schema_version`]: DomainEvent::schema_version
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq {
    /// The stable name stored in the log, e.g. `NotificationCreated`.
    fn event_type(&self) -> &'static str;

    /// The version of this event type's payload shape, starting at 1.
    fn schema_version(&self) -> u16;
}

/// Declares an event enum's stable names once: `event_type()`, `schema_version()` (1 for all
/// variants until an upcaster exists) and `EVENT_TYPES`, the list of every name.
macro_rules! event_names {
    ($enum:ident { $($variant:ident),* $(,)? }) => {
        impl $enum {
            /// Every stable event type name of this enum, in declaration order.
            pub const EVENT_TYPES: &'static [&'static str] = &[$(stringify!($variant)),*];
        }

        impl $crate::DomainEvent for $enum {
            fn event_type(&self) -> &'static str {
                match self {
                    $($enum::$variant(_) => stringify!($variant),)*
                }
            }

            fn schema_version(&self) -> u16 {
                1
            }
        }
    };
}
pub(crate) use event_names;
