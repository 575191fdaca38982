//! The alarm queries: list with filters and paging, detail with the notifications an alarm
//! caused, and custodian scoping.

use std::collections::HashSet;

use chrono::Utc;
use keryu_domain::alarm::{Alarm, AlarmCommand, Situation};
use keryu_domain::notification::{FailureKind, Notification, NotificationCommand};
use keryu_domain::{AlarmId, CustodianId, NotificationId, Role, SubjectId};
use keryu_infra::event_store::{EventMetadata, StreamName};
use keryu_infra::repository;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{World, ids};

impl World {
    pub(super) async fn alarm(&self, subject_id: SubjectId) -> AlarmId {
        let id = AlarmId(Uuid::now_v7());
        let raise = AlarmCommand::Raise {
            id,
            subject_id,
            situation: Situation::Lost,
            description: "Not home since noon".to_owned(),
            location: None,
            raised_by: "integration-1".to_owned(),
            at: Utc::now(),
        };
        self.alarm_command(id, raise).await;
        id
    }

    pub(super) async fn acknowledge(&self, id: AlarmId) {
        let acknowledge = AlarmCommand::Acknowledge {
            by: "carla".to_owned(),
            at: Utc::now(),
        };
        self.alarm_command(id, acknowledge).await;
    }

    pub(super) async fn alarm_command(&self, id: AlarmId, command: AlarmCommand) {
        let stream = StreamName::of::<Alarm>(id).expect("stream");
        repository::execute::<Alarm>(&self.store, &stream, command, &EventMetadata::default(), 3)
            .await
            .expect("alarm command");
    }

    async fn fail_for_good(&self, id: NotificationId) {
        let stream = StreamName::of::<Notification>(id).expect("stream");
        let commands = [
            NotificationCommand::StartAttempt {
                dispatcher: "d1".to_owned(),
                at: Utc::now(),
            },
            NotificationCommand::RecordAttemptFailure {
                error_code: Some(63024),
                error_message: "invalid recipient".to_owned(),
                kind: FailureKind::Permanent,
                random_unit: 0.0,
                at: Utc::now(),
            },
        ];
        for command in commands {
            repository::execute::<Notification>(
                &self.store,
                &stream,
                command,
                &EventMetadata::default(),
                3,
            )
            .await
            .expect("notification command");
        }
    }

