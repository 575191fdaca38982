//! Zero-downtime rebuild: replay the whole log into a shadow copy of a read model while the live
//! copy keeps serving, then swap the copies in one transaction.
//!
//! The swap locks the live checkpoint table exclusively, so live projectors (in any process)
//! wait; applies the last events to the shadow under that lock, so it is exactly at the head;
//! renames the schemas and drops the old copy in the same transaction. Statements that were
//! waiting re-resolve their tables by name when the lock is released and continue on the new
//! copy, from its checkpoint. Interrupting a rebuild before the swap leaves the live copy
//! untouched; the next rebuild starts by dropping the abandoned shadow.
//!
//! [`rebuild_all`] rebuilds several read models from one reading of the log: reading and
//! decoding a page costs about as much as applying it, so five replays of their own cost five
//! times the reading for the same result.

use futures_util::future::{BoxFuture, try_join_all};
use keryu_infra::event_store::{EventStore, Position, RecordedEvent};
use keryu_infra::postgres::PgEventStore;
use sqlx::AssertSqlSafe;

use crate::projection::Projection;
use crate::projector::{Projector, live_schema};

/// Events read per page while replaying.
const PAGE_SIZE: usize = 5_000;

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Events replayed into the new copy (all of the log, including the final catch-up).
    pub events: u64,
    /// The checkpoint of the new copy when it was swapped in.
    pub checkpoint: Position,
}

/// A rebuild failed; the live read model is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] keryu_infra::event_store::StoreError),
}

/// Rebuilds the read model of `live`'s projection from the whole log and swaps it in.
/// `progress` is told the position reached and the head of the log after every page.
///
/// # Errors
/// [`RebuildError`]; the live copy keeps serving as before.
pub async fn rebuild<P: Projection + Clone>(
    live: &Projector<P>,
    progress: impl FnMut(Position, Position),
) -> Result<Rebuilt, RebuildError> {
    let copy = ShadowCopy::start(live).await?;
    let store = live.store().clone();
    Ok(replay_and_swap(&store, vec![Box::new(copy)], progress)
        .await?
        .remove(0))
}

/// Rebuilds every read model of `live` from one reading of the log, then swaps each in (one
/// after the other, each exactly at the head). Answers in the order given.
///
/// # Errors
/// [`RebuildError`]; read models not swapped in yet keep serving as before.
pub async fn rebuild_all(
    store: &PgEventStore,
    live: Vec<Box<dyn Rebuilding>>,
    progress: impl FnMut(Position, Position),
) -> Result<Vec<Rebuilt>, RebuildError> {
    let mut copies = Vec::with_capacity(live.len());
    for read_model in live {
        copies.push(read_model.start().await?);
    }
    replay_and_swap(store, copies, progress).await
}

/// A read model to rebuild, whatever its projection (for [`rebuild_all`]).
pub trait Rebuilding: Send + Sync {
    /// The read model's name.
    fn name(&self) -> &'static str;

    /// Prepares an empty shadow copy.
    fn start(&self) -> BoxFuture<'_, Result<Box<dyn Replaying>, RebuildError>>;
}

impl<P: Projection + Clone + Send + Sync> Rebuilding for Projector<P> {
    fn name(&self) -> &'static str {
        self.projection().name()
    }

    fn start(&self) -> BoxFuture<'_, Result<Box<dyn Replaying>, RebuildError>> {
        Box::pin(async move {
            let copy: Box<dyn Replaying> = Box::new(ShadowCopy::start(self).await?);
            Ok(copy)
        })
    }
}

/// A shadow copy being filled.
pub trait Replaying: Send + Sync {
    /// Applies a page of the log to the shadow copy.
    fn apply<'a>(&'a self, page: &'a [RecordedEvent]) -> BoxFuture<'a, Result<(), RebuildError>>;

    /// Catches up with the head under the live copy's lock and swaps the copies.
    fn swap(self: Box<Self>, events: u64) -> BoxFuture<'static, Result<Rebuilt, RebuildError>>;
}

