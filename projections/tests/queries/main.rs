//! The query API over real HTTP and real read models: paging, filters, freshness, scoping.

mod alarms;
mod events;
mod openapi;
mod privacy;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use keryu_domain::notification::{Notification, NotificationCommand, NotificationContent};
use keryu_domain::subject::{Subject, SubjectCommand};
use keryu_domain::{AlarmId, CustodianId, NotificationId, RetryPolicy, Role, SubjectId};
use keryu_infra::event_store::{EventMetadata, EventStore, StreamName};
use keryu_infra::http::auth::{TokenIssuer, TokenVerifier};
use keryu_infra::personal_data::{MasterKey, PhoneLookup};
use keryu_infra::postgres::PgEventStore;
use keryu_infra::repository;
use keryu_projections::alarms::AlarmsProjection;
use keryu_projections::directory::DirectoryProjection;
use keryu_projections::notifications::NotificationsProjection;
use keryu_projections::projector::Projector;
use keryu_projections::queries::{QueryState, router};
use keryu_projections::subjects::SubjectsProjection;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

const SECRET: &[u8] = b"query-test-secret-query-test-secret";

/// Phone-number fingerprints as the tests' deployment configures them.
fn phones() -> PhoneLookup {
    PhoneLookup::new("query-test-pepper")
}

struct World {
    store: PgEventStore,
    base: String,
    client: reqwest::Client,
    issuer: TokenIssuer,
    projectors: Vec<tokio::task::JoinHandle<()>>,
}

