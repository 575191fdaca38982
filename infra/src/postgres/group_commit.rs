//! Group commit: concurrent appends of one process share one transaction.
//!
//! Appends serialise on the log's write lock (that is what keeps the global order gap-free), so
//! one append per transaction caps throughput at one lock hold — a handful of round trips and a
//! commit — per event batch. Instead, every append of a process goes to one writer task; while
//! a transaction is in flight, new appends queue up, and the next transaction takes all of them
//! at once (up to [`MAX_REQUESTS`]). An idle writer starts at once, so a lone append pays no
//! extra latency; under load, the round trips and the commit are shared by the whole group.
//!
//! Each append keeps its own contract, decided in queue order against one snapshot of the log:
//! the expected version, and the versions its preconditions expect of other streams, are
//! checked against the streams as left by the appends before it (in the store or earlier in the
//! same group), event ids already stored — or appended earlier in the group — return the first
//! result, and a refused append changes nothing. The rows are written only if, once the write
//! lock is held, the streams and ids the decisions rest on are as they were taken to be;
//! otherwise the group is decided again (see [`write`]). Positions follow the queue order, and
//! the whole group becomes visible at one commit, under the same write lock as any single
//! append: a reader can never see a later position before an earlier one. When the
//! transaction fails, every append of the group that would have written gets the error;
//! nothing of the group is stored.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::event_store::backend;
use crate::event_store::{
    AppendError, AppendResult, ExpectedVersion, NewEvent, Position, Precondition, StoreError,
    StreamName,
};

/// Most appends one transaction takes.
pub(super) const MAX_REQUESTS: usize = 512;
/// Appends waiting for the writer before callers wait to enqueue (back-pressure).
const QUEUE: usize = 4096;

/// One caller's append, with where to send its answer.
pub(super) struct AppendRequest {
    pub(super) append: Append,
    pub(super) reply: oneshot::Sender<Result<AppendResult, AppendError>>,
}

