//! What the event store needs to know about a domain event, and how an old payload is brought to
//! the current shape.
//!
//! # Schema evolution
//! The log is immutable (and hash-chained), so a stored payload keeps the shape it was written
//! in for ever. When an event's shape changes in a way serde cannot absorb (a rename, a
//! restructuring, a type change), its variant's schema version goes up by one and the event
//! gains an [`Upcaster`]: a pure function from the JSON of version n to the JSON of version
//! n + 1. Reading applies the chain from the stored version to the current one, then decodes.
//!
//! Upcasters live here, in the domain, rather than in the store's codec: they are part of the
//! event's definition (only the code that defines version 2 knows what version 1 meant), they
//! are pure JSON → JSON functions, and keeping them next to the payload makes it impossible to
//! bump a version without saying how the old one reads. The store stays ignorant of shapes.

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::personal::ContainsPersonalData;

/// A fact recorded by an aggregate.
///
/// Event enums serialise adjacently tagged — `{"type": "<stable name>", "data": {…}}` — so the
/// store can keep the type name and the payload in separate columns. The names are part of the
/// stored log: they are never renamed, and a payload change bumps [`schema_version`] and adds an
/// [`Upcaster`] (see the [module docs](self)).
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

    /// The version of this event type's payload shape that this build writes, starting at 1.
    fn schema_version(&self) -> u16;

    /// The upcaster chain of `event_type`, oldest step first: step `i` turns version `i + 1`
    /// into version `i + 2`, so the current version is the chain's length plus one. `None` for
    /// a type this enum does not have, which decoding then reports as unknown.
    fn upcasters(event_type: &str) -> Option<&'static [Upcaster]>;

    /// Brings `data`, stored as `stored_version` of `event_type`, to the shape this build
    /// decodes. A type this enum does not have passes through unchanged, so that decoding
    /// reports it as the unknown type it is.
    ///
    /// # Errors
    /// [`UnsupportedSchemaVersion`] when no chain leads from `stored_version` to the current
    /// version: the version is newer than this build (written by a later Keryu) or not a
    /// version at all (0).
    fn upcast<'a>(
        event_type: &str,
        stored_version: u16,
        data: Cow<'a, Value>,
    ) -> Result<Cow<'a, Value>, UnsupportedSchemaVersion> {
        match Self::upcasters(event_type) {
            Some(chain) => upcast(chain, stored_version, data),
            None => Ok(data),
        }
    }
}

/// One step of an event type's upcaster chain: the JSON payload of version n turned into the
/// payload of version n + 1.
///
/// Steps are infallible on purpose: a payload that does not have the old shape is left as it is
/// and serde's decoding of the current shape reports the mismatch, with its precise message.
pub type Upcaster = fn(Value) -> Value;

/// No upcaster chain leads from a stored payload's version to the one this build reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("schema version {stored} cannot be read by this build, which reads up to {current}")]
pub struct UnsupportedSchemaVersion {
    /// The version found in the store.
    pub stored: u16,
    /// The version this build writes.
    pub current: u16,
}

/// Applies the steps of `chain` from `stored_version` to the end (the current version,
/// `chain.len() + 1`). The current version passes through untouched, and a borrowed payload
/// stays borrowed: nearly every event read from the log is at the current version, and a
/// rebuild decodes each one once per read model, so copying its JSON tree every time would be
/// most of the decoding's work.
///
/// # Errors
/// [`UnsupportedSchemaVersion`] for version 0 and for versions newer than the current one.
pub fn upcast<'a>(
    chain: &[Upcaster],
    stored_version: u16,
    data: Cow<'a, Value>,
) -> Result<Cow<'a, Value>, UnsupportedSchemaVersion> {
    let unsupported = UnsupportedSchemaVersion {
        stored: stored_version,
        current: u16::try_from(chain.len() + 1).unwrap_or(u16::MAX),
    };
    let first_step = usize::from(stored_version)
        .checked_sub(1)
        .ok_or(unsupported)?;
    let steps = chain.get(first_step..).ok_or(unsupported)?;
    if steps.is_empty() {
        return Ok(data);
    }
    Ok(Cow::Owned(
        steps
            .iter()
            .fold(data.into_owned(), |data, step| step(data)),
    ))
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
/// `event_type()` (the variant's name, which is therefore stable), `schema_version()`,
/// `upcasters()`, `EVENT_TYPES`, the list of every name, and (with the `openapi` feature)
/// `payload_schemas()`. The enum is written inside the macro as it would be outside it,
/// attributes and docs included, except that a variant whose shape changed says so after its
/// payload:
///
/// ```text
/// RetryScheduled(RetryScheduled) = 2 via [upcast::retry_scheduled_v1],
/// ```
///
/// `= N` is the version written (1 when absent) and `via [...]` the upcasters from version 1
/// on, one per bump; a compile-time check refuses a list whose length is not `N - 1`, so a
/// version cannot be bumped without saying how the old one reads.
macro_rules! event_enum {
    (@version) => { 1 };
    (@version $version:literal) => { $version };
    (
        $(#[$meta:meta])*
        pub enum $enum:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident($payload:ty)
                $(= $version:literal via [$($upcaster:path),+ $(,)?])?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $enum {
            $($(#[$variant_meta])* $variant($payload)),*
        }

        // One upcaster per version bump: version N needs exactly N - 1 of them.
        const _: () = {
            $($(
                assert!(
                    $version as usize == 1 + [$(stringify!($upcaster)),+].len(),
                    concat!(
                        stringify!($enum), "::", stringify!($variant),
                        " needs one upcaster per version bump"
                    ),
                );
            )?)*
        };

        impl $enum {
            /// Every stable event type name of this enum, in declaration order.
            pub const EVENT_TYPES: &'static [&'static str] = &[$(stringify!($variant)),*];

            /// The JSON Schema of every event type's payload at its current version, in
            /// declaration order.
            #[cfg(feature = "openapi")]
            pub fn payload_schemas() -> Vec<$crate::event::PayloadSchema> {
                vec![$(
                    $crate::event::PayloadSchema::of::<$payload>(
                        stringify!($variant),
                        $crate::event::event_enum!(@version $($version)?),
                    )
                ),*]
            }
        }

        impl $crate::DomainEvent for $enum {
            fn event_type(&self) -> &'static str {
                match self {
                    $($enum::$variant(_) => stringify!($variant),)*
                }
            }

            fn schema_version(&self) -> u16 {
                match self {
                    $($enum::$variant(_) => $crate::event::event_enum!(@version $($version)?),)*
                }
            }

            fn upcasters(event_type: &str) -> Option<&'static [$crate::event::Upcaster]> {
                match event_type {
                    $(stringify!($variant) => {
                        const CHAIN: &[$crate::event::Upcaster] = &[$($($upcaster),+)?];
                        Some(CHAIN)
                    })*
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use event_enum;

#[cfg(test)]
mod tests;