impl World {
    async fn start(pool: PgPool, run_projectors: bool) -> World {
        let store = PgEventStore::new(pool.clone(), MasterKey::development());
        let notifications = Projector::new(store.clone(), NotificationsProjection);
        let subjects = Projector::new(store.clone(), SubjectsProjection::new(phones()));
        let directory = Projector::new(store.clone(), DirectoryProjection);
        let alarms = Projector::new(store.clone(), AlarmsProjection);
        notifications.prepare().await.expect("prepare");
        subjects.prepare().await.expect("prepare");
        directory.prepare().await.expect("prepare");
        alarms.prepare().await.expect("prepare");
        let mut projectors = Vec::new();
        if run_projectors {
            projectors = vec![
                tokio::spawn(async move { notifications.run(std::future::pending()).await }),
                tokio::spawn(async move { subjects.run(std::future::pending()).await }),
                tokio::spawn(async move { directory.run(std::future::pending()).await }),
                tokio::spawn(async move { alarms.run(std::future::pending()).await }),
            ];
        }
        let verifier = TokenVerifier::new(
            Algorithm::HS256,
            DecodingKey::from_secret(SECRET).expect("key"),
            "keryu",
            "keryu-api",
        );
        let issuer = TokenIssuer::new(
            Algorithm::HS256,
            EncodingKey::from_secret(SECRET).expect("key"),
            "keryu",
            "keryu-api",
            chrono::Duration::minutes(5),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let app = router(QueryState::new(store.clone(), verifier, phones()));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        World {
            store,
            base,
            client: reqwest::Client::new(),
            issuer,
            projectors,
        }
    }

    /// Stops the live projectors, giving their connections (each holds a `LISTEN` one) back to
    /// the test's small pool.
    async fn stop_projectors(&mut self) {
        for projector in self.projectors.drain(..) {
            projector.abort();
            let _ = projector.await;
        }
    }

    fn token(&self, role: Role, subject: &str) -> String {
        self.issuer.issue(subject, role).expect("token")
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Option<u64>, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let position = response
            .headers()
            .get("keryu-projection-position")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        (
            status,
            position,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn subject(&self, custodians: &[CustodianId]) -> SubjectId {
        let id = SubjectId(Uuid::now_v7());
        let stream = StreamName::of::<Subject>(id).expect("stream");
        let register = SubjectCommand::Register {
            id,
            name: "Ana".to_owned(),
            phone: "+14155238886".parse().expect("phone"),
            preferences: serde_json::json!({}),
            at: Utc::now(),
        };
        let metadata = EventMetadata::default();
        repository::execute::<Subject>(&self.store, &stream, register, &metadata, 3)
            .await
            .expect("register");
        let assign = SubjectCommand::AssignCustodians {
            custodian_ids: custodians.iter().copied().collect::<BTreeSet<_>>(),
            at: Utc::now(),
        };
        repository::execute::<Subject>(&self.store, &stream, assign, &metadata, 3)
            .await
            .expect("assign");
        id
    }

    async fn notification(&self, subject_id: SubjectId) -> NotificationId {
        self.notification_caused_by(subject_id, None).await
    }

    async fn notification_caused_by(
        &self,
        subject_id: SubjectId,
        alarm_id: Option<AlarmId>,
    ) -> NotificationId {
        let id = NotificationId(Uuid::now_v7());
        let stream = StreamName::of::<Notification>(id).expect("stream");
        let create = NotificationCommand::Create {
            id,
            subject_id,
            recipient: "+14155238886".parse().expect("phone"),
            content: NotificationContent::FreeText {
                body: "Hola".to_owned(),
            },
            scheduled_for: None,
            retry_policy: RetryPolicy::default(),
            alarm_id,
            at: Utc::now(),
        };
        repository::execute::<Notification>(
            &self.store,
            &stream,
            create,
            &EventMetadata::default(),
            3,
        )
        .await
        .expect("create");
        id
    }

    async fn head(&self) -> u64 {
        self.store.head_position().await.expect("head").0
    }

    /// Waits until every read model has applied everything appended so far: the
    /// notifications one through the API's `min_position`, the others (which follow the log
    /// each at its own pace) through their checkpoints.
    async fn settled(&self, token: &str) {
        let head = self.head().await;
        for schema in [
            "projection_subjects",
            "projection_directory",
            "projection_alarms",
        ] {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let position: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT position FROM {schema}.checkpoint"
                )))
                .fetch_one(self.store.pool())
                .await
                .expect("checkpoint");
                if position.unsigned_abs() >= head {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{schema} did not reach {head}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        let (status, position, _) = self
            .get(
                &format!("/api/notifications?min_position={head}&limit=1"),
                token,
            )
            .await;
        assert_eq!(status, 200);
        assert!(
            position.is_some_and(|p| p >= head),
            "the read model did not reach {head}"
        );
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn pages_are_stable_while_notifications_keep_arriving(pool: PgPool) {
    let world = World::start(pool, true).await;
    let admin = world.token(Role::Admin, "admin");
    let subject = world.subject(&[]).await;
    let mut created = HashSet::new();
    for _ in 0..12 {
        created.insert(world.notification(subject).await.to_string());
    }
    world.settled(&admin).await;

    let mut seen = Vec::new();
    let mut path = "/api/notifications/list/?limit=5".to_owned();
    loop {
        let (status, position, page) = world.get(&path, &admin).await;
        assert_eq!(status, 200, "{page}");
        assert!(position.is_some());
        seen.extend(ids(&page));
        // Newer notifications arrive between pages; they sort before the cursor.
        world.notification(subject).await;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/notifications?limit=5&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);
    let mut newest_first = seen.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        seen, newest_first,
        "ids are v7, so newest first means descending ids"
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn filters_and_bad_parameters(pool: PgPool) {
    let world = World::start(pool, true).await;
    let admin = world.token(Role::Auditor, "auditor-1");
    let (a, b) = (world.subject(&[]).await, world.subject(&[]).await);
    let in_a = world.notification(a).await;
    world.notification(b).await;
    world.settled(&admin).await;

    let (_, _, page) = world
        .get(&format!("/api/notifications?subject_id={}", a.0), &admin)
        .await;
    assert_eq!(ids(&page), [in_a.to_string()]);
    let (_, _, page) = world.get("/api/notifications?status=queued", &admin).await;
    assert_eq!(ids(&page).len(), 2);
    let (_, _, page) = world.get("/api/notifications?status=sent", &admin).await;
    assert!(ids(&page).is_empty());

    for bad in [
        "status=lost",
        "limit=0",
        "limit=501",
        "cursor=nonsense",
        "colour=red",
        "subject_id=x",
    ] {
        let (status, _, problem) = world
            .get(&format!("/api/notifications?{bad}"), &admin)
            .await;
        assert_eq!(status, 422, "{bad}: {problem}");
        assert_eq!(problem["type"], "/problems/validation");
    }
    let (status, _, view) = world
        .get(&format!("/api/notifications/{in_a}/status/"), &admin)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (view["status"].as_str(), view["attempt"].as_i64()),
        (Some("queued"), Some(0))
    );
    let (status, _, _) = world
        .get(&format!("/api/notifications/{}", Uuid::now_v7()), &admin)
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = world.get("/api/notifications", "not-a-token").await;
    assert_eq!(status, 401);
}

/// A query with `min_position` waits for the projector instead of answering stale data.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn min_position_waits_for_the_read_model(pool: PgPool) {
    let world = World::start(pool.clone(), false).await;
    let admin = world.token(Role::Admin, "admin");
    let subject = world.subject(&[]).await;
    let id = world.notification(subject).await;
    let head = world.head().await;

    let (_, stale, page) = world.get("/api/notifications", &admin).await;
    assert_eq!(stale, Some(0));
    assert!(ids(&page).is_empty());

    let late_projector = tokio::spawn({
        let store = world.store.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let notifications = Projector::new(store, NotificationsProjection);
            notifications.run(std::future::pending()).await;
        }
    });
    let (status, fresh, view) = world
        .get(
            &format!("/api/notifications/{id}?min_position={head}"),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert!(fresh.is_some_and(|position| position >= head));
    assert_eq!(view["status"], "queued");
    late_projector.abort();
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn custodians_see_only_their_subjects(pool: PgPool) {
    let world = World::start(pool, true).await;
    let carla = CustodianId(Uuid::now_v7());
    let theirs = world.subject(&[carla]).await;
    let others = world.subject(&[]).await;
    let visible = world.notification(theirs).await;
    let hidden = world.notification(others).await;
    let admin = world.token(Role::Admin, "admin");
    world.settled(&admin).await;

    let custodian = world.token(Role::Custodian, &carla.to_string());
    let (_, _, page) = world.get("/api/notifications", &custodian).await;
    assert_eq!(ids(&page), [visible.to_string()]);
    let (status, _, _) = world
        .get(&format!("/api/notifications/{hidden}"), &custodian)
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = world
        .get(&format!("/api/notifications/{visible}"), &custodian)
        .await;
    assert_eq!(status, 200);
    let (_, _, page) = world.get("/api/notifications", &admin).await;
    assert_eq!(ids(&page).len(), 2);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn subjects_are_listed_with_their_custodians_and_scoped(pool: PgPool) {
    let world = World::start(pool, true).await;
    let carla = CustodianId(Uuid::now_v7());
    let theirs = world.subject(&[carla]).await;
    let others = world.subject(&[]).await;
    let admin = world.token(Role::Admin, "admin");
    let head = world.head().await;

    let (status, position, page) = world
        .get(&format!("/api/subjects/list/?min_position={head}"), &admin)
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(position.is_some_and(|p| p >= head));
    assert_eq!(ids(&page), [others.0.to_string(), theirs.0.to_string()]);
    let (_, _, view) = world
        .get(&format!("/api/subjects/{}", theirs.0), &admin)
        .await;
    assert_eq!(view["custodian_ids"], serde_json::json!([carla.0]));
    assert_eq!(
        (view["name"].as_str(), view["active"].as_bool()),
        (Some("Ana"), Some(true))
    );

    let custodian = world.token(Role::Custodian, &carla.to_string());
    let (_, _, page) = world.get("/api/subjects", &custodian).await;
    assert_eq!(ids(&page), [theirs.0.to_string()]);
    let (status, _, _) = world
        .get(&format!("/api/subjects/{}", others.0), &custodian)
        .await;
    assert_eq!(status, 404);
    let (_, _, page) = world.get("/api/subjects?limit=1", &admin).await;
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, _, page) = world
        .get(&format!("/api/subjects?limit=1&cursor={cursor}"), &admin)
        .await;
    assert_eq!(ids(&page), [theirs.0.to_string()]);
    assert!(page["next_cursor"].is_null());
    let (status, _, _) = world.get("/api/subjects?active=maybe", &admin).await;
    assert_eq!(status, 422);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn stats_count_notifications_by_status(pool: PgPool) {
    let world = World::start(pool, true).await;
    let subject = world.subject(&[]).await;
    for _ in 0..3 {
        world.notification(subject).await;
    }
    let auditor = world.token(Role::Auditor, "auditor-1");
    let head = world.head().await;
    let (status, position, stats) = world
        .get(&format!("/api/stats?min_position={head}"), &auditor)
        .await;
    assert_eq!(status, 200, "{stats}");
    assert!(position.is_some_and(|p| p >= head));
    assert_eq!(
        stats["notifications_by_status"],
        serde_json::json!({ "queued": 3 })
    );
    assert_eq!(stats["notifications_total"], 3);
    let custodian = world.token(Role::Custodian, &Uuid::now_v7().to_string());
    let (status, _, _) = world.get("/api/stats", &custodian).await;
    assert_eq!(status, 403);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn templates_and_custodians_are_listed_without_secrets(pool: PgPool) {
    use keryu_domain::TemplateId;
    use keryu_domain::custodian::{Custodian, CustodianCommand, PasswordHash};
    use keryu_domain::template::{MessageTemplate, TemplateCommand, TemplateContent};

    let world = World::start(pool, true).await;
    let template = TemplateId(Uuid::now_v7());
    let stream = StreamName::of::<MessageTemplate>(template).expect("stream");
    let metadata = EventMetadata::default();
    let content = TemplateContent {
        content: "Hola {{1}}".to_owned(),
        variables: [("1".to_owned(), "name".to_owned())].into(),
        language: "es".to_owned(),
        content_sid: None,
    };
    for command in [
        TemplateCommand::Create {
            id: template,
            name: "welcome".to_owned(),
            content,
            at: Utc::now(),
        },
        TemplateCommand::Submit { at: Utc::now() },
        TemplateCommand::Approve {
            by: "admin".to_owned(),
            at: Utc::now(),
        },
    ] {
        repository::execute::<MessageTemplate>(&world.store, &stream, command, &metadata, 3)
            .await
            .expect("template");
    }
    let custodian = CustodianId(Uuid::now_v7());
    let stream = StreamName::of::<Custodian>(custodian).expect("stream");
    let create = CustodianCommand::Create {
        id: custodian,
        email: "carla@example.org".parse().expect("email"),
        name: "Carla".to_owned(),
        role: Role::Custodian,
        password_hash: PasswordHash(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
        ),
        phone: None,
        at: Utc::now(),
    };
    repository::execute::<Custodian>(&world.store, &stream, create, &metadata, 3)
        .await
        .expect("custodian");
    let head = world.head().await;

    let integrator = world.token(Role::Integrator, "integration-1");
    let (status, position, page) = world
        .get(&format!("/api/templates?min_position={head}"), &integrator)
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(position.is_some_and(|p| p >= head));
    let item = &page["items"][0];
    assert_eq!(
        (item["name"].as_str(), item["status"].as_str()),
        (Some("welcome"), Some("approved"))
    );
    assert_eq!(item["approved_version"], 1);
    let (status, _, view) = world
        .get(&format!("/api/templates/{}", template.0), &integrator)
        .await;
    assert_eq!(
        (status, view["content"].as_str()),
        (200, Some("Hola {{1}}"))
    );

    let (status, _, _) = world.get("/api/custodians", &integrator).await;
    assert_eq!(status, 403);
    let auditor = world.token(Role::Auditor, "auditor-1");
    let (status, _, page) = world.get("/api/custodians", &auditor).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), [custodian.0.to_string()]);
    assert_eq!(page["items"][0]["email"], "carla@example.org");
    assert!(
        !page.to_string().contains("argon2"),
        "a password hash reached the read side"
    );
}

/// Every row of every table of a read model, as text, in a stable order.
async fn dump_schema(pool: &PgPool, schema: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 AND table_name <> 'checkpoint' ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("tables");
    let mut rows = Vec::new();
    for table in tables {
        let table_rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT '{table}: ' || to_jsonb(t)::text FROM {schema}.{table} t ORDER BY 1"
        )))
        .fetch_all(pool)
        .await
        .expect("rows");
        rows.extend(table_rows);
    }
    rows
}

/// Every projection, rebuilt after a mixed workload, equals its live tables row for row.
#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn every_projection_rebuilds_to_its_live_tables(pool: PgPool) {
    use keryu_projections::rebuild::{Rebuilding, rebuild, rebuild_all};

