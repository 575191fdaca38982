//! `keryu events export [--from POS] [--to POS] [--sealed] > log.ndjson`.
//!
//! By default personal data is exported readable (as `GET /api/events` shows it): the file is
//! then personal data itself, and outlives any erasure. `--sealed` exports it as stored,
//! encrypted per person, for archives that must stay erasable.

use anyhow::{Context, bail};
use clap::Args;
use keryu_infra::event_store::{EventStore, Position};
use keryu_infra::postgres::PgEventStore;
use keryu_projections::queries::events::LogRange;

use super::progress::Progress;
use super::{Output, write_lines};

/// Which part of the log to export.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// First position to export, inclusive (default: the first event).
    #[arg(long, value_name = "POS")]
    from: Option<u64>,
    /// Last position to export, inclusive (default: the head of the log when the export
    /// starts, so the export ends even while the log grows).
    #[arg(long, value_name = "POS")]
    to: Option<u64>,
    /// Export personal data as stored, sealed with each person's key (an erasure then
    /// reaches the archive too), instead of readable.
    #[arg(long)]
    sealed: bool,
}

/// Streams the range to stdout page by page: the log is never held in memory.
pub async fn run(store: &PgEventStore, args: &ExportArgs) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        bail!("--from {from} is after --to {to}");
    }
    let head = store
        .head_position()
        .await
        .context("could not read the head of the log")?;
    let after = Position(args.from.map_or(0, |from| from.saturating_sub(1)));
    let end = args.to.map_or(head, |to| Position(to).min(head));
    let store = if args.sealed {
        store.sealed()
    } else {
        store.clone()
    };
    let mut range = LogRange::new(store, after, end, None);
    let mut progress = Progress::new("export", after, end);
    let mut exported = 0;
    while let Some(page) = range
        .next_page()
        .await
        .with_context(|| format!("reading the log after position {} failed", range.position()))?
    {
        if write_lines(&page)? == Output::Closed {
            return Ok(());
        }
        exported += page.len() as u64;
        progress.update(range.position(), exported);
    }
    progress.finish(exported, range.position());
    Ok(())
}
