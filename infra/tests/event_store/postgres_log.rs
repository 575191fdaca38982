//! Proofs specific to the PostgreSQL adapter: how its write lock keeps the global log gap-free,
//! and that the table refuses to be edited.

use std::time::Duration;

use keryu_infra::event_store::{EventStore, ExpectedVersion, Position};
use keryu_infra::postgres::{PgEventStore, SubscriptionOptions};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::support::{event, events, next_within, stream, until_backends_wait_for_a_lock};
use keryu_infra::personal_data::MasterKey;

/// Writer A takes a position and stays open; writers B (through the store) and C (a raw INSERT
/// that bypasses the store) come later. Neither may commit before A does — otherwise a follower
/// would pass A's position before A's event became visible and never see it.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_follower_never_passes_an_append_that_commits_late(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let mut follower = store.subscribe_all(Position::START);

    let early = event(1);
    let mut transaction_a = pool.begin().await.expect("begin A");
    let a = PgEventStore::append_in(
        &mut transaction_a,
        &stream("notification"),
        ExpectedVersion::NoStream,
        std::slice::from_ref(&early),
    )
    .await
    .expect("A appends");

    let late = event(2);
    let writer_b = tokio::spawn({
        let (store, late) = (store.clone(), late.clone());
        async move {
            store
                .append(
                    &stream("notification"),
                    ExpectedVersion::NoStream,
                    vec![late],
                )
                .await
        }
    });
    let raw_id = Uuid::now_v7();
    let writer_c = tokio::spawn({
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO events (stream_name, stream_version, event_id, event_type, \
                 schema_version, data, metadata) VALUES ('notification-raw', 0, $1, \
                 'RawInserted', 1, '{}', '{\"correlation_id\": \"00000000-0000-0000-0000-000000000000\"}')",
            )
            .bind(raw_id)
            .execute(&pool)
            .await
        }
    });

    until_backends_wait_for_a_lock(&pool, 2).await;
    assert!(
        !writer_b.is_finished(),
        "B committed while the earlier A was still open"
    );
    assert!(
        !writer_c.is_finished(),
        "a raw INSERT committed while A was still open"
    );
    assert!(
        next_within(&mut follower, Duration::from_millis(300))
            .await
            .is_none(),
        "the follower saw an event while A was still open"
    );

    transaction_a.commit().await.expect("commit A");
    let b = writer_b.await.expect("task B").expect("B appends");
    writer_c.await.expect("task C").expect("C inserts");

    let first = next_within(&mut follower, Duration::from_secs(5))
        .await
        .expect("A's event");
    assert_eq!(first.event_id, early.event_id);
    assert_eq!(first.position, a.last_position);
    let mut rest = Vec::new();
    for _ in 0..2 {
        let next = next_within(&mut follower, Duration::from_secs(5))
            .await
            .expect("the later events");
        assert!(next.position > a.last_position);
        rest.push(next.event_id);
    }
    rest.sort();
    let mut expected = vec![late.event_id, raw_id];
    expected.sort();
    assert_eq!(rest, expected);
    assert!(b.last_position > a.last_position);
}

/// The log writer decides a group without the write lock, on what its appends expect or on a
/// lookup. Here another writer (A, holding the lock) creates a stream after an append to it
/// was decided and before its write: the append must be decided again, not written on what it
/// took the stream to be. (Which moved streams are caught is `group_commit`'s unit tests.)
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_append_is_decided_again_when_its_stream_moved_before_its_write(pool: PgPool) {
    use keryu_infra::event_store::AppendError;

    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let contested = stream("subject");
    let mut transaction_a = pool.begin().await.expect("begin A");
    PgEventStore::append_in(
        &mut transaction_a,
        &contested,
        ExpectedVersion::NoStream,
        &[event(1)],
    )
    .await
    .expect("A appends");

    let append = tokio::spawn({
        let (store, contested) = (store.clone(), contested.clone());
        async move {
            store
                .append(&contested, ExpectedVersion::NoStream, vec![event(2)])
                .await
        }
    });
    // The append is decided without waiting for A (it takes no lock) and misses A's stream;
    // its write waits for A's lock.
    until_backends_wait_for_a_lock(&pool, 1).await;
    assert!(!append.is_finished());
    transaction_a.commit().await.expect("commit A");

    let append = append.await.expect("task");
    assert!(
        matches!(
            append,
            Err(AppendError::WrongExpectedVersion {
                actual: Some(0),
                ..
            })
        ),
        "{append:?}"
    );
    let contested_events = store
        .read_stream(&contested, 0, 10)
        .await
        .expect("read the stream");
    assert_eq!(contested_events.len(), 1, "only A's event");
}

