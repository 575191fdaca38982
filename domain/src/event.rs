//! What the event store needs to know about a domain event.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::personal::ContainsPersonalData;

/// A fact recorded by an aggregate.
///
/// Event enums serialise adjacently tagged — `{"type": "<stable name>", "data": {…}}` — so the
/// store can keep the type name and the payload in separate columns. The names are part of the
/// stored log: they are never renamed, and a payload change bumps [`schema_version`].
///
/// Every event type also says which of its fields are personal data
/// ([`ContainsPersonalData`]), so the store can encrypt them.
///
/// [`schema_version`]: DomainEvent::schema_version
pub trait DomainEvent:
    Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq + ContainsPersonalData
{
    /// The stable name stored in the log, e.g. `NotificationCreated`.
    fn event_type(&self) -> &'static str;

    /// The version of this event type's payload shape, starting at 1.
    fn schema_version(&self) -> u16;
}

/// The JSON Schema of one event type's payload, for `schemas/` and the API documentation.
#[cfg(feature = "openapi")]
#[derive(Clone)]
pub struct PayloadSchema {
    /// The stable event type name.
    pub event_type: &'static str,
    /// The payload's schema version.
    pub schema_version: u16,
    /// The payload's schema.
    pub schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    /// The named schemas it refers to.
    pub components: Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
}

#[cfg(feature = "openapi")]
impl PayloadSchema {
    /// The schema of payload type `T` stored as `event_type`.
    pub fn of<T: utoipa::ToSchema>(event_type: &'static str, schema_version: u16) -> Self {
        let mut components = Vec::new();
        T::schemas(&mut components);
        PayloadSchema {
            event_type,
            schema_version,
            schema: T::schema(),
            components,
        }
    }
}

/// Declares an event enum once and derives from its variants what the store needs:
/// `event_type()` (the variant's name, which is therefore stable), `schema_version()` (1 for all
/// variants until an upcaster exists), `EVENT_TYPES`, the list of every name, and (with the
/// `openapi` feature) `payload_schemas()`. The enum is written inside the macro exactly as it
/// would be outside it, attributes and docs included.
macro_rules! event_enum {
    (
        $(#[$meta:meta])*
        pub enum $enum:ident {
            $($(#[$variant_meta:meta])* $variant:ident($payload:ty)),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $enum {
            $($(#[$variant_meta])* $variant($payload)),*
        }

        impl $enum {
            /// Every stable event type name of this enum, in declaration order.
            pub const EVENT_TYPES: &'static [&'static str] = &[$(stringify!($variant)),*];

            /// The JSON Schema of every event type's payload, in declaration order.
            #[cfg(feature = "openapi")]
            pub fn payload_schemas() -> Vec<$crate::event::PayloadSchema> {
                vec![$($crate::event::PayloadSchema::of::<$payload>(stringify!($variant), 1)),*]
            }
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
pub(crate) use event_enum;
