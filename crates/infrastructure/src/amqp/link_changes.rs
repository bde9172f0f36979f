//! Every API process listens for `link.changed` and forgets the phrase, so an
//! edit, disable or delete on one replica is seen on all of them within about a
//! second. One exclusive, auto-delete, server-named queue per process is bound to
//! the fanout exchange: it lives exactly as long as the process's connection.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use offndat_application::events::{Event, LINK_CHANGED};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::Topology;
use crate::cache::TwoLevelCache;

/// Where to listen, and the cache to evict from.
pub struct LinkChangeListener {
    pub amqp_url: Url,
    pub topology: Topology,
    pub cache: Arc<TwoLevelCache>,
    pub connection_name: String,
}

/// 1 while this process receives `link.changed`, 0 while it cannot (cached links
/// then live until `OFFNDAT_CACHE_L1_TTL`).
const CONNECTED: &str = "offndat_link_change_listener_connected";

const ERRORS: &str = "offndat_link_change_listener_errors_total";
const APPLIED: &str = "offndat_link_changes_applied_total";

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl LinkChangeListener {
    /// Listens until `stop`, reconnecting with backoff while the broker is away.
    /// Meanwhile L1 entries expire by their TTL, which bounds staleness.
    pub async fn run(self, stop: CancellationToken) {
        metrics::gauge!(CONNECTED).set(0.0);
        // At zero from the start, so dashboards and alerts see them before anything happened.
        metrics::describe_counter!(ERRORS, "Disconnections of the link.changed listener.");
        metrics::counter!(ERRORS).absolute(0);
        metrics::describe_counter!(APPLIED, "link.changed events applied to this process's caches.");
        metrics::counter!(APPLIED).absolute(0);
        let mut delay = BACKOFF_MIN;
        loop {
            match self.session(&stop, &mut delay).await {
                Ok(()) => break,
                Err(error) => {
                    metrics::counter!(ERRORS).increment(1);
                    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64,
                        "link change listener disconnected; cached links expire by OFFNDAT_CACHE_L1_TTL meanwhile");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => break,
            }
            delay = (delay * 2).min(BACKOFF_MAX);
        }
        tracing::info!("link change listener stopped");
    }

    /// One connection: `Ok` only on a clean stop.
    async fn session(&self, stop: &CancellationToken, delay: &mut Duration) -> Result<(), lapin::Error> {
        let connection = super::connect(&self.amqp_url, &self.connection_name).await?;
        let result = self.listen(&connection, stop, delay).await;
        metrics::gauge!(CONNECTED).set(0.0);
        let _ = connection.close(0, "link change listener stopping".into()).await;
        result
    }

    async fn listen(
        &self,
        connection: &lapin::Connection,
        stop: &CancellationToken,
        delay: &mut Duration,
    ) -> Result<(), lapin::Error> {
        self.topology.declare(connection).await?;
        let channel = connection.create_channel().await?;
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let queue = channel.queue_declare("".into(), options, FieldTable::default()).await?;
        channel
            .queue_bind(
                queue.name().clone(),
                self.topology.link_changes_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        // No acks: a lost message costs at most one stale entry until its TTL,
        // and a redelivery would only evict twice.
        let consume = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let mut consumer =
            channel.basic_consume(queue.name().clone(), "link-changes".into(), consume, FieldTable::default()).await?;
        // Changes made while this process was not listening were missed: forget
        // every cached link rather than serve one of them until its TTL.
        self.cache.clear_l1();
        metrics::gauge!(CONNECTED).set(1.0);
        *delay = BACKOFF_MIN;
        tracing::info!(exchange = %self.topology.link_changes_exchange, "listening for link changes");
        loop {
            let delivery = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                next = consumer.next() => next,
            };
            match delivery {
                Some(Ok(delivery)) => self.apply(&delivery.data).await,
                Some(Err(error)) => return Err(error),
                None => return Err(lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed).into()),
            }
        }
    }

    async fn apply(&self, body: &[u8]) {
        match Event::parse(LINK_CHANGED, body) {
            Ok(Event::LinkChanged(change)) => {
                // Redis too: the writer deleted it already, but a load that read
                // the old row just before the commit may have written it back.
                self.cache.forget(&change.phrase).await;
                metrics::counter!(APPLIED).increment(1);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "ignoring an unreadable link.changed message"),
        }
    }
}
