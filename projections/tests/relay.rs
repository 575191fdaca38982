//! The outbox relay against real PostgreSQL and a real nats-server of its own, which the tests
//! stop and restart to show that commands keep being accepted and the backlog drains.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use keryu_domain::notification::{Notification, NotificationCommand, NotificationContent};
use keryu_domain::{NotificationId, RetryPolicy, SubjectId};
use keryu_infra::config::{NatsConfig, Secret};
use keryu_infra::event_store::{EventMetadata, EventStore, Position, StreamName};
use keryu_infra::nats;
use keryu_infra::personal_data::MasterKey;
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository;
use keryu_projections::reaction::Reaction;
use keryu_projections::relay::Relay;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

/// A nats-server with JetStream on a port and storage directory of its own.
struct NatsServer {
    port: u16,
    store_dir: PathBuf,
    process: Option<Child>,
}

impl NatsServer {
    fn start() -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let store_dir = std::env::temp_dir().join(format!("keryu-nats-{}", Uuid::new_v4()));
        let mut server = NatsServer {
            port,
            store_dir,
            process: None,
        };
        server.restart();
        server
    }

    fn restart(&mut self) {
        let process = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (deploy/services.sh)");
        self.process = Some(process);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not start on port {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    fn config(&self) -> NatsConfig {
        NatsConfig {
            url: Secret::new(format!("nats://127.0.0.1:{}", self.port)),
            stream: "KERYU_EVENTS".to_owned(),
            subject_prefix: "keryu.events".to_owned(),
            max_age_seconds: 3600,
            duplicate_window_seconds: 600,
            dispatcher_consumer: "keryu-dispatcher".to_owned(),
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

async fn create_notification(store: &PgEventStore) {
    let id = NotificationId(Uuid::now_v7());
    let stream = StreamName::of::<Notification>(id.0).expect("stream");
    let create = NotificationCommand::Create {
        id,
        subject_id: SubjectId(Uuid::now_v7()),
        recipient: "+14155238886".parse().expect("phone"),
        content: NotificationContent::FreeText {
            body: "Hola".to_owned(),
        },
        scheduled_for: None,
        retry_policy: RetryPolicy::default(),
        alarm_id: None,
        at: Utc::now(),
    };
    let metadata = EventMetadata {
        correlation_id: Uuid::now_v7(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()),
        ..EventMetadata::default()
    };
    repository::execute::<Notification>(store, &stream, create, &metadata, 1)
        .await
        .expect("the store accepts commands whatever NATS does");
}

async fn messages_in_stream(jetstream: &jetstream::Context, config: &NatsConfig) -> u64 {
    match jetstream.get_stream(&config.stream).await {
        Ok(stream) => stream.cached_info().state.messages,
        Err(_) => 0,
    }
}

async fn wait_for_messages(jetstream: &jetstream::Context, config: &NatsConfig, expected: u64) {
    for _ in 0..300 {
        if messages_in_stream(jetstream, config).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the stream holds {} messages, expected {expected}",
        messages_in_stream(jetstream, config).await
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn every_event_is_published_once_with_its_envelope(pool: PgPool) {
    let server = NatsServer::start();
    let config = server.config();
    let store = PgEventStore::new(pool, MasterKey::development());
    for _ in 0..3 {
        create_notification(&store).await;
    }
    let client = nats::connect(&config).await.expect("connect");
    let jetstream = jetstream::new(client);
    let stream = nats::ensure_stream(&jetstream, &config)
        .await
        .expect("stream");
    let relay = Relay::new(jetstream.clone(), &config);
    let log = store.read_all(Position::START, 100).await.expect("log");
    assert_eq!(log.len(), 6, "created + queued, three times");

    relay.react(&log).await.expect("publish");
    // A crash before the checkpoint publishes the batch again: JetStream drops the copies.
    relay.react(&log).await.expect("publish again");
    wait_for_messages(&jetstream, &config, 6).await;

    let first = stream.get_raw_message(1).await.expect("first message");
    assert_eq!(
        first.subject.as_str(),
        "keryu.events.notification.NotificationCreated"
    );
    let relayed = nats::RelayedEvent::from_headers(Some(&first.headers)).expect("envelope");
    assert_eq!(relayed.event_id, log[0].event_id);
    assert_eq!(relayed.stream, log[0].stream);
    assert_eq!(relayed.position, log[0].position);
    assert_eq!(relayed.traceparent, log[0].metadata.traceparent);
    assert_eq!(
        first
            .headers
            .get("ce-specversion")
            .map(|value| value.as_str()),
        Some("1.0")
    );
    let payload: serde_json::Value = serde_json::from_slice(&first.payload).expect("json");
    assert_eq!(payload, log[0].data);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn while_nats_is_down_commands_are_accepted_and_the_backlog_drains_later(pool: PgPool) {
    let mut server = NatsServer::start();
    let config = server.config();
    let store = PgEventStore::new(pool, MasterKey::development());
    let client = nats::connect(&config).await.expect("connect");
    let jetstream = jetstream::new(client);
    nats::ensure_stream(&jetstream, &config)
        .await
        .expect("stream");
    let reactor = Relay::new(jetstream.clone(), &config).following(&store);
    let (stop, stopped) = watch::channel(false);
    let relay = tokio::spawn(async move {
        let mut stopped = stopped;
        reactor
            .run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
    });

    create_notification(&store).await;
    wait_for_messages(&jetstream, &config, 2).await;

    server.stop();
    for _ in 0..5 {
        create_notification(&store).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    wait_for_messages(&jetstream, &config, 12).await;

    let _ = stop.send(true);
    relay.await.expect("the relay stops cleanly");
    // What JetStream keeps for days holds no number and no text in clear.
    let stream = jetstream.get_stream(&config.stream).await.expect("stream");
    let created = stream.get_raw_message(1).await.expect("first message");
    let payload = String::from_utf8_lossy(&created.payload);
    assert!(payload.contains("$personal"), "{payload}");
    assert!(
        !payload.contains("4155238886") && !payload.contains("Hola"),
        "{payload}"
    );
    let checkpoint: i64 =
        sqlx::query_scalar("SELECT position FROM process_checkpoints WHERE name = 'outbox_relay'")
            .fetch_one(store.pool())
            .await
            .expect("checkpoint");
    let head = store.head_position().await.expect("head");
    assert_eq!(checkpoint.unsigned_abs(), head.0);
}
