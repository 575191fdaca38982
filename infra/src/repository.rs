//! Aggregates on top of the event store: load one by replaying its stream, run a command
//! against it, and append what it decided with the version it was loaded at.
//!
//! This is the only place where the pure domain meets the store. The loop is the whole
//! optimistic-concurrency protocol: when another writer appended first, the aggregate is
//! reloaded and the command decided again against the newer state, a bounded number of times.

use keryu_domain::{Aggregate, DomainError};
use tracing::Instrument;
use uuid::Uuid;

use crate::event_store::{
    AppendError, CodecError, EventMetadata, EventStore, ExpectedVersion, NewEvent, Position,
    Precondition, StoreError, StreamName, StreamVersion,
};

/// Events read per query while replaying a stream.
const PAGE_SIZE: usize = 500;

/// An aggregate as of the last event of its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state folded from every event of the stream (the default state if there is none).
    pub state: A,
    /// The version of the stream's last event, `None` when the stream does not exist.
    pub version: Option<StreamVersion>,
}

/// What executing a command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed<A: Aggregate> {
    /// The aggregate after the new events.
    pub state: A,
    /// The events the command produced; empty when it was a no-op (e.g. a duplicate callback).
    pub events: Vec<A::Event>,
    /// The global position of the last new event, for read-your-writes; `None` for a no-op.
    pub position: Option<Position>,
    /// The version of the stream's last event after the command (`None` when the stream still
    /// does not exist), so that a caller issuing a next command can pass
    /// [`Loaded`] to [`execute_from`] instead of reading the stream again.
    pub version: Option<StreamVersion>,
}

impl<A: Aggregate> Executed<A> {
    /// The aggregate as the command left it, to decide a next command against.
    pub fn into_loaded(self) -> Loaded<A> {
        Loaded {
            state: self.state,
            version: self.version,
        }
    }
}

/// A command could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused the command; nothing was written.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Other writers kept changing the aggregate for every attempt.
    #[error("stream {stream} kept changing during {attempts} attempts")]
    Contention {
        /// The contended stream.
        stream: StreamName,
        /// How many times the command was decided.
        attempts: u32,
    },
    /// A precondition of the append on another stream failed: what the command was decided
    /// from changed meanwhile. Not retried here — reloading the aggregate would not help; the
    /// caller reads that other stream again and decides anew.
    #[error("stream {stream} changed since the command was decided from it")]
    PreconditionFailed {
        /// The stream the failed precondition is about.
        stream: StreamName,
    },
    /// A stored event does not decode, or a new one does not encode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The store failed or refused the append for a reason other than concurrency.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The append was refused for a reason other than concurrency (a bug in the caller).
    #[error(transparent)]
    Append(AppendError),
}

/// Replays `stream` into the aggregate `A`.
///
/// # Errors
/// [`CommandError::Store`] when the store fails, [`CommandError::Codec`] when an event does not
/// decode into `A::Event`.
pub async fn load<A: Aggregate>(
    store: &impl EventStore,
    stream: &StreamName,
) -> Result<Loaded<A>, CommandError> {
    let mut loaded = Loaded {
        state: A::default(),
        version: None,
    };
    loop {
        let from = loaded.version.map_or(0, |version| version + 1);
        let page = store.read_stream(stream, from, PAGE_SIZE).await?;
        let full_page = page.len() == PAGE_SIZE;
        for recorded in page {
            let event: A::Event = recorded.to_domain()?;
            loaded.state = loaded.state.evolve(&event);
            loaded.version = Some(recorded.version);
        }
        if !full_page {
            return Ok(loaded);
        }
    }
}

/// Loads `stream`, decides `command` against it and appends the resulting events, trying up to
/// `max_attempts` times (at least once) when a concurrent writer got there first.
///
/// # Errors
/// [`CommandError::Domain`] when the command does not apply; [`CommandError::Contention`] when
/// every attempt lost the race; the store's and codec's errors otherwise.
pub async fn execute<A>(
    store: &impl EventStore,
    stream: &StreamName,
    command: A::Command,
    metadata: &EventMetadata,
    max_attempts: u32,
) -> Result<Executed<A>, CommandError>
where
    A: Aggregate,
    A::Command: Clone,
{
    run(store, stream, None, command, metadata, max_attempts, &[]).await
}

/// [`execute`] against an aggregate the caller has already loaded (to look at it before
/// deciding whether to act, as the dispatcher and the status webhook do), saving the stream
/// read. The first attempt decides against `loaded` and appends with its version; only when
/// the stream moved meanwhile is it read again, so a stale `loaded` costs a retry, never a
/// wrong decision — which is also why `max_attempts` should leave room for that retry.
///
/// # Errors
/// As [`execute`].
pub async fn execute_from<A>(
    store: &impl EventStore,
    stream: &StreamName,
    loaded: Loaded<A>,
    command: A::Command,
    metadata: &EventMetadata,
    max_attempts: u32,
) -> Result<Executed<A>, CommandError>
where
    A: Aggregate,
    A::Command: Clone,
{
    run(
        store,
        stream,
        Some(loaded),
        command,
        metadata,
        max_attempts,
        &[],
    )
    .await
}

