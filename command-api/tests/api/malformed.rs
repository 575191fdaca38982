//! Malformed input of every kind is answered with a problem and a 4xx, never a 500.

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;
use sqlx::PgPool;

use crate::harness::{Api, BODY_LIMIT, read};

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn every_kind_of_bad_request_is_a_problem(pool: PgPool) {
    let api = Api::start(pool).await;
    let admin = api.admin().await;
    let subject = api.subject("Ana").await;
    let raw = |method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut request = api
            .client
            .request(method, format!("{}{path}", api.base))
            .bearer_auth(&admin)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        request
    };
    let json_type = Some("application/json");
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "not JSON",
            raw(Method::POST, "/api/subjects", json_type, b"{name:".to_vec()),
            400,
            "malformed-request",
        ),
        (
            "empty body",
            raw(Method::POST, "/api/subjects", json_type, Vec::new()),
            400,
            "malformed-request",
        ),
        (
            "not UTF-8",
            raw(Method::POST, "/api/subjects", json_type, vec![0xff, 0xfe]),
            400,
            "malformed-request",
        ),
        (
            "no content type",
            raw(Method::POST, "/api/subjects", None, b"{}".to_vec()),
            415,
            "unsupported-media-type",
        ),
        (
            "text content type",
            raw(
                Method::POST,
                "/api/subjects",
                Some("text/plain"),
                b"{}".to_vec(),
            ),
            415,
            "unsupported-media-type",
        ),
        (
            "an array",
            raw(Method::POST, "/api/subjects", json_type, b"[]".to_vec()),
            422,
            "validation",
        ),
        (
            "unknown field",
            raw(
                Method::POST,
                "/api/subjects",
                json_type,
                json!({ "name": "A", "phone": "+14155238886", "admin": true })
                    .to_string()
                    .into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "missing field",
            raw(
                Method::POST,
                "/api/subjects",
                json_type,
                json!({ "name": "A" }).to_string().into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "wrong type",
            raw(
                Method::POST,
                "/api/subjects",
                json_type,
                json!({ "name": 5, "phone": "+14155238886" })
                    .to_string()
                    .into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "bad phone",
            raw(
                Method::POST,
                "/api/subjects",
                json_type,
                json!({ "name": "A", "phone": "555-1234" })
                    .to_string()
                    .into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "blank name",
            raw(
                Method::POST,
                "/api/subjects",
                json_type,
                json!({ "name": "  ", "phone": "+14155238886" })
                    .to_string()
                    .into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "preferences not an object",
            raw(
                Method::POST,
                "/api/subjects",
                json_type,
                json!({ "name": "A", "phone": "+14155238886", "preferences": [1] })
                    .to_string()
                    .into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "too large",
            raw(
                Method::POST,
                "/api/subjects",
                json_type,
                json!({ "name": "x".repeat(BODY_LIMIT), "phone": "+1" })
                    .to_string()
                    .into_bytes(),
            ),
            413,
            "payload-too-large",
        ),
        (
            "bad id in path",
            raw(
                Method::PUT,
                "/api/subjects/not-a-uuid",
                json_type,
                b"{}".to_vec(),
            ),
            400,
            "malformed-request",
        ),
        (
            "unknown subject",
            raw(
                Method::PUT,
                &format!("/api/subjects/{}", uuid::Uuid::now_v7()),
                json_type,
                b"{}".to_vec(),
            ),
            404,
            "not-found",
        ),
        (
            "bad date",
            raw(
                Method::POST,
                "/api/notifications",
                json_type,
                json!({ "subject_id": subject, "body": "x", "scheduled_for": "tomorrow" })
                    .to_string()
                    .into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "huge number",
            raw(
                Method::POST,
                "/api/notifications",
                json_type,
                json!({ "subject_id": subject, "body": "x", "max_attempts": 1e30 })
                    .to_string()
                    .into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "negative number",
            raw(
                Method::POST,
                "/api/notifications",
                json_type,
                json!({ "subject_id": subject, "body": "x", "max_attempts": -1 })
                    .to_string()
                    .into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "body too long",
            raw(
                Method::POST,
                "/api/notifications",
                json_type,
                json!({ "subject_id": subject, "body": "x".repeat(1_601) })
                    .to_string()
                    .into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "bad role",
            raw(
                Method::PUT,
                &format!("/api/custodians/{}/role", uuid::Uuid::now_v7()),
                json_type,
                json!({ "role": "root" }).to_string().into_bytes(),
            ),
            422,
            "validation",
        ),
        (
            "unknown path",
            raw(Method::GET, "/api/nothing-here", None, Vec::new()),
            404,
            "not-found",
        ),
        (
            "wrong method",
            raw(Method::PATCH, "/api/subjects", json_type, b"{}".to_vec()),
            405,
            "method-not-allowed",
        ),
        (
            "bad optional body",
            raw(
                Method::POST,
                &format!("/api/alarms/{}/resolve", uuid::Uuid::now_v7()),
                json_type,
                b"{\"nope\": 1}".to_vec(),
            ),
            422,
            "validation",
        ),
    ];
    for (name, request, status, slug) in cases {
        let answer = read(request.send().await.expect("request")).await;
        assert_eq!(answer.status.as_u16(), status, "{name}: {answer:?}");
        answer.assert_problem(status, slug);
    }
}
