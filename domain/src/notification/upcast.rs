//! Upcasters of notification events: each turns the stored JSON payload of one schema version
//! into the next, so that a log written by an older Keryu reads as today's events. They are
//! part of the events' definition (see [`crate::event`]); the stored rows are never rewritten.

use serde_json::Value;

/// `RetryScheduled` v1 → v2: `attempt` is renamed `next_attempt` (the attempt the retry will
/// make, not the one that failed; see [`super::RetryScheduled`]). Same number, same meaning.
pub(super) fn retry_scheduled_v1(mut data: Value) -> Value {
    if let Some(payload) = data.as_object_mut()
        && let Some(attempt) = payload.remove("attempt")
    {
        payload.insert("next_attempt".to_owned(), attempt);
    }
    data
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::json;

    use super::retry_scheduled_v1;
    use crate::DomainEvent;
    use crate::event::UnsupportedSchemaVersion;
    use crate::notification::{NotificationEvent, RetryScheduled};

    /// A `RetryScheduled` exactly as Keryu wrote it before version 2.
    fn retry_scheduled_as_v1_wrote_it() -> serde_json::Value {
        json!({
            "attempt": 2,
            "not_before": "2025-01-01T12:00:04Z",
            "at": "2025-01-01T12:00:00Z",
        })
    }

    #[test]
    fn v1_renames_attempt_to_next_attempt_and_keeps_the_rest() {
        assert_eq!(
            retry_scheduled_v1(retry_scheduled_as_v1_wrote_it()),
            json!({
                "next_attempt": 2,
                "not_before": "2025-01-01T12:00:04Z",
                "at": "2025-01-01T12:00:00Z",
            })
        );
    }

    #[test]
    fn a_payload_without_the_old_field_is_left_for_decoding_to_refuse() {
        let odd = json!({ "not_before": "2025-01-01T12:00:04Z" });
        assert_eq!(retry_scheduled_v1(odd.clone()), odd);
        assert_eq!(retry_scheduled_v1(json!(null)), json!(null));
    }

    #[test]
    fn a_stored_v1_retry_reads_as_the_current_event() {
        let current = NotificationEvent::upcast(
            "RetryScheduled",
            1,
            Cow::Owned(retry_scheduled_as_v1_wrote_it()),
        )
        .expect("v1 has a path to v2");
        let event: NotificationEvent =
            serde_json::from_value(json!({ "type": "RetryScheduled", "data": current }))
                .expect("decodes");
        let NotificationEvent::RetryScheduled(RetryScheduled {
            next_attempt,
            not_before,
            ..
        }) = event
        else {
            panic!("not a retry: {event:?}");
        };
        assert_eq!(next_attempt, 2);
        assert_eq!(not_before.to_rfc3339(), "2025-01-01T12:00:04+00:00");
    }

    #[test]
    fn the_current_version_passes_through_and_a_newer_one_is_refused() {
        let v2 = json!({ "next_attempt": 3, "not_before": "2025-01-01T12:00:04Z", "at": "2025-01-01T12:00:00Z" });
        assert_eq!(
            NotificationEvent::upcast("RetryScheduled", 2, Cow::Borrowed(&v2)),
            Ok(Cow::Borrowed(&v2))
        );
        assert_eq!(
            NotificationEvent::upcast("RetryScheduled", 3, Cow::Borrowed(&v2)),
            Err(UnsupportedSchemaVersion {
                stored: 3,
                current: 2
            })
        );
    }
}
