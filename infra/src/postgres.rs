//! The PostgreSQL adapter of the event store, and the database plumbing it needs.
//!
//! The schema lives in `infra/migrations` (one file per database object), embedded into the
//! binary as [`MIGRATOR`] and applied by `keryu migrate` and at the start of every role.

mod chain;
mod event_store;
mod group_commit;
mod rows;
mod stream_reads;
mod subscription;

pub use chain::{ChainReport, verify_chain};
pub use event_store::{PgEventStore, SubscriptionOptions};

use std::time::Duration;

use sqlx::Connection;
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
        // sqlx pings every connection it hands out by default: a round trip before every
        // query, which doubled the round trips of the command path. Only a connection that sat
        // idle long enough for the server or the network to have dropped it is checked.
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_BEFORE_PING {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect(config.url.expose())
        .await
}

/// How long a pooled connection may sit idle before it is pinged on its way out of the pool.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(30);

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
