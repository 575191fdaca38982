//! Keryu's delivery side: the JetStream consumer of queued notifications, the Twilio client,
//! error classification, rate limiting, and the Twilio API simulator used in tests and demos.
//!
//! [`twilio`] is the REST client and the classification of its errors; [`simulator`] is a
//! stand-in for Twilio's Messages API that the same client talks to unchanged.

pub mod simulator;
pub mod twilio;
