//! The OpenAPI frame of the query routes, and what every query operation shares.
//!
//! Each handler documents its own path, parameters and answer (`#[utoipa::path]`); the bearer
//! requirement, the `Keryu-Projection-Position` header and the problem answers are the same for
//! every query of a read model, so they are added here to every operation at once, as
//! [`with_position`](super::with_position) adds the header to every answer: a new route
//! cannot be documented without them. The event log routes read the log itself, so they share
//! everything but the header.

use keryu_infra::http::problem::ProblemDocument;
use utoipa::PartialSchema;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};

/// The name the bearer scheme is registered under, as in the command API's document.
const BEARER: &str = "bearer";

/// The document's frame: title and the problem schema.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keryu query API",
        description = "Queries over Keryu's read models. Every answer carries \
            Keryu-Projection-Position; ?min_position=N waits up to 5 s for the read model to \
            reach N. Errors are RFC 9457 problems."
    ),
    components(schemas(ProblemDocument))
)]
pub(super) struct QueryDoc;

/// What the operations of a document answer from, which decides what their answers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// A read model: answers carry `Keryu-Projection-Position`.
    ReadModel,
    /// The event log, read through the store: always current, so no freshness header.
    EventLog,
}

/// Registers the bearer scheme and gives every operation of `document` the bearer requirement,
/// the `Keryu-Projection-Position` header on its 200 answer (read models only), and its problem
/// answers.
pub(super) fn apply_conventions(document: &mut OpenApi, source: Source) {
    document
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    let operations = document.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    });
    for operation in operations {
        document_conventions(operation, source);
    }
}

fn document_conventions(operation: &mut Operation, source: Source) {
    operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    let responses = &mut operation.responses.responses;
    if source == Source::ReadModel
        && let Some(RefOr::T(ok)) = responses.get_mut("200")
    {
        ok.headers.insert(
            "Keryu-Projection-Position".to_owned(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(u64::schema()))
                    .description(Some(
                        "Log position the read model had applied when the query ran",
                    ))
                    .build(),
            ),
        );
    }
    responses.insert(
        "4XX".to_owned(),
        problem("A problem (validation, authentication, role, not found)"),
    );
    responses.insert(
        "503".to_owned(),
        problem(match source {
            Source::ReadModel => "The read models are unavailable; retry later",
            Source::EventLog => "The event store is unavailable; retry later",
        }),
    );
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ProblemDocument")))
                    .build(),
            )
            .build(),
    )
}
