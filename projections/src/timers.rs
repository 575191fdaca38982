//! Durable timers: scheduled notifications, retry backoffs and dispatch leases, derived from
//! the log and fired by a scheduler.
//!
//! The [`TimersProjection`] folds notification events into one due time per waiting
//! notification, so a restart loses no timer and a rebuild recreates them all. The
//! [`Scheduler`] claims due timers with `FOR UPDATE SKIP LOCKED` (any number of schedulers share
//! the work without waiting on each other) and issues the command that ends the wait. Two
//! schedulers can never fire one timer twice in effect: the command is decided against the
//! notification's current state and appended with its version, so a second `Queue` meets a
//! notification that is no longer waiting and is refused.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keryu_domain::Aggregate;
use keryu_domain::notification::OutcomeUnknownPolicy;
use keryu_domain::notification::{Notification, NotificationCommand, NotificationEvent};
use keryu_infra::event_store::{Actor, EventMetadata, RecordedEvent, StreamName};
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository::{self, CommandError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projection::{Applied, Projection};
use crate::projector::live_schema;

/// Folds notification events into `timers`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimersProjection;

impl Projection for TimersProjection {
    fn name(&self) -> &'static str {
        "timers"
    }

    fn tables_sql(&self) -> &'static str {
        include_str!("../sql/timers.sql")
    }

    fn categories(&self) -> &'static [&'static str] {
        &["notification"]
    }

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<Vec<Applied>, sqlx::Error> {
        let mut applied = Vec::with_capacity(events.len());
        // Each notification's timer after the batch: only its last change matters, since
        // each one replaces the timer (or removes it) whole.
        let mut timers: Vec<(Uuid, Timer)> = Vec::new();
        let mut index: HashMap<Uuid, usize> = HashMap::new();
        for recorded in events {
            let (outcome, change) = timer_change(recorded);
            applied.push(outcome);
            if let Some((id, timer)) = change {
                match index.get(&id) {
                    Some(&at) => timers[at].1 = timer,
                    None => {
                        index.insert(id, timers.len());
                        timers.push((id, timer));
                    }
                }
            }
        }
        let (mut set, mut kinds, mut due) = (Vec::new(), Vec::new(), Vec::new());
        let mut removed = Vec::new();
        for (id, timer) in timers {
            match timer {
                Some((kind, due_at)) => {
                    set.push(id);
                    kinds.push(kind);
                    due.push(due_at);
                }
                None => removed.push(id),
            }
        }
        if !set.is_empty() {
            sqlx::query(
                "INSERT INTO timers (notification_id, kind, due_at) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) \
                 ON CONFLICT (notification_id) DO UPDATE \
                 SET kind = excluded.kind, due_at = excluded.due_at, fired_at = NULL",
            )
            .bind(&set)
            .bind(&kinds)
            .bind(&due)
            .execute(&mut *connection)
            .await?;
        }
        if !removed.is_empty() {
            sqlx::query("DELETE FROM timers WHERE notification_id = ANY($1)")
                .bind(&removed)
                .execute(&mut *connection)
                .await?;
        }
        Ok(applied)
    }
}

/// A notification's timer: its kind and due time, or none (the notification waits for nothing).
type Timer = Option<(&'static str, DateTime<Utc>)>;

/// What `recorded` does to the timers: what it counts as, and the notification whose timer
/// it sets (`Some`) or clears (`None`), if any.
fn timer_change(recorded: &RecordedEvent) -> (Applied, Option<(Uuid, Timer)>) {
    if recorded.stream.category() != Notification::CATEGORY {
        return (Applied::Ignored, None);
    }
    let Ok(event) = recorded.to_domain::<NotificationEvent>() else {
        return (Applied::Unknown, None);
    };
    let Ok(id) = recorded.stream.id().parse::<Uuid>() else {
        return (Applied::Unknown, None);
    };
    use NotificationEvent as E;
    let timer = match &event {
        E::NotificationScheduled(scheduled) => Some(("scheduled", scheduled.scheduled_for)),
        E::RetryScheduled(retry) => Some(("retry", retry.not_before)),
        E::DeliveryAttemptStarted(started) => Some(("lease", started.at)),
        E::NotificationQueued(_)
        | E::NotificationSent(_)
        | E::DeliveryAttemptFailed(_)
        | E::DeliveryOutcomeUnknown(_)
        | E::NotificationFailed(_)
        | E::NotificationCancelled(_) => None,
        E::NotificationCreated(_)
        | E::NotificationDelivered(_)
        | E::NotificationRead(_)
        | E::NotificationUndelivered(_)
        | E::NotificationRetryRequested(_) => return (Applied::Ignored, None),
    };
    (Applied::Changed, Some((id, timer)))
}

/// How the scheduler fires timers.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// How long a claimed attempt may go without an outcome.
    pub lease: Duration,
    /// What an expired lease becomes.
    pub outcome_unknown_policy: OutcomeUnknownPolicy,
    /// The longest pause between two looks at the timers (new timers are found within it).
    pub poll_interval: Duration,
    /// Timers fired per transaction.
    pub batch_size: i64,
}

