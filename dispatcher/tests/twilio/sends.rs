//! Accepted messages, authentication, validation and the simulator's record of them.

use std::collections::BTreeMap;

use keryu_dispatcher::simulator::SimulatorConfig;
use keryu_dispatcher::twilio::{OutgoingContent, SendError};
use keryu_domain::notification::FailureKind;

use crate::support::{
    RECIPIENT, SENDER, TEMPLATE, eventually, quick_config, start, template, text,
};

#[tokio::test]
async fn a_create_answers_201_with_a_queued_message_resource() {
    let sim = start(quick_config()).await;
    let client = sim.client();

    let created = client
        .create_message(&text(SENDER, RECIPIENT))
        .await
        .unwrap();

    assert!(
        created.sid.starts_with("SM") && created.sid.len() == 34,
        "{}",
        created.sid
    );
    assert_eq!(created.status, "queued");
    assert_eq!(created.to.as_deref(), Some("whatsapp:+15552229999"));
    assert_eq!(created.from.as_deref(), Some("whatsapp:+14155238886"));
    assert_eq!(
        created.body.as_deref(),
        Some("Your appointment is at 14:00")
    );
    assert_eq!(
        created.account_sid.as_deref(),
        Some(sim.config.account_sid.as_str())
    );
    assert_eq!(created.direction.as_deref(), Some("outbound-api"));
    assert_eq!(created.api_version.as_deref(), Some("2010-04-01"));
    assert_eq!(created.error_code, None);
    assert_eq!(created.date_sent, None);
    assert!(
        created
            .date_created
            .as_deref()
            .is_some_and(|date| date.ends_with("+0000")),
        "RFC 2822 in GMT: {:?}",
        created.date_created
    );
    assert_eq!(
        created.uri,
        Some(format!(
            "/2010-04-01/Accounts/{}/Messages/{}.json",
            sim.config.account_sid, created.sid
        ))
    );
}

#[tokio::test]
async fn a_fetched_message_moves_from_queued_to_read() {
    let sim = start(quick_config()).await;
    let client = sim.client();
    let created = client
        .create_message(&text(SENDER, RECIPIENT))
        .await
        .unwrap();

    let read = eventually(|| async {
        let fetched = client.fetch_message(&created.sid).await.unwrap();
        (fetched.status == "read").then_some(fetched)
    })
    .await;

    assert_eq!(read.sid, created.sid);
    assert!(read.date_sent.is_some());
    assert_eq!(read.error_code, None);
}

#[tokio::test]
async fn an_unknown_sid_is_a_permanent_20404() {
    let sim = start(quick_config()).await;

    let error = sim
        .client()
        .fetch_message("SM00000000000000000000000000000000")
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            SendError::Rejected {
                http_status: 404,
                code: 20404,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), FailureKind::Permanent);
}

#[tokio::test]
async fn wrong_credentials_are_a_permanent_20003() {
    let sim = start(quick_config()).await;

    let error = sim
        .client_with("not-the-token")
        .create_message(&text(SENDER, RECIPIENT))
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            SendError::Rejected {
                http_status: 401,
                code: 20003,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), FailureKind::Permanent);
    let other_account = crate::support::client(
        &sim.base,
        "AC11111111111111111111111111111111",
        sim.config.auth_token.expose(),
    );
    let error = other_account.fetch_message("SM0").await.unwrap_err();
    assert_eq!(error.code(), Some(20003));
    assert!(sim.messages().await.messages.is_empty());
}

#[tokio::test]
async fn a_template_is_recorded_with_its_content_variables() {
    let sim = start(quick_config()).await;

    let created = sim
        .client()
        .create_message(&template(SENDER, RECIPIENT))
        .await
        .unwrap();

    let listed = sim.messages().await;
    let [message] = listed.messages.as_slice() else {
        panic!("one message expected: {listed:?}");
    };
    assert_eq!(message.sid, created.sid);
    assert_eq!(message.to, "whatsapp:+15552229999");
    assert_eq!(message.from, "whatsapp:+14155238886");
    assert_eq!(message.body, None);
    assert_eq!(message.content_sid.as_deref(), Some(TEMPLATE));
    assert_eq!(
        message.content_variables,
        Some(BTreeMap::from([
            ("1".to_owned(), "Ana".to_owned()),
            ("2".to_owned(), "14:00".to_owned()),
        ]))
    );
    assert_eq!(message.status_callback, None);
    assert_eq!(
        message.received_at.timestamp_micros(),
        message.received_at_micros
    );
    let age = chrono::Utc::now() - message.received_at;
    assert!(
        age >= chrono::Duration::zero() && age < chrono::Duration::seconds(30),
        "{age}"
    );
}

#[tokio::test]
async fn invalid_requests_are_refused_with_twilios_codes() {
    let sim = start(quick_config()).await;
    let client = sim.client();
    let mut bad_template = template(SENDER, RECIPIENT);
    bad_template.content = OutgoingContent::Template {
        content_sid: "HX-not-a-sid".to_owned(),
        variables: BTreeMap::new(),
    };
    let mut long_body = text(SENDER, RECIPIENT);
    long_body.content = OutgoingContent::Body("x".repeat(1601));
    let mut bad_callback = text(SENDER, RECIPIENT);
    bad_callback.status_callback = Some("not a url".to_owned());
    let bad_number = text(SENDER, "5552229999");

    for (message, code) in [
        (bad_template, 21655),
        (long_body, 21617),
        (bad_callback, 21609),
        (bad_number, 21211),
    ] {
        let error = client.create_message(&message).await.unwrap_err();
        assert!(
            matches!(error, SendError::Rejected { http_status: 400, code: c, .. } if c == code),
            "{code}: {error:?}"
        );
        assert_eq!(error.kind(), FailureKind::Permanent, "{code}");
    }
    assert!(sim.messages().await.messages.is_empty());
}

#[tokio::test]
async fn the_oldest_messages_are_dropped_beyond_the_maximum_and_reset_forgets_all() {
    let sim = start(SimulatorConfig {
        max_messages: 2,
        ..quick_config()
    })
    .await;
    let client = sim.client();
    let mut sids = Vec::new();
    for _ in 0..3 {
        sids.push(
            client
                .create_message(&text(SENDER, RECIPIENT))
                .await
                .unwrap()
                .sid,
        );
    }

    let listed = sim.messages().await;
    let listed_sids: Vec<&str> = listed.messages.iter().map(|m| m.sid.as_str()).collect();
    assert_eq!(listed_sids, [sids[1].as_str(), sids[2].as_str()]);
    assert_eq!(listed.evicted, 1);
    assert_eq!(
        client.fetch_message(&sids[0]).await.unwrap_err().code(),
        Some(20404)
    );

    let reset = reqwest::Client::new()
        .delete(format!("{}/sim/messages", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), reqwest::StatusCode::NO_CONTENT);
    assert!(sim.messages().await.messages.is_empty());
}
