//! A log written by Keryu before `RetryScheduled` version 2 (when the field was still called
//! `attempt`) rebuilds correctly: the rows below are inserted as that version wrote them —
//! literal JSON, schema version 1 — and read back through the upcasters.

use chrono::{DateTime, Utc};
use keryu_domain::NotificationId;
use keryu_domain::notification::{Notification, NotificationStatus};
use keryu_infra::event_store::StreamName;
use keryu_infra::personal_data::MasterKey;
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{FreshDatabase, keryu, stderr};

/// A notification delivered on its second attempt, after a retry.
const DELIVERED: &str = "0190f5a0-0000-7000-8000-000000000001";
/// A notification whose first attempt failed and whose retry is not due yet.
const WAITING: &str = "0190f5a0-0000-7000-8000-000000000002";
const SUBJECT: &str = "0190f5a0-0000-7000-8000-0000000000aa";

fn created(id: &str) -> Value {
    json!({
        "id": id,
        "subject_id": SUBJECT,
        "recipient": "+14155238886",
        "content": { "kind": "free_text", "body": "Hola Ana" },
        "retry_policy": {
            "max_attempts": 3, "base_delay_ms": 1000, "multiplier": 4.0,
            "max_delay_ms": 900000, "jitter": 0.2
        },
        "at": "2024-05-01T10:00:00Z"
    })
}

/// The first attempt, failed with a rate limit, and the v1 retry that followed it.
fn first_attempt_failed(retry_due: &str) -> Vec<(&'static str, u16, Value)> {
    vec![
        (
            "NotificationQueued",
            1,
            json!({ "attempt": 1, "at": "2024-05-01T10:00:00Z" }),
        ),
        (
            "DeliveryAttemptStarted",
            1,
            json!({ "attempt": 1, "dispatcher": "dispatcher-7", "at": "2024-05-01T10:00:01Z" }),
        ),
        (
            "DeliveryAttemptFailed",
            1,
            json!({
                "attempt": 1,
                "error": { "code": 20429, "message": "Too Many Requests" },
                "kind": "transient",
                "at": "2024-05-01T10:00:02Z"
            }),
        ),
        (
            "RetryScheduled",
            1,
            json!({ "attempt": 2, "not_before": retry_due, "at": "2024-05-01T10:00:02Z" }),
        ),
    ]
}

