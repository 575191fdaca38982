//! A live follower of the global log, fed by an adapter-specific background task.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use super::RecordedEvent;

/// Events of the global log in position order: the stored backlog first, then new events as they
/// commit.
///
/// Adapters push pages of events into a bounded channel from a task of their own, so a slow
/// consumer applies back-pressure to the reader instead of buffering the log in memory. Dropping
/// the subscription stops that task.
#[derive(Debug)]
pub struct Subscription {
    pages: mpsc::Receiver<Vec<RecordedEvent>>,
    buffered: VecDeque<RecordedEvent>,
}

impl Subscription {
    /// Creates a subscription and the sender its adapter's task feeds, holding at most
    /// `max_pages` unread pages.
    pub fn channel(max_pages: usize) -> (mpsc::Sender<Vec<RecordedEvent>>, Subscription) {
        let (sender, pages) = mpsc::channel(max_pages);
        let subscription = Subscription {
            pages,
            buffered: VecDeque::new(),
        };
        (sender, subscription)
    }

    /// The next event, waiting for one to commit if the consumer has caught up. `None` once the
    /// adapter's task has stopped for good (the store was shut down).
    pub async fn next(&mut self) -> Option<RecordedEvent> {
        while self.buffered.is_empty() {
            self.buffered = self.pages.recv().await?.into();
        }
        self.buffered.pop_front()
    }

    /// Every event available now as one batch (at least one, waiting if there is none yet), so
    /// that a projection can apply a batch in one transaction. `None` as for [`Self::next`].
    pub async fn next_batch(&mut self) -> Option<Vec<RecordedEvent>> {
        while self.buffered.is_empty() {
            self.buffered = self.pages.recv().await?.into();
        }
        Some(self.buffered.drain(..).collect())
    }
}
