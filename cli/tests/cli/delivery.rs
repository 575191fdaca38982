//! Delivery end to end: `keryu serve` (API, projector, relay, timers, dispatcher) against
//! `keryu twilio-sim` over real HTTP, real PostgreSQL and real NATS JetStream.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::Deployment;

/// The simulator's record of messages to `to`.
async fn sent_to(deployment: &Deployment, to: &str) -> Vec<Value> {
    deployment
        .sim_messages()
        .await
        .into_iter()
        .filter(|message| {
            message["to"]
                .as_str()
                .is_some_and(|address| address.ends_with(to))
        })
        .collect()
}

#[tokio::test]
async fn a_notification_is_sent_then_delivered_and_read_through_signed_callbacks() {
    let deployment = Deployment::start(&["--callback-delay-ms", "50"], &[]).await;
    let subject = deployment.subject("+15551110001").await;
    let id = deployment
        .notify(json!({ "subject_id": subject, "body": "Hola Ana" }))
        .await;
    let row = deployment.wait_for_status(&id, &["read"], 30).await;
    assert_eq!(
        row["attempts"].as_u64().or(row["total_attempts"].as_u64()),
        Some(1),
        "{row}"
    );
    let sent = sent_to(&deployment, "+15551110001").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["body"], "Hola Ana");
    deployment.stop().await;
}

#[tokio::test]
async fn a_scheduled_notification_is_sent_after_its_time_not_before() {
    let deployment = Deployment::start(&[], &[]).await;
    let subject = deployment.subject("+15551110002").await;
    let due = chrono::Utc::now() + chrono::Duration::seconds(2);
    let id = deployment
        .notify(json!({ "subject_id": subject, "body": "Later", "scheduled_for": due }))
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(sent_to(&deployment, "+15551110002").await.is_empty());
    deployment
        .wait_for_status(&id, &["sent", "delivered", "read"], 30)
        .await;
    assert!(chrono::Utc::now() >= due);
    let sent = sent_to(&deployment, "+15551110002").await;
    assert_eq!(sent.len(), 1);
    deployment.stop().await;
}

#[tokio::test]
async fn transient_faults_are_retried_and_permanent_errors_are_not() {
    let deployment = Deployment::start(&["--fail-first", "2"], &[]).await;
    let flaky = deployment.subject("+15551110003").await;
    let id = deployment
        .notify(json!({ "subject_id": flaky, "body": "Eventually", "max_attempts": 3 }))
        .await;
    let row = deployment
        .wait_for_status(&id, &["sent", "delivered", "read"], 30)
        .await;
    assert_eq!(row["attempt"], 3, "{row}");

    // Twilio's magic number for an invalid `To`: 21211, permanent, refused on the first
    // attempt (the simulator checks numbers before injecting faults) and never retried.
    let invalid = deployment.subject("+15005550001").await;
    let id = deployment
        .notify(json!({ "subject_id": invalid, "body": "Never", "max_attempts": 5 }))
        .await;
    let row = deployment.wait_for_status(&id, &["failed"], 30).await;
    assert_eq!(row["attempt"], 1, "{row}");
    assert_eq!(row["last_error_code"], 21211, "{row}");
    deployment.stop().await;
}