/// Two processes (two stores, each with its own log writer) race for the same versions: their
/// lookups keep overlapping each other's writes, yet each version is won once, and every
/// append to a stream of its own goes in.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn writers_of_two_processes_never_both_win_a_version(pool: PgPool) {
    let stores = [(); 2].map(|()| PgEventStore::new(pool.clone(), MasterKey::development()));
    let shared = stream("notification");
    stores[0]
        .append(&shared, ExpectedVersion::NoStream, vec![event(0)])
        .await
        .expect("the shared stream starts at version 0");
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..10_u64 {
        for n in 0..20_u64 {
            let store = stores[(n % 2) as usize].clone();
            let shared = shared.clone();
            tasks.spawn(async move {
                let won = store
                    .append(&shared, ExpectedVersion::Exact(round), vec![event(n)])
                    .await
                    .is_ok();
                let own = store
                    .append(
                        &stream("subject"),
                        ExpectedVersion::NoStream,
                        vec![event(n)],
                    )
                    .await;
                (won, own.is_ok())
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mut own_appends, mut wins) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (won, own) = joined.expect("task");
        assert!(own, "an append to a new stream of its own was refused");
        own_appends += 1;
        wins += usize::from(won);
    }
    let shared_events = stores[0]
        .read_stream(&shared, 0, 100)
        .await
        .expect("read the shared stream");
    let versions: Vec<u64> = shared_events.iter().map(|event| event.version).collect();
    assert_eq!(versions, (0..versions.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        wins,
        versions.len() - 1,
        "every win is stored, nothing else"
    );
    let log = stores[1]
        .read_all(Position::START, 10_000)
        .await
        .expect("log");
    assert_eq!(log.len(), own_appends + shared_events.len());
}

/// The subscriptions of a store share one reader of the log's tail, which keeps only the newest
/// events: a subscription behind them reads the table until it reaches them, one started later
/// joins the same tail, and neither loses nor repeats an event.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn subscriptions_behind_the_shared_tail_read_the_table_and_lose_nothing(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development()).with_subscription_options(
        SubscriptionOptions {
            page_size: 3,
            poll_interval: Duration::from_secs(1),
            tail_events: 4,
        },
    );
    let mut live = store.subscribe_all(Position::START);
    let mut appended = Vec::new();
    for _ in 0..5 {
        let batch = events(3);
        store
            .append(
                &stream("notification"),
                ExpectedVersion::NoStream,
                batch.clone(),
            )
            .await
            .expect("append");
        appended.extend(batch.into_iter().map(|event| event.event_id));
    }
    // Fifteen events: most of them are already gone from a four-event tail.
    let mut late = store.subscribe_all(Position::START);
    let last = events(2);
    store
        .append(&stream("alarm"), ExpectedVersion::NoStream, last.clone())
        .await
        .expect("append");
    appended.extend(last.into_iter().map(|event| event.event_id));

    for subscription in [&mut live, &mut late] {
        let mut seen = Vec::new();
        while seen.len() < appended.len() {
            let event = next_within(subscription, Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("stalled after {} events", seen.len()));
            seen.push(event.event_id);
        }
        assert_eq!(seen, appended);
        assert!(
            next_within(subscription, Duration::from_millis(200))
                .await
                .is_none()
        );
    }
}

/// Nothing can rewrite history: updates, deletes and truncation are refused by the table itself.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn the_events_table_is_append_only(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    store
        .append(
            &stream("subject"),
            ExpectedVersion::NoStream,
            vec![event(1)],
        )
        .await
        .expect("append");

    for statement in [
        "UPDATE events SET data = '{\"edited\": true}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let refused = sqlx::query(statement).execute(&pool).await;
        assert!(refused.is_err(), "{statement} was allowed");
    }
    let remaining = store.read_all(Position::START, 10).await.expect("read");
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].data, event(1).data);
}

