//! `keryu migrate`: prepare a database for every other role.

use anyhow::Context;
use keryu_infra::config::Config;
use keryu_infra::postgres;
use sqlx::PgPool;

/// Creates the database when missing, then applies every pending migration; returns a pool
/// on the ready database for roles that go on to use it.
pub async fn run(config: &Config) -> anyhow::Result<PgPool> {
    if postgres::create_database_if_missing(&config.database)
        .await
        .context("could not reach PostgreSQL to check that the database exists")?
    {
        tracing::info!("created the database");
    }
    let pool = postgres::connect(&config.database)
        .await
        .context("could not connect to the database")?;
    postgres::migrate(&pool)
        .await
        .context("could not apply the migrations")?;
    tracing::info!(
        migrations = postgres::MIGRATOR.iter().count(),
        "the database schema is up to date"
    );
    Ok(pool)
}
