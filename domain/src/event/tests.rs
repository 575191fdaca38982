//! The upcaster chain, with fixture steps that record their order, and the versions the
//! `event_enum!` macro derives.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::{DomainEvent, UnsupportedSchemaVersion, Upcaster, upcast};
use crate::alarm::AlarmEvent;
use crate::notification::NotificationEvent;

/// Appends `step` to the payload's `steps` array, so a test sees which steps ran in which order.
fn record(mut data: Value, step: &str) -> Value {
    if let Some(steps) = data["steps"].as_array_mut() {
        steps.push(json!(step));
    }
    data
}

fn v1_to_v2(data: Value) -> Value {
    record(data, "v1→v2")
}

fn v2_to_v3(data: Value) -> Value {
    record(data, "v2→v3")
}

fn v3_to_v4(data: Value) -> Value {
    record(data, "v3→v4")
}

/// A chain whose current version is 4.
const CHAIN: &[Upcaster] = &[v1_to_v2, v2_to_v3, v3_to_v4];

fn steps_from(version: u16) -> Result<Value, UnsupportedSchemaVersion> {
    upcast(CHAIN, version, Cow::Owned(json!({ "steps": [] }))).map(|data| data["steps"].clone())
}

#[test]
fn every_step_from_the_stored_version_runs_once_in_order() {
    assert_eq!(steps_from(1), Ok(json!(["v1→v2", "v2→v3", "v3→v4"])));
    assert_eq!(steps_from(2), Ok(json!(["v2→v3", "v3→v4"])));
    assert_eq!(steps_from(3), Ok(json!(["v3→v4"])));
}

#[test]
fn the_current_version_is_not_touched() {
    assert_eq!(steps_from(4), Ok(json!([])));
    let stored = json!({ "a": 1 });
    assert!(
        matches!(upcast(&[], 1, Cow::Borrowed(&stored)), Ok(Cow::Borrowed(data)) if *data == stored),
        "the current version is decoded from the stored payload itself, not a copy"
    );
}

#[test]
fn an_older_version_is_upcast_from_a_copy() {
    let stored = json!({ "steps": [] });
    let current = upcast(CHAIN, 3, Cow::Borrowed(&stored)).expect("v3 has a path");
    assert_eq!(current["steps"], json!(["v3→v4"]));
    assert_eq!(
        stored,
        json!({ "steps": [] }),
        "the stored payload stays as it was"
    );
}

#[test]
fn a_version_newer_than_this_build_or_zero_has_no_path() {
    let refused = |stored| Err(UnsupportedSchemaVersion { stored, current: 4 });
    assert_eq!(steps_from(5), refused(5));
    assert_eq!(steps_from(u16::MAX), refused(u16::MAX));
    assert_eq!(steps_from(0), refused(0));
    assert_eq!(
        upcast(&[], 2, Cow::Owned(json!({}))),
        Err(UnsupportedSchemaVersion {
            stored: 2,
            current: 1
        })
    );
}

#[test]
fn the_macro_derives_versions_and_chains_per_variant() {
    let retry = NotificationEvent::upcasters("RetryScheduled").expect("known type");
    assert_eq!(retry.len(), 1);
    let queued = NotificationEvent::upcasters("NotificationQueued").expect("known type");
    assert!(queued.is_empty());
    assert!(NotificationEvent::upcasters("AlarmRaised").is_none());
    assert!(AlarmEvent::upcasters("AlarmRaised").is_some());
}

#[test]
fn an_unknown_type_passes_through_for_decoding_to_report() {
    let data = json!({ "to": "the moon" });
    assert_eq!(
        NotificationEvent::upcast("NotificationTeleported", 7, Cow::Borrowed(&data)),
        Ok(Cow::Borrowed(&data))
    );
}
