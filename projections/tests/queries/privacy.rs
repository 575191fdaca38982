//! What the read side shows of a person: found by number through a fingerprint, and nothing
//! personal once they are erased, live or rebuilt.

use chrono::Utc;
use keryu_domain::alarm::{AlarmCommand, Location, Situation};
use keryu_domain::subject::{Subject, SubjectCommand};
use keryu_domain::{AlarmId, Role, SubjectId};
use keryu_infra::event_store::{EventMetadata, StreamName};
use keryu_infra::repository;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::{World, ids, phones};

impl World {
    /// Erases the subject as `POST /api/subjects/{id}/erase` does: the event, then the key.
    pub(super) async fn erase(&self, id: SubjectId) {
        let stream = StreamName::of::<Subject>(id).expect("stream");
        let erase = SubjectCommand::Erase { at: Utc::now() };
        repository::execute::<Subject>(&self.store, &stream, erase, &EventMetadata::default(), 3)
            .await
            .expect("erase");
        self.store
            .vault()
            .erase(id.0)
            .await
            .expect("destroy the key");
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn subjects_are_found_by_number_through_its_fingerprint_only(pool: PgPool) {
    let world = World::start(pool.clone(), true).await;
    let admin = world.token(Role::Admin, "admin");
    let found = world.subject(&[]).await;
    world.settled(&admin).await;

    let (status, _, page) = world
        .get("/api/subjects?phone=%2B14155238886", &admin)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), [found.0.to_string()]);
    let (_, _, page) = world
        .get("/api/subjects?phone=%2B14155238887", &admin)
        .await;
    assert!(ids(&page).is_empty(), "{page}");
    let (status, _, problem) = world.get("/api/subjects?phone=12345", &admin).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "/problems/validation");

    // The read model indexes the keyed fingerprint, not the number.
    let fingerprint: String = sqlx::query_scalar(
        "SELECT phone_fingerprint FROM projection_subjects.subjects WHERE id = $1",
    )
    .bind(found.0)
    .fetch_one(&pool)
    .await
    .expect("fingerprint");
    assert_eq!(
        fingerprint,
        phones().fingerprint(&"+14155238886".parse().expect("phone"))
    );
    assert!(!fingerprint.contains("4155238886"));
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_erased_subject_shows_nothing_personal_on_any_read_model(pool: PgPool) {
    let world = World::start(pool, true).await;
    let admin = world.token(Role::Admin, "admin");
    let subject = world.subject(&[]).await;
    let notification = world.notification(subject).await;
    let alarm = AlarmId(Uuid::now_v7());
    let raise = AlarmCommand::Raise {
        id: alarm,
        subject_id: subject,
        situation: Situation::Lost,
        description: "Not home since noon".to_owned(),
        location: Some(Location {
            latitude: 40.4168,
            longitude: -3.7038,
        }),
        raised_by: "integration-1".to_owned(),
        at: Utc::now(),
    };
    world.alarm_command(alarm, raise).await;
    world.notification_caused_by(subject, Some(alarm)).await;
    let kept = world.subject(&[]).await;
    world.settled(&admin).await;
    let (_, _, view) = world.get(&format!("/api/alarms/{}", alarm.0), &admin).await;
    assert_eq!(
        view["location"]["latitude"], 40.4168,
        "before the erasure: {view}"
    );
    world.erase(subject).await;
    world.settled(&admin).await;

    let (status, _, view) = world
        .get(&format!("/api/subjects/{}", subject.0), &admin)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["erased"], true);
    assert_eq!(view["active"], false);
    for field in ["name", "phone", "preferences"] {
        assert_eq!(view[field], Value::Null, "{field}: {view}");
    }
    let (_, _, view) = world
        .get(&format!("/api/subjects/{}", kept.0), &admin)
        .await;
    assert_eq!(
        (&view["erased"], &view["name"]),
        (&Value::Bool(false), &Value::from("Ana"))
    );

    let (_, _, view) = world
        .get(&format!("/api/notifications/{}", notification.0), &admin)
        .await;
    assert_eq!(view["recipient"], Value::Null, "{view}");
    assert_eq!(view["subject_id"], subject.0.to_string());
    let (_, _, view) = world.get(&format!("/api/alarms/{}", alarm.0), &admin).await;
    assert_eq!(view["notifications"][0]["recipient"], Value::Null, "{view}");
    assert_eq!(view["location"], Value::Null, "{view}");
    let (_, _, page) = world
        .get("/api/subjects?phone=%2B14155238886", &admin)
        .await;
    assert_eq!(
        ids(&page),
        [kept.0.to_string()],
        "the erased subject is not found by number"
    );
}
