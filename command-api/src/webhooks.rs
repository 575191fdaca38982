//! `POST /webhooks/twilio/status`: Twilio's status callbacks, the only route authenticated by a
//! signature instead of a bearer token.
//!
//! Every message Keryu sends asks Twilio to call back
//! `<PUBLIC_BASE_URL>/webhooks/twilio/status?notification=<id>`. The notification id in the URL
//! is covered by the signature (Twilio signs the URL it requested), so the callback names its
//! notification authentically and no read model — which may lag behind — is needed to find it;
//! the `MessageSid` must then match the provider message id the notification recorded, which
//! turns a late callback about an earlier attempt's message into a no-op.
//!
//! Answers: 403 for a missing or wrong `X-Twilio-Signature` (nothing is recorded); 204 once the
//! status is recorded or found to change nothing (repeats, statuses that would move backwards,
//! intermediate statuses such as `sending`); 503 with `Retry-After` when the callback overtook
//! the dispatcher's own record of the send (the notification is still being processed), so
//! that a retried callback lands once the send is recorded.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use keryu_domain::notification::{
    Notification, NotificationCommand, NotificationStatus, ProviderStatus,
};
use keryu_domain::{DomainError, NotificationId};
use keryu_infra::config::{STATUS_CALLBACK_PATH, Secret};
use keryu_infra::event_store::{Actor, EventMetadata, StreamName};
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository::{self, CommandError};
use keryu_infra::twilio_signature;
use serde::Deserialize;
use uuid::Uuid;

use crate::problem::{Problem, ProblemKind};

/// What the status webhook needs.
#[derive(Clone)]
pub struct StatusWebhook {
    store: PgEventStore,
    auth_token: Secret,
    public_base_url: String,
    command_attempts: u32,
}

impl StatusWebhook {
    /// A webhook recording into `store`, checking signatures with `auth_token` against URLs
    /// under `public_base_url` (how Twilio reaches this deployment).
    pub fn new(
        store: PgEventStore,
        auth_token: Secret,
        public_base_url: String,
        command_attempts: u32,
    ) -> Self {
        StatusWebhook {
            store,
            auth_token,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            command_attempts,
        }
    }

    /// The webhook's route.
    pub fn router(self) -> Router {
        Router::new()
            .route(STATUS_CALLBACK_PATH, post(status_callback))
            .with_state(self)
    }
}

/// The query string Keryu puts in its callback URLs.
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    notification: Option<Uuid>,
}

async fn status_callback(
    State(webhook): State<StatusWebhook>,
    uri: Uri,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|_| {
        Problem::new(
            ProblemKind::MalformedRequest,
            "the body is not a form-encoded Twilio callback",
        )
    })?;
    let signed_url = match uri.query() {
        Some(query) => format!("{}{}?{query}", webhook.public_base_url, uri.path()),
        None => format!("{}{}", webhook.public_base_url, uri.path()),
    };
    let signature = headers
        .get(twilio_signature::HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !twilio_signature::verify(webhook.auth_token.expose(), &signed_url, &params, signature) {
        tracing::warn!("refused a status callback with a missing or wrong signature");
        return Err(Problem::new(
            ProblemKind::Forbidden,
            "the X-Twilio-Signature does not match",
        ));
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let Some(status) = field("MessageStatus").and_then(provider_status) else {
        // queued, sending, sent…: the dispatcher records the send itself.
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let Some(notification) = query.notification.map(NotificationId) else {
        tracing::info!("ignored a status callback that names no notification");
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let message_sid = field("MessageSid").unwrap_or_default();
    let stream = StreamName::of::<Notification>(notification.0)
        .map_err(|_| Problem::new(ProblemKind::Internal, "invalid stream name"))?;
    let current = repository::load::<Notification>(&webhook.store, &stream).await?;
    match current.state.status {
        NotificationStatus::Processing => return Ok(retry_later()),
        _ if current.state.provider_message_id.as_deref() != Some(message_sid) => {
            tracing::info!(notification = %notification.0, "ignored a status callback about another message");
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        _ => {}
    }
    let command = NotificationCommand::RecordProviderStatus {
        status,
        error_code: field("ErrorCode").and_then(|code| code.parse().ok()),
        error_message: field("ErrorMessage").map(str::to_owned),
        at: Utc::now(),
    };
    let metadata = EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: Some(Actor {
            id: "twilio".to_owned(),
            role: "provider".to_owned(),
        }),
        traceparent: None,
    };
    // Decided against the state just checked; the stream is read again only if it moved.
    match repository::execute_from::<Notification>(
        &webhook.store,
        &stream,
        current,
        command,
        &metadata,
        webhook.command_attempts,
    )
    .await
    {
        Ok(_) | Err(CommandError::Domain(DomainError::InvalidTransition { .. })) => {
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(error) => Err(error.into()),
    }
}

/// Twilio's final statuses that Keryu records; the others change nothing.
fn provider_status(status: &str) -> Option<ProviderStatus> {
    match status {
        "delivered" => Some(ProviderStatus::Delivered),
        "read" => Some(ProviderStatus::Read),
        "undelivered" => Some(ProviderStatus::Undelivered),
        "failed" => Some(ProviderStatus::Failed),
        _ => None,
    }
}

fn retry_later() -> Response {
    let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
