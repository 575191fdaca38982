//! `schemas/` holds exactly what the code generates, and the API serves its documentation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keryu_command_api::schemas;
use sqlx::PgPool;

use crate::harness::Api;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn files_on_disk(dir: &Path, prefix: &str, found: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("schemas/ is readable") {
        let path = entry.expect("entry").path();
        let name = format!(
            "{prefix}{}",
            path.file_name().expect("name").to_string_lossy()
        );
        if path.is_dir() {
            files_on_disk(&path, &format!("{name}/"), found);
        } else if name.ends_with(".json") {
            found.insert(name, std::fs::read_to_string(&path).expect("readable"));
        }
    }
}

/// Run with `KERYU_UPDATE_SCHEMAS=1` to rewrite `schemas/` after an intended change, and
/// review the diff: a changed event schema needs a new schema version and an upcaster, and the
/// old version's file stays (the update never rewrites or deletes it).
#[test]
fn schema_files_match_the_code() {
    let generated: BTreeMap<String, String> = schemas::documents()
        .into_iter()
        .map(|(name, document)| {
            let text = serde_json::to_string_pretty(&document).expect("json") + "\n";
            (name, text)
        })
        .collect();
    let dir = schemas_dir();
    if std::env::var_os("KERYU_UPDATE_SCHEMAS").is_some() {
        for (name, text) in &generated {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
    }
    let mut on_disk = BTreeMap::new();
    files_on_disk(&dir, "", &mut on_disk);
    for (name, text) in &generated {
        assert_eq!(
            on_disk.get(name),
            Some(text),
            "schemas/{name} differs from the code; run KERYU_UPDATE_SCHEMAS=1 cargo test -p keryu-command-api --test api schemas"
        );
    }
    // Earlier event versions are not generated any more, but their files stay as committed:
    // they are the shapes the log holds and the upcasters read.
    let historical = schemas::historical_event_documents();
    let missing: Vec<&String> = historical
        .iter()
        .filter(|name| !on_disk.contains_key(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "schemas/ lost the schema of an earlier event version; restore it from git: {missing:?}"
    );
    let stale: Vec<&String> = on_disk
        .keys()
        .filter(|name| !generated.contains_key(*name) && !historical.contains(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "schemas/ has files the code no longer produces: {stale:?}"
    );
    assert!(
        generated
            .keys()
            .any(|name| name == "events/NotificationCreated.v1.json")
    );
    assert!(historical.contains("events/RetryScheduled.v1.json"));
    assert!(generated.contains_key("events/RetryScheduled.v2.json"));
    assert!(
        generated
            .keys()
            .any(|name| name == "commands/CreateNotification.v1.json")
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn the_api_serves_its_openapi_document_and_docs(pool: PgPool) {
    let api = Api::start(pool).await;
    let document = api
        .client
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .expect("get");
    assert_eq!(document.status().as_u16(), 200);
    let document: serde_json::Value = document.json().await.expect("json");
    assert_eq!(document, schemas::openapi());
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    for path in [
        "/api/notifications",
        "/api/subjects/{id}",
        "/api/auth/token",
        "/api/templates/{id}/approve",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} is not documented"
        );
    }
    // The query routes, served next to the commands, are in the same document.
    for (path, method) in [
        ("/api/notifications", "get"),
        ("/api/notifications", "post"),
        ("/api/alarms", "get"),
        ("/api/alarms/{id}", "get"),
        ("/api/stats", "get"),
    ] {
        assert!(
            document["paths"][path].get(method).is_some(),
            "{method} {path} is not documented"
        );
    }
    let docs = api
        .client
        .get(format!("{}/docs", api.base))
        .send()
        .await
        .expect("get");
    assert_eq!(docs.status().as_u16(), 200);
    let page = docs.text().await.expect("html");
    assert!(
        page.contains("/openapi.json") && !page.contains("https://"),
        "the page loads nothing from elsewhere"
    );
}
