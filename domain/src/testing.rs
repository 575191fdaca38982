//! Given/when/then for aggregates, and the property every aggregate must have.

use std::fmt::Debug;

use crate::{Aggregate, DomainError, DomainEvent};

/// An aggregate rebuilt from a history of events.
pub struct Given<A>(A);

/// `given(events)`: the aggregate after these events.
pub fn given<A: Aggregate>(events: &[A::Event]) -> Given<A> {
    Given(A::replay(events))
}

/// The outcome of a command on a given aggregate.
pub struct When<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Given<A> {
    /// Decides `command` against the given state.
    pub fn when(&self, command: A::Command) -> When<A> {
        When {
            state: self.0.clone(),
            result: self.0.decide(command),
        }
    }
}

impl<A: Aggregate> When<A> {
    /// Asserts the command produced exactly `expected` and returns the state after it.
    #[track_caller]
    pub fn then(self, expected: &[A::Event]) -> A {
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected);
                events.iter().fold(self.state, A::evolve)
            }
            Err(error) => panic!("expected {expected:?}, got the error {error}"),
        }
    }

    /// Asserts the command was refused with `expected`.
    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    /// Asserts the command was refused, whatever the reason, and returns the reason.
    #[track_caller]
    pub fn then_refused(self) -> DomainError {
        match self.result {
            Ok(events) => panic!("expected a refusal, got {events:?}"),
            Err(error) => error,
        }
    }
}

/// Runs `commands` in order, keeping the events of the accepted ones, and checks the properties
/// every aggregate must have: the final state is exactly the replay of the emitted events, and
/// every event round-trips through its stored JSON form under its stable name.
pub fn run_history<A>(commands: Vec<A::Command>) -> (A, Vec<A::Event>)
where
    A: Aggregate,
    A::Command: Debug,
{
    let mut state = A::default();
    let mut history = Vec::new();
    for command in commands {
        if let Ok(events) = state.decide(command) {
            state = events.iter().fold(state, A::evolve);
            history.extend(events);
        }
    }
    assert_eq!(
        state,
        A::replay(&history),
        "state differs from the replay of its events"
    );
    for event in &history {
        assert_stored_form(event);
    }
    (state, history)
}

/// The event serialises as `{"type": <event_type()>, "data": …}` and reads back equal.
#[track_caller]
pub fn assert_stored_form<E: DomainEvent>(event: &E) {
    let json = serde_json::to_value(event).expect("serialises");
    assert_eq!(
        json["type"],
        event.event_type(),
        "serde tag and event_type() differ"
    );
    assert!(json.get("data").is_some(), "{json}");
    let back: E = serde_json::from_value(json).expect("deserialises");
    assert_eq!(&back, event);
}
