//! A connection's timeouts without a timer per request: the header-read
//! deadline (kept by hyper) and the read and write idle deadlines (kept by the
//! stream) are plain numbers in [`Deadlines`], and one sleep per connection,
//! [`wake_at_deadlines`], wakes the connection's task when the earliest of them
//! comes. The wait that is late then fails when polled, as with a timer.
//!
//! Why not a timer per wait (`tokio-io-timeout`, hyper's `TokioTimer`): a
//! redirect is one read and one write, and arming and cancelling two tokio
//! timers for it cost ≈ 2 µs of the API's ≈ 17 µs per redirect, plus a write to
//! the runtime's eventfd for ≈ 8 % of requests (docs/performance.md).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// No deadline.
const NONE: u64 = 0;

/// One connection's deadlines, in milliseconds since the connection's start
/// (rounded up, so a deadline never comes early); [`NONE`] when nothing waits.
#[derive(Debug)]
pub struct Deadlines {
    started: Instant,
    idle_timeout_ms: u64,
    read: AtomicU64,
    write: AtomicU64,
    header: AtomicU64,
}

impl Deadlines {
    /// Deadlines for a connection accepted now, whose reads and writes may wait
    /// at most `idle_timeout` without progress.
    pub fn new(idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            idle_timeout_ms: millis_up(idle_timeout).max(1),
            read: AtomicU64::new(NONE),
            write: AtomicU64::new(NONE),
            header: AtomicU64::new(NONE),
        })
    }

    /// Now, rounded up: for starting a deadline, which so never comes early.
    fn now_ms(&self) -> u64 {
        millis_up(self.started.elapsed())
    }

    /// Whether `deadline` has passed, by now rounded down: never early.
    fn passed(&self, deadline: u64) -> bool {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX) >= deadline
    }

    fn at(&self, instant: Instant) -> u64 {
        millis_up(instant.saturating_duration_since(self.started)).max(1)
    }

    fn instant(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    /// The earliest deadline later than `after`.
    fn earliest_after(&self, after: u64) -> Option<u64> {
        [&self.read, &self.write, &self.header]
            .into_iter()
            .map(|deadline| deadline.load(Ordering::Relaxed))
            .filter(|&deadline| deadline != NONE && deadline > after)
            .min()
    }

    /// Called when a read or write returned `Pending`: starts the wait's
    /// deadline if it is not running, and says whether it has passed.
    fn waiting(&self, deadline: &AtomicU64) -> bool {
        match deadline.load(Ordering::Relaxed) {
            NONE => {
                deadline.store(self.now_ms() + self.idle_timeout_ms, Ordering::Relaxed);
                false
            }
            running => self.passed(running),
        }
    }

    /// Called when a read or write made progress (or failed).
    fn progressed(deadline: &AtomicU64) {
        if deadline.load(Ordering::Relaxed) != NONE {
            deadline.store(NONE, Ordering::Relaxed);
        }
    }
}

fn millis_up(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Runs beside the connection, in its task, until the connection ends: wakes
/// the task at the earliest deadline, and the late wait then fails when polled.
/// It sleeps at most `period` at a time: every wait starts with at least
/// `period` to run (the shorter timeout), so one that starts while this sleeps
/// is seen at the next wake-up, even when it is due before the deadline this
/// sleeps towards. A deadline already woken for that is still set (the
/// connection did not poll that wait) is not woken for again.
pub async fn wake_at_deadlines(deadlines: Arc<Deadlines>, period: Duration) -> std::convert::Infallible {
    let period_ms = millis_up(period).max(1);
    let mut woken_at = 0;
    let sleep = tokio::time::sleep(period);
    tokio::pin!(sleep);
    loop {
        sleep.as_mut().await;
        let at_the_latest = deadlines.now_ms() + period_ms;
        woken_at = deadlines.earliest_after(woken_at).map_or(at_the_latest, |deadline| deadline.min(at_the_latest));
        sleep.as_mut().reset(deadlines.instant(woken_at).into());
    }
}

pin_project! {
    /// A connection's stream: a read or a write that waits (returns `Pending`)
    /// longer than the idle timeout without progress fails with `TimedOut`
    /// the next time it is polled.
    #[derive(Debug)]
    pub struct Watched<S> {
        #[pin]
        inner: S,
        deadlines: Arc<Deadlines>,
    }
}

impl<S> Watched<S> {
    pub fn new(inner: S, deadlines: Arc<Deadlines>) -> Self {
        Self { inner, deadlines }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no progress within the idle timeout")
}

/// The outcome of an operation on the stream, with the wait's deadline kept.
fn watch<T>(deadlines: &Deadlines, deadline: &AtomicU64, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    match poll {
        Poll::Pending if deadlines.waiting(deadline) => Poll::Ready(Err(timed_out())),
        Poll::Pending => Poll::Pending,
        ready => {
            Deadlines::progressed(deadline);
            ready
        }
    }
}

impl<S: AsyncRead> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        watch(this.deadlines, &this.deadlines.read, this.inner.poll_read(cx, buf))
    }
}

