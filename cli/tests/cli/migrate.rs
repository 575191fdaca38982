//! `keryu migrate` and `keryu --help`, run as the real binary against the local PostgreSQL.

use keryu_infra::event_store::{EventStore, ExpectedVersion, NewEvent, Position, StreamName};
use keryu_infra::postgres::{MIGRATOR, PgEventStore};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{FreshDatabase, keryu, stderr};
use keryu_infra::personal_data::MasterKey;

#[tokio::test]
async fn migrate_creates_a_fresh_database_and_is_idempotent() {
    let database = FreshDatabase::name("migrate");
    let url = database.url();

    for run in ["first", "second"] {
        let output = keryu(&["migrate"], &[("DATABASE_URL", &url)]);
        assert!(
            output.status.success(),
            "{run} run failed: {}",
            stderr(&output)
        );
    }

    let pool = PgPool::connect(&url).await.expect("the database exists");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .expect("migrations are recorded");
    assert_eq!(applied, MIGRATOR.iter().count() as i64);

    let store = PgEventStore::new(pool.clone(), MasterKey::development());
    let stream = StreamName::new("notification", Uuid::now_v7()).expect("stream name");
    let event = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "MigrationChecked".to_owned(),
        schema_version: 1,
        data: serde_json::json!({}),
        metadata: Default::default(),
        personal: None,
    };
    store
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await
        .expect("the migrated schema accepts appends");
    assert_eq!(store.head_position().await.expect("head"), Position(1));
    pool.close().await;

    database.drop().await;
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let output = keryu(
        &["migrate"],
        &[(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/keryu?sslmode=disable",
        )],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("could not reach PostgreSQL"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_bad_configuration_value_names_its_key() {
    let output = keryu(&["migrate"], &[("KERYU_DATABASE_MAX_CONNECTIONS", "many")]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("KERYU_DATABASE_MAX_CONNECTIONS"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_lists_the_roles() {
    let output = keryu(&["--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("migrate"), "{help}");
}
