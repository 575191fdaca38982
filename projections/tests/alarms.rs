//! The alarms projection against real PostgreSQL: alarms raised and handled, the notifications
//! they caused and how far each got, folded from the log alone.

use chrono::Utc;
use keryu_domain::alarm::{Alarm, AlarmCommand, Location, Situation};
use keryu_domain::notification::{
    FailureKind, Notification, NotificationCommand, NotificationContent, ProviderStatus,
};
use keryu_domain::{AlarmId, NotificationId, RetryPolicy, SubjectId};
use keryu_infra::event_store::{
    EventMetadata, EventStore, ExpectedVersion, NewEvent, Position, StreamName,
};
use keryu_infra::personal_data::MasterKey;
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository;
use keryu_projections::alarms::AlarmsProjection;
use keryu_projections::notifications::NotificationsProjection;
use keryu_projections::projector::Projector;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

async fn alarm_command(store: &PgEventStore, id: AlarmId, command: AlarmCommand) {
    let stream = StreamName::of::<Alarm>(id).expect("stream");
    repository::execute::<Alarm>(store, &stream, command, &EventMetadata::default(), 3)
        .await
        .expect("alarm command");
}

async fn notification_command(
    store: &PgEventStore,
    id: NotificationId,
    command: NotificationCommand,
) {
    let stream = StreamName::of::<Notification>(id).expect("stream");
    repository::execute::<Notification>(store, &stream, command, &EventMetadata::default(), 3)
        .await
        .expect("notification command");
}

async fn raise(store: &PgEventStore, subject_id: SubjectId) -> AlarmId {
    let id = AlarmId(Uuid::now_v7());
    let raise = AlarmCommand::Raise {
        id,
        subject_id,
        situation: Situation::Lost,
        description: "Not home since noon".to_owned(),
        location: Some(Location {
            latitude: -34.6,
            longitude: -58.4,
        }),
        raised_by: "integration-1".to_owned(),
        at: Utc::now(),
    };
    alarm_command(store, id, raise).await;
    id
}

async fn notify(store: &PgEventStore, alarm_id: Option<AlarmId>) -> NotificationId {
    let id = NotificationId(Uuid::now_v7());
    let create = NotificationCommand::Create {
        id,
        subject_id: SubjectId(Uuid::now_v7()),
        recipient: "+14155238886".parse().expect("phone"),
        content: NotificationContent::FreeText {
            body: "Ana is missing".to_owned(),
        },
        scheduled_for: None,
        retry_policy: RetryPolicy::default(),
        alarm_id,
        at: Utc::now(),
    };
    notification_command(store, id, create).await;
    id
}

fn start() -> NotificationCommand {
    NotificationCommand::StartAttempt {
        dispatcher: "d1".to_owned(),
        at: Utc::now(),
    }
}

fn failure(kind: FailureKind) -> NotificationCommand {
    NotificationCommand::RecordAttemptFailure {
        error_code: Some(20429),
        error_message: "too many requests".to_owned(),
        kind,
        random_unit: 0.0,
        at: Utc::now(),
    }
}

/// A failed attempt, a retry, a send and a read receipt.
async fn read_after_a_retry(store: &PgEventStore, id: NotificationId) {
    notification_command(store, id, start()).await;
    notification_command(store, id, failure(FailureKind::Transient)).await;
    let due = Utc::now() + chrono::Duration::minutes(1);
    notification_command(store, id, NotificationCommand::Queue { at: due }).await;
    notification_command(store, id, start()).await;
    let sent = NotificationCommand::RecordSent {
        provider_message_id: "SM123".to_owned(),
        at: due,
    };
    notification_command(store, id, sent).await;
    let read = NotificationCommand::RecordProviderStatus {
        status: ProviderStatus::Read,
        error_code: None,
        error_message: None,
        at: due,
    };
    notification_command(store, id, read).await;
}

/// Applies the whole log to both projections, in one batch each.
async fn project(store: &PgEventStore) {
    let events = store.read_all(Position::START, 10_000).await.expect("log");
    let alarms = Projector::new(store.clone(), AlarmsProjection);
    alarms.prepare().await.expect("prepare");
    alarms.apply_batch(&events).await.expect("alarms");
    let notifications = Projector::new(store.clone(), NotificationsProjection);
    notifications.prepare().await.expect("prepare");
    notifications
        .apply_batch(&events)
        .await
        .expect("notifications");
}

async fn alarm_row(pool: &PgPool, id: AlarmId) -> Value {
    sqlx::query_scalar(
        "SELECT to_jsonb(a) - 'position' - 'raised_at' - 'acknowledged_at' - 'resolved_at' \
         - 'updated_at' FROM projection_alarms.alarms a WHERE id = $1",
    )
    .bind(id.0)
    .fetch_one(pool)
    .await
    .expect("alarm row")
}