impl<S: AsyncWrite> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.project();
        watch(this.deadlines, &this.deadlines.write, this.inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        watch(this.deadlines, &this.deadlines.write, this.inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        watch(this.deadlines, &this.deadlines.write, this.inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        watch(this.deadlines, &this.deadlines.write, this.inner.poll_shutdown(cx))
    }
}

/// hyper's timer for one HTTP/1 connection, used only for its header-read
/// timeout: a sleep writes its deadline into the connection's [`Deadlines`]
/// (and clears it when hyper drops it, once the headers are in) instead of
/// arming a timer; [`wake_at_deadlines`] wakes the task, and hyper, polling
/// the sleep, answers 408 and closes.
#[derive(Debug, Clone)]
pub struct HeaderTimer(pub Arc<Deadlines>);

impl Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let deadlines = self.0.clone();
        deadlines.header.store(deadlines.at(deadline), Ordering::Relaxed);
        Box::pin(HeaderSleep { deadlines, deadline })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HeaderSleep>() {
            Some(sleep) => {
                let sleep = sleep.get_mut();
                sleep.deadline = new_deadline;
                sleep.deadlines.header.store(sleep.deadlines.at(new_deadline), Ordering::Relaxed);
            }
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// See [`HeaderTimer`]: ready once its deadline has passed; it registers no
/// waker, as the connection's [`wake_at_deadlines`] wakes the task then.
#[derive(Debug)]
struct HeaderSleep {
    deadlines: Arc<Deadlines>,
    deadline: Instant,
}

impl Future for HeaderSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Sleep for HeaderSleep {}

impl Drop for HeaderSleep {
    fn drop(&mut self) {
        self.deadlines.header.store(NONE, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const IDLE: Duration = Duration::from_millis(200);
    const DEADLINE: Duration = Duration::from_secs(10);

    /// Runs `work` with the connection's watchdog beside it, as the server
    /// does, in a task of its own: only the watchdog can wake it at a deadline
    /// (a timeout in the same task would wake it too and hide a missed one).
    async fn with_watchdog<T: Send + 'static>(
        deadlines: Arc<Deadlines>,
        work: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let task = tokio::spawn(async move {
            tokio::select! {
                out = work => out,
                never = wake_at_deadlines(deadlines, IDLE) => match never {},
            }
        });
        tokio::time::timeout(DEADLINE, task).await.expect("woken in time").expect("join")
    }

    #[tokio::test]
    async fn a_read_waiting_past_the_idle_timeout_fails_and_one_making_progress_does_not() {
        // Progress every 100 ms for twice this: never late, with room for a
        // loaded machine's scheduling delays.
        const IDLE: Duration = Duration::from_secs(1);
        let (client, server) = tokio::io::duplex(64);
        let deadlines = Deadlines::new(IDLE);
        let server = Watched::new(server, deadlines.clone());
        let (_client_read, mut client_write) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            for byte in 0..20u8 {
                client_write.write_all(&[byte]).await.expect("write");
                tokio::time::sleep(IDLE / 10).await;
            }
            client_write
        });
        let (got, mut server) = with_watchdog(deadlines.clone(), async move {
            let mut server = server;
            let mut got = [0; 20];
            (server.read_exact(&mut got).await.map(|_| got), server)
        })
        .await;
        assert_eq!(got.expect("read"), std::array::from_fn::<u8, 20, _>(|i| i as u8));
        let _client_write = writer.await.expect("join");
        // Then silence: the next read fails, woken by the watchdog alone.
        let started = Instant::now();
        let error = with_watchdog(deadlines, async move { server.read_u8().await }).await.expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= IDLE, "not before the idle timeout: {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_write_the_peer_does_not_read_fails_after_the_idle_timeout() {
        let (client, server) = tokio::io::duplex(16);
        let deadlines = Deadlines::new(IDLE);
        let mut server = Watched::new(server, deadlines.clone());
        let error =
            with_watchdog(deadlines, async move { server.write_all(&[7; 1024]).await }).await.expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[tokio::test]
    async fn a_shorter_deadline_that_starts_while_the_watchdog_sleeps_towards_a_longer_one_is_kept() {
        let deadlines = Deadlines::new(Duration::from_secs(3600));
        // A read waits, due in an hour; the watchdog sleeps towards it.
        assert!(!deadlines.waiting(&deadlines.read));
        let timer = HeaderTimer(deadlines.clone());
        // The pace is the thing under test: the header wait starts after the
        // watchdog's first wake-up has seen only the hour-long deadline.
        with_watchdog(deadlines, async move {
            tokio::time::sleep(IDLE * 2).await;
            timer.sleep(IDLE).await;
        })
        .await;
    }

    #[tokio::test]
    async fn a_header_sleep_is_woken_at_its_deadline_and_clears_it_when_dropped() {
        let deadlines = Deadlines::new(Duration::from_secs(3600));
        let timer = HeaderTimer(deadlines.clone());
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        assert!(deadlines.earliest_after(0).is_some());
        timer.reset(&mut sleep, Instant::now() + IDLE);
        let started = Instant::now();
        with_watchdog(deadlines.clone(), sleep).await;
        assert!(started.elapsed() >= IDLE / 2, "not long before the deadline: {:?}", started.elapsed());
        assert_eq!(deadlines.earliest_after(0), None, "dropped with its deadline");
    }
}
