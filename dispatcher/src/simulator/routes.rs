//! The simulator's HTTP routes: Twilio's two Messages endpoints and the `/sim` test helpers.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State as Shared};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{SubsecRound, Utc};
use serde::Deserialize;

use super::answer::{REQUEST_ID, Refusal, random_sid, request_id};
use super::state::{State, lock};
use super::store::Accepted;
use super::{callbacks, magic, validate};
use crate::twilio::API_VERSION;

pub(super) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages.json",
            post(create_message),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages/{sid_json}",
            get(fetch_message),
        )
        .route("/sim/messages", get(list_messages).delete(reset))
        .fallback(not_found)
        .with_state(state)
}

async fn create_message(
    Shared(state): Shared<Arc<State>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, Refusal> {
    let received_at = Utc::now().trunc_subsecs(6);
    simulate_latency(&state).await;
    authenticate(&state, &headers, &account_sid)?;
    // Twilio reads a body it cannot parse as no fields at all; validation then names the
    // first missing one.
    let fields = form.map(|Form(fields)| fields).unwrap_or_default();
    let request = validate::validate(&fields)?;
    if let Some(refusal) = magic::refusal(&request.from, &request.to) {
        return Err(refusal);
    }
    if let Some(limiter) = &state.limiter
        && let Err(wait) = limiter.take(&request.from, Instant::now())
    {
        let mut refusal = Refusal::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
        refusal.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        return Err(refusal);
    }
    if state.fails_first(&request.to) || state.random_fault() {
        return Err(Refusal::unavailable());
    }

    let outcome = magic::outcome(&request.to, request.content_sid.is_some());
    let message = Arc::new(Accepted {
        sid: random_sid("SM"),
        account_sid: account_sid.clone(),
        request,
        outcome,
        received_at,
        accepted_at: Utc::now(),
        accepted: Instant::now(),
    });
    let resource = message.resource(state.delay(), message.accepted);
    lock(&state.store).insert(message.clone());
    callbacks::spawn(&state, &message);
    Ok(answer(StatusCode::CREATED, resource))
}

async fn fetch_message(
    Shared(state): Shared<Arc<State>>,
    Path((account_sid, sid_json)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    simulate_latency(&state).await;
    authenticate(&state, &headers, &account_sid)?;
    let path = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid_json}");
    let message = sid_json
        .strip_suffix(".json")
        .and_then(|sid| lock(&state.store).get(sid))
        .ok_or_else(|| Refusal::not_found(&path))?;
    Ok(answer(
        StatusCode::OK,
        message.resource(state.delay(), Instant::now()),
    ))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    to: Option<String>,
}

async fn list_messages(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<ListQuery>,
) -> Response {
    Json(state.snapshot(query.to.as_deref())).into_response()
}

async fn reset(Shared(state): Shared<Arc<State>>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}

async fn not_found(uri: axum::http::Uri) -> Refusal {
    Refusal::not_found(uri.path())
}

async fn simulate_latency(state: &State) {
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
    }
}

/// HTTP Basic with the configured Account SID and Auth Token, and the same SID in the path.
fn authenticate(state: &State, headers: &HeaderMap, path_sid: &str) -> Result<(), Refusal> {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let expected_user = state.config.account_sid.as_str();
    let authenticated = credentials
        .as_deref()
        .and_then(|credentials| credentials.split_once(':'))
        .is_some_and(|(user, password)| {
            user == expected_user && password == state.config.auth_token.expose()
        });
    if authenticated && path_sid == expected_user {
        Ok(())
    } else {
        Err(Refusal::unauthenticated())
    }
}

fn answer(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(REQUEST_ID, request_id());
    response
}
