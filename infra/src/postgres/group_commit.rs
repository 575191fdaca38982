//! Group commit: concurrent appends of one process share one transaction.
//!
//! Appends serialise on the log's write lock (that is what keeps the global order gap-free), so
//! one append per transaction caps throughput at one lock hold — a handful of round trips and a
//! commit — per event batch. Instead, every append of a process goes to one writer task; while
//! a transaction is in flight, new appends queue up, and the next transaction takes all of them
//! at once (up to [`MAX_REQUESTS`]). An idle writer starts at once, so a lone append pays no
//! extra latency; under load, the round trips and the commit are shared by the whole group.
//!
//! Each append keeps its own contract, decided in queue order inside the transaction: the
//! expected version is checked against the stream as left by the appends before it (in the
//! store or earlier in the same group), event ids already stored — or appended earlier in the
//! group — return the first result, and a refused append changes nothing. Positions follow the
//! queue order, and the whole group becomes visible at one commit, under the same write lock
//! as any single append: a reader can never see a later position before an earlier one. When
//! the transaction fails, every append of the group that would have written gets the error;
//! nothing of the group is stored.

use std::collections::HashMap;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::event_store::backend;
use crate::event_store::{
    AppendError, AppendResult, ExpectedVersion, NewEvent, Position, StoreError, StreamName,
};

/// Most appends one transaction takes.
pub(super) const MAX_REQUESTS: usize = 512;
/// Appends waiting for the writer before callers wait to enqueue (back-pressure).
const QUEUE: usize = 4096;

/// One caller's append, with where to send its answer.
pub(super) struct AppendRequest {
    pub(super) stream: StreamName,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<NewEvent>,
    pub(super) reply: oneshot::Sender<Result<AppendResult, AppendError>>,
}

/// Starts the writer of `pool`'s log; it stops when every sender is gone or `pool` is closed.
///
/// The writer is a thread of its own, with its own connection and a single-threaded runtime
/// driving it. Each group is a handful of round trips made one after the other while every
/// other writer waits on the log's lock, so what matters is how soon the writer runs again
/// when an answer arrives: as a task among the HTTP requests of a busy runtime it would wait
/// behind them after every round trip; on its own thread it is woken at once.
///
/// Its connection follows the pool's life: when the pool is closed (shutdown, the end of a
/// test), the writer closes it too, so that nothing holds the database open afterwards.
/// Appends still queued then fail as after any stop of the writer.
///
/// # Errors
/// When the thread cannot be started.
pub(super) fn start(pool: &PgPool) -> std::io::Result<mpsc::Sender<AppendRequest>> {
    let (requests, queue) = mpsc::channel::<AppendRequest>(QUEUE);
    let options = pool.connect_options();
    let pool_closed = pool.close_event();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("keryu-log-writer".to_owned())
        .spawn(move || runtime.block_on(write_groups(&options, pool_closed, queue)))?;
    Ok(requests)
}

/// The writer's loop: takes what is queued, writes it as one group, until the queue closes or
/// `pool_closed` fires; then closes its connection.
async fn write_groups(
    options: &PgConnectOptions,
    pool_closed: impl Future<Output = ()>,
    mut queue: mpsc::Receiver<AppendRequest>,
) {
    let mut pool_closed = std::pin::pin!(pool_closed);
    let mut connection: Option<PgConnection> = None;
    let mut group = Vec::with_capacity(MAX_REQUESTS);
    loop {
        let received = tokio::select! {
            received = queue.recv_many(&mut group, MAX_REQUESTS) => received,
            () = &mut pool_closed => 0,
        };
        if received == 0 {
            break;
        }
        metrics::histogram!("keryu_event_store_group_size").record(group.len() as f64);
        let group = std::mem::take(&mut group);
        let connected = match connection.take() {
            Some(connected) => Ok(connected),
            None => PgConnection::connect_with(options).await,
        };
        connection = match connected {
            Ok(mut connected) => commit_group(&mut connected, group)
                .await
                .then_some(connected),
            Err(error) => {
                refuse(
                    group.into_iter().map(|request| request.reply).collect(),
                    &error.to_string(),
                );
                None
            }
        };
    }
    if let Some(connection) = connection
        && let Err(error) = connection.close().await
    {
        tracing::debug!(%error, "the log writer's connection did not close cleanly");
    }
}

/// What became of one request while deciding the group.
enum Decision {
    /// Answer this now (a refusal, or a retry of an append stored before the group).
    Answer(Result<AppendResult, AppendError>),
    /// Write these rows; the answer is the position of its last event.
    Write { last_event: Uuid, last_version: i64 },
    /// A retry of an append earlier in this group: the same answer as that one.
    SameAs { last_event: Uuid, last_version: i64 },
}

