//! `keryu events …`: the event log for auditors and operators — export it, follow it live, and
//! replay it to a point in time.
//!
//! `verify` recomputes the tamper-evident hash chain. Every action only reads: it connects to the configured database without creating or
//! migrating anything, so it is safe against production (and works with a read-only role).
//! Events are written as NDJSON, one [`EventView`](keryu_projections::queries::events::EventView)
//! per line — the very lines `GET /api/events` streams. Each action lives in a module of its
//! own; a new one is a variant of [`EventsAction`] plus its module.

mod export;
mod progress;
mod replay;
mod tail;
mod verify;

use std::io::{ErrorKind, Write};

use anyhow::Context;
use clap::Subcommand;
use keryu_infra::config::Config;
use keryu_infra::event_store::RecordedEvent;
use keryu_infra::postgres::{self, PgEventStore};
use keryu_projections::queries::events::EventView;

/// Event log subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// Write a range of the log to stdout as NDJSON, one event per line (progress on stderr).
    Export(export::ExportArgs),
    /// Follow the log live, one NDJSON line per event as it commits, until Ctrl-C or SIGTERM.
    Tail(tail::TailArgs),
    /// Fold the log up to a position or a time with the domain's aggregates and print the
    /// state then, as JSON: of one stream, or of every notification.
    Replay(replay::ReplayArgs),
    /// Recompute the log's hash chain and report the first event that was edited, deleted or
    /// reordered (exit status 1), or the head hash of an intact log.
    Verify,
}

/// Runs the action against the configured database.
pub async fn run(config: &Config, action: EventsAction) -> anyhow::Result<()> {
    let store = open(config).await?;
    match action {
        EventsAction::Export(args) => export::run(&store, &args).await,
        EventsAction::Tail(args) => tail::run(&store, &args).await,
        EventsAction::Replay(args) => replay::run(&store, &args).await,
        EventsAction::Verify => verify::run(&store).await,
    }
}

/// The configured event log, read-only: no database is created and no migration applied.
async fn open(config: &Config) -> anyhow::Result<PgEventStore> {
    let pool = postgres::connect(&config.database)
        .await
        .context("could not connect to the database (DATABASE_URL)")?;
    Ok(PgEventStore::new(pool, config.privacy.master_key()?))
}

/// Whether stdout still has a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Open,
    /// The reader went away (`keryu events export | head`): stop quietly.
    Closed,
}

/// Writes `events` to stdout as NDJSON lines, in one write.
fn write_lines(events: &[RecordedEvent]) -> anyhow::Result<Output> {
    let mut chunk = Vec::new();
    for event in events {
        EventView::from(event).write_line(&mut chunk)?;
    }
    let mut stdout = std::io::stdout();
    match stdout.write_all(&chunk).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(Output::Open),
        Err(error) if error.kind() == ErrorKind::BrokenPipe => Ok(Output::Closed),
        Err(error) => Err(error).context("could not write to stdout"),
    }
}
