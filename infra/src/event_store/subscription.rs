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
    ///
    /// That includes every page that arrived while the consumer was busy with its last batch:
    /// taking one page per call, a consumer slower than the commits would always be a full
    /// buffer of pages behind the log (about five of its cycles: 20 ms of the relay's lag at
    /// 500 notifications/s), and pay a cycle per page instead of one for all of them.
    pub async fn next_batch(&mut self) -> Option<Vec<RecordedEvent>> {
        while self.buffered.is_empty() {
            self.buffered = self.pages.recv().await?.into();
        }
        while let Ok(page) = self.pages.try_recv() {
            self.buffered.extend(page);
        }
        Some(self.buffered.drain(..).collect())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::event_store::{EventMetadata, Position, StreamName};

    fn page(positions: std::ops::Range<u64>) -> Vec<RecordedEvent> {
        positions
            .map(|position| RecordedEvent {
                position: Position(position),
                stream: StreamName::new("test", Uuid::nil()).expect("a stream name"),
                version: position,
                event_id: Uuid::now_v7(),
                event_type: "TestHappened".to_owned(),
                schema_version: 1,
                data: serde_json::json!({}),
                metadata: EventMetadata::default(),
                recorded_at: Utc::now(),
            })
            .collect()
    }

    fn positions(events: &[RecordedEvent]) -> Vec<u64> {
        events.iter().map(|event| event.position.0).collect()
    }

    /// Pages queued while the consumer was busy come out as one batch, in order; a page sent
    /// after that is the next batch.
    #[tokio::test]
    async fn a_batch_takes_every_page_already_waiting() {
        let (pages, mut subscription) = Subscription::channel(4);
        for range in [1..3, 3..4, 4..7] {
            pages.send(page(range)).await.expect("room for the page");
        }
        let batch = subscription.next_batch().await.expect("a batch");
        assert_eq!(positions(&batch), (1..7).collect::<Vec<_>>());

        pages.send(page(7..9)).await.expect("room for the page");
        let batch = subscription.next_batch().await.expect("a batch");
        assert_eq!(positions(&batch), vec![7, 8]);
        drop(pages);
        assert!(subscription.next_batch().await.is_none());
    }
}
