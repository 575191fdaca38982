//! Timers and the alarm fan-out against real PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keryu_domain::alarm::{Alarm, AlarmCommand, Situation};
use keryu_domain::custodian::{Custodian, CustodianCommand, PasswordHash};
use keryu_domain::notification::{
    FailureKind, Notification, NotificationCommand, NotificationContent, NotificationStatus,
    OutcomeUnknownPolicy,
};
use keryu_domain::subject::{Subject, SubjectCommand};
use keryu_domain::template::{MessageTemplate, TemplateCommand, TemplateContent};
use keryu_domain::{
    Aggregate, AlarmId, CustodianId, NotificationId, Personal, RetryPolicy, Role, SubjectId,
};
use keryu_infra::event_store::{
    EventMetadata, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName,
};
use keryu_infra::personal_data::MasterKey;
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository;
use keryu_projections::alarm_fanout::{ALERT_TEMPLATE, AlarmFanOut};
use keryu_projections::projector::Projector;
use keryu_projections::reaction::{Reaction, ReactionError, Reactor};
use keryu_projections::timers::{Scheduler, SchedulerSettings, TimersProjection};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

async fn command<A: Aggregate>(store: &PgEventStore, id: Uuid, command: A::Command) -> A
where
    A::Command: Clone,
{
    let stream = StreamName::of::<A>(id).expect("stream");
    let metadata = EventMetadata {
        correlation_id: Uuid::now_v7(),
        ..EventMetadata::default()
    };
    repository::execute::<A>(store, &stream, command, &metadata, 3)
        .await
        .expect("command")
        .state
}

async fn notification(store: &PgEventStore, id: NotificationId) -> Notification {
    let stream = StreamName::of::<Notification>(id.0).expect("stream");
    repository::load::<Notification>(store, &stream)
        .await
        .expect("load")
        .state
}

async fn create_notification(
    store: &PgEventStore,
    scheduled_for: Option<DateTime<Utc>>,
) -> NotificationId {
    let id = NotificationId(Uuid::now_v7());
    command::<Notification>(
        store,
        id.0,
        NotificationCommand::Create {
            id,
            subject_id: SubjectId(Uuid::now_v7()),
            recipient: "+14155238886".parse().expect("phone"),
            content: NotificationContent::FreeText {
                body: "Hola".to_owned(),
            },
            scheduled_for,
            retry_policy: RetryPolicy::default(),
            alarm_id: None,
            at: Utc::now(),
        },
    )
    .await;
    id
}

/// Brings the timers read model up to the head of the log.
async fn project_timers(store: &PgEventStore) {
    let projector = Projector::new(store.clone(), TimersProjection);
    projector.prepare().await.expect("prepare");
    let from = projector.checkpoint().await.expect("checkpoint");
    let events = store.read_all(from, 10_000).await.expect("read");
    projector.apply_batch(&events).await.expect("apply");
}

fn scheduler(store: &PgEventStore) -> Scheduler {
    Scheduler::new(
        store.clone(),
        SchedulerSettings::new(Duration::from_secs(60), OutcomeUnknownPolicy::Retry),
    )
}