    /// Waits until the alarms read model has applied everything appended so far.
    async fn alarms_settled(&self, token: &str) {
        let head = self.head().await;
        let (status, position, _) = self
            .get(&format!("/api/alarms?min_position={head}&limit=1"), token)
            .await;
        assert_eq!(status, 200);
        assert!(
            position.is_some_and(|p| p >= head),
            "the alarms read model did not reach {head}"
        );
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn alarms_are_paged_filtered_and_counted(pool: PgPool) {
    let world = World::start(pool, true).await;
    let admin = world.token(Role::Admin, "admin");
    let (a, b) = (world.subject(&[]).await, world.subject(&[]).await);
    let mut raised = Vec::new();
    for _ in 0..6 {
        raised.push(world.alarm(a).await);
    }
    let in_b = world.alarm(b).await;
    world.acknowledge(in_b).await;
    let busy = raised[0];
    world.notification_caused_by(a, Some(busy)).await;
    let failed = world.notification_caused_by(a, Some(busy)).await;
    world.fail_for_good(failed).await;
    world.alarms_settled(&admin).await;

    let mut seen = Vec::new();
    let mut path = "/api/alarms/list/?limit=3".to_owned();
    loop {
        let (status, position, page) = world.get(&path, &admin).await;
        assert_eq!(status, 200, "{page}");
        assert!(position.is_some());
        seen.extend(ids(&page));
        // Newer alarms arrive between pages; they sort before the cursor.
        world.alarm(b).await;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/alarms?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let expected: HashSet<String> = raised
        .iter()
        .chain([&in_b])
        .map(|id| id.0.to_string())
        .collect();
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    let mut newest_first = seen.clone();
    newest_first.sort_by(|x, y| y.cmp(x));
    assert_eq!(seen, newest_first, "alarm ids are v7: newest first");

    world.alarms_settled(&admin).await;
    let (_, _, page) = world
        .get(&format!("/api/alarms?subject_id={}&limit=500", a.0), &admin)
        .await;
    let in_a = ids(&page);
    assert_eq!(in_a.len(), 6);
    let busy_item = page["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["id"] == busy.0.to_string()))
        .expect("the alarm with notifications");
    assert_eq!(
        (
            &busy_item["notifications_by_status"],
            &busy_item["notifications_total"]
        ),
        (&json!({ "failed": 1, "queued": 1 }), &json!(2))
    );
    assert_eq!(page["items"][0]["notifications_by_status"], json!({}));
    assert_eq!(page["items"][0]["notifications_total"], 0);
    let (_, _, page) = world.get("/api/alarms?status=acknowledged", &admin).await;
    assert_eq!(ids(&page), [in_b.0.to_string()]);
    assert_eq!(page["items"][0]["acknowledged_by"], "carla");
    let (_, _, page) = world.get("/api/alarms?status=resolved", &admin).await;
    assert!(ids(&page).is_empty());

    for bad in [
        "status=lost",
        "limit=0",
        "limit=501",
        "cursor=nonsense",
        "colour=red",
        "subject_id=x",
    ] {
        let (status, _, problem) = world.get(&format!("/api/alarms?{bad}"), &admin).await;
        assert_eq!(status, 422, "{bad}: {problem}");
        assert_eq!(problem["type"], "/problems/validation");
    }
    let (status, _, _) = world.get("/api/alarms", "not-a-token").await;
    assert_eq!(status, 401);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_alarm_shows_the_notifications_it_caused(pool: PgPool) {
    let world = World::start(pool, true).await;
    let auditor = world.token(Role::Auditor, "auditor-1");
    let subject = world.subject(&[]).await;
    let alarm = world.alarm(subject).await;
    let queued = world.notification_caused_by(subject, Some(alarm)).await;
    let failed = world.notification_caused_by(subject, Some(alarm)).await;
    world.fail_for_good(failed).await;
    world.notification(subject).await;
    let head = world.head().await;

    let (status, position, detail) = world
        .get(
            &format!("/api/alarms/{}?min_position={head}", alarm.0),
            &auditor,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    assert!(position.is_some_and(|p| p >= head));
    assert_eq!(
        (
            detail["id"].as_str(),
            detail["subject_id"].as_str(),
            detail["situation"].as_str(),
            detail["status"].as_str(),
            detail["location"].is_null(),
        ),
        (
            Some(alarm.0.to_string().as_str()),
            Some(subject.0.to_string().as_str()),
            Some("lost"),
            Some("raised"),
            true
        )
    );
    assert_eq!(
        detail["notifications_by_status"],
        json!({ "failed": 1, "queued": 1 })
    );
    assert_eq!(detail["notifications_total"], 2);
    let shown: Vec<(Value, Value, Value, Value)> = detail["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|n| {
            (
                n["id"].clone(),
                n["status"].clone(),
                n["total_attempts"].clone(),
                n["recipient"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (
                json!(queued.to_string()),
                json!("queued"),
                json!(0),
                json!("+14155238886")
            ),
            (
                json!(failed.to_string()),
                json!("failed"),
                json!(1),
                json!("+14155238886")
            ),
        ]
    );
    assert_eq!(
        detail["notifications"][1]["last_error_message"],
        "invalid recipient"
    );
    assert!(detail["notifications"][1]["failed_at"].is_string());

    // The notifications list filters by alarm and finds the same notifications.
    world.settled(&auditor).await;
    let (status, _, page) = world
        .get(
            &format!("/api/notifications?alarm_id={}", alarm.0),
            &auditor,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), [failed.to_string(), queued.to_string()]);

    let (status, _, problem) = world
        .get(&format!("/api/alarms/{}", Uuid::now_v7()), &auditor)
        .await;
    assert_eq!(
        (status, &problem["type"]),
        (404, &json!("/problems/not-found"))
    );
    let (status, _, _) = world.get("/api/alarms/not-an-id", &auditor).await;
    assert_eq!(status, 400);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn custodians_see_only_alarms_of_their_subjects(pool: PgPool) {
    let world = World::start(pool, true).await;
    let carla = CustodianId(Uuid::now_v7());
    let theirs = world.subject(&[carla]).await;
    let others = world.subject(&[]).await;
    let visible = world.alarm(theirs).await;
    let hidden = world.alarm(others).await;
    world.notification_caused_by(others, Some(hidden)).await;
    let admin = world.token(Role::Admin, "admin");
    world.alarms_settled(&admin).await;
    world.settled(&admin).await;

    let custodian = world.token(Role::Custodian, &carla.to_string());
    let (_, _, page) = world.get("/api/alarms", &custodian).await;
    assert_eq!(ids(&page), [visible.0.to_string()]);
    let (_, _, page) = world
        .get(&format!("/api/alarms?subject_id={}", others.0), &custodian)
        .await;
    assert!(ids(&page).is_empty());
    let (status, _, _) = world
        .get(&format!("/api/alarms/{}", hidden.0), &custodian)
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = world
        .get(&format!("/api/alarms/{}", visible.0), &custodian)
        .await;
    assert_eq!(status, 200);
    let (_, _, page) = world
        .get(
            &format!("/api/notifications?alarm_id={}", hidden.0),
            &custodian,
        )
        .await;
    assert!(ids(&page).is_empty(), "{page}");

    let stranger = world.token(Role::Custodian, &Uuid::now_v7().to_string());
    let (status, _, page) = world.get("/api/alarms", &stranger).await;
    assert_eq!((status, ids(&page).len()), (200, 0));
    let (status, _, _) = world
        .get(&format!("/api/alarms/{}", visible.0), &stranger)
        .await;
    assert_eq!(status, 404);

    let (_, _, page) = world.get("/api/alarms", &admin).await;
    assert_eq!(ids(&page).len(), 2);
}