/// Inserts `events` as stream `notification-<id>` with plain SQL, as the old version's rows.
async fn insert_stream(pool: &PgPool, id: &str, events: Vec<(&'static str, u16, Value)>) {
    for (version, (event_type, schema_version, data)) in events.into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO events (stream_name, stream_version, event_id, event_type, \
             schema_version, data, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(format!("notification-{id}"))
        .bind(i64::try_from(version).expect("small"))
        .bind(Uuid::now_v7())
        .bind(event_type)
        .bind(i32::from(schema_version))
        .bind(data)
        .bind(json!({ "correlation_id": "0190f5a0-0000-7000-8000-0000000000cc" }))
        .execute(pool)
        .await
        .expect("insert a v1 row");
    }
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().expect("RFC 3339")
}

#[tokio::test]
async fn a_log_written_by_v1_rebuilds_and_loads_through_the_upcasters() {
    let database = FreshDatabase::name("upcast");
    let url = database.url();
    let migrated = keryu(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let pool = PgPool::connect(&url).await.expect("connect");

    let mut delivered = vec![("NotificationCreated", 1, created(DELIVERED))];
    delivered.extend(first_attempt_failed("2024-05-01T10:00:03Z"));
    delivered.extend([
        (
            "NotificationQueued",
            1,
            json!({ "attempt": 2, "at": "2024-05-01T10:00:03Z" }),
        ),
        (
            "DeliveryAttemptStarted",
            1,
            json!({ "attempt": 2, "dispatcher": "dispatcher-7", "at": "2024-05-01T10:00:04Z" }),
        ),
        (
            "NotificationSent",
            1,
            json!({
                "attempt": 2,
                "provider_message_id": "SM0123456789abcdef0123456789abcdef",
                "at": "2024-05-01T10:00:05Z"
            }),
        ),
        (
            "NotificationDelivered",
            1,
            json!({ "at": "2024-05-01T10:00:09Z" }),
        ),
    ]);
    insert_stream(&pool, DELIVERED, delivered).await;
    let mut waiting = vec![("NotificationCreated", 1, created(WAITING))];
    waiting.extend(first_attempt_failed("2099-01-01T00:00:00Z"));
    insert_stream(&pool, WAITING, waiting).await;

    let rebuilt = keryu(
        &["projections", "rebuild", "--all"],
        &[("DATABASE_URL", &url)],
    );
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    // --all rebuilds the five read models at once; each says when it is swapped in.
    let swapped = String::from_utf8_lossy(&rebuilt.stdout)
        .matches(": rebuilt from ")
        .count();
    assert_eq!(swapped, 5, "{}", String::from_utf8_lossy(&rebuilt.stdout));
    let one = keryu(
        &["projections", "rebuild", "timers"],
        &[("DATABASE_URL", &url)],
    );
    assert!(one.status.success(), "{}", stderr(&one));
    let unknown = keryu(
        &["projections", "rebuild", "nope"],
        &[("DATABASE_URL", &url)],
    );
    assert!(!unknown.status.success() && stderr(&unknown).contains("no projection"));

    // The rows stay as written: upcasting happens on read only.
    let stored: Vec<(i32, Value)> = sqlx::query_as(
        "SELECT schema_version, data FROM events WHERE event_type = 'RetryScheduled'",
    )
    .fetch_all(&pool)
    .await
    .expect("stored retries");
    assert_eq!(stored.len(), 2);
    for (schema_version, data) in stored {
        assert_eq!((schema_version, &data["attempt"]), (1, &json!(2)), "{data}");
    }

    let read_model = |id: &str| {
        sqlx::query_as::<_, (String, i32, i32, Option<i64>, Option<DateTime<Utc>>)>(
            "SELECT status, attempt, total_attempts, last_error_code, not_before \
             FROM projection_notifications.notifications WHERE id = $1::uuid",
        )
        .bind(id.to_owned())
        .fetch_one(&pool)
    };
    assert_eq!(
        read_model(DELIVERED).await.expect("delivered row"),
        ("delivered".to_owned(), 2, 2, Some(20429), None)
    );
    assert_eq!(
        read_model(WAITING).await.expect("waiting row"),
        (
            "retry_scheduled".to_owned(),
            1,
            1,
            Some(20429),
            Some(time("2099-01-01T00:00:00Z"))
        )
    );
    let skipped: i64 =
        sqlx::query_scalar("SELECT unknown_events FROM projection_notifications.checkpoint")
            .fetch_one(&pool)
            .await
            .expect("checkpoint");
    assert_eq!(skipped, 0, "every v1 event decoded");
    let timers: Vec<(Uuid, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT notification_id, kind, due_at FROM projection_timers.timers")
            .fetch_all(&pool)
            .await
            .expect("timers");
    assert_eq!(
        timers,
        [(
            WAITING.parse().expect("uuid"),
            "retry".to_owned(),
            time("2099-01-01T00:00:00Z")
        )]
    );

    // The aggregate folds the same v1 stream: commands decide against the upcast history.
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let id = NotificationId(WAITING.parse().expect("uuid"));
    let stream = StreamName::of::<Notification>(id).expect("stream");
    let loaded = repository::load::<Notification>(&store, &stream)
        .await
        .expect("a v1 stream loads");
    assert_eq!(loaded.version, Some(4));
    assert_eq!(loaded.state.status, NotificationStatus::RetryScheduled);
    assert_eq!(loaded.state.attempt, 1);
    assert_eq!(loaded.state.not_before, Some(time("2099-01-01T00:00:00Z")));
    pool.close().await;
    database.drop().await;
}
