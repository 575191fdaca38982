//! `POST /webhooks/twilio/status`: signed callbacks record statuses; unsigned ones change
//! nothing.

use chrono::Utc;
use keryu_domain::notification::{
    Notification, NotificationCommand, NotificationContent, NotificationStatus,
};
use keryu_domain::{NotificationId, RetryPolicy, SubjectId};
use keryu_infra::event_store::{EventMetadata, StreamName};
use keryu_infra::repository;
use keryu_infra::twilio_signature;
use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::harness::{Api, TWILIO_AUTH_TOKEN};

const SID: &str = "SM0123456789abcdef0123456789abcdef";

async fn command(api: &Api, id: NotificationId, command: NotificationCommand) -> Notification {
    let stream = StreamName::of::<Notification>(id.0).expect("stream");
    let metadata = EventMetadata {
        correlation_id: Uuid::now_v7(),
        ..EventMetadata::default()
    };
    repository::execute::<Notification>(&api.store, &stream, command, &metadata, 3)
        .await
        .expect("command")
        .state
}

/// A notification a dispatcher has claimed; `sent` also records Twilio's acceptance.
async fn notification(api: &Api, sent: bool) -> NotificationId {
    let id = NotificationId(Uuid::now_v7());
    let at = Utc::now();
    command(
        api,
        id,
        NotificationCommand::Create {
            id,
            subject_id: SubjectId(Uuid::now_v7()),
            recipient: "+15551230001".parse().expect("phone"),
            content: NotificationContent::FreeText {
                body: "Hola".to_owned(),
            },
            scheduled_for: None,
            retry_policy: RetryPolicy::default(),
            alarm_id: None,
            at,
        },
    )
    .await;
    command(
        api,
        id,
        NotificationCommand::StartAttempt {
            dispatcher: "d1".to_owned(),
            at,
        },
    )
    .await;
    if sent {
        command(
            api,
            id,
            NotificationCommand::RecordSent {
                provider_message_id: SID.to_owned(),
                at,
            },
        )
        .await;
    }
    id
}

async fn status(api: &Api, id: NotificationId) -> NotificationStatus {
    let stream = StreamName::of::<Notification>(id.0).expect("stream");
    repository::load::<Notification>(&api.store, &stream)
        .await
        .expect("load")
        .state
        .status
}

fn fields(status: &str, sid: &str) -> Vec<(String, String)> {
    [
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "whatsapp:+14155238886"),
        ("To", "whatsapp:+15551230001"),
        ("ApiVersion", "2010-04-01"),
        ("ChannelPrefix", "whatsapp"),
    ]
    .iter()
    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
    .collect()
}

/// Posts `params` as Twilio would, signed with `token` (no header when `None`).
async fn callback(
    api: &Api,
    id: NotificationId,
    params: &[(String, String)],
    token: Option<&str>,
) -> StatusCode {
    let url = format!("{}/webhooks/twilio/status?notification={}", api.base, id.0);
    let mut request = api
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(params).expect("form"));
    if let Some(token) = token {
        request = request.header(
            twilio_signature::HEADER,
            twilio_signature::sign(token, &url, params),
        );
    }
    request.send().await.expect("callback").status()
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn signed_callbacks_move_a_sent_notification_forward_never_back(pool: PgPool) {
    let api = Api::start(pool).await;
    let id = notification(&api, true).await;
    let token = Some(TWILIO_AUTH_TOKEN);

    assert_eq!(
        callback(&api, id, &fields("sent", SID), token).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(status(&api, id).await, NotificationStatus::Sent);
    let mut read = fields("read", SID);
    read.push(("EventType".to_owned(), "READ".to_owned()));
    assert_eq!(
        callback(&api, id, &read, token).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(status(&api, id).await, NotificationStatus::Read);
    // A late `delivered` after `read`, and a duplicate `read`: accepted, nothing moves.
    assert_eq!(
        callback(&api, id, &fields("delivered", SID), token).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        callback(&api, id, &read, token).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(status(&api, id).await, NotificationStatus::Read);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_missing_or_wrong_signature_is_refused_and_changes_nothing(pool: PgPool) {
    let api = Api::start(pool).await;
    let id = notification(&api, true).await;
    let delivered = fields("delivered", SID);
    assert_eq!(
        callback(&api, id, &delivered, None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        callback(&api, id, &delivered, Some("another-token")).await,
        StatusCode::FORBIDDEN
    );
    // Signed for other fields than the ones posted (a tampered status).
    let url = format!("{}/webhooks/twilio/status?notification={}", api.base, id.0);
    let signature = twilio_signature::sign(TWILIO_AUTH_TOKEN, &url, &fields("failed", SID));
    let tampered = api
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(twilio_signature::HEADER, signature)
        .body(serde_urlencoded::to_string(&delivered).expect("form"))
        .send()
        .await
        .expect("callback");
    assert_eq!(tampered.status(), StatusCode::FORBIDDEN);
    assert_eq!(status(&api, id).await, NotificationStatus::Sent);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_callback_about_another_message_or_ahead_of_the_send_changes_nothing(pool: PgPool) {
    let api = Api::start(pool).await;
    let token = Some(TWILIO_AUTH_TOKEN);
    let sent = notification(&api, true).await;
    let other = "SMffffffffffffffffffffffffffffffff";
    assert_eq!(
        callback(&api, sent, &fields("undelivered", other), token).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(status(&api, sent).await, NotificationStatus::Sent);

    let processing = notification(&api, false).await;
    assert_eq!(
        callback(&api, processing, &fields("delivered", SID), token).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "Twilio is asked to try again once the send is recorded"
    );
    assert_eq!(
        status(&api, processing).await,
        NotificationStatus::Processing
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_undelivered_callback_records_the_error(pool: PgPool) {
    let api = Api::start(pool).await;
    let id = notification(&api, true).await;
    let mut undelivered = fields("undelivered", SID);
    undelivered.push(("ErrorCode".to_owned(), "30003".to_owned()));
    undelivered.push(("ErrorMessage".to_owned(), "Unreachable handset".to_owned()));
    assert_eq!(
        callback(&api, id, &undelivered, Some(TWILIO_AUTH_TOKEN)).await,
        StatusCode::NO_CONTENT
    );
    let stream = StreamName::of::<Notification>(id.0).expect("stream");
    let state = repository::load::<Notification>(&api.store, &stream)
        .await
        .expect("load")
        .state;
    assert_eq!(state.status, NotificationStatus::Undelivered);
    assert_eq!(state.last_error.and_then(|error| error.code), Some(30003));
}