/// Replays the log once into every copy, then swaps them in one by one.
async fn replay_and_swap(
    store: &PgEventStore,
    copies: Vec<Box<dyn Replaying>>,
    mut progress: impl FnMut(Position, Position),
) -> Result<Vec<Rebuilt>, RebuildError> {
    let mut events = 0u64;
    let mut page = store.read_all(Position::START, PAGE_SIZE).await?;
    while let Some(last) = page.last() {
        let at = last.position;
        events += page.len() as u64;
        // Each copy writes its own schema, so their round trips overlap; and the next page is
        // read while this one is written, so reading and writing overlap too.
        let (next, applied) = tokio::join!(
            store.read_all(at, PAGE_SIZE),
            try_join_all(copies.iter().map(|copy| copy.apply(&page)))
        );
        applied?;
        progress(at, store.head_position().await?);
        page = next?;
    }
    let mut rebuilt = Vec::with_capacity(copies.len());
    for copy in copies {
        let swapped = copy.swap(events).await?;
        progress(swapped.checkpoint, swapped.checkpoint);
        rebuilt.push(swapped);
    }
    Ok(rebuilt)
}

/// One read model's shadow copy and the names of both copies.
struct ShadowCopy<P> {
    store: PgEventStore,
    shadow: Projector<P>,
    live_name: String,
    shadow_name: String,
}

impl<P: Projection + Clone> ShadowCopy<P> {
    /// Drops an abandoned shadow and prepares an empty one beside the live copy.
    async fn start(live: &Projector<P>) -> Result<Self, RebuildError> {
        let store = live.store().clone();
        let live_name = live_schema(live.projection().name());
        let shadow_name = format!("{live_name}__rebuild");
        let shadow = Projector::in_schema(
            store.clone(),
            live.projection().clone(),
            shadow_name.clone(),
        );
        live.prepare().await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {shadow_name} CASCADE"
        )))
        .execute(store.pool())
        .await?;
        shadow.prepare().await?;
        Ok(ShadowCopy {
            store,
            shadow,
            live_name,
            shadow_name,
        })
    }
}

impl<P: Projection + Clone + Send + Sync> Replaying for ShadowCopy<P> {
    fn apply<'a>(&'a self, page: &'a [RecordedEvent]) -> BoxFuture<'a, Result<(), RebuildError>> {
        Box::pin(async move {
            self.shadow.apply_batch(page).await?;
            Ok(())
        })
    }

    fn swap(self: Box<Self>, mut events: u64) -> BoxFuture<'static, Result<Rebuilt, RebuildError>> {
        Box::pin(async move {
            let ShadowCopy {
                store,
                shadow,
                live_name,
                shadow_name,
            } = *self;
            let mut transaction = store.pool().begin().await?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                "LOCK TABLE {live_name}.checkpoint IN ACCESS EXCLUSIVE MODE"
            )))
            .execute(&mut *transaction)
            .await?;
            let mut checkpoint = Position::START;
            loop {
                let from = shadow_checkpoint(&mut transaction, &shadow_name).await?;
                let page = store.read_all(from, PAGE_SIZE).await?;
                if page.is_empty() {
                    checkpoint = checkpoint.max(from);
                    break;
                }
                events += page.len() as u64;
                checkpoint = shadow.apply_in(&mut transaction, &page).await?.checkpoint;
            }
            sqlx::raw_sql(AssertSqlSafe(format!(
                "ALTER SCHEMA {live_name} RENAME TO {live_name}__old; \
                 ALTER SCHEMA {shadow_name} RENAME TO {live_name}; \
                 DROP SCHEMA {live_name}__old CASCADE;"
            )))
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
            Ok(Rebuilt { events, checkpoint })
        })
    }
}

async fn shadow_checkpoint(
    connection: &mut sqlx::PgConnection,
    shadow: &str,
) -> Result<Position, sqlx::Error> {
    let position: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT position FROM {shadow}.checkpoint"
    )))
    .fetch_one(connection)
    .await?;
    Ok(Position(position.unsigned_abs()))
}
