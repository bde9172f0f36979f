//! The visit buffer: redirects hand visits over without waiting; a flusher writes
//! them in batches. A full buffer drops visits (and counts them) rather than slow
//! redirects down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use offndat_application::ports::{PendingVisit, VisitSink};
use offndat_domain::NewVisit;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::postgres::{PgVisitStore, is_unavailable};

/// How often a waiting flusher checks whether the buffer was closed.
const CLOSED_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Sizes and timing of the buffer.
#[derive(Debug, Clone, Copy)]
pub struct VisitBufferConfig {
    pub capacity: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// How long the final drain keeps retrying an unreachable database at shutdown.
    pub drain_timeout: Duration,
}

/// The sending side, held by the redirect handler.
#[derive(Clone)]
pub struct VisitBuffer {
    sender: mpsc::Sender<PendingVisit>,
    dropped: Arc<AtomicU64>,
    /// Rung when a full batch is waiting, so the flusher need not wake per visit.
    batch_ready: Arc<Notify>,
    batch_size: usize,
}

impl VisitBuffer {
    /// Visits dropped because the buffer was full (or writing failed for good).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl VisitSink for VisitBuffer {
    fn record(&self, visit: PendingVisit) {
        if self.sender.try_send(visit).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("offndat_visits_dropped_total", "reason" => "buffer_full").increment(1);
        } else if self.sender.max_capacity() - self.sender.capacity() >= self.batch_size {
            self.batch_ready.notify_one();
        }
    }
}

/// The receiving side: writes batches until every `VisitBuffer` is dropped, then
/// drains what is left and returns.
pub struct VisitFlusher {
    receiver: mpsc::Receiver<PendingVisit>,
    store: PgVisitStore,
    config: VisitBufferConfig,
    dropped: Arc<AtomicU64>,
    batch_ready: Arc<Notify>,
}

/// A buffer and its flusher.
pub fn visit_buffer(store: PgVisitStore, config: VisitBufferConfig) -> (VisitBuffer, VisitFlusher) {
    let (sender, receiver) = mpsc::channel(config.capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let batch_ready = Arc::new(Notify::new());
    let batch_size = config.batch_size.max(1);
    (
        VisitBuffer { sender, dropped: dropped.clone(), batch_ready: batch_ready.clone(), batch_size },
        VisitFlusher { receiver, store, config, dropped, batch_ready },
    )
}

impl VisitFlusher {
    /// Runs until the buffer's senders are all gone and everything is written.
    pub async fn run(mut self) {
        let batch_size = self.config.batch_size.max(1);
        let mut batch = Vec::with_capacity(batch_size);
        loop {
            // Wait for the first visit of a batch; `None` means every sender is gone.
            if self.receiver.recv_many(&mut batch, batch_size).await == 0 {
                break;
            }
            // Then wait until the interval has passed or a full batch is waiting; the
            // buffer rings only then, so a busy buffer costs one wake-up per batch,
            // not one per visit.
            if batch.len() < batch_size {
                let deadline = Instant::now() + self.config.flush_interval;
                // Glance at the channel now and then: once every sender is gone
                // (shutdown) the drain must not wait out a long interval.
                while Instant::now() < deadline && !self.receiver.is_closed() {
                    let nap = deadline.min(Instant::now() + CLOSED_CHECK_EVERY);
                    tokio::select! {
                        () = tokio::time::sleep_until(nap) => {}
                        () = self.batch_ready.notified() => break,
                    }
                }
            }
            let mut open = true;
            while batch.len() < batch_size {
                match self.receiver.try_recv() {
                    Ok(visit) => batch.push(visit),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            // Decoding and bounding the text happens here, off the redirect path.
            let mut stored: Vec<NewVisit> = batch.drain(..).map(PendingVisit::into_stored).collect();
            self.write(&mut stored, open).await;
            if !open {
                break;
            }
        }
        tracing::info!(visits.dropped = self.dropped.load(Ordering::Relaxed), "visit buffer drained");
    }

    /// Writes `batch`, retrying an unreachable database with capped backoff; while
    /// retrying, new visits wait in the buffer (and overflow is dropped and counted).
    async fn write(&self, batch: &mut Vec<NewVisit>, open: bool) {
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match self.store.write(batch).await {
                Ok(()) => {
                    metrics::counter!("offndat_visits_recorded_total").increment(batch.len() as u64);
                    tracing::debug!(
                        visits.count = batch.len(),
                        latency_ms = started.elapsed().as_millis() as u64,
                        "visits written"
                    );
                    batch.clear();
                    return;
                }
                Err(error) if is_unavailable(&error) && (open || started.elapsed() < self.config.drain_timeout) => {
                    tracing::warn!(error = %error, visits.count = batch.len(), retry_in_ms = delay.as_millis() as u64, "writing visits failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    let lost = batch.len() as u64;
                    tracing::error!(error = %error, visits.count = lost, "writing visits failed for good; dropping the batch");
                    self.dropped.fetch_add(lost, Ordering::Relaxed);
                    metrics::counter!("offndat_visits_dropped_total", "reason" => "write_failed").increment(lost);
                    batch.clear();
                    return;
                }
            }
        }
    }
}