#[tokio::test]
async fn after_max_attempts_a_manual_retry_delivers() {
    let deployment = Deployment::start(&["--fail-first", "2"], &[]).await;
    let subject = deployment.subject("+15551110004").await;
    let id = deployment
        .notify(json!({ "subject_id": subject, "body": "Persist", "max_attempts": 2 }))
        .await;
    deployment.wait_for_status(&id, &["failed"], 30).await;
    let (status, body) = deployment
        .post(&format!("/api/notifications/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    deployment
        .wait_for_status(&id, &["sent", "delivered", "read"], 30)
        .await;
    assert_eq!(sent_to(&deployment, "+15551110004").await.len(), 1);
    deployment.stop().await;
}

#[tokio::test]
async fn an_unsigned_callback_is_refused() {
    let deployment = Deployment::start(&[], &[]).await;
    let answer = deployment
        .client
        .post(format!(
            "{}/webhooks/twilio/status?notification=00000000-0000-0000-0000-000000000000",
            deployment.base
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("MessageSid=SM0123&MessageStatus=delivered")
        .send()
        .await
        .expect("callback");
    assert_eq!(answer.status().as_u16(), 403);
    deployment.stop().await;
}

#[tokio::test]
async fn an_alarm_sends_one_message_per_custodian() {
    let deployment = Deployment::start(&[], &[]).await;
    let mut custodians = Vec::new();
    for (n, phone) in ["+15551120001", "+15551120002"].iter().enumerate() {
        let (status, body) = deployment
            .post(
                "/api/custodians",
                &json!({
                    "email": format!("c{n}@example.org"),
                    "name": format!("Custodian {n}"),
                    "role": "custodian",
                    "password": "correct horse battery staple",
                    "phone": phone,
                }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        custodians.push(body["id"].clone());
    }
    let subject = deployment.subject("+15551120009").await;
    let (status, body) = deployment
        .client
        .put(format!(
            "{}/api/subjects/{subject}/custodians",
            deployment.base
        ))
        .bearer_auth(&deployment.admin)
        .json(&json!({ "custodian_ids": custodians }))
        .send()
        .await
        .map(|answer| (answer.status().as_u16(), ()))
        .expect("assign");
    assert!(status < 300, "{body:?}");
    let (status, body) = deployment
        .post(
            "/api/alarms",
            &json!({ "subject_id": subject, "situation": "lost", "description": "Left home at 9." }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for _ in 0..300 {
        if deployment.sim_messages().await.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a duplicate the time to show up, were there one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = deployment.sim_messages().await;
    let mut recipients: Vec<&str> = sent
        .iter()
        .filter_map(|message| message["to"].as_str())
        .collect();
    recipients.sort_unstable();
    assert_eq!(
        recipients,
        ["whatsapp:+15551120001", "whatsapp:+15551120002"],
        "{sent:?}"
    );
    deployment.stop().await;
}

/// Notifications to distinct recipients; returns (id, recipient) pairs.
async fn burst(deployment: &Deployment, count: usize, prefix: &str) -> Vec<(String, String)> {
    let mut created = Vec::new();
    for n in 0..count {
        let phone = format!("{prefix}{n:04}");
        let subject = deployment.subject(&phone).await;
        let id = deployment
            .notify(json!({ "subject_id": subject, "body": format!("Message {n}") }))
            .await;
        created.push((id, phone));
    }
    created
}

/// How many times the simulator received a message for each recipient.
async fn receipts(deployment: &Deployment) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in deployment.sim_messages().await {
        if let Some(to) = message["to"].as_str() {
            *counts
                .entry(to.trim_start_matches("whatsapp:").to_owned())
                .or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn two_dispatchers_on_one_consumer_send_each_notification_exactly_once() {
    let mut deployment = Deployment::start(&["--latency-ms", "20"], &[]).await;
    let second = deployment.spawn("dispatcher");
    deployment.processes.push(second);
    let created = burst(&deployment, 40, "+1555113").await;
    for (id, _) in &created {
        deployment
            .wait_for_status(id, &["sent", "delivered", "read"], 60)
            .await;
    }
    let counts = receipts(&deployment).await;
    for (_, phone) in &created {
        assert_eq!(counts.get(phone), Some(&1), "{phone}: {counts:?}");
    }
    deployment.stop().await;
}

#[tokio::test]
async fn a_dispatcher_killed_mid_load_loses_nothing_and_sends_twice_only_when_unknown() {
    let lease = [("KERYU_DISPATCH_LEASE_SECONDS", "2")];
    let mut deployment = Deployment::start(&["--latency-ms", "50"], &lease).await;
    // A dispatcher-only process does the sending; `serve`'s own dispatcher is the survivor.
    let victim = deployment.spawn("dispatcher");
    deployment.processes.push(victim);
    let created = burst(&deployment, 40, "+1555114").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victim = deployment.processes.last_mut().expect("the victim");
    victim.signal("KILL").await;
    let restarted = deployment.spawn("dispatcher");
    deployment.processes.push(restarted);

    for (id, _) in &created {
        deployment
            .wait_for_status(id, &["sent", "delivered", "read"], 90)
            .await;
    }
    let counts = receipts(&deployment).await;
    for (id, phone) in &created {
        let sends = counts.get(phone).copied().unwrap_or(0);
        assert!(sends >= 1, "{phone} was never sent");
        if sends > 1 {
            let history = deployment.get(&format!("/api/notifications/{id}")).await;
            assert!(
                history["total_attempts"].as_u64().unwrap_or(0) > 1,
                "{phone} was sent {sends} times without an unknown outcome: {history}"
            );
        }
    }
    deployment.stop().await;
}
