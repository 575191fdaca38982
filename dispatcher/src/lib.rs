//! Keryu's delivery side: the JetStream consumer of queued notifications, the Twilio client,
//! error classification, rate limiting, and the Twilio API simulator used in tests and demos.
//!
//! Empty until the delivery issue lands; the crate exists so the workspace already has the
//! shape of ARCHITECTURE.md.
