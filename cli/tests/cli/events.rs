//! `keryu events export|tail|replay` through the real binary, against the log a real
//! deployment wrote while delivering a notification.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use keryu_infra::event_store::{EventStore, Position};
use keryu_infra::postgres::PgEventStore;
use keryu_projections::queries::events::EventView;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Deployment, MASTER_KEY, Running, keryu, stderr};
use keryu_infra::personal_data::MasterKey;

impl Deployment {
    /// The deployment's log, read through the store.
    async fn store(&self) -> PgEventStore {
        let pool = PgPool::connect(&self.database.url())
            .await
            .expect("connect");
        PgEventStore::new(pool, MasterKey::from_base64(MASTER_KEY).expect("valid key"))
    }

    /// Runs `keryu <args>` with this deployment's configuration; fails the test on failure.
    fn keryu_ok(&self, args: &[&str]) -> std::process::Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        let output = keryu(args, &env);
        assert!(
            output.status.success(),
            "keryu {args:?}: {}",
            stderr(&output)
        );
        output
    }

    /// `keryu events replay …`, parsed.
    fn replay(&self, args: &[&str]) -> Value {
        let mut all = vec!["events", "replay"];
        all.extend_from_slice(args);
        let output = self.keryu_ok(&all);
        serde_json::from_slice(&output.stdout).expect("replay prints JSON")
    }
}

fn lines(stdout: &[u8]) -> Vec<EventView> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one event per line"))
        .collect()
}

/// A notification delivered and read: the log holds the subject, every step of the delivery and
/// the callbacks, written by the API, the dispatcher and the webhook.
async fn delivered(deployment: &Deployment, phone: &str) -> (String, String) {
    let subject = deployment.subject(phone).await;
    let id = deployment
        .notify(json!({ "subject_id": subject, "body": "Hola Ana" }))
        .await;
    deployment.wait_for_status(&id, &["read"], 30).await;
    (subject, id)
}

#[tokio::test]
async fn an_export_is_the_log_line_for_line_and_matches_the_api_stream() {
    let deployment = Deployment::start(&["--callback-delay-ms", "50"], &[]).await;
    delivered(&deployment, "+15551170001").await;
    let store = deployment.store().await;
    let head = store.head_position().await.expect("head");
    let log: Vec<EventView> = store
        .read_all(Position::START, 10_000)
        .await
        .expect("read")
        .iter()
        .filter(|event| event.position <= head)
        .map(EventView::from)
        .collect();
    assert!(log.len() >= 6, "{log:?}");
    assert!(
        log.iter().any(|event| event
            .metadata
            .actor
            .as_ref()
            .is_some_and(|actor| actor.role == "admin")),
        "the API's commands carry their actor"
    );

    let to = head.to_string();
    let exported = deployment.keryu_ok(&["events", "export", "--to", &to]);
    assert_eq!(lines(&exported.stdout), log);
    let progress = stderr(&exported);
    assert!(
        progress.contains("export: 100%") && !progress.contains('\r'),
        "plain progress lines when stderr is not a terminal: {progress}"
    );

    // The API streams the very same bytes.
    let streamed = deployment
        .client
        .get(format!("{}/api/events?to={head}", deployment.base))
        .bearer_auth(&deployment.admin)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    assert_eq!(streamed.as_ref(), exported.stdout.as_slice());

    // --from and --to are inclusive.
    let (from, to) = (log[2].position.to_string(), log[5].position.to_string());
    let part = deployment.keryu_ok(&["events", "export", "--from", &from, "--to", &to]);
    assert_eq!(lines(&part.stdout), log[2..6]);
    let env: Vec<(&str, &str)> = deployment
        .env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let backwards = keryu(&["events", "export", "--from", &to, "--to", &from], &env);
    assert!(!backwards.status.success());

    // Readable by default; --sealed keeps personal data as the log stores it.
    let readable = String::from_utf8_lossy(&exported.stdout);
    assert!(readable.contains("+15551170001") && readable.contains("Hola Ana"));
    let sealed = deployment.keryu_ok(&["events", "export", "--to", &head.to_string(), "--sealed"]);
    let sealed_text = String::from_utf8_lossy(&sealed.stdout);
    assert_eq!(lines(&sealed.stdout).len(), log.len());
    assert!(sealed_text.contains("$personal"));
    assert!(!sealed_text.contains("15551170001") && !sealed_text.contains("Hola Ana"));
    deployment.stop().await;
}

