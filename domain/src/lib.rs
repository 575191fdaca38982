//! Keryu's domain: what a notification, a subject, a message template, an alarm and a custodian
//! are, which commands each accepts in which state, and which events record the outcome.
//!
//! Everything here is pure and synchronous: no I/O, no clock, no randomness. Time and random
//! numbers arrive inside commands, chosen by the adapter that issues them, so that every
//! decision can be replayed and tested exactly. Adapters (`keryu-infra` and above) load an
//! aggregate by folding its events with [`Aggregate::evolve`], ask it to [`Aggregate::decide`]
//! on a command, and append the events it returns.

pub mod aggregate;
pub mod alarm;
mod checks;
pub mod custodian;
pub mod error;
pub mod event;
pub mod ids;
pub mod notification;
pub mod personal;
pub mod subject;
pub mod template;
pub mod values;

#[cfg(test)]
mod testing;

pub use aggregate::Aggregate;
pub use error::{DomainError, Violation};
pub use event::DomainEvent;
pub use ids::{AlarmId, CustodianId, NotificationId, SubjectId, TemplateId};
pub use personal::{ContainsPersonalData, DataOwner, Personal, PersonalData};
pub use values::{Email, PhoneNumber, RetryPolicy, Role};
