//! [`EventStore`] on PostgreSQL: one table, one short transaction per append.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use sqlx::postgres::PgDatabaseError;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::group_commit::{self, Append, AppendRequest};
use super::rows::{EventRow, select_events};
use super::stream_reads::{self, ReadRequest, StreamRead};
use super::subscription::{self, Tail};
use crate::event_store::{
    AppendError, AppendResult, EventStore, ExpectedVersion, NewEvent, Position, Precondition,
    RecordedEvent, StoreError, StreamName, StreamVersion, Subscription,
};
use crate::personal_data::{MasterKey, Vault};

/// The event store on PostgreSQL.
///
/// Personal fields of events are sealed on append and opened on read by its [`Vault`] (see
/// [`crate::personal_data`]); [`PgEventStore::sealed`] gives a view that reads them sealed.
///
/// Appends serialise on one advisory lock (see `migrations/0002_event_log_write_lock.sql`), which
/// is what lets every reader of the global log keep a single position as its checkpoint without
/// ever skipping an event that commits late. Each append is one short transaction that never
/// waits on anything but the database.
#[derive(Debug, Clone)]
pub struct PgEventStore {
    pool: PgPool,
    subscription: SubscriptionOptions,
    /// Commit announcements shared by every subscription of this store (and its clones): one
    /// LISTEN connection per process instead of one per subscription.
    commits: Arc<OnceLock<watch::Receiver<u64>>>,
    /// The newest events, read once for every subscription of this store (and its clones)
    /// while any is alive.
    tail: Arc<Mutex<Weak<Tail>>>,
    /// The group-commit writer every append of this store (and its clones) goes through.
    writer: Arc<OnceLock<mpsc::Sender<AppendRequest>>>,
    /// The reader every stream read of this store (and its clones) goes through, started
    /// again should the runtime it ran on have ended.
    reader: Arc<Mutex<Option<mpsc::Sender<ReadRequest>>>>,
    /// Seals personal data on append and opens it on read.
    vault: Vault,
    /// Whether reads open personal data (`false` for [`PgEventStore::sealed`]).
    open_personal_data: bool,
}

/// How subscriptions read the log.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionOptions {
    /// Most events read per query while catching up.
    pub page_size: usize,
    /// How long a caught-up subscription waits for a notification before it polls anyway: the
    /// bound on the delay should a notification be lost (e.g. while reconnecting).
    pub poll_interval: Duration,
    /// How many of the newest events the store keeps in memory for its subscriptions. Caught-up
    /// subscriptions take new events from there instead of each querying the log after every
    /// commit; one further behind reads its pages from the database until it catches up.
    pub tail_events: usize,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            page_size: 500,
            poll_interval: Duration::from_secs(1),
            tail_events: 1024,
        }
    }
}

impl PgEventStore {
    /// A store on `pool`, whose database must have been migrated ([`super::migrate`]), sealing
    /// personal data with data keys wrapped by `master_key`.
    pub fn new(pool: PgPool, master_key: MasterKey) -> Self {
        PgEventStore {
            vault: Vault::new(pool.clone(), master_key),
            pool,
            subscription: SubscriptionOptions::default(),
            commits: Arc::new(OnceLock::new()),
            tail: Arc::new(Mutex::new(Weak::new())),
            writer: Arc::new(OnceLock::new()),
            reader: Arc::new(Mutex::new(None)),
            open_personal_data: true,
        }
    }

    /// The same store reading personal data as stored, sealed: for whatever copies events out
    /// of the database (the outbox relay to NATS), so that copy holds nothing erasure could not
    /// reach.
    #[must_use]
    pub fn sealed(&self) -> Self {
        PgEventStore {
            open_personal_data: false,
            // The reader hands out what its store opens: this view needs its own.
            reader: Arc::new(Mutex::new(None)),
            ..self.clone()
        }
    }

    /// The vault sealing this store's personal data, e.g. to erase a subject.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Events as this store hands them out: personal data opened unless [`Self::sealed`].
    async fn hand_out(&self, rows: Vec<EventRow>) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = rows
            .into_iter()
            .map(RecordedEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.open(events).await
    }

