//! Verifying the events table's hash chain (migration `0007_event_hash_chain.sql` defines it).
//!
//! The walk recomputes every link in position order, in pages, with the same SQL function the
//! insert trigger uses (so the canonical form lives in one place), and stops at the first
//! event whose row was edited, or whose predecessor was deleted or moved.

use sqlx::{FromRow, PgPool};

use crate::event_store::Position;

/// Events read per query while verifying.
const PAGE: i64 = 10_000;

/// What the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    /// Every link holds.
    Intact {
        /// Events checked.
        events: u64,
        /// The hash of the last event, hex: keep it outside the database to detect a rewrite
        /// of the whole tail later.
        head_hash: String,
    },
    /// The event at `position` no longer matches its own hash: its row was edited.
    Edited {
        /// Where.
        position: Position,
    },
    /// The event at `position` does not link to the event before it: an event before it was
    /// deleted, or events were reordered.
    Unlinked {
        /// Where.
        position: Position,
    },
}

#[derive(FromRow)]
struct Link {
    global_position: i64,
    previous_hash: Vec<u8>,
    hash: Vec<u8>,
    content_holds: bool,
}

/// Walks the whole chain; `progress` hears (events checked so far, last position).
///
/// # Errors
/// When the database fails.
pub async fn verify_chain(
    pool: &PgPool,
    mut progress: impl FnMut(u64, Position),
) -> Result<ChainReport, sqlx::Error> {
    let mut expected_previous = vec![0_u8; 32];
    let mut after = 0_i64;
    let mut checked = 0_u64;
    loop {
        let links: Vec<Link> = sqlx::query_as(
            "SELECT global_position, previous_hash, hash, \
                    keryu_event_digest(previous_hash, events) = hash AS content_holds \
             FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        let Some(last) = links.last().map(|link| link.global_position) else {
            return Ok(ChainReport::Intact {
                events: checked,
                head_hash: hex(&expected_previous),
            });
        };
        for link in links {
            let position = Position(link.global_position.unsigned_abs());
            if !link.content_holds {
                return Ok(ChainReport::Edited { position });
            }
            if link.previous_hash != expected_previous {
                return Ok(ChainReport::Unlinked { position });
            }
            expected_previous = link.hash;
            checked += 1;
        }
        after = last;
        progress(checked, Position(last.unsigned_abs()));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
