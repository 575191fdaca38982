//! Where an event sits: its version inside its stream and its position in the global log.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An event's 0-based index inside its stream.
pub type StreamVersion = u64;

/// An event's place in the global log (`$all`), strictly increasing in commit order.
///
/// Positions are not dense (an aborted append may leave a hole), so readers must never infer
/// "missing" events from gaps; they only rely on order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    /// Before the first event: reading after it starts at the beginning of the log.
    pub const START: Position = Position(0);
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The version a writer believes a stream is at: the optimistic lock of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's state (no concurrency check).
    Any,
    /// The stream must not exist yet: creating an aggregate.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(StreamVersion),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (`None` when it has no events) satisfies
    /// this expectation.
    pub fn accepts(self, actual: Option<StreamVersion>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::Exact(expected) => actual == Some(expected),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// What a successful append tells the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// The version of the last appended event: the expected version of the next append.
    pub last_version: StreamVersion,
    /// The global position of the last appended event: what a reader must reach to have seen
    /// this write (read-your-writes).
    pub last_position: Position,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_version_accepts_only_matching_states() {
        assert!(ExpectedVersion::Any.accepts(None));
        assert!(ExpectedVersion::Any.accepts(Some(3)));
        assert!(ExpectedVersion::NoStream.accepts(None));
        assert!(!ExpectedVersion::NoStream.accepts(Some(0)));
        assert!(ExpectedVersion::Exact(2).accepts(Some(2)));
        assert!(!ExpectedVersion::Exact(2).accepts(Some(1)));
        assert!(!ExpectedVersion::Exact(0).accepts(None));
    }
}
