//! `keryu events replay --until <TIME|POS> [--stream NAME]`: the state as of a point in the log.
//!
//! The log is folded with the domain's own aggregates (`Aggregate::evolve`), exactly as the
//! command side loads them: no second implementation of any state machine. The cut is a
//! position (every event at or before it) or a time (every event recorded at or before it;
//! `recorded_at` is taken under the log's write lock, so it grows with the position and the
//! first event past the time ends the replay).

mod state;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{ErrorKind, Write};
use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use keryu_domain::Aggregate;
use keryu_domain::notification::{Notification, NotificationEvent};
use keryu_infra::event_store::{EventStore, Position, RecordedEvent, StreamName};
use keryu_infra::postgres::PgEventStore;
use keryu_projections::queries::events::{ActorView, LogRange};
use serde::Serialize;
use serde_json::Value;

use super::progress::Progress;
use state::{NotificationSummary, state_of};

/// Events read per query from one stream.
const STREAM_PAGE: usize = 500;

/// What to replay, up to when.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Replay up to and including this point: a log position (`1234`) or an RFC 3339 time
    /// (`2026-11-28T12:00:00Z`, events recorded at or before it).
    #[arg(long, value_name = "TIME|POS")]
    until: Until,
    /// Only this stream (`notification-<uuid>`, `subject-<uuid>`, …), printed with its
    /// aggregate's state and its events; without it, every notification's status and attempts.
    #[arg(long, value_name = "NAME")]
    stream: Option<StreamName>,
}

/// Where a replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Every event at or before this position.
    Position(Position),
    /// Every event recorded at or before this time.
    Time(DateTime<Utc>),
}

impl Until {
    fn includes(self, event: &RecordedEvent) -> bool {
        match self {
            Until::Position(position) => event.position <= position,
            Until::Time(time) => event.recorded_at <= time,
        }
    }
}

impl FromStr for Until {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(position) = text.parse::<u64>() {
            return Ok(Until::Position(Position(position)));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|time| Until::Time(time.with_timezone(&Utc)))
            .map_err(|_| format!("{text:?} is neither a log position nor an RFC 3339 time"))
    }
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Until::Position(position) => write!(f, "{position}"),
            Until::Time(time) => f.write_str(&time.to_rfc3339()),
        }
    }
}

impl Serialize for Until {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Until::Position(position) => serializer.serialize_u64(position.0),
            Until::Time(time) => time.serialize(serializer),
        }
    }
}

/// Prints the replayed state as pretty JSON on stdout.
pub async fn run(store: &PgEventStore, args: &ReplayArgs) -> anyhow::Result<()> {
    let replayed = match &args.stream {
        Some(stream) => serde_json::to_value(replay_stream(store, stream, args.until).await?)?,
        None => serde_json::to_value(replay_notifications(store, args.until).await?)?,
    };
    let mut printed = serde_json::to_vec_pretty(&replayed)?;
    printed.push(b'\n');
    match std::io::stdout().write_all(&printed) {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => {
            Err(error).context("could not write to stdout")
        }
        _ => Ok(()),
    }
}

/// One stream as of the cut.
#[derive(Debug, Serialize)]
struct StreamReplay {
    stream: String,
    until: Until,
    /// The version of the last event folded; `null` when the stream had none yet.
    version: Option<u64>,
    /// The position of the last event folded.
    position: Option<u64>,
    /// When the last event folded was recorded.
    recorded_at: Option<DateTime<Utc>>,
    /// The aggregate's state; `null` before the stream's first event or for a category this
    /// build has no aggregate for (the events below still tell its story).
    state: Option<Value>,
    /// Every event folded, oldest first.
    events: Vec<ReplayedEvent>,
}

/// One event of a replayed stream.
#[derive(Debug, Serialize)]
struct ReplayedEvent {
    version: u64,
    position: u64,
    #[serde(rename = "type")]
    event_type: String,
    recorded_at: DateTime<Utc>,
    actor: Option<ActorView>,
    data: Value,
}

async fn replay_stream(
    store: &PgEventStore,
    stream: &StreamName,
    until: Until,
) -> anyhow::Result<StreamReplay> {
    let mut events: Vec<RecordedEvent> = Vec::new();
    'read: loop {
        let from = events.last().map_or(0, |event| event.version + 1);
        let page = store
            .read_stream(stream, from, STREAM_PAGE)
            .await
            .with_context(|| format!("reading {stream} failed"))?;
        let last_page = page.len() < STREAM_PAGE;
        for event in page {
            if !until.includes(&event) {
                break 'read;
            }
            events.push(event);
        }
        if last_page {
            break;
        }
    }
    let state = if events.is_empty() {
        None
    } else {
        state_of(stream.category(), &events)?
    };
    let last = events.last();
    Ok(StreamReplay {
        stream: stream.to_string(),
        until,
        version: last.map(|event| event.version),
        position: last.map(|event| event.position.0),
        recorded_at: last.map(|event| event.recorded_at),
        state,
        events: events
            .iter()
            .map(|event| ReplayedEvent {
                version: event.version,
                position: event.position.0,
                event_type: event.event_type.clone(),
                recorded_at: event.recorded_at,
                actor: event.metadata.actor.as_ref().map(ActorView::from),
                data: event.data.clone(),
            })
            .collect(),
    })
}

/// Every notification as of the cut.
#[derive(Debug, Serialize)]
struct NotificationsReplay {
    until: Until,
    /// The position of the last event of the log folded (of any stream).
    position: u64,
    /// Events of the log read up to the cut (of every stream).
    events: u64,
    /// Notification id to its status and attempts then.
    notifications: BTreeMap<String, NotificationSummary>,
}

/// Folds the global log page by page: only the notifications' states are held, never the log.
async fn replay_notifications(
    store: &PgEventStore,
    until: Until,
) -> anyhow::Result<NotificationsReplay> {
    let head = store
        .head_position()
        .await
        .context("could not read the head of the log")?;
    let end = match until {
        Until::Position(position) => position.min(head),
        Until::Time(_) => head,
    };
    let mut range = LogRange::new(store.clone(), Position::START, end, None);
    let mut progress = Progress::new("replay", Position::START, end);
    let mut notifications: BTreeMap<String, Notification> = BTreeMap::new();
    let (mut position, mut events) = (Position::START, 0);
    'read: while let Some(page) = range
        .next_page()
        .await
        .with_context(|| format!("reading the log after position {} failed", range.position()))?
    {
        for event in &page {
            if !until.includes(event) {
                break 'read;
            }
            position = event.position;
            events += 1;
            if event.stream.category() != Notification::CATEGORY {
                continue;
            }
            let decoded: NotificationEvent = event.to_domain().with_context(|| {
                format!("the event at position {} does not decode", event.position)
            })?;
            let notification = notifications
                .entry(event.stream.id().to_owned())
                .or_default();
            *notification = std::mem::take(notification).evolve(&decoded);
        }
        progress.update(position, events);
    }
    progress.finish(events, position);
    Ok(NotificationsReplay {
        until,
        position: position.0,
        events,
        notifications: notifications
            .iter()
            .map(|(id, notification)| (id.clone(), NotificationSummary::of(notification)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_a_position_or_an_rfc3339_time() {
        assert_eq!("42".parse(), Ok(Until::Position(Position(42))));
        let time: Until = "2026-11-28T13:00:00+01:00".parse().expect("time");
        assert_eq!(
            time,
            Until::Time(
                DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
                    .expect("time")
                    .with_timezone(&Utc)
            )
        );
        assert!("yesterday".parse::<Until>().is_err());
        assert!("-1".parse::<Until>().is_err());
    }
}