/// The delivery state an alarm shows of a notification, from either read model.
async fn delivery(pool: &PgPool, table: &str, id: NotificationId) -> Option<Value> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT jsonb_build_object('status', status, 'attempt', attempt, \
         'total_attempts', total_attempts, 'max_attempts', max_attempts, \
         'last_error_message', last_error_message, 'queued_at', queued_at, 'sent_at', sent_at, \
         'delivered_at', delivered_at, 'read_at', read_at, 'failed_at', failed_at, \
         'cancelled_at', cancelled_at) FROM {table} WHERE id = $1"
    )))
    .bind(id.0)
    .fetch_optional(pool)
    .await
    .expect("delivery")
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn folds_alarms_and_the_deliveries_they_caused(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let subject = SubjectId(Uuid::now_v7());
    let alarm = raise(&store, subject).await;
    let quiet = raise(&store, subject).await;
    let read = notify(&store, Some(alarm)).await;
    read_after_a_retry(&store, read).await;
    let failed = notify(&store, Some(alarm)).await;
    notification_command(&store, failed, start()).await;
    notification_command(&store, failed, failure(FailureKind::Permanent)).await;
    let cancelled = notify(&store, Some(alarm)).await;
    let cancel = NotificationCommand::Cancel {
        reason: "found".to_owned(),
        at: Utc::now(),
    };
    notification_command(&store, cancelled, cancel).await;
    let unrelated = notify(&store, None).await;
    notification_command(&store, unrelated, start()).await;
    let acknowledge = AlarmCommand::Acknowledge {
        by: "carla".to_owned(),
        at: Utc::now(),
    };
    alarm_command(&store, alarm, acknowledge).await;
    let resolve = AlarmCommand::Resolve {
        by: "carla".to_owned(),
        note: Some("Found at the park".to_owned()),
        at: Utc::now(),
    };
    alarm_command(&store, alarm, resolve).await;

    project(&store).await;

    assert_eq!(
        alarm_row(&pool, alarm).await,
        json!({
            "id": alarm.0,
            "subject_id": subject.0,
            "situation": "lost",
            "description": "Not home since noon",
            "location": { "latitude": -34.6, "longitude": -58.4 },
            "status": "resolved",
            "raised_by": "integration-1",
            "acknowledged_by": "carla",
            "resolved_by": "carla",
            "resolution_note": "Found at the park",
        })
    );
    assert_eq!(alarm_row(&pool, quiet).await["status"], "raised");
    let table = "projection_alarms.alarm_notifications";
    let expected = [(read, "read"), (failed, "failed"), (cancelled, "cancelled")];
    for (id, status) in expected {
        let shown = delivery(&pool, table, id)
            .await
            .expect("an alarm's notification");
        assert_eq!(shown["status"], status, "{shown}");
        // The same lifecycle as the notifications read model, folded independently.
        let notifications = "projection_notifications.notifications";
        assert_eq!(Some(shown), delivery(&pool, notifications, id).await);
    }
    let read_row = delivery(&pool, table, read).await.expect("row");
    assert_eq!(
        (
            read_row["attempt"].as_i64(),
            read_row["total_attempts"].as_i64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(read_row["last_error_message"], "too many requests");
    assert!(read_row["sent_at"].is_string() && read_row["read_at"].is_string());
    assert_eq!(delivery(&pool, table, unrelated).await, None);
    let counts: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT alarm_id, status, count(*) FROM projection_alarms.alarm_notifications \
         GROUP BY alarm_id, status ORDER BY status",
    )
    .fetch_all(&pool)
    .await
    .expect("counts");
    assert_eq!(
        counts,
        [
            (alarm.0, "cancelled".to_owned(), 1),
            (alarm.0, "failed".to_owned(), 1),
            (alarm.0, "read".to_owned(), 1),
        ]
    );
}

/// A manual retry starts a new round: the attempt resets, the lifetime count does not.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_manual_retry_resets_the_round_but_not_the_total(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let alarm = raise(&store, SubjectId(Uuid::now_v7())).await;
    let id = notify(&store, Some(alarm)).await;
    notification_command(&store, id, start()).await;
    notification_command(&store, id, failure(FailureKind::Permanent)).await;
    let retry = NotificationCommand::Retry {
        requested_by: "admin".to_owned(),
        at: Utc::now(),
    };
    notification_command(&store, id, retry).await;
    notification_command(&store, id, start()).await;

    project(&store).await;

    let table = "projection_alarms.alarm_notifications";
    let shown = delivery(&pool, table, id).await.expect("row");
    assert_eq!(
        (
            shown["status"].as_str(),
            shown["attempt"].as_i64(),
            shown["total_attempts"].as_i64()
        ),
        (Some("processing"), Some(1), Some(2))
    );
    let notifications = "projection_notifications.notifications";
    assert_eq!(Some(shown), delivery(&pool, notifications, id).await);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn unknown_alarm_events_are_skipped_and_counted(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let alarm = raise(&store, SubjectId(Uuid::now_v7())).await;
    let stream = StreamName::of::<Alarm>(alarm).expect("stream");
    let escalated = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "AlarmEscalated".to_owned(),
        schema_version: 1,
        data: json!({ "to": "the police" }),
        metadata: EventMetadata::default(),
        personal: None,
    };
    store
        .append(&stream, ExpectedVersion::Any, vec![escalated])
        .await
        .expect("append");

    let projector = Projector::new(store.clone(), AlarmsProjection);
    projector.prepare().await.expect("prepare");
    let events = store.read_all(Position::START, 100).await.expect("events");
    let outcome = projector.apply_batch(&events).await.expect("batch");

    assert_eq!((outcome.applied, outcome.unknown), (events.len() - 1, 1));
    assert_eq!(projector.status().await.expect("status").1, 1);
    assert_eq!(alarm_row(&pool, alarm).await["status"], "raised");
}
