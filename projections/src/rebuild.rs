//! Zero-downtime rebuild: replay the whole log into a shadow copy of a read model while the live
//! copy keeps serving, then swap the copies in one transaction.
//!
//! The swap locks the live checkpoint table exclusively, so live projectors (in any process)
//! wait; applies the last events to the shadow under that lock, so it is exactly at the head;
//! renames the schemas and drops the old copy in the same transaction. Statements that were
//! waiting re-resolve their tables by name when the lock is released and continue on the new
//! copy, from its checkpoint. Interrupting a rebuild before the swap leaves the live copy
//! untouched; the next rebuild starts by dropping the abandoned shadow.

use keryu_infra::event_store::{EventStore, Position};
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
    mut progress: impl FnMut(Position, Position),
) -> Result<Rebuilt, RebuildError> {
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

    let mut events = 0u64;
    loop {
        let checkpoint = shadow.checkpoint().await?;
        let page = store.read_all(checkpoint, PAGE_SIZE).await?;
        if page.is_empty() {
            break;
        }
        events += page.len() as u64;
        let applied = shadow.apply_batch(&page).await?;
        progress(applied.checkpoint, store.head_position().await?);
    }

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
    progress(checkpoint, checkpoint);
    Ok(Rebuilt { events, checkpoint })
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
