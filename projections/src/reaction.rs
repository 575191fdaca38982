//! Process managers and the outbox relay: followers of the log whose effects live outside the
//! read models (NATS messages, commands on other streams).
//!
//! Such an effect cannot share a transaction with the checkpoint, so the order is fixed: effect
//! first, checkpoint after. A crash in between hands the same batch over again, and every
//! [`Reaction`] must therefore be idempotent — the relay through JetStream's `Nats-Msg-Id`
//! duplicate window, the fan-out through deterministic ids. Checkpoints live in
//! `process_checkpoints`, one row per reaction.
//!
//! Since handing batches over again is harmless, the checkpoint is not written after every
//! batch but at most every [`CHECKPOINT_INTERVAL`], with the last position handled by then,
//! and once more when the reactor stops. Written after every batch, it was a statement per
//! commit of the log for each reactor: at the log's tail nearly every commit is a batch of its
//! own, and the fan-out, with nothing to do for almost any of them, wrote as often as the relay.
//! A crash now hands over up to one interval's batches again.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use keryu_infra::event_store::{Position, RecordedEvent};
use keryu_infra::postgres::PgEventStore;
use sqlx::AssertSqlSafe;

use crate::follow::{FollowError, Follower, follow};

/// Why a batch could not be handled; the batch is retried.
pub type ReactionError = FollowError;

/// Reacts to batches of the log with idempotent effects.
pub trait Reaction: Send + Sync + 'static {
    /// Names the checkpoint row; never renamed, or the reaction starts from the beginning.
    fn name(&self) -> &'static str;

    /// Handles `events` (in position order). Called again with the same events after a
    /// failure or a crash, so it must not repeat an effect the receiver cannot recognise.
    ///
    /// # Errors
    /// Any failure; the runner pauses and hands the batch over again.
    fn react(
        &self,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), ReactionError>> + Send;
}

/// The most time between handling a batch and recording it in the reactor's checkpoint (see
/// the module's documentation).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Feeds the log to a [`Reaction`] from its checkpoint.
pub struct Reactor<R> {
    store: PgEventStore,
    reaction: R,
    checkpoint_interval: Duration,
    progress: Mutex<Progress>,
}

/// How far the reaction got, and how much of it the checkpoint records.
#[derive(Default)]
struct Progress {
    /// The last position handled.
    handled: Option<Position>,
    /// The last position written to the checkpoint by this reactor.
    written: Option<Position>,
}

impl<R: Reaction> Reactor<R> {
    /// A runner of `reaction` over `store`'s log, writing its checkpoint every
    /// [`CHECKPOINT_INTERVAL`].
    pub fn new(store: PgEventStore, reaction: R) -> Self {
        Reactor {
            store,
            reaction,
            checkpoint_interval: CHECKPOINT_INTERVAL,
            progress: Mutex::new(Progress::default()),
        }
    }

    /// The same runner, writing its checkpoint every `interval` instead.
    #[must_use]
    pub fn with_checkpoint_interval(self, interval: Duration) -> Self {
        Reactor {
            checkpoint_interval: interval,
            ..self
        }
    }

    /// The reaction it runs.
    pub fn reaction(&self) -> &R {
        &self.reaction
    }

    /// The position its checkpoint records: every event up to it is handled (and, while the
    /// reactor runs, up to an interval's more may be).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn checkpoint(&self) -> Result<Position, sqlx::Error> {
        sqlx::query("INSERT INTO process_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(self.reaction.name())
            .execute(self.store.pool())
            .await?;
        let position: i64 =
            sqlx::query_scalar("SELECT position FROM process_checkpoints WHERE name = $1")
                .bind(self.reaction.name())
                .fetch_one(self.store.pool())
                .await?;
        Ok(Position(position.unsigned_abs()))
    }

    /// Records that every event up to `position` is handled. Never moves backwards, so two
    /// instances racing leave the furthest position.
    ///
    /// The commit does not wait for its WAL record to reach the disk. A checkpoint lost in a
    /// crash of PostgreSQL only hands the last batches over again, which every reaction already
    /// survives (a crash between effect and checkpoint does the same); and whatever the effects
    /// wrote to the log is on disk first, the WAL being flushed in order.
    async fn advance(&self, position: Position) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            // One message, hence one implicit transaction for both statements.
            "SET LOCAL synchronous_commit = off; \
             UPDATE process_checkpoints SET position = greatest(position, {position}), \
                 updated_at = now() \
             WHERE name = '{name}'",
            position = i64::try_from(position.0).unwrap_or(i64::MAX),
            name = self.reaction.name().replace('\'', "''"),
        )))
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Hands the log to the reaction batch by batch until `shutdown` resolves, writing the
    /// checkpoint every interval meanwhile and once more at the end. Failures are logged and
    /// retried from the checkpoint with backoff.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let recording = async {
            let mut every = tokio::time::interval(self.checkpoint_interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.write_checkpoint().await;
            }
        };
        tokio::select! {
            () = follow(self, shutdown) => {}
            () = recording => {}
        }
        self.write_checkpoint().await;
    }

    /// Writes the last position handled, if it is not written yet (a failure is logged, and
    /// the next write tries again).
    async fn write_checkpoint(&self) {
        let Some(position) = self.unwritten() else {
            return;
        };
        match self.advance(position).await {
            Ok(()) => {
                let mut progress = self.progress();
                progress.written = progress.written.max(Some(position));
            }
            Err(error) => tracing::warn!(
                reaction = self.reaction.name(),
                %error,
                "could not record the checkpoint; trying again"
            ),
        }
    }

    /// The last position handled, when the checkpoint does not record it yet.
    fn unwritten(&self) -> Option<Position> {
        let progress = self.progress();
        progress
            .handled
            .filter(|_| progress.written < progress.handled)
    }

    /// Notes that everything up to `position` is handled. The note never moves backwards: a
    /// batch handed over again after a failure may end before one handled earlier.
    fn handled(&self, position: Position) {
        let mut progress = self.progress();
        progress.handled = progress.handled.max(Some(position));
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<R: Reaction> Follower for Reactor<R> {
    fn name(&self) -> &str {
        self.reaction.name()
    }

    fn store(&self) -> &PgEventStore {
        &self.store
    }

    async fn checkpoint(&self) -> Result<Position, FollowError> {
        Ok(Reactor::checkpoint(self).await?)
    }

    async fn handle(&self, batch: &[RecordedEvent]) -> Result<(), FollowError> {
        let Some(last) = batch.last().map(|event| event.position) else {
            return Ok(());
        };
        self.reaction.react(batch).await?;
        self.handled(last);
        Ok(())
    }
}
