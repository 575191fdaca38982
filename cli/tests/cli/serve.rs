//! `keryu custodian create`, `keryu token issue` and `keryu serve`, together as on a first day.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{FreshDatabase, delete_stream, free_port, keryu, stderr};

#[tokio::test]
async fn bootstrap_an_admin_then_serve_commands_until_sigterm() {
    let database = FreshDatabase::name("serve");
    let url = database.url();
    let secret = "a-test-secret-that-is-long-enough";
    // JetStream names of its own, so no other test's dispatcher takes this test's messages.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let (stream, prefix, consumer) = (
        format!("S{tag}"),
        format!("s{tag}.events"),
        format!("c{tag}"),
    );
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("KERYU_JWT_SECRET", secret),
        ("KERYU_NATS_STREAM", stream.as_str()),
        ("KERYU_NATS_SUBJECT_PREFIX", prefix.as_str()),
        ("KERYU_NATS_DISPATCHER_CONSUMER", consumer.as_str()),
    ];

    // The first admin, password on standard input.
    let mut create = Command::new(env!("CARGO_BIN_EXE_keryu"))
        .args([
            "custodian",
            "create",
            "--email",
            "Admin@Example.org",
            "--name",
            "Admin",
            "--role",
            "admin",
        ])
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    create
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse battery staple\n")
        .expect("write the password");
    let created = create.wait_with_output().expect("custodian create");
    assert!(created.status.success(), "{}", stderr(&created));
    let admin_id = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    assert!(uuid::Uuid::parse_str(&admin_id).is_ok(), "{admin_id:?}");

    let short = keryu(
        &[
            "custodian",
            "create",
            "--email",
            "b@example.org",
            "--name",
            "B",
            "--role",
            "admin",
        ],
        &env,
    );
    assert!(!short.status.success(), "an empty password was accepted");

    let issued = keryu(
        &[
            "token",
            "issue",
            "--role",
            "integrator",
            "--sub",
            "integration-1",
        ],
        &env,
    );
    assert!(issued.status.success(), "{}", stderr(&issued));
    let integrator_token = String::from_utf8_lossy(&issued.stdout).trim().to_owned();
    assert!(
        !keryu(&["token", "issue", "--role", "root", "--sub", "x"], &env)
            .status
            .success()
    );

    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_keryu"))
        .arg("serve")
        .envs(env)
        .env("KERYU_HTTP_ADDR", &address)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client
            .post(format!("{base}/api/auth/token"))
            .send()
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "keryu serve did not start listening");

    let login: Value = client
        .post(format!("{base}/api/auth/token"))
        .json(&json!({ "email": "admin@example.org", "password": "correct horse battery staple" }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("token JSON");
    let admin_token = login["access_token"].as_str().expect("a token").to_owned();

    let mut subject = Value::Null;
    for token in [&admin_token, &integrator_token] {
        let created = client
            .post(format!("{base}/api/subjects"))
            .bearer_auth(token)
            .json(&json!({ "name": "Ana", "phone": "+14155238886" }))
            .send()
            .await
            .expect("create a subject");
        assert_eq!(created.status().as_u16(), 201);
        subject = created.json::<Value>().await.expect("json")["id"].clone();
    }

    // The projector of `serve` folds the new notification into the read model, and the query
    // API served beside the commands reads it back, waiting for the command's position.
    let accepted = client
        .post(format!("{base}/api/notifications"))
        .bearer_auth(&integrator_token)
        .json(&json!({ "subject_id": subject, "body": "Hola" }))
        .send()
        .await
        .expect("create a notification");
    let position = accepted.headers()["keryu-position"]
        .to_str()
        .expect("position")
        .to_owned();
    let id = accepted.json::<Value>().await.expect("json")["id"].clone();
    let id = id.as_str().expect("id");
    let status = client
        .get(format!(
            "{base}/api/notifications/{id}/status/?min_position={position}"
        ))
        .bearer_auth(&integrator_token)
        .send()
        .await
        .expect("query the notification");
    assert_eq!(status.status().as_u16(), 200);
    let fresh: u64 = status.headers()["keryu-projection-position"]
        .to_str()
        .expect("header")
        .parse()
        .expect("number");
    assert!(fresh >= position.parse().expect("number"));
    // `serve` also dispatches (to its in-process simulator): the notification may be on its
    // way already, but never behind the command's position.
    let status = status.json::<Value>().await.expect("json")["status"].clone();
    assert!(
        ["queued", "processing", "sent", "delivered", "read"]
            .iter()
            .any(|expected| status == *expected),
        "{status}"
    );

    let terminated = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(terminated.success());
    let mut exited = None;
    for _ in 0..100 {
        exited = server.try_wait().expect("wait");
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = exited.expect("keryu serve stopped after SIGTERM");
    assert!(status.success(), "keryu serve exited with {status}");
    database.drop().await;
    delete_stream(&stream).await;
}