    let mut world = World::start(pool.clone(), true).await;
    let carla = CustodianId(Uuid::now_v7());
    let assigned = [carla];
    for n in 0..4 {
        let custodians: &[CustodianId] = if n % 2 == 0 { &assigned } else { &[] };
        let subject = world.subject(custodians).await;
        world.notification(subject).await;
        let alarm = world.alarm(subject).await;
        world.notification_caused_by(subject, Some(alarm)).await;
        if n % 2 == 1 {
            world.acknowledge(alarm).await;
        }
        // An erased subject must stay erased through a rebuild (its key is gone for good).
        if n == 2 {
            world.erase(subject).await;
        }
    }
    let admin = world.token(Role::Admin, "admin");
    world.settled(&admin).await;
    let head = world.head().await;
    for schema in [
        "projection_subjects",
        "projection_directory",
        "projection_alarms",
    ] {
        for _ in 0..100 {
            let position: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT position FROM {schema}.checkpoint"
            )))
            .fetch_one(&pool)
            .await
            .expect("checkpoint");
            if position.unsigned_abs() >= head {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Four live projectors hold four of the test pool's five connections; a rebuild under a
    // live projector is tested with the notifications projection.
    world.stop_projectors().await;
    let store = world.store.clone();
    let live = [
        dump_schema(&pool, "projection_notifications").await,
        dump_schema(&pool, "projection_subjects").await,
        dump_schema(&pool, "projection_directory").await,
        dump_schema(&pool, "projection_alarms").await,
    ];
    // One read model alone, the other three from one shared reading of the log.
    rebuild(
        &Projector::new(store.clone(), NotificationsProjection),
        |_, _| {},
    )
    .await
    .expect("notifications");
    let others: Vec<Box<dyn Rebuilding>> = vec![
        Box::new(Projector::new(
            store.clone(),
            SubjectsProjection::new(phones()),
        )),
        Box::new(Projector::new(store.clone(), DirectoryProjection)),
        Box::new(Projector::new(store.clone(), AlarmsProjection)),
    ];
    let rebuilt = rebuild_all(&store, others, |_, _| {})
        .await
        .expect("subjects, directory and alarms");
    assert!(
        rebuilt
            .iter()
            .all(|read_model| read_model.checkpoint.0 == head)
    );
    let rebuilt = [
        dump_schema(&pool, "projection_notifications").await,
        dump_schema(&pool, "projection_subjects").await,
        dump_schema(&pool, "projection_directory").await,
        dump_schema(&pool, "projection_alarms").await,
    ];
    assert!(!live[0].is_empty() && !live[1].is_empty() && !live[3].is_empty());
    assert!(
        live[3]
            .iter()
            .any(|row| row.starts_with("alarm_notifications: ")),
        "the workload caused notifications"
    );
    assert!(
        live[1].iter().any(|row| row.contains(r#""erased": true"#)),
        "the workload erased a subject"
    );
    assert_eq!(rebuilt, live);
}
