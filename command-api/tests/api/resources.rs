//! Subjects, templates, alarms and custodians through their endpoints.

use keryu_domain::Role;
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::harness::Api;

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn subjects_are_created_updated_assigned_and_deactivated_on_both_paths(pool: PgPool) {
    let api = Api::start(pool).await;
    let admin = api.admin().await;
    let created = api
        .post(
            "/api/subjects/create/",
            &admin,
            json!({ "name": "Ana", "phone": "+14155238886", "preferences": { "language": "es" } }),
        )
        .await;
    let id = created.expect(201)["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/subjects/{id}").as_str())
    );

    api.put(
        &format!("/api/subjects/{id}/update/"),
        &admin,
        json!({ "name": "Ana María" }),
    )
    .await
    .expect(200);
    api.put(
        &format!("/api/subjects/{id}"),
        &admin,
        json!({ "phone": "+34600111222" }),
    )
    .await
    .expect(200);
    // An update that changes nothing appends nothing and carries no position.
    let unchanged = api
        .put(
            &format!("/api/subjects/{id}"),
            &admin,
            json!({ "name": "Ana María" }),
        )
        .await;
    unchanged.expect(200);
    assert_eq!(unchanged.header("keryu-position"), None);

    let custodian = api.custodian("carla@example.org", "custodian").await;
    let assigned = api
        .put(
            &format!("/api/subjects/{id}/custodians"),
            &admin,
            json!({ "custodian_ids": [custodian] }),
        )
        .await;
    assert_eq!(assigned.expect(200)["custodian_ids"], json!([custodian]));
    api.put(
        &format!("/api/subjects/{id}/custodians"),
        &admin,
        json!({ "custodian_ids": [uuid::Uuid::now_v7()] }),
    )
    .await
    .assert_problem(422, "validation");

    let deleted = api
        .send(
            Method::DELETE,
            &format!("/api/subjects/{id}/delete/"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(deleted.expect(200)["active"], false);
    api.put(
        &format!("/api/subjects/{id}"),
        &admin,
        json!({ "name": "Again" }),
    )
    .await
    .assert_problem(409, "invalid-transition");

    let types: Vec<String> = api
        .events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| t.starts_with("Subject"))
            .collect::<Vec<_>>(),
        [
            "SubjectRegistered",
            "SubjectUpdated",
            "SubjectUpdated",
            "SubjectCustodiansAssigned",
            "SubjectDeactivated"
        ]
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn templates_are_reviewed_by_admins_and_edited_into_new_versions(pool: PgPool) {
    let api = Api::start(pool).await;
    let admin = api.admin().await;
    let integrator = api.token(Role::Integrator, "integration-1");
    let created = api
        .post(
            "/api/templates",
            &integrator,
            json!({ "name": "welcome", "content": "Hola {{1}}", "variables": { "1": "name" }, "language": "es" }),
        )
        .await;
    let id = created.expect(201)["id"].as_str().expect("id").to_owned();
    api.post(
        "/api/templates",
        &integrator,
        json!({ "name": " Welcome ", "content": "x", "language": "es" }),
    )
    .await
    .assert_problem(409, "conflict");
    api.post("/api/templates", &integrator, json!({ "name": "bad", "content": "Hola {{2}}", "variables": { "2": "x" }, "language": "es" }))
        .await
        .assert_problem(422, "validation");

    api.post(
        &format!("/api/templates/{id}/submit"),
        &integrator,
        json!({}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/api/templates/{id}/approve"),
        &integrator,
        json!({}),
    )
    .await
    .assert_problem(403, "forbidden");
    api.post(
        &format!("/api/templates/{id}/reject"),
        &admin,
        json!({ "reason": "tone" }),
    )
    .await
    .expect(200);
    api.put(
        &format!("/api/templates/{id}"),
        &integrator,
        json!({ "content": "Hola, {{1}}", "variables": { "1": "name" }, "language": "es" }),
    )
    .await
    .expect(200);
    api.post(
        &format!("/api/templates/{id}/submit"),
        &integrator,
        json!({}),
    )
    .await
    .expect(200);
    let approved = api
        .post(&format!("/api/templates/{id}/approve"), &admin, json!({}))
        .await;
    assert_eq!(approved.expect(200)["status"], "approved");

    let edited = api
        .put(
            &format!("/api/templates/{id}"),
            &integrator,
            json!({ "content": "Buenas, {{1}}", "variables": { "1": "name" }, "language": "es" }),
        )
        .await;
    let edited = edited.expect(200);
    assert_eq!(
        (edited["version"].as_u64(), edited["status"].as_str()),
        (Some(2), Some("draft"))
    );
    assert_eq!(edited["approved_version"], 1);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn alarms_are_raised_acknowledged_and_resolved(pool: PgPool) {
    let api = Api::start(pool).await;
    let subject = api.subject("Ana").await;
    let integrator = api.token(Role::Integrator, "integration-1");
    let raised = api
        .post(
            "/api/alarms",
            &integrator,
            json!({ "subject_id": subject, "situation": "lost", "description": "Did not come home", "location": { "latitude": 40.41, "longitude": -3.7 } }),
        )
        .await;
    let id = raised.expect(201)["id"].as_str().expect("id").to_owned();
    assert_eq!(raised.body["status"], "raised");
    api.post("/api/alarms", &integrator, json!({ "subject_id": subject, "situation": "lost", "description": "x", "location": { "latitude": 100, "longitude": 0 } }))
        .await
        .assert_problem(422, "validation");
    api.post(
        "/api/alarms",
        &integrator,
        json!({ "subject_id": subject, "situation": "flood", "description": "x" }),
    )
    .await
    .assert_problem(422, "validation");

    let acknowledged = api
        .send(
            Method::POST,
            &format!("/api/alarms/{id}/acknowledge"),
            Some(&integrator),
            None,
            &[],
        )
        .await;
    assert_eq!(acknowledged.expect(200)["status"], "acknowledged");
    let resolved = api
        .post(
            &format!("/api/alarms/{id}/resolve"),
            &integrator,
            json!({ "note": "found at a friend's" }),
        )
        .await;
    assert_eq!(resolved.expect(200)["status"], "resolved");
    api.send(
        Method::POST,
        &format!("/api/alarms/{id}/resolve"),
        Some(&integrator),
        None,
        &[],
    )
    .await
    .assert_problem(409, "invalid-transition");
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn custodians_log_in_with_their_password_until_deactivated(pool: PgPool) {
    let api = Api::start(pool).await;
    let admin = api.admin().await;
    let id = api.custodian("Carla@Example.org", "custodian").await;
    api.post(
        "/api/custodians",
        &admin,
        json!({ "email": "carla@example.org", "name": "Again", "role": "admin", "password": "correct horse battery" }),
    )
    .await
    .assert_problem(409, "conflict");
    api.post(
        "/api/custodians",
        &admin,
        json!({ "email": "short@example.org", "name": "S", "role": "admin", "password": "short" }),
    )
    .await
    .assert_problem(422, "validation");

    let login =
        |password: &'static str| json!({ "email": "carla@example.org", "password": password });
    let token = api
        .send(
            Method::POST,
            "/api/auth/token",
            None,
            Some(&login("correct horse battery")),
            &[],
        )
        .await;
    let token = token.expect(200)["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    // The token works, with the custodian's role: custodians may not create subjects.
    api.post(
        "/api/subjects",
        &token,
        json!({ "name": "B", "phone": "+14155238886" }),
    )
    .await
    .assert_problem(403, "forbidden");

    for wrong in [
        login("wrong password!"),
        json!({ "email": "nobody@example.org", "password": "correct horse battery" }),
    ] {
        api.send(Method::POST, "/api/auth/token", None, Some(&wrong), &[])
            .await
            .assert_problem(401, "unauthenticated");
    }

    api.put(
        &format!("/api/custodians/{id}/role"),
        &admin,
        json!({ "role": "auditor" }),
    )
    .await
    .expect(200);
    api.send(
        Method::DELETE,
        &format!("/api/custodians/{id}"),
        Some(&admin),
        None,
        &[],
    )
    .await
    .expect(200);
    api.send(
        Method::POST,
        "/api/auth/token",
        None,
        Some(&login("correct horse battery")),
        &[],
    )
    .await
    .assert_problem(401, "unauthenticated");

    // The password never reaches the log in clear.
    let events = api.events().await;
    let created = events
        .iter()
        .find(|e| e.event_type == "CustodianCreated")
        .expect("created");
    let stored = created.data.to_string();
    assert!(!stored.contains("correct horse battery"));
    assert!(
        created.data["password_hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("$argon2id$"))
    );
}

/// Concurrent commands on one aggregate are decided one after the other, never lost.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn conflicting_concurrent_commands_are_serialised(pool: PgPool) {
    let api = std::sync::Arc::new(Api::start(pool).await);
    let subject = api.subject("Ana").await;
    let admin = api.admin().await;
    let renames: Vec<_> = (0..8)
        .map(|n| {
            let (api, admin, subject) = (api.clone(), admin.clone(), subject.clone());
            tokio::spawn(async move {
                api.put(
                    &format!("/api/subjects/{subject}"),
                    &admin,
                    json!({ "name": format!("Name {n}") }),
                )
                .await
            })
        })
        .collect();
    for rename in renames {
        rename.await.expect("task").expect(200);
    }
    let updates = api
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "SubjectUpdated")
        .count();
    assert_eq!(updates, 8);
}
