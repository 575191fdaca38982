//! Notifications decided from a subject cached by one API process while another process changes
//! the subject: the store's precondition on the subject's stream, not the cache, decides.
//!
//! Two routers over one database stand for two replicas of the command API, each with its own
//! cache. The change goes through the second, so the first's cache still holds the old subject
//! when it is asked for the next notification.

use keryu_domain::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::harness::Api;

const NEW_PHONE: &str = "+34600000001";

/// Two replicas, a subject registered, and one notification through the first (which caches
/// the subject); returns them and the subject's id.
async fn cached_subject(pool: PgPool) -> (Api, Api, String) {
    let (api, other) = (Api::start(pool.clone()).await, Api::start(pool).await);
    let subject = api.subject("Ana").await;
    notify(&api, &subject).await.expect(202);
    (api, other, subject)
}

async fn notify(api: &Api, subject: &str) -> crate::harness::Answer {
    let integrator = api.token(Role::Integrator, "integration-1");
    api.post(
        "/api/notifications",
        &integrator,
        json!({ "subject_id": subject, "body": "Hola Ana" }),
    )
    .await
}

/// The data of every `NotificationCreated` in the log, in order.
async fn created(api: &Api) -> Vec<Value> {
    api.events()
        .await
        .into_iter()
        .filter(|event| event.event_type == "NotificationCreated")
        .map(|event| event.data)
        .collect()
}

/// `api`, whose cache still holds `subject` as it was at the first notification, refuses a
/// second one, and nothing more was created.
async fn assert_not_notified(api: &Api, subject: &str) {
    notify(api, subject).await.assert_problem(422, "validation");
    assert_eq!(created(api).await.len(), 1, "only the first notification");
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_subject_deactivated_elsewhere_is_not_notified(pool: PgPool) {
    let (api, other, subject) = cached_subject(pool).await;
    other.deactivate_subject(&subject).await;
    assert_not_notified(&api, &subject).await;
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_subject_erased_elsewhere_is_not_notified(pool: PgPool) {
    let (api, other, subject) = cached_subject(pool).await;
    let admin = other.admin().await;
    other
        .post(&format!("/api/subjects/{subject}/erase"), &admin, json!({}))
        .await
        .expect(200);
    assert_not_notified(&api, &subject).await;
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_number_changed_elsewhere_is_the_one_notified(pool: PgPool) {
    let (api, other, subject) = cached_subject(pool).await;
    let admin = other.admin().await;
    other
        .put(
            &format!("/api/subjects/{subject}"),
            &admin,
            json!({ "phone": NEW_PHONE }),
        )
        .await
        .expect(200);

    notify(&api, &subject).await.expect(202);
    let created = created(&api).await;
    assert_eq!(created.len(), 2);
    assert_eq!(created[1]["recipient"], NEW_PHONE);
}

/// A cached subject that would refuse the caller is read again before refusing: a custodian
/// assigned elsewhere since the subject was cached may notify it.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_custodian_assigned_elsewhere_may_notify(pool: PgPool) {
    let (api, other, subject) = cached_subject(pool).await;
    let custodian = other.custodian("carla@example.org", "custodian").await;
    let admin = other.admin().await;
    other
        .put(
            &format!("/api/subjects/{subject}/custodians"),
            &admin,
            json!({ "custodian_ids": [custodian] }),
        )
        .await
        .expect(200);

    let token = api.token(Role::Custodian, &custodian);
    api.post(
        "/api/notifications",
        &token,
        json!({ "subject_id": subject, "body": "Hola Ana" }),
    )
    .await
    .expect(202);
}
