//! What can go wrong when talking to an event store.

use std::error::Error as StdError;

use uuid::Uuid;

use super::{ExpectedVersion, StreamName, StreamVersion};

/// The store could not serve a request. Always worth retrying later: nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing server failed or could not be reached.
    #[error("event store backend failed")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
    /// A stored row does not decode into an event: the log was written by something else than
    /// this store, or edited by hand.
    #[error("stored event at position {position} is corrupt: {reason}")]
    Corrupt {
        /// Global position of the offending row.
        position: i64,
        /// What did not decode.
        reason: String,
    },
}

/// An append was refused; nothing of the batch was written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Optimistic concurrency: the stream moved since the writer read it.
    #[error("stream {stream} is at {actual:?}, expected {expected}")]
    WrongExpectedVersion {
        /// The stream appended to.
        stream: StreamName,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The version of the stream's last event, `None` when the stream does not exist.
        actual: Option<StreamVersion>,
    },
    /// A [`Precondition`](super::Precondition) of the append does not hold: the other stream
    /// it depends on moved since the writer read it.
    #[error("precondition failed: stream {stream} is at {actual:?}, expected {expected}")]
    PreconditionFailed {
        /// The stream the precondition is about (not the one appended to).
        stream: StreamName,
        /// What the precondition expected.
        expected: ExpectedVersion,
        /// The version of that stream's last event, `None` when the stream does not exist.
        actual: Option<StreamVersion>,
    },
    /// Some event ids of the batch are already stored, but not as this very batch in this stream:
    /// a writer reused ids, which would make idempotent retries ambiguous.
    #[error("event id {event_id} is already stored as part of a different append")]
    EventIdConflict {
        /// The first conflicting id.
        event_id: Uuid,
    },
    /// An append must carry at least one event.
    #[error("an append must carry at least one event")]
    NoEvents,
    /// The store could not be reached or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
