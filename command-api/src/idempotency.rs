//! `Idempotency-Key`: a retried request gets the first answer instead of a second execution.
//!
//! The first request with a key claims it (a row in `idempotency_keys` with a short lease),
//! runs, and stores its answer; a retry with the same key and the same request replays that
//! answer; the same key with another request is refused (422); a retry while the first is still
//! running is told so (409). Server errors release the key so the client may simply retry. A
//! claim whose lease has passed belongs to a crashed request and is taken over by the retry.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use sqlx::types::Json;

use crate::auth::{Caller, HasTokenVerifier};
use crate::problem::{Problem, ProblemKind};
use crate::response::KERYU_POSITION;

/// The request header carrying the client's key.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer replayed from a stored record.
pub const IDEMPOTENCY_REPLAYED: HeaderName = HeaderName::from_static("idempotency-replayed");
/// Longest key accepted.
const MAX_KEY_LENGTH: usize = 255;
/// How long a claim protects a running request from a concurrent retry. Commands finish in
/// milliseconds; a claim this old is from a crashed process.
const LEASE_SECONDS: f64 = 60.0;
/// Response headers worth replaying (the rest are recomputed by the server).
const REPLAYED_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, KERYU_POSITION];

/// What the middleware needs from the application.
pub trait IdempotencyState: HasTokenVerifier + Clone + Send + Sync + 'static {
    /// The database holding `idempotency_keys`.
    fn pool(&self) -> &PgPool;
    /// Largest request body accepted (the same limit as the API's).
    fn body_limit(&self) -> usize;
}

enum Claim {
    /// This request owns the key: run it and store the answer.
    Owned,
    /// An earlier request with this key finished: answer as it did.
    Finished(StoredResponse),
    /// An earlier request with this key is still running.
    Running,
    /// The key was used for a different request.
    Reused,
}

/// A row of `idempotency_keys`.
#[derive(sqlx::FromRow)]
struct KeyRecord {
    request_hash: Vec<u8>,
    response_status: Option<i16>,
    response_headers: Option<Json<Vec<(String, String)>>>,
    response_body: Option<Vec<u8>>,
}

struct StoredResponse {
    status: i16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Axum middleware applying the protocol to requests that carry an `Idempotency-Key`.
pub async fn middleware<S: IdempotencyState>(
    State(state): State<S>,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY).cloned() else {
        return next.run(request).await;
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|key| !key.is_empty() && key.len() <= MAX_KEY_LENGTH)
    else {
        return Problem::new(
            ProblemKind::Validation,
            format!("Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters"),
        )
        .into_response();
    };
    let key = key.to_owned();
    // Keys are scoped to the caller; an unauthenticated request is answered 401 by its handler.
    let (mut parts, body) = request.into_parts();
    let principal = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller.subject,
        Err(_) => return next.run(Request::from_parts(parts, body)).await,
    };
    let Ok(body) = to_bytes(body, state.body_limit()).await else {
        return Problem::new(
            ProblemKind::PayloadTooLarge,
            "the request body is too large",
        )
        .into_response();
    };
    let hash = request_hash(&parts, &body);

    match claim(state.pool(), &principal, &key, &hash).await {
        Ok(Claim::Owned) => {
            let response = next.run(Request::from_parts(parts, Body::from(body))).await;
            finish(&state, &principal, &key, response).await
        }
        Ok(Claim::Finished(stored)) => replay(stored),
        Ok(Claim::Running) => Problem::new(
            ProblemKind::IdempotencyKeyInProgress,
            "a request with this Idempotency-Key is still running; retry shortly",
        )
        .into_response(),
        Ok(Claim::Reused) => Problem::new(
            ProblemKind::IdempotencyKeyReused,
            "this Idempotency-Key was used for a different request",
        )
        .into_response(),
        Err(error) => {
            tracing::error!(%error, "could not claim an idempotency key");
            Problem::new(ProblemKind::Unavailable, "the database is unavailable").into_response()
        }
    }
}

fn request_hash(parts: &axum::http::request::Parts, body: &Bytes) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b"\n");
    hasher.update(parts.uri.path());
    hasher.update(b"\n");
    hasher.update(body);
    hasher.finalize().to_vec()
}

async fn claim(pool: &PgPool, principal: &str, key: &str, hash: &[u8]) -> sqlx::Result<Claim> {
    // Insert a fresh claim, or take over one whose owner crashed (same request, no answer,
    // lease passed). Either way, a returned row means this request owns the key.
    let owned: Option<bool> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (principal, key, request_hash, locked_until) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) \
         ON CONFLICT (principal, key) DO UPDATE SET locked_until = EXCLUDED.locked_until \
         WHERE idempotency_keys.response_status IS NULL \
           AND idempotency_keys.locked_until < now() \
           AND idempotency_keys.request_hash = EXCLUDED.request_hash \
         RETURNING true",
    )
    .bind(principal)
    .bind(key)
    .bind(hash)
    .bind(LEASE_SECONDS)
    .fetch_optional(pool)
    .await?;
    if owned.is_some() {
        return Ok(Claim::Owned);
    }
    let record: KeyRecord = sqlx::query_as(
        "SELECT request_hash, response_status, response_headers, response_body \
         FROM idempotency_keys WHERE principal = $1 AND key = $2",
    )
    .bind(principal)
    .bind(key)
    .fetch_one(pool)
    .await?;
    let KeyRecord {
        request_hash: stored_hash,
        response_status: status,
        response_headers: headers,
        response_body: body,
    } = record;
    Ok(match status {
        _ if stored_hash != hash => Claim::Reused,
        Some(status) => Claim::Finished(StoredResponse {
            status,
            headers: headers.map(|h| h.0).unwrap_or_default(),
            body: body.unwrap_or_default(),
        }),
        None => Claim::Running,
    })
}

/// Stores the handler's answer for later retries, or releases the key after a server error.
async fn finish<S: IdempotencyState>(
    state: &S,
    principal: &str,
    key: &str,
    response: Response,
) -> Response {
    if response.status().is_server_error() {
        let released =
            sqlx::query("DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2")
                .bind(principal)
                .bind(key)
                .execute(state.pool())
                .await;
        if let Err(error) = released {
            tracing::error!(%error, "could not release an idempotency key after a server error");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return Problem::new(ProblemKind::Internal, "could not read the answer").into_response();
    };
    let headers = kept_headers(&parts.headers);
    let stored = sqlx::query(
        "UPDATE idempotency_keys SET response_status = $3, response_headers = $4, \
         response_body = $5 WHERE principal = $1 AND key = $2",
    )
    .bind(principal)
    .bind(key)
    .bind(i16::try_from(parts.status.as_u16()).unwrap_or(i16::MAX))
    .bind(Json(&headers))
    .bind(body.as_ref())
    .execute(state.pool())
    .await;
    if let Err(error) = stored {
        // The command took effect; only the record is missing, so a retry would run it again.
        // Say so loudly, and still give the client the real answer.
        tracing::error!(%error, "could not store the answer of an idempotent request");
    }
    Response::from_parts(parts, Body::from(body))
}

fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    REPLAYED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

fn replay(stored: StoredResponse) -> Response {
    let status = u16::try_from(stored.status)
        .ok()
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(IDEMPOTENCY_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// How long an answer is kept for retries. Clients retry within minutes; a day covers long
/// outages on their side without keeping records forever.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Deletes records older than `retention`; returns how many. Run periodically by `keryu serve`.
///
/// # Errors
/// When the database fails.
pub async fn sweep_expired(pool: &PgPool, retention: std::time::Duration) -> sqlx::Result<u64> {
    let deleted = sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
    )
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
