//! The one retry pause of every log follower (projectors, relay, process managers): they never
//! stop on a failure, they wait a little longer each time and resume from their checkpoint.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Longest pause between attempts while a dependency fails.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Logs `error` of `follower` and waits before its next attempt, 100 ms doubling up to
/// [`MAX_RETRY_DELAY`]; `true` when `shutdown` resolved meanwhile.
pub(crate) async fn pause_after_failure(
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
