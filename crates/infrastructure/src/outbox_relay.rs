//! The outbox relay: publishes committed outbox rows to RabbitMQ, at least once,
//! from every API process at the same time without stepping on each other.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so replicas share the work;
//! published with publisher confirms and persistent delivery; and marked published
//! only after the broker confirmed them, in the claiming transaction. A crash
//! between confirm and commit republishes, which the worker's inbox absorbs. The
//! relay wakes on `LISTEN/NOTIFY` (registered before it reads, so no wake-up is
//! lost) with a slow poll as a fallback, and rides out broker and database outages
//! by reconnecting with capped exponential backoff: rows simply wait.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use crate::amqp::{self, BrokerStatus, QueueStatus, Topology};
use crate::postgres::BulkConnection;
use crate::trace_context;

/// The channel outbox inserts notify (see the migrations).
pub const OUTBOX_CHANNEL: &str = "offndat_outbox";

/// How often published rows older than the retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Most rows one prune statement deletes, to keep its locks short.
const PRUNE_CHUNK: i64 = 5_000;
/// Longest the final drain at shutdown keeps publishing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub amqp_url: Url,
    pub topology: Topology,
    pub batch_size: u32,
    pub poll_interval: Duration,
    pub retention: Duration,
    /// Connection name shown in RabbitMQ's management UI.
    pub connection_name: String,
}

/// Why a relay session ended early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the broker refused (nacked) message {0}")]
    Nacked(uuid::Uuid),
}

/// The relay.
pub struct OutboxRelay {
    pool: PgPool,
    settings: RelaySettings,
    status: BrokerStatus,
}

/// The name the relay reports its broker connection under in health checks.
pub const RELAY_STATUS_NAME: &str = "outbox-relay";

/// Registers the relay's metrics at zero, so rates and the "relay failing" alert
/// have a series before the first event.
fn describe_metrics() {
    metrics::describe_counter!("offndat_outbox_published_total", "Outbox rows published to RabbitMQ and confirmed.");
    metrics::counter!("offndat_outbox_published_total").absolute(0);
    metrics::describe_counter!("offndat_outbox_relay_errors_total", "Relay failures; it retries with backoff.");
    metrics::counter!("offndat_outbox_relay_errors_total").absolute(0);
    metrics::describe_gauge!("offndat_outbox_pending", "Unpublished outbox rows in the database.");
    metrics::gauge!("offndat_outbox_pending").increment(0.0);
}

impl OutboxRelay {
    pub fn new(pool: PgPool, settings: RelaySettings) -> Self {
        let status = BrokerStatus::default();
        status.set(RELAY_STATUS_NAME, QueueStatus::Disconnected("not connected yet".to_owned()));
        describe_metrics();
        Self { pool, settings, status }
    }

    /// The relay's broker connection state, for health checks.
    pub fn status(&self) -> BrokerStatus {
        self.status.clone()
    }

