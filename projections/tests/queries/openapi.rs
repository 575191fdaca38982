//! The query routes' OpenAPI document: every operation says how to authenticate, how fresh its
//! answer is (read models) and which problems it answers.

use serde_json::{Value, json};

#[test]
fn every_query_operation_is_documented_with_the_shared_conventions() {
    let document = serde_json::to_value(keryu_projections::queries::openapi()).expect("json");
    let operations: Vec<(&String, &Value)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| item.get("get").map(|get| (path, get)))
        .collect();
    let paths: Vec<&str> = operations.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/alarms",
            "/api/alarms/{id}",
            "/api/custodians",
            "/api/events",
            "/api/notifications",
            "/api/notifications/{id}",
            "/api/notifications/{id}/history",
            "/api/stats",
            "/api/streams/{stream}/events",
            "/api/subjects",
            "/api/subjects/{id}",
            "/api/templates",
            "/api/templates/{id}",
        ]
    );
    let from_the_log = |path: &str| path.contains("events") || path.ends_with("history");
    for (path, operation) in operations {
        if from_the_log(path) {
            assert_eq!(operation["tags"], json!(["events"]), "{path}");
            assert_eq!(operation["security"], json!([{ "bearer": [] }]), "{path}");
            let ok = &operation["responses"]["200"];
            assert!(
                ok["headers"].get("Keryu-Projection-Position").is_none(),
                "{path}"
            );
            assert!(
                ok["content"]["application/json"]["schema"]["$ref"].is_string(),
                "{path}: {ok}"
            );
            for status in ["4XX", "503"] {
                assert!(
                    operation["responses"][status]["content"]["application/problem+json"]
                        .is_object(),
                    "{path} {status}"
                );
            }
            continue;
        }
        assert_eq!(operation["security"], json!([{ "bearer": [] }]), "{path}");
        let ok = &operation["responses"]["200"];
        assert!(
            ok["content"]["application/json"]["schema"]["$ref"].is_string(),
            "{path}: {ok}"
        );
        assert!(
            ok["headers"]["Keryu-Projection-Position"].is_object(),
            "{path}: {ok}"
        );
        for status in ["4XX", "503"] {
            assert_eq!(
                operation["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/ProblemDocument",
                "{path} {status}"
            );
        }
        let parameters = operation["parameters"].as_array().expect("parameters");
        assert!(
            parameters
                .iter()
                .any(|parameter| parameter["name"] == "min_position"),
            "{path}"
        );
        assert!(operation["operationId"].is_string() && operation["summary"].is_string());
    }
    let list = &document["paths"]["/api/alarms"]["get"]["parameters"];
    let names: Vec<&str> = list
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|parameter| parameter["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["status", "subject_id", "limit", "cursor", "min_position"]
    );
    let streamed = &document["paths"]["/api/events"]["get"]["responses"]["200"]["content"];
    assert_eq!(
        streamed["application/x-ndjson"]["schema"]["$ref"],
        "#/components/schemas/EventView"
    );
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    for schema in [
        "ProblemDocument",
        "AlarmDetail",
        "AlarmView",
        "AlarmNotificationView",
        "EventPage",
        "EventView",
        "NotificationHistory",
    ] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
}
