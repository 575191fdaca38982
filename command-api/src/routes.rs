//! The command API's routes. The seed's paths (`/api/notifications/create/`, …) and REST
//! aliases (`POST /api/notifications`, …) lead to the same handlers. The REST routes are
//! registered through their OpenAPI annotations, so the document cannot miss one.

mod alarms;
mod custodians;
mod notifications;
mod subjects;
mod templates;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::Html;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router, middleware};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::idempotency;
use crate::problem::{Problem, ProblemDocument, ProblemKind};
use crate::state::AppState;

pub use custodians::custodian_id_for_email;

/// The REST routes, each documented by its handler's `#[utoipa::path]`, and the OpenAPI document
/// they make up. The seed's alias paths are added by [`router`] and described in the summaries.
pub fn documented_routes() -> (Router<AppState>, OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(notifications::create))
        .routes(routes!(notifications::retry))
        .routes(routes!(notifications::cancel))
        .routes(routes!(subjects::create))
        .routes(routes!(subjects::update, subjects::deactivate))
        .routes(routes!(subjects::assign_custodians))
        .routes(routes!(subjects::erase))
        .routes(routes!(templates::create))
        .routes(routes!(templates::edit))
        .routes(routes!(templates::submit))
        .routes(routes!(templates::approve))
        .routes(routes!(templates::reject))
        .routes(routes!(alarms::raise))
        .routes(routes!(alarms::acknowledge))
        .routes(routes!(alarms::resolve))
        .routes(routes!(custodians::create))
        .routes(routes!(custodians::deactivate))
        .routes(routes!(custodians::change_role))
        .routes(routes!(custodians::token))
        .split_for_parts()
}

/// The OpenAPI document of the whole HTTP API: the command routes and the query routes of the
/// read side ([`keryu_projections::queries`]), which `keryu serve` and `keryu command-api` serve
/// together on one listener.
pub fn api_document() -> OpenApi {
    let (_, mut document) = documented_routes();
    document.merge(keryu_projections::queries::openapi());
    document
}

/// The document's frame: title, the problem schema and the bearer scheme.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keryu API",
        description = "Commands and queries of Keryu, an event-sourced notification service \
            delivering over WhatsApp. Errors are RFC 9457 problems; POSTs accept an \
            Idempotency-Key header; query answers carry Keryu-Projection-Position and honour \
            ?min_position=N (read-your-writes)."
    ),
    modifiers(&BearerAuth),
    components(schemas(ProblemDocument))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every command route, the seed's aliases, `GET /openapi.json` (commands and queries) and
/// `GET /docs`, with the API's
/// body limit, idempotency keys and problem answers for unknown paths and methods.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings().body_limit;
    let (documented, _) = documented_routes();
    let openapi = Arc::new(api_document());
    documented
        .route("/api/notifications/create/", post(notifications::create))
        .route("/api/notifications/{id}/retry/", post(notifications::retry))
        .route("/api/subjects/create/", post(subjects::create))
        .route("/api/subjects/{id}/update/", put(subjects::update))
        .route("/api/subjects/{id}/delete/", delete(subjects::deactivate))
        .route(
            "/openapi.json",
            get(move || {
                let openapi = Arc::clone(&openapi);
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .route("/docs", get(docs))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware::<AppState>,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// A self-contained page that renders `/openapi.json` (no assets from elsewhere).
async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
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