/// The rows of one group's insert, in order.
#[derive(Default)]
struct Rows {
    streams: Vec<String>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    data: Vec<String>,
    metadata: Vec<String>,
}

/// Writes one group and answers each of its requests; returns whether the connection is still
/// fit for the next group (after a failure it is dropped and a fresh one opened).
async fn commit_group(connection: &mut PgConnection, group: Vec<AppendRequest>) -> bool {
    let (requests, replies): (Vec<_>, Vec<_>) = group
        .into_iter()
        .map(|request| {
            (
                (request.stream, request.expected, request.events),
                request.reply,
            )
        })
        .unzip();
    match write(connection, &requests).await {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                // A caller that gave up waiting is no reason to stop the others.
                let _ = reply.send(answer);
            }
            true
        }
        Err(error) => {
            refuse(replies, &error.to_string());
            false
        }
    }
}

/// Nothing of the group is stored: answers every reply with the failure `reason` (each gets its own copy of the cause, which
/// is not Clone).
fn refuse(replies: Vec<oneshot::Sender<Result<AppendResult, AppendError>>>, reason: &str) {
    for reply in replies {
        let _ = reply.send(Err(AppendError::Store(StoreError::Backend(
            reason.to_owned().into(),
        ))));
    }
}

type Request = (StreamName, ExpectedVersion, Vec<NewEvent>);

/// Decides every request of the group, writes what was accepted, commits, and returns one
/// answer per request in order.
async fn write(
    connection: &mut PgConnection,
    requests: &[Request],
) -> Result<Vec<Result<AppendResult, AppendError>>, AppendError> {
    // Round trips are what a group spends most of its lock hold on, so the write lock is taken
    // by the BEGIN itself, and one query answers both lookups. The lookups must use the unique
    // indexes whatever the planner's statistics say: on a table never analysed (autovacuum
    // off, a fresh database) it may pick a sequential scan for `= ANY(…)`, and every append
    // then reads the whole log.
    let mut transaction = connection
        .begin_with("BEGIN; SELECT keryu_lock_event_log(); SET LOCAL enable_seqscan = off")
        .await
        .map_err(backend)?;

    let all_ids: Vec<Uuid> = requests
        .iter()
        .flat_map(|(_, _, events)| events.iter().map(|event| event.event_id))
        .collect();
    let mut stream_names: Vec<&str> = requests.iter().map(|(s, _, _)| s.as_str()).collect();
    stream_names.sort_unstable();
    stream_names.dedup();
    // Rows with an event id are stored events among the group's ids; rows without one are the
    // last version of each of the group's streams.
    let found: Vec<(Option<Uuid>, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT event_id, stream_name, stream_version, global_position FROM events \
         WHERE event_id = ANY($1) \
         UNION ALL \
         SELECT NULL, stream_name, max(stream_version), NULL FROM events \
         WHERE stream_name = ANY($2) GROUP BY stream_name",
    )
    .bind(&all_ids)
    .bind(&stream_names)
    .fetch_all(&mut *transaction)
    .await
    .map_err(backend)?;
    let mut stored: HashMap<Uuid, (String, i64, i64)> = HashMap::new();
    let mut last_versions: HashMap<String, i64> = HashMap::new();
    for (event_id, stream, version, position) in found {
        match (event_id, position) {
            (Some(id), Some(position)) => {
                stored.insert(id, (stream, version, position));
            }
            _ => {
                last_versions.insert(stream, version);
            }
        }
    }

    let mut rows = Rows::default();
    // Ids appended earlier in this group: (stream, version).
    let mut in_group: HashMap<Uuid, (String, i64)> = HashMap::new();
    let mut decisions = Vec::with_capacity(requests.len());
    for (stream, expected, events) in requests {
        let decision = decide(
            stream,
            *expected,
            events,
            &stored,
            &in_group,
            &mut last_versions,
        );
        if let Decision::Write { last_version, .. } = &decision {
            let first_version = last_version + 1 - events.len() as i64;
            for (offset, event) in events.iter().enumerate() {
                let version = first_version + offset as i64;
                in_group.insert(event.event_id, (stream.as_str().to_owned(), version));
                rows.push(stream, version, event)?;
            }
        }
        decisions.push(decision);
    }

    let positions = insert(&mut transaction, &rows).await?;
    transaction.commit().await.map_err(backend)?;
    Ok(decisions
        .into_iter()
        .map(|decision| match decision {
            Decision::Answer(answer) => answer,
            Decision::Write {
                last_event,
                last_version,
            }
            | Decision::SameAs {
                last_event,
                last_version,
            } => positions
                .get(&last_event)
                .map(|position| AppendResult {
                    last_version: last_version.unsigned_abs(),
                    last_position: Position(position.unsigned_abs()),
                })
                .ok_or_else(|| {
                    AppendError::Store(StoreError::Backend(
                        "an appended event has no position".into(),
                    ))
                }),
        })
        .collect())
}

