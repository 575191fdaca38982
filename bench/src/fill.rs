//! Filling a log fast through the store's own append path: commands decided by the domain
//! (`decide`/`evolve`, exactly as the command API does), encoded with [`NewEvent::from_domain`]
//! and appended with [`PgEventStore::append_in`] — the whole append protocol (the log's write
//! lock, the idempotency check, the expected version) — many streams per transaction, so that a
//! million events take a minute rather than the hours of one HTTP call each.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use keryu_domain::notification::{
    Notification, NotificationCommand, NotificationContent, ProviderStatus,
};
use keryu_domain::subject::{Subject, SubjectCommand};
use keryu_domain::{Aggregate, NotificationId, PhoneNumber, RetryPolicy, SubjectId};
use keryu_infra::event_store::{
    Actor, EventMetadata, ExpectedVersion, NewEvent, Position, StreamName,
};
use keryu_infra::postgres::PgEventStore;
use serde::Serialize;
use uuid::Uuid;

/// How far each generated notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Created and queued, waiting for a dispatcher (a backlog).
    Queued,
    /// Created, queued, attempted, sent, delivered and read: a whole delivery.
    Read,
}

/// What a fill appended.
#[derive(Debug, Clone, Serialize)]
pub struct Filled {
    /// Events appended.
    pub events: u64,
    /// Notifications among the streams.
    pub notifications: u64,
    /// Subjects among the streams.
    pub subjects: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Seconds it took.
    pub elapsed_seconds: f64,
    /// Events appended per second.
    pub events_per_second: f64,
    /// The head of the log afterwards.
    pub head: u64,
}

/// Notifications per subject in generated logs.
const NOTIFICATIONS_PER_SUBJECT: u64 = 50;

/// One aggregate's events, decided from `commands` starting with no stream.
fn decide_all<A: Aggregate>(commands: Vec<A::Command>) -> anyhow::Result<Vec<A::Event>> {
    let mut state = A::default();
    let mut events = Vec::new();
    for command in commands {
        let decided = state
            .decide(command)
            .map_err(|error| anyhow::anyhow!("the domain refused a generated command: {error}"))?;
        state = decided.iter().fold(state, A::evolve);
        events.extend(decided);
    }
    Ok(events)
}

fn encode<A: Aggregate>(
    events: &[A::Event],
    metadata: &EventMetadata,
) -> anyhow::Result<Vec<NewEvent>> {
    events
        .iter()
        .map(|event| NewEvent::from_domain(Uuid::now_v7(), event, metadata.clone()))
        .collect::<Result<Vec<_>, _>>()
        .context("an event does not encode")
}

fn subject_stream(
    id: SubjectId,
    phone: &PhoneNumber,
) -> anyhow::Result<(StreamName, Vec<NewEvent>)> {
    let events = decide_all::<Subject>(vec![SubjectCommand::Register {
        id,
        name: "Bench subject".to_owned(),
        phone: phone.clone(),
        preferences: serde_json::json!({}),
        at: Utc::now(),
    }])?;
    Ok((
        StreamName::of::<Subject>(id)?,
        encode::<Subject>(&events, &metadata())?,
    ))
}

fn notification_stream(
    seq: u64,
    subject: SubjectId,
    phone: &PhoneNumber,
    lifecycle: Lifecycle,
) -> anyhow::Result<(StreamName, Vec<NewEvent>)> {
    let id = NotificationId(Uuid::now_v7());
    let at = Utc::now();
    let mut commands = vec![NotificationCommand::Create {
        id,
        subject_id: subject,
        recipient: phone.clone(),
        content: NotificationContent::FreeText {
            body: format!("Keryu benchmark #{seq}: your appointment is tomorrow at 10:00."),
        },
        scheduled_for: None,
        retry_policy: RetryPolicy::default(),
        alarm_id: None,
        at,
    }];
    if lifecycle == Lifecycle::Read {
        let status = |status| NotificationCommand::RecordProviderStatus {
            status,
            error_code: None,
            error_message: None,
            at,
        };
        commands.extend([
            NotificationCommand::StartAttempt {
                dispatcher: "keryu-bench".to_owned(),
                at,
            },
            NotificationCommand::RecordSent {
                provider_message_id: format!("SM{}", Uuid::new_v4().simple()),
                at,
            },
            status(ProviderStatus::Delivered),
            status(ProviderStatus::Read),
        ]);
    }
    let events = decide_all::<Notification>(commands)?;
    Ok((
        StreamName::of::<Notification>(id)?,
        encode::<Notification>(&events, &metadata())?,
    ))
}

