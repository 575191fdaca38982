//! The alarms read model: one row per alarm (what happened, where, who raised and handled it)
//! with the notifications it caused and their delivery state.
//!
//! The notifications of an alarm are folded here from the notification events themselves
//! (`NotificationCreated` carries the `alarm_id`; later events find the row by notification id)
//! into a child table, `alarm_notifications`, rather than joined at query time from the
//! notifications read model. Each read model then depends on the log alone: it can be rebuilt,
//! or lag, independently of the others, and its checkpoint (the `Keryu-Projection-Position` of
//! the alarm queries) tells the truth about everything an alarm answer contains. The price is
//! one look-up per batch for the notifications it names, then a primary-key update per event of
//! the few notifications an alarm caused.
//! Counts by delivery state are aggregated from the child table at query time (an alarm fans
//! out to a handful of custodians), so no counter can drift from the rows.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use keryu_domain::PhoneNumber;
use keryu_domain::alarm::{AlarmEvent, AlarmStatus, Situation};
use keryu_domain::notification::{NotificationCreated, NotificationEvent, NotificationStatus};
use keryu_infra::event_store::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projection::{Applied, Projection, subject_erasure};

/// Folds alarm events into `alarms`, and the events of notifications caused by an alarm into
/// `alarm_notifications`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlarmsProjection;

impl Projection for AlarmsProjection {
    fn name(&self) -> &'static str {
        "alarms"
    }

    fn tables_sql(&self) -> &'static str {
        include_str!("../sql/alarms.sql")
    }

    fn categories(&self) -> &'static [&'static str] {
        &["alarm", "notification", "subject"]
    }

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<Vec<Applied>, sqlx::Error> {
        let mut rows = alarm_notification_rows(connection, events).await?;
        let mut applied = Vec::with_capacity(events.len());
        for recorded in events {
            applied.push(apply_event(connection, &mut rows, recorded).await?);
        }
        Ok(applied)
    }
}

/// The notifications of `events` that have a row in `alarm_notifications` before the batch.
///
/// Most notifications have no alarm, hence no row, and their events change nothing here: one
/// look-up for the whole batch spares each of them an `UPDATE` that would find no row.
async fn alarm_notification_rows(
    connection: &mut PgConnection,
    events: &[&RecordedEvent],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let notifications: Vec<Uuid> = events
        .iter()
        .filter(|recorded| recorded.stream.category() == "notification")
        .filter_map(|recorded| recorded.stream.id().parse::<Uuid>().ok())
        .collect();
    if notifications.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM alarm_notifications WHERE id = ANY($1)")
            .bind(&notifications)
            .fetch_all(connection)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Applies one event; `rows` are the notifications that have a row in `alarm_notifications`,
/// kept up to date as rows are added.
async fn apply_event(
    connection: &mut PgConnection,
    rows: &mut HashSet<Uuid>,
    recorded: &RecordedEvent,
) -> Result<Applied, sqlx::Error> {
    if let Some(erasure) = subject_erasure(recorded) {
        return match erasure {
            Ok(subject) => forget_subject(connection, subject).await,
            Err(skipped) => Ok(skipped),
        };
    }
    let category = recorded.stream.category();
    if category != "alarm" && category != "notification" {
        return Ok(Applied::Ignored);
    }
    let Ok(id) = recorded.stream.id().parse::<Uuid>() else {
        return Ok(Applied::Unknown);
    };
    let row = Row {
        id,
        position: i64::try_from(recorded.position.0).unwrap_or(i64::MAX),
    };
    if category == "alarm" {
        match recorded.to_domain::<AlarmEvent>() {
            Ok(event) => apply_alarm(connection, row, &event).await,
            Err(_) => Ok(Applied::Unknown),
        }
    } else {
        match recorded.to_domain::<NotificationEvent>() {
            Ok(event) => apply_notification(connection, rows, row, &event).await,
            Err(_) => Ok(Applied::Unknown),
        }
    }
}

/// An erased subject's alarms keep what happened, but no longer where, nor the numbers their
/// notifications went to (the log reads them back as `null` from now on).
async fn forget_subject(
    connection: &mut PgConnection,
    subject: Uuid,
) -> Result<Applied, sqlx::Error> {
    sqlx::query("UPDATE alarms SET location = NULL WHERE subject_id = $1")
        .bind(subject)
        .execute(&mut *connection)
        .await?;
    sqlx::query(
        "UPDATE alarm_notifications SET recipient = NULL \
         WHERE alarm_id IN (SELECT id FROM alarms WHERE subject_id = $1)",
    )
    .bind(subject)
    .execute(connection)
    .await?;
    Ok(Applied::Changed)
}

/// The row an event applies to, and the event's position.
#[derive(Clone, Copy)]
struct Row {
    id: Uuid,
    position: i64,
}

/// An alarm's status as the API and the read model spell it.
pub(crate) fn alarm_status(status: AlarmStatus) -> &'static str {
    match status {
        AlarmStatus::Raised => "raised",
        AlarmStatus::Acknowledged => "acknowledged",
        AlarmStatus::Resolved => "resolved",
    }
}

