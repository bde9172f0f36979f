//! The exchanges and queues of offndat's events, derived from one namespace, and
//! their idempotent declaration. Both the API (before publishing) and the worker
//! (before consuming) declare them, so no message is unroutable whichever starts
//! first.

use lapin::options::{ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ErrorKind, ExchangeKind};

use offndat_application::events::{LINK_CHANGED, LINK_CREATED, LINK_VISITED};

/// Most messages the dead-letter queue keeps; past it the oldest are dropped.
pub const DEAD_LETTER_MAX_LENGTH: u32 = 100_000;
/// How long a dead letter is kept, in milliseconds (14 days).
pub const DEAD_LETTER_MAX_AGE_MS: u32 = 14 * 24 * 3600 * 1000;

/// The names of every exchange and queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Durable topic exchange events are published to, routed by event type.
    pub exchange: String,
    /// Where rejected (poison) messages go.
    pub dead_letter_exchange: String,
    /// Holds dead letters for inspection.
    pub dead_letter_queue: String,
    /// The worker's queue of `link.visited`.
    pub link_visited_queue: String,
    /// The worker's queue of `link.created`.
    pub link_created_queue: String,
    /// Durable fanout exchange bound to `exchange` for `link.changed`: every API
    /// process binds a queue of its own to it, so each gets every change.
    pub link_changes_exchange: String,
}

impl Topology {
    pub fn new(namespace: &str) -> Self {
        Self {
            exchange: format!("{namespace}.events"),
            dead_letter_exchange: format!("{namespace}.dead-letter"),
            dead_letter_queue: format!("{namespace}.dead-letter"),
            link_visited_queue: format!("{namespace}.link-visited"),
            link_created_queue: format!("{namespace}.link-created"),
            link_changes_exchange: format!("{namespace}.link-changes"),
        }
    }

    /// Consumer queues with the routing key bound to each.
    pub fn consumer_queues(&self) -> [(&str, &'static str); 2] {
        [(self.link_visited_queue.as_str(), LINK_VISITED), (self.link_created_queue.as_str(), LINK_CREATED)]
    }

    /// Every queue, dead letters included.
    pub fn all_queues(&self) -> Vec<String> {
        vec![self.link_visited_queue.clone(), self.link_created_queue.clone(), self.dead_letter_queue.clone()]
    }

    /// Declares everything on a channel of its own; safe to repeat, and safe from
    /// many processes at once.
    pub async fn declare(&self, connection: &Connection) -> lapin::Result<()> {
        let mut channel = connection.create_channel().await?;
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        for exchange in [&self.exchange, &self.dead_letter_exchange] {
            channel
                .exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
                .await?;
        }
        // Bounded in length and age, so a stream of poison messages cannot fill
        // the broker's disk. A queue declared by a release before the bounds has
        // other arguments: the broker refuses the declaration (and closes the
        // channel), so take that queue as it is and say how to bound it.
        let dead_letters = self.dead_letter_queue.as_str();
        if let Err(error) =
            channel.queue_declare(dead_letters.into(), QueueDeclareOptions::durable(), dead_letter_arguments()).await
        {
            if !is_precondition_failed(&error) {
                return Err(error);
            }
            tracing::warn!(
                queue = dead_letters,
                "the dead-letter queue was declared without bounds by an older release: it keeps growing until \
                 deleted when empty (the next start re-creates it bounded) or bounded by a policy (docs/operations.md)"
            );
            channel = connection.create_channel().await?;
            let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
            channel.queue_declare(dead_letters.into(), passive, FieldTable::default()).await?;
        }
        channel
            .queue_bind(
                self.dead_letter_queue.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        for (queue, routing_key) in self.consumer_queues() {
            let mut arguments = FieldTable::default();
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(self.dead_letter_exchange.as_str().into()),
            );
            channel.queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments).await?;
            channel
                .queue_bind(
                    queue.into(),
                    self.exchange.as_str().into(),
                    routing_key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        let fanout = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        channel
            .exchange_declare(
                self.link_changes_exchange.as_str().into(),
                ExchangeKind::Fanout,
                fanout,
                FieldTable::default(),
            )
            .await?;
        // Exchange-to-exchange: the relay publishes every event to one exchange,
        // and `link.changed` is copied to the fanout from there.
        channel
            .exchange_bind(
                self.link_changes_exchange.as_str().into(),
                self.exchange.as_str().into(),
                LINK_CHANGED.into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        if let Err(error) = channel.close(200, "topology declared".into()).await {
            tracing::debug!(error = %error, "closing the declaring channel");
        }
        Ok(())
    }
}

/// The dead-letter queue's bounds: length (dropping the oldest) and age.
pub fn dead_letter_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongUInt(DEAD_LETTER_MAX_LENGTH));
    arguments.insert("x-message-ttl".into(), AMQPValue::LongUInt(DEAD_LETTER_MAX_AGE_MS));
    arguments
}

fn is_precondition_failed(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e) if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED))
}
