//! Awaiting asynchronous effects by polling with a deadline, never a fixed sleep.

use std::time::Duration;

use tokio::time::Instant;

/// Polls `check` every 50 ms until it returns `Some`, or panics after `deadline`
/// with `what` and the last value seen.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let until = Instant::now() + deadline;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= until => panic!("{what}: not within {deadline:?}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
