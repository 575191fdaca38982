//! Coalesced stream reads: concurrent reads of streams in one process share one query.
//!
//! Under load most reads of the store load one aggregate each (a command's stream, the
//! dispatcher's notification, a status callback's), a few rows in one round trip. PostgreSQL
//! then spends more on each statement (waking a backend, binding, setting up the executor)
//! than on its rows, and so does the process (a pooled connection, a wake-up per answer). So
//! every read of a process goes to one reader task, which runs one query at a time: reads that
//! arrive while it is out wait, and go together (up to [`MAX_READS`]) in the next one. An idle
//! reader sends a lone read at once; it pays one channel hop and no wait.
//!
//! One query at a time, not a few: in the saturation benchmark two in flight gave 1,107 and
//! 1,116 sends/s, one 1,251 and 1,277 (alternating runs) — larger batches save more than the
//! wait costs.
//!
//! Each read keeps its own answer: its stream's events from its version, at most its count, in
//! version order, as one query statement (hence one snapshot) saw them; a read that fails to
//! decode or open fails alone. The personal data of a whole batch is opened with one look-up
//! of the keys this process does not hold (see [`crate::personal_data::Vault`]), which also
//! keeps concurrent loads of one subject's notifications from each asking for the same key.

use sqlx::{FromRow, PgPool};
use tokio::sync::{mpsc, oneshot};

use super::event_store::{PgEventStore, limit};
use super::rows::{EventRow, select_events};
use crate::event_store::{RecordedEvent, StoreError, StreamName, StreamVersion};

/// Most reads one query takes.
const MAX_READS: usize = 256;
/// Reads waiting for the reader before callers wait to enqueue (back-pressure).
const QUEUE: usize = 4096;

/// One caller's read, with where to send its answer.
pub(super) struct ReadRequest {
    pub(super) read: StreamRead,
    pub(super) reply: oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>,
}

/// What one caller asked for: `max_count` events of `stream` from version `from`.
pub(super) struct StreamRead {
    pub(super) stream: StreamName,
    pub(super) from: StreamVersion,
    pub(super) max_count: usize,
}

/// Starts the reader of `store`; it stops when every sender is gone.
///
/// It is a task of the runtime that made the first read. Unlike the log writer it holds no
/// lock that others wait on, so it needs no thread of its own.
pub(super) fn start(store: PgEventStore) -> mpsc::Sender<ReadRequest> {
    let (requests, queue) = mpsc::channel(QUEUE);
    tokio::spawn(read_batches(store, queue));
    requests
}

/// The reader's loop: takes every read waiting and answers them with one query, until every
/// sender is gone.
async fn read_batches(store: PgEventStore, mut queue: mpsc::Receiver<ReadRequest>) {
    let mut batch = Vec::with_capacity(MAX_READS);
    while queue.recv_many(&mut batch, MAX_READS).await > 0 {
        metrics::histogram!("keryu_event_store_read_batch_size").record(batch.len() as f64);
        let (reads, replies): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|request| (request.read, request.reply))
            .unzip();
        for (reply, answer) in replies.into_iter().zip(read(&store, &reads).await) {
            // A caller that gave up waiting is no reason to fail the others.
            let _ = reply.send(answer);
        }
    }
}

/// A row of a batched read: the event, and which read (0-based) it answers.
#[derive(FromRow)]
struct BatchRow {
    read: i64,
    #[sqlx(flatten)]
    event: EventRow,
}

/// Answers `reads` with one query: one answer per read, in order.
async fn read(
    store: &PgEventStore,
    reads: &[StreamRead],
) -> Vec<Result<Vec<RecordedEvent>, StoreError>> {
    match query(store.pool(), reads).await {
        Ok(answers) => store.open_each(answers).await,
        Err(error) => {
            let reason = error.to_string();
            reads
                .iter()
                .map(|_| Err(StoreError::Backend(reason.clone().into())))
                .collect()
        }
    }
}

