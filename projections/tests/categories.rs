//! What a projection says it reads (`Projection::categories`) against what it does: a live
//! batch of other categories only moves the checkpoint, so a category left out would silently
//! lose that category's events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keryu_infra::event_store::{
    EventMetadata, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName,
};
use keryu_infra::personal_data::{MasterKey, PhoneLookup};
use keryu_infra::postgres::PgEventStore;
use keryu_projections::alarms::AlarmsProjection;
use keryu_projections::directory::DirectoryProjection;
use keryu_projections::notifications::NotificationsProjection;
use keryu_projections::projection::{Applied, Projection};
use keryu_projections::projector::Projector;
use keryu_projections::subjects::SubjectsProjection;
use keryu_projections::timers::TimersProjection;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

/// Every category of the domain.
const CATEGORIES: [&str; 5] = ["subject", "notification", "alarm", "template", "custodian"];

fn event(category: &str, event_type: &str) -> (StreamName, NewEvent) {
    let stream = StreamName::new(category, Uuid::now_v7()).expect("stream");
    let event = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        data: serde_json::json!({}),
        metadata: EventMetadata::default(),
        personal: None,
    };
    (stream, event)
}

/// Appends, for every category, an event of a type no projection knows (a projection that
/// reads the category counts it unknown) and one named like the one event read across
/// categories (a subject's erasure), and reads them back.
async fn one_of_each(store: &PgEventStore) -> Vec<RecordedEvent> {
    for category in CATEGORIES {
        for event_type in ["SomethingHappened", "SubjectErased"] {
            let (stream, event) = event(category, event_type);
            store
                .append(&stream, ExpectedVersion::NoStream, vec![event])
                .await
                .expect("append");
        }
    }
    store.read_all(Position::START, 100).await.expect("events")
}

/// Applies `events` of categories `projection` does not declare, as the projector would were
/// they not passed over, and asserts that it ignores them.
async fn assert_ignores_undeclared<P: Projection>(
    pool: &PgPool,
    store: &PgEventStore,
    projection: P,
    events: &[RecordedEvent],
) {
    let projector = Projector::new(store.clone(), projection);
    projector.prepare().await.expect("prepare");
    let declared = projector.projection().categories();
    let undeclared: Vec<&RecordedEvent> = events
        .iter()
        .filter(|event| !declared.contains(&event.stream.category()))
        .collect();
    assert!(!undeclared.is_empty());
    let mut transaction = pool.begin().await.expect("begin");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET LOCAL search_path TO {}",
        projector.schema()
    )))
    .execute(&mut *transaction)
    .await
    .expect("search path");
    let applied = projector
        .projection()
        .apply(&mut transaction, &undeclared)
        .await
        .expect("apply");
    for (event, applied) in undeclared.iter().zip(applied) {
        assert_eq!(
            applied,
            Applied::Ignored,
            "{} reads {} {} but does not declare its category",
            projector.projection().name(),
            event.stream.category(),
            event.event_type,
        );
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn every_projection_ignores_the_categories_it_does_not_declare(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let events = one_of_each(&store).await;
    let subjects = SubjectsProjection::new(PhoneLookup::new("pepper"));
    assert_ignores_undeclared(&pool, &store, subjects, &events).await;
    assert_ignores_undeclared(&pool, &store, NotificationsProjection, &events).await;
    assert_ignores_undeclared(&pool, &store, AlarmsProjection, &events).await;
    assert_ignores_undeclared(&pool, &store, DirectoryProjection, &events).await;
    assert_ignores_undeclared(&pool, &store, TimersProjection, &events).await;
}

/// A projection of alarms that only counts the batches it is handed, to tell a batch passed
/// over from one applied.
#[derive(Clone, Default)]
struct CountingAlarms {
    batches: Arc<AtomicUsize>,
}

impl Projection for CountingAlarms {
    fn name(&self) -> &'static str {
        "counting_alarms"
    }

    fn tables_sql(&self) -> &'static str {
        "SELECT 1"
    }

    fn categories(&self) -> &'static [&'static str] {
        &["alarm"]
    }

    async fn apply(
        &self,
        _connection: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<Vec<Applied>, sqlx::Error> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        Ok(vec![Applied::Ignored; events.len()])
    }
}

/// A batch of other categories only moves the checkpoint, without being applied, when it
/// follows the checkpoint directly; otherwise (a gap in the positions, or the checkpoint
/// already past it) the batch goes the usual way.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_batch_of_other_categories_only_moves_the_checkpoint(pool: PgPool) {
    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let counting = CountingAlarms::default();
    let applied_batches = Arc::clone(&counting.batches);
    let projector = Projector::new(store.clone(), counting);
    projector.prepare().await.expect("prepare");
    for _ in 0..4 {
        let (stream, event) = event("notification", "SomethingHappened");
        store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .expect("append");
    }
    let events = store.read_all(Position::START, 100).await.expect("events");

    let passed = projector.apply_batch(&events[..2]).await.expect("batch");
    assert_eq!((passed.applied, passed.checkpoint), (2, events[1].position));
    assert_eq!(
        projector.checkpoint().await.expect("checkpoint"),
        events[1].position
    );
    assert_eq!(applied_batches.load(Ordering::SeqCst), 0, "passed over");

    // The checkpoint is already past the batch: nothing moves backwards.
    let again = projector.apply_batch(&events[..1]).await.expect("batch");
    assert_eq!(again.already_applied, 1);
    assert_eq!(
        projector.checkpoint().await.expect("checkpoint"),
        events[1].position
    );
    assert_eq!(applied_batches.load(Ordering::SeqCst), 1, "the usual way");

    // After a gap (the third event left out), the batch is applied as usual.
    let after_gap = projector.apply_batch(&events[3..]).await.expect("batch");
    assert_eq!(
        (after_gap.applied, after_gap.checkpoint),
        (1, events[3].position)
    );
    assert_eq!(
        projector.checkpoint().await.expect("checkpoint"),
        events[3].position
    );
    assert_eq!(applied_batches.load(Ordering::SeqCst), 2, "the usual way");
}
