//! The notifications projection against real PostgreSQL: catch-up, live follow, crash safety,
//! unknown events.

use std::time::Duration;

use chrono::Utc;
use keryu_domain::notification::{
    FailureKind, Notification, NotificationCommand, NotificationContent, OutcomeUnknownPolicy,
    ProviderStatus,
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
use keryu_projections::projection::Projection;
use keryu_projections::projector::Projector;
use keryu_projections::timers::TimersProjection;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

async fn command(store: &PgEventStore, id: NotificationId, command: NotificationCommand) {
    let stream = StreamName::of::<Notification>(id).expect("stream");
    let metadata = EventMetadata {
        correlation_id: Uuid::now_v7(),
        ..EventMetadata::default()
    };
    repository::execute::<Notification>(store, &stream, command, &metadata, 3)
        .await
        .expect("command");
}

async fn create(store: &PgEventStore) -> NotificationId {
    create_with(store, None, None).await
}

async fn create_with(
    store: &PgEventStore,
    scheduled_for: Option<chrono::DateTime<Utc>>,
    alarm_id: Option<AlarmId>,
) -> NotificationId {
    let id = NotificationId(Uuid::now_v7());
    let create = NotificationCommand::Create {
        id,
        subject_id: SubjectId(Uuid::now_v7()),
        recipient: "+14155238886".parse().expect("phone"),
        content: NotificationContent::FreeText {
            body: "Hola".to_owned(),
        },
        scheduled_for,
        retry_policy: RetryPolicy::default(),
        alarm_id,
        at: Utc::now(),
    };
    command(store, id, create).await;
    id
}

/// Takes a notification through a failed attempt, a retry, a send and a read receipt.
async fn deliver(store: &PgEventStore, id: NotificationId) {
    let now = Utc::now();
    let start = || NotificationCommand::StartAttempt {
        dispatcher: "d1".to_owned(),
        at: now,
    };
    command(store, id, start()).await;
    command(
        store,
        id,
        NotificationCommand::RecordAttemptFailure {
            error_code: Some(20429),
            error_message: "too many requests".to_owned(),
            kind: FailureKind::Transient,
            random_unit: 0.0,
            at: now,
        },
    )
    .await;
    let due = now + chrono::Duration::minutes(1);
    command(store, id, NotificationCommand::Queue { at: due }).await;
    command(store, id, start()).await;
    command(
        store,
        id,
        NotificationCommand::RecordSent {
            provider_message_id: "SM123".to_owned(),
            at: due,
        },
    )
    .await;
    command(
        store,
        id,
        NotificationCommand::RecordProviderStatus {
            status: ProviderStatus::Read,
            error_code: None,
            error_message: None,
            at: due,
        },
    )
    .await;
}

async fn wait_for_head(projector: &Projector<NotificationsProjection>, store: &PgEventStore) {
    let head = store.head_position().await.expect("head");
    for _ in 0..100 {
        if projector.checkpoint().await.expect("checkpoint") >= head {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the projector did not reach {head}");
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Summary {
    status: String,
    attempt: i32,
    total_attempts: i32,
    last_error_code: Option<i64>,
    provider_message_id: Option<String>,
    read: bool,
}

async fn summary(pool: &PgPool, id: NotificationId) -> Summary {
    sqlx::query_as(
        "SELECT status, attempt, total_attempts, last_error_code, provider_message_id, \
         read_at IS NOT NULL AS read FROM projection_notifications.notifications WHERE id = $1",
    )
    .bind(id.0)
    .fetch_one(pool)
    .await
    .expect("row")
}

/// The counters agree with the rows: what a double apply or a skipped event would break.
async fn assert_counters_match_rows(pool: &PgPool) {
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count FROM projection_notifications.notification_status_counts \
         WHERE count > 0 ORDER BY status",
    )
    .fetch_all(pool)
    .await
    .expect("counters");
    let actual: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM projection_notifications.notifications \
         GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await
    .expect("rows");
    assert_eq!(counted, actual);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn catches_up_then_follows_live(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let early = create(&store).await;
    deliver(&store, early).await;

    let projector = Projector::new(store.clone(), NotificationsProjection);
    projector.prepare().await.expect("prepare");
    let running = tokio::spawn({
        let projector = Projector::new(store.clone(), NotificationsProjection);
        async move { projector.run(std::future::pending()).await }
    });
    wait_for_head(&projector, &store).await;
    assert_eq!(
        summary(&pool, early).await,
        Summary {
            status: "read".to_owned(),
            attempt: 2,
            total_attempts: 2,
            last_error_code: Some(20429),
            provider_message_id: Some("SM123".to_owned()),
            read: true,
        }
    );

    let live = create(&store).await;
    wait_for_head(&projector, &store).await;
    assert_eq!(summary(&pool, live).await.status, "queued");
    assert_counters_match_rows(&pool).await;
    running.abort();
}

/// A batch applied again (a crash after commit but before the consumer moved on, or two
/// projector instances racing) changes nothing the second time.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_batch_is_never_applied_twice(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let id = create(&store).await;
    deliver(&store, id).await;
    let projector = Projector::new(store.clone(), NotificationsProjection);
    projector.prepare().await.expect("prepare");
    let events = store
        .read_all(Position::START, 1_000)
        .await
        .expect("events");

    let first = projector
        .apply_batch(&events[..3])
        .await
        .expect("first part");
    let again = projector
        .apply_batch(&events)
        .await
        .expect("everything, overlapping");
    let replay = projector
        .apply_batch(&events)
        .await
        .expect("everything again");

    assert_eq!((first.applied, first.already_applied), (3, 0));
    assert_eq!(
        (again.applied, again.already_applied),
        (events.len() - 3, 3)
    );
    assert_eq!((replay.applied, replay.already_applied), (0, events.len()));
    assert_eq!(replay.checkpoint, events.last().expect("events").position);
    assert_eq!(summary(&pool, id).await.total_attempts, 2);
    assert_counters_match_rows(&pool).await;
}

/// A batch reads the rows it changes through the table's key once the table is large, even on
/// a connection that planned the read while it was small: a generic plan cached then (a
/// sequential scan) would otherwise stay, and read the whole table for every batch after.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn batches_read_their_rows_by_key_once_the_table_grew(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    // One connection, so that every batch runs on the plans the first ones cached.
    let connection = PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await
        .expect("a pool of one connection");
    let projector = Projector::new(
        PgEventStore::new(connection.clone(), MasterKey::development()),
        NotificationsProjection,
    );
    projector.prepare().await.expect("prepare");
    let mut checkpoint = Position::START;
    let mut apply_new_notifications = async || {
        for _ in 0..5 {
            create(&store).await;
        }
        let events = store.read_all(checkpoint, 1_000).await.expect("events");
        checkpoint = projector
            .apply_batch(&events)
            .await
            .expect("batch")
            .checkpoint;
    };
    // More batches than PostgreSQL plans one by one before it may settle on a generic plan.
    for _ in 0..8 {
        apply_new_notifications().await;
    }
    sqlx::query(
        "INSERT INTO projection_notifications.notifications \
             (id, subject_id, status, max_attempts, created_at, position) \
         SELECT gen_random_uuid(), gen_random_uuid(), 'read', 3, now(), 0 \
         FROM generate_series(1, 20000)",
    )
    .execute(&pool)
    .await
    .expect("grow the table");
    let before = sequential_scans_of_notifications(&connection, &pool).await;

    for _ in 0..4 {
        apply_new_notifications().await;
    }

    let after = sequential_scans_of_notifications(&connection, &pool).await;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projection_notifications.notifications")
            .fetch_one(&pool)
            .await
            .expect("rows");
    assert_eq!((rows, after - before), (20_060, 0));
}

/// The sequential scans of the notifications table so far, including those of `connection`'s
/// backend, whose statistics reach `pg_stat_user_tables` only when it next goes idle.
async fn sequential_scans_of_notifications(connection: &PgPool, pool: &PgPool) -> i64 {
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(connection)
        .await
        .expect("flush the statistics");
    sqlx::query_scalar(
        "SELECT seq_scan FROM pg_stat_user_tables \
         WHERE schemaname = 'projection_notifications' AND relname = 'notifications'",
    )
    .fetch_one(pool)
    .await
    .expect("statistics")
}

/// A projector killed at any point and restarted ends where an uninterrupted one would.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_killed_projector_resumes_without_double_apply(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let projector = Projector::new(store.clone(), NotificationsProjection);
    projector.prepare().await.expect("prepare");
    let mut ids = Vec::new();
    for round in 0..6 {
        let running = tokio::spawn({
            let projector = Projector::new(store.clone(), NotificationsProjection);
            async move { projector.run(std::future::pending()).await }
        });
        for _ in 0..5 {
            let id = create(&store).await;
            deliver(&store, id).await;
            ids.push(id);
        }
        // Kill it wherever it is, after a varying delay.
        tokio::time::sleep(Duration::from_millis(5 * round)).await;
        running.abort();
        let _ = running.await;
    }
    let running = tokio::spawn({
        let projector = Projector::new(store.clone(), NotificationsProjection);
        async move { projector.run(std::future::pending()).await }
    });
    wait_for_head(&projector, &store).await;
    running.abort();

    for id in ids {
        let row = summary(&pool, id).await;
        assert_eq!((row.status.as_str(), row.total_attempts), ("read", 2));
    }
    assert_counters_match_rows(&pool).await;
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn unknown_and_foreign_events_are_skipped_not_fatal(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let id = create(&store).await;
    // A notification event this build does not know, as a newer Keryu might have written it.
    let stream = StreamName::of::<Notification>(Uuid::now_v7()).expect("stream");
    let unknown = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "NotificationTeleported".to_owned(),
        schema_version: 1,
        data: serde_json::json!({ "to": "the moon" }),
        metadata: EventMetadata::default(),
        personal: None,
    };
    store
        .append(&stream, ExpectedVersion::NoStream, vec![unknown])
        .await
        .expect("append");
    let foreign = NewEvent {
        event_type: "SubjectRegistered".to_owned(),
        event_id: Uuid::now_v7(),
        schema_version: 1,
        data: serde_json::json!({}),
        metadata: EventMetadata::default(),
        personal: None,
    };
    let subject = StreamName::new("subject", Uuid::now_v7()).expect("stream");
    store
        .append(&subject, ExpectedVersion::NoStream, vec![foreign])
        .await
        .expect("append");
    command(
        &store,
        id,
        NotificationCommand::StartAttempt {
            dispatcher: "d".to_owned(),
            at: Utc::now(),
        },
    )
    .await;

    let projector = Projector::new(store.clone(), NotificationsProjection);
    projector.prepare().await.expect("prepare");
    let events = store.read_all(Position::START, 100).await.expect("events");
    let outcome = projector.apply_batch(&events).await.expect("batch");

    assert_eq!(outcome.unknown, 1);
    assert_eq!(outcome.applied, events.len() - 1);
    assert_eq!(summary(&pool, id).await.status, "processing");
    let unknown_events: i64 =
        sqlx::query_scalar("SELECT unknown_events FROM projection_notifications.checkpoint")
            .fetch_one(&pool)
            .await
            .expect("checkpoint");
    assert_eq!(unknown_events, 1);
}

async fn dump(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT to_jsonb(n)::text FROM projection_notifications.notifications n ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("rows")
}

/// A rebuild after a mixed workload yields the live tables row for row, while a live projector
/// keeps running and writers keep appending; afterwards the live projector carries on.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_rebuild_reproduces_the_live_read_model_and_swaps_without_loss(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let projector = Projector::new(store.clone(), NotificationsProjection);
    projector.prepare().await.expect("prepare");
    let running = tokio::spawn({
        let projector = Projector::new(store.clone(), NotificationsProjection);
        async move { projector.run(std::future::pending()).await }
    });
    for n in 0..12 {
        let id = create(&store).await;
        if n % 3 != 0 {
            deliver(&store, id).await;
        }
    }
    wait_for_head(&projector, &store).await;
    let live = dump(&pool).await;

    let mut reports = Vec::new();
    let rebuilt =
        keryu_projections::rebuild::rebuild(&projector, |at, head| reports.push((at, head)))
            .await
            .expect("rebuild");
    assert_eq!(
        dump(&pool).await,
        live,
        "the rebuilt rows differ from the live ones"
    );
    assert!(rebuilt.events > 0 && !reports.is_empty());
    assert_counters_match_rows(&pool).await;

    // Rebuild again while writers append and the live projector runs; nothing is lost.
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            let mut ids = Vec::new();
            for _ in 0..10 {
                let id = create(&store).await;
                deliver(&store, id).await;
                ids.push(id);
            }
            ids
        }
    });
    keryu_projections::rebuild::rebuild(&projector, |_, _| {})
        .await
        .expect("rebuild under load");
    let written = writer.await.expect("writer");
    let after = create(&store).await;
    wait_for_head(&projector, &store).await;
    for id in written {
        assert_eq!(summary(&pool, id).await.total_attempts, 2);
    }
    assert_eq!(summary(&pool, after).await.status, "queued");
    assert_counters_match_rows(&pool).await;
    running.abort();
}

