//! The worker's consumer loop: one task per queue, each on its own connection and
//! channel, reading deliveries in batches, applying them with the event ledger and
//! acknowledging only after the transaction commits.
//!
//! Guarantees: a message is acknowledged only once its effect (or its being a
//! duplicate) is committed; unreadable messages are rejected to the dead-letter
//! queue at once; PostgreSQL outages hold the batch and retry with backoff; a lost
//! broker connection is re-established by the loop itself. Redelivery after any
//! failure is harmless because the ledger de-duplicates by message id.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;
use uuid::Uuid;

use super::broker_status::QueueStatus;
use super::{BrokerStatus, Topology, connect};
use crate::trace_context;
use offndat_application::ApplyEvents;
use offndat_application::apply_events::{InboxMessage, LedgerError, LedgerOutcome};
use offndat_application::events::Event;

/// Counter of consumed messages, labelled `queue` and `outcome` (`applied`,
/// `duplicate`, `dead_lettered`, `skipped`).
pub const MESSAGES_TOTAL: &str = "offndat_worker_messages_total";
/// Counter of visits in applied messages, labelled `outcome` (`counted`, `skipped`).
pub const VISITS_TOTAL: &str = "offndat_worker_visits_total";
/// Histogram of the time from a batch's first delivery to its settlement.
pub const BATCH_DURATION_SECONDS: &str = "offndat_worker_batch_duration_seconds";

/// First and largest delay between retries, of PostgreSQL and of the broker.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Longest wait for the broker to confirm closing a connection.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How batches are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most unacknowledged deliveries the broker sends (AMQP prefetch). At least
    /// the batch size, or batches never fill.
    pub prefetch: u16,
    /// Most deliveries applied in one batch (one transaction per lane).
    pub batch_size: usize,
    /// Longest the first delivery of a batch waits for the batch to fill.
    pub batch_timeout: Duration,
    /// A batch stops filling once its bodies reach this many bytes.
    pub batch_max_bytes: usize,
    /// Largest body read; larger ones are dead-lettered unread.
    pub max_message_bytes: usize,
    /// Most visits one message may add to one link (see `Event::check_bounds`).
    pub max_visits_per_link: u64,
}

/// Consumes one queue until shutdown.
pub struct EventConsumer {
    amqp_url: Url,
    connection_name: String,
    topology: Topology,
    queue: String,
    settings: BatchSettings,
    apply: ApplyEvents,
    status: BrokerStatus,
}

/// Why a consuming session ended other than by shutdown.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker cancelled the consumer")]
    Cancelled,
}

/// What became of a batch handed to the ledger.
enum Settled {
    /// Every message committed and acknowledged.
    Committed(LedgerOutcome),
    /// Shutdown came while PostgreSQL was failing: the messages not committed
    /// stay unacknowledged.
    Abandoned,
    /// PostgreSQL refused these messages (positions in the batch) as a group.
    Failed(LedgerError, Vec<usize>),
}

impl EventConsumer {
    /// A consumer of `queue` (one of `topology.consumer_queues()`).
    pub fn new(
        amqp_url: Url,
        connection_name: String,
        topology: Topology,
        queue: String,
        settings: BatchSettings,
        apply: ApplyEvents,
        status: BrokerStatus,
    ) -> Self {
        register_queue_metrics(&queue);
        Self { amqp_url, connection_name, topology, queue, settings, apply, status }
    }

    /// Consumes until `shutdown` is cancelled: connects (retrying with capped
    /// backoff for as long as it takes), declares the topology, consumes, and
    /// reconnects whenever the connection or channel is lost. On shutdown it stops
    /// fetching, settles the batch in hand, closes and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        self.status.set(&self.queue, QueueStatus::Disconnected("not connected yet".to_owned()));
        let mut delay = BACKOFF_MIN;
        while !shutdown.is_cancelled() {
            let result = self.session(&shutdown, &mut delay).await;
            match result {
                Ok(()) => break,
                Err(error) => {
                    self.status.set(&self.queue, QueueStatus::Disconnected(error.to_string()));
                    tracing::warn!(
                        queue = %self.queue,
                        error = %error,
                        retry_in_ms = delay.as_millis() as u64,
                        "broker unavailable; reconnecting"
                    );
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
        self.status.set(&self.queue, QueueStatus::Disconnected("shut down".to_owned()));
        tracing::info!(queue = %self.queue, "consumer stopped");
    }

    /// One connection's life: `Ok` on shutdown, `Err` when the broker went away.
    async fn session(&self, shutdown: &CancellationToken, delay: &mut Duration) -> Result<(), SessionError> {
        let connection = Arc::new(connect(&self.amqp_url, &self.connection_name).await?);
        let result = self.consume(&connection, shutdown, delay).await;
        // After a channel-level failure the connection may still stand: close it
        // too, so the next session starts clean. Bounded: a broker that stopped
        // answering must not hold up shutdown or reconnection.
        if connection.status().connected() {
            let reason = if result.is_ok() { "worker shutting down" } else { "reconnecting" };
            let closing = connection.close(200, reason.into());
            if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, closing).await, Ok(Ok(()))) {
                tracing::debug!(queue = %self.queue, "the broker did not confirm closing the connection");
            }
        }
        result
    }

