//! Following the global log: catch up by polling pages, then sleep until PostgreSQL announces a
//! commit (LISTEN/NOTIFY) or the poll interval passes.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};

use super::event_store::{PgEventStore, SubscriptionOptions};
use crate::event_store::{EventStore, Position, RecordedEvent, Subscription};

/// The channel the `events_notify` trigger announces commits on.
const CHANNEL: &str = "keryu_events";
/// Unread pages a subscription buffers before its reader waits for the consumer.
const BUFFERED_PAGES: usize = 4;
/// Longest pause between attempts while the database is unreachable.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Starts the task that feeds a new subscription from `after`.
pub(super) fn spawn(
    store: PgEventStore,
    options: SubscriptionOptions,
    after: Position,
) -> Subscription {
    let (pages, subscription) = Subscription::channel(BUFFERED_PAGES);
    tokio::spawn(follow(store, options, after, pages));
    subscription
}

/// Reads pages after `cursor` and hands them to the consumer until it drops the subscription.
///
/// The table is the truth and the notification only a wake-up: the commit signal is marked
/// seen before each read, so a commit after a read that came back empty always wakes the
/// subscription (or, while the shared listener reconnects, the poll interval catches it).
async fn follow(
    store: PgEventStore,
    options: SubscriptionOptions,
    mut cursor: Position,
    pages: mpsc::Sender<Vec<RecordedEvent>>,
) {
    let mut commits = store.commit_signal();
    let mut failures: u32 = 0;
    while !pages.is_closed() {
        commits.borrow_and_update();
        let page = match store.read_all(cursor, options.page_size).await {
            Ok(page) => page,
            Err(error) => {
                failures += 1;
                let delay = retry_delay(failures);
                tracing::warn!(%error, ?delay, "subscription could not read the event log; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        failures = 0;
        match page.last() {
            Some(last) => {
                cursor = last.position;
                if pages.send(page).await.is_err() {
                    return;
                }
            }
            None => {
                tokio::select! {
                    () = pages.closed() => return,
                    () = tokio::time::sleep(options.poll_interval) => {}
                    _ = commits.changed() => {}
                }
            }
        }
    }
}

/// Starts the one listener of a store: every commit announced on [`CHANNEL`] bumps the
/// returned signal. The listener reconnects by itself; meanwhile subscriptions poll.
pub(super) fn announce_commits(pool: sqlx::PgPool) -> watch::Receiver<u64> {
    let (announce, commits) = watch::channel(0);
    tokio::spawn(async move {
        let mut failures: u32 = 0;
        loop {
            match listen(&pool).await {
                Ok(mut listener) => {
                    failures = 0;
                    loop {
                        let received = tokio::select! {
                            // Every store sharing this listener is gone.
                            () = announce.closed() => return,
                            received = listener.try_recv() => received,
                        };
                        match received {
                            Ok(Some(_)) => announce.send_modify(|count| *count += 1),
                            // The connection was lost and is re-established: commits may
                            // have been missed, so wake everyone to read.
                            Ok(None) => announce.send_modify(|count| *count += 1),
                            Err(error) => {
                                tracing::warn!(%error, "lost the commit listener; reconnecting");
                                break;
                            }
                        }
                    }
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, "could not listen for commits; subscriptions poll meanwhile");
                }
            }
            tokio::select! {
                () = announce.closed() => return,
                () = tokio::time::sleep(retry_delay(failures.max(1))) => {}
            }
        }
    });
    commits
}

async fn listen(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    (Duration::from_millis(100) * 2u32.pow(exponent)).min(MAX_RETRY_DELAY)
}
