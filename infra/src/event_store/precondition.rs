//! A condition on another stream that an append depends on.

use super::{ExpectedVersion, StreamName};

/// "Stream `stream` is still at `expected`": what an append decided on another aggregate's
/// state depends on.
///
/// A command sometimes reads one aggregate to decide about another — a notification takes its
/// recipient from its subject's stream. The append's own expected version only guards the
/// stream appended to; without a precondition, the subject could change (be deactivated,
/// erased, get another number) between the read and the append, and the notification would
/// carry what no longer holds. With one, the store checks the other stream's version in the
/// same transaction as the append, under the same lock, so the decision and the write see the
/// same state — and a writer may decide from a cached copy of the other aggregate, since a
/// stale copy is refused rather than believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    /// The stream the append depends on (normally not the one appended to; if it is, the
    /// condition is checked against the stream before the append, like the expected version).
    pub stream: StreamName,
    /// The version it must still be at.
    pub expected: ExpectedVersion,
}
