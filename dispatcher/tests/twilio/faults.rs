//! Magic numbers, injected faults and the per-sender rate limit, and how the client classifies
//! each.

use std::time::Duration;

use keryu_dispatcher::simulator::SimulatorConfig;
use keryu_dispatcher::twilio::SendError;
use keryu_domain::notification::FailureKind::{self, Permanent, Transient};

use crate::support::{RECIPIENT, SENDER, eventually, quick_config, start, template, text};

fn rejected(error: &SendError) -> (u16, i64, FailureKind) {
    match error {
        SendError::Rejected {
            http_status, code, ..
        } => (*http_status, *code, error.kind()),
        SendError::Unreachable { .. } => panic!("expected a rejection: {error:?}"),
    }
}

#[tokio::test]
async fn magic_numbers_fail_synchronously_with_their_codes() {
    let sim = start(quick_config()).await;
    let client = sim.client();
    let cases = [
        ("+15005550001", RECIPIENT, 21212, Permanent),
        ("+15005550007", RECIPIENT, 21606, Permanent),
        ("+15005550008", RECIPIENT, 21611, Transient),
        ("+15005550006", "+15005550001", 21211, Permanent),
        ("+15005550006", "+15005550002", 21612, Permanent),
        ("+15005550006", "+15005550003", 21408, Permanent),
        ("+15005550006", "+15005550004", 21610, Permanent),
        ("+15005550006", "+15005550009", 21614, Permanent),
    ];
    for (from, to, code, kind) in cases {
        let error = client.create_message(&text(from, to)).await.unwrap_err();
        assert_eq!(rejected(&error), (400, code, kind), "From {from} To {to}");
    }
    let accepted = client
        .create_message(&text("+15005550006", RECIPIENT))
        .await
        .unwrap();
    assert_eq!(accepted.status, "queued");
}

#[tokio::test]
async fn magic_recipients_fail_after_being_accepted() {
    let sim = start(quick_config()).await;
    let client = sim.client();
    let unreachable = client
        .create_message(&text(SENDER, "+15005550010"))
        .await
        .unwrap();
    let outside_window = client
        .create_message(&text(SENDER, "+15005550011"))
        .await
        .unwrap();
    let template_outside_window = client
        .create_message(&template(SENDER, "+15005550011"))
        .await
        .unwrap();

    let settled = |sid: String, status: &'static str| {
        let client = client.clone();
        eventually(move || {
            let client = client.clone();
            let sid = sid.clone();
            async move {
                let fetched = client.fetch_message(&sid).await.unwrap();
                (fetched.status == status).then_some(fetched)
            }
        })
    };
    let undelivered = settled(unreachable.sid, "undelivered").await;
    assert_eq!(undelivered.error_code, Some(30003));
    assert!(undelivered.date_sent.is_some());
    let failed = settled(outside_window.sid, "failed").await;
    assert_eq!(failed.error_code, Some(63016));
    assert_eq!(failed.date_sent, None);
    let read = settled(template_outside_window.sid, "read").await;
    assert_eq!(read.error_code, None);
}

#[tokio::test]
async fn the_first_creates_for_each_recipient_fail_with_a_transient_503() {
    let sim = start(SimulatorConfig {
        fail_first_per_recipient: 2,
        ..quick_config()
    })
    .await;
    let client = sim.client();

    for _ in 0..2 {
        let error = client
            .create_message(&text(SENDER, RECIPIENT))
            .await
            .unwrap_err();
        assert_eq!(rejected(&error), (503, 20503, Transient));
    }
    client
        .create_message(&text(SENDER, RECIPIENT))
        .await
        .unwrap();
    // Another recipient has its own count.
    let error = client
        .create_message(&text(SENDER, "+15552220000"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(20503));
    assert_eq!(sim.messages().await.messages.len(), 1);
}

#[tokio::test]
async fn a_fault_rate_of_one_fails_every_create() {
    let sim = start(SimulatorConfig {
        fault_rate: 1.0,
        ..quick_config()
    })
    .await;

    let error = sim
        .client()
        .create_message(&text(SENDER, RECIPIENT))
        .await
        .unwrap_err();

    assert_eq!(rejected(&error), (503, 20503, Transient));
}

#[tokio::test]
async fn a_sender_above_its_rate_gets_429_with_retry_after() {
    let sim = start(SimulatorConfig {
        sender_mps: Some(1.0),
        ..quick_config()
    })
    .await;
    let client = sim.client();

    client
        .create_message(&text(SENDER, RECIPIENT))
        .await
        .unwrap();
    let error = client
        .create_message(&text(SENDER, RECIPIENT))
        .await
        .unwrap_err();

    assert_eq!(rejected(&error), (429, 20429, Transient));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
    // The limit is per sender.
    client
        .create_message(&text("+14155238887", RECIPIENT))
        .await
        .unwrap();
}
