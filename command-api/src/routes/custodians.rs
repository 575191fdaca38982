//! Custodian administration (admins) and password logins.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use keryu_domain::custodian::{Custodian, CustodianCommand};
use keryu_domain::{CustodianId, Email, PhoneNumber, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::aggregates::{execute, load};
use crate::auth::Caller;
use crate::context::RequestContext;
use crate::credentials::{hash_password, verify_password};
use crate::json::{IdPath, JsonBody};
use crate::problem::{Problem, ProblemDocument, ProblemKind};
use crate::rbac::{Action, authorize};
use crate::response::Accepted;
use crate::state::AppState;

/// Namespace of email-derived custodian ids (UUID v5).
const CUSTODIAN_NAMESPACE: Uuid = Uuid::from_u128(0x6b65_7279_7500_4000_8000_6375_7374_6f64);

/// The id of the custodian who logs in as `email`.
///
/// Deriving the id from the (normalised) email makes emails unique without a lookup table and
/// lets a login find its custodian's stream directly. The price: an email cannot change, and
/// the id is guessable from the email (ids are not secrets here).
pub fn custodian_id_for_email(email: &Email) -> CustodianId {
    CustodianId(Uuid::new_v5(
        &CUSTODIAN_NAMESPACE,
        email.as_str().as_bytes(),
    ))
}

/// `POST /api/custodians`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustodian {
    email: Email,
    name: String,
    role: Role,
    password: String,
    /// WhatsApp number (E.164) where alarms about the custodian's subjects reach them.
    #[serde(default)]
    phone: Option<PhoneNumber>,
}

/// `PUT /api/custodians/{id}/role`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    role: Role,
}

/// `POST /api/auth/token`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

/// What a custodian command answers (never the hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct CustodianAccepted {
    id: CustodianId,
    role: Option<Role>,
    active: bool,
}

/// A minted token, in OAuth 2 token-response shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
}

async fn run(
    state: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: CustodianId,
    command: CustodianCommand,
    status: StatusCode,
) -> Result<Accepted<CustodianAccepted>, Problem> {
    let executed = execute::<Custodian>(state, id, command, caller, context).await?;
    Ok(Accepted {
        status,
        location: (status == StatusCode::CREATED).then(|| format!("/api/custodians/{id}")),
        body: CustodianAccepted {
            id,
            role: executed.state.role,
            active: executed.state.active,
        },
        position: executed.position,
    })
}

/// Creates a custodian with an initial password.
#[utoipa::path(
    post,
    path = "/api/custodians",
    tag = "custodians",
    summary = "Create a custodian (admins)",
    request_body = CreateCustodian,
    responses(
        (status = 201, description = "Accepted", body = CustodianAccepted, headers(("Location" = String, description = "The new resource"), ("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    JsonBody(request): JsonBody<CreateCustodian>,
) -> Result<Accepted<CustodianAccepted>, Problem> {
    authorize(&caller, Action::ManageCustodians)?;
    let id = custodian_id_for_email(&request.email);
    let command = CustodianCommand::Create {
        id,
        email: request.email,
        name: request.name,
        role: request.role,
        password_hash: hash_password(request.password).await?,
        phone: request.phone,
        at: Utc::now(),
    };
    run(&state, &caller, &context, id, command, StatusCode::CREATED).await
}

/// Gives a custodian another role.
#[utoipa::path(
    put,
    path = "/api/custodians/{id}/role",
    tag = "custodians",
    summary = "Give a custodian another role (admins)",
    params(("id" = Uuid, Path, description = "The resource's id")),
    request_body = ChangeRole,
    responses(
        (status = 200, description = "Accepted", body = CustodianAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
    JsonBody(request): JsonBody<ChangeRole>,
) -> Result<Accepted<CustodianAccepted>, Problem> {
    authorize(&caller, Action::ManageCustodians)?;
    let command = CustodianCommand::ChangeRole {
        role: request.role,
        at: Utc::now(),
    };
    run(
        &state,
        &caller,
        &context,
        CustodianId(id),
        command,
        StatusCode::OK,
    )
    .await
}

/// Revokes a custodian's access.
#[utoipa::path(
    delete,
    path = "/api/custodians/{id}",
    tag = "custodians",
    summary = "Revoke a custodian's access (admins)",
    params(("id" = Uuid, Path, description = "The resource's id")),
    responses(
        (status = 200, description = "Accepted", body = CustodianAccepted, headers(("Keryu-Position" = u64, description = "Log position of the last event appended"))),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    IdPath(id): IdPath,
) -> Result<Accepted<CustodianAccepted>, Problem> {
    authorize(&caller, Action::ManageCustodians)?;
    let command = CustodianCommand::Deactivate { at: Utc::now() };
    run(
        &state,
        &caller,
        &context,
        CustodianId(id),
        command,
        StatusCode::OK,
    )
    .await
}

/// Exchanges an active custodian's email and password for a token.
#[utoipa::path(
    post,
    path = "/api/auth/token",
    tag = "auth",
    summary = "Exchange an email and password for a bearer token",
    request_body = Login,
    responses(
        (status = 200, description = "A bearer token", body = TokenResponse),
        (status = "4XX", description = "A problem", body = ProblemDocument, content_type = "application/problem+json"),
    ),
)]
pub async fn token(
    State(state): State<AppState>,
    JsonBody(login): JsonBody<Login>,
) -> Result<Json<TokenResponse>, Problem> {
    let Some(issuer) = state.issuer() else {
        return Err(Problem::new(
            ProblemKind::NotFound,
            "this deployment does not mint tokens",
        ));
    };
    let refused = || Problem::new(ProblemKind::Unauthenticated, "wrong email or password");
    let custodian = match login.email.parse::<Email>() {
        Ok(email) => {
            load::<Custodian>(&state, custodian_id_for_email(&email))
                .await?
                .state
        }
        Err(_) => Custodian::default(),
    };
    let hash = custodian.password_hash.clone().filter(|_| custodian.active);
    if !verify_password(login.password, hash).await {
        return Err(refused());
    }
    let (Some(id), Some(role)) = (custodian.id, custodian.role) else {
        return Err(refused());
    };
    let access_token = issuer.issue(&id.to_string(), role).map_err(|error| {
        tracing::error!(%error, "could not sign a token");
        Problem::new(ProblemKind::Internal, "could not sign a token")
    })?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: issuer.lifetime_seconds(),
    }))
}
