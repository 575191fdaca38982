//! The notifications read model: one row per notification with its status, attempts, last
//! error and timestamps, plus per-status counters for dashboards.

use chrono::{DateTime, Utc};
use keryu_domain::PhoneNumber;
use keryu_domain::notification::{
    FailureReason, NotificationContent, NotificationEvent, NotificationStatus,
};
use keryu_domain::subject::SubjectEvent;
use keryu_infra::event_store::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::projection::{Applied, Projection};

/// Folds notification events into `notifications` and `notification_status_counts`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotificationsProjection;

impl Projection for NotificationsProjection {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn tables_sql(&self) -> &'static str {
        include_str!("../sql/notifications.sql")
    }

    async fn apply(
        &self,
        connection: &mut PgConnection,
        recorded: &RecordedEvent,
    ) -> Result<Applied, sqlx::Error> {
        if recorded.stream.category() == "subject" {
            return forget_erased_subject(connection, recorded).await;
        }
        if recorded.stream.category() != "notification" {
            return Ok(Applied::Ignored);
        }
        let Ok(event) = recorded.to_domain::<NotificationEvent>() else {
            return Ok(Applied::Unknown);
        };
        let Ok(id) = recorded.stream.id().parse::<Uuid>() else {
            return Ok(Applied::Unknown);
        };
        let row = Row {
            id,
            position: i64::try_from(recorded.position.0).unwrap_or(i64::MAX),
        };
        apply(connection, row, &event).await?;
        Ok(Applied::Changed)
    }
}

