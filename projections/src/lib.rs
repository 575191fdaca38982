//! Keryu's read side: projections fold the global event log into PostgreSQL read models.
//!
//! A [`Projection`](projection::Projection) is plain functions from events to SQL; a
//! [`Projector`](projector::Projector) feeds it the log in batches, each applied in one
//! transaction together with the projection's checkpoint, so a crash never applies an event
//! twice nor skips one. Every projection lives in its own PostgreSQL schema
//! (`projection_<name>`): its tables and its checkpoint move together, which is what lets a
//! rebuild fill a shadow schema and swap it in.

pub mod alarm_fanout;
pub mod alarms;
pub mod directory;
mod follow;
pub mod lag;
pub mod notifications;
pub mod projection;
pub mod projector;
pub mod queries;
pub mod reaction;
pub mod rebuild;
pub mod relay;
pub mod subjects;
pub mod timers;
