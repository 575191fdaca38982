//! The event log API over real HTTP: who may read it, paging the global log, NDJSON streaming,
//! one stream, one notification's history.

use chrono::Utc;
use keryu_domain::notification::{Notification, NotificationCommand};
use keryu_domain::{NotificationId, Role};
use keryu_infra::event_store::{
    Actor, EventMetadata, EventStore, ExpectedVersion, NewEvent, Position, StreamName,
};
use keryu_infra::repository;
use keryu_projections::queries::events::EventView;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::World;

impl World {
    /// Runs `command` against notification `id` as `actor`.
    async fn notification_command(
        &self,
        id: NotificationId,
        command: NotificationCommand,
        actor: &str,
    ) {
        let stream = StreamName::of::<Notification>(id).expect("stream");
        let metadata = EventMetadata {
            correlation_id: Uuid::now_v7(),
            causation_id: Some(Uuid::now_v7()),
            actor: Some(Actor {
                id: actor.to_owned(),
                role: "system".to_owned(),
            }),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
        };
        repository::execute::<Notification>(&self.store, &stream, command, &metadata, 3)
            .await
            .expect("command");
    }

    /// Every event of the log as the store reads it.
    async fn whole_log(&self) -> Vec<EventView> {
        self.store
            .read_all(Position::START, 100_000)
            .await
            .expect("read")
            .iter()
            .map(EventView::from)
            .collect()
    }

    /// GETs `path` as NDJSON; returns the status, the content type and the parsed lines.
    async fn ndjson(&self, path: &str, token: &str) -> (u16, String, Vec<EventView>) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("accept", "application/x-ndjson")
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.expect("body");
        if status != 200 {
            return (status, content_type, Vec::new());
        }
        assert!(body.is_empty() || body.ends_with('\n'), "{body}");
        let lines = body
            .lines()
            .map(|line| serde_json::from_str(line).expect("one event per line"))
            .collect();
        (status, content_type, lines)
    }
}

