//! Small builders shared by the event store tests.

use std::time::Duration;

use keryu_infra::event_store::{
    Actor, EventMetadata, NewEvent, RecordedEvent, StreamName, Subscription,
};
use sqlx::PgPool;
use uuid::Uuid;

/// A fresh stream name in `category`.
pub fn stream(category: &str) -> StreamName {
    StreamName::new(category, Uuid::now_v7()).expect("valid stream name")
}

/// An event of type `TestHappened` carrying `n`, with full metadata so round trips are checked.
pub fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "TestHappened".to_owned(),
        schema_version: 1,
        data: serde_json::json!({ "n": n, "text": "ünïcode ✓" }),
        metadata: EventMetadata {
            correlation_id: Uuid::now_v7(),
            causation_id: Some(Uuid::now_v7()),
            actor: Some(Actor {
                id: "tester".to_owned(),
                role: "system".to_owned(),
            }),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
        },
        personal: None,
    }
}

/// `count` events numbered from 0.
pub fn events(count: u64) -> Vec<NewEvent> {
    (0..count).map(event).collect()
}

/// The next event of `subscription`, or `None` if none arrives within `wait`.
pub async fn next_within(subscription: &mut Subscription, wait: Duration) -> Option<RecordedEvent> {
    tokio::time::timeout(wait, subscription.next())
        .await
        .ok()
        .flatten()
}

/// Waits until `count` backends of this database wait for a lock — appends queued behind the
/// log's write lock — so that a test knows they got that far instead of sleeping and hoping.
pub async fn until_backends_wait_for_a_lock(pool: &PgPool, count: i64) {
    for _ in 0..1_000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .expect("activity");
        if waiting >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {count} backends came to wait for a lock");
}

/// Asserts that `recorded` is `appended` as the store should have kept it.
pub fn assert_same_event(recorded: &RecordedEvent, appended: &NewEvent) {
    assert_eq!(recorded.event_id, appended.event_id);
    assert_eq!(recorded.event_type, appended.event_type);
    assert_eq!(recorded.schema_version, appended.schema_version);
    assert_eq!(recorded.data, appended.data);
    assert_eq!(recorded.metadata, appended.metadata);
}