#[tokio::test]
async fn replay_shows_the_state_as_of_a_position_or_a_time() {
    let deployment = Deployment::start(&["--callback-delay-ms", "50"], &[]).await;
    let (subject, id) = delivered(&deployment, "+15551170002").await;
    let stream = format!("notification-{id}");
    let store = deployment.store().await;
    let events: Vec<EventView> = store
        .read_all(Position::START, 10_000)
        .await
        .expect("read")
        .iter()
        .filter(|event| event.stream.as_str() == stream)
        .map(EventView::from)
        .collect();
    let of_type = |wanted: &str| {
        events
            .iter()
            .find(|event| event.event_type == wanted)
            .unwrap_or_else(|| panic!("no {wanted} in {events:?}"))
    };
    let queued = of_type("NotificationQueued").position.to_string();
    let sent = of_type("NotificationSent").recorded_at.to_rfc3339();

    let then = deployment.replay(&["--until", &queued, "--stream", &stream]);
    assert_eq!(then["state"]["status"], "queued", "{then}");
    assert_eq!(then["state"]["id"], id);
    assert_eq!(then["state"]["total_attempts"], 0);
    assert!(then["state"]["sent_at"].is_null());
    let types: Vec<&str> = then["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert_eq!(types, ["NotificationCreated", "NotificationQueued"]);

    let at_send = deployment.replay(&["--until", &sent, "--stream", &stream]);
    assert_eq!(at_send["state"]["status"], "sent", "{at_send}");
    assert_eq!(at_send["state"]["total_attempts"], 1);
    assert!(at_send["state"]["sent_at"].is_string());

    let now = deployment.replay(&["--until", "999999999", "--stream", &stream]);
    assert_eq!(now["state"]["status"], "read", "{now}");
    assert!(now["state"]["read_at"].is_string());

    let everyone = deployment.replay(&["--until", &queued]);
    assert_eq!(
        everyone["notifications"],
        json!({ id.clone(): { "status": "queued", "attempt": 0, "total_attempts": 0 } }),
        "{everyone}"
    );
    let everyone = deployment.replay(&["--until", &chrono::Utc::now().to_rfc3339()]);
    assert_eq!(everyone["notifications"][&id]["status"], "read");

    let person = deployment.replay(&[
        "--until",
        &queued,
        "--stream",
        &format!("subject-{subject}"),
    ]);
    assert_eq!(
        (&person["state"]["name"], &person["state"]["active"]),
        (&json!("Ana"), &json!(true)),
        "{person}"
    );
    let before = deployment.replay(&["--until", "0", "--stream", &stream]);
    assert!(
        before["state"].is_null() && before["events"] == json!([]),
        "{before}"
    );

    let env: Vec<(&str, &str)> = deployment
        .env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let refused = keryu(&["events", "replay", "--until", "yesterday"], &env);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("RFC 3339"),
        "{}",
        stderr(&refused)
    );
    let refused = keryu(
        &[
            "events",
            "replay",
            "--until",
            "1",
            "--stream",
            "Not-A-Stream",
        ],
        &env,
    );
    assert!(!refused.status.success());
    // After an erasure even a replay of a point before it shows nothing personal.
    let erased = deployment
        .client
        .post(format!("{}/api/subjects/{subject}/erase", deployment.base))
        .bearer_auth(&deployment.admin)
        .send()
        .await
        .expect("POST erase");
    assert_eq!(erased.status(), 200);
    let person = deployment.replay(&[
        "--until",
        &queued,
        "--stream",
        &format!("subject-{subject}"),
    ]);
    assert_eq!(
        (&person["state"]["name"], &person["state"]["phone"]),
        (&json!(""), &Value::Null),
        "{person}"
    );
    let now = deployment.replay(&["--until", "999999999", "--stream", &stream]);
    assert!(!now.to_string().contains("15551170002"), "{now}");
    deployment.stop().await;
}

#[tokio::test]
async fn tail_prints_events_as_they_commit_until_sigterm() {
    let deployment = Deployment::start(&[], &[]).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_keryu"))
        .args(["events", "tail"])
        .envs(
            deployment
                .env
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keryu events tail");
    let (stdout, stderr_pipe) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let mut tail = Running(child);
    let (out_lines, out) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_lines.send(line);
        }
    });
    let (err_lines, err) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let _ = err_lines.send(line);
        }
    });
    let announced = err
        .recv_timeout(Duration::from_secs(20))
        .expect("tail announces where it follows from");
    assert!(announced.contains("following the log"), "{announced}");

    let subject = deployment.subject("+15551170003").await;
    let mut seen = Vec::new();
    let registered = loop {
        let line = out
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no SubjectRegistered line; got {seen:?}"));
        let event: EventView = serde_json::from_str(&line).expect("an NDJSON event");
        if event.event_type == "SubjectRegistered" {
            break event;
        }
        seen.push(line);
    };
    assert_eq!(registered.stream, format!("subject-{subject}"));
    assert!(seen.is_empty(), "only events after the start: {seen:?}");

    let status = tail.signal("TERM").await;
    assert!(status.success(), "keryu events tail exited with {status}");
    deployment.stop().await;
}

#[tokio::test]
async fn verify_reports_an_intact_log_and_finds_an_edited_event() {
    let deployment = Deployment::start(&[], &[]).await;
    deployment.subject("+15551180001").await;
    deployment.subject("+15551180002").await;
    let env: Vec<(&str, &str)> = deployment
        .env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let intact = keryu(&["events", "verify"], &env);
    assert!(intact.status.success(), "{}", stderr(&intact));
    assert!(String::from_utf8_lossy(&intact.stdout).starts_with("intact: "));

    let url = deployment.database.url();
    let pool = PgPool::connect(&url).await.expect("connect");
    sqlx::raw_sql(
        "ALTER TABLE events DISABLE TRIGGER events_append_only; \
         UPDATE events SET data = '{\"name\": \"Mallory\"}' \
          WHERE global_position = (SELECT min(global_position) FROM events); \
         ALTER TABLE events ENABLE TRIGGER events_append_only;",
    )
    .execute(&pool)
    .await
    .expect("tamper");
    pool.close().await;
    let broken = keryu(&["events", "verify"], &env);
    assert!(!broken.status.success());
    assert!(
        stderr(&broken).contains("was edited"),
        "{}",
        stderr(&broken)
    );
    deployment.stop().await;
}