    /// Relays until `stop` is cancelled, then publishes what is pending (for at most
    /// a few seconds) and returns.
    pub async fn run(self, stop: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        let mut last_prune = Instant::now();
        loop {
            match self.session(&stop, &mut delay, &mut last_prune).await {
                Ok(()) => break,
                Err(error) => {
                    self.status.set(RELAY_STATUS_NAME, QueueStatus::Disconnected(error.to_string()));
                    metrics::counter!("offndat_outbox_relay_errors_total").increment(1);
                    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "outbox relay interrupted; rows wait");
                    if stop.is_cancelled() {
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => break,
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        tracing::info!("outbox relay stopped");
    }

    /// One connection's worth of relaying: returns `Ok` only on a clean stop.
    async fn session(
        &self,
        stop: &CancellationToken,
        delay: &mut Duration,
        last_prune: &mut Instant,
    ) -> Result<(), RelayError> {
        // Listen before the first read, so rows committed meanwhile wake us.
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        let connection = Arc::new(amqp::connect(&self.settings.amqp_url, &self.settings.connection_name).await?);
        let result = self.relay(&connection, &mut listener, stop, delay, last_prune).await;
        let _ = connection.close(0, "outbox relay stopping".into()).await;
        result
    }

    async fn relay(
        &self,
        connection: &Arc<Connection>,
        listener: &mut PgListener,
        stop: &CancellationToken,
        delay: &mut Duration,
        last_prune: &mut Instant,
    ) -> Result<(), RelayError> {
        self.settings.topology.declare(connection).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        self.status.set(RELAY_STATUS_NAME, QueueStatus::Connected(connection.clone()));
        tracing::info!(exchange = %self.settings.topology.exchange, "outbox relay connected");
        *delay = Duration::from_millis(100);

        let mut draining_since: Option<Instant> = None;
        loop {
            let published = self.publish_batch(&channel).await?;
            if published == self.settings.batch_size as usize {
                if draining_since.is_some_and(|since| since.elapsed() > DRAIN_TIMEOUT) {
                    tracing::warn!("outbox not empty at shutdown; the next relay to run publishes the rest");
                    return Ok(());
                }
                continue;
            }
            if draining_since.is_some() {
                return Ok(());
            }
            self.update_pending_gauge().await;
            if last_prune.elapsed() >= PRUNE_EVERY {
                self.prune().await?;
                *last_prune = Instant::now();
            }
            tokio::select! {
                notification = listener.recv() => { notification?; }
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                () = stop.cancelled() => { draining_since = Some(Instant::now()); }
            }
        }
    }

    /// Claims up to a batch of the oldest unpublished rows, publishes them, waits
    /// for every confirm, then marks them published. Returns how many.
    async fn publish_batch(&self, channel: &Channel) -> Result<usize, RelayError> {
        let mut conn = BulkConnection::acquire(&self.pool).await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        // The payload as text, sent as is: decoding it into a JSON tree only to
        // serialise it again cost an allocation per value of every event. Visit
        // events are stored as text already (`body`), the others as `jsonb`.
        let rows = sqlx::query!(
            r#"SELECT id, event_type, COALESCE(body, payload::text) AS "payload!", headers, created_at FROM outbox
             WHERE published_at IS NULL
             ORDER BY created_at, id
             LIMIT $1
             FOR UPDATE SKIP LOCKED"#,
            i64::from(self.settings.batch_size)
        )
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let mut confirms = Vec::with_capacity(rows.len());
        for row in &rows {
            let span = publish_span(&self.settings.topology.exchange, &row.event_type, row.id);
            trace_context::continue_stored(&span, &row.headers);
            let properties = BasicProperties::default()
                .with_message_id(row.id.to_string().into())
                .with_type(row.event_type.as_str().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_timestamp(u64::try_from(row.created_at.timestamp()).unwrap_or_default())
                .with_app_id("offndat".into())
                .with_headers(trace_context::message_headers(&row.headers, &span));
            let confirm = channel
                .basic_publish(
                    self.settings.topology.exchange.as_str().into(),
                    row.event_type.as_str().into(),
                    BasicPublishOptions::default(),
                    row.payload.as_bytes(),
                    properties,
                )
                .instrument(span.clone())
                .await?;
            confirms.push((row.id, confirm, span));
        }
        // Each publish span ends when its confirm arrives: awaiting it inside the
        // span makes that the span's last exit.
        for (id, confirm, span) in confirms {
            if let Confirmation::Nack(_) = confirm.instrument(span.clone()).await? {
                span.record("otel.status_code", "error");
                return Err(RelayError::Nacked(id));
            }
        }
        let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
        sqlx::query!("UPDATE outbox SET published_at = now() WHERE id = ANY($1)", &ids).execute(&mut *tx).await?;
        tx.commit().await?;
        metrics::counter!("offndat_outbox_published_total").increment(ids.len() as u64);
        tracing::debug!(outbox.published = ids.len(), "outbox rows published");
        Ok(ids.len())
    }

    async fn update_pending_gauge(&self) {
        if let Ok(pending) = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM outbox WHERE published_at IS NULL"#)
            .fetch_one(&self.pool)
            .await
        {
            metrics::gauge!("offndat_outbox_pending").set(pending as f64);
        }
    }

    /// Deletes rows published longer ago than the retention, in chunks, and
    /// idempotency keys past their 24 hours.
    async fn prune(&self) -> Result<(), RelayError> {
        let cutoff = Utc::now() - self.settings.retention;
        loop {
            let deleted = sqlx::query!(
                "DELETE FROM outbox WHERE id IN (
                     SELECT id FROM outbox WHERE published_at < $1 ORDER BY published_at LIMIT $2
                 )",
                cutoff,
                PRUNE_CHUNK
            )
            .execute(&self.pool)
            .await?
            .rows_affected();
            if deleted < PRUNE_CHUNK as u64 {
                break;
            }
        }
        // Idempotency keys are answered for 24 hours; older ones only take room.
        sqlx::query!("DELETE FROM idempotency_keys WHERE created_at < now() - interval '25 hours'")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The span of publishing one outbox row, named and attributed as OpenTelemetry's
/// messaging conventions say. A root in `tracing`: its parent is the request that
/// wrote the row, set from the row's headers.
fn publish_span(exchange: &str, event_type: &str, id: uuid::Uuid) -> tracing::Span {
    tracing::info_span!(
        parent: None,
        "outbox.publish",
        otel.name = %format_args!("publish {event_type}"),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = exchange,
        messaging.rabbitmq.destination.routing_key = event_type,
        messaging.message.id = %id,
        trace_id = tracing::field::Empty,
    )
}