fn situation(situation: Situation) -> &'static str {
    match situation {
        Situation::Lost => "lost",
        Situation::Injured => "injured",
        Situation::Contact => "contact",
        Situation::Test => "test",
    }
}

async fn apply_alarm(
    connection: &mut PgConnection,
    row: Row,
    event: &AlarmEvent,
) -> Result<Applied, sqlx::Error> {
    let query = match event {
        AlarmEvent::AlarmRaised(raised) => sqlx::query(
            "INSERT INTO alarms (id, subject_id, situation, description, location, status, \
             raised_by, raised_at, updated_at, position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(row.id)
        .bind(raised.subject_id.0)
        .bind(situation(raised.situation))
        .bind(&raised.description)
        .bind(raised.location.map(sqlx::types::Json))
        .bind(alarm_status(AlarmStatus::Raised))
        .bind(&raised.raised_by)
        .bind(raised.at)
        .bind(row.position),
        AlarmEvent::AlarmAcknowledged(handled) => sqlx::query(
            "UPDATE alarms SET status = $3, acknowledged_by = $4, acknowledged_at = $5, \
             updated_at = $5, position = $2 WHERE id = $1",
        )
        .bind(row.id)
        .bind(row.position)
        .bind(alarm_status(AlarmStatus::Acknowledged))
        .bind(&handled.by)
        .bind(handled.at),
        AlarmEvent::AlarmResolved(handled) => sqlx::query(
            "UPDATE alarms SET status = $3, resolved_by = $4, resolved_at = $5, \
             resolution_note = $6, updated_at = $5, position = $2 WHERE id = $1",
        )
        .bind(row.id)
        .bind(row.position)
        .bind(alarm_status(AlarmStatus::Resolved))
        .bind(&handled.by)
        .bind(handled.at)
        .bind(handled.note.as_deref()),
    };
    query.execute(connection).await?;
    Ok(Applied::Changed)
}

async fn apply_notification(
    connection: &mut PgConnection,
    rows: &mut HashSet<Uuid>,
    row: Row,
    event: &NotificationEvent,
) -> Result<Applied, sqlx::Error> {
    let changed = match change(event) {
        Change::Created(created) => {
            let inserted = insert_notification(connection, row, created).await?;
            if inserted {
                rows.insert(row.id);
            }
            inserted
        }
        // No row, nothing to update: the statement would change nothing.
        Change::Update(_) if !rows.contains(&row.id) => false,
        Change::Update(update) => update_notification(connection, row, &update).await?,
    };
    Ok(if changed {
        Applied::Changed
    } else {
        Applied::Ignored
    })
}

/// What a notification event does to its row in `alarm_notifications`.
enum Change<'e> {
    /// Adds the row, when the notification was caused by an alarm.
    Created(&'e NotificationCreated),
    /// Moves a row along (a no-op for notifications without an alarm, which have no row).
    Update(Update<'e>),
}

/// The columns one notification event changes; `None` keeps a column as it is.
struct Update<'e> {
    status: Option<NotificationStatus>,
    /// The attempt of the current round: set when one starts, reset by a manual retry.
    attempt: Option<u32>,
    /// Whether an attempt started (counted over the notification's whole life).
    started: bool,
    error: Option<&'e str>,
    at: DateTime<Utc>,
}

impl<'e> Update<'e> {
    fn status(status: NotificationStatus, at: DateTime<Utc>) -> Self {
        Update {
            status: Some(status),
            attempt: None,
            started: false,
            error: None,
            at,
        }
    }

    fn error(error: &'e str, at: DateTime<Utc>) -> Self {
        Update {
            status: None,
            attempt: None,
            started: false,
            error: Some(error),
            at,
        }
    }
}

/// The same lifecycle the notifications read model follows, reduced to what an alarm shows.
fn change(event: &NotificationEvent) -> Change<'_> {
    use NotificationEvent as E;
    use NotificationStatus as S;
    let update = match event {
        E::NotificationCreated(created) => return Change::Created(created),
        E::NotificationScheduled(scheduled) => Update::status(S::Scheduled, scheduled.at),
        E::NotificationQueued(queued) => Update::status(S::Queued, queued.at),
        E::DeliveryAttemptStarted(started) => Update {
            attempt: Some(started.attempt),
            started: true,
            ..Update::status(S::Processing, started.at)
        },
        E::NotificationSent(sent) => Update::status(S::Sent, sent.at),
        E::DeliveryAttemptFailed(failed) => Update::error(&failed.error.message, failed.at),
        E::DeliveryOutcomeUnknown(unknown) => {
            Update::error("the attempt's outcome is unknown", unknown.at)
        }
        E::RetryScheduled(retry) => Update::status(S::RetryScheduled, retry.at),
        E::NotificationFailed(failed) => Update::status(S::Failed, failed.at),
        E::NotificationDelivered(reached) => Update::status(S::Delivered, reached.at),
        E::NotificationRead(reached) => Update::status(S::Read, reached.at),
        E::NotificationUndelivered(undelivered) => Update {
            error: Some(&undelivered.error.message),
            ..Update::status(S::Undelivered, undelivered.at)
        },
        E::NotificationCancelled(cancelled) => Update::status(S::Cancelled, cancelled.at),
        E::NotificationRetryRequested(requested) => Update {
            status: None,
            attempt: Some(0),
            started: false,
            error: None,
            at: requested.at,
        },
    };
    Change::Update(update)
}