/// What one caller asked to append, and on what conditions.
pub(super) struct Append {
    pub(super) stream: StreamName,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<NewEvent>,
    pub(super) preconditions: Vec<Precondition>,
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
            None => connect(options).await,
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

/// Opens the writer's connection. Its queries are lookups by unique index, and the planner of
/// a table never analysed (autovacuum off, a fresh database) may pick a sequential scan for
/// `= ANY(…)` instead, which would read the whole log for every group: sequential scans are off
/// for this connection.
async fn connect(options: &PgConnectOptions) -> sqlx::Result<PgConnection> {
    let mut connection = PgConnection::connect_with(options).await?;
    sqlx::raw_sql("SET enable_seqscan = off")
        .execute(&mut connection)
        .await?;
    Ok(connection)
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
        .map(|request| (request.append, request.reply))
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

/// Nothing of the group is stored: answers every reply with the failure `reason` (each gets
/// its own copy of the cause, which is not Clone).
fn refuse(replies: Vec<oneshot::Sender<Result<AppendResult, AppendError>>>, reason: &str) {
    for reply in replies {
        let _ = reply.send(Err(backend_message(reason)));
    }
}

/// Decides every request of the group, writes what was accepted, commits, and returns one
/// answer per request in order.
///
/// Round trips are what a group spends most of its time on, and every other writer of the log
/// waits while one holds the write lock. So the group is first decided on what its requests
/// expect — each stream at the version its first append or precondition names, no stream where
/// it expects none, every event id new — and the rows are sent with those assumptions: the
/// write takes the lock, checks them and commits, in one round trip
/// (`keryu_append_as_assumed`, migration 0011). When one does not hold (a stale caller, a
/// retry of a stored append, another process's write) or cannot be made (an append to any
/// version), the group is decided on a lookup made without the lock and written on the same
/// condition; only when another process appended to one of its streams in between is it
/// decided again with the lock taken before the lookup.
async fn write(
    connection: &mut PgConnection,
    requests: &[Append],
) -> Result<Vec<Result<AppendResult, AppendError>>, AppendError> {
    if let Some(expected) = Seen::expected_by(requests) {
        if let Some(answers) = decide_and_insert(&mut *connection, requests, &expected).await? {
            return Ok(answers);
        }
        metrics::counter!("keryu_event_store_groups_looked_up_total").increment(1);
    }
    let seen = look_up(&mut *connection, requests).await?;
    if let Some(answers) = decide_and_insert(&mut *connection, requests, &seen).await? {
        return Ok(answers);
    }
    metrics::counter!("keryu_event_store_groups_decided_again_total").increment(1);
    tracing::debug!("another writer appended to the group's streams; deciding it again");
    let mut transaction = connection
        .begin_with("BEGIN; SELECT keryu_lock_event_log()")
        .await
        .map_err(backend)?;
    let seen = look_up(&mut *transaction, requests).await?;
    let answers = decide_and_insert(&mut transaction, requests, &seen)
        .await?
        .ok_or_else(|| {
            backend_message("the group's streams moved while the write lock was held")
        })?;
    transaction.commit().await.map_err(backend)?;
    Ok(answers)
}

/// Decides the group on `seen` and writes it on `connection`; `None` when, under the lock,
/// the streams and ids were not as `seen` has them, and nothing was written. A group that
/// writes nothing has no write to check `seen` with: it is answered only on a lookup.
async fn decide_and_insert(
    connection: &mut PgConnection,
    requests: &[Append],
    seen: &Seen,
) -> Result<Option<Vec<Result<AppendResult, AppendError>>>, AppendError> {
    let decided = Decided::of(requests, seen)?;
    if decided.rows.event_ids.is_empty() {
        return if seen.looked_up {
            decided.answers(&HashMap::new()).map(Some)
        } else {
            Ok(None)
        };
    }
    match insert_as_seen(&mut *connection, seen, &decided.rows).await? {
        Some(positions) => decided.answers(&positions).map(Some),
        None => Ok(None),
    }
}

/// What a group's decisions rest on: looked up in one snapshot, or assumed from what its
/// requests expect.
struct Seen {
    /// The streams read: those the group appends to or names in a precondition.
    streams: Vec<String>,
    /// Stored events among the group's ids: (stream, version, position).
    stored: HashMap<Uuid, (String, i64, i64)>,
    /// The last version of each stream read that has events.
    last_versions: HashMap<String, i64>,
    /// Read from the log in one snapshot, rather than assumed: decisions that write nothing
    /// may rest on it alone.
    looked_up: bool,
}

impl Seen {
    /// The log as the group's requests expect it: each stream at the version the first request
    /// naming it expects (as the stream it appends to or in a precondition), and none of their
    /// event ids stored. `None` when a request appends at any version, which says nothing.
    fn expected_by(requests: &[Append]) -> Option<Seen> {
        let mut seen = Seen {
            streams: Vec::new(),
            stored: HashMap::new(),
            last_versions: HashMap::new(),
            looked_up: false,
        };
        let mut named = HashSet::new();
        for append in requests {
            let expectations = std::iter::once((&append.stream, append.expected)).chain(
                append
                    .preconditions
                    .iter()
                    .map(|condition| (&condition.stream, condition.expected)),
            );
            for (stream, expected) in expectations {
                let stream = stream.as_str();
                if !named.insert(stream) {
                    continue;
                }
                match expected {
                    ExpectedVersion::Any => return None,
                    ExpectedVersion::NoStream => {}
                    ExpectedVersion::Exact(version) => {
                        seen.last_versions
                            .insert(stream.to_owned(), i64::try_from(version).ok()?);
                    }
                }
                seen.streams.push(stream.to_owned());
            }
        }
        Some(seen)
    }

    /// The version of each stream read, -1 for none, as `keryu_append_as_assumed` takes them.
    fn versions(&self) -> Vec<i64> {
        self.streams
            .iter()
            .map(|stream| self.last_versions.get(stream).copied().unwrap_or(-1))
            .collect()
    }
}

/// A row of [`look_up`]'s answer: event id, stream name, stream version, global position.
type LookupRow = (Option<Uuid>, Option<String>, Option<i64>, Option<i64>);

/// Reads, in one query and so one snapshot, everything the group's decisions rest on.
/// On the writer's connection, it uses the unique indexes whatever the statistics say
/// ([`connect`]).
async fn look_up(
    executor: impl sqlx::PgExecutor<'_>,
    requests: &[Append],
) -> Result<Seen, AppendError> {
    let all_ids: Vec<Uuid> = requests
        .iter()
        .flat_map(|append| append.events.iter().map(|event| event.event_id))
        .collect();
    let mut streams: Vec<String> = requests
        .iter()
        .flat_map(|append| {
            std::iter::once(&append.stream)
                .chain(
                    append
                        .preconditions
                        .iter()
                        .map(|condition| &condition.stream),
                )
                .map(|stream| stream.as_str().to_owned())
        })
        .collect();
    streams.sort_unstable();
    streams.dedup();
    // Two kinds of rows: a stored event among the group's ids (an id and a position), the
    // last version of one of the group's streams (a stream but no id).
    let found: Vec<LookupRow> = sqlx::query_as(
        "SELECT event_id, stream_name, stream_version, global_position FROM events \
         WHERE event_id = ANY($1) \
         UNION ALL \
         SELECT NULL, stream_name, max(stream_version), NULL FROM events \
         WHERE stream_name = ANY($2) GROUP BY stream_name",
    )
    .bind(&all_ids)
    .bind(&streams)
    .fetch_all(executor)
    .await
    .map_err(backend)?;
    let mut seen = Seen {
        streams,
        stored: HashMap::new(),
        last_versions: HashMap::new(),
        looked_up: true,
    };
    for row in found {
        match row {
            (Some(id), Some(stream), Some(version), Some(position)) => {
                seen.stored.insert(id, (stream, version, position));
            }
            (None, Some(stream), Some(version), None) => {
                seen.last_versions.insert(stream, version);
            }
            other => {
                return Err(backend_message(&format!(
                    "unexpected row in the group's lookup: {other:?}"
                )));
            }
        }
    }
    Ok(seen)
}

/// The group decided: one decision per request, and the rows of those that write.
struct Decided {
    decisions: Vec<Decision>,
    rows: Rows,
}

impl Decided {
    /// Decides every request in queue order against what the lookup found, each seeing the log
    /// as the requests before it left it.
    fn of(requests: &[Append], seen: &Seen) -> Result<Self, AppendError> {
        let mut last_versions = seen.last_versions.clone();
        let mut rows = Rows::default();
        // Ids appended earlier in this group: (stream, version).
        let mut in_group: HashMap<Uuid, (String, i64)> = HashMap::new();
        let mut decisions = Vec::with_capacity(requests.len());
        for append in requests {
            let decision = decide(append, &seen.stored, &in_group, &mut last_versions);
            if let Decision::Write { last_version, .. } = &decision {
                let first_version = last_version + 1 - append.events.len() as i64;
                for (offset, event) in append.events.iter().enumerate() {
                    let version = first_version + offset as i64;
                    in_group.insert(event.event_id, (append.stream.as_str().to_owned(), version));
                    rows.push(&append.stream, version, event)?;
                }
            }
            decisions.push(decision);
        }
        Ok(Self { decisions, rows })
    }

    /// One answer per request, in order, once the rows are stored at `positions`.
    fn answers(
        self,
        positions: &HashMap<Uuid, i64>,
    ) -> Result<Vec<Result<AppendResult, AppendError>>, AppendError> {
        Ok(self
            .decisions
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
                    .ok_or_else(|| backend_message("an appended event has no position")),
            })
            .collect())
    }
}

