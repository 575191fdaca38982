//! Personal data: sealed in the log, readable through the store, gone after an erasure.

use keryu_domain::Role;
use keryu_infra::postgres::{ChainReport, verify_chain};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::harness::Api;

const NAME: &str = "Ana Erasable";
const FIRST_PHONE: &str = "+34611222333";
const SECOND_PHONE: &str = "+34699888777";
const PREFERENCE: &str = "quiet after nine";
const BODY: &str = "Hola Ana, your appointment is tomorrow at ten";
const CUSTODIAN_PHONE: &str = "+34677000111";

/// Every row of every column of the events table as PostgreSQL prints it: what a database dump
/// or a curious DBA sees.
async fn raw_dump(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT coalesce(string_agg(e::text, E'\\n'), '') FROM events e")
        .fetch_one(pool)
        .await
        .expect("dump")
}

/// The data of the only event of `event_type`, as the store hands it out.
fn data_of(events: &[keryu_infra::event_store::RecordedEvent], event_type: &str) -> Value {
    let mut matching = events.iter().filter(|event| event.event_type == event_type);
    let event = matching.next().expect("an event of the type");
    assert!(matching.next().is_none(), "one {event_type}");
    event.data.clone()
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn numbers_and_texts_are_sealed_in_the_log_and_erasure_forgets_them(pool: PgPool) {
    let api = Api::start(pool.clone()).await;
    let admin = api.admin().await;
    let integrator = api.token(Role::Integrator, "integration-1");
    let subject = api
        .post(
            "/api/subjects",
            &integrator,
            json!({ "name": NAME, "phone": FIRST_PHONE, "preferences": { "note": PREFERENCE } }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    api.put(
        &format!("/api/subjects/{subject}"),
        &integrator,
        json!({ "phone": SECOND_PHONE }),
    )
    .await
    .expect(200);
    api.post(
        "/api/notifications",
        &integrator,
        json!({ "subject_id": subject, "body": BODY }),
    )
    .await
    .expect(202);

    api.post(
        "/api/custodians",
        &admin,
        json!({ "email": "carla@example.org", "name": "Carla", "role": "custodian",
                "password": "correct horse battery", "phone": CUSTODIAN_PHONE }),
    )
    .await
    .expect(201);

    let dump = raw_dump(&pool).await;
    assert!(dump.contains("SubjectRegistered") && dump.contains("$personal"));
    for secret in [
        NAME,
        FIRST_PHONE,
        SECOND_PHONE,
        PREFERENCE,
        BODY,
        "34611222333",
        CUSTODIAN_PHONE,
    ] {
        assert!(!dump.contains(secret), "{secret} is in clear in the log");
    }
    let events = api.events().await;
    let registered = data_of(&events, "SubjectRegistered");
    assert_eq!(registered["name"], NAME);
    assert_eq!(registered["phone"], FIRST_PHONE);
    assert_eq!(registered["preferences"]["note"], PREFERENCE);
    assert_eq!(data_of(&events, "SubjectUpdated")["phone"], SECOND_PHONE);
    let created = data_of(&events, "NotificationCreated");
    assert_eq!(created["recipient"], SECOND_PHONE);
    assert_eq!(created["content"]["body"], BODY);
    assert_eq!(
        data_of(&events, "CustodianCreated")["phone"],
        CUSTODIAN_PHONE
    );

    let erase = format!("/api/subjects/{subject}/erase");
    api.post(&erase, &integrator, json!({}))
        .await
        .assert_problem(403, "forbidden");
    api.post(&erase, &admin, json!({})).await.expect(200);
    // Repeating it is harmless.
    api.post(&erase, &admin, json!({})).await.expect(200);

    let events = api.events().await;
    assert_eq!(
        events
            .iter()
            .filter(|event| event.event_type == "SubjectErased")
            .count(),
        1
    );
    let registered = data_of(&events, "SubjectRegistered");
    assert_eq!(
        (
            &registered["name"],
            &registered["phone"],
            &registered["preferences"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let updated = data_of(&events, "SubjectUpdated");
    assert_eq!(updated["phone"], Value::Null);
    let created = data_of(&events, "NotificationCreated");
    assert_eq!(
        (&created["recipient"], &created["content"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(created["subject_id"], subject.as_str());
    // Another person's data is theirs: the subject's erasure does not reach it.
    assert_eq!(
        data_of(&events, "CustodianCreated")["phone"],
        CUSTODIAN_PHONE
    );

    // The log itself did not change: every link of the chain still holds.
    let report = verify_chain(&pool, |_, _| {}).await.expect("verify");
    assert!(matches!(report, ChainReport::Intact { .. }), "{report:?}");
    let keys: (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(wrapped_key) FROM data_keys WHERE owner_id = $1::uuid",
    )
    .bind(&subject)
    .fetch_one(&pool)
    .await
    .expect("keys");
    assert_eq!(
        keys,
        (1, 0),
        "the subject's key row remains, without its key"
    );

    // An erased subject takes no more commands and receives nothing more.
    api.put(
        &format!("/api/subjects/{subject}"),
        &admin,
        json!({ "name": "Back again" }),
    )
    .await
    .assert_problem(409, "invalid-transition");
    let refused = api
        .post(
            "/api/notifications",
            &integrator,
            json!({ "subject_id": subject, "body": BODY }),
        )
        .await;
    assert!(refused.status.is_client_error(), "{refused:?}");
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn only_an_existing_subject_can_be_erased(pool: PgPool) {
    let api = Api::start(pool).await;
    let admin = api.admin().await;
    api.post(
        &format!("/api/subjects/{}/erase", uuid::Uuid::now_v7()),
        &admin,
        json!({}),
    )
    .await
    .assert_problem(404, "not-found");
}