    async fn consume(
        &self,
        connection: &Arc<Connection>,
        shutdown: &CancellationToken,
        delay: &mut Duration,
    ) -> Result<(), SessionError> {
        self.topology.declare(connection).await?;
        let channel = connection.create_channel().await?;
        channel.basic_qos(self.settings.prefetch, BasicQosOptions::default()).await?;
        let mut consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                format!("{}-{}", self.connection_name, Uuid::new_v4().simple()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.status.set(&self.queue, QueueStatus::Connected(connection.clone()));
        *delay = BACKOFF_MIN;
        tracing::info!(queue = %self.queue, prefetch = self.settings.prefetch, "consuming");

        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                next = consumer.next() => next,
            };
            let first = match first {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return Err(error.into()),
                None => return Err(SessionError::Cancelled),
            };
            let started = Instant::now();
            let mut batch_bytes = first.data.len();
            let mut batch = vec![first];
            let mut ended = None;
            let deadline = started + self.settings.batch_timeout;
            while batch.len() < self.settings.batch_size && batch_bytes < self.settings.batch_max_bytes {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep_until(deadline) => break,
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => {
                            batch_bytes += delivery.data.len();
                            batch.push(delivery);
                        }
                        Some(Err(error)) => { ended = Some(SessionError::Broker(error)); break }
                        None => { ended = Some(SessionError::Cancelled); break }
                    },
                }
            }
            if shutdown.is_cancelled() && ended.is_none() {
                // Stop fetching first, then settle the batch in hand.
                cancel_consumer(&channel, &consumer).await;
                self.settle(batch, started, shutdown).await?;
                close_channel(&channel).await;
                return Ok(());
            }
            self.settle(batch, started, shutdown).await?;
            if let Some(error) = ended {
                return Err(error);
            }
        }
        cancel_consumer(&channel, &consumer).await;
        close_channel(&channel).await;
        Ok(())
    }

    /// Parses, applies and acknowledges one batch.
    async fn settle(&self, batch: Vec<Delivery>, started: Instant, shutdown: &CancellationToken) -> lapin::Result<()> {
        let span = tracing::info_span!("worker.batch", queue = %self.queue, batch.size = batch.len());
        // One span per message, continuing the trace of the request that caused
        // it; each ends when the batch is settled (dropped at the end of this
        // function; the exporter takes a span's last exit or its close as its
        // end). The batch span links to them.
        let message_spans: Vec<tracing::Span> =
            batch.iter().map(|delivery| process_span(&self.queue, delivery)).collect();
        for message_span in &message_spans {
            span.follows_from(message_span);
        }
        async move {
            let mut readable = Vec::with_capacity(batch.len());
            let mut readable_spans = Vec::with_capacity(batch.len());
            for (mut delivery, message_span) in batch.into_iter().zip(message_spans) {
                match parse(&delivery, &self.settings) {
                    Ok(message) => {
                        // The body is parsed: only its tag is needed from here (a
                        // rejected message is dead-lettered from the broker's copy),
                        // so the batch's bytes are not held beside its events.
                        delivery.data = Vec::new();
                        readable.push((delivery, message));
                        readable_spans.push(message_span);
                    }
                    Err(reason) => {
                        message_span.record("otel.status_code", "error");
                        tracing::warn!(
                            parent: &message_span,
                            message.id = message_id(&delivery),
                            message.redelivered = delivery.redelivered,
                            reason = %reason,
                            "dead-lettering a message the worker cannot read"
                        );
                        self.dead_letter(&delivery).instrument(message_span).await?;
                    }
                }
            }
            if !readable.is_empty() {
                let (deliveries, messages): (Vec<Delivery>, Vec<InboxMessage>) = readable.into_iter().unzip();
                match self.apply_with_retry(&deliveries, &messages, shutdown).await? {
                    Settled::Committed(outcome) => {
                        tracing::debug!(
                            messages.applied = outcome.applied,
                            messages.duplicate = outcome.duplicates,
                            visits.counted = outcome.visits_counted,
                            "batch applied"
                        );
                    }
                    Settled::Abandoned => {}
                    Settled::Failed(error, failed) => {
                        tracing::warn!(
                            error = %error,
                            messages.failed = failed.len(),
                            "batch failed; applying its failed messages one by one"
                        );
                        self.settle_one_by_one(&deliveries, &messages, &readable_spans, &failed, shutdown).await?;
                    }
                }
            }
            metrics::histogram!(BATCH_DURATION_SECONDS, "queue" => self.queue.clone())
                .record(started.elapsed().as_secs_f64());
            tracing::debug!(duration_ms = started.elapsed().as_millis() as u64, "batch settled");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// After a permanent failure: each of the `failed` messages alone, so only
    /// the ones that fail by themselves go to the dead-letter queue.
    async fn settle_one_by_one(
        &self,
        deliveries: &[Delivery],
        messages: &[InboxMessage],
        spans: &[tracing::Span],
        failed: &[usize],
        shutdown: &CancellationToken,
    ) -> lapin::Result<()> {
        for &position in failed {
            let (delivery, span) = (&deliveries[position], &spans[position]);
            let settled = self
                .apply_with_retry(std::slice::from_ref(delivery), std::slice::from_ref(&messages[position]), shutdown)
                .instrument(span.clone())
                .await?;
            match settled {
                Settled::Committed(_) => {}
                // The rest stays unacknowledged and is redelivered.
                Settled::Abandoned => return Ok(()),
                Settled::Failed(error, _) => {
                    span.record("otel.status_code", "error");
                    tracing::error!(parent: span, message.id = %messages[position].message_id, error = %error, "dead-lettering a message PostgreSQL refuses");
                    self.dead_letter(delivery).instrument(span.clone()).await?;
                }
            }
        }
        Ok(())
    }

    /// Applies `messages` (one lane per transaction, see `ApplyEvents`) and
    /// acknowledges each lane's `deliveries` once it commits; retries the lanes
    /// that failed transiently, with capped backoff, while holding their
    /// deliveries; gives up only when shutdown comes or PostgreSQL refuses a lane.
    async fn apply_with_retry(
        &self,
        deliveries: &[Delivery],
        messages: &[InboxMessage],
        shutdown: &CancellationToken,
    ) -> lapin::Result<Settled> {
        let mut delay = BACKOFF_MIN;
        let mut total = LedgerOutcome::default();
        let mut left: Vec<usize> = (0..messages.len()).collect();
        let mut first_try = true;
        loop {
            let batch: Vec<&InboxMessage> = left.iter().map(|&p| &messages[p]).collect();
            let lanes = self.apply.execute(&batch).await;
            let mut failed = Vec::new();
            let mut failure: Option<LedgerError> = None;
            let mut committed = Vec::new();
            for lane in lanes {
                match lane.result {
                    Ok(outcome) => {
                        self.record(&outcome);
                        total.add(&outcome);
                        committed.extend(lane.messages.iter().map(|&p| left[p]));
                    }
                    Err(error) => {
                        failed.extend(lane.messages.iter().map(|&p| left[p]));
                        // A refusal outranks an outage: retrying as is would be
                        // refused again.
                        if !matches!(failure, Some(LedgerError::Permanent(_))) {
                            failure = Some(error);
                        }
                    }
                }
            }
            if first_try && failure.is_none() && deliveries.len() > 1 {
                // All at once: deliveries come in tag order and the unreadable
                // ones are already rejected, so one multiple-ack settles them.
                if let Some(last) = deliveries.last() {
                    acknowledge(last, true).await?;
                }
            } else {
                committed.sort_unstable();
                for position in committed {
                    acknowledge(&deliveries[position], false).await?;
                }
            }
            first_try = false;
            let Some(error) = failure else { return Ok(Settled::Committed(total)) };
            failed.sort_unstable();
            left = failed;
            if !error.is_transient() {
                return Ok(Settled::Failed(error, left));
            }
            if shutdown.is_cancelled() {
                tracing::warn!(error = %error, "shutting down while PostgreSQL fails; leaving the batch for redelivery");
                return Ok(Settled::Abandoned);
            }
            tracing::warn!(
                error = %error,
                batch.size = left.len(),
                retry_in_ms = delay.as_millis() as u64,
                "PostgreSQL unavailable; holding the batch and retrying"
            );
            tokio::select! {
                () = shutdown.cancelled() => {
                    tracing::warn!("shutting down while PostgreSQL fails; leaving the batch for redelivery");
                    return Ok(Settled::Abandoned);
                }
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    async fn dead_letter(&self, delivery: &Delivery) -> lapin::Result<()> {
        // requeue=false: the queue's dead-letter exchange takes it.
        delivery.acker.reject(BasicRejectOptions { requeue: false }).await?;
        self.count("dead_lettered", 1);
        Ok(())
    }

    fn record(&self, outcome: &LedgerOutcome) {
        self.count("applied", outcome.applied);
        self.count("duplicate", outcome.duplicates);
        self.count("skipped", outcome.skipped);
        if outcome.visits_counted > 0 {
            metrics::counter!(VISITS_TOTAL, "outcome" => "counted").increment(outcome.visits_counted);
        }
        if outcome.visits_skipped > 0 {
            metrics::counter!(VISITS_TOTAL, "outcome" => "skipped").increment(outcome.visits_skipped);
        }
    }

    fn count(&self, outcome: &'static str, n: u64) {
        if n > 0 {
            metrics::counter!(MESSAGES_TOTAL, "queue" => self.queue.clone(), "outcome" => outcome).increment(n);
        }
    }
}

/// Registers the metrics' help texts, so they show in `/metrics` before the
/// first message.
pub fn describe_metrics() {
    metrics::describe_counter!(MESSAGES_TOTAL, "Messages consumed, by queue and outcome.");
    metrics::describe_counter!(VISITS_TOTAL, "Visits in consumed messages, counted or skipped (unknown link).");
    metrics::describe_histogram!(
        BATCH_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from a batch's first delivery until it is settled."
    );
}

/// Every outcome of `queue` at zero and its batch histogram, so `/metrics` and the
/// dashboard have them before the first message.
fn register_queue_metrics(queue: &str) {
    for outcome in ["applied", "duplicate", "skipped", "dead_lettered"] {
        metrics::counter!(MESSAGES_TOTAL, "queue" => queue.to_owned(), "outcome" => outcome).absolute(0);
    }
    for outcome in ["counted", "skipped"] {
        metrics::counter!(VISITS_TOTAL, "outcome" => outcome).absolute(0);
    }
    // A registered histogram renders its (empty) buckets before its first sample.
    let _ = metrics::histogram!(BATCH_DURATION_SECONDS, "queue" => queue.to_owned());
}

/// A delivery as a message the ledger can apply, or why it cannot be one.
fn parse(delivery: &Delivery, limits: &BatchSettings) -> Result<InboxMessage, String> {
    // Before anything reads it: a huge body must cost no parsing.
    if delivery.data.len() > limits.max_message_bytes {
        return Err(format!(
            "a body of {} bytes is over the limit of {}",
            delivery.data.len(),
            limits.max_message_bytes
        ));
    }
    let raw_id = delivery.properties.message_id().as_ref().ok_or("no message_id property")?;
    let message_id =
        Uuid::parse_str(raw_id.as_str()).map_err(|_| format!("message_id `{}` is not a UUID", raw_id.as_str()))?;
    let event_type = delivery.properties.kind().as_ref().map_or("", |kind| kind.as_str());
    let event = Event::parse(event_type, &delivery.data).map_err(|e| e.to_string())?;
    event.check_bounds(limits.max_visits_per_link)?;
    Ok(InboxMessage { message_id, event })
}

/// The span of processing one delivery, named and attributed as OpenTelemetry's
/// messaging conventions say. A root in `tracing`: its parent is the publish span
/// whose context the message's headers carry.
fn process_span(queue: &str, delivery: &Delivery) -> tracing::Span {
    let event_type = delivery.properties.kind().as_ref().map_or("", |kind| kind.as_str());
    let span = tracing::info_span!(
        parent: None,
        "event.process",
        otel.name = %format_args!("process {event_type}"),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = queue,
        messaging.rabbitmq.destination.routing_key = delivery.routing_key.as_str(),
        messaging.message.id = message_id(delivery),
        trace_id = tracing::field::Empty,
    );
    trace_context::continue_message(&span, delivery.properties.headers().as_ref());
    span
}

fn message_id(delivery: &Delivery) -> &str {
    delivery.properties.message_id().as_ref().map_or("", |id| id.as_str())
}

async fn acknowledge(delivery: &Delivery, multiple: bool) -> lapin::Result<()> {
    let acked = delivery.acker.ack(BasicAckOptions { multiple }).await?;
    if !acked {
        // The channel died after the commit: the broker redelivers, the inbox
        // turns the redelivery into a duplicate.
        tracing::warn!("could not acknowledge a committed batch; its redelivery will be skipped as duplicate");
    }
    Ok(())
}

async fn cancel_consumer(channel: &Channel, consumer: &lapin::Consumer) {
    if let Err(error) = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await {
        tracing::debug!(error = %error, "cancelling the consumer");
    }
}

/// Closes the channel; deliveries prefetched but never settled go back to the
/// queue with it.
async fn close_channel(channel: &Channel) {
    if let Err(error) = channel.close(200, "worker shutting down".into()).await {
        tracing::debug!(error = %error, "closing the channel");
    }
}

#[cfg(test)]
mod tests {
    use lapin::BasicProperties;

    use super::*;

    fn delivery(message_id: Option<&str>, kind: Option<&str>, body: &[u8]) -> Delivery {
        let mut delivery = Delivery::mock(1, "events".into(), "link.visited".into(), false, body.to_vec());
        let mut properties = BasicProperties::default();
        if let Some(id) = message_id {
            properties = properties.with_message_id(id.into());
        }
        if let Some(kind) = kind {
            properties = properties.with_type(kind.into());
        }
        delivery.properties = properties;
        delivery
    }

    const LIMITS: BatchSettings = BatchSettings {
        prefetch: 1,
        batch_size: 1,
        batch_timeout: Duration::from_millis(1),
        batch_max_bytes: 1024 * 1024,
        max_message_bytes: 64,
        max_visits_per_link: 10,
    };

    fn parse(delivery: &Delivery) -> Result<InboxMessage, String> {
        super::parse(delivery, &LIMITS)
    }

    #[test]
    fn oversized_bodies_and_inflated_counts_are_refused() {
        let id = "0195f6a6-7b1e-7000-8000-000000000001";
        let big = format!(r#"{{"version":1,"links":[],"padding":"{}"}}"#, "x".repeat(64));
        assert_eq!(
            parse(&delivery(Some(id), Some("link.visited"), big.as_bytes())),
            Err(format!("a body of {} bytes is over the limit of 64", big.len()))
        );
        let inflated = br#"{"version":1,"links":[{"linkId":"0195f6a6-7b1e-7000-8000-000000000002","visits":11,"lastVisitedAt":"2026-01-01T00:00:00Z"}]}"#;
        let limits = BatchSettings { max_message_bytes: 1024, ..LIMITS };
        let refused = super::parse(&delivery(Some(id), Some("link.visited"), inflated), &limits);
        assert!(refused.is_err_and(|e| e.contains("claims 11 visits, over the limit of 10")));
    }

    #[test]
    fn a_delivery_needs_a_uuid_message_id_a_known_type_and_a_valid_body() {
        let id = "0195f6a6-7b1e-7000-8000-000000000001";
        let body = br#"{"version":1,"links":[]}"#;
        let message = parse(&delivery(Some(id), Some("link.visited"), body)).expect("valid");
        assert_eq!(message.message_id.to_string(), id);
        assert_eq!(message.event_type(), "link.visited");

        assert_eq!(parse(&delivery(None, Some("link.visited"), body)), Err("no message_id property".to_owned()));
        assert!(parse(&delivery(Some("42"), Some("link.visited"), body)).is_err_and(|e| e.contains("not a UUID")));
        assert!(parse(&delivery(Some(id), None, body)).is_err_and(|e| e.contains("unknown event type")));
        assert!(parse(&delivery(Some(id), Some("link.deleted"), body)).is_err_and(|e| e.contains("unknown")));
        assert!(parse(&delivery(Some(id), Some("link.visited"), b"{")).is_err_and(|e| e.contains("invalid")));
    }
}