    /// `events`, read sealed, as this store hands them out.
    pub(super) async fn open(
        &self,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.open_personal_data {
            self.vault
                .open(&mut events)
                .await
                .map_err(|error| StoreError::Backend(Box::new(error)))?;
        }
        Ok(events)
    }

    /// Answers of several reads as this store hands them out: the personal data of all of them
    /// opened with one look-up of the keys this process does not hold.
    pub(super) async fn open_each(
        &self,
        mut answers: Vec<Result<Vec<RecordedEvent>, StoreError>>,
    ) -> Vec<Result<Vec<RecordedEvent>, StoreError>> {
        if !self.open_personal_data {
            return answers;
        }
        let mut decoded: Vec<Vec<RecordedEvent>> = answers
            .iter_mut()
            .filter_map(|answer| answer.as_mut().ok().map(std::mem::take))
            .collect();
        let mut opened = match self.vault.open_each(&mut decoded).await {
            Ok(opened) => opened.into_iter().zip(decoded),
            Err(error) => {
                let reason = error.to_string();
                return answers
                    .into_iter()
                    .map(|answer| answer.and(Err(StoreError::Backend(reason.clone().into()))))
                    .collect();
            }
        };
        answers
            .into_iter()
            .map(|answer| {
                answer?;
                let (opened, events) = opened.next().ok_or_else(|| {
                    StoreError::Backend("a read was lost while opening its events".into())
                })?;
                opened.map_err(|error| StoreError::Backend(Box::new(error)))?;
                Ok(events)
            })
            .collect()
    }

    /// The reader of this store's streams, started on first use.
    fn reader(&self) -> mpsc::Sender<ReadRequest> {
        let mut reader = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match reader.as_ref() {
            Some(running) if !running.is_closed() => running.clone(),
            _ => {
                // The reader holds a store without this slot, so that its own sender does not
                // keep it alive once every store is gone.
                let started = stream_reads::start(PgEventStore {
                    reader: Arc::new(Mutex::new(None)),
                    ..self.clone()
                });
                *reader = Some(started.clone());
                started
            }
        }
    }

    /// How this store's subscriptions read the log.
    pub fn subscription_options(&self) -> SubscriptionOptions {
        self.subscription
    }

    /// The same store with other subscription settings, and a tail of its own: a tail already
    /// read for the old settings keeps them, so it is not shared with this store.
    #[must_use]
    pub fn with_subscription_options(mut self, options: SubscriptionOptions) -> Self {
        self.subscription = options;
        self.tail = Arc::new(Mutex::new(Weak::new()));
        self
    }

    /// A receiver that changes whenever PostgreSQL announces a commit to the log; the listener
    /// behind it starts with the first subscription.
    pub(super) fn commit_signal(&self) -> watch::Receiver<u64> {
        self.commits
            .get_or_init(|| subscription::announce_commits(self.pool.clone()))
            .clone()
    }

