//! The dispatcher against real PostgreSQL, the Twilio simulator over real HTTP and, for the
//! consumer, real NATS JetStream.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use keryu_dispatcher::dispatch::{Dispatched, Dispatcher, DispatcherSettings};
use keryu_dispatcher::rate_limit::SenderRateLimiter;
use keryu_dispatcher::simulator::{self, SimulatorConfig};
use keryu_dispatcher::twilio::{TwilioClient, TwilioSettings};
use keryu_domain::notification::{
    FailureKind, Notification, NotificationCommand, NotificationContent, NotificationStatus,
};
use keryu_domain::{NotificationId, RetryPolicy, SubjectId, TemplateId};
use keryu_infra::config::{Config, NatsConfig, Secret, TwilioConfig};
use keryu_infra::event_store::{EventMetadata, EventStore, Position, StreamName};
use keryu_infra::nats;
use keryu_infra::personal_data::MasterKey;
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

struct Setup {
    store: PgEventStore,
    sim: String,
    dispatcher: Dispatcher,
    _stop: watch::Sender<bool>,
}

async fn setup(pool: PgPool, sim: SimulatorConfig) -> Setup {
    setup_paced(pool, sim, 0.0).await
}

/// [`setup`] with the sender limited to `messages_per_second` (0 = unlimited), burst 1.
async fn setup_paced(pool: PgPool, sim: SimulatorConfig, messages_per_second: f64) -> Setup {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sim_base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = watch::channel(false);
    let account_sid = sim.account_sid.clone();
    let auth_token = sim.auth_token.clone();
    tokio::spawn(simulator::serve(listener, sim, async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    let store = PgEventStore::new(pool, MasterKey::development());
    let defaults = Config::from_lookup(|_| None).expect("defaults");
    let twilio = TwilioConfig {
        account_sid: Some(account_sid.clone()),
        auth_token: auth_token.clone(),
        api_base: sim_base.clone(),
        public_base_url: "http://127.0.0.1:9".to_owned(),
        ..defaults.twilio
    };
    let client = TwilioClient::new(TwilioSettings {
        api_base: sim_base.clone(),
        account_sid,
        auth_token: Secret::new(auth_token.expose()),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
    })
    .expect("client");
    let dispatcher = Dispatcher::new(
        store.clone(),
        client,
        SenderRateLimiter::new(store.pool().clone(), messages_per_second, 1, Duration::ZERO),
        DispatcherSettings {
            id: "test-dispatcher".to_owned(),
            sender: "+14155238886".to_owned(),
            concurrency: 8,
            twilio,
        },
    );
    Setup {
        store,
        sim: sim_base,
        dispatcher,
        _stop: stop,
    }
}

fn quiet_simulator() -> SimulatorConfig {
    SimulatorConfig {
        callbacks: false,
        ..SimulatorConfig::default()
    }
}

async fn create(
    store: &PgEventStore,
    recipient: &str,
    content: NotificationContent,
) -> NotificationId {
    let id = NotificationId(Uuid::now_v7());
    let stream = StreamName::of::<Notification>(id.0).expect("stream");
    let create = NotificationCommand::Create {
        id,
        subject_id: SubjectId(Uuid::now_v7()),
        recipient: recipient.parse().expect("phone"),
        content,
        scheduled_for: None,
        retry_policy: RetryPolicy::default(),
        alarm_id: None,
        at: Utc::now(),
    };
    repository::execute::<Notification>(store, &stream, create, &cause(), 1)
        .await
        .expect("create");
    id
}

fn text(body: &str) -> NotificationContent {
    NotificationContent::FreeText {
        body: body.to_owned(),
    }
}

fn cause() -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        ..EventMetadata::default()
    }
}

async fn state(store: &PgEventStore, id: NotificationId) -> Notification {
    let stream = StreamName::of::<Notification>(id.0).expect("stream");
    repository::load::<Notification>(store, &stream)
        .await
        .expect("load")
        .state
}