/// One request against the log as left by the requests before it.
fn decide(
    stream: &StreamName,
    expected: ExpectedVersion,
    events: &[NewEvent],
    stored: &HashMap<Uuid, (String, i64, i64)>,
    in_group: &HashMap<Uuid, (String, i64)>,
    last_versions: &mut HashMap<String, i64>,
) -> Decision {
    let Some(last_event) = events.last().map(|event| event.event_id) else {
        return Decision::Answer(Err(AppendError::NoEvents));
    };
    // Retries: every id already appended, as this batch in this stream, returns that result.
    let previously_stored: Vec<Option<(&str, i64, Option<i64>)>> = events
        .iter()
        .map(|event| {
            stored
                .get(&event.event_id)
                .map(|(s, version, position)| (s.as_str(), *version, Some(*position)))
                .or_else(|| {
                    in_group
                        .get(&event.event_id)
                        .map(|(s, version)| (s.as_str(), *version, None))
                })
        })
        .collect();
    if let Some(first_known) = events
        .iter()
        .zip(&previously_stored)
        .find_map(|(event, known)| known.map(|_| event.event_id))
    {
        let same_batch = previously_stored
            .iter()
            .all(|known| known.is_some_and(|(known_stream, _, _)| known_stream == stream.as_str()))
            && previously_stored
                .windows(2)
                .all(|pair| matches!(pair, [Some(a), Some(b)] if b.1 == a.1 + 1));
        if !same_batch {
            return Decision::Answer(Err(AppendError::EventIdConflict {
                event_id: first_known,
            }));
        }
        return match previously_stored.last() {
            Some(Some((_, version, Some(position)))) => Decision::Answer(Ok(AppendResult {
                last_version: version.unsigned_abs(),
                last_position: Position(position.unsigned_abs()),
            })),
            Some(Some((_, version, None))) => Decision::SameAs {
                last_event,
                last_version: *version,
            },
            _ => Decision::Answer(Err(AppendError::EventIdConflict {
                event_id: first_known,
            })),
        };
    }
    let actual = last_versions
        .get(stream.as_str())
        .map(|version| version.unsigned_abs());
    if !expected.accepts(actual) {
        return Decision::Answer(Err(AppendError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual,
        }));
    }
    let last_version = actual.map_or(-1, |version| version as i64) + events.len() as i64;
    last_versions.insert(stream.as_str().to_owned(), last_version);
    Decision::Write {
        last_event,
        last_version,
    }
}

impl Rows {
    fn push(
        &mut self,
        stream: &StreamName,
        version: i64,
        event: &NewEvent,
    ) -> Result<(), AppendError> {
        self.streams.push(stream.as_str().to_owned());
        self.versions.push(version);
        self.event_ids.push(event.event_id);
        self.event_types.push(event.event_type.clone());
        self.schema_versions.push(i32::from(event.schema_version));
        self.data.push(event.data.to_string());
        self.metadata.push(
            serde_json::to_string(&event.metadata)
                .map_err(|error| backend(sqlx::Error::Encode(Box::new(error))))?,
        );
        Ok(())
    }
}

/// Writes every accepted row with one statement, positions in row order; returns each event's
/// position.
async fn insert(
    transaction: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rows: &Rows,
) -> Result<HashMap<Uuid, i64>, AppendError> {
    if rows.event_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let inserted: Vec<(Uuid, i64)> = sqlx::query_as(
        "INSERT INTO events \
             (stream_name, stream_version, event_id, event_type, schema_version, data, metadata) \
         SELECT row.stream_name, row.stream_version, row.event_id, row.event_type, \
                row.schema_version, row.data::jsonb, row.metadata::jsonb \
         FROM unnest($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::int4[], $6::text[], \
                     $7::text[]) \
              WITH ORDINALITY AS row(stream_name, stream_version, event_id, event_type, \
                                     schema_version, data, metadata, ordinality) \
         ORDER BY row.ordinality \
         RETURNING event_id, global_position",
    )
    .bind(&rows.streams)
    .bind(&rows.versions)
    .bind(&rows.event_ids)
    .bind(&rows.event_types)
    .bind(&rows.schema_versions)
    .bind(&rows.data)
    .bind(&rows.metadata)
    .fetch_all(&mut **transaction)
    .await
    .map_err(backend)?;
    Ok(inserted.into_iter().collect())
}