fn views(page: &Value) -> Vec<EventView> {
    serde_json::from_value(page["events"].clone()).expect("events")
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn only_admins_and_auditors_read_the_log(pool: PgPool) {
    let world = World::start(pool, false).await;
    let subject = world.subject(&[]).await;
    let id = world.notification(subject).await;
    let paths = [
        "/api/events".to_owned(),
        format!("/api/streams/notification-{id}/events"),
        format!("/api/notifications/{id}/history"),
    ];
    for path in &paths {
        for (role, expected) in [
            (Role::Admin, 200),
            (Role::Auditor, 200),
            (Role::Integrator, 403),
            (Role::Custodian, 403),
        ] {
            let token = world.token(role, &Uuid::now_v7().to_string());
            let (status, position, body) = world.get(path, &token).await;
            assert_eq!(status, expected, "{role} {path}: {body}");
            assert_eq!(position, None, "the log is not a read model");
            if expected == 403 {
                assert_eq!(body["type"], "/problems/forbidden");
            }
        }
        let (status, _, _) = world.get(path, "not-a-token").await;
        assert_eq!(status, 401, "{path}");
    }
    let integrator = world.token(Role::Integrator, "integration-1");
    let (status, _, _) = world.ndjson("/api/events", &integrator).await;
    assert_eq!(status, 403);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn the_global_log_pages_in_position_order(pool: PgPool) {
    let world = World::start(pool, false).await;
    let subject = world.subject(&[]).await;
    for _ in 0..3 {
        world.notification(subject).await;
    }
    let log = world.whole_log().await;
    // The subject's registration (assigning no custodian changes nothing), and two events per
    // notification.
    assert_eq!(log.len(), 7);
    let auditor = world.token(Role::Auditor, "auditor-1");

    let mut seen = Vec::new();
    let mut path = "/api/events?limit=3".to_owned();
    loop {
        let (status, _, page) = world.get(&path, &auditor).await;
        assert_eq!(status, 200, "{page}");
        let events = views(&page);
        assert!(events.len() <= 3);
        seen.extend(events);
        match page["next_after"].as_u64() {
            Some(after) => path = format!("/api/events?limit=3&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, log);

    let (_, _, page) = world.get("/api/events", &auditor).await;
    assert_eq!(views(&page), log);
    assert!(page["next_after"].is_null());
    let third = log[2].position;
    let sixth = log[5].position;
    let (_, _, page) = world
        .get(&format!("/api/events?after={third}&to={sixth}"), &auditor)
        .await;
    assert_eq!(views(&page), log[3..6]);
    assert!(page["next_after"].is_null(), "the range ends at `to`");
    let (_, _, page) = world
        .get(&format!("/api/events?after={}", log[6].position), &auditor)
        .await;
    assert_eq!(page, json!({ "events": [], "next_after": null }));

    let first = &page_of(&world, "/api/events?limit=1", &auditor).await[0];
    assert_eq!(first["type"], "SubjectRegistered");
    assert_eq!(first["stream"], format!("subject-{}", subject.0));
    for field in [
        "position",
        "version",
        "event_id",
        "schema_version",
        "data",
        "recorded_at",
    ] {
        assert!(!first[field].is_null(), "{field}: {first}");
    }
    assert!(first["metadata"]["correlation_id"].is_string(), "{first}");

    for bad in ["limit=0", "limit=1001", "after=-1", "after=x", "unknown=1"] {
        let (status, _, body) = world.get(&format!("/api/events?{bad}"), &auditor).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
}

async fn page_of(world: &World, path: &str, token: &str) -> Vec<Value> {
    let (status, _, page) = world.get(path, token).await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().expect("events").clone()
}

/// More events than one page of the store: the stream reads page after page, and ends at the
/// head of the log as the request arrived.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn the_log_streams_as_ndjson_across_store_pages(pool: PgPool) {
    let world = World::start(pool, false).await;
    let stream = StreamName::new("audit_test", Uuid::now_v7()).expect("stream");
    for batch in 0..3 {
        let events = (0..450)
            .map(|n| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "Ticked".to_owned(),
                schema_version: 1,
                data: json!({ "batch": batch, "n": n }),
                metadata: EventMetadata {
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                    actor: Some(Actor {
                        id: "clock".to_owned(),
                        role: "system".to_owned(),
                    }),
                    traceparent: None,
                },
                personal: None,
            })
            .collect();
        world
            .store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .expect("append");
    }
    let log = world.whole_log().await;
    assert_eq!(log.len(), 1350);
    let admin = world.token(Role::Admin, "admin");

    let (status, content_type, lines) = world.ndjson("/api/events", &admin).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/x-ndjson");
    assert_eq!(lines, log, "every event, in position order, once");

    let after = log[99].position;
    let (_, _, lines) = world
        .ndjson(&format!("/api/events?after={after}&limit=700"), &admin)
        .await;
    assert_eq!(lines, log[100..800]);
    let to = log[1199].position;
    let (_, _, lines) = world
        .ndjson(&format!("/api/events?after={after}&to={to}"), &admin)
        .await;
    assert_eq!(lines, log[100..1200]);
    let (_, _, lines) = world
        .ndjson(&format!("/api/events?after={}", log[1349].position), &admin)
        .await;
    assert!(lines.is_empty());

    // Without NDJSON in Accept, the same request answers one page of JSON.
    let (status, _, page) = world.get("/api/events?limit=1000", &admin).await;
    assert_eq!(status, 200);
    assert_eq!(views(&page), log[..1000]);
    assert_eq!(page["next_after"], log[999].position);
    let (status, _, _) = world.ndjson("/api/events?limit=0", &admin).await;
    assert_eq!(status, 422);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn one_stream_reads_in_version_order(pool: PgPool) {
    let world = World::start(pool, false).await;
    let subject = world.subject(&[]).await;
    let id = world.notification(subject).await;
    world.notification(subject).await;
    let admin = world.token(Role::Admin, "admin");
    let stream = format!("notification-{id}");
    let expected: Vec<EventView> = world
        .whole_log()
        .await
        .into_iter()
        .filter(|event| event.stream == stream)
        .collect();
    assert_eq!(expected.len(), 2);

    let (status, _, page) = world
        .get(&format!("/api/streams/{stream}/events"), &admin)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["stream"], stream);
    assert_eq!(views(&page), expected);
    assert!(page["next_from"].is_null());
    let (_, _, page) = world
        .get(&format!("/api/streams/{stream}/events?limit=1"), &admin)
        .await;
    assert_eq!(views(&page), expected[..1]);
    assert_eq!(page["next_from"], 1);
    let (status, _, page) = world
        .get(&format!("/api/streams/{stream}/events?from=1"), &admin)
        .await;
    assert_eq!(status, 200);
    assert_eq!(views(&page), expected[1..]);
    let (status, _, page) = world
        .get(&format!("/api/streams/{stream}/events?from=5"), &admin)
        .await;
    assert_eq!(
        (status, views(&page)),
        (200, vec![]),
        "past the end of a stream"
    );

    for (path, expected) in [
        ("/api/streams/Notification-1/events".to_owned(), 400),
        ("/api/streams/notification/events".to_owned(), 400),
        ("/api/streams/-1/events".to_owned(), 400),
        (
            format!("/api/streams/notification-{}/events", Uuid::now_v7()),
            404,
        ),
        (
            format!("/api/streams/notification-{}/events?from=3", Uuid::now_v7()),
            404,
        ),
        (format!("/api/streams/{stream}/events?limit=5000"), 422),
    ] {
        let (status, _, body) = world.get(&path, &admin).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_notification_history_shows_every_event_with_actor_and_status(pool: PgPool) {
    let world = World::start(pool, false).await;
    let subject = world.subject(&[]).await;
    let id = world.notification(subject).await;
    world
        .notification_command(
            id,
            NotificationCommand::StartAttempt {
                dispatcher: "dispatcher-7".to_owned(),
                at: Utc::now(),
            },
            "dispatcher-7",
        )
        .await;
    world
        .notification_command(
            id,
            NotificationCommand::RecordSent {
                provider_message_id: "SM0123".to_owned(),
                at: Utc::now(),
            },
            "dispatcher-7",
        )
        .await;
    let auditor = world.token(Role::Auditor, "auditor-1");

    let (status, _, history) = world
        .get(&format!("/api/notifications/{id}/history"), &auditor)
        .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["notification_id"], id.to_string());
    assert_eq!(history["status"], "sent");
    let events = history["events"].as_array().expect("events");
    let steps: Vec<(&str, &str)> = events
        .iter()
        .map(|event| {
            (
                event["type"].as_str().expect("type"),
                event["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("NotificationCreated", "created"),
            ("NotificationQueued", "queued"),
            ("DeliveryAttemptStarted", "processing"),
            ("NotificationSent", "sent"),
        ]
    );
    let sent = &events[3];
    assert_eq!(
        sent["actor"],
        json!({ "id": "dispatcher-7", "role": "system" })
    );
    assert_eq!(sent["data"]["provider_message_id"], "SM0123");
    assert_eq!(sent["version"], 3);
    assert!(sent["recorded_at"].is_string() && sent["correlation_id"].is_string());
    assert!(events[0]["actor"].is_null(), "created without an actor");
    let positions: Vec<u64> = events
        .iter()
        .map(|event| event["position"].as_u64().expect("position"))
        .collect();
    assert!(positions.is_sorted());

    let (status, _, body) = world
        .get(
            &format!("/api/notifications/{}/history", Uuid::now_v7()),
            &auditor,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = world
        .get("/api/notifications/not-a-uuid/history", &auditor)
        .await;
    assert_eq!(status, 400);
}