fn metadata() -> EventMetadata {
    EventMetadata {
        correlation_id: Uuid::now_v7(),
        actor: Some(Actor {
            id: "keryu-bench".to_owned(),
            role: "system".to_owned(),
        }),
        ..EventMetadata::default()
    }
}

/// Appends notifications (and their subjects) until at least `target_events` events, or
/// exactly `notifications` notifications when given, `streams_per_transaction` streams per
/// transaction. Reports progress on stderr every ~10 %.
///
/// # Errors
/// When the store refuses an append or the domain a generated command.
pub async fn fill(
    store: &PgEventStore,
    target_events: u64,
    notifications: Option<u64>,
    lifecycle: Lifecycle,
    streams_per_transaction: usize,
) -> anyhow::Result<Filled> {
    let started = Instant::now();
    let mut filled = Filled {
        events: 0,
        notifications: 0,
        subjects: 0,
        transactions: 0,
        elapsed_seconds: 0.0,
        events_per_second: 0.0,
        head: 0,
    };
    let done = |filled: &Filled| match notifications {
        Some(count) => filled.notifications >= count,
        None => filled.events >= target_events,
    };
    let mut subject = (SubjectId(Uuid::now_v7()), phone(0)?);
    let mut last_report = Instant::now();
    let mut analyzed_at = 0;
    while !done(&filled) {
        let mut batch = Vec::with_capacity(streams_per_transaction);
        while batch.len() < streams_per_transaction.max(1) && !done(&filled) {
            if filled
                .notifications
                .is_multiple_of(NOTIFICATIONS_PER_SUBJECT)
            {
                subject = (SubjectId(Uuid::now_v7()), phone(filled.subjects)?);
                let stream = subject_stream(subject.0, &subject.1)?;
                filled.subjects += 1;
                filled.events += stream.1.len() as u64;
                batch.push(stream);
            }
            let stream =
                notification_stream(filled.notifications, subject.0, &subject.1, lifecycle)?;
            filled.notifications += 1;
            filled.events += stream.1.len() as u64;
            batch.push(stream);
        }
        // Sealed as `append` would: the rebuild then opens personal data like in production.
        for (stream, events) in &mut batch {
            store.vault().seal(stream, events).await?;
        }
        let mut transaction = store.pool().begin().await?;
        let mut last = Position(0);
        for (stream, events) in &batch {
            let appended = PgEventStore::append_in(
                &mut transaction,
                stream,
                ExpectedVersion::NoStream,
                events,
            )
            .await
            .with_context(|| format!("appending to {stream}"))?;
            last = appended.last_position;
        }
        transaction.commit().await?;
        filled.transactions += 1;
        // Keep the planner's statistics current while the table grows from empty: without
        // them (autovacuum off, or not yet run), a pooled connection's cached generic plan
        // for the store's event-id check is a sequential scan and every append costs O(log).
        if filled.transactions.is_power_of_two() || filled.events / 100_000 != analyzed_at {
            analyzed_at = filled.events / 100_000;
            sqlx::query("ANALYZE events").execute(store.pool()).await?;
        }
        filled.head = last.0;
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  filled {} events ({:.0}/s)",
                filled.events,
                filled.events as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    filled.elapsed_seconds = started.elapsed().as_secs_f64();
    filled.events_per_second = filled.events as f64 / filled.elapsed_seconds.max(1e-9);
    Ok(filled)
}

/// The `n`th generated phone: +1 555 02x xxxx (fictional, none of the simulator's magic ones).
fn phone(n: u64) -> anyhow::Result<PhoneNumber> {
    format!("+1555{:07}", 2_000_000 + n % 1_000_000)
        .parse()
        .map_err(|error| anyhow::anyhow!("a generated phone is refused: {error}"))
}
