//! The event store port: an append-only log of events grouped into streams.
//!
//! Every state change in Keryu is an event appended here first; read models, NATS messages,
//! timers and Twilio calls are all derived from this log. The port is kept deliberately small and
//! neutral so that more than one server can implement it: its vocabulary — stream names,
//! 0-based stream versions, expected versions (any / no stream / exactly N) and a global position
//! that grows in commit order — maps one to one onto PostgreSQL (the default adapter in
//! [`crate::postgres`]) and onto KurrentDB/EventStoreDB (`$all` positions, stream revisions,
//! `StreamState`).
//!
//! The contract every adapter must honour is written down once, as the conformance suite in
//! `infra/tests/event_store_conformance.rs`.

mod codec;
mod error;
mod event;
mod position;
mod precondition;
mod stream_name;
mod subscription;

use std::future::Future;

pub use codec::CodecError;
pub use error::{AppendError, StoreError};
pub use event::{Actor, EventMetadata, NewEvent, RecordedEvent};
pub use position::{AppendResult, ExpectedVersion, Position, StreamVersion};
pub use precondition::Precondition;
pub use stream_name::{InvalidStreamName, StreamName};
pub use subscription::Subscription;

/// An append-only, totally ordered log of events, partitioned into streams.
///
/// Implementations must guarantee:
/// - **Optimistic concurrency**: [`append`](EventStore::append) succeeds only when the stream is at
///   the expected version, and appends the whole batch atomically or nothing.
/// - **Idempotency**: appending a batch whose event ids are already stored (the same events, in the
///   same stream) is a no-op that returns the result of the first append. This makes a retried
///   request safe after a timeout whose outcome was unknown.
/// - **Preconditions**: [`append_if`](EventStore::append_if) also checks the versions of other
///   streams, in the same atomic step as the append.
/// - **Gap-free global order**: once a reader of the global log has seen position `p`, no event
///   with a position lower than `p` can appear later. Readers may therefore keep a single number as
///   their checkpoint.
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if the stream is at `expected`.
    ///
    /// # Errors
    /// [`AppendError::WrongExpectedVersion`] when the stream is not at `expected` (someone else
    /// appended first: reload, decide again, retry); [`AppendError::EventIdConflict`] when some but
    /// not all of the event ids are already stored, or they are stored in another stream;
    /// [`AppendError::NoEvents`] for an empty batch; [`AppendError::Store`] when the store cannot
    /// be reached.
    fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendResult, AppendError>> + Send {
        self.append_if(stream, expected, events, &[])
    }

    /// [`append`](EventStore::append), and only if every one of `preconditions` holds: each
    /// names another stream and the version it must still be at, checked atomically with the
    /// append. This lets a command decided from another aggregate's state (possibly a cached
    /// copy) be written only while that state is current.
    ///
    /// A retry of an append already stored returns its first result whatever the preconditions
    /// say now: they were checked when it was written.
    ///
    /// # Errors
    /// As [`append`](EventStore::append), and [`AppendError::PreconditionFailed`] when one of
    /// `preconditions` does not hold (the first such, in order; checked after the expected
    /// version): re-read that stream, decide again, retry.
    fn append_if(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        preconditions: &[Precondition],
    ) -> impl Future<Output = Result<AppendResult, AppendError>> + Send;

    /// Reads up to `max_count` events of `stream`, starting at version `from`, in version order.
    /// A stream that does not exist reads as empty.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached or a stored row cannot be decoded.
    fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamVersion,
        max_count: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Reads up to `max_count` events of the global log whose position is after `after`, in
    /// position order. [`Position::START`] reads from the very first event.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached or a stored row cannot be decoded.
    fn read_all(
        &self,
        after: Position,
        max_count: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The position of the last event in the global log ([`Position::START`] when it is empty):
    /// what a reader's lag is measured against.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be reached.
    fn head_position(&self) -> impl Future<Output = Result<Position, StoreError>> + Send;

    /// Follows the global log from `after`: first every stored event after it (catch-up), then
    /// each new event as it commits (live), in position order, without gaps or repeats.
    ///
    /// The subscription runs until it is dropped; transient failures of the store are retried
    /// inside it rather than surfaced, so a consumer never has to re-implement resumption.
    fn subscribe_all(&self, after: Position) -> Subscription;
}
