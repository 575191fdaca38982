//! What operators rely on: health, readiness, metrics and the effective configuration.

use serde_json::{Value, json};

use crate::support::{Deployment, free_port, keryu, stderr};

#[tokio::test]
async fn every_process_reports_health_readiness_and_metrics() {
    let deployment = Deployment::start(&["--callback-delay-ms", "50"], &[]).await;
    let subject = deployment.subject("+15551150001").await;
    let id = deployment
        .notify(json!({ "subject_id": subject, "body": "Measured" }))
        .await;
    deployment.wait_for_status(&id, &["read"], 30).await;

    let get = |path: &str| {
        deployment
            .client
            .get(format!("{}{path}", deployment.base))
            .send()
    };
    let health = get("/healthz").await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let ready = get("/readyz").await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    let ready: Value = ready.json().await.expect("json");
    for check in ["database", "nats", "twilio", "projection_lag"] {
        assert_eq!(ready["checks"][check]["ok"], true, "{check}: {ready}");
    }
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for expected in [
        "keryu_sends_total{outcome=\"sent\"",
        "keryu_http_requests_total{method=\"POST\",route=\"/api/notifications\",status=\"202\"}",
        "keryu_commands_total{aggregate=\"notification\",outcome=\"accepted\"}",
        "keryu_projection_lag_events{projection=\"notifications\"}",
        "keryu_event_store_append_duration_seconds_bucket",
        "keryu_twilio_request_duration_seconds_bucket",
        "keryu_log_head_position",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    deployment.stop().await;
}

#[tokio::test]
async fn a_dispatcher_that_cannot_reach_twilio_is_not_ready() {
    let deployment = Deployment::start(&[], &[]).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut lost = std::process::Command::new(env!("CARGO_BIN_EXE_keryu"))
        .arg("dispatcher")
        .envs(
            deployment
                .env
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
        .env("KERYU_HTTP_ADDR", &addr)
        .env(
            "TWILIO_API_BASE",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .spawn()
        .expect("spawn");
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(response) = deployment
            .client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
        {
            answer = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let answer = answer.expect("the dispatcher serves /readyz");
    assert_eq!(answer.status().as_u16(), 503);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["twilio"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
    let _ = lost.kill();
    let _ = lost.wait();
    deployment.stop().await;
}

#[test]
fn config_check_prints_the_effective_configuration_with_secrets_masked() {
    let checked = keryu(
        &["config", "check"],
        &[
            ("TWILIO_AUTH_TOKEN", "twilio-s3cret"),
            ("KERYU_JWT_SECRET", "jwt-s3cret-jwt-s3cret"),
            ("KERYU_SENDER_MPS", "80"),
        ],
    );
    assert!(checked.status.success(), "{}", stderr(&checked));
    let printed = String::from_utf8_lossy(&checked.stdout);
    assert!(printed.contains("sender_mps: 80.0"), "{printed}");
    assert!(!printed.contains("s3cret"), "{printed}");

    let refused = keryu(&["config", "check"], &[("KERYU_SENDER_MPS", "fast")]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("KERYU_SENDER_MPS"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test]
async fn sigterm_under_load_finishes_in_flight_sends_and_loses_nothing() {
    let mut deployment = Deployment::start(&["--latency-ms", "200"], &[]).await;
    let mut created = Vec::new();
    for n in 0..20 {
        let subject = deployment.subject(&format!("+1555116{n:04}")).await;
        let id = deployment
            .notify(json!({ "subject_id": subject, "body": format!("Load {n}") }))
            .await;
        created.push(id);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let serve = deployment.processes.last_mut().expect("serve");
    let status = serve.signal("TERM").await;
    assert!(
        status.success(),
        "keryu serve exited with {status} after SIGTERM"
    );

    let restarted = deployment.spawn("serve");
    deployment.processes.push(restarted);
    deployment.wait_until_listening().await;
    for id in &created {
        let row = deployment
            .wait_for_status(id, &["sent", "delivered", "read"], 60)
            .await;
        // Nothing was cut off mid-send: every notification took exactly one attempt.
        assert_eq!(row["total_attempts"], 1, "{row}");
    }
    let sent = deployment.sim_messages().await;
    assert_eq!(
        sent.len(),
        created.len(),
        "each notification sent once: {sent:?}"
    );
    deployment.stop().await;
}

#[tokio::test]
async fn the_api_is_rate_limited_host_checked_and_hardened() {
    let deployment = Deployment::start(
        &[],
        &[
            ("KERYU_RATE_LIMIT_PER_TOKEN", "3"),
            ("ALLOWED_HOSTS", "127.0.0.1, keryu.example"),
        ],
    )
    .await;
    let list = format!("{}/api/subjects", deployment.base);

    // A burst above twice the rate: the excess is refused with a problem and Retry-After.
    let mut refused = None;
    for _ in 0..12 {
        let answer = deployment
            .client
            .get(&list)
            .bearer_auth(&deployment.admin)
            .send()
            .await
            .expect("list");
        assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
        if answer.status().as_u16() == 429 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("the burst was refused");
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refused.json().await.expect("problem");
    assert_eq!(problem["type"], "/problems/too-many-requests");

    // A host that is not served.
    let foreign = deployment
        .client
        .get(format!("{}/openapi.json", deployment.base))
        .header("host", "evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(foreign.status().as_u16(), 400);

    // A browser on an allowed host may call the API; another may not.
    let preflight = |origin: &'static str| {
        deployment
            .client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/notifications", deployment.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://keryu.example").await.expect("preflight");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://keryu.example"
    );
    let other = preflight("https://evil.example").await.expect("preflight");
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    // Probes are not rate limited nor host checked.
    for _ in 0..12 {
        let health = deployment
            .client
            .get(format!("{}/healthz", deployment.base))
            .header("host", "10.0.0.7")
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status().as_u16(), 200);
    }
    deployment.stop().await;
}

/// A tiny OTLP/HTTP receiver (JSON encoding): what an OpenTelemetry collector would get.
async fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = std::sync::Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = std::sync::Arc::clone(&store);
            async move {
                if let Ok(json) = serde_json::from_slice::<Value>(&body) {
                    store.lock().expect("lock").push(json);
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (endpoint, received)
}

/// Every exported span as (trace id, span name).
fn spans(received: &[Value]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for export in received {
        for resource in export["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    found.push((
                        span["traceId"].as_str().unwrap_or_default().to_owned(),
                        span["name"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn one_trace_follows_a_notification_from_the_api_to_the_twilio_call() {
    let (endpoint, received) = otlp_receiver().await;
    let mut deployment = Deployment::start(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let subject = deployment.subject("+15551170001").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = deployment
        .client
        .post(format!("{}/api/notifications", deployment.base))
        .bearer_auth(&deployment.admin)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({ "subject_id": subject, "body": "Traced" }))
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 202);
    let id: Value = answer.json().await.expect("json");
    deployment
        .wait_for_status(
            id["id"].as_str().expect("id"),
            &["sent", "delivered", "read"],
            30,
        )
        .await;
    // Stopping flushes the spans still buffered.
    let serve = deployment.processes.last_mut().expect("serve");
    assert!(serve.signal("TERM").await.success());

    let traced: Vec<String> = spans(&received.lock().expect("lock"))
        .into_iter()
        .filter(|(trace, _)| trace == trace_id)
        .map(|(_, name)| name)
        .collect();
    for expected in [
        "http.request",
        "command",
        "dispatch",
        "twilio.create_message",
    ] {
        assert!(
            traced.iter().any(|name| name == expected),
            "no {expected} span in trace {trace_id}: {traced:?}"
        );
    }
    deployment.stop().await;
}

#[test]
fn a_toml_file_configures_and_the_environment_wins() {
    let path = std::env::temp_dir().join(format!("keryu-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &path,
        "KERYU_SENDER_MPS = 80\nKERYU_DISPATCHER_CONCURRENCY = 7\n",
    )
    .expect("write");
    let file = path.to_string_lossy().into_owned();
    let checked = keryu(
        &["config", "check"],
        &[
            ("KERYU_CONFIG_FILE", file.as_str()),
            ("KERYU_DISPATCHER_CONCURRENCY", "9"),
        ],
    );
    let _ = std::fs::remove_file(&path);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let printed = String::from_utf8_lossy(&checked.stdout);
    assert!(printed.contains("sender_mps: 80.0"), "{printed}");
    assert!(printed.contains("concurrency: 9"), "{printed}");
}
