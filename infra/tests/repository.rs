//! Domain aggregates on the PostgreSQL store: events keep their stable JSON form, commands are
//! decided against the latest state, and concurrent commands are retried instead of lost.

use std::collections::BTreeSet;

use chrono::Utc;
use keryu_domain::notification::NotificationEvent;
use keryu_domain::subject::{Subject, SubjectCommand, SubjectEvent};
use keryu_domain::{Aggregate, CustodianId, DomainError, DomainEvent, SubjectId};
use keryu_infra::event_store::{
    CodecError, EventMetadata, EventStore, ExpectedVersion, NewEvent, Position, Precondition,
    StreamName,
};
use keryu_infra::personal_data::MasterKey;
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository::{self, CommandError};
use sqlx::PgPool;
use uuid::Uuid;

fn register(id: SubjectId) -> SubjectCommand {
    SubjectCommand::Register {
        id,
        name: "Ana".to_owned(),
        phone: "+14155238886".parse().expect("valid phone"),
        preferences: serde_json::json!({ "language": "es" }),
        at: Utc::now(),
    }
}

fn metadata() -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        ..EventMetadata::default()
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn events_are_stored_in_their_stable_form_and_replay(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let id = SubjectId(Uuid::now_v7());
    let stream = StreamName::of::<Subject>(id).expect("stream name");

    let executed = repository::execute::<Subject>(&store, &stream, register(id), &metadata(), 3)
        .await
        .expect("register");

    let stored = store.read_stream(&stream, 0, 10).await.expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "SubjectRegistered");
    assert_eq!(stored[0].schema_version, 1);
    assert_eq!(stored[0].data["phone"], "+14155238886");
    assert_eq!(stored[0].data["preferences"]["language"], "es");
    assert!(
        stored[0].data.get("type").is_none(),
        "the tag is a column, not data"
    );
    assert_eq!(executed.position, Some(stored[0].position));

    let loaded = repository::load::<Subject>(&store, &stream)
        .await
        .expect("load");
    assert_eq!(loaded.version, Some(0));
    assert_eq!(loaded.state, executed.state);
    assert_eq!(loaded.state, Subject::replay(&executed.events));
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn refused_commands_and_no_ops_write_nothing(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let id = SubjectId(Uuid::now_v7());
    let stream = StreamName::of::<Subject>(id).expect("stream name");
    repository::execute::<Subject>(&store, &stream, register(id), &metadata(), 3)
        .await
        .expect("register");

    let again = repository::execute::<Subject>(&store, &stream, register(id), &metadata(), 3).await;
    assert!(
        matches!(
            again,
            Err(CommandError::Domain(DomainError::AlreadyExists { .. }))
        ),
        "{again:?}"
    );
    let unchanged = SubjectCommand::Update {
        name: Some("Ana".to_owned()),
        phone: None,
        preferences: None,
        at: Utc::now(),
    };
    let no_op = repository::execute::<Subject>(&store, &stream, unchanged, &metadata(), 3)
        .await
        .expect("a no-op is accepted");
    assert!(no_op.events.is_empty());
    assert_eq!(no_op.position, None);
    assert_eq!(
        store.read_stream(&stream, 0, 10).await.expect("read").len(),
        1
    );
}

