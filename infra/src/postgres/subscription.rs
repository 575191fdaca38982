//! Following the global log: catch up by reading pages, then take new events as they commit.
//!
//! New events are read once per store, not once per subscription: a [`Tail`] task reads the log
//! after every commit PostgreSQL announces (LISTEN/NOTIFY) or every poll interval, and keeps the
//! newest events in memory. A subscription whose position is inside that window takes its
//! pages from there; one further behind (catching up from an old checkpoint, or slower than the
//! window) reads them from the table until it is back inside. A process following the log with
//! seven read models and reactions thus queries it once per commit instead of seven times.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, oneshot, watch};

use super::event_store::{PgEventStore, SubscriptionOptions};
use crate::event_store::{EventStore, Position, RecordedEvent, StoreError, Subscription};

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
    let tail = store.tail();
    tokio::spawn(follow(store, tail, options, after, pages));
    subscription
}

/// Hands pages after `cursor` to the consumer until it drops the subscription.
///
/// The table is the truth and the tail only a copy of its end: a page comes from the tail only
/// when every event after `cursor` that the tail has seen is in it. The tail's announcement is
/// marked seen before each look, so events it takes in after a look that came back empty always
/// wake the subscription.
async fn follow(
    store: PgEventStore,
    tail: Arc<Tail>,
    options: SubscriptionOptions,
    mut cursor: Position,
    pages: mpsc::Sender<Vec<RecordedEvent>>,
) {
    let mut announced = tail.announced.subscribe();
    let mut failures: u32 = 0;
    while !pages.is_closed() {
        announced.borrow_and_update();
        let page = match tail.after(cursor, options.page_size) {
            Some(events) => store.open(events).await,
            None => store.read_all(cursor, options.page_size).await,
        };
        let page = match page {
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
                    _ = announced.changed() => {}
                }
            }
        }
    }
}

/// The newest events of the log, shared by the subscriptions of one store (and its clones).
/// Its reader task lives as long as the tail: while at least one subscription holds it.
pub(super) struct Tail {
    window: Mutex<Window>,
    /// Bumped whenever the window takes in new events.
    announced: watch::Sender<Position>,
    /// Dropped with the tail, which stops its reader.
    _stop: oneshot::Sender<()>,
}

impl Tail {
    /// A tail of `store`'s log (read sealed: each subscription opens what it hands out) and the
    /// task that keeps it current.
    pub(super) fn start(store: PgEventStore, options: SubscriptionOptions) -> Arc<Tail> {
        let (stop, stopped) = oneshot::channel();
        let tail = Arc::new(Tail {
            window: Mutex::new(Window::new(options.tail_events)),
            announced: watch::channel(Position(0)).0,
            _stop: stop,
        });
        tokio::spawn(read_ahead(store, Arc::downgrade(&tail), options, stopped));
        tail
    }

    /// Up to `max` events after `cursor`, if the window holds every event after it (an empty
    /// page: nothing new yet); `None` when the subscription must read the table.
    fn after(&self, cursor: Position, max: usize) -> Option<Vec<RecordedEvent>> {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .after(cursor, max)
    }

    fn begin_at(&self, head: Position) {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .begin_at(head);
        self.announced.send_replace(head);
    }

    fn take_in(&self, page: Vec<RecordedEvent>) {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.take_in(page);
        let head = window.head();
        drop(window);
        self.announced.send_replace(head);
    }
}

/// Reads the log after the tail's head whenever a commit is announced (or the poll interval
/// passes) and hands what it finds to the tail, until the tail is dropped.
async fn read_ahead(
    store: PgEventStore,
    tail: Weak<Tail>,
    options: SubscriptionOptions,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut commits = store.commit_signal();
    let mut failures: u32 = 0;
    // Begins at the log's head: subscriptions read anything older from the table themselves.
    let mut head = loop {
        match store.head_position().await {
            Ok(head) => break head,
            Err(error) => {
                failures += 1;
                if stopped_while_retrying(&mut stopped, &error, failures).await {
                    return;
                }
            }
        }
    };
    match tail.upgrade() {
        Some(tail) => tail.begin_at(head),
        None => return,
    }
    failures = 0;
    loop {
        commits.borrow_and_update();
        match store.read_all(head, options.page_size).await {
            Ok(page) => {
                failures = 0;
                let full = page.len() >= options.page_size;
                if let Some(last) = page.last() {
                    head = last.position;
                    let Some(tail) = tail.upgrade() else { return };
                    tail.take_in(page);
                }
                if full {
                    continue;
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(options.poll_interval) => {}
                    _ = commits.changed() => {}
                }
            }
            Err(error) => {
                failures += 1;
                if stopped_while_retrying(&mut stopped, &error, failures).await {
                    return;
                }
            }
        }
    }
}