/// The rows of every read, decoded, one entry per read.
async fn query(
    pool: &PgPool,
    reads: &[StreamRead],
) -> Result<Vec<Result<Vec<RecordedEvent>, StoreError>>, sqlx::Error> {
    let streams: Vec<&str> = reads.iter().map(|read| read.stream.as_str()).collect();
    let from: Vec<i64> = reads
        .iter()
        .map(|read| i64::try_from(read.from).unwrap_or(i64::MAX))
        .collect();
    let max_count: Vec<i64> = reads.iter().map(|read| limit(read.max_count)).collect();
    let rows: Vec<BatchRow> = sqlx::query_as(concat!(
        "SELECT wanted.read - 1 AS read, e.* \
         FROM unnest($1::text[], $2::int8[], $3::int8[]) \
              WITH ORDINALITY AS wanted(stream_name, from_version, max_count, read) \
         CROSS JOIN LATERAL (",
        select_events!(
            "WHERE events.stream_name = wanted.stream_name \
               AND events.stream_version >= wanted.from_version \
             ORDER BY events.stream_version LIMIT wanted.max_count"
        ),
        ") AS e ORDER BY wanted.read, e.stream_version"
    ))
    .bind(&streams)
    .bind(&from)
    .bind(&max_count)
    .fetch_all(pool)
    .await?;
    let mut answers: Vec<Result<Vec<RecordedEvent>, StoreError>> =
        reads.iter().map(|_| Ok(Vec::new())).collect();
    for row in rows {
        let answer = usize::try_from(row.read)
            .ok()
            .and_then(|read| answers.get_mut(read))
            .ok_or_else(|| sqlx::Error::Protocol(format!("no read {} was asked", row.read)))?;
        if let Ok(events) = answer {
            match RecordedEvent::try_from(row.event) {
                Ok(event) => events.push(event),
                Err(error) => *answer = Err(error),
            }
        }
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use keryu_domain::{DataOwner, PersonalData};
    use uuid::Uuid;

    use super::*;
    use crate::event_store::{EventMetadata, EventStore, ExpectedVersion, NewEvent};
    use crate::personal_data::MasterKey;

    fn event(data: serde_json::Value, personal: Option<PersonalData>) -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "TestHappened".to_owned(),
            schema_version: 1,
            data,
            metadata: EventMetadata::default(),
            personal,
        }
    }

    fn stream() -> StreamName {
        StreamName::new("subject", Uuid::now_v7()).expect("valid stream name")
    }

    fn versions(answer: &Result<Vec<RecordedEvent>, StoreError>) -> Vec<u64> {
        answer
            .as_ref()
            .expect("the read is answered")
            .iter()
            .map(|event| event.version)
            .collect()
    }

    /// Appends `count` events to a new stream; the second event holds personal data.
    async fn filled(store: &PgEventStore, count: u64) -> StreamName {
        let name = stream();
        let events = (0..count)
            .map(|n| {
                let personal = (n == 1).then_some(PersonalData {
                    owner: DataOwner::ThisStream,
                    fields: &["phone"],
                });
                event(
                    serde_json::json!({ "n": n, "phone": "+34600000001" }),
                    personal,
                )
            })
            .collect();
        store
            .append(&name, ExpectedVersion::NoStream, events)
            .await
            .expect("append");
        name
    }

    fn read_of(stream: &StreamName, from: StreamVersion, max_count: usize) -> StreamRead {
        StreamRead {
            stream: stream.clone(),
            from,
            max_count,
        }
    }

    /// One query, many reads: each gets its own stream's events from its version, at most its
    /// count, in order, with personal data opened; a stream that does not exist reads empty.
    #[sqlx::test(migrator = "crate::postgres::MIGRATOR")]
    async fn one_query_answers_each_read_with_its_own_events(pool: PgPool) {
        let store = PgEventStore::new(pool, MasterKey::development());
        let (five, two) = (filled(&store, 5).await, filled(&store, 2).await);
        let answers = read(
            &store,
            &[
                read_of(&five, 0, 100),
                read_of(&two, 0, 100),
                read_of(&five, 2, 2),
                read_of(&stream(), 0, 100),
                read_of(&five, 5, 100),
                read_of(&two, 1, 1),
            ],
        )
        .await;
        let read: Vec<Vec<u64>> = answers.iter().map(versions).collect();
        assert_eq!(
            read,
            [
                vec![0, 1, 2, 3, 4],
                vec![0, 1],
                vec![2, 3],
                vec![],
                vec![],
                vec![1]
            ]
        );
        let streams_read = |answer: &Result<Vec<RecordedEvent>, StoreError>| -> Vec<StreamName> {
            answer
                .as_ref()
                .expect("answered")
                .iter()
                .map(|event| event.stream.clone())
                .collect()
        };
        assert!(streams_read(&answers[0]).iter().all(|name| *name == five));
        assert!(streams_read(&answers[1]).iter().all(|name| *name == two));
        let opened = &answers[5].as_ref().expect("answered")[0].data;
        assert_eq!(opened["phone"], "+34600000001", "{opened}");
    }

    /// An event whose personal data does not open (its owner has no key) fails the read it
    /// belongs to, not the others of the query.
    #[sqlx::test(migrator = "crate::postgres::MIGRATOR")]
    async fn a_read_that_does_not_open_fails_alone(pool: PgPool) {
        let store = PgEventStore::new(pool.clone(), MasterKey::development());
        let good = filled(&store, 2).await;
        let keyless = stream();
        let mut transaction = pool.begin().await.expect("begin");
        PgEventStore::append_in(
            &mut transaction,
            &keyless,
            ExpectedVersion::NoStream,
            &[event(
                serde_json::json!({ "$personal": {
                    "owner": Uuid::now_v7(), "fields": ["phone"], "sealed": "AAAA"
                }}),
                None,
            )],
        )
        .await
        .expect("append as stored");
        transaction.commit().await.expect("commit");

        let answers = read(&store, &[read_of(&keyless, 0, 10), read_of(&good, 0, 10)]).await;
        assert!(answers[0].is_err(), "{:?}", answers[0]);
        assert_eq!(versions(&answers[1]), [0, 1]);
    }

    /// Reads made at once through the store's port, most of them while the reader is out with
    /// another query: every one is answered with its own stream.
    #[sqlx::test(migrator = "crate::postgres::MIGRATOR")]
    async fn concurrent_reads_each_get_their_own_stream(pool: PgPool) {
        let store = PgEventStore::new(pool, MasterKey::development());
        let mut streams = Vec::new();
        for count in 1..=40 {
            streams.push((filled(&store, count).await, count));
        }
        let reads = streams.iter().map(|(name, count)| {
            let store = store.clone();
            async move {
                let events = store.read_stream(name, 0, 100).await.expect("read");
                assert_eq!(events.len() as u64, *count, "{name}");
                assert!(events.iter().all(|event| event.stream == *name), "{name}");
            }
        });
        futures_util::future::join_all(reads).await;
    }
}
