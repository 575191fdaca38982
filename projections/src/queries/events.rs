//! The event log itself, for auditors: the global log in position order, one stream, and one
//! notification's history, with who caused each event and when.
//!
//! Unlike every other query these read the `events` table through the store, not a read model:
//! an audit must see the facts, not a derivation of them, and never depends on a projector
//! having caught up. Only admins and auditors may read them — the log holds every subject's
//! data. The global log also streams as NDJSON (`Accept: application/x-ndjson`), page by page
//! from the store, so a large range never sits in memory; `keryu events export` writes the same
//! lines.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use keryu_domain::notification::{Notification, NotificationEvent, NotificationStatus};
use keryu_domain::{Aggregate, Role};
use keryu_infra::event_store::{
    Actor, EventStore, Position, RecordedEvent, StoreError, StreamName, StreamVersion,
};
use keryu_infra::http::auth::Caller;
use keryu_infra::http::json::{IdPath, QueryParams};
use keryu_infra::http::problem::{Problem, ProblemKind};
use keryu_infra::postgres::PgEventStore;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::QueryState;

/// The media type of the streamed log: one JSON [`EventView`] per line.
pub const NDJSON: &str = "application/x-ndjson";
/// Largest page of events (and largest `limit` of a stream of them).
pub const MAX_EVENTS_LIMIT: u32 = 1000;
const DEFAULT_EVENTS_LIMIT: u32 = 100;
/// Events read from the store per query while streaming: what a stream holds in memory.
const STREAM_PAGE: usize = 500;

/// One event of the log, as the API answers it and `keryu events export` writes it.
///
/// `type` and `data` are the adjacently tagged form of the domain's event enums, so a line
/// decodes into a domain event as the store does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// Place in the global log, strictly increasing in commit order (not dense).
    pub position: u64,
    /// The stream, `<category>-<id>`.
    pub stream: String,
    /// 0-based index inside the stream.
    pub version: u64,
    /// The writer-chosen unique id.
    pub event_id: Uuid,
    /// Stable name of the event type, e.g. `NotificationQueued`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Version of the shape of `data`.
    pub schema_version: u16,
    /// The payload, exactly as stored.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Who caused the event, within which request and trace.
    pub metadata: MetadataView,
    /// When the store committed the event.
    pub recorded_at: DateTime<Utc>,
}

/// The context stored beside an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MetadataView {
    /// Groups every event caused, directly or not, by one external request.
    pub correlation_id: Uuid,
    /// The message that directly caused this event, when known.
    pub causation_id: Option<Uuid>,
    /// Who issued the command, when known.
    pub actor: Option<ActorView>,
    /// W3C trace context of the request that caused the event.
    pub traceparent: Option<String>,
}

/// The principal on whose behalf an event was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActorView {
    /// A custodian id, a token subject, or a process name such as `dispatcher`.
    pub id: String,
    /// The role the actor acted in (`admin`, `integrator`, …, or `system`).
    pub role: String,
}

impl From<&Actor> for ActorView {
    fn from(actor: &Actor) -> Self {
        ActorView {
            id: actor.id.clone(),
            role: actor.role.clone(),
        }
    }
}

impl From<&RecordedEvent> for EventView {
    fn from(event: &RecordedEvent) -> Self {
        EventView {
            position: event.position.0,
            stream: event.stream.to_string(),
            version: event.version,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            data: event.data.clone(),
            metadata: MetadataView {
                correlation_id: event.metadata.correlation_id,
                causation_id: event.metadata.causation_id,
                actor: event.metadata.actor.as_ref().map(ActorView::from),
                traceparent: event.metadata.traceparent.clone(),
            },
            recorded_at: event.recorded_at,
        }
    }
}

impl EventView {
    /// Appends this event to `out` as one NDJSON line.
    ///
    /// # Errors
    /// When serde fails, which a JSON value read from the store cannot make it do.
    pub fn write_line(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(&mut *out, self)?;
        out.push(b'\n');
        Ok(())
    }
}