/// One request against the log as left by the requests before it.
fn decide(
    append: &Append,
    stored: &HashMap<Uuid, (String, i64, i64)>,
    in_group: &HashMap<Uuid, (String, i64)>,
    last_versions: &mut HashMap<String, i64>,
) -> Decision {
    let Append {
        stream,
        expected,
        events,
        preconditions,
    } = append;
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
    let version_of = |stream: &StreamName| {
        last_versions
            .get(stream.as_str())
            .map(|version| version.unsigned_abs())
    };
    let actual = version_of(stream);
    if !expected.accepts(actual) {
        return Decision::Answer(Err(AppendError::WrongExpectedVersion {
            stream: stream.clone(),
            expected: *expected,
            actual,
        }));
    }
    for condition in preconditions {
        let actual = version_of(&condition.stream);
        if !condition.expected.accepts(actual) {
            return Decision::Answer(Err(AppendError::PreconditionFailed {
                stream: condition.stream.clone(),
                expected: condition.expected,
                actual,
            }));
        }
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

/// Writes every row with one statement, positions in row order, if every stream `seen` read is
/// still at the version it saw and none of the rows' ids is stored; returns each event's
/// position, or `None` when that does not hold and nothing was written. Outside a transaction,
/// this is the whole of a commit in one round trip.
async fn insert_as_seen(
    executor: impl sqlx::PgExecutor<'_>,
    seen: &Seen,
    rows: &Rows,
) -> Result<Option<HashMap<Uuid, i64>>, AppendError> {
    let inserted: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT * FROM keryu_append_as_assumed($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&seen.streams)
            .bind(seen.versions())
            .bind(&rows.streams)
            .bind(&rows.versions)
            .bind(&rows.event_ids)
            .bind(&rows.event_types)
            .bind(&rows.schema_versions)
            .bind(&rows.data)
            .bind(&rows.metadata)
            .fetch_all(executor)
            .await
            .map_err(backend)?;
    Ok((!inserted.is_empty()).then(|| inserted.into_iter().collect()))
}

/// A failure of the store that is not a database error.
fn backend_message(message: &str) -> AppendError {
    AppendError::Store(StoreError::Backend(message.to_owned().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_store::EventMetadata;

    fn append(stream: &StreamName, expected: ExpectedVersion, on: &[(&StreamName, u64)]) -> Append {
        Append {
            stream: stream.clone(),
            expected,
            events: vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "TestHappened".to_owned(),
                schema_version: 1,
                data: serde_json::json!({}),
                metadata: EventMetadata::default(),
                personal: None,
            }],
            preconditions: on
                .iter()
                .map(|(stream, version)| Precondition {
                    stream: (*stream).clone(),
                    expected: ExpectedVersion::Exact(*version),
                })
                .collect(),
        }
    }

    fn stream(category: &str) -> StreamName {
        StreamName::new(category, Uuid::now_v7()).expect("valid stream name")
    }

    /// Creates `streams` (one event each) in one group, as a test's starting point.
    async fn create(connection: &mut PgConnection, streams: &[&StreamName]) {
        let group: Vec<Append> = streams
            .iter()
            .map(|stream| append(stream, ExpectedVersion::NoStream, &[]))
            .collect();
        let created = write(connection, &group).await.expect("the streams");
        assert!(created.iter().all(Result::is_ok), "{created:?}");
    }

    /// Decides `group` on a lookup, lets `later` be appended by another writer, then tries the
    /// group's write: whether it found its lookup stale (and wrote nothing).
    async fn stale_after(pool: &PgPool, group: &[Append], later: Append) -> bool {
        let mut connection = pool.acquire().await.expect("connection");
        let seen = look_up(&mut *connection, group).await.expect("lookup");
        let mut other = pool.acquire().await.expect("another connection");
        let answers = write(&mut other, &[later]).await.expect("the later append");
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        decide_and_insert(&mut connection, group, &seen)
            .await
            .expect("no failure")
            .is_none()
    }

    /// A write rests on a lookup made without the lock: it goes in only if nothing appended
    /// since touches what the lookup read — a stream it appends to, a stream a precondition of
    /// it names, an event id it writes — and appends elsewhere meanwhile do not stop it.
    #[sqlx::test(migrator = "crate::postgres::MIGRATOR")]
    async fn a_write_goes_in_only_while_its_lookup_holds(pool: PgPool) {
        let mut connection = pool.acquire().await.expect("connection");
        let guarded = stream("subject");
        create(&mut connection, &[&guarded]).await;

        let appended_to = stream("notification");
        assert!(
            stale_after(
                &pool,
                &[append(&appended_to, ExpectedVersion::Any, &[])],
                append(&appended_to, ExpectedVersion::Any, &[]),
            )
            .await,
            "its own stream moved"
        );
        assert!(
            stale_after(
                &pool,
                &[append(
                    &stream("notification"),
                    ExpectedVersion::NoStream,
                    &[(&guarded, 0)]
                )],
                append(&guarded, ExpectedVersion::Exact(0), &[]),
            )
            .await,
            "the stream its precondition names moved"
        );
        let mine = append(&stream("notification"), ExpectedVersion::NoStream, &[]);
        let same_ids = Append {
            stream: stream("notification"),
            expected: ExpectedVersion::NoStream,
            events: mine.events.clone(),
            preconditions: Vec::new(),
        };
        assert!(
            stale_after(&pool, &[mine], same_ids).await,
            "its event id was stored elsewhere"
        );
        let unrelated = stream("notification");
        assert!(
            !stale_after(
                &pool,
                &[append(&unrelated, ExpectedVersion::NoStream, &[])],
                append(&stream("notification"), ExpectedVersion::NoStream, &[]),
            )
            .await,
            "another stream moved"
        );
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_name = $1")
            .bind(unrelated.as_str())
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(stored, 1, "the write whose lookup held went in");
    }

    /// One group, decided in order: a precondition sees the stream as the appends before it in
    /// the group left it, and the append it refuses leaves the others of the group alone.
    #[sqlx::test(migrator = "crate::postgres::MIGRATOR")]
    async fn a_failed_precondition_refuses_only_its_own_append(pool: PgPool) {
        let mut connection = pool.acquire().await.expect("connection");
        let (subject, other) = (stream("subject"), stream("subject"));
        create(&mut connection, &[&subject, &other]).await;

        let stale = stream("notification");
        let group = [
            append(&subject, ExpectedVersion::Exact(0), &[]),
            append(&stale, ExpectedVersion::NoStream, &[(&subject, 0)]),
            append(
                &stream("notification"),
                ExpectedVersion::NoStream,
                &[(&subject, 1)],
            ),
            append(
                &stream("notification"),
                ExpectedVersion::NoStream,
                &[(&other, 0)],
            ),
            append(
                &stream("notification"),
                ExpectedVersion::NoStream,
                &[(&other, 0), (&subject, 1)],
            ),
        ];
        let answers = write(&mut connection, &group).await.expect("the group");

        let [moved, refused, fresh, elsewhere, both] = answers.as_slice() else {
            panic!("one answer per append: {answers:?}");
        };
        assert_eq!(moved.as_ref().map(|a| a.last_version).ok(), Some(1));
        assert!(
            matches!(
                refused,
                Err(AppendError::PreconditionFailed {
                    stream,
                    expected: ExpectedVersion::Exact(0),
                    actual: Some(1),
                }) if *stream == subject
            ),
            "{refused:?}"
        );
        for accepted in [fresh, elsewhere, both] {
            assert!(accepted.is_ok(), "{accepted:?}");
        }
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(stored, 2 + 4, "everything but the refused append");
        let refused_rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_name = $1")
                .bind(stale.as_str())
                .fetch_one(&pool)
                .await
                .expect("count");
        assert_eq!(refused_rows, 0);
    }

    /// A group decided on what its appends expect, with no lookup, is written only while the
    /// log is as they expect: its stream at the expected version, the stream a precondition
    /// names too, its event ids new.
    #[sqlx::test(migrator = "crate::postgres::MIGRATOR")]
    async fn a_write_on_expectations_goes_in_only_while_they_hold(pool: PgPool) {
        let mut connection = pool.acquire().await.expect("connection");
        let guarded = stream("subject");
        let created = append(&guarded, ExpectedVersion::NoStream, &[]);
        let same_ids = Append {
            stream: stream("subject"),
            expected: ExpectedVersion::NoStream,
            events: created.events.clone(),
            preconditions: Vec::new(),
        };
        let cases = [
            (created, true, "a new stream"),
            (
                append(&guarded, ExpectedVersion::Exact(0), &[]),
                true,
                "the expected version",
            ),
            (same_ids, false, "an event id already stored"),
            (
                append(&guarded, ExpectedVersion::Exact(0), &[]),
                false,
                "a stale version",
            ),
            (
                append(&guarded, ExpectedVersion::NoStream, &[]),
                false,
                "a stream that exists",
            ),
            (
                append(
                    &stream("notification"),
                    ExpectedVersion::NoStream,
                    &[(&guarded, 0)],
                ),
                false,
                "a stale precondition",
            ),
            (
                append(
                    &stream("notification"),
                    ExpectedVersion::NoStream,
                    &[(&guarded, 1)],
                ),
                true,
                "a precondition that holds",
            ),
        ];
        for (append, goes_in, case) in cases {
            let group = [append];
            let expected = Seen::expected_by(&group).expect("every version expected");
            let written = decide_and_insert(&mut connection, &group, &expected)
                .await
                .expect("no failure");
            assert_eq!(written.is_some(), goes_in, "{case}");
        }
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(stored, 3, "the three writes whose expectations held");
    }

    /// A group that writes nothing cannot have its assumptions checked by a write: here its
    /// first append (which has no events) wrongly expects version 5 of a stream at 0, which
    /// would refuse the second; the group must be looked up and the second written.
    #[sqlx::test(migrator = "crate::postgres::MIGRATOR")]
    async fn a_group_that_would_write_nothing_is_decided_on_a_lookup(pool: PgPool) {
        let mut connection = pool.acquire().await.expect("connection");
        let subject = stream("subject");
        create(&mut connection, &[&subject]).await;

        let empty = Append {
            events: Vec::new(),
            ..append(&subject, ExpectedVersion::Exact(5), &[])
        };
        let answers = write(
            &mut connection,
            &[empty, append(&subject, ExpectedVersion::Exact(0), &[])],
        )
        .await
        .expect("the group");
        let [nothing, written] = answers.as_slice() else {
            panic!("one answer per append: {answers:?}");
        };
        assert!(matches!(nothing, Err(AppendError::NoEvents)), "{nothing:?}");
        assert_eq!(written.as_ref().map(|a| a.last_version).ok(), Some(1));
    }

    /// The first append naming a stream says what the group assumes of it; later ones are
    /// decided against the appends before them. An append at any version assumes nothing.
    #[test]
    fn a_group_assumes_what_its_first_mention_of_each_stream_expects() {
        let (subject, notification) = (stream("subject"), stream("notification"));
        let group = [
            append(&notification, ExpectedVersion::NoStream, &[(&subject, 4)]),
            append(&subject, ExpectedVersion::Exact(5), &[]),
            append(&notification, ExpectedVersion::Exact(0), &[(&subject, 6)]),
        ];
        let expected = Seen::expected_by(&group).expect("every version expected");
        assert_eq!(
            expected.streams,
            vec![
                notification.as_str().to_owned(),
                subject.as_str().to_owned()
            ]
        );
        assert_eq!(expected.versions(), vec![-1, 4]);
        assert!(expected.stored.is_empty());
        let with_any = [
            append(&subject, ExpectedVersion::Exact(5), &[]),
            append(&stream("alarm"), ExpectedVersion::Any, &[]),
        ];
        assert!(Seen::expected_by(&with_any).is_none());
    }
}
