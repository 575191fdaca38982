//! Loading and commanding aggregates from handlers, with errors already mapped to problems.

use std::fmt::Display;

use keryu_domain::Aggregate;
use keryu_infra::event_store::{Precondition, StreamName};
use keryu_infra::repository::{self, CommandError, Executed, Loaded};

use crate::auth::Caller;
use crate::context::RequestContext;
use crate::problem::{Problem, ProblemKind};
use crate::state::AppState;

/// The stream of the aggregate `A` with `id`.
///
/// # Errors
/// An internal problem if `A`'s category is not a valid stream category (a bug).
pub fn stream_of<A: Aggregate>(id: impl Display) -> Result<StreamName, Problem> {
    StreamName::of::<A>(id).map_err(|error| {
        tracing::error!(%error, "invalid stream name");
        Problem::new(ProblemKind::Internal, "invalid stream name")
    })
}

/// The aggregate `A` with `id`, as of its last event (the default state if it does not exist).
///
/// # Errors
/// A problem when the store fails.
pub async fn load<A: Aggregate>(state: &AppState, id: impl Display) -> Result<Loaded<A>, Problem> {
    let stream = stream_of::<A>(id)?;
    Ok(repository::load::<A>(state.store(), &stream).await?)
}

/// Runs `command` on the aggregate `A` with `id`, on behalf of `caller`.
///
/// # Errors
/// The domain's refusal, contention or a store failure, as problems.
pub async fn execute<A>(
    state: &AppState,
    id: impl Display,
    command: A::Command,
    caller: &Caller,
    context: &RequestContext,
) -> Result<Executed<A>, Problem>
where
    A: Aggregate,
    A::Command: Clone,
{
    let stream = stream_of::<A>(id)?;
    let metadata = context.metadata(caller);
    Ok(repository::execute::<A>(
        state.store(),
        &stream,
        command,
        &metadata,
        state.settings().command_attempts,
    )
    .await?)
}

/// Runs `command` creating the aggregate `A` with a new `id` that no stream can have yet (a
/// fresh UUIDv7), without reading its stream ([`repository::create_if`]): one round trip less
/// on the hottest write path. `None` when one of `preconditions` no longer holds: nothing was
/// written, and the caller reads that stream again and decides anew.
///
/// # Errors
/// As [`execute`].
pub async fn create<A>(
    state: &AppState,
    id: impl Display,
    command: A::Command,
    caller: &Caller,
    context: &RequestContext,
    preconditions: &[Precondition],
) -> Result<Option<Executed<A>>, Problem>
where
    A: Aggregate,
    A::Command: Clone,
{
    let stream = stream_of::<A>(id)?;
    let metadata = context.metadata(caller);
    match repository::create_if::<A>(
        state.store(),
        &stream,
        command,
        &metadata,
        state.settings().command_attempts,
        preconditions,
    )
    .await
    {
        Ok(executed) => Ok(Some(executed)),
        Err(CommandError::PreconditionFailed { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}