/// Ten custodians are assigned concurrently, each by a command that adds one to the set it
/// loaded. Optimistic concurrency with retries must keep every one of them.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn concurrent_commands_are_retried_not_lost(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let id = SubjectId(Uuid::now_v7());
    let stream = StreamName::of::<Subject>(id).expect("stream name");
    repository::execute::<Subject>(&store, &stream, register(id), &metadata(), 3)
        .await
        .expect("register");

    let tasks: Vec<_> = (0..10u128)
        .map(|n| {
            let (store, stream) = (store.clone(), stream.clone());
            tokio::spawn(async move {
                // Read-modify-write: the command depends on the state it was decided against,
                // so each retry recomputes it from the freshly loaded state.
                loop {
                    let loaded = repository::load::<Subject>(&store, &stream)
                        .await
                        .expect("load");
                    let mut custodians = loaded.state.custodians.clone();
                    custodians.insert(CustodianId(Uuid::from_u128(n + 1)));
                    let command = SubjectCommand::AssignCustodians {
                        custodian_ids: custodians,
                        at: Utc::now(),
                    };
                    let events = loaded.state.decide(command).expect("decide");
                    let new_events = events
                        .iter()
                        .map(|e| NewEvent::from_domain(Uuid::now_v7(), e, metadata()))
                        .collect::<Result<Vec<_>, _>>()
                        .expect("encode");
                    let expected = loaded
                        .version
                        .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    if store.append(&stream, expected, new_events).await.is_ok() {
                        return;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }

    let loaded = repository::load::<Subject>(&store, &stream)
        .await
        .expect("load");
    let expected: BTreeSet<CustodianId> = (1..=10u128)
        .map(|n| CustodianId(Uuid::from_u128(n)))
        .collect();
    assert_eq!(loaded.state.custodians, expected);
    assert_eq!(loaded.version, Some(10));
}

/// `execute` itself retries a command that lost the race, up to its bound.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn execute_retries_on_conflict_and_reports_contention(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let id = SubjectId(Uuid::now_v7());
    let stream = StreamName::of::<Subject>(id).expect("stream name");
    repository::execute::<Subject>(&store, &stream, register(id), &metadata(), 3)
        .await
        .expect("register");

    let renames: Vec<_> = (0..8)
        .map(|n| {
            let (store, stream) = (store.clone(), stream.clone());
            tokio::spawn(async move {
                let rename = SubjectCommand::Update {
                    name: Some(format!("Name {n}")),
                    phone: None,
                    preferences: None,
                    at: Utc::now(),
                };
                repository::execute::<Subject>(&store, &stream, rename, &metadata(), 20).await
            })
        })
        .collect();
    let mut applied = 0;
    for rename in renames {
        let executed = rename
            .await
            .expect("task")
            .expect("every rename eventually applies");
        applied += executed.events.len();
    }
    assert_eq!(applied, 8);
    let loaded = repository::load::<Subject>(&store, &stream)
        .await
        .expect("load");
    assert_eq!(loaded.version, Some(8));
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_unknown_schema_version_is_not_silently_misread(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let id = SubjectId(Uuid::now_v7());
    let stream = StreamName::of::<Subject>(id).expect("stream name");
    let events = Subject::default().decide(register(id)).expect("decide");
    let mut future = NewEvent::from_domain(Uuid::now_v7(), &events[0], metadata()).expect("encode");
    assert_eq!(future.event_type, events[0].event_type());
    // One version past what this build writes: a later Keryu wrote it.
    let current = events[0].schema_version();
    future.schema_version = current + 1;
    store
        .append(&stream, ExpectedVersion::NoStream, vec![future])
        .await
        .expect("append");

    let recorded = store.read_stream(&stream, 0, 1).await.expect("read");
    let decoded = recorded[0].to_domain::<SubjectEvent>();
    assert!(
        matches!(
            decoded,
            Err(CodecError::UnsupportedSchemaVersion { stored, current: read, .. })
                if stored == current + 1 && read == current
        ),
        "{decoded:?}"
    );
    assert!(repository::load::<Subject>(&store, &stream).await.is_err());
}

/// A `RetryScheduled` row as Keryu wrote it before version 2 (literal v1 JSON, inserted with
/// plain SQL) decodes into today's event, while the recorded row stays as stored.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_older_schema_version_is_upcast_on_read_and_never_rewritten(pool: PgPool) {
    let v1 = serde_json::json!({
        "attempt": 2,
        "not_before": "2024-05-01T10:00:03Z",
        "at": "2024-05-01T10:00:02Z"
    });
    sqlx::query(
        "INSERT INTO events (stream_name, stream_version, event_id, event_type, \
         schema_version, data, metadata) VALUES ($1, 0, $2, 'RetryScheduled', 1, $3, $4)",
    )
    .bind(format!("notification-{}", Uuid::now_v7()))
    .bind(Uuid::now_v7())
    .bind(&v1)
    .bind(serde_json::json!({ "correlation_id": Uuid::now_v7() }))
    .execute(&pool)
    .await
    .expect("insert a v1 row");
    let store = PgEventStore::new(pool, MasterKey::development());

    let recorded = store.read_all(Position::START, 10).await.expect("read");
    let event = recorded[0]
        .to_domain::<NotificationEvent>()
        .expect("upcast");
    let NotificationEvent::RetryScheduled(retry) = &event else {
        panic!("not a retry: {event:?}");
    };
    assert_eq!(retry.next_attempt, 2);
    assert_eq!((recorded[0].schema_version, &recorded[0].data), (1, &v1));
    assert_eq!(event.schema_version(), 2, "written today as version 2");

    let mut future = recorded[0].clone();
    future.schema_version = 3;
    assert!(matches!(
        future.to_domain::<NotificationEvent>(),
        Err(CodecError::UnsupportedSchemaVersion {
            stored: 3,
            current: 2,
            ..
        })
    ));
}

/// `execute_from` decides against the state it is given and appends with its version, so
/// commands can be chained without reading the stream; a stale state costs a reload, never a
/// wrong decision.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn execute_from_reloads_only_when_the_given_state_is_stale(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let id = SubjectId(Uuid::now_v7());
    let stream = StreamName::of::<Subject>(id).expect("stream name");
    let rename = |name: &str| SubjectCommand::Update {
        name: Some(name.to_owned()),
        phone: None,
        preferences: None,
        at: Utc::now(),
    };
    let registered = repository::execute::<Subject>(&store, &stream, register(id), &metadata(), 1)
        .await
        .expect("register");
    assert_eq!(registered.version, Some(0));
    let at_registration = registered.into_loaded();

    let first = repository::execute_from(
        &store,
        &stream,
        at_registration.clone(),
        rename("First"),
        &metadata(),
        1,
    )
    .await
    .expect("decided against the given state");
    assert_eq!(first.version, Some(1));
    let second = repository::execute_from(
        &store,
        &stream,
        first.into_loaded(),
        rename("Second"),
        &metadata(),
        1,
    )
    .await
    .expect("chained");
    assert_eq!(second.version, Some(2));

    let stale = repository::execute_from(
        &store,
        &stream,
        at_registration.clone(),
        rename("Third"),
        &metadata(),
        1,
    )
    .await;
    assert!(matches!(stale, Err(CommandError::Contention { .. })));
    let reloaded = repository::execute_from(
        &store,
        &stream,
        at_registration,
        rename("Third"),
        &metadata(),
        2,
    )
    .await
    .expect("decided again after a reload");
    assert_eq!(reloaded.version, Some(3));
    let loaded = repository::load::<Subject>(&store, &stream)
        .await
        .expect("load");
    assert_eq!((loaded.version, loaded.state), (Some(3), reloaded.state));
}

/// `create_if` appends only while the other stream it depends on is where the caller saw
/// it; when it moved, the command is not decided again against its own stream (that would not
/// help) but reported at once, and nothing is written.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_failed_precondition_is_reported_at_once(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let depended_on = SubjectId(Uuid::now_v7());
    let depended_stream = StreamName::of::<Subject>(depended_on).expect("stream name");
    repository::execute::<Subject>(
        &store,
        &depended_stream,
        register(depended_on),
        &metadata(),
        1,
    )
    .await
    .expect("register");
    let at = |version| {
        [Precondition {
            stream: depended_stream.clone(),
            expected: ExpectedVersion::Exact(version),
        }]
    };
    let create = |id: SubjectId| {
        let stream = StreamName::of::<Subject>(id).expect("stream name");
        (stream, register(id))
    };

    let (stream, command) = create(SubjectId(Uuid::now_v7()));
    let stale =
        repository::create_if::<Subject>(&store, &stream, command, &metadata(), 5, &at(1)).await;
    assert!(
        matches!(&stale, Err(CommandError::PreconditionFailed { stream }) if *stream == depended_stream),
        "{stale:?}"
    );
    assert!(
        store
            .read_stream(&stream, 0, 10)
            .await
            .expect("read")
            .is_empty()
    );

    let (stream, command) = create(SubjectId(Uuid::now_v7()));
    let created =
        repository::create_if::<Subject>(&store, &stream, command, &metadata(), 1, &at(0))
            .await
            .expect("the precondition holds");
    assert_eq!(created.version, Some(0));
}