/// Adds the row of a notification an alarm caused; `false` for any other notification.
async fn insert_notification(
    connection: &mut PgConnection,
    row: Row,
    created: &NotificationCreated,
) -> Result<bool, sqlx::Error> {
    let Some(alarm_id) = created.alarm_id else {
        return Ok(false);
    };
    sqlx::query(
        "INSERT INTO alarm_notifications (id, alarm_id, recipient, status, max_attempts, \
         created_at, updated_at, position) VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(row.id)
    .bind(alarm_id.0)
    .bind(created.recipient.known().map(PhoneNumber::as_str))
    .bind(NotificationStatus::Created.as_str())
    .bind(i32::try_from(created.retry_policy.max_attempts).unwrap_or(i32::MAX))
    .bind(created.at)
    .bind(row.position)
    .execute(connection)
    .await?;
    Ok(true)
}

/// Applies `update` to the notification's row, stamping the time it reached its new status;
/// `false` when the notification has no row (no alarm caused it).
async fn update_notification(
    connection: &mut PgConnection,
    row: Row,
    update: &Update<'_>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE alarm_notifications SET \
             status = coalesce($3::text, status), \
             attempt = coalesce($4::integer, attempt), \
             total_attempts = total_attempts + $5::integer, \
             last_error_message = coalesce($6::text, last_error_message), \
             queued_at = CASE WHEN $3::text = 'queued' THEN $7 ELSE queued_at END, \
             sent_at = CASE WHEN $3::text = 'sent' THEN $7 ELSE sent_at END, \
             delivered_at = CASE WHEN $3::text = 'delivered' THEN $7 ELSE delivered_at END, \
             read_at = CASE WHEN $3::text = 'read' THEN $7 ELSE read_at END, \
             failed_at = CASE WHEN $3::text = 'failed' THEN $7 ELSE failed_at END, \
             cancelled_at = CASE WHEN $3::text = 'cancelled' THEN $7 ELSE cancelled_at END, \
             updated_at = $7, position = $2 \
         WHERE id = $1",
    )
    .bind(row.id)
    .bind(row.position)
    .bind(update.status.map(NotificationStatus::as_str))
    .bind(
        update
            .attempt
            .map(|attempt| i32::try_from(attempt).unwrap_or(i32::MAX)),
    )
    .bind(i32::from(update.started))
    .bind(update.error)
    .bind(update.at)
    .execute(connection)
    .await?;
    Ok(updated.rows_affected() == 1)
}
