//! Following the global log: catch up by polling pages, then sleep until PostgreSQL announces a
//! commit (LISTEN/NOTIFY) or the poll interval passes.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

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
/// The table is the truth and the notification only a wake-up: the listener is connected before
/// the first read, so a commit after any read that came back empty always leaves a notification
/// behind (or, if the connection dropped meanwhile, the poll interval catches it).
async fn follow(
    store: PgEventStore,
    options: SubscriptionOptions,
    mut cursor: Position,
    pages: mpsc::Sender<Vec<RecordedEvent>>,
) {
    let mut listener = None;
    let mut failures: u32 = 0;
    while !pages.is_closed() {
        if listener.is_none() {
            listener = listen(&store).await;
        }
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
                if !wait_for_commit(&mut listener, options.poll_interval, &pages).await {
                    return;
                }
            }
        }
    }
}

async fn listen(store: &PgEventStore) -> Option<PgListener> {
    let connected = async {
        let mut listener = PgListener::connect_with(store.pool()).await?;
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match connected.await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "subscription could not listen for commits; polling instead");
            None
        }
    }
}

/// Waits until a commit is announced, the poll interval passes, or the consumer leaves (then
/// `false`). A broken listener is dropped so the next round reconnects it.
async fn wait_for_commit(
    listener: &mut Option<PgListener>,
    poll_interval: Duration,
    pages: &mpsc::Sender<Vec<RecordedEvent>>,
) -> bool {
    let notified = async {
        match listener.as_mut() {
            Some(active) => active.recv().await.map(drop),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = pages.closed() => false,
        () = tokio::time::sleep(poll_interval) => true,
        outcome = notified => {
            if let Err(error) = outcome {
                tracing::warn!(%error, "lost the commit listener; reconnecting");
                *listener = None;
            }
            true
        }
    }
}

fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    (Duration::from_millis(100) * 2u32.pow(exponent)).min(MAX_RETRY_DELAY)
}
