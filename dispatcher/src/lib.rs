//! Keryu's delivery side: the JetStream consumer of queued notifications, the Twilio client,
//! error classification, rate limiting, and the Twilio API simulator used in tests and demos.
//!
//! [`twilio`] is the REST client and the classification of its errors; [`dispatch`] the
//! consumer that claims, sends and records; [`rate_limit`] the per-sender budget shared by all
//! dispatcher processes; [`simulator`] a stand-in for Twilio's Messages API that the same
//! client talks to unchanged.

pub mod dispatch;
pub mod rate_limit;
pub mod simulator;
pub mod twilio;