/// Many appends at once are committed in groups (one transaction each); every append still
/// keeps its own contract: its expected version against the appends queued before it, its
/// retries answered with the first result, and the global order gap-free.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn grouped_appends_keep_every_appends_contract(pool: PgPool) {
    use keryu_infra::event_store::AppendError;

    let store = PgEventStore::new(pool, MasterKey::development());
    let shared = stream("notification");
    store
        .append(&shared, ExpectedVersion::NoStream, vec![event(0)])
        .await
        .expect("the shared stream starts at version 0");

    let mut tasks = tokio::task::JoinSet::new();
    // 40 new streams of three events each.
    for n in 0..40 {
        let store = store.clone();
        tasks.spawn(async move {
            let own = stream("subject");
            let result = store
                .append(&own, ExpectedVersion::NoStream, (0..3).map(event).collect())
                .await;
            ("own", n, result)
        });
    }
    // 20 writers racing for version 1 of the shared stream: one wins.
    for n in 0..20 {
        let (store, shared) = (store.clone(), shared.clone());
        tasks.spawn(async move {
            let result = store
                .append(&shared, ExpectedVersion::Exact(0), vec![event(n)])
                .await;
            ("race", n, result)
        });
    }
    // 10 appends sent twice at once (a client retrying): both answers are the same.
    for n in 0..10 {
        let retried = vec![event(n), event(n + 1)];
        let own = stream("alarm");
        for _ in 0..2 {
            let (store, own, retried) = (store.clone(), own.clone(), retried.clone());
            tasks.spawn(async move {
                let result = store.append(&own, ExpectedVersion::Any, retried).await;
                ("retry", n, result)
            });
        }
    }

    let mut wins = 0;
    let mut retries: std::collections::HashMap<u64, Vec<_>> = std::collections::HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (kind, n, result) = joined.expect("task");
        match kind {
            "own" => assert_eq!(result.expect("a new stream").last_version, 2),
            "race" => match result {
                Ok(appended) => {
                    assert_eq!(appended.last_version, 1);
                    wins += 1;
                }
                Err(AppendError::WrongExpectedVersion { actual, .. }) => {
                    assert_eq!(actual, Some(1));
                }
                Err(other) => panic!("unexpected {other}"),
            },
            _ => retries
                .entry(n)
                .or_default()
                .push(result.expect("a retry succeeds")),
        }
    }
    assert_eq!(wins, 1, "exactly one racer wins version 1");
    for (n, answers) in retries {
        assert_eq!(answers[0], answers[1], "retried append {n}");
    }
    let log = store.read_all(Position::START, 10_000).await.expect("log");
    assert_eq!(log.len(), 1 + 40 * 3 + 1 + 10 * 2);
    assert!(
        log.windows(2)
            .all(|pair| pair[0].position < pair[1].position)
    );
    let head = store.head_position().await.expect("head");
    assert_eq!(head, log[log.len() - 1].position);
}

/// Tampers with the table as its owner could (triggers off), then checks the chain.
async fn tamper(pool: &PgPool, sql: &str) {
    let mut connection = pool.acquire().await.expect("connection");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE events DISABLE TRIGGER events_append_only; {sql}; \
         ALTER TABLE events ENABLE TRIGGER events_append_only;"
    )))
    .execute(&mut *connection)
    .await
    .expect("tamper");
}

