//! `keryu migrate` and `keryu --help`, run as the real binary against the local PostgreSQL.

use std::process::{Command, Output};

use keryu_infra::event_store::{EventStore, ExpectedVersion, NewEvent, Position, StreamName};
use keryu_infra::postgres::{MIGRATOR, PgEventStore};
use sqlx::PgPool;
use uuid::Uuid;

fn keryu(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keryu"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the keryu binary runs")
}

/// The server of the test environment's `DATABASE_URL`, with another database name.
fn database_url(name: &str) -> String {
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for tests");
    let (address, query) = server.split_once('?').unwrap_or((&server, ""));
    let (server_root, _) = address
        .rsplit_once('/')
        .expect("a URL with a database path");
    format!("{server_root}/{name}?{query}")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn migrate_creates_a_fresh_database_and_is_idempotent() {
    let name = format!("keryu_migrate_{}", Uuid::new_v4().simple());
    let url = database_url(&name);

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

    let store = PgEventStore::new(pool.clone());
    let stream = StreamName::new("notification", Uuid::now_v7()).expect("stream name");
    let event = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "MigrationChecked".to_owned(),
        schema_version: 1,
        data: serde_json::json!({}),
        metadata: Default::default(),
    };
    store
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await
        .expect("the migrated schema accepts appends");
    assert_eq!(store.head_position().await.expect("head"), Position(1));
    pool.close().await;

    let admin = PgPool::connect(&database_url("postgres"))
        .await
        .expect("admin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .expect("drop the test database");
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
