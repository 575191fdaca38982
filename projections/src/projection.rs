//! What a projection is: a name, its tables, and how each event changes them.

use std::future::Future;

use keryu_domain::subject::SubjectEvent;
use keryu_infra::event_store::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The read model changed.
    Changed,
    /// The event is known but irrelevant to this projection (another category, say).
    Ignored,
    /// The event's type or schema version is unknown to this build: skipped and counted, never
    /// fatal, so a projection keeps up with a log written by a newer Keryu.
    Unknown,
}

/// A fold of the global log into read-model tables.
pub trait Projection: Send + Sync + 'static {
    /// Stable name; the projection's tables and checkpoint live in schema `projection_<name>`.
    /// Lowercase letters and underscores only.
    fn name(&self) -> &'static str;

    /// DDL creating the projection's tables with unqualified names (it runs with `search_path`
    /// set to the projection's schema). Must be idempotent (`IF NOT EXISTS`).
    fn tables_sql(&self) -> &'static str;

    /// The stream categories whose events can change this read model; [`Self::apply`] counts
    /// every event of any other category as [`Applied::Ignored`] without looking further. A live
    /// batch with no event of these categories only moves the checkpoint, without a
    /// transaction: most commits are a notification's, which most read models ignore.
    fn categories(&self) -> &'static [&'static str];

    /// Applies `events`, in log order, inside the batch's transaction (`search_path` already
    /// set), and says what each one did (one [`Applied`] per event, in the same order).
    ///
    /// A whole batch rather than one event at a time, so that a projection can fold the events
    /// of a row in memory and write each row it touched once: a statement per event caps a
    /// projection at its database's round trips (about a thousand events a second while
    /// rebuilding), a statement per batch does not. The result must be the one applying the
    /// events one by one would give, whatever the batch boundaries.
    ///
    /// # Errors
    /// A database error; the whole batch is then rolled back and retried.
    fn apply<'c>(
        &'c self,
        connection: &'c mut PgConnection,
        events: &'c [&'c RecordedEvent],
    ) -> impl Future<Output = Result<Vec<Applied>, sqlx::Error>> + Send + 'c;
}

/// For read models that keep a subject's personal data beside other facts (notifications,
/// alarms): `Ok(subject)` when `recorded` is that subject's erasure, what it counts as for such
/// a read model otherwise, and `None` when it is not a subject's event at all. Only the erasure
/// matters to them, so other subject events are not even decoded.
pub(crate) fn subject_erasure(recorded: &RecordedEvent) -> Option<Result<Uuid, Applied>> {
    if recorded.stream.category() != "subject" {
        return None;
    }
    if recorded.event_type != "SubjectErased" {
        return Some(Err(Applied::Ignored));
    }
    Some(
        match (
            recorded.to_domain::<SubjectEvent>(),
            recorded.stream.id().parse::<Uuid>(),
        ) {
            (Ok(SubjectEvent::SubjectErased(_)), Ok(subject)) => Ok(subject),
            _ => Err(Applied::Unknown),
        },
    )
}
