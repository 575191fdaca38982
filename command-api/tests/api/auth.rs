//! Bearer tokens: forged, expired, misaddressed, `alg: none` and algorithm confusion.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use keryu_command_api::auth::{Claims, TokenIssuer, TokenVerifier};
use keryu_domain::Role;
use serde_json::json;
use sqlx::PgPool;

use crate::harness::{AUDIENCE, Api, ISSUER, SECRET};

const PUBLIC_PEM: &[u8] = include_bytes!("fixtures/rs256-public.pem");
const PRIVATE_PEM: &[u8] = include_bytes!("fixtures/rs256-private.pem");
const ED_PUBLIC_PEM: &[u8] = include_bytes!("fixtures/ed25519-public.pem");
const ED_PRIVATE_PEM: &[u8] = include_bytes!("fixtures/ed25519-private.pem");

fn claims(role: Role, expires_in: Duration, issuer: &str, audience: &str) -> Claims {
    let now = Utc::now();
    Claims {
        sub: "someone".to_owned(),
        role,
        exp: (now + expires_in).timestamp(),
        iat: now.timestamp(),
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
    }
}

fn sign(algorithm: Algorithm, claims: &Claims, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, key).expect("sign")
}

async fn create_subject(api: &Api, token: &str) -> u16 {
    api.post(
        "/api/subjects",
        token,
        json!({ "name": "Ana", "phone": "+14155238886" }),
    )
    .await
    .status
    .as_u16()
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn only_valid_tokens_for_this_api_are_accepted(pool: PgPool) {
    let api = Api::start(pool).await;
    let key = EncodingKey::from_secret(SECRET).expect("key");
    let valid = sign(
        Algorithm::HS256,
        &claims(Role::Admin, Duration::minutes(5), ISSUER, AUDIENCE),
        &key,
    );
    assert_eq!(create_subject(&api, &valid).await, 201);

    let other_key = EncodingKey::from_secret(b"another-secret-another-secret").expect("key");
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&claims(Role::Admin, Duration::minutes(5), ISSUER, AUDIENCE))
            .expect("json"),
    );
    let forged = [
        (
            "expired",
            sign(
                Algorithm::HS256,
                &claims(Role::Admin, Duration::minutes(-5), ISSUER, AUDIENCE),
                &key,
            ),
        ),
        (
            "other issuer",
            sign(
                Algorithm::HS256,
                &claims(Role::Admin, Duration::minutes(5), "evil", AUDIENCE),
                &key,
            ),
        ),
        (
            "other audience",
            sign(
                Algorithm::HS256,
                &claims(Role::Admin, Duration::minutes(5), ISSUER, "other-api"),
                &key,
            ),
        ),
        (
            "other secret",
            sign(
                Algorithm::HS256,
                &claims(Role::Admin, Duration::minutes(5), ISSUER, AUDIENCE),
                &other_key,
            ),
        ),
        ("alg none", format!("{header}.{payload}.")),
        ("garbage", "not.a.token".to_owned()),
        (
            "HS512",
            sign(
                Algorithm::HS512,
                &claims(Role::Admin, Duration::minutes(5), ISSUER, AUDIENCE),
                &key,
            ),
        ),
    ];
    for (name, token) in forged {
        let answer = api
            .post(
                "/api/subjects",
                &token,
                json!({ "name": "Ana", "phone": "+14155238886" }),
            )
            .await;
        assert_eq!(answer.status.as_u16(), 401, "{name} accepted");
        answer.assert_problem(401, "unauthenticated");
    }
    let no_bearer = api
        .send(
            reqwest::Method::POST,
            "/api/subjects",
            None,
            Some(&json!({})),
            &[("authorization", "Basic YWRtaW46YWRtaW4=")],
        )
        .await;
    no_bearer.assert_problem(401, "unauthenticated");
}

/// With RS256 configured, a token "signed" with HS256 using the public key as the secret (the
/// classic algorithm-confusion attack) is refused, and genuine RS256 tokens are accepted.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn algorithm_confusion_is_refused(pool: PgPool) {
    let verifier = TokenVerifier::new(
        Algorithm::RS256,
        DecodingKey::from_rsa_pem(PUBLIC_PEM).expect("public key"),
        ISSUER,
        AUDIENCE,
    );
    let issuer = TokenIssuer::new(
        Algorithm::RS256,
        EncodingKey::from_rsa_pem(PRIVATE_PEM).expect("private key"),
        ISSUER,
        AUDIENCE,
        Duration::minutes(5),
    );
    let api = Api::start_with(pool, verifier, issuer).await;
    let genuine = api.token(Role::Admin, "admin-1");
    assert_eq!(create_subject(&api, &genuine).await, 201);

    let public_as_secret = EncodingKey::from_secret(PUBLIC_PEM).expect("key");
    let confused = sign(
        Algorithm::HS256,
        &claims(Role::Admin, Duration::minutes(5), ISSUER, AUDIENCE),
        &public_as_secret,
    );
    assert_eq!(create_subject(&api, &confused).await, 401);
}

/// EdDSA deployments accept Ed25519 tokens and nothing else.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn eddsa_tokens_are_verified_with_the_public_key(pool: PgPool) {
    let verifier = TokenVerifier::new(
        Algorithm::EdDSA,
        DecodingKey::from_ed_pem(ED_PUBLIC_PEM).expect("public key"),
        ISSUER,
        AUDIENCE,
    );
    let issuer = TokenIssuer::new(
        Algorithm::EdDSA,
        EncodingKey::from_ed_pem(ED_PRIVATE_PEM).expect("private key"),
        ISSUER,
        AUDIENCE,
        Duration::minutes(5),
    );
    let api = Api::start_with(pool, verifier, issuer).await;
    assert_eq!(
        create_subject(&api, &api.token(Role::Integrator, "i-1")).await,
        201
    );
    let hs256 = sign(
        Algorithm::HS256,
        &claims(Role::Admin, Duration::minutes(5), ISSUER, AUDIENCE),
        &EncodingKey::from_secret(ED_PUBLIC_PEM).expect("key"),
    );
    assert_eq!(create_subject(&api, &hs256).await, 401);
}