/// A page of the global log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events, in position order.
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page; `null` when this page reached the end (of the log, or
    /// of `to`). A poller keeps the last event's position instead.
    pub next_after: Option<u64>,
}

/// A page of one stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamPage {
    /// The stream.
    pub stream: String,
    /// Its events, in version order.
    pub events: Vec<EventView>,
    /// Pass as `from` for the next page; `null` on the stream's last page.
    pub next_from: Option<u64>,
}

/// Every event of one notification, with the status each one left it in.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationHistory {
    /// The notification.
    pub notification_id: Uuid,
    /// Its status after its last event.
    pub status: Option<NotificationStatus>,
    /// Its events, oldest first.
    pub events: Vec<HistoryEntry>,
}

/// One event of a notification's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// 0-based index in the notification's stream.
    pub version: u64,
    /// Place in the global log.
    pub position: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// Stable name of the event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the store committed it.
    pub recorded_at: DateTime<Utc>,
    /// Who caused it, when known.
    pub actor: Option<ActorView>,
    /// The request it belongs to.
    pub correlation_id: Uuid,
    /// The payload, exactly as stored.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The notification's status after this event (folded by the domain's own `evolve`);
    /// `null` from an event this build cannot decode onwards.
    pub status: Option<NotificationStatus>,
}

/// Range and paging of `GET /api/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListEvents {
    /// Only events after this position (default: from the first event); a page's
    /// `next_after`.
    #[serde(default)]
    after: Option<u64>,
    /// Only events at or before this position.
    #[serde(default)]
    to: Option<u64>,
    /// Page size, 1 to 1000 (default 100). When streaming NDJSON: the most events streamed
    /// (default: every event up to the head of the log as the request arrived).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Paging of `GET /api/streams/{stream}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamEvents {
    /// The first version to read (default 0); a page's `next_from`.
    #[serde(default)]
    from: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The global log in position order, as pages or streamed as NDJSON.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "events",
    operation_id = "list_events",
    summary = "The global event log (admins and auditors; NDJSON with Accept: application/x-ndjson)",
    params(ListEvents),
    responses((
        status = 200,
        description = "A page of events; with `Accept: application/x-ndjson`, every event of \
            the range (up to the head of the log as the request arrived), one per line, \
            streamed page by page from the store",
        content((EventPage = "application/json"), (EventView = "application/x-ndjson"))
    )),
)]
pub(super) async fn list_events(
    State(state): State<QueryState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(query): QueryParams<ListEvents>,
) -> Result<Response, Problem> {
    require_log_access(&caller)?;
    let after = Position(query.after.unwrap_or(0));
    let to = query.to.map(Position);
    if wants_ndjson(&headers) {
        let limit = query
            .limit
            .map(|limit| checked_limit(Some(limit)))
            .transpose()?;
        // A fixed end: the stream terminates even while the log keeps growing.
        let head = state.store.head_position().await.map_err(store_problem)?;
        let end = to.map_or(head, |to| to.min(head));
        let range = LogRange::new(state.store.clone(), after, end, limit.map(u64::from));
        return Ok(ndjson(range));
    }
    let limit = checked_limit(query.limit)?;
    let mut events = state
        .store
        .read_all(after, limit as usize + 1)
        .await
        .map_err(store_problem)?;
    if let Some(to) = to {
        events.retain(|event| event.position <= to);
    }
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_after = more
        .then(|| events.last().map(|event| event.position.0))
        .flatten();
    Ok(Json(EventPage {
        events: events.iter().map(EventView::from).collect(),
        next_after,
    })
    .into_response())
}