impl SchedulerSettings {
    /// The settings for a dispatch `lease` and its `policy`, polling every 100 ms.
    pub fn new(lease: Duration, outcome_unknown_policy: OutcomeUnknownPolicy) -> Self {
        SchedulerSettings {
            lease,
            outcome_unknown_policy,
            poll_interval: Duration::from_millis(100),
            batch_size: 100,
        }
    }
}

/// How long a fired timer is left alone while the projection catches up with its effect.
const REFIRE_GRACE: Duration = Duration::from_secs(30);

/// Fires due timers.
pub struct Scheduler {
    store: PgEventStore,
    settings: SchedulerSettings,
    table: String,
}

/// A timer that is due.
#[derive(Debug, sqlx::FromRow)]
struct DueTimer {
    notification_id: Uuid,
    kind: String,
}

impl Scheduler {
    /// A scheduler over the live timers read model.
    pub fn new(store: PgEventStore, settings: SchedulerSettings) -> Self {
        let table = format!("{}.timers", live_schema(TimersProjection.name()));
        Scheduler {
            store,
            settings,
            table,
        }
    }

    /// Fires every timer due at `now`, one batch per transaction; returns how many fired.
    ///
    /// # Errors
    /// When the database fails; timers not yet fired stay due.
    pub async fn fire_due(&self, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
        let mut fired = 0;
        loop {
            let batch = self.fire_batch(now).await?;
            fired += batch;
            if i64::try_from(batch).unwrap_or(i64::MAX) < self.settings.batch_size {
                return Ok(fired);
            }
        }
    }

    async fn fire_batch(&self, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
        let lease =
            chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::MAX);
        let grace = chrono::Duration::from_std(REFIRE_GRACE).unwrap_or(chrono::Duration::MAX);
        let mut transaction = self.store.pool().begin().await?;
        let due: Vec<DueTimer> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT notification_id, kind FROM {} \
             WHERE due_at <= $1 AND (kind <> 'lease' OR due_at <= $2) \
               AND (fired_at IS NULL OR fired_at <= $3) \
             ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED",
            self.table
        )))
        .bind(now)
        .bind(now - lease)
        .bind(now - grace)
        .bind(self.settings.batch_size)
        .fetch_all(&mut *transaction)
        .await?;
        let mut settled = Vec::with_capacity(due.len());
        for timer in &due {
            if self.fire(timer, now).await {
                settled.push(timer.notification_id);
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {} SET fired_at = $2 WHERE notification_id = ANY($1)",
            self.table
        )))
        .bind(&settled)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(due.len())
    }

    /// Issues the command ending `timer`'s wait; `false` when it should be tried again soon. A
    /// refusal means the notification moved on (another scheduler fired first, it was
    /// cancelled…) and settles the timer as well as success does.
    async fn fire(&self, timer: &DueTimer, now: DateTime<Utc>) -> bool {
        let command = match timer.kind.as_str() {
            "lease" => NotificationCommand::RecordOutcomeUnknown {
                policy: self.settings.outcome_unknown_policy,
                random_unit: rand::random::<f64>(),
                at: now,
            },
            _ => NotificationCommand::Queue { at: now },
        };
        let Ok(stream) = StreamName::of::<Notification>(timer.notification_id) else {
            return true;
        };
        let metadata = EventMetadata {
            correlation_id: Uuid::now_v7(),
            actor: Some(Actor {
                id: "scheduler".to_owned(),
                role: "system".to_owned(),
            }),
            ..EventMetadata::default()
        };
        match repository::execute::<Notification>(&self.store, &stream, command, &metadata, 3).await
        {
            Ok(_) => {
                metrics::counter!("keryu_timers_fired_total", "kind" => timer.kind.clone())
                    .increment(1);
                tracing::debug!(notification = %timer.notification_id, kind = %timer.kind, "timer fired");
                true
            }
            Err(CommandError::Domain(refused)) => {
                tracing::debug!(notification = %timer.notification_id, %refused, "timer no longer needed");
                true
            }
            Err(error) => {
                tracing::warn!(notification = %timer.notification_id, %error, "could not fire a timer");
                false
            }
        }
    }

    /// Fires due timers until `shutdown` resolves, looking every poll interval.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.settings.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            if let Err(error) = self.fire_due(Utc::now()).await {
                tracing::warn!(%error, "could not fire timers");
            }
        }
    }
}
