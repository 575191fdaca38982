//! The command API's routes. The seed's paths (`/api/notifications/create/`, …) and REST
//! aliases (`POST /api/notifications`, …) lead to the same handlers.

mod alarms;
mod custodians;
mod notifications;
mod subjects;
mod templates;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{post, put};

use crate::idempotency;
use crate::problem::{Problem, ProblemKind};
use crate::state::AppState;

pub use custodians::custodian_id_for_email;
pub use templates::template_id_for_name;

/// Every command route, with the API's body limit, idempotency keys and problem answers for
/// unknown paths and methods.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings().body_limit;
    Router::new()
        .route("/api/notifications", post(notifications::create))
        .route("/api/notifications/create/", post(notifications::create))
        .route("/api/notifications/{id}/retry", post(notifications::retry))
        .route("/api/notifications/{id}/retry/", post(notifications::retry))
        .route(
            "/api/notifications/{id}/cancel",
            post(notifications::cancel),
        )
        .route("/api/subjects", post(subjects::create))
        .route("/api/subjects/create/", post(subjects::create))
        .route(
            "/api/subjects/{id}",
            put(subjects::update).delete(subjects::deactivate),
        )
        .route("/api/subjects/{id}/update/", put(subjects::update))
        .route(
            "/api/subjects/{id}/delete/",
            axum::routing::delete(subjects::deactivate),
        )
        .route(
            "/api/subjects/{id}/custodians",
            put(subjects::assign_custodians),
        )
        .route("/api/templates", post(templates::create))
        .route("/api/templates/{id}", put(templates::edit))
        .route("/api/templates/{id}/submit", post(templates::submit))
        .route("/api/templates/{id}/approve", post(templates::approve))
        .route("/api/templates/{id}/reject", post(templates::reject))
        .route("/api/alarms", post(alarms::raise))
        .route("/api/alarms/{id}/acknowledge", post(alarms::acknowledge))
        .route("/api/alarms/{id}/resolve", post(alarms::resolve))
        .route("/api/custodians", post(custodians::create))
        .route(
            "/api/custodians/{id}",
            axum::routing::delete(custodians::deactivate),
        )
        .route("/api/custodians/{id}/role", put(custodians::change_role))
        .route("/api/auth/token", post(custodians::token))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware::<AppState>,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::new(ProblemKind::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        ProblemKind::MethodNotAllowed,
        "this endpoint does not take that method",
    )
}