/// One stream's events in version order.
#[utoipa::path(
    get,
    path = "/api/streams/{stream}/events",
    tag = "events",
    operation_id = "list_stream_events",
    summary = "One stream's events (admins and auditors)",
    params(
        ("stream" = String, Path, description = "The stream, `<category>-<id>`, e.g. `notification-<uuid>`"),
        StreamEvents
    ),
    responses((status = 200, description = "A page of the stream's events", body = StreamPage)),
)]
pub(super) async fn stream_events(
    State(state): State<QueryState>,
    caller: Caller,
    stream: Result<Path<String>, PathRejection>,
    QueryParams(query): QueryParams<StreamEvents>,
) -> Result<Response, Problem> {
    require_log_access(&caller)?;
    let Path(stream) = stream
        .map_err(|rejection| Problem::new(ProblemKind::MalformedRequest, rejection.body_text()))?;
    let stream: StreamName = stream
        .parse()
        .map_err(|error| Problem::new(ProblemKind::MalformedRequest, format!("{error}")))?;
    let limit = checked_limit(query.limit)?;
    let from: StreamVersion = query.from.unwrap_or(0);
    let mut events = state
        .store
        .read_stream(&stream, from, limit as usize + 1)
        .await
        .map_err(store_problem)?;
    if events.is_empty() && (from == 0 || !stream_exists(&state.store, &stream).await?) {
        return Err(Problem::new(ProblemKind::NotFound, "no such stream"));
    }
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_from = more
        .then(|| events.last().map(|event| event.version + 1))
        .flatten();
    Ok(Json(StreamPage {
        stream: stream.to_string(),
        events: events.iter().map(EventView::from).collect(),
        next_from,
    })
    .into_response())
}

/// Every event of one notification, oldest first, with actor, time and the status it led to.
#[utoipa::path(
    get,
    path = "/api/notifications/{id}/history",
    tag = "events",
    operation_id = "get_notification_history",
    summary = "A notification's history from the event log (admins and auditors)",
    params(("id" = Uuid, Path, description = "The notification's id")),
    responses((status = 200, description = "The notification's events", body = NotificationHistory)),
)]
pub(super) async fn notification_history(
    State(state): State<QueryState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Response, Problem> {
    require_log_access(&caller)?;
    let stream = StreamName::of::<Notification>(id)
        .map_err(|error| Problem::new(ProblemKind::Internal, format!("{error}")))?;
    let mut recorded = Vec::new();
    loop {
        let from = recorded
            .last()
            .map_or(0, |event: &RecordedEvent| event.version + 1);
        let page = state
            .store
            .read_stream(&stream, from, STREAM_PAGE)
            .await
            .map_err(store_problem)?;
        let last_page = page.len() < STREAM_PAGE;
        recorded.extend(page);
        if last_page {
            break;
        }
    }
    if recorded.is_empty() {
        return Err(Problem::new(ProblemKind::NotFound, "no such notification"));
    }
    let mut folded = Some(Notification::default());
    let mut events = Vec::with_capacity(recorded.len());
    for event in &recorded {
        folded = folded.and_then(|notification| match event.to_domain::<NotificationEvent>() {
            Ok(decoded) => Some(notification.evolve(&decoded)),
            Err(error) => {
                tracing::warn!(%error, position = %event.position, "an event of the history does not decode");
                None
            }
        });
        events.push(HistoryEntry {
            version: event.version,
            position: event.position.0,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            recorded_at: event.recorded_at,
            actor: event.metadata.actor.as_ref().map(ActorView::from),
            correlation_id: event.metadata.correlation_id,
            data: event.data.clone(),
            status: folded.as_ref().map(Notification::status),
        });
    }
    Ok(Json(NotificationHistory {
        notification_id: id,
        status: folded.as_ref().map(Notification::status),
        events,
    })
    .into_response())
}

/// The log holds every subject's data and every actor's doing: admins and auditors only.
fn require_log_access(caller: &Caller) -> Result<(), Problem> {
    if matches!(caller.role, Role::Admin | Role::Auditor) {
        Ok(())
    } else {
        Err(Problem::new(
            ProblemKind::Forbidden,
            format!("the {} role may not read the event log", caller.role),
        ))
    }
}

fn checked_limit(limit: Option<u32>) -> Result<u32, Problem> {
    let limit = limit.unwrap_or(DEFAULT_EVENTS_LIMIT);
    if (1..=MAX_EVENTS_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::new(
            ProblemKind::Validation,
            format!("limit must be between 1 and {MAX_EVENTS_LIMIT}"),
        ))
    }
}