/// Runs `command`, which creates the aggregate `A`, under an id no stream can have yet (a fresh
/// UUIDv7, or one derived from what it is about): decided against the empty state without
/// reading the stream, one round trip less. Should the stream exist after all, the append
/// (expecting no stream) is refused and the command decided again against what is there —
/// typically the domain's "already exists".
///
/// The append is made only while every one of `preconditions` on other streams holds
/// ([`EventStore::append_if`]): the command was decided from those aggregates' state too (a
/// notification's recipient from its subject), so it is never written once that state changed.
///
/// # Errors
/// As [`execute`], and [`CommandError::PreconditionFailed`] at once when a precondition fails:
/// the caller reads that other stream again and decides anew.
pub async fn create_if<A>(
    store: &impl EventStore,
    stream: &StreamName,
    command: A::Command,
    metadata: &EventMetadata,
    max_attempts: u32,
    preconditions: &[Precondition],
) -> Result<Executed<A>, CommandError>
where
    A: Aggregate,
    A::Command: Clone,
{
    let nothing = Loaded {
        state: A::default(),
        version: None,
    };
    run(
        store,
        stream,
        Some(nothing),
        command,
        metadata,
        max_attempts,
        preconditions,
    )
    .await
}

/// [`decide_and_append`] in its span, counted by outcome.
async fn run<A>(
    store: &impl EventStore,
    stream: &StreamName,
    loaded: Option<Loaded<A>>,
    command: A::Command,
    metadata: &EventMetadata,
    max_attempts: u32,
    preconditions: &[Precondition],
) -> Result<Executed<A>, CommandError>
where
    A: Aggregate,
    A::Command: Clone,
{
    let span = tracing::info_span!("command", aggregate = A::CATEGORY, stream = %stream);
    let executed = decide_and_append::<A>(
        store,
        stream,
        loaded,
        command,
        metadata,
        max_attempts,
        preconditions,
    )
    .instrument(span)
    .await;
    let outcome = match &executed {
        Ok(executed) if executed.events.is_empty() => "no_op",
        Ok(_) => "accepted",
        Err(CommandError::Domain(_)) => "refused",
        Err(CommandError::Contention { .. }) => "contention",
        Err(CommandError::PreconditionFailed { .. }) => "stale",
        Err(_) => "error",
    };
    metrics::counter!("keryu_commands_total", "aggregate" => A::CATEGORY, "outcome" => outcome)
        .increment(1);
    executed
}

/// The optimistic-concurrency loop: decide against `loaded` (or a fresh load), append with its
/// version (and `preconditions`), and reload to decide again when another writer appended
/// first, up to `max_attempts` times.
async fn decide_and_append<A>(
    store: &impl EventStore,
    stream: &StreamName,
    mut loaded: Option<Loaded<A>>,
    command: A::Command,
    metadata: &EventMetadata,
    max_attempts: u32,
    preconditions: &[Precondition],
) -> Result<Executed<A>, CommandError>
where
    A: Aggregate,
    A::Command: Clone,
{
    let max_attempts = max_attempts.max(1);
    for _ in 0..max_attempts {
        let Loaded { state, version } = match loaded.take() {
            Some(known) => known,
            None => load::<A>(store, stream).await?,
        };
        let events = state.decide(command.clone())?;
        if events.is_empty() {
            return Ok(Executed {
                state,
                events,
                position: None,
                version,
            });
        }
        let new_events = events
            .iter()
            .map(|event| NewEvent::from_domain(Uuid::now_v7(), event, metadata.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        match store
            .append_if(stream, expected, new_events, preconditions)
            .await
        {
            Ok(appended) => {
                let state = events.iter().fold(state, A::evolve);
                return Ok(Executed {
                    state,
                    events,
                    position: Some(appended.last_position),
                    version: Some(appended.last_version),
                });
            }
            Err(AppendError::WrongExpectedVersion { .. }) => {
                tracing::debug!(%stream, "concurrent append; deciding again");
            }
            Err(AppendError::PreconditionFailed { stream, .. }) => {
                return Err(CommandError::PreconditionFailed { stream });
            }
            Err(AppendError::Store(error)) => return Err(CommandError::Store(error)),
            Err(other) => return Err(CommandError::Append(other)),
        }
    }
    Err(CommandError::Contention {
        stream: stream.clone(),
        attempts: max_attempts,
    })
}
