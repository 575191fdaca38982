//! Keryu's read side: projectors that fold the global event log into PostgreSQL read models,
//! the query routes over them, rebuilds, the outbox relay to NATS and durable timers.
//!
//! Empty until the read-side issue lands; the crate exists so the workspace already has the
//! shape of ARCHITECTURE.md.
