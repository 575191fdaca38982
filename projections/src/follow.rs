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