    /// The tail of the log the subscriptions of this store share, started again if every
    /// earlier subscription has ended.
    pub(super) fn tail(&self) -> Arc<Tail> {
        let mut shared = self
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tail) = shared.upgrade() {
            return tail;
        }
        let tail = Tail::start(self.sealed(), self.subscription);
        *shared = Arc::downgrade(&tail);
        tail
    }

    /// The pool this store uses, for adapters that write their own tables beside the log.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends inside a transaction the caller owns and later commits.
    ///
    /// The append protocol for one stream in one transaction, for callers that write many
    /// streams at once (the benchmark's log generator, tests). [`EventStore::append`] and
    /// [`EventStore::append_if`] go through the group commit instead, which decides the same
    /// way for many appends in one transaction (`group_commit.rs`). The caller holds the log's
    /// write lock from this call until it commits, so it must commit promptly and never wait
    /// on anything outside the database meanwhile. It checks no [`Precondition`].
    ///
    /// It writes `events` as they are: their personal data must already be sealed
    /// ([`Vault::seal`]).
    ///
    /// # Errors
    /// As [`EventStore::append`].
    pub async fn append_in(
        transaction: &mut Transaction<'_, Postgres>,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, AppendError> {
        if events.is_empty() {
            return Err(AppendError::NoEvents);
        }
        sqlx::query("SELECT keryu_lock_event_log()")
            .execute(&mut **transaction)
            .await
            .map_err(backend)?;

        let event_ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
        if let Some(first_result) = already_appended(transaction, stream, &event_ids).await? {
            return Ok(first_result);
        }

        let last_stored: Option<i64> =
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_name = $1")
                .bind(stream.as_str())
                .fetch_one(&mut **transaction)
                .await
                .map_err(backend)?;
        let actual = last_stored.map(i64::unsigned_abs);
        let wrong_expected_version = || AppendError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual,
        };
        if !expected.accepts(actual) {
            return Err(wrong_expected_version());
        }
        let first_version = last_stored.map_or(0, |version| version + 1);
        insert(transaction, stream, first_version, events, &event_ids)
            .await
            .map_err(|error| {
                // Cannot happen while the write lock is held; the unique constraint is the last
                // line of defence and is reported in the port's terms all the same.
                if is_unique_violation(&error, "events_stream_version_unique") {
                    wrong_expected_version()
                } else {
                    backend(error)
                }
            })
    }
}

/// When every id of the batch is already stored, as this batch in this stream, the result of that
/// first append; when none is, `None`; anything in between is a conflict.
async fn already_appended(
    transaction: &mut Transaction<'_, Postgres>,
    stream: &StreamName,
    event_ids: &[Uuid],
) -> Result<Option<AppendResult>, AppendError> {
    let stored: Vec<(Uuid, String, i64, i64)> = sqlx::query_as(
        "SELECT event_id, stream_name, stream_version, global_position FROM events \
         WHERE event_id = ANY($1) ORDER BY global_position",
    )
    .bind(event_ids)
    .fetch_all(&mut **transaction)
    .await
    .map_err(backend)?;

    let (Some((first_stored_id, ..)), Some((_, _, last_version, last_position))) =
        (stored.first(), stored.last())
    else {
        return Ok(None);
    };
    let same_batch = stored.len() == event_ids.len()
        && stored
            .iter()
            .zip(event_ids)
            .all(|((stored_id, stored_stream, _, _), id)| {
                stored_id == id && stored_stream == stream.as_str()
            });
    if same_batch {
        return Ok(Some(AppendResult {
            last_version: last_version.unsigned_abs(),
            last_position: Position(last_position.unsigned_abs()),
        }));
    }
    Err(AppendError::EventIdConflict {
        event_id: *first_stored_id,
    })
}

/// Writes the batch with one statement: versions follow the batch order from `first_version`.
async fn insert(
    transaction: &mut Transaction<'_, Postgres>,
    stream: &StreamName,
    first_version: i64,
    events: &[NewEvent],
    event_ids: &[Uuid],
) -> Result<AppendResult, sqlx::Error> {
    let event_types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let schema_versions: Vec<i32> = events.iter().map(|e| i32::from(e.schema_version)).collect();
    let data: Vec<String> = events.iter().map(|e| e.data.to_string()).collect();
    let metadata = events
        .iter()
        .map(|e| serde_json::to_string(&e.metadata))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;

    let (last_version, last_position): (i64, i64) = sqlx::query_as(
        "WITH inserted AS ( \
             INSERT INTO events \
                 (stream_name, stream_version, event_id, event_type, schema_version, data, metadata) \
             SELECT $1, $2 + batch.ordinality - 1, batch.event_id, batch.event_type, \
                    batch.schema_version, batch.data::jsonb, batch.metadata::jsonb \
             FROM unnest($3::uuid[], $4::text[], $5::int4[], $6::text[], $7::text[]) \
                  WITH ORDINALITY AS batch(event_id, event_type, schema_version, data, metadata, ordinality) \
             ORDER BY batch.ordinality \
             RETURNING stream_version, global_position) \
         SELECT max(stream_version), max(global_position) FROM inserted",
    )
    .bind(stream.as_str())
    .bind(first_version)
    .bind(event_ids)
    .bind(&event_types)
    .bind(&schema_versions)
    .bind(&data)
    .bind(&metadata)
    .fetch_one(&mut **transaction)
    .await?;
    Ok(AppendResult {
        last_version: last_version.unsigned_abs(),
        last_position: Position(last_position.unsigned_abs()),
    })
}

