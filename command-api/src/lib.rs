//! Keryu's command side: axum routes that turn HTTP requests into domain commands, with
//! authentication, role checks, idempotency keys and the Twilio status webhook.
//!
//! Empty until the command-side issue lands; the crate exists so the workspace already has the
//! shape of ARCHITECTURE.md and the dependency arrows (domain ← infra ← command-api) are fixed.
