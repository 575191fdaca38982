//! `Idempotency-Key`: retries get the first answer, and nothing is executed twice.

use std::sync::Arc;

use keryu_domain::Role;
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::harness::Api;

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_retry_with_the_same_key_replays_the_first_answer(pool: PgPool) {
    let api = Api::start(pool.clone()).await;
    let admin = api.admin().await;
    let body = json!({ "name": "Ana", "phone": "+14155238886" });
    let key = [("idempotency-key", "create-ana-1")];

    let first = api
        .send(
            Method::POST,
            "/api/subjects",
            Some(&admin),
            Some(&body),
            &key,
        )
        .await;
    first.expect(201);
    let head = api.events().await.len();

    // After a restart of the API (a new process on the same database) the key still holds.
    let restarted = Api::start(pool).await;
    for api in [&api, &restarted] {
        let retry = api
            .send(
                Method::POST,
                "/api/subjects",
                Some(&admin),
                Some(&body),
                &key,
            )
            .await;
        assert_eq!(retry.status, first.status);
        assert_eq!(retry.body, first.body);
        assert_eq!(retry.header("location"), first.header("location"));
        assert_eq!(
            retry.header("keryu-position"),
            first.header("keryu-position")
        );
        assert_eq!(retry.header("idempotency-replayed"), Some("true"));
    }
    assert_eq!(api.events().await.len(), head, "a retry appended events");

    // The same key with another body is refused; keys are scoped per caller.
    let other = json!({ "name": "Luis", "phone": "+14155238886" });
    api.send(
        Method::POST,
        "/api/subjects",
        Some(&admin),
        Some(&other),
        &key,
    )
    .await
    .assert_problem(422, "idempotency-key-reused");
    let integrator = api.token(Role::Integrator, "integration-1");
    api.send(
        Method::POST,
        "/api/subjects",
        Some(&integrator),
        Some(&other),
        &key,
    )
    .await
    .expect(201);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn refused_commands_are_replayed_too_but_bad_keys_are_refused(pool: PgPool) {
    let api = Api::start(pool).await;
    let admin = api.admin().await;
    let body = json!({ "name": "Ana", "phone": "+1" });
    let key = [("idempotency-key", "bad-phone")];
    let first = api
        .send(
            Method::POST,
            "/api/subjects",
            Some(&admin),
            Some(&body),
            &key,
        )
        .await;
    first.assert_problem(422, "validation");
    let retry = api
        .send(
            Method::POST,
            "/api/subjects",
            Some(&admin),
            Some(&body),
            &key,
        )
        .await;
    retry.assert_problem(422, "validation");
    assert_eq!(retry.header("idempotency-replayed"), Some("true"));

    let long = "k".repeat(256);
    api.send(
        Method::POST,
        "/api/subjects",
        Some(&admin),
        Some(&body),
        &[("idempotency-key", &long)],
    )
    .await
    .assert_problem(422, "validation");
}

/// Many retries racing with one key: exactly one execution; the others replay it or are told
/// it is still running.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn concurrent_retries_execute_once(pool: PgPool) {
    let api = Arc::new(Api::start(pool).await);
    let admin = api.admin().await;
    let body = json!({ "name": "Ana", "phone": "+14155238886" });
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (api, admin, body) = (api.clone(), admin.clone(), body.clone());
            tokio::spawn(async move {
                api.send(
                    Method::POST,
                    "/api/subjects",
                    Some(&admin),
                    Some(&body),
                    &[("idempotency-key", "race")],
                )
                .await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for racer in racers {
        let answer = racer.await.expect("task");
        match answer.status.as_u16() {
            201 => {
                ids.insert(answer.body["id"].as_str().expect("id").to_owned());
            }
            409 => answer.assert_problem(409, "idempotency-key-in-progress"),
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!(ids.len(), 1, "one subject, however many answers");
    let registered = api
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "SubjectRegistered")
        .count();
    assert_eq!(registered, 1);
}

/// Records older than the retention are swept; younger ones stay.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn expired_records_are_swept(pool: PgPool) {
    let api = Api::start(pool.clone()).await;
    let admin = api.admin().await;
    let body = json!({ "name": "Ana", "phone": "+14155238886" });
    for key in ["old", "new"] {
        api.send(
            Method::POST,
            "/api/subjects",
            Some(&admin),
            Some(&body),
            &[("idempotency-key", key)],
        )
        .await
        .expect(201);
    }
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '2 days' WHERE key = 'old'",
    )
    .execute(&pool)
    .await
    .expect("age a record");

    let swept = keryu_command_api::idempotency::sweep_expired(
        &pool,
        keryu_command_api::idempotency::RETENTION,
    )
    .await
    .expect("sweep");

    assert_eq!(swept, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys")
        .fetch_all(&pool)
        .await
        .expect("keys");
    assert_eq!(left, ["new"]);
}