async fn sim_messages(sim: &str) -> Vec<Value> {
    let listed: Value = reqwest::get(format!("{sim}/sim/messages"))
        .await
        .expect("sim")
        .json()
        .await
        .expect("json");
    listed
        .as_array()
        .or_else(|| listed["messages"].as_array())
        .cloned()
        .unwrap_or_default()
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_queued_notification_is_claimed_sent_and_recorded_once(pool: PgPool) {
    let setup = setup(pool, quiet_simulator()).await;
    let id = create(&setup.store, "+15551230001", text("Hola")).await;

    let outcome = setup
        .dispatcher
        .dispatch(id, &cause())
        .await
        .expect("dispatch");
    let Dispatched::Sent {
        provider_message_id,
    } = outcome
    else {
        panic!("expected a send, got {outcome:?}");
    };
    let after = state(&setup.store, id).await;
    assert_eq!(after.status, NotificationStatus::Sent);
    assert_eq!(
        after.provider_message_id.as_deref(),
        Some(provider_message_id.as_str())
    );
    // A redelivered message meets a notification that is no longer queued.
    assert_eq!(
        setup
            .dispatcher
            .dispatch(id, &cause())
            .await
            .expect("again"),
        Dispatched::Skipped
    );
    let sent = sim_messages(&setup.sim).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let callback = sent[0]["status_callback"].as_str().unwrap_or_default();
    assert!(
        callback.ends_with(&format!("?notification={}", id.0)),
        "{sent:?}"
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_queued_notification_of_an_erased_subject_is_cancelled_not_sent(pool: PgPool) {
    let setup = setup(pool, quiet_simulator()).await;
    let id = create(&setup.store, "+15551230009", text("Hola")).await;
    let subject = state(&setup.store, id)
        .await
        .created
        .expect("created")
        .subject_id;
    setup
        .store
        .vault()
        .erase(subject.0)
        .await
        .expect("destroy the subject's key");

    let outcome = setup
        .dispatcher
        .dispatch(id, &cause())
        .await
        .expect("dispatch");
    assert_eq!(outcome, Dispatched::Skipped);
    let after = state(&setup.store, id).await;
    assert_eq!(after.status, NotificationStatus::Cancelled);
    assert!(
        sim_messages(&setup.sim).await.is_empty(),
        "nothing reaches Twilio"
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn of_two_dispatchers_holding_one_message_only_one_sends(pool: PgPool) {
    let setup = setup(pool, quiet_simulator()).await;
    let other = setup.dispatcher.clone();
    for n in 0..10 {
        let id = create(&setup.store, &format!("+1555123{n:04}"), text("Once")).await;
        let (one, two) = (cause(), cause());
        let (first, second) = tokio::join!(
            setup.dispatcher.dispatch(id, &one),
            other.dispatch(id, &two)
        );
        let outcomes = [first.expect("first"), second.expect("second")];
        let sends = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Dispatched::Sent { .. }))
            .count();
        assert_eq!(sends, 1, "{outcomes:?}");
    }
    assert_eq!(sim_messages(&setup.sim).await.len(), 10);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_paced_sender_reaches_twilio_at_its_slots_not_together(pool: PgPool) {
    // Five a second: slots 200 ms apart. Each call leaves at its slot, or within half an
    // interval of it (a later one is traded for a fresh slot), so arrivals are never closer
    // than 100 ms; 20 ms of that is left for loopback jitter.
    let setup = setup_paced(pool, quiet_simulator(), 5.0).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(create(&setup.store, &format!("+1555124{n:04}"), text("Paced")).await);
    }
    let causes: Vec<EventMetadata> = ids.iter().map(|_| cause()).collect();
    let outcomes = futures_util::future::join_all(
        ids.iter()
            .zip(&causes)
            .map(|(id, cause)| setup.dispatcher.dispatch(*id, cause)),
    )
    .await;
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Ok(Dispatched::Sent { .. })),
            "{outcomes:?}"
        );
    }
    let mut arrivals: Vec<i64> = sim_messages(&setup.sim)
        .await
        .iter()
        .filter_map(|message| message["received_at_micros"].as_i64())
        .collect();
    arrivals.sort_unstable();
    assert_eq!(arrivals.len(), 4);
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= 80_000,
            "sends {} µs apart: {arrivals:?}",
            pair[1] - pair[0]
        );
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn transient_errors_schedule_a_retry_and_permanent_ones_fail_at_once(pool: PgPool) {
    let sim = SimulatorConfig {
        fail_first_per_recipient: 1,
        ..quiet_simulator()
    };
    let setup = setup(pool, sim).await;
    let flaky = create(&setup.store, "+15551239001", text("Soon")).await;
    let outcome = setup
        .dispatcher
        .dispatch(flaky, &cause())
        .await
        .expect("dispatch");
    assert!(
        matches!(
            outcome,
            Dispatched::AttemptFailed {
                kind: FailureKind::Transient,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(
        state(&setup.store, flaky).await.status,
        NotificationStatus::RetryScheduled
    );

    // Twilio's magic `To` for an invalid number: refused before any injected fault.
    let invalid = create(&setup.store, "+15005550001", text("Never")).await;
    let outcome = setup
        .dispatcher
        .dispatch(invalid, &cause())
        .await
        .expect("dispatch");
    assert_eq!(
        outcome,
        Dispatched::AttemptFailed {
            code: Some(21211),
            kind: FailureKind::Permanent
        }
    );
    assert_eq!(
        state(&setup.store, invalid).await.status,
        NotificationStatus::Failed
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_approved_whatsapp_template_goes_as_content_sid_and_variables(pool: PgPool) {
    let setup = setup(pool, quiet_simulator()).await;
    let variables: BTreeMap<String, String> = [
        ("1".to_owned(), "Ana".to_owned()),
        ("2".to_owned(), "14:00".to_owned()),
    ]
    .into_iter()
    .collect();
    let content = NotificationContent::Template {
        template_id: TemplateId(Uuid::now_v7()),
        template_version: 1,
        content_sid: Some("HX0123456789abcdef0123456789abcdef".to_owned()),
        variables,
        rendered_body: "Hola Ana, a las 14:00".to_owned(),
    };
    let id = create(&setup.store, "+15551230002", content).await;
    setup
        .dispatcher
        .dispatch(id, &cause())
        .await
        .expect("dispatch");
    let sent = sim_messages(&setup.sim).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["content_sid"], "HX0123456789abcdef0123456789abcdef",
        "{sent:?}"
    );
    assert_eq!(sent[0]["content_variables"]["1"], "Ana", "{sent:?}");
    assert_eq!(
        sent[0]["body"],
        Value::Null,
        "a template is sent without a Body"
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn the_consumer_sends_what_the_relay_published(pool: PgPool) {
    let setup = setup(pool, quiet_simulator()).await;
    let tag = Uuid::new_v4().simple().to_string();
    let nats_config = NatsConfig {
        url: Secret::new("nats://127.0.0.1:4222"),
        stream: format!("T{tag}"),
        subject_prefix: format!("t{tag}.events"),
        max_age_seconds: 600,
        duplicate_window_seconds: 600,
        dispatcher_consumer: format!("d{tag}"),
    };
    let jetstream = jetstream::new(nats::connect(&nats_config).await.expect("nats"));
    let consumer = Dispatcher::consumer(&jetstream, &nats_config, 8)
        .await
        .expect("consumer");
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(create(&setup.store, &format!("+1555124{n:04}"), text("Via NATS")).await);
    }
    let log = setup
        .store
        .read_all(Position::START, 100)
        .await
        .expect("log");
    for event in &log {
        jetstream
            .publish_with_headers(
                nats::subject_of(&nats_config.subject_prefix, event),
                nats::headers_of(event),
                serde_json::to_vec(&event.data).expect("json").into(),
            )
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let (stop, stopped) = watch::channel(false);
    let dispatcher = setup.dispatcher.clone();
    let running = tokio::spawn(async move {
        let mut stopped = stopped;
        dispatcher
            .run(consumer, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    for id in &ids {
        let mut sent = false;
        for _ in 0..100 {
            if state(&setup.store, *id).await.status == NotificationStatus::Sent {
                sent = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(sent, "notification {} was not sent", id.0);
    }
    let _ = stop.send(true);
    running
        .await
        .expect("join")
        .expect("the consumer stops cleanly");
    let _ = jetstream.delete_stream(&nats_config.stream).await;
    assert_eq!(sim_messages(&setup.sim).await.len(), 5);
}