fn is_unique_violation(error: &sqlx::Error, constraint: &str) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.try_downcast_ref::<PgDatabaseError>())
        .is_some_and(|db| db.code() == "23505" && db.constraint() == Some(constraint))
}

pub(super) fn backend(error: sqlx::Error) -> AppendError {
    AppendError::Store(StoreError::Backend(Box::new(error)))
}

impl EventStore for PgEventStore {
    #[tracing::instrument(
        name = "append",
        skip_all,
        fields(stream = %stream, events = events.len(), preconditions = preconditions.len())
    )]
    async fn append_if(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        mut events: Vec<NewEvent>,
        preconditions: &[Precondition],
    ) -> Result<AppendResult, AppendError> {
        if events.is_empty() {
            return Err(AppendError::NoEvents);
        }
        let started = std::time::Instant::now();
        self.vault
            .seal(stream, &mut events)
            .await
            .map_err(|error| AppendError::Store(StoreError::Backend(Box::new(error))))?;
        let writer = match self.writer.get() {
            Some(writer) => writer,
            None => {
                // Two first appends may race here; the loser's writer stops at once, its
                // sender dropped unused.
                let started = group_commit::start(&self.pool)
                    .map_err(|error| AppendError::Store(StoreError::Backend(Box::new(error))))?;
                self.writer.get_or_init(|| started)
            }
        };
        let append = Append {
            stream: stream.clone(),
            expected,
            events,
            preconditions: preconditions.to_vec(),
        };
        let result = ask(writer, |reply| AppendRequest { append, reply })
            .await
            .ok_or_else(|| {
                AppendError::Store(StoreError::Backend("the log writer stopped".into()))
            })?;
        match &result {
            Ok(_) => metrics::histogram!("keryu_event_store_append_duration_seconds")
                .record(started.elapsed().as_secs_f64()),
            Err(
                AppendError::WrongExpectedVersion { .. } | AppendError::PreconditionFailed { .. },
            ) => {
                metrics::counter!("keryu_event_store_conflicts_total").increment(1);
            }
            Err(_) => {}
        }
        result
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamVersion,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let read = StreamRead {
            stream: stream.clone(),
            from,
            max_count,
        };
        ask(&self.reader(), |reply| ReadRequest { read, reply })
            .await
            .ok_or_else(|| StoreError::Backend("the stream reader stopped".into()))?
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(select_events!(
            "WHERE global_position > $1 ORDER BY global_position LIMIT $2"
        ))
        .bind(i64::try_from(after.0).unwrap_or(i64::MAX))
        .bind(limit(max_count))
        .fetch_all(&self.pool)
        .await
        .map_err(|error| StoreError::Backend(Box::new(error)))?;
        self.hand_out(rows).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        Ok(Position(head.map_or(0, i64::unsigned_abs)))
    }

    fn subscribe_all(&self, after: Position) -> Subscription {
        subscription::spawn(self.clone(), self.subscription, after)
    }
}

/// Hands the request `with_reply` makes to the task behind `to`, and waits for its answer;
/// `None` when that task has stopped.
async fn ask<Request, Answer>(
    to: &mpsc::Sender<Request>,
    with_reply: impl FnOnce(oneshot::Sender<Answer>) -> Request,
) -> Option<Answer> {
    let (reply, answer) = oneshot::channel();
    to.send(with_reply(reply)).await.ok()?;
    answer.await.ok()
}

/// `max_count` as a SQL `LIMIT` (a count beyond `i64` means no limit).
pub(super) fn limit(max_count: usize) -> i64 {
    i64::try_from(max_count).unwrap_or(i64::MAX)
}
