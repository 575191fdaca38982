//! The PostgreSQL adapter of the event store, and the database plumbing it needs.
//!
//! The schema lives in `infra/migrations` (one file per database object), embedded into the
//! binary as [`MIGRATOR`] and applied by `keryu migrate` and at the start of every role.

mod chain;
mod event_store;
mod group_commit;
mod rows;
mod subscription;

pub use chain::{ChainReport, verify_chain};
pub use event_store::{PgEventStore, SubscriptionOptions};

use sqlx::migrate::{MigrateDatabase, MigrateError, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use crate::config::DatabaseConfig;

/// Every migration of Keryu's schema, embedded at compile time so a binary can create or upgrade
/// its own database without shipping SQL files beside it.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Opens a connection pool to the configured database.
///
/// # Errors
/// When the URL is malformed or the server cannot be reached.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .connect(config.url.expose())
        .await
}

/// Creates the configured database when the server does not have it yet, so that a fresh
/// machine needs no manual `createdb`. Returns whether it was created.
///
/// # Errors
/// When the server cannot be reached or refuses to create the database.
pub async fn create_database_if_missing(config: &DatabaseConfig) -> Result<bool, sqlx::Error> {
    if Postgres::database_exists(config.url.expose()).await? {
        return Ok(false);
    }
    Postgres::create_database(config.url.expose()).await?;
    Ok(true)
}

/// Brings the database schema up to date. Safe to run concurrently from several processes:
/// sqlx serialises migrators with an advisory lock.
///
/// # Errors
/// When a migration fails or the database holds a migration this binary does not know.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}
