//! The shape every aggregate has: plain data plus two pure functions.

use crate::{DomainError, DomainEvent};

/// A consistency boundary whose history is one event stream.
///
/// [`decide`](Aggregate::decide) looks at the current state and a command and says what happened
/// (events) or why not (an error); [`evolve`](Aggregate::evolve) folds one event into the state.
/// Neither has side effects: the state is only ever derived from events, so the same events
/// always rebuild the same state — on the command side, in projections, and in an audit replay
/// years later. Anything impure (the clock, randomness, other aggregates) is resolved by the
/// caller and passed in the command.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use keryu_domain::alarm::{Alarm, AlarmCommand, Situation};
/// use keryu_domain::{Aggregate, AlarmId, SubjectId};
/// use uuid::Uuid;
///
/// let at = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
/// let raise = AlarmCommand::Raise {
///     id: AlarmId(Uuid::nil()),
///     subject_id: SubjectId(Uuid::nil()),
///     situation: Situation::Lost,
///     description: "Did not come home from school".to_owned(),
///     location: None,
///     raised_by: "integrator-1".to_owned(),
///     at,
/// };
/// // decide: what happens, as events; the state itself does not change.
/// let events = Alarm::default().decide(raise.clone()).unwrap();
/// // evolve: fold the events into the state (what a repository does after appending them).
/// let alarm = events.iter().fold(Alarm::default(), Alarm::evolve);
/// assert!(alarm.is_open());
/// // replay: the same fold from nothing, as when loading the stream.
/// assert_eq!(alarm, Alarm::replay(&events));
/// // The same alarm cannot be raised twice, but it can be acknowledged.
/// assert!(alarm.decide(raise).is_err());
/// assert!(alarm.decide(AlarmCommand::Acknowledge { by: "ana".to_owned(), at }).is_ok());
/// ```
pub trait Aggregate: Default + Clone + std::fmt::Debug + PartialEq {
    /// Stream category: streams of this aggregate are named `<CATEGORY>-<id>`.
    const CATEGORY: &'static str;
    /// What callers may ask of the aggregate.
    type Command;
    /// What the aggregate records when it accepts a command.
    type Event: DomainEvent;

    /// Decides what a command does to the current state.
    ///
    /// An empty vector means the command is accepted but changes nothing (a duplicate or stale
    /// request); callers then append nothing.
    ///
    /// # Errors
    /// [`DomainError`] when the command is invalid or does not apply in the current state.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError>;

    /// Folds one event into the state. Total: events are facts, so every event the aggregate
    /// ever emitted must apply to the state it was emitted from.
    #[must_use]
    fn evolve(self, event: &Self::Event) -> Self;

    /// The state after `events`, starting from nothing.
    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}