async fn count_events(store: &PgEventStore, id: NotificationId, event_type: &str) -> usize {
    let stream = StreamName::of::<Notification>(id.0).expect("stream");
    store
        .read_stream(&stream, 0, 1000)
        .await
        .expect("read")
        .iter()
        .filter(|event| event.event_type == event_type)
        .count()
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_scheduled_notification_is_queued_when_due_and_not_before(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let due = Utc::now() + chrono::Duration::seconds(30);
    let id = create_notification(&store, Some(due)).await;
    project_timers(&store).await;
    let scheduler = scheduler(&store);

    assert_eq!(scheduler.fire_due(Utc::now()).await.expect("fire"), 0);
    assert_eq!(
        notification(&store, id).await.status,
        NotificationStatus::Scheduled
    );

    let later = due + chrono::Duration::seconds(1);
    assert_eq!(scheduler.fire_due(later).await.expect("fire"), 1);
    assert_eq!(
        notification(&store, id).await.status,
        NotificationStatus::Queued
    );
    // Fired, but the projection has not seen the effect yet: not fired again meanwhile.
    assert_eq!(scheduler.fire_due(later).await.expect("fire"), 0);
    project_timers(&store).await;
    assert_eq!(scheduler.fire_due(later).await.expect("fire"), 0);
    assert_eq!(count_events(&store, id, "NotificationQueued").await, 1);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn two_schedulers_fire_each_timer_once(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let due = Utc::now() + chrono::Duration::seconds(5);
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(create_notification(&store, Some(due)).await);
    }
    project_timers(&store).await;
    let later = due + chrono::Duration::seconds(1);
    let (first, second) = (scheduler(&store), scheduler(&store));
    let (a, b) = tokio::join!(first.fire_due(later), second.fire_due(later));
    assert_eq!(a.expect("first") + b.expect("second"), 20);
    for id in ids {
        assert_eq!(count_events(&store, id, "NotificationQueued").await, 1);
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_retry_backoff_requeues_and_an_expired_lease_becomes_outcome_unknown(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let id = create_notification(&store, None).await;
    let start = || NotificationCommand::StartAttempt {
        dispatcher: "d1".to_owned(),
        at: Utc::now(),
    };
    command::<Notification>(&store, id.0, start()).await;
    let failed = command::<Notification>(
        &store,
        id.0,
        NotificationCommand::RecordAttemptFailure {
            error_code: None,
            error_message: "timeout".to_owned(),
            kind: FailureKind::Transient,
            random_unit: 0.5,
            at: Utc::now(),
        },
    )
    .await;
    let not_before = failed.not_before.expect("a retry is scheduled");
    project_timers(&store).await;
    let scheduler = scheduler(&store);
    assert_eq!(scheduler.fire_due(Utc::now()).await.expect("fire"), 0);
    assert_eq!(scheduler.fire_due(not_before).await.expect("fire"), 1);
    assert_eq!(
        notification(&store, id).await.status,
        NotificationStatus::Queued
    );

    // The second attempt is claimed and its dispatcher vanishes.
    command::<Notification>(&store, id.0, start()).await;
    project_timers(&store).await;
    let within_lease = Utc::now() + chrono::Duration::seconds(30);
    assert_eq!(scheduler.fire_due(within_lease).await.expect("fire"), 0);
    let after_lease = Utc::now() + chrono::Duration::seconds(61);
    assert_eq!(scheduler.fire_due(after_lease).await.expect("fire"), 1);
    let after = notification(&store, id).await;
    assert_eq!(after.status, NotificationStatus::RetryScheduled);
    assert_eq!(count_events(&store, id, "DeliveryOutcomeUnknown").await, 1);
}

struct Household {
    subject: SubjectId,
    reachable: Vec<CustodianId>,
}

async fn custodian(
    store: &PgEventStore,
    email: &str,
    phone: Option<&str>,
    active: bool,
) -> CustodianId {
    let id = CustodianId(Uuid::now_v7());
    command::<Custodian>(
        store,
        id.0,
        CustodianCommand::Create {
            id,
            email: email.parse().expect("email"),
            name: email.to_owned(),
            role: Role::Custodian,
            password_hash: PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
            phone: phone.map(|phone| phone.parse().expect("phone")),
            at: Utc::now(),
        },
    )
    .await;
    if !active {
        command::<Custodian>(store, id.0, CustodianCommand::Deactivate { at: Utc::now() }).await;
    }
    id
}

async fn household(store: &PgEventStore) -> Household {
    let reachable = vec![
        custodian(store, "ana@example.org", Some("+15551230001"), true).await,
        custodian(store, "bo@example.org", Some("+15551230002"), true).await,
    ];
    let silent = custodian(store, "cy@example.org", None, true).await;
    let gone = custodian(store, "di@example.org", Some("+15551230004"), false).await;
    let subject = subject_in_care_of(
        store,
        reachable.iter().copied().chain([silent, gone]).collect(),
    )
    .await;
    Household { subject, reachable }
}

/// Registers Lupe, in the care of `custodian_ids`.
async fn subject_in_care_of(
    store: &PgEventStore,
    custodian_ids: BTreeSet<CustodianId>,
) -> SubjectId {
    let subject = SubjectId(Uuid::now_v7());
    command::<Subject>(
        store,
        subject.0,
        SubjectCommand::Register {
            id: subject,
            name: "Lupe".to_owned(),
            phone: "+15551239999".parse().expect("phone"),
            preferences: serde_json::json!({}),
            at: Utc::now(),
        },
    )
    .await;
    command::<Subject>(
        store,
        subject.0,
        SubjectCommand::AssignCustodians {
            custodian_ids,
            at: Utc::now(),
        },
    )
    .await;
    subject
}

async fn approve_alert_template(store: &PgEventStore) {
    let id = MessageTemplate::id_for_name(ALERT_TEMPLATE);
    let variables: BTreeMap<String, String> = (1..=4)
        .map(|n| (n.to_string(), format!("fact {n}")))
        .collect();
    let content = TemplateContent {
        content: "Alert for {{1}}: {{2}}. {{3}} Action: {{4}}".to_owned(),
        variables,
        language: "en".to_owned(),
        content_sid: Some("HX0123456789abcdef0123456789abcdef".to_owned()),
    };
    let at = Utc::now();
    command::<MessageTemplate>(
        store,
        id.0,
        TemplateCommand::Create {
            id,
            name: ALERT_TEMPLATE.to_owned(),
            content,
            at,
        },
    )
    .await;
    command::<MessageTemplate>(store, id.0, TemplateCommand::Submit { at }).await;
    command::<MessageTemplate>(
        store,
        id.0,
        TemplateCommand::Approve {
            by: "admin".to_owned(),
            at,
        },
    )
    .await;
}

async fn raise(store: &PgEventStore, subject: SubjectId) -> AlarmId {
    let id = AlarmId(Uuid::now_v7());
    command::<Alarm>(
        store,
        id.0,
        AlarmCommand::Raise {
            id,
            subject_id: subject,
            situation: Situation::Lost,
            description: "Last seen at the station.".to_owned(),
            location: None,
            raised_by: "integrator".to_owned(),
            at: Utc::now(),
        },
    )
    .await;
    id
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_alarm_notifies_each_reachable_custodian_once(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    approve_alert_template(&store).await;
    let household = household(&store).await;
    let alarm = raise(&store, household.subject).await;
    let fan_out = AlarmFanOut::new(store.clone(), 3);
    let log = store.read_all(Position::START, 10_000).await.expect("log");

    fan_out.react(&log).await.expect("fan out");
    let head = store.head_position().await.expect("head");
    // Redelivered (a crash before the checkpoint): nothing new.
    fan_out.react(&log).await.expect("fan out again");
    assert_eq!(store.head_position().await.expect("head"), head);

    for custodian in &household.reachable {
        let id = AlarmFanOut::notification_id(alarm.0, *custodian);
        let sent = notification(&store, id).await;
        assert_eq!(sent.status, NotificationStatus::Queued);
        let created = sent.created.expect("created");
        assert_eq!(created.alarm_id, Some(alarm));
        let Personal::Known(NotificationContent::Template {
            variables,
            rendered_body,
            ..
        }) = created.content
        else {
            panic!("an alarm uses the alert template");
        };
        assert_eq!(variables["1"], "Lupe");
        assert_eq!(variables["3"], "Last seen at the station.");
        assert!(rendered_body.starts_with("Alert for Lupe: Missing person."));
    }
    let notifications = store
        .read_all(Position::START, 10_000)
        .await
        .expect("log")
        .iter()
        .filter(|event| event.event_type == "NotificationCreated")
        .count();
    assert_eq!(notifications, household.reachable.len());
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn without_an_approved_template_the_alarm_goes_out_as_text(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let household = household(&store).await;
    let alarm = raise(&store, household.subject).await;
    let log = store.read_all(Position::START, 10_000).await.expect("log");
    AlarmFanOut::new(store.clone(), 3)
        .react(&log)
        .await
        .expect("fan out");
    let id = AlarmFanOut::notification_id(alarm.0, household.reachable[0]);
    let created = notification(&store, id).await.created.expect("created");
    let Personal::Known(NotificationContent::FreeText { body }) = created.content else {
        panic!("free text without a template");
    };
    assert!(
        body.contains("Lupe") && body.contains("Missing person"),
        "{body}"
    );
}

/// Waits until a backend of this database waits for the log's write lock inside an append.
async fn until_an_append_waits_for_the_lock(pool: &PgPool) {
    for _ in 0..1_000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
               AND query LIKE '%keryu_append_as_assumed%'",
        )
        .fetch_one(pool)
        .await
        .expect("activity");
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no append came to wait for the log's write lock");
}

/// The race the preconditions close: the fan-out reads a custodian as active, the custodian is
/// deactivated, then the fan-out appends. Holding the log's write lock makes the order certain:
/// the fan-out's append waits for it after its reads, and the deactivation is written by the
/// holder before it lets go.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_custodian_deactivated_during_the_fan_out_is_not_notified(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let leaving = custodian(&store, "ed@example.org", Some("+15551230005"), true).await;
    let subject = subject_in_care_of(&store, BTreeSet::from([leaving])).await;
    let alarm = raise(&store, subject).await;
    let log = store.read_all(Position::START, 10_000).await.expect("log");

    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("SELECT keryu_lock_event_log()")
        .execute(&mut *holder)
        .await
        .expect("lock");
    let fan_out = tokio::spawn({
        let store = store.clone();
        async move { AlarmFanOut::new(store, 3).react(&log).await }
    });
    until_an_append_waits_for_the_lock(&pool).await;

    let stream = StreamName::of::<Custodian>(leaving.0).expect("stream");
    let active = repository::load::<Custodian>(&store, &stream)
        .await
        .expect("load");
    let deactivated = active
        .state
        .decide(CustodianCommand::Deactivate { at: Utc::now() })
        .expect("decide")
        .iter()
        .map(|event| NewEvent::from_domain(Uuid::now_v7(), event, EventMetadata::default()))
        .collect::<Result<Vec<_>, _>>()
        .expect("encode");
    let version = active.version.expect("a stream");
    PgEventStore::append_in(
        &mut holder,
        &stream,
        ExpectedVersion::Exact(version),
        &deactivated,
    )
    .await
    .expect("deactivate");
    holder.commit().await.expect("commit");

    fan_out.await.expect("join").expect("fan out");
    let id = AlarmFanOut::notification_id(alarm.0, leaving);
    assert_eq!(notification(&store, id).await.created, None);
}

/// Counts the events it is handed; does nothing else.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Reaction for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }

    async fn react(&self, events: &[RecordedEvent]) -> Result<(), ReactionError> {
        self.0.fetch_add(events.len(), Ordering::SeqCst);
        Ok(())
    }
}

/// Notes every write of a reactor's checkpoint in `checkpoint_writes`.
async fn note_checkpoint_writes(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE checkpoint_writes (position bigint); \
         CREATE FUNCTION note_checkpoint_write() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN INSERT INTO checkpoint_writes VALUES (NEW.position); RETURN NEW; END $$; \
         CREATE TRIGGER note_checkpoint_write AFTER UPDATE ON process_checkpoints \
             FOR EACH ROW EXECUTE FUNCTION note_checkpoint_write();",
    )
    .execute(pool)
    .await
    .expect("trigger");
}

async fn checkpoint_writes(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT position FROM checkpoint_writes")
        .fetch_all(pool)
        .await
        .expect("writes")
}

/// Runs `reactor` until the returned sender says stop.
fn run_reactor(
    reactor: Arc<Reactor<Counting>>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, mut stopped) = watch::channel(false);
    let running = tokio::spawn(async move {
        reactor
            .run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
    });
    (stop, running)
}

