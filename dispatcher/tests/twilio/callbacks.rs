//! Status callbacks: posted to a tiny receiver, signed so that `verify` accepts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Form, Router};
use keryu_dispatcher::simulator::SimulatorConfig;
use keryu_dispatcher::twilio::OutgoingMessage;
use keryu_infra::twilio_signature;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::{RECIPIENT, SENDER, quick_config, start, text};

/// One callback as the receiver saw it.
#[derive(Debug)]
struct Callback {
    signature: String,
    idempotency_token: String,
    fields: Vec<(String, String)>,
}

impl Callback {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Clone)]
struct Receiver {
    seen: mpsc::UnboundedSender<Callback>,
    /// Answers 500 to this many requests first.
    failures_left: Arc<AtomicU32>,
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let _ = receiver.seen.send(Callback {
        signature: header("X-Twilio-Signature"),
        idempotency_token: header("I-Twilio-Idempotency-Token"),
        fields,
    });
    let failing = receiver
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// Starts a receiver answering 500 to its first `failures` requests; returns its callback URL
/// (with a query string, which the signature covers) and what it receives.
async fn receiver(failures: u32) -> (String, mpsc::UnboundedReceiver<Callback>) {
    let (seen, received) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/webhooks/twilio/status", post(receive))
        .with_state(Receiver {
            seen,
            failures_left: Arc::new(AtomicU32::new(failures)),
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/twilio/status?tenant=acme",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn with_callbacks() -> SimulatorConfig {
    SimulatorConfig {
        callbacks: true,
        callback_delay: Duration::from_millis(30),
        ..quick_config()
    }
}

fn to_with_callback(to: &str, url: &str) -> OutgoingMessage {
    OutgoingMessage {
        status_callback: Some(url.to_owned()),
        ..text(SENDER, to)
    }
}

async fn next(received: &mut mpsc::UnboundedReceiver<Callback>) -> Callback {
    tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("a callback within 5 s")
        .expect("the receiver is running")
}

#[tokio::test]
async fn signed_callbacks_report_sent_delivered_and_read() {
    let sim = start(with_callbacks()).await;
    let (url, mut received) = receiver(0).await;
    let token = sim.config.auth_token.expose();

    let created = sim
        .client()
        .create_message(&to_with_callback(RECIPIENT, &url))
        .await
        .unwrap();

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let callback = next(&mut received).await;
        assert!(
            twilio_signature::verify(token, &url, &callback.fields, &callback.signature),
            "{callback:?}"
        );
        assert!(!twilio_signature::verify(
            "wrong-token",
            &url,
            &callback.fields,
            &callback.signature
        ));
        assert_eq!(callback.field("MessageSid"), Some(created.sid.as_str()));
        assert_eq!(callback.field("SmsSid"), Some(created.sid.as_str()));
        assert_eq!(
            callback.field("AccountSid"),
            Some(sim.config.account_sid.as_str())
        );
        assert_eq!(callback.field("To"), Some("whatsapp:+15552229999"));
        assert_eq!(callback.field("From"), Some("whatsapp:+14155238886"));
        assert_eq!(callback.field("ApiVersion"), Some("2010-04-01"));
        assert_eq!(callback.field("ChannelPrefix"), Some("whatsapp"));
        assert_eq!(callback.field("ChannelToAddress"), Some("+1555222XXXX"));
        assert_eq!(callback.field("MessageStatus"), callback.field("SmsStatus"));
        assert_eq!(callback.field("ErrorCode"), None);
        assert_eq!(callback.idempotency_token.len(), 32);
        statuses.push((
            callback
                .field("MessageStatus")
                .unwrap_or_default()
                .to_owned(),
            callback.field("EventType").map(str::to_owned),
        ));
    }
    assert_eq!(
        statuses,
        [
            ("sent".to_owned(), None),
            ("delivered".to_owned(), Some("DELIVERED".to_owned())),
            ("read".to_owned(), Some("READ".to_owned())),
        ]
    );
    // Nothing for `queued`, nothing after `read`.
    let extra = tokio::time::timeout(Duration::from_millis(200), received.recv()).await;
    assert!(extra.is_err(), "{extra:?}");
}

#[tokio::test]
async fn an_unreachable_handset_is_reported_undelivered_with_30003() {
    let sim = start(with_callbacks()).await;
    let (url, mut received) = receiver(0).await;

    sim.client()
        .create_message(&to_with_callback("+15005550010", &url))
        .await
        .unwrap();

    let sent = next(&mut received).await;
    assert_eq!(sent.field("MessageStatus"), Some("sent"));
    let undelivered = next(&mut received).await;
    assert_eq!(undelivered.field("MessageStatus"), Some("undelivered"));
    assert_eq!(undelivered.field("ErrorCode"), Some("30003"));
    assert!(twilio_signature::verify(
        sim.config.auth_token.expose(),
        &url,
        &undelivered.fields,
        &undelivered.signature
    ));
}

#[tokio::test]
async fn a_refused_callback_is_retried_with_the_same_idempotency_token() {
    let sim = start(with_callbacks()).await;
    let (url, mut received) = receiver(1).await;

    sim.client()
        .create_message(&to_with_callback(RECIPIENT, &url))
        .await
        .unwrap();

    let refused = next(&mut received).await;
    let retried = next(&mut received).await;
    assert_eq!(refused.field("MessageStatus"), Some("sent"));
    assert_eq!(retried.field("MessageStatus"), Some("sent"));
    assert_eq!(refused.idempotency_token, retried.idempotency_token);
    assert_eq!(refused.signature, retried.signature);
    assert_eq!(
        next(&mut received).await.field("MessageStatus"),
        Some("delivered")
    );
}

#[tokio::test]
async fn no_callbacks_are_posted_when_they_are_off() {
    let sim = start(SimulatorConfig {
        callbacks: false,
        ..with_callbacks()
    })
    .await;
    let (url, mut received) = receiver(0).await;

    sim.client()
        .create_message(&to_with_callback(RECIPIENT, &url))
        .await
        .unwrap();

    let nothing = tokio::time::timeout(Duration::from_millis(300), received.recv()).await;
    assert!(nothing.is_err(), "{nothing:?}");
    assert_eq!(
        sim.messages().await.messages[0].status_callback.as_deref(),
        Some(url.as_str())
    );
}
