//! `keryu events verify`: recompute the events table's hash chain and report the first event
//! that was edited, deleted or reordered (see `infra/migrations/0007_event_hash_chain.sql`).

use anyhow::bail;
use keryu_infra::event_store::{EventStore, Position};
use keryu_infra::postgres::{ChainReport, PgEventStore, verify_chain};

use super::progress::Progress;

/// Walks the whole chain; exits non-zero when it is broken.
pub async fn run(store: &PgEventStore) -> anyhow::Result<()> {
    let head = store.head_position().await?;
    let mut progress = Progress::new("verify", Position::START, head);
    let mut checked = (0, Position::START);
    let report = verify_chain(store.pool(), |events, at| {
        checked = (events, at);
        progress.update(at, events);
    })
    .await?;
    progress.finish(checked.0, checked.1);
    match report {
        ChainReport::Intact { events, head_hash } => {
            println!(
                "intact: {events} events; head hash {head_hash} (keep it outside the database)"
            );
            Ok(())
        }
        ChainReport::Edited { position } => {
            bail!("the event at position {position} was edited: it no longer matches its hash")
        }
        ChainReport::Unlinked { position } => bail!(
            "the event at position {position} does not follow the event before it: \
             an earlier event was deleted, or events were reordered"
        ),
    }
}
