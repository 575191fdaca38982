//! The one loop of every log follower (projectors, the relay, process managers): catch up from
//! the checkpoint, then follow live, batch by batch; on a failure, wait a little longer each
//! time and resume from the checkpoint. Followers never stop on their own.

use std::error::Error;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use keryu_infra::event_store::{EventStore, Position, RecordedEvent};
use keryu_infra::postgres::PgEventStore;
use tokio::time::Instant;

/// Why a follower's batch or checkpoint failed; the batch is read again.
pub type FollowError = Box<dyn Error + Send + Sync>;

/// What [`follow`] drives.
pub(crate) trait Follower: Sync {
    /// For logs.
    fn name(&self) -> &str;
    /// The log it reads.
    fn store(&self) -> &PgEventStore;
    /// Where to resume.
    fn checkpoint(&self) -> impl Future<Output = Result<Position, FollowError>> + Send;
    /// Applies one batch and moves the checkpoint past it.
    fn handle(
        &self,
        batch: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), FollowError>> + Send;
    /// The least time from the start of one batch to the start of the next while the follower
    /// keeps up with the log (its batch was smaller than a page). Commits arriving meanwhile
    /// wait and are handled together. Zero, the default: each batch starts as soon as there is
    /// one.
    fn pace(&self) -> Duration {
        Duration::ZERO
    }
}

/// Runs `follower` until `shutdown` resolves.
pub(crate) async fn follow(follower: &impl Follower, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut failures: u32 = 0;
    'resubscribe: loop {
        let from = match follower.checkpoint().await {
            Ok(position) => position,
            Err(error) => {
                failures += 1;
                if pause_after_failure(follower.name(), &error, failures, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        let mut subscription = follower.store().subscribe_all(from);
        loop {
            let batch = tokio::select! {
                () = &mut shutdown => return,
                batch = subscription.next_batch() => batch,
            };
            let Some(batch) = batch else { return };
            let started = Instant::now();
            match follower.handle(&batch).await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures += 1;
                    if pause_after_failure(follower.name(), &error, failures, &mut shutdown).await {
                        return;
                    }
                    // Resume from the stored checkpoint: the failed batch is read again.
                    continue 'resubscribe;
                }
            }
            // A follower catching up (full pages) goes on at once; one at the log's tail waits
            // out its pace, if it has one.
            let pace = follower.pace();
            if !pace.is_zero() && batch.len() < follower.store().subscription_options().page_size {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep_until(started + pace) => {}
                }
            }
        }
    }
}

/// Longest pause between attempts while a dependency fails.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Logs `error` of `follower` and waits before its next attempt, 100 ms doubling up to
/// [`MAX_RETRY_DELAY`]; `true` when `shutdown` resolved meanwhile.
async fn pause_after_failure(
    follower: &str,
    error: &(impl Display + Sync),
    failures: u32,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let delay = (Duration::from_millis(100) * 2u32.pow(failures.min(6))).min(MAX_RETRY_DELAY);
    tracing::warn!(follower, %error, ?delay, "batch failed; retrying");
    tokio::select! {
        () = shutdown.as_mut() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use keryu_infra::event_store::{
        EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamName,
    };
    use keryu_infra::personal_data::MasterKey;
    use sqlx::PgPool;
    use uuid::Uuid;

    use super::*;

    /// Records the size of every batch it is handed, from `from` on.
    struct Counting {
        store: PgEventStore,
        from: Position,
        pace: Duration,
        batches: Mutex<Vec<usize>>,
    }

    impl Follower for Counting {
        fn name(&self) -> &str {
            "counting"
        }

        fn store(&self) -> &PgEventStore {
            &self.store
        }

        async fn checkpoint(&self) -> Result<Position, FollowError> {
            Ok(self.from)
        }

        async fn handle(&self, batch: &[RecordedEvent]) -> Result<(), FollowError> {
            self.batches.lock().expect("batches").push(batch.len());
            Ok(())
        }

        fn pace(&self) -> Duration {
            self.pace
        }
    }

    fn new_event() -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "TestHappened".to_owned(),
            schema_version: 1,
            data: serde_json::json!({}),
            metadata: EventMetadata::default(),
            personal: None,
        }
    }

    /// Appends `count` events to a new stream, in one commit.
    async fn commit(store: &PgEventStore, count: usize) {
        let stream = StreamName::new("test", Uuid::now_v7()).expect("stream");
        let events = (0..count).map(|_| new_event()).collect();
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .expect("append");
    }

    /// The batches `follower` was handed for ten commits, the last nine made while it handled
    /// (and, with a pace, paced after) the first; and those it had been handed by the time the
    /// ten commits were made.
    async fn batches_of_ten_commits(
        store: PgEventStore,
        pace: Duration,
    ) -> (Vec<usize>, Vec<usize>) {
        let follower = Counting {
            store: store.clone(),
            from: store.head_position().await.expect("the log's head"),
            pace,
            batches: Mutex::new(Vec::new()),
        };
        let batches = || follower.batches.lock().expect("batches").clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let following = async {
            follow(&follower, async {
                let _ = stopped.await;
            })
            .await;
        };
        let committing = async {
            commit(&store, 1).await;
            while batches().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for _ in 0..9 {
                commit(&store, 1).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let after_the_commits = batches();
            while batches().iter().sum::<usize>() < 10 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = stop.send(());
            after_the_commits
        };
        let ((), after_the_commits) = tokio::join!(following, committing);
        (batches(), after_the_commits)
    }

    /// A follower at the log's tail leaves the commits that arrive while it paces until the
    /// pace has passed, and takes them in fewer batches than commits; without a pace, it takes
    /// them as they come.
    #[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
    async fn commits_arriving_within_the_pace_wait_for_it(pool: PgPool) {
        let store = PgEventStore::new(pool, MasterKey::development());

        let (paced, paced_meanwhile) =
            batches_of_ten_commits(store.clone(), Duration::from_secs(3)).await;
        let (unpaced, _) = batches_of_ten_commits(store, Duration::ZERO).await;

        assert_eq!(paced_meanwhile, vec![1], "handled while pacing");
        assert!(paced.len() <= 3, "paced batches {paced:?}");
        assert!(unpaced.len() >= 5, "unpaced batches {unpaced:?}");
    }

    /// A follower behind the log takes its pages one after the other whatever its pace: the
    /// pace is for a follower at the tail.
    #[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
    async fn a_follower_catching_up_is_not_paced(pool: PgPool) {
        let store = PgEventStore::new(pool, MasterKey::development());
        let page_size = store.subscription_options().page_size;
        commit(&store, page_size * 2 + 1).await;
        let follower = Counting {
            store: store.clone(),
            from: Position::START,
            pace: Duration::from_secs(3600),
            batches: Mutex::new(Vec::new()),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let following = follow(&follower, async {
            let _ = stopped.await;
        });
        let caught_up = async {
            while follower
                .batches
                .lock()
                .expect("batches")
                .iter()
                .sum::<usize>()
                <= page_size * 2
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = stop.send(());
        };

        tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(following, caught_up)
        })
        .await
        .expect("caught up without waiting out the pace");
        assert_eq!(
            follower
                .batches
                .into_inner()
                .expect("batches")
                .iter()
                .sum::<usize>(),
            page_size * 2 + 1
        );
    }
}