async fn until_handled(reactor: &Reactor<Counting>, events: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while reactor.reaction().0.load(Ordering::SeqCst) < events {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the reaction is handed every event");
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_reactor_records_its_checkpoint_per_interval_not_per_batch(pool: PgPool) {
    note_checkpoint_writes(&pool).await;
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let reactor = Arc::new(
        Reactor::new(store.clone(), Counting::default())
            .with_checkpoint_interval(Duration::from_secs(3600)),
    );
    let (stop, running) = run_reactor(Arc::clone(&reactor));
    // Ten commits, each handed over as it comes: none is written within the hour…
    for _ in 0..10 {
        create_notification(&store, None).await;
    }
    until_handled(&reactor, 20).await;
    assert_eq!(checkpoint_writes(&pool).await, Vec::<i64>::new());
    // … and the last is written once, when the reactor stops.
    let _ = stop.send(true);
    running.await.expect("the reactor stops");
    let head = store.head_position().await.expect("head");
    assert_eq!(
        checkpoint_writes(&pool).await,
        [i64::try_from(head.0).expect("position")]
    );
    assert_eq!(reactor.checkpoint().await.expect("checkpoint"), head);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn an_idle_reactor_records_what_it_handled_within_an_interval(pool: PgPool) {
    let store = PgEventStore::new(pool, MasterKey::development());
    let reactor = Arc::new(
        Reactor::new(store.clone(), Counting::default())
            .with_checkpoint_interval(Duration::from_millis(50)),
    );
    let (stop, running) = run_reactor(Arc::clone(&reactor));
    create_notification(&store, None).await;
    let head = store.head_position().await.expect("head");
    tokio::time::timeout(Duration::from_secs(10), async {
        while reactor.checkpoint().await.expect("checkpoint") < head {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the checkpoint reaches the head while the reactor runs");
    let _ = stop.send(true);
    running.await.expect("the reactor stops");
}
