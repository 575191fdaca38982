//! Keryu's adapters: everything that touches the outside world on behalf of the domain.
//!
//! The [`event_store`] module is the port every other part of Keryu writes to and reads from;
//! [`postgres`] is its default adapter, and [`repository`] runs domain commands against it.
//! [`config`] holds the one typed configuration the binary loads at start, and
//! [`twilio_signature`] the `X-Twilio-Signature` algorithm that Twilio's webhooks are signed with.

pub mod config;
pub mod event_store;
pub mod http;
pub mod nats;
pub mod personal_data;
pub mod postgres;
pub mod repository;
pub mod telemetry;
pub mod twilio_signature;