/// Logs a failed read of the tail and waits before the next attempt; `true` when the tail was
/// dropped meanwhile.
async fn stopped_while_retrying(
    stopped: &mut oneshot::Receiver<()>,
    error: &StoreError,
    failures: u32,
) -> bool {
    let delay = retry_delay(failures);
    tracing::warn!(%error, ?delay, "could not read the tail of the event log; retrying");
    tokio::select! {
        _ = stopped => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// The newest events, in position order, and the position below which it knows nothing.
#[derive(Debug)]
struct Window {
    capacity: usize,
    /// Every event after `floor` up to the last of `events` is in `events`; `None` until the
    /// reader has found the log's head.
    floor: Option<Position>,
    events: VecDeque<RecordedEvent>,
}

impl Window {
    fn new(capacity: usize) -> Self {
        Window {
            capacity: capacity.max(1),
            floor: None,
            events: VecDeque::new(),
        }
    }

    fn begin_at(&mut self, head: Position) {
        self.floor = Some(head);
        self.events.clear();
    }

    fn after(&self, cursor: Position, max: usize) -> Option<Vec<RecordedEvent>> {
        if cursor < self.floor? {
            return None;
        }
        let first = self
            .events
            .partition_point(|event| event.position <= cursor);
        Some(self.events.range(first..).take(max).cloned().collect())
    }

    /// Appends the page read after [`Self::head`], forgetting the oldest events beyond the
    /// capacity.
    fn take_in(&mut self, page: Vec<RecordedEvent>) {
        self.events.extend(page);
        while self.events.len() > self.capacity {
            if let Some(forgotten) = self.events.pop_front() {
                self.floor = Some(forgotten.position);
            }
        }
    }

    fn head(&self) -> Position {
        self.events
            .back()
            .map(|event| event.position)
            .or(self.floor)
            .unwrap_or(Position(0))
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

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::event_store::EventMetadata;

    fn at(position: u64) -> RecordedEvent {
        RecordedEvent {
            position: Position(position),
            stream: "subject-6f1c1f9e-0c1e-4f6e-9a43-2b0d8b3f3d10"
                .parse()
                .expect("valid stream"),
            version: 0,
            event_id: uuid::Uuid::new_v4(),
            event_type: "SubjectRegistered".to_owned(),
            schema_version: 1,
            data: serde_json::json!({}),
            metadata: EventMetadata::default(),
            recorded_at: Utc::now(),
        }
    }

    fn positions(page: Option<Vec<RecordedEvent>>) -> Option<Vec<u64>> {
        page.map(|events| events.iter().map(|event| event.position.0).collect())
    }

    #[test]
    fn a_window_knows_nothing_before_its_reader_found_the_head() {
        let window = Window::new(8);
        assert_eq!(positions(window.after(Position(0), 10)), None);
    }

    #[test]
    fn a_window_serves_every_event_after_a_cursor_at_or_above_its_floor() {
        let mut window = Window::new(8);
        window.begin_at(Position(10));
        assert_eq!(positions(window.after(Position(10), 10)), Some(vec![]));
        // Positions have gaps (rolled-back appends); the page read after the head holds all.
        window.take_in(vec![at(11), at(14), at(15)]);
        assert_eq!(window.head(), Position(15));
        assert_eq!(
            positions(window.after(Position(10), 10)),
            Some(vec![11, 14, 15])
        );
        assert_eq!(
            positions(window.after(Position(12), 10)),
            Some(vec![14, 15])
        );
        assert_eq!(positions(window.after(Position(11), 1)), Some(vec![14]));
        assert_eq!(positions(window.after(Position(15), 10)), Some(vec![]));
        // Below the floor, events may exist that the window never held.
        assert_eq!(positions(window.after(Position(9), 10)), None);
    }

    #[test]
    fn a_full_window_forgets_its_oldest_events_and_raises_its_floor() {
        let mut window = Window::new(3);
        window.begin_at(Position(0));
        window.take_in((1..=5).map(at).collect());
        assert_eq!(
            positions(window.after(Position(2), 10)),
            Some(vec![3, 4, 5])
        );
        assert_eq!(positions(window.after(Position(1), 10)), None);
        assert_eq!(window.head(), Position(5));
    }
}