/// A rebuild reads the log a page at a time (5,000 events), and the next page while the last
/// one is written: over several pages every event is replayed exactly once, in order.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_rebuild_over_several_pages_replays_every_event_once(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let projector = Projector::new(store.clone(), NotificationsProjection);
    projector.prepare().await.expect("prepare");
    // Each creation appends two events; concurrent appends share group commits.
    let created = futures_util::future::join_all((0..6_000).map(|_| create(&store))).await;
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count");

    let mut pages = Vec::new();
    let rebuilt = keryu_projections::rebuild::rebuild(&projector, |at, _| pages.push(at))
        .await
        .expect("rebuild");
    assert_eq!(rebuilt.events, logged.unsigned_abs(), "events replayed");
    assert_eq!(
        rebuilt.checkpoint,
        store.head_position().await.expect("head")
    );
    assert!(pages.len() > 3, "the log spans several pages: {pages:?}");
    assert!(pages.is_sorted(), "pages out of order: {pages:?}");
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projection_notifications.notifications")
            .fetch_one(&pool)
            .await
            .expect("rows");
    assert_eq!(rows.unsigned_abs(), created.len() as u64);
    assert_counters_match_rows(&pool).await;
}

/// Notifications in every state the read models distinguish: delivered and read after a retry,
/// scheduled, cancelled, failed permanently and retried by hand, undelivered, outcome unknown,
/// one caused by an alarm, one still queued.
async fn varied_lifecycles(store: &PgEventStore) {
    let now = Utc::now();
    let start = || NotificationCommand::StartAttempt {
        dispatcher: "d1".to_owned(),
        at: now,
    };
    let sent = |sid: &str| NotificationCommand::RecordSent {
        provider_message_id: sid.to_owned(),
        at: now,
    };

    let read = create(store).await;
    deliver(store, read).await;
    create_with(store, Some(now + chrono::Duration::hours(1)), None).await;
    let cancelled = create_with(store, Some(now + chrono::Duration::hours(1)), None).await;
    let cancel = NotificationCommand::Cancel {
        reason: "changed my mind".to_owned(),
        at: now,
    };
    command(store, cancelled, cancel).await;

    let failed = create(store).await;
    command(store, failed, start()).await;
    let refused = NotificationCommand::RecordAttemptFailure {
        error_code: Some(21211),
        error_message: "invalid 'To' number".to_owned(),
        kind: FailureKind::Permanent,
        random_unit: 0.5,
        at: now,
    };
    command(store, failed, refused).await;
    let retry = NotificationCommand::Retry {
        requested_by: "admin".to_owned(),
        at: now,
    };
    command(store, failed, retry).await;

    let undelivered = create(store).await;
    command(store, undelivered, start()).await;
    command(store, undelivered, sent("SM-undelivered")).await;
    let bounced = NotificationCommand::RecordProviderStatus {
        status: ProviderStatus::Undelivered,
        error_code: Some(63016),
        error_message: Some("outside the window".to_owned()),
        at: now,
    };
    command(store, undelivered, bounced).await;

    let unknown = create(store).await;
    command(store, unknown, start()).await;
    let lost = NotificationCommand::RecordOutcomeUnknown {
        policy: OutcomeUnknownPolicy::Fail,
        random_unit: 0.5,
        at: now,
    };
    command(store, unknown, lost).await;

    let alarmed = create_with(store, None, Some(AlarmId(Uuid::now_v7()))).await;
    deliver(store, alarmed).await;
    create(store).await;
}

