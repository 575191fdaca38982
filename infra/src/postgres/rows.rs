//! Decoding rows of the `events` table.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use crate::event_store::{EventMetadata, Position, RecordedEvent, StoreError, StreamName};

/// A query reading whole events: `SELECT <every column [`EventRow`] needs> FROM events <rest>`.
/// A macro, not a `format!`, so the SQL stays a compile-time constant.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT global_position, stream_name, stream_version, event_id, event_type, \
             schema_version, data, metadata, recorded_at FROM events ",
            $rest
        )
    };
}
pub(super) use select_events;

/// One row of `events` as PostgreSQL returns it, before validation.
#[derive(FromRow)]
pub(super) struct EventRow {
    global_position: i64,
    stream_name: String,
    stream_version: i64,
    event_id: Uuid,
    event_type: String,
    schema_version: i32,
    data: Json<serde_json::Value>,
    metadata: Json<EventMetadata>,
    recorded_at: DateTime<Utc>,
}

impl TryFrom<EventRow> for RecordedEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        let corrupt = |reason: String| StoreError::Corrupt {
            position: row.global_position,
            reason,
        };
        let stream: StreamName = row
            .stream_name
            .parse()
            .map_err(|error| corrupt(format!("{error}")))?;
        Ok(RecordedEvent {
            position: Position(to_unsigned(row.global_position).map_err(&corrupt)?),
            stream,
            version: to_unsigned(row.stream_version).map_err(&corrupt)?,
            event_id: row.event_id,
            event_type: row.event_type,
            schema_version: u16::try_from(row.schema_version)
                .map_err(|_| corrupt(format!("schema version {}", row.schema_version)))?,
            data: row.data.0,
            metadata: row.metadata.0,
            recorded_at: row.recorded_at,
        })
    }
}

fn to_unsigned(value: i64) -> Result<u64, String> {
    u64::try_from(value).map_err(|_| format!("negative number {value}"))
}
