//! The machine-readable contracts kept under `schemas/`: the OpenAPI document, a JSON Schema
//! per command body, and a JSON Schema per stored event type and schema version. All are
//! generated from the code, except the schemas of earlier event versions, which are kept as
//! they were committed; a test fails when the files and the code drift apart.

use std::collections::{BTreeMap, BTreeSet};

use keryu_domain::alarm::AlarmEvent;
use keryu_domain::custodian::CustodianEvent;
use keryu_domain::event::PayloadSchema;
use keryu_domain::notification::NotificationEvent;
use keryu_domain::subject::SubjectEvent;
use keryu_domain::template::TemplateEvent;
use serde_json::{Map, Value, json};

use crate::routes::api_document;

const JSON_SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";
const COMPONENT_PREFIX: &str = "#/components/schemas/";

/// The OpenAPI document of the HTTP API: commands and the queries served next to them.
pub fn openapi() -> Value {
    serde_json::to_value(api_document()).unwrap_or(Value::Null)
}

/// Every file of `schemas/`, by path relative to it.
pub fn documents() -> BTreeMap<String, Value> {
    let openapi = openapi();
    let components = openapi["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut documents = BTreeMap::new();
    for body in request_bodies(&openapi) {
        let schema = json!({ "$ref": format!("{COMPONENT_PREFIX}{body}") });
        documents.insert(
            format!("commands/{body}.v1.json"),
            standalone(&body, schema, &components),
        );
    }
    for event in event_payloads() {
        let (name, document) = event_document(event);
        documents.insert(name, document);
    }
    documents.insert("openapi.json".to_owned(), openapi);
    documents
}

/// The schema files of every earlier version of every event type (`events/<Type>.v<N>.json`
/// for N below the current version). The code no longer generates them, but they stay in
/// `schemas/` unchanged: they document the shapes stored in the log, which the upcasters read.
pub fn historical_event_documents() -> BTreeSet<String> {
    event_payloads()
        .flat_map(|event| {
            (1..event.schema_version)
                .map(move |version| format!("events/{}.v{version}.json", event.event_type))
        })
        .collect()
}

/// The current payload schema of every event type of every aggregate.
fn event_payloads() -> impl Iterator<Item = PayloadSchema> {
    [
        NotificationEvent::payload_schemas(),
        SubjectEvent::payload_schemas(),
        TemplateEvent::payload_schemas(),
        AlarmEvent::payload_schemas(),
        CustodianEvent::payload_schemas(),
    ]
    .into_iter()
    .flatten()
}

/// The names of the schemas used as request bodies.
fn request_bodies(openapi: &Value) -> BTreeSet<String> {
    let operations = openapi["paths"].as_object().into_iter().flat_map(|paths| {
        paths
            .values()
            .filter_map(Value::as_object)
            .flat_map(|item| item.values())
    });
    operations
        .flat_map(|operation| {
            references(&operation["requestBody"]["content"]["application/json"]["schema"])
        })
        .collect()
}

fn event_document(event: PayloadSchema) -> (String, Value) {
    let components: Map<String, Value> = event
        .components
        .iter()
        .filter_map(|(name, schema)| Some((name.clone(), serde_json::to_value(schema).ok()?)))
        .collect();
    let schema = serde_json::to_value(&event.schema).unwrap_or(Value::Null);
    let name = format!("events/{}.v{}.json", event.event_type, event.schema_version);
    (name, standalone(event.event_type, schema, &components))
}

/// `schema` as a self-contained JSON Schema document: the component schemas it refers to,
/// directly or not, become `$defs`.
fn standalone(title: &str, schema: Value, components: &Map<String, Value>) -> Value {
    let mut needed = BTreeSet::new();
    let mut pending = references(&schema);
    while let Some(name) = pending.pop() {
        if needed.insert(name.clone())
            && let Some(component) = components.get(&name)
        {
            pending.extend(references(component));
        }
    }
    let defs: Map<String, Value> = needed
        .into_iter()
        .filter_map(|name| {
            let component = components.get(&name)?.clone();
            Some((name, rewrite_references(component)))
        })
        .collect();
    let mut document = Map::new();
    document.insert("$schema".to_owned(), json!(JSON_SCHEMA_DIALECT));
    document.insert("title".to_owned(), json!(title));
    if let Value::Object(body) = rewrite_references(schema) {
        document.extend(body);
    }
    if !defs.is_empty() {
        document.insert("$defs".to_owned(), Value::Object(defs));
    }
    Value::Object(document)
}

fn references(schema: &Value) -> Vec<String> {
    match schema {
        Value::Object(object) => object
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("$ref", Value::String(reference)) => reference
                    .strip_prefix(COMPONENT_PREFIX)
                    .map(str::to_owned)
                    .into_iter()
                    .collect(),
                _ => references(value),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(references).collect(),
        _ => Vec::new(),
    }
}

fn rewrite_references(schema: Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .map(|(key, value)| match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => {
                        let local = reference.replacen(COMPONENT_PREFIX, "#/$defs/", 1);
                        (key, Value::String(local))
                    }
                    (_, value) => (key, rewrite_references(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(rewrite_references).collect()),
        other => other,
    }
}
