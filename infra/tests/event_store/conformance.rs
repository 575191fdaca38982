//! The contract of `EventStore`, written once for every adapter.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use keryu_infra::event_store::{AppendError, EventStore, ExpectedVersion, Position, Precondition};
use uuid::Uuid;

use crate::support::{assert_same_event, event, events, next_within, stream};

pub async fn appends_a_new_stream_and_reads_it_back(store: &impl EventStore) {
    let name = stream("notification");
    let appended = events(3);

    let result = store
        .append(&name, ExpectedVersion::NoStream, appended.clone())
        .await
        .expect("append to a new stream");

    assert_eq!(result.last_version, 2);
    let read = store.read_stream(&name, 0, 100).await.expect("read stream");
    assert_eq!(read.len(), 3);
    for (version, (recorded, original)) in read.iter().zip(&appended).enumerate() {
        assert_same_event(recorded, original);
        assert_eq!(recorded.stream, name);
        assert_eq!(recorded.version, version as u64);
    }
    assert!(read.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(read[2].position, result.last_position);
    assert_eq!(
        store.head_position().await.expect("head"),
        result.last_position
    );
}

pub async fn no_stream_is_refused_once_the_stream_exists(store: &impl EventStore) {
    let name = stream("subject");
    store
        .append(&name, ExpectedVersion::NoStream, events(2))
        .await
        .expect("first append");

    let refused = store
        .append(&name, ExpectedVersion::NoStream, events(1))
        .await;

    assert!(
        matches!(
            refused,
            Err(AppendError::WrongExpectedVersion {
                actual: Some(1),
                expected: ExpectedVersion::NoStream,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        store.read_stream(&name, 0, 100).await.expect("read").len(),
        2
    );
}

pub async fn exact_version_is_the_optimistic_lock(store: &impl EventStore) {
    let name = stream("template");
    let missing = store
        .append(&name, ExpectedVersion::Exact(0), events(1))
        .await;
    assert!(
        matches!(
            missing,
            Err(AppendError::WrongExpectedVersion { actual: None, .. })
        ),
        "{missing:?}"
    );

    store
        .append(&name, ExpectedVersion::NoStream, events(1))
        .await
        .expect("create");
    let next = store
        .append(&name, ExpectedVersion::Exact(0), events(2))
        .await
        .expect("append at the expected version");
    assert_eq!(next.last_version, 2);

    let stale = store
        .append(&name, ExpectedVersion::Exact(0), events(1))
        .await;
    assert!(
        matches!(
            stale,
            Err(AppendError::WrongExpectedVersion {
                actual: Some(2),
                expected: ExpectedVersion::Exact(0),
                ..
            })
        ),
        "{stale:?}"
    );
    assert_eq!(
        store.read_stream(&name, 0, 100).await.expect("read").len(),
        3
    );
}

pub async fn any_version_appends_whatever_the_state(store: &impl EventStore) {
    let name = stream("alarm");
    let first = store
        .append(&name, ExpectedVersion::Any, events(1))
        .await
        .expect("any on a missing stream");
    let second = store
        .append(&name, ExpectedVersion::Any, events(1))
        .await
        .expect("any on an existing stream");
    assert_eq!((first.last_version, second.last_version), (0, 1));
}

pub async fn an_empty_append_is_refused(store: &impl EventStore) {
    let refused = store
        .append(&stream("custodian"), ExpectedVersion::Any, Vec::new())
        .await;
    assert!(matches!(refused, Err(AppendError::NoEvents)), "{refused:?}");
    assert_eq!(store.head_position().await.expect("head"), Position::START);
}

pub async fn retrying_an_append_returns_the_first_result(store: &impl EventStore) {
    let name = stream("notification");
    let batch = events(2);
    let first = store
        .append(&name, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("first append");
    store
        .append(&name, ExpectedVersion::Exact(1), events(1))
        .await
        .expect("a later append");

    // The writer timed out and retries the very same batch with its original expectation.
    let retried = store
        .append(&name, ExpectedVersion::NoStream, batch)
        .await
        .expect("a retry is not an error");

    assert_eq!(retried, first);
    assert_eq!(
        store.read_stream(&name, 0, 100).await.expect("read").len(),
        3
    );
}

pub async fn a_precondition_on_another_stream_guards_the_append(store: &impl EventStore) {
    let subject = stream("subject");
    store
        .append(&subject, ExpectedVersion::NoStream, events(2))
        .await
        .expect("the subject at version 1");
    let at = |version| {
        [Precondition {
            stream: subject.clone(),
            expected: ExpectedVersion::Exact(version),
        }]
    };

    let notification = stream("notification");
    let batch = events(1);
    let first = store
        .append_if(
            &notification,
            ExpectedVersion::NoStream,
            batch.clone(),
            &at(1),
        )
        .await
        .expect("the subject is still at version 1");
    assert_eq!(first.last_version, 0);

    store
        .append(&subject, ExpectedVersion::Exact(1), events(1))
        .await
        .expect("the subject moves to version 2");
    let stale = stream("notification");
    let refused = store
        .append_if(&stale, ExpectedVersion::NoStream, events(1), &at(1))
        .await;
    assert!(
        matches!(
            &refused,
            Err(AppendError::PreconditionFailed {
                stream,
                expected: ExpectedVersion::Exact(1),
                actual: Some(2),
            }) if *stream == subject
        ),
        "{refused:?}"
    );
    assert!(
        store
            .read_stream(&stale, 0, 100)
            .await
            .expect("read")
            .is_empty(),
        "a refused append writes nothing"
    );
    let missing = store
        .append_if(
            &stream("notification"),
            ExpectedVersion::NoStream,
            events(1),
            &[Precondition {
                stream: stream("subject"),
                expected: ExpectedVersion::Exact(0),
            }],
        )
        .await;
    assert!(
        matches!(
            missing,
            Err(AppendError::PreconditionFailed { actual: None, .. })
        ),
        "{missing:?}"
    );

    // A retry of the first append was checked when it was written: same answer.
    let retried = store
        .append_if(&notification, ExpectedVersion::NoStream, batch, &at(1))
        .await
        .expect("a retry is not an error");
    assert_eq!(retried, first);
    let fresh = store
        .append_if(
            &stream("notification"),
            ExpectedVersion::NoStream,
            events(1),
            &at(2),
        )
        .await;
    assert!(fresh.is_ok(), "{fresh:?}");
}

pub async fn reusing_some_event_ids_is_a_conflict(store: &impl EventStore) {
    let name = stream("notification");
    let stored = event(1);
    store
        .append(&name, ExpectedVersion::NoStream, vec![stored.clone()])
        .await
        .expect("first append");

    let partly_new = store
        .append(&name, ExpectedVersion::Any, vec![stored.clone(), event(2)])
        .await;
    assert!(
        matches!(partly_new, Err(AppendError::EventIdConflict { event_id }) if event_id == stored.event_id),
        "{partly_new:?}"
    );

    let other_stream = store
        .append(
            &stream("notification"),
            ExpectedVersion::Any,
            vec![stored.clone()],
        )
        .await;
    assert!(
        matches!(other_stream, Err(AppendError::EventIdConflict { .. })),
        "{other_stream:?}"
    );
    assert_eq!(
        store
            .read_all(Position::START, 100)
            .await
            .expect("read")
            .len(),
        1
    );
}

pub async fn reads_a_stream_from_a_version_with_a_limit(store: &impl EventStore) {
    let name = stream("subject");
    let appended = events(5);
    store
        .append(&name, ExpectedVersion::NoStream, appended.clone())
        .await
        .expect("append");
    store
        .append(&stream("subject"), ExpectedVersion::NoStream, events(2))
        .await
        .expect("another stream");

    let middle = store.read_stream(&name, 1, 3).await.expect("read");

    let versions: Vec<u64> = middle.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_same_event(&middle[0], &appended[1]);
    assert!(
        store
            .read_stream(&name, 5, 10)
            .await
            .expect("read past the end")
            .is_empty()
    );
    assert!(
        store
            .read_stream(&stream("subject"), 0, 10)
            .await
            .expect("missing")
            .is_empty()
    );
}

pub async fn reads_the_global_log_in_pages(store: &impl EventStore) {
    let (a, b) = (stream("notification"), stream("subject"));
    let mut appended = Vec::new();
    for round in 0..3 {
        for name in [&a, &b] {
            let batch = vec![event(round)];
            appended.extend(batch.iter().map(|e| e.event_id));
            store
                .append(name, ExpectedVersion::Any, batch)
                .await
                .expect("append");
        }
    }

    let mut seen = Vec::new();
    let mut cursor = Position::START;
    loop {
        let page = store.read_all(cursor, 4).await.expect("page");
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 4);
        cursor = last.position;
        seen.extend(page);
    }

    assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
    let ids: Vec<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, appended);
    assert_eq!(store.head_position().await.expect("head"), cursor);
}

pub async fn concurrent_writers_to_one_stream_never_both_win<S: EventStore + Clone>(store: &S) {
    let name = stream("notification");
    store
        .append(&name, ExpectedVersion::NoStream, events(1))
        .await
        .expect("create");

    let contenders: Vec<_> = (0..8)
        .map(|n| {
            let (store, name) = (store.clone(), name.clone());
            tokio::spawn(async move {
                store
                    .append(&name, ExpectedVersion::Exact(0), vec![event(n)])
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for contender in contenders {
        match contender.await.expect("task") {
            Ok(result) => {
                winners += 1;
                assert_eq!(result.last_version, 1);
            }
            Err(AppendError::WrongExpectedVersion {
                actual: Some(1), ..
            }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    assert_eq!(winners, 1);
    assert_eq!(
        store.read_stream(&name, 0, 100).await.expect("read").len(),
        2
    );
}

pub async fn a_subscription_catches_up_then_follows_live(store: &impl EventStore) {
    let name = stream("notification");
    let stored = events(3);
    let first = store
        .append(&name, ExpectedVersion::NoStream, stored.clone())
        .await
        .expect("append");

    // From the start: the backlog, in order.
    let mut from_start = store.subscribe_all(Position::START);
    for original in &stored {
        let recorded = next_within(&mut from_start, Duration::from_secs(5))
            .await
            .expect("backlog event");
        assert_same_event(&recorded, original);
    }
    assert!(
        next_within(&mut from_start, Duration::from_millis(200))
            .await
            .is_none()
    );

    // From the head: only what commits afterwards, delivered live.
    let mut from_head = store.subscribe_all(first.last_position);
    let live = event(99);
    store
        .append(&name, ExpectedVersion::Exact(2), vec![live.clone()])
        .await
        .expect("live append");
    for subscription in [&mut from_start, &mut from_head] {
        let recorded = next_within(subscription, Duration::from_secs(5))
            .await
            .expect("live event");
        assert_same_event(&recorded, &live);
        assert_eq!(recorded.version, 3);
    }
}

/// The defining property of the global log: with many concurrent writers, a follower that keeps
/// a single position as its cursor still sees every event exactly once, in position order.
pub async fn many_writers_and_one_follower_lose_nothing<S: EventStore + Clone>(store: &S) {
    const WRITERS: u64 = 8;
    const APPENDS_PER_WRITER: u64 = 40;
    // Batches of 1–3 events, alternating between a writer's own stream and one shared by all.
    let batch_size = |writer: u64, n: u64| 1 + (writer + n) % 3;
    let total: u64 = (0..WRITERS)
        .flat_map(|writer| (0..APPENDS_PER_WRITER).map(move |n| batch_size(writer, n)))
        .sum();

    let mut subscription = store.subscribe_all(Position::START);
    let follower = tokio::spawn(async move {
        let mut seen = Vec::new();
        while (seen.len() as u64) < total {
            match next_within(&mut subscription, Duration::from_secs(10)).await {
                Some(event) => seen.push(event),
                None => panic!("follower stalled after {} of {total} events", seen.len()),
            }
        }
        let extra = next_within(&mut subscription, Duration::from_millis(200)).await;
        (seen, extra)
    });

    let shared = Arc::new(stream("alarm"));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, shared) = (store.clone(), Arc::clone(&shared));
            tokio::spawn(async move {
                let own = stream("notification");
                let mut written = Vec::new();
                for n in 0..APPENDS_PER_WRITER {
                    let batch = events(batch_size(writer, n));
                    let target = if n % 2 == 0 { &own } else { &*shared };
                    written.extend(batch.iter().map(|e| e.event_id));
                    store
                        .append(target, ExpectedVersion::Any, batch)
                        .await
                        .expect("append");
                }
                written
            })
        })
        .collect();
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.expect("writer"));
    }
    let (seen, extra) = follower.await.expect("follower");

    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "the follower saw events out of position order"
    );
    let seen_ids: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(seen_ids.len(), seen.len(), "an event was delivered twice");
    assert_eq!(seen_ids, written, "the follower missed events");
    assert!(extra.is_none(), "the follower saw an event nobody wrote");
}