/// Ten events in three streams, appended concurrently (so in groups).
async fn chained_log(pool: &PgPool) -> Vec<Position> {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..5 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .append(
                    &stream("notification"),
                    ExpectedVersion::NoStream,
                    vec![event(n), event(n + 10)],
                )
                .await
                .expect("append")
        });
    }
    while tasks.join_next().await.is_some() {}
    store
        .read_all(Position::START, 100)
        .await
        .expect("log")
        .iter()
        .map(|event| event.position)
        .collect()
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_untouched_log_verifies(pool: PgPool) {
    use keryu_infra::postgres::{ChainReport, verify_chain};
    let positions = chained_log(&pool).await;
    let report = verify_chain(&pool, |_, _| {}).await.expect("verify");
    let ChainReport::Intact { events, head_hash } = report else {
        panic!("an untouched log is intact: {report:?}");
    };
    assert_eq!(events, positions.len() as u64);
    assert_eq!(head_hash.len(), 64);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_edited_event_is_found(pool: PgPool) {
    use keryu_infra::postgres::{ChainReport, verify_chain};
    let positions = chained_log(&pool).await;
    let edited = positions[4];
    tamper(
        &pool,
        &format!(
            "UPDATE events SET data = '{{\"n\": 999}}' WHERE global_position = {}",
            edited.0
        ),
    )
    .await;
    assert_eq!(
        verify_chain(&pool, |_, _| {}).await.expect("verify"),
        ChainReport::Edited { position: edited }
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_deleted_event_is_found(pool: PgPool) {
    use keryu_infra::postgres::{ChainReport, verify_chain};
    let positions = chained_log(&pool).await;
    tamper(
        &pool,
        &format!(
            "DELETE FROM events WHERE global_position = {}",
            positions[3].0
        ),
    )
    .await;
    assert_eq!(
        verify_chain(&pool, |_, _| {}).await.expect("verify"),
        ChainReport::Unlinked {
            position: positions[4]
        }
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn swapped_events_are_found(pool: PgPool) {
    use keryu_infra::postgres::{ChainReport, verify_chain};
    let positions = chained_log(&pool).await;
    let (first, second) = (positions[2].0, positions[6].0);
    // The two rows trade what they say, hashes included (the unique keys cannot be swapped in
    // one statement, and need not be: the order of what happened is what an attacker changes).
    tamper(
        &pool,
        &format!(
            "UPDATE events AS a SET event_type = b.event_type, data = b.data, \
             metadata = b.metadata, recorded_at = b.recorded_at, \
             previous_hash = b.previous_hash, hash = b.hash \
             FROM (SELECT * FROM events WHERE global_position IN ({first}, {second})) AS b \
             WHERE a.global_position IN ({first}, {second}) AND b.global_position <> a.global_position"
        ),
    )
    .await;
    let report = verify_chain(&pool, |_, _| {}).await.expect("verify");
    assert!(
        matches!(report, ChainReport::Edited { position } | ChainReport::Unlinked { position } if position.0 == first),
        "{report:?}"
    );
}

/// The chain trigger links a transaction's rows to the last row that transaction inserted
/// without looking it up: it must stay right across statements, a rolled-back savepoint, the
/// next transaction of the same connection, and appends by the store in between.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn rows_of_one_transaction_chain_on_each_other(pool: PgPool) {
    use keryu_infra::postgres::{ChainReport, verify_chain};
    chained_log(&pool).await;
    let insert = |version: u32| {
        format!(
            "INSERT INTO events (stream_name, stream_version, event_id, event_type, \
             schema_version, data, metadata) \
             VALUES ('audit-by-hand', {version}, '{id}', 'Noted', 1, '{{}}', \
                     '{{\"correlation_id\": \"{id}\"}}')",
            id = Uuid::now_v7()
        )
    };
    let mut connection = pool.acquire().await.expect("connection");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; {}; SAVEPOINT undone; {}; ROLLBACK TO SAVEPOINT undone; {}; COMMIT;",
        insert(0),
        insert(1),
        insert(1),
    )))
    .execute(&mut *connection)
    .await
    .expect("insert by hand");
    // Others append; this connection's next transaction must chain on their last row.
    chained_log(&pool).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; {}; COMMIT;",
        insert(2)
    )))
    .execute(&mut *connection)
    .await
    .expect("insert by hand again");

    let report = verify_chain(&pool, |_, _| {}).await.expect("verify");
    let ChainReport::Intact { events, .. } = report else {
        panic!("the chain holds: {report:?}");
    };
    // Ten appended, two by hand (the savepoint's row is gone), ten appended, one by hand.
    assert_eq!(events, 23);
}

/// The log writer keeps a connection of its own; closing the store's pool must close it too,
/// or nothing could drop the database after a shutdown (`sqlx::test` itself could not).
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn closing_the_pool_closes_the_log_writer_connection(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    store
        .append(
            &stream("notification"),
            ExpectedVersion::NoStream,
            vec![event(1)],
        )
        .await
        .expect("append");
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .expect("database name");
    let mut observer = <sqlx::PgConnection as sqlx::Connection>::connect_with(
        &(*pool.connect_options()).clone().database("postgres"),
    )
    .await
    .expect("observer");
    let connected = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
    };
    assert!(connected().fetch_one(&mut observer).await.expect("count") >= 1);

    pool.close().await;
    // The writer closes its connection as soon as it hears of the close; give the server a
    // moment to end the backend.
    let mut remaining = i64::MAX;
    for _ in 0..50 {
        remaining = connected().fetch_one(&mut observer).await.expect("count");
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(remaining, 0, "connections left to {database}");
    drop(store);
}

/// A caller cancelled while its `BEGIN` is under way (here a timeout, in production a client
/// gone or an aborted task) must not leave the pool's connection inside that transaction: its
/// next borrower would run every statement in it, never committed, under whatever `SET LOCAL`
/// came with the `BEGIN`. The projector, the timers, the rebuild and the alarm detail's snapshot
/// begin their transactions with sqlx's own `begin`/`begin_with` and rely on this; sqlx 0.9.0
/// broke it (transact-rs/sqlx#4393: a projector's batch settings once moved a test's append onto
/// a read model's schema), 0.9.1 mends it, and this pins it. `SAVEPOINT` is refused outside a
/// transaction block, so it tells which side of one the connection is on.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_transaction_cancelled_while_beginning_leaves_no_transaction_open(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = options
        .max_connections(1)
        .connect_with(connect)
        .await
        .expect("pool");
    let beginning = pool.begin_with("BEGIN; SELECT pg_sleep(0.3)");
    let cancelled = tokio::time::timeout(Duration::from_millis(50), beginning).await;
    assert!(
        cancelled.is_err(),
        "the BEGIN should still have been under way"
    );

    let outside = sqlx::raw_sql("SAVEPOINT probe").execute(&pool).await;
    assert!(
        outside.is_err(),
        "the pool's only connection was handed on inside the cancelled transaction"
    );
}
