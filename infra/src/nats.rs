//! The NATS JetStream bus: how events of the log travel to the processes that react to them.
//!
//! The log in PostgreSQL stays the truth; JetStream is a delivery channel derived from it by the
//! outbox relay. Every event becomes one message:
//! - subject `<prefix>.<category>.<EventType>` (e.g. `keryu.events.notification.NotificationQueued`),
//!   so a consumer filters on exactly the events it handles;
//! - `Nats-Msg-Id` = the event id, so JetStream's duplicate window drops a republish after a
//!   relay crash;
//! - a CloudEvents 1.0 envelope in binary mode (`ce-*` headers, the payload is the event's data),
//!   so any CloudEvents-aware consumer can read it without knowing Keryu;
//! - the W3C `traceparent` of the request that caused the event, so a trace continues into the
//!   dispatcher.
//!
//! Only NATS 2.9 features are used (Debian ships 2.9): one filter subject per consumer, no
//! per-message TTL.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};

use crate::config::NatsConfig;
use crate::event_store::{Position, RecordedEvent, StreamName};

/// The CloudEvents `source` of every event Keryu publishes.
pub const CLOUDEVENTS_SOURCE: &str = "/keryu";
/// Header carrying the event's place in the global log.
pub const POSITION_HEADER: &str = "keryu-position";
/// Header carrying the correlation id of the request that caused the event.
pub const CORRELATION_HEADER: &str = "keryu-correlation-id";
/// Header carrying the event's schema version.
pub const SCHEMA_VERSION_HEADER: &str = "keryu-schema-version";

/// Failures talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The server could not be reached.
    #[error("cannot connect to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// The stream could not be created or looked up.
    #[error("cannot create the JetStream stream {stream}: {reason}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What JetStream answered.
        reason: String,
    },
}

/// Connects to NATS; keeps retrying in the background when the server goes away, so callers
/// hold one client for the life of the process.
///
/// # Errors
/// [`BusError::Connect`] when the URL is unusable or the first connection fails.
pub async fn connect(config: &NatsConfig) -> Result<async_nats::Client, BusError> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .connect(config.url.expose())
        .await?;
    Ok(client)
}

/// Creates the events stream if it does not exist yet (several processes may race to do it;
/// JetStream answers the same stream to all of them).
///
/// # Errors
/// [`BusError::Stream`] when JetStream refuses.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    config: &NatsConfig,
) -> Result<stream::Stream, BusError> {
    jetstream
        .get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::from_secs(config.max_age_seconds),
            duplicate_window: Duration::from_secs(config.duplicate_window_seconds),
            ..stream::Config::default()
        })
        .await
        .map_err(|error| BusError::Stream {
            stream: config.stream.clone(),
            reason: error.to_string(),
        })
}

/// The subject an event is published on.
pub fn subject_of(prefix: &str, event: &RecordedEvent) -> String {
    format!("{prefix}.{}.{}", event.stream.category(), event.event_type)
}

/// The subject carrying every event of one type of one category.
pub fn subject_for(prefix: &str, category: &str, event_type: &str) -> String {
    format!("{prefix}.{category}.{event_type}")
}

/// The headers of an event's message: dedup id, CloudEvents attributes, trace context.
pub fn headers_of(event: &RecordedEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let event_id = event.event_id.to_string();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, event_id.as_str());
    headers.insert("ce-specversion", "1.0");
    headers.insert("ce-id", event_id.as_str());
    headers.insert("ce-source", CLOUDEVENTS_SOURCE);
    headers.insert("ce-type", event.event_type.as_str());
    headers.insert("ce-subject", event.stream.as_str());
    headers.insert("ce-time", event.recorded_at.to_rfc3339().as_str());
    headers.insert("content-type", "application/json");
    headers.insert(POSITION_HEADER, event.position.0.to_string().as_str());
    headers.insert(
        SCHEMA_VERSION_HEADER,
        event.schema_version.to_string().as_str(),
    );
    headers.insert(
        CORRELATION_HEADER,
        event.metadata.correlation_id.to_string().as_str(),
    );
    if let Some(traceparent) = &event.metadata.traceparent {
        headers.insert("traceparent", traceparent.as_str());
    }
    headers
}

/// What a consumer needs from a relayed event's message, read back from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedEvent {
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// Its type.
    pub event_type: String,
    /// Its stream.
    pub stream: StreamName,
    /// Its place in the global log.
    pub position: Position,
    /// The request it descends from (nil when the header is missing).
    pub correlation_id: uuid::Uuid,
    /// The trace it belongs to.
    pub traceparent: Option<String>,
}

/// Why a message is not a relayed event.
#[derive(Debug, thiserror::Error)]
#[error("not a Keryu event message: {0}")]
pub struct NotAnEvent(&'static str);

impl RelayedEvent {
    /// Reads the CloudEvents headers written by [`headers_of`].
    ///
    /// # Errors
    /// [`NotAnEvent`] naming the first header that is missing or malformed.
    pub fn from_headers(headers: Option<&HeaderMap>) -> Result<RelayedEvent, NotAnEvent> {
        let headers = headers.ok_or(NotAnEvent("no headers"))?;
        let header = |name: &'static str| {
            headers
                .get(name)
                .map(|value| value.as_str().to_owned())
                .ok_or(NotAnEvent(name))
        };
        Ok(RelayedEvent {
            event_id: header("ce-id")?.parse().map_err(|_| NotAnEvent("ce-id"))?,
            event_type: header("ce-type")?,
            stream: header("ce-subject")?
                .parse()
                .map_err(|_| NotAnEvent("ce-subject"))?,
            position: Position(
                header(POSITION_HEADER)?
                    .parse()
                    .map_err(|_| NotAnEvent(POSITION_HEADER))?,
            ),
            correlation_id: header(CORRELATION_HEADER)
                .ok()
                .and_then(|id| id.parse().ok())
                .unwrap_or_default(),
            traceparent: header("traceparent").ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::event_store::EventMetadata;

    #[test]
    fn a_relayed_event_reads_back_from_its_headers() {
        let event = RecordedEvent {
            position: Position(42),
            stream: "notification-6f1c1f9e-0c1e-4f6e-9a43-2b0d8b3f3d10"
                .parse()
                .expect("valid stream"),
            version: 1,
            event_id: uuid::Uuid::new_v4(),
            event_type: "NotificationQueued".to_owned(),
            schema_version: 1,
            data: serde_json::json!({"attempt": 1}),
            metadata: EventMetadata {
                correlation_id: uuid::Uuid::new_v4(),
                traceparent: Some(
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
                ),
                ..EventMetadata::default()
            },
            recorded_at: Utc::now(),
        };
        assert_eq!(
            subject_of("keryu.events", &event),
            "keryu.events.notification.NotificationQueued"
        );
        let read = RelayedEvent::from_headers(Some(&headers_of(&event))).expect("readable");
        assert_eq!(read.event_id, event.event_id);
        assert_eq!(read.stream, event.stream);
        assert_eq!(read.position, Position(42));
        assert_eq!(read.traceparent, event.metadata.traceparent);
        assert_eq!(read.correlation_id, event.metadata.correlation_id);
        assert!(RelayedEvent::from_headers(None).is_err());
    }
}
