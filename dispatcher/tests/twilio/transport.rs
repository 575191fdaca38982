//! Failures below HTTP: nothing listening, nothing answering.

use std::time::{Duration, Instant};

use keryu_dispatcher::twilio::{SendError, TwilioClient, TwilioSettings};
use keryu_domain::notification::FailureKind;
use keryu_infra::config::Secret;
use tokio::net::TcpListener;

use crate::support::{RECIPIENT, SENDER, closed_port, text};

const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

fn client(base: String, request_timeout: Duration) -> TwilioClient {
    TwilioClient::new(TwilioSettings {
        api_base: base,
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: Secret::new("token"),
        connect_timeout: Duration::from_secs(1),
        request_timeout,
    })
    .unwrap()
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_unreachable() {
    // The kernel completes the handshake and buffers the request; nobody ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let client = client(base, Duration::from_millis(300));

    let started = Instant::now();
    let error = client
        .create_message(&text(SENDER, RECIPIENT))
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            SendError::Unreachable {
                timed_out: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), FailureKind::Transient);
    assert_eq!(error.code(), None);
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(listener);
}

#[tokio::test]
async fn a_refused_connection_is_unreachable_without_a_timeout() {
    let base = format!("http://{}", closed_port().await);

    let error = client(base, Duration::from_secs(2))
        .fetch_message("SM00000000000000000000000000000000")
        .await
        .unwrap_err();

    assert!(
        matches!(&error, SendError::Unreachable { timed_out: false, reason } if !reason.is_empty()),
        "{error:?}"
    );
    assert_eq!(error.kind(), FailureKind::Transient);
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let settings = |api_base: &str, account_sid: &str| TwilioSettings {
        api_base: api_base.to_owned(),
        account_sid: account_sid.to_owned(),
        auth_token: Secret::new("token"),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
    };
    assert!(TwilioClient::new(settings("api.twilio.com", ACCOUNT_SID)).is_err());
    assert!(TwilioClient::new(settings("https://api.twilio.com", "AC123")).is_err());
    assert!(TwilioClient::new(settings("https://api.twilio.com/", ACCOUNT_SID)).is_ok());
}
