//! Notification commands end to end: what is answered and what is appended.

use chrono::{Duration, Utc};
use keryu_domain::Role;
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::harness::Api;

const REQUEST_ID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_free_text_notification_is_accepted_on_both_paths(pool: PgPool) {
    let api = Api::start(pool).await;
    let subject = api.subject("Ana").await;
    let token = api.token(Role::Integrator, "integration-1");

    for path in ["/api/notifications", "/api/notifications/create/"] {
        let body = json!({ "subject_id": subject, "body": "Hola Ana" });
        let answer = api
            .send(
                Method::POST,
                path,
                Some(&token),
                Some(&body),
                &[("x-request-id", REQUEST_ID), ("traceparent", TRACEPARENT)],
            )
            .await;
        let accepted = answer.expect(202);
        let id = accepted["id"].as_str().expect("id");
        assert_eq!(accepted["status"], "queued");
        assert_eq!(
            answer.header("location"),
            Some(format!("/api/notifications/{id}").as_str())
        );
        let position: u64 = answer
            .header("keryu-position")
            .expect("position")
            .parse()
            .expect("number");

        let events = api.events().await;
        let last = events.last().expect("events");
        assert_eq!(last.position.0, position);
        assert_eq!(last.stream.as_str(), format!("notification-{id}"));
        assert_eq!(last.event_type, "NotificationQueued");
        let created = &events[events.len() - 2];
        assert_eq!(created.event_type, "NotificationCreated");
        assert_eq!(created.data["recipient"], "+14155238886");
        assert_eq!(created.data["content"]["body"], "Hola Ana");
        assert_eq!(created.data["retry_policy"]["max_attempts"], 3);
        assert_eq!(created.metadata.correlation_id.to_string(), REQUEST_ID);
        assert_eq!(created.metadata.traceparent.as_deref(), Some(TRACEPARENT));
        let actor = created.metadata.actor.as_ref().expect("actor");
        assert_eq!(
            (actor.id.as_str(), actor.role.as_str()),
            ("integration-1", "integrator")
        );
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_template_notification_renders_the_approved_version(pool: PgPool) {
    let api = Api::start(pool).await;
    let subject = api.subject("Ana").await;
    let template = api
        .approved_template(
            "notification_alert",
            "Alerta para {{1}}: {{2}}",
            json!({ "1": "subject name", "2": "alert type" }),
        )
        .await;
    let admin = api.admin().await;
    let variables = json!({ "1": "Ana", "2": "perdida" });

    for reference in [
        json!({ "name": "Notification_Alert" }),
        json!({ "id": template }),
    ] {
        let answer = api
            .post(
                "/api/notifications",
                &admin,
                json!({ "subject_id": subject, "template": reference, "variables": variables, "max_attempts": 5 }),
            )
            .await;
        answer.expect(202);
        let events = api.events().await;
        let created = &events[events.len() - 2];
        assert_eq!(created.data["content"]["kind"], "template");
        assert_eq!(
            created.data["content"]["rendered_body"],
            "Alerta para Ana: perdida"
        );
        assert_eq!(created.data["content"]["template_version"], 1);
        assert_eq!(created.data["retry_policy"]["max_attempts"], 5);
    }

    // Wrong variables, an unapproved template, or both body and template are refused.
    let draft = api
        .post(
            "/api/templates",
            &admin,
            json!({ "name": "draft_only", "content": "Hi", "language": "en" }),
        )
        .await;
    let draft_id = draft.expect(201)["id"].clone();
    for body in [
        json!({ "subject_id": subject, "template": { "id": template }, "variables": { "1": "Ana" } }),
        json!({ "subject_id": subject, "template": { "id": template }, "variables": { "1": "Ana", "2": "x", "3": "y" } }),
        json!({ "subject_id": subject, "template": { "id": draft_id } }),
        json!({ "subject_id": subject, "template": { "name": "unknown" } }),
        json!({ "subject_id": subject, "body": "Hi", "template": { "id": template } }),
        json!({ "subject_id": subject, "body": "Hi", "variables": { "1": "x" } }),
        json!({ "subject_id": subject }),
    ] {
        api.post("/api/notifications", &admin, body)
            .await
            .assert_problem(422, "validation");
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn schedule_retry_and_cancel_follow_the_lifecycle(pool: PgPool) {
    let api = Api::start(pool).await;
    let subject = api.subject("Ana").await;
    let admin = api.admin().await;

    let past = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    api.post(
        "/api/notifications",
        &admin,
        json!({ "subject_id": subject, "body": "x", "scheduled_for": past }),
    )
    .await
    .assert_problem(422, "validation");
    api.post(
        "/api/notifications",
        &admin,
        json!({ "subject_id": subject, "body": "x", "max_attempts": 11 }),
    )
    .await
    .assert_problem(422, "validation");

    let future = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let scheduled = api
        .post(
            "/api/notifications",
            &admin,
            json!({ "subject_id": subject, "body": "later", "scheduled_for": future }),
        )
        .await;
    assert_eq!(scheduled.expect(202)["status"], "scheduled");
    let id = scheduled.body["id"].as_str().expect("id").to_owned();

    // Only a failed notification can be retried.
    api.post(
        &format!("/api/notifications/{id}/retry/"),
        &admin,
        json!({}),
    )
    .await
    .assert_problem(409, "invalid-transition");

    let cancelled = api
        .send(
            Method::POST,
            &format!("/api/notifications/{id}/cancel"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(cancelled.expect(202)["status"], "cancelled");
    api.post(
        &format!("/api/notifications/{id}/cancel"),
        &admin,
        json!({ "reason": "again" }),
    )
    .await
    .assert_problem(409, "invalid-transition");

    let unknown = uuid::Uuid::now_v7();
    api.post(
        &format!("/api/notifications/{unknown}/retry"),
        &admin,
        json!({}),
    )
    .await
    .assert_problem(404, "not-found");
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_inactive_or_unknown_subject_cannot_be_notified(pool: PgPool) {
    let api = Api::start(pool).await;
    let subject = api.subject("Ana").await;
    let admin = api.admin().await;
    api.deactivate_subject(&subject).await;

    for subject_id in [subject, uuid::Uuid::now_v7().to_string()] {
        api.post(
            "/api/notifications",
            &admin,
            json!({ "subject_id": subject_id, "body": "x" }),
        )
        .await
        .assert_problem(422, "validation");
    }
}