/// An erased subject's notifications keep their delivery history but lose the number they went
/// to, as the log does.
async fn forget_erased_subject(
    connection: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<Applied, sqlx::Error> {
    // Only the erasure matters here: other subject events are not even decoded.
    if recorded.event_type != "SubjectErased" {
        return Ok(Applied::Ignored);
    }
    let (Ok(SubjectEvent::SubjectErased(_)), Ok(subject)) = (
        recorded.to_domain::<SubjectEvent>(),
        recorded.stream.id().parse::<Uuid>(),
    ) else {
        return Ok(Applied::Unknown);
    };
    sqlx::query("UPDATE notifications SET recipient = NULL WHERE subject_id = $1")
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

async fn apply(
    connection: &mut PgConnection,
    row: Row,
    event: &NotificationEvent,
) -> Result<(), sqlx::Error> {
    use NotificationEvent as E;
    use NotificationStatus as S;
    match event {
        E::NotificationCreated(created) => {
            let (template_id, template_version) = match created.content.known() {
                Some(NotificationContent::Template {
                    template_id,
                    template_version,
                    ..
                }) => (Some(template_id.0), i32::try_from(*template_version).ok()),
                Some(NotificationContent::FreeText { .. }) | None => (None, None),
            };
            let inserted = sqlx::query(
                "INSERT INTO notifications (id, subject_id, alarm_id, recipient, template_id, \
                 template_version, status, max_attempts, scheduled_for, created_at, position) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'created', $7, $8, $9, $10) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(row.id)
            .bind(created.subject_id.0)
            .bind(created.alarm_id.map(|id| id.0))
            .bind(created.recipient.known().map(PhoneNumber::as_str))
            .bind(template_id)
            .bind(template_version)
            .bind(i32::try_from(created.retry_policy.max_attempts).unwrap_or(i32::MAX))
            .bind(created.scheduled_for)
            .bind(created.at)
            .bind(row.position)
            .execute(&mut *connection)
            .await?;
            if inserted.rows_affected() == 1 {
                count(connection, S::Created.as_str(), 1).await?;
            }
        }
        E::NotificationScheduled(scheduled) => {
            set_status(connection, row, S::Scheduled).await?;
            let sql = "UPDATE notifications SET not_before = $3, position = $2 WHERE id = $1";
            set_time(connection, row, sql, scheduled.scheduled_for).await?;
        }
        E::NotificationQueued(queued) => {
            set_status(connection, row, S::Queued).await?;
            let sql = "UPDATE notifications SET queued_at = $3, not_before = NULL, position = $2 \
                       WHERE id = $1";
            set_time(connection, row, sql, queued.at).await?;
        }
        E::DeliveryAttemptStarted(started) => {
            set_status(connection, row, S::Processing).await?;
            sqlx::query(
                "UPDATE notifications SET attempt = $3, total_attempts = total_attempts + 1, \
                 position = $2 WHERE id = $1",
            )
            .bind(row.id)
            .bind(row.position)
            .bind(i32::try_from(started.attempt).unwrap_or(i32::MAX))
            .execute(connection)
            .await?;
        }
        E::NotificationSent(sent) => {
            set_status(connection, row, S::Sent).await?;
            sqlx::query(
                "UPDATE notifications SET sent_at = $3, provider_message_id = $4, position = $2 \
                 WHERE id = $1",
            )
            .bind(row.id)
            .bind(row.position)
            .bind(sent.at)
            .bind(&sent.provider_message_id)
            .execute(connection)
            .await?;
        }
        E::DeliveryAttemptFailed(failed) => {
            record_error(connection, row, failed.error.code, &failed.error.message).await?;
        }
        E::DeliveryOutcomeUnknown(_) => {
            record_error(connection, row, None, "the attempt's outcome is unknown").await?;
        }
        E::RetryScheduled(retry) => {
            set_status(connection, row, S::RetryScheduled).await?;
            let sql = "UPDATE notifications SET not_before = $3, position = $2 WHERE id = $1";
            set_time(connection, row, sql, retry.not_before).await?;
        }
        E::NotificationFailed(failed) => {
            set_status(connection, row, S::Failed).await?;
            sqlx::query(
                "UPDATE notifications SET failed_at = $3, failure_reason = $4, not_before = NULL, \
                 position = $2 WHERE id = $1",
            )
            .bind(row.id)
            .bind(row.position)
            .bind(failed.at)
            .bind(failure_reason(failed.reason))
            .execute(connection)
            .await?;
        }
        E::NotificationDelivered(reached) => {
            set_status(connection, row, S::Delivered).await?;
            let sql = "UPDATE notifications SET delivered_at = $3, position = $2 WHERE id = $1";
            set_time(connection, row, sql, reached.at).await?;
        }
        E::NotificationRead(reached) => {
            set_status(connection, row, S::Read).await?;
            let sql = "UPDATE notifications SET read_at = $3, position = $2 WHERE id = $1";
            set_time(connection, row, sql, reached.at).await?;
        }
        E::NotificationUndelivered(undelivered) => {
            set_status(connection, row, S::Undelivered).await?;
            let error = &undelivered.error;
            record_error(connection, row, error.code, &error.message).await?;
        }
        E::NotificationCancelled(cancelled) => {
            set_status(connection, row, S::Cancelled).await?;
            let sql = "UPDATE notifications SET cancelled_at = $3, not_before = NULL, position = $2 \
                       WHERE id = $1";
            set_time(connection, row, sql, cancelled.at).await?;
        }
        E::NotificationRetryRequested(_) => {
            sqlx::query("UPDATE notifications SET attempt = 0, position = $2 WHERE id = $1")
                .bind(row.id)
                .bind(row.position)
                .execute(connection)
                .await?;
        }
    }
    Ok(())
}

/// Runs `sql`, whose parameters are the row's id, the event's position and a timestamp: the
/// shape of most events, which set one or two columns.
async fn set_time(
    connection: &mut PgConnection,
    row: Row,
    sql: &'static str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql)
        .bind(row.id)
        .bind(row.position)
        .bind(at)
        .execute(connection)
        .await?;
    Ok(())
}

async fn record_error(
    connection: &mut PgConnection,
    row: Row,
    code: Option<i64>,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET last_error_code = $3, last_error_message = $4, position = $2 \
         WHERE id = $1",
    )
    .bind(row.id)
    .bind(row.position)
    .bind(code)
    .bind(message)
    .execute(connection)
    .await?;
    Ok(())
}

/// Moves the row to `status`, keeping the counters in step, and stamps the row with the
/// event's position.
async fn set_status(
    connection: &mut PgConnection,
    row: Row,
    status: NotificationStatus,
) -> Result<(), sqlx::Error> {
    let previous: Option<String> = sqlx::query_scalar(
        "WITH previous AS (SELECT status FROM notifications WHERE id = $1 FOR UPDATE) \
         UPDATE notifications SET status = $3, position = $2 \
         FROM previous WHERE notifications.id = $1 \
         RETURNING previous.status",
    )
    .bind(row.id)
    .bind(row.position)
    .bind(status.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(previous) = previous.filter(|previous| previous != status.as_str()) {
        count(connection, &previous, -1).await?;
        count(connection, status.as_str(), 1).await?;
    }
    Ok(())
}

/// Adds `delta` to the counter of `status` (a decrement always finds the row its increment
/// created).
async fn count(connection: &mut PgConnection, status: &str, delta: i64) -> Result<(), sqlx::Error> {
    let sql = if delta < 0 {
        "UPDATE notification_status_counts SET count = count + $2 WHERE status = $1"
    } else {
        "INSERT INTO notification_status_counts (status, count) VALUES ($1, $2) \
         ON CONFLICT (status) DO UPDATE SET count = notification_status_counts.count + $2"
    };
    sqlx::query(sql)
        .bind(status)
        .bind(delta)
        .execute(connection)
        .await?;
    Ok(())
}

fn failure_reason(reason: FailureReason) -> &'static str {
    match reason {
        FailureReason::PermanentError => "permanent_error",
        FailureReason::MaxAttemptsReached => "max_attempts_reached",
        FailureReason::OutcomeUnknown => "outcome_unknown",
    }
}
