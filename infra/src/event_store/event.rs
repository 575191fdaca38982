//! Events as the store sees them: an opaque JSON payload with a stable type name and metadata.

use chrono::{DateTime, Utc};
use keryu_domain::PersonalData;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Position, StreamName, StreamVersion};

/// An event about to be appended.
///
/// The store never interprets `data`: it keeps the JSON the domain produced under the event's
/// stable `event_type` name and `schema_version`, so that an old log can be upcast when a shape
/// changes instead of being rewritten.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique id chosen by the writer; appending the same id again is a no-op (idempotency).
    pub event_id: Uuid,
    /// Stable name of the event type, e.g. `NotificationCreated`. Never renamed.
    pub event_type: String,
    /// Version of the shape of `data` for this event type, starting at 1.
    pub schema_version: u16,
    /// The event's payload.
    pub data: serde_json::Value,
    /// Who caused the event, and within which request and trace.
    pub metadata: EventMetadata,
    /// Which fields of `data` are personal data, and whose: the store encrypts them.
    pub personal: Option<PersonalData>,
}

/// Context stored beside every event: enough to answer "who did this, why, and as part of what?"
/// during an audit, and to continue a distributed trace from the event to its consumers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Groups every event caused, directly or not, by one external request.
    pub correlation_id: Uuid,
    /// The message (command or event) that directly caused this event, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// Who issued the command: a custodian, an integrator's token, or a Keryu process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// W3C trace context (`traceparent` header value) of the request that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// The principal on whose behalf an event was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Stable identifier: a custodian id, a token subject, or a process name such as `dispatcher`.
    pub id: String,
    /// The role the actor acted in (`admin`, `integrator`, …, or `system` for Keryu's own processes).
    pub role: String,
}

/// An event as stored: the appended event plus where and when the store put it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Place in the global log.
    pub position: Position,
    /// The stream the event belongs to.
    pub stream: StreamName,
    /// 0-based index inside its stream.
    pub version: StreamVersion,
    /// The writer-chosen unique id.
    pub event_id: Uuid,
    /// Stable name of the event type.
    pub event_type: String,
    /// Version of the shape of `data`.
    pub schema_version: u16,
    /// The payload, exactly as appended.
    pub data: serde_json::Value,
    /// Context of the append.
    pub metadata: EventMetadata,
    /// When the store committed the event (the store's clock, not the writer's).
    pub recorded_at: DateTime<Utc>,
}
