//! `keryu events tail [--from POS]`: follow the log as it commits.

use anyhow::{Context, bail};
use clap::Args;
use keryu_infra::event_store::{EventStore, Position};
use keryu_infra::postgres::PgEventStore;
use tokio::signal::unix::{SignalKind, signal};

use super::{Output, write_lines};

/// Where to start following.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Start at this position, inclusive: the stored events from there first, then new ones
    /// (default: only events committed after the tail starts).
    #[arg(long, value_name = "POS")]
    from: Option<u64>,
}

/// Prints each event as it commits, in position order and without gaps (the store's
/// subscription guarantees both), until SIGTERM or Ctrl-C.
pub async fn run(store: &PgEventStore, args: &TailArgs) -> anyhow::Result<()> {
    // Installed before anything is announced, so a signal is never the default "terminate".
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let after = match args.from {
        Some(from) => Position(from.saturating_sub(1)),
        None => store
            .head_position()
            .await
            .context("could not read the head of the log")?,
    };
    let mut subscription = store.subscribe_all(after);
    eprintln!("following the log after position {after}; Ctrl-C to stop");
    let mut last = after;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            batch = subscription.next_batch() => {
                let Some(batch) = batch else {
                    bail!("the subscription to the log stopped after position {last}");
                };
                if let Some(event) = batch.last() {
                    last = event.position;
                }
                if write_lines(&batch)? == Output::Closed {
                    return Ok(());
                }
            }
        }
    }
    eprintln!("stopped after position {last}");
    Ok(())
}
