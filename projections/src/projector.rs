//! Runs one projection: catch up from its checkpoint, then follow the log live, one
//! transaction per batch.

use std::time::Duration;

use keryu_infra::event_store::{Position, RecordedEvent};
use keryu_infra::postgres::PgEventStore;
use sqlx::{AssertSqlSafe, PgConnection};

use crate::follow::{FollowError, Follower, follow};
use crate::projection::{Applied, Projection};

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events applied (changed the read model or were irrelevant to it).
    pub applied: usize,
    /// Events skipped because this build does not know them.
    pub unknown: usize,
    /// Events at or below the checkpoint, already applied (by an earlier run or another
    /// projector instance) and therefore skipped.
    pub already_applied: usize,
    /// The checkpoint after the batch.
    pub checkpoint: Position,
}

/// The least time between two batches of a projection that keeps up with the log.
///
/// Every commit wakes every follower, and at a moderate rate nearly every commit is a batch of
/// its own: at 100 notifications/s (500 commits) five read models ran a transaction or a
/// checkpoint statement for each, and PostgreSQL used a whole core. The read models are read
/// by queries, not by the path from a command to Twilio, so they can be this much behind the
/// log in exchange for batches of every commit of the interval. The outbox relay, which is
/// on that path, has no pace.
const LIVE_BATCH_INTERVAL: Duration = Duration::from_millis(50);

/// Feeds the global log to a projection.
pub struct Projector<P> {
    store: PgEventStore,
    projection: P,
    schema: String,
}

impl<P: Projection> Projector<P> {
    /// A projector for `projection` whose read model lives in `projection_<name>`.
    pub fn new(store: PgEventStore, projection: P) -> Self {
        let schema = live_schema(projection.name());
        Projector {
            store,
            projection,
            schema,
        }
    }

    /// A projector writing into another schema: a rebuild's shadow copy.
    pub(crate) fn in_schema(store: PgEventStore, projection: P, schema: String) -> Self {
        Projector {
            store,
            projection,
            schema,
        }
    }

    /// The projection this projector feeds.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The store it reads.
    pub(crate) fn store(&self) -> &PgEventStore {
        &self.store
    }