async fn stream_exists(store: &PgEventStore, stream: &StreamName) -> Result<bool, Problem> {
    let first = store
        .read_stream(stream, 0, 1)
        .await
        .map_err(store_problem)?;
    Ok(!first.is_empty())
}

fn store_problem(error: StoreError) -> Problem {
    tracing::error!(%error, "reading the event log failed");
    match error {
        StoreError::Corrupt { .. } => Problem::new(ProblemKind::Internal, error.to_string()),
        StoreError::Backend(_) => {
            Problem::new(ProblemKind::Unavailable, "the event store is unavailable")
        }
    }
}

/// Whether the client accepts NDJSON (listed in `Accept` without `q=0`). Clients that also
/// accept JSON but list NDJSON asked for the stream on purpose.
fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media_type = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|parameter| {
                parameter
                    .trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media_type.eq_ignore_ascii_case(NDJSON) && !refused
        })
}

/// The range as a chunked NDJSON body: one chunk per page read from the store. A store failure
/// mid-way aborts the body, so a client sees a truncated transfer rather than a short log.
fn ndjson(range: LogRange<PgEventStore>) -> Response {
    let pages = futures_util::stream::try_unfold(range, |mut range| async move {
        let Some(page) = range.next_page().await? else {
            return Ok(None);
        };
        let mut chunk = Vec::new();
        for event in &page {
            EventView::from(event).write_line(&mut chunk)?;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Some((Bytes::from(chunk), range)))
    });
    let pages = futures_util::TryStreamExt::inspect_err(pages, |error| {
        tracing::error!(%error, "streaming the event log failed; the answer is cut short");
    });
    let mut response = Body::from_stream(pages).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
}

/// A bounded range of the global log, read page by page: what streams the log (to an HTTP
/// client, to `keryu events export`) without ever holding more than one page of it.
#[derive(Debug, Clone)]
pub struct LogRange<S> {
    store: S,
    after: Position,
    end: Position,
    remaining: u64,
}

impl<S: EventStore> LogRange<S> {
    /// The events of `store` after `after` and at or before `end`, at most `limit` of them.
    pub fn new(store: S, after: Position, end: Position, limit: Option<u64>) -> Self {
        LogRange {
            store,
            after,
            end,
            remaining: limit.unwrap_or(u64::MAX),
        }
    }

    /// The position of the last event returned so far (`after` before the first page).
    pub fn position(&self) -> Position {
        self.after
    }

    /// The next page, in position order; `None` once the range is exhausted.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails; the range may be resumed by calling again.
    pub async fn next_page(&mut self) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        if self.remaining == 0 || self.after >= self.end {
            return Ok(None);
        }
        let wanted = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(STREAM_PAGE);
        let mut page = self.store.read_all(self.after, wanted).await?;
        page.retain(|event| event.position <= self.end);
        let Some(last) = page.last() else {
            return Ok(None);
        };
        self.after = last.position;
        self.remaining = self.remaining.saturating_sub(page.len() as u64);
        Ok(Some(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn ndjson_is_chosen_only_when_accepted() {
        assert!(wants_ndjson(&accept("application/x-ndjson")));
        assert!(wants_ndjson(&accept(
            "application/json;q=0.5, Application/X-NDJSON"
        )));
        assert!(!wants_ndjson(&accept("application/x-ndjson;q=0")));
        assert!(!wants_ndjson(&accept("application/json")));
        assert!(!wants_ndjson(&accept("*/*")));
        assert!(!wants_ndjson(&HeaderMap::new()));
    }
}
