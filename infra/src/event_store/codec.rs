//! Between domain events and the store's rows: the stable type name goes to `event_type`, the
//! payload to `data`, and the shape's version to `schema_version`.
//!
//! Domain event enums serialise adjacently tagged (`{"type": …, "data": …}`), so the split is
//! mechanical and the JSON in `data` is exactly the payload struct's serde form at the version
//! this build writes. Reading applies the domain's upcasters first, so older shapes decode too.

use std::borrow::Cow;

use keryu_domain::DomainEvent;
use serde::de::value::MapDeserializer;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{EventMetadata, NewEvent, RecordedEvent};

/// A domain event that could not be turned into a stored event, or back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// serde could not encode or decode the payload.
    #[error("event {event_type} does not (de)serialise")]
    Json {
        /// The event type involved.
        event_type: String,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
    /// The event's serde form is not `{"type": …, "data": …}`: the enum lacks
    /// `#[serde(tag = "type", content = "data")]`.
    #[error("event {event_type} does not serialise adjacently tagged")]
    NotAdjacentlyTagged {
        /// The event type involved.
        event_type: String,
    },
    /// No upcaster chain leads from the stored shape to the one this build reads: a newer Keryu
    /// wrote it (or the version is not one at all).
    #[error(
        "event {event_type} is stored with schema version {stored}, this build reads {current}"
    )]
    UnsupportedSchemaVersion {
        /// The event type involved.
        event_type: String,
        /// The version found in the store.
        stored: u16,
        /// The version this build writes.
        current: u16,
    },
}

impl NewEvent {
    /// Encodes `event` for appending under the writer-chosen `event_id`.
    ///
    /// # Errors
    /// [`CodecError`] when the event does not serialise in the adjacently tagged form.
    pub fn from_domain<E: DomainEvent>(
        event_id: Uuid,
        event: &E,
        metadata: EventMetadata,
    ) -> Result<NewEvent, CodecError> {
        let event_type = event.event_type();
        let encoded = serde_json::to_value(event).map_err(|source| CodecError::Json {
            event_type: event_type.to_owned(),
            source,
        })?;
        let Value::Object(mut tagged) = encoded else {
            return Err(CodecError::NotAdjacentlyTagged {
                event_type: event_type.to_owned(),
            });
        };
        if tagged.get("type").and_then(Value::as_str) != Some(event_type) {
            return Err(CodecError::NotAdjacentlyTagged {
                event_type: event_type.to_owned(),
            });
        }
        Ok(NewEvent {
            event_id,
            event_type: event_type.to_owned(),
            schema_version: event.schema_version(),
            // A variant without payload has no "data"; store an empty object rather than null.
            data: tagged
                .remove("data")
                .unwrap_or_else(|| Value::Object(Map::new())),
            metadata,
            personal: event.personal_data(),
        })
    }
}

impl RecordedEvent {
    /// Decodes the stored event into the domain's event type `E`, first bringing a payload
    /// stored in an older schema version to the current shape with `E`'s upcasters (see
    /// [`keryu_domain::event`]). Only the decoded value is upcast: `self` — its `data` and
    /// `schema_version` — stays exactly as stored, because the log is immutable and
    /// hash-chained.
    ///
    /// # Errors
    /// [`CodecError::UnsupportedSchemaVersion`] when no upcaster chain leads from the stored
    /// version to this build's (a newer Keryu wrote it); [`CodecError::Json`] when the type is
    /// unknown to `E` or the payload does not match it.
    pub fn to_domain<E: DomainEvent>(&self) -> Result<E, CodecError> {
        let data = E::upcast(
            &self.event_type,
            self.schema_version,
            Cow::Borrowed(&self.data),
        )
        .map_err(|unsupported| CodecError::UnsupportedSchemaVersion {
            event_type: self.event_type.clone(),
            stored: unsupported.stored,
            current: unsupported.current,
        })?;
        // The enum's adjacently tagged form, `{"type": …, "data": …}`, read from the stored
        // parts as they are rather than assembled from copies of them.
        let event_type = Value::String(self.event_type.clone());
        let tagged = MapDeserializer::<_, serde_json::Error>::new(
            [("type", &event_type), ("data", data.as_ref())].into_iter(),
        );
        E::deserialize(tagged).map_err(|source| CodecError::Json {
            event_type: self.event_type.clone(),
            source,
        })
    }
}