/// Every row of `tables` (a table, possibly with a `WHERE` clause), in a stable order.
async fn dump_tables(pool: &PgPool, tables: &[&str]) -> Vec<String> {
    let mut rows = Vec::new();
    for table in tables {
        let sql = format!("SELECT to_jsonb(t)::text FROM (SELECT * FROM {table}) t ORDER BY 1");
        let table_rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .expect("rows");
        rows.extend(table_rows);
    }
    rows
}

/// Applies the whole log to `projection` one event per batch, then rebuilds it from the log in
/// one batch, and asserts that both ways give the same `tables`: a projection that folds a
/// batch in memory must end where applying its events one by one does.
async fn assert_batch_size_changes_nothing<P: Projection + Clone>(
    store: &PgEventStore,
    pool: &PgPool,
    projection: P,
    tables: &[&str],
) {
    let projector = Projector::new(store.clone(), projection);
    projector.prepare().await.expect("prepare");
    let events = store
        .read_all(Position::START, 10_000)
        .await
        .expect("events");
    for event in &events {
        projector
            .apply_batch(std::slice::from_ref(event))
            .await
            .expect("one event");
    }
    let one_by_one = dump_tables(pool, tables).await;
    assert!(!one_by_one.is_empty());

    keryu_projections::rebuild::rebuild(&projector, |_, _| {})
        .await
        .expect("rebuild");
    assert_eq!(
        dump_tables(pool, tables).await,
        one_by_one,
        "{}: one batch and one event at a time differ",
        projector.projection().name()
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn batches_of_any_size_give_the_same_read_models(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    varied_lifecycles(&store).await;

    // Counters at zero are left out: applying events one by one leaves one behind for every
    // status a notification passed through, a batch only for the statuses rows ended in.
    let notifications = [
        "projection_notifications.notifications",
        "projection_notifications.notification_status_counts WHERE count > 0",
    ];
    assert_batch_size_changes_nothing(&store, &pool, NotificationsProjection, &notifications).await;
    assert_counters_match_rows(&pool).await;
    let statuses: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT status FROM projection_notifications.notifications ORDER BY status",
    )
    .fetch_all(&pool)
    .await
    .expect("statuses");
    assert_eq!(
        statuses,
        [
            "cancelled",
            "failed",
            "queued",
            "read",
            "scheduled",
            "undelivered"
        ]
    );
    assert_batch_size_changes_nothing(
        &store,
        &pool,
        TimersProjection,
        &["projection_timers.timers"],
    )
    .await;
    assert_batch_size_changes_nothing(
        &store,
        &pool,
        AlarmsProjection,
        &["projection_alarms.alarm_notifications"],
    )
    .await;
}
