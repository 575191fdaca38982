//! Proofs specific to the PostgreSQL adapter: how its write lock keeps the global log gap-free,
//! and that the table refuses to be edited.

use std::time::Duration;

use keryu_infra::event_store::{EventStore, ExpectedVersion, Position};
use keryu_infra::postgres::PgEventStore;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{event, next_within, stream};

/// Writer A takes a position and stays open; writers B (through the store) and C (a raw INSERT
/// that bypasses the store) come later. Neither may commit before A does — otherwise a follower
/// would pass A's position before A's event became visible and never see it.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_follower_never_passes_an_append_that_commits_late(pool: PgPool) {
    let store = PgEventStore::new(pool.clone());
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

    tokio::time::sleep(Duration::from_millis(500)).await;
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

/// Nothing can rewrite history: updates, deletes and truncation are refused by the table itself.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn the_events_table_is_append_only(pool: PgPool) {
    let store = PgEventStore::new(pool.clone());
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
