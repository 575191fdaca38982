//! The command API over real HTTP against a fresh PostgreSQL database per test.

mod auth;
mod harness;
mod idempotency;
mod malformed;
mod notifications;
mod privacy;
mod rbac;
mod resources;
mod schemas;
mod subject_cache;
mod webhooks;
