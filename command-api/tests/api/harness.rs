//! Starts the real router on a loopback port and talks to it with a real HTTP client.

use std::time::Duration;

use chrono::Duration as TokenLifetime;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use keryu_command_api::auth::{TokenIssuer, TokenVerifier};
use keryu_command_api::webhooks::StatusWebhook;
use keryu_command_api::{AppState, Settings, router};
use keryu_domain::Role;
use keryu_infra::config::Secret;
use keryu_infra::event_store::{EventStore, Position, RecordedEvent};
use keryu_infra::personal_data::MasterKey;
use keryu_infra::postgres::PgEventStore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret";
pub const ISSUER: &str = "keryu";
pub const AUDIENCE: &str = "keryu-api";
pub const BODY_LIMIT: usize = 16 * 1024;
/// The Twilio auth token status callbacks are signed with.
pub const TWILIO_AUTH_TOKEN: &str = "twilio-test-auth-token";

/// A running API and what a test needs to talk to it.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub issuer: TokenIssuer,
    pub store: PgEventStore,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem of `status` and `slug`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        assert_eq!(self.body["type"], format!("/problems/{slug}"), "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        &self.body
    }
}

pub fn hs256_verifier() -> TokenVerifier {
    TokenVerifier::new(
        Algorithm::HS256,
        DecodingKey::from_secret(SECRET).expect("key"),
        ISSUER,
        AUDIENCE,
    )
}

pub fn hs256_issuer() -> TokenIssuer {
    TokenIssuer::new(
        Algorithm::HS256,
        EncodingKey::from_secret(SECRET).expect("key"),
        ISSUER,
        AUDIENCE,
        TokenLifetime::minutes(5),
    )
}

impl Api {
    /// The API with HS256 tokens on a fresh database.
    pub async fn start(pool: PgPool) -> Api {
        Api::start_with(pool, hs256_verifier(), hs256_issuer()).await
    }

    /// The API with another token verifier (and the issuer tests sign with).
    pub async fn start_with(pool: PgPool, verifier: TokenVerifier, issuer: TokenIssuer) -> Api {
        let store = PgEventStore::new(pool, MasterKey::development());
        let state = AppState::new(
            store.clone(),
            verifier,
            Some(issuer.clone()),
            Settings {
                default_max_attempts: 3,
                command_attempts: 10,
                body_limit: BODY_LIMIT,
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let webhook = StatusWebhook::new(
            store.clone(),
            Secret::new(TWILIO_AUTH_TOKEN),
            base.clone(),
            10,
        );
        tokio::spawn(async move {
            axum::serve(listener, router(state).merge(webhook.router()))
                .await
                .expect("serve");
        });
        Api {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            issuer,
            store,
        }
    }

    pub fn token(&self, role: Role, subject: &str) -> String {
        self.issuer.issue(subject, role).expect("token")
    }

    /// Sends `body` as JSON (when given) with the token (when given) and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(token), Some(&body), &[])
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(token), Some(&body), &[])
            .await
    }

    /// Every event in the store, in order.
    pub async fn events(&self) -> Vec<RecordedEvent> {
        self.store
            .read_all(Position::START, 10_000)
            .await
            .expect("read")
    }

    pub async fn admin(&self) -> String {
        self.token(Role::Admin, "admin-1")
    }

    /// A subject registered by an admin; returns its id.
    pub async fn subject(&self, name: &str) -> String {
        let admin = self.admin().await;
        let answer = self
            .post(
                "/api/subjects",
                &admin,
                json!({ "name": name, "phone": "+14155238886" }),
            )
            .await;
        answer.expect(201)["id"].as_str().expect("id").to_owned()
    }

    /// Deactivates `subject` as an admin.
    pub async fn deactivate_subject(&self, subject: &str) {
        let admin = self.admin().await;
        self.send(
            Method::DELETE,
            &format!("/api/subjects/{subject}"),
            Some(&admin),
            None,
            &[],
        )
        .await
        .expect(200);
    }

    /// A custodian created by an admin; returns its id.
    pub async fn custodian(&self, email: &str, role: &str) -> String {
        let admin = self.admin().await;
        let answer = self
            .post(
                "/api/custodians",
                &admin,
                json!({ "email": email, "name": "Custodian", "role": role, "password": "correct horse battery" }),
            )
            .await;
        answer.expect(201)["id"].as_str().expect("id").to_owned()
    }

    /// An approved template called `name` with content `content`; returns its id.
    pub async fn approved_template(&self, name: &str, content: &str, variables: Value) -> String {
        let admin = self.admin().await;
        let created = self
            .post(
                "/api/templates",
                &admin,
                json!({ "name": name, "content": content, "variables": variables, "language": "es" }),
            )
            .await;
        let id = created.expect(201)["id"].as_str().expect("id").to_owned();
        self.post(&format!("/api/templates/{id}/submit"), &admin, json!({}))
            .await
            .expect(200);
        self.post(&format!("/api/templates/{id}/approve"), &admin, json!({}))
            .await
            .expect(200);
        id
    }
}

pub async fn read(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}
