//! The whole role × endpoint matrix, over HTTP.

use keryu_command_api::rbac::{Action, allows};
use keryu_domain::Role;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::harness::Api;

/// The resources one role's requests act on, created by an admin.
struct World {
    subject: String,
    notification: String,
    template: String,
    alarm: String,
    other_custodian: String,
}

async fn world(api: &Api, role: Role, custodian: &str) -> World {
    let admin = api.admin().await;
    let subject = api.subject("Ana").await;
    api.put(
        &format!("/api/subjects/{subject}/custodians"),
        &admin,
        json!({ "custodian_ids": [custodian] }),
    )
    .await
    .expect(200);
    let notification = api
        .post(
            "/api/notifications",
            &admin,
            json!({ "subject_id": subject, "body": "Hola" }),
        )
        .await
        .expect(202)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let template = api
        .post(
            "/api/templates",
            &admin,
            json!({ "name": format!("template_{role}"), "content": "Hi", "language": "en" }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let alarm = api
        .post(
            "/api/alarms",
            &admin,
            json!({ "subject_id": subject, "situation": "test", "description": "drill" }),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let other_custodian = api
        .custodian(&format!("other-{role}@example.org"), "custodian")
        .await;
    World {
        subject,
        notification,
        template,
        alarm,
        other_custodian,
    }
}

/// Every command endpoint with a body that is valid for it, in an order that keeps the world
/// usable (deactivations last).
fn endpoints(
    world: &World,
    role: Role,
    custodian: &str,
) -> Vec<(Method, String, Option<Value>, Action)> {
    let World {
        subject: s,
        notification: n,
        template: t,
        alarm: a,
        other_custodian: c,
    } = world;
    let notify = json!({ "subject_id": s, "body": "Hola" });
    let subject = json!({ "name": "Luis", "phone": "+14155238886" });
    let content = json!({ "content": "Hello", "language": "en" });
    vec![
        (
            Method::POST,
            "/api/notifications".into(),
            Some(notify.clone()),
            Action::CreateNotification,
        ),
        (
            Method::POST,
            "/api/notifications/create/".into(),
            Some(notify),
            Action::CreateNotification,
        ),
        (
            Method::POST,
            format!("/api/notifications/{n}/retry"),
            None,
            Action::RetryNotification,
        ),
        (
            Method::POST,
            format!("/api/notifications/{n}/retry/"),
            None,
            Action::RetryNotification,
        ),
        (
            Method::POST,
            format!("/api/notifications/{n}/cancel"),
            None,
            Action::CancelNotification,
        ),
        (
            Method::POST,
            "/api/subjects".into(),
            Some(subject.clone()),
            Action::CreateSubject,
        ),
        (
            Method::POST,
            "/api/subjects/create/".into(),
            Some(subject),
            Action::CreateSubject,
        ),
        (
            Method::PUT,
            format!("/api/subjects/{s}"),
            Some(json!({ "name": "Ana B" })),
            Action::UpdateSubject,
        ),
        (
            Method::PUT,
            format!("/api/subjects/{s}/update/"),
            Some(json!({ "name": "Ana C" })),
            Action::UpdateSubject,
        ),
        (
            Method::PUT,
            format!("/api/subjects/{s}/custodians"),
            Some(json!({ "custodian_ids": [custodian] })),
            Action::AssignCustodians,
        ),
        (
            Method::POST,
            "/api/templates".into(),
            Some(json!({ "name": format!("new_{role}"), "content": "Hi", "language": "en" })),
            Action::EditTemplate,
        ),
        (
            Method::PUT,
            format!("/api/templates/{t}"),
            Some(content),
            Action::EditTemplate,
        ),
        (
            Method::POST,
            format!("/api/templates/{t}/submit"),
            None,
            Action::EditTemplate,
        ),
        (
            Method::POST,
            format!("/api/templates/{t}/reject"),
            Some(json!({ "reason": "no" })),
            Action::ReviewTemplate,
        ),
        (
            Method::POST,
            format!("/api/templates/{t}/approve"),
            None,
            Action::ReviewTemplate,
        ),
        (
            Method::POST,
            "/api/alarms".into(),
            Some(json!({ "subject_id": s, "situation": "contact", "description": "found" })),
            Action::RaiseAlarm,
        ),
        (
            Method::POST,
            format!("/api/alarms/{a}/acknowledge"),
            None,
            Action::HandleAlarm,
        ),
        (
            Method::POST,
            format!("/api/alarms/{a}/resolve"),
            None,
            Action::HandleAlarm,
        ),
        (
            Method::POST,
            "/api/custodians".into(),
            Some(
                json!({ "email": format!("new-{role}@example.org"), "name": "N", "role": "auditor", "password": "correct horse battery" }),
            ),
            Action::ManageCustodians,
        ),
        (
            Method::PUT,
            format!("/api/custodians/{c}/role"),
            Some(json!({ "role": "integrator" })),
            Action::ManageCustodians,
        ),
        (
            Method::DELETE,
            format!("/api/custodians/{c}"),
            None,
            Action::ManageCustodians,
        ),
        (
            Method::DELETE,
            format!("/api/subjects/{s}"),
            None,
            Action::DeactivateSubject,
        ),
        (
            Method::DELETE,
            format!("/api/subjects/{s}/delete/"),
            None,
            Action::DeactivateSubject,
        ),
        // Last: nothing applies to an erased subject.
        (
            Method::POST,
            format!("/api/subjects/{s}/erase"),
            Some(json!({})),
            Action::EraseSubject,
        ),
    ]
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn every_role_may_do_exactly_what_the_policy_says(pool: PgPool) {
    let api = Api::start(pool).await;
    let custodian = api.custodian("carla@example.org", "custodian").await;
    let mut covered = std::collections::HashSet::new();
    for role in Role::ALL {
        let world = world(&api, role, &custodian).await;
        let subject = if role == Role::Custodian {
            custodian.clone()
        } else {
            format!("{role}-1")
        };
        let token = api.token(role, &subject);
        for (method, path, body, action) in endpoints(&world, role, &custodian) {
            covered.insert(action);
            let anonymous = api
                .send(method.clone(), &path, None, body.as_ref(), &[])
                .await;
            anonymous.assert_problem(401, "unauthenticated");

            let answer = api
                .send(method.clone(), &path, Some(&token), body.as_ref(), &[])
                .await;
            assert!(
                !answer.status.is_server_error(),
                "{role} {method} {path}: {answer:?}"
            );
            if allows(role, action) {
                assert_ne!(
                    answer.status.as_u16(),
                    403,
                    "{role} refused {method} {path}: {answer:?}"
                );
                assert_ne!(answer.status.as_u16(), 401, "{role} {method} {path}");
            } else {
                answer.assert_problem(403, "forbidden");
            }
        }
    }
    assert_eq!(
        covered.len(),
        Action::ALL.len(),
        "an action has no endpoint in the matrix"
    );
}

/// Custodians act only on subjects assigned to them; others look as if they did not exist.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn custodians_only_reach_their_own_subjects(pool: PgPool) {
    let api = Api::start(pool).await;
    let assigned = api.custodian("carla@example.org", "custodian").await;
    let stranger = api.custodian("sam@example.org", "custodian").await;
    let world = world(&api, Role::Custodian, &assigned).await;
    let stranger_token = api.token(Role::Custodian, &stranger);
    let assigned_token = api.token(Role::Custodian, &assigned);
    let World {
        subject,
        notification,
        alarm,
        ..
    } = &world;

    let notify = json!({ "subject_id": subject, "body": "Hola" });
    api.post("/api/notifications", &stranger_token, notify.clone())
        .await
        .assert_problem(422, "validation");
    api.post("/api/notifications", &assigned_token, notify)
        .await
        .expect(202);
    let raise = json!({ "subject_id": subject, "situation": "lost", "description": "x" });
    api.post("/api/alarms", &stranger_token, raise.clone())
        .await
        .assert_problem(422, "validation");
    api.post("/api/alarms", &assigned_token, raise)
        .await
        .expect(201);
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/api/subjects/{subject}"),
            Some(json!({ "name": "X" })),
        ),
        (
            Method::POST,
            format!("/api/notifications/{notification}/cancel"),
            None,
        ),
        (
            Method::POST,
            format!("/api/notifications/{notification}/retry"),
            None,
        ),
        (
            Method::POST,
            format!("/api/alarms/{alarm}/acknowledge"),
            None,
        ),
    ] {
        api.send(method, &path, Some(&stranger_token), body.as_ref(), &[])
            .await
            .assert_problem(404, "not-found");
    }
    api.send(
        Method::POST,
        &format!("/api/alarms/{alarm}/acknowledge"),
        Some(&assigned_token),
        None,
        &[],
    )
    .await
    .expect(200);
}