    /// The schema holding the read model and the checkpoint.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Creates the schema, the projection's tables and its checkpoint when missing.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn prepare(&self) -> Result<(), sqlx::Error> {
        let mut transaction = self.store.pool().begin().await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; SET LOCAL search_path TO {schema};",
            schema = self.schema
        )))
        .execute(&mut *transaction)
        .await?;
        sqlx::raw_sql(self.projection.tables_sql())
            .execute(&mut *transaction)
            .await?;
        sqlx::raw_sql(
            // `generation` identifies this copy of the read model: a rebuild swaps in a copy with
            // another one, and a batch that started on the old copy must not commit.
            "CREATE TABLE IF NOT EXISTS checkpoint ( \
                 singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), \
                 position bigint NOT NULL, \
                 unknown_events bigint NOT NULL DEFAULT 0, \
                 generation uuid NOT NULL DEFAULT gen_random_uuid()); \
             INSERT INTO checkpoint (position) VALUES (0) ON CONFLICT DO NOTHING;",
        )
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await
    }

    /// The position of the last event the read model has applied.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn checkpoint(&self) -> Result<Position, sqlx::Error> {
        let position: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT position FROM {}.checkpoint",
            self.schema
        )))
        .fetch_one(self.store.pool())
        .await?;
        Ok(Position(position.unsigned_abs()))
    }

    /// The checkpoint and the number of events skipped as unknown, for `keryu projections status`.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn status(&self) -> Result<(Position, u64), sqlx::Error> {
        let (position, unknown): (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT position, unknown_events FROM {}.checkpoint",
            self.schema
        )))
        .fetch_one(self.store.pool())
        .await?;
        Ok((Position(position.unsigned_abs()), unknown.unsigned_abs()))
    }

    /// Applies `events` and advances the checkpoint in one transaction. Events at or below the
    /// checkpoint are skipped, so applying a batch twice (a retry, or two instances racing)
    /// changes nothing the second time; the checkpoint row's lock serialises instances.
    ///
    /// # Errors
    /// When the database fails, or a rebuild swapped the read model meanwhile; nothing of the
    /// batch is then applied.
    #[tracing::instrument(name = "projection.batch", skip_all, fields(projection = self.projection.name(), events = events.len()))]
    pub async fn apply_batch(&self, events: &[RecordedEvent]) -> Result<BatchOutcome, sqlx::Error> {
        if let Some(passed) = self.pass_over(events).await? {
            return Ok(passed);
        }
        // The batch's settings go with the BEGIN's own message: one round trip less per batch.
        let mut transaction = self
            .store
            .pool()
            .begin_with(AssertSqlSafe(format!("BEGIN; {}", self.batch_settings())))
            .await?;
        let outcome = self
            .apply_with_batch_settings(&mut transaction, events)
            .await?;
        transaction.commit().await?;
        Ok(outcome)
    }

    /// Moves the checkpoint past a batch of events of none of the projection's categories,
    /// when it stands right before the batch: one statement instead of a transaction that
    /// locks the checkpoint, applies nothing and updates it. `None` when the batch must be
    /// applied (an event of the projection's categories, or the checkpoint elsewhere: a gap in
    /// the positions, another instance ahead).
    ///
    /// The statement does not wait for its WAL record to reach the disk: lost in a crash, it
    /// only makes the projection pass over the same events again.
    async fn pass_over(
        &self,
        events: &[RecordedEvent],
    ) -> Result<Option<BatchOutcome>, sqlx::Error> {
        let categories = self.projection.categories();
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(None);
        };
        if events
            .iter()
            .any(|event| categories.contains(&event.stream.category()))
        {
            return Ok(None);
        }
        let moved = sqlx::raw_sql(AssertSqlSafe(format!(
            // One message, hence one implicit transaction for both statements.
            "SET LOCAL synchronous_commit = off; \
             UPDATE {schema}.checkpoint SET position = {last} \
             WHERE position >= {before} AND position < {last}",
            schema = self.schema,
            last = last.position.0,
            before = first.position.0.saturating_sub(1),
        )))
        .execute(self.store.pool())
        .await?;
        Ok((moved.rows_affected() == 1).then_some(BatchOutcome {
            applied: events.len(),
            checkpoint: last.position,
            ..BatchOutcome::default()
        }))
    }

    /// [`Self::apply_batch`] inside a transaction the caller owns (a rebuild's swap).
    pub(crate) async fn apply_in(
        &self,
        connection: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(self.batch_settings()))
            .execute(&mut *connection)
            .await?;
        self.apply_with_batch_settings(connection, events).await
    }

    /// The settings of a batch's transaction: the projection's schema first on the search
    /// path, and each statement planned for the batch and the table at hand.
    ///
    /// After a few executions PostgreSQL may settle on a generic plan of a prepared statement
    /// and keep it. For a batch's statements no single plan fits: a batch is one event live or
    /// a thousand catching up, and a read model starts empty and grows. A plan cached while
    /// the table was small is a sequential scan, and it stays as the table grows until an
    /// `ANALYZE` replaces it (autovacuum's, up to a minute after the growth; never with
    /// autovacuum off). Seen in the notifications projection's `id = ANY($1)` read: 617 of 719
    /// batches scanned the whole table within 15 s of a fresh database (`pg_stat_user_tables`,
    /// `auto_explain`). Planning every statement of every batch costs little beside that: a
    /// rebuild, whose pages plan arrays of a thousand ids, ran within its noise of before.
    ///
    /// (`enable_seqscan = off`, as the log writer's connection has, was tried first: the
    /// checkpoint's `FOR UPDATE`, which has no index to use, then cost enough to be compiled
    /// by JIT in every batch, 30 ms each.)
    fn batch_settings(&self) -> String {
        format!(
            "SET LOCAL search_path TO {}; SET LOCAL plan_cache_mode = force_custom_plan",
            self.schema
        )
    }

    /// Applies `events` and records the checkpoint, in a transaction already under the
    /// [batch settings](Self::batch_settings).
    async fn apply_with_batch_settings(
        &self,
        connection: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<BatchOutcome, sqlx::Error> {
        let (checkpoint, generation): (i64, uuid::Uuid) =
            sqlx::query_as("SELECT position, generation FROM checkpoint FOR UPDATE")
                .fetch_one(&mut *connection)
                .await?;
        let mut outcome = BatchOutcome {
            checkpoint: Position(checkpoint.unsigned_abs()),
            ..BatchOutcome::default()
        };
        let fresh: Vec<&RecordedEvent> = events
            .iter()
            .filter(|event| event.position > outcome.checkpoint)
            .collect();
        outcome.already_applied = events.len() - fresh.len();
        let applied = self.projection.apply(connection, &fresh).await?;
        for (event, applied) in fresh.iter().zip(applied) {
            match applied {
                Applied::Changed | Applied::Ignored => outcome.applied += 1,
                Applied::Unknown => {
                    outcome.unknown += 1;
                    tracing::debug!(
                        projection = self.projection.name(),
                        event_type = %event.event_type,
                        schema_version = event.schema_version,
                        position = %event.position,
                        "skipped an event this build does not know"
                    );
                }
            }
        }
        if let Some(last) = fresh.last() {
            outcome.checkpoint = last.position;
        }
        record_checkpoint(connection, outcome, generation).await?;
        Ok(outcome)
    }

    /// Catches up from the checkpoint, then follows the log until `shutdown` resolves.
    /// Failures are logged and retried with backoff; the projector never stops on its own.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        follow(self, shutdown).await;
    }
}

impl<P: Projection> Follower for Projector<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn store(&self) -> &PgEventStore {
        &self.store
    }

    async fn checkpoint(&self) -> Result<Position, FollowError> {
        Ok(Projector::checkpoint(self).await?)
    }

    async fn handle(&self, batch: &[RecordedEvent]) -> Result<(), FollowError> {
        self.apply_batch(batch).await?;
        Ok(())
    }

    fn pace(&self) -> Duration {
        LIVE_BATCH_INTERVAL
    }
}

/// Advances the checkpoint of the copy the batch started on. Zero rows means a rebuild swapped
/// in another copy while the batch waited for the checkpoint lock: its writes may have landed
/// in the new copy, so the whole batch must roll back.
async fn record_checkpoint(
    connection: &mut PgConnection,
    outcome: BatchOutcome,
    generation: uuid::Uuid,
) -> Result<(), sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE checkpoint SET position = $1, unknown_events = unknown_events + $2 \
         WHERE generation = $3",
    )
    .bind(i64::try_from(outcome.checkpoint.0).unwrap_or(i64::MAX))
    .bind(i64::try_from(outcome.unknown).unwrap_or(i64::MAX))
    .bind(generation)
    .execute(connection)
    .await?;
    if updated.rows_affected() == 1 {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(
            "a rebuild swapped the read model during the batch; it will be applied again".into(),
        ))
    }
}

/// The schema of a projection's live read model.
pub fn live_schema(name: &str) -> String {
    format!("projection_{name}")
}
