//! A RabbitMQ namespace per test, deleted when the test ends.

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use offndat_infrastructure::amqp::Topology;

/// The RabbitMQ tests use.
pub fn amqp_url() -> String {
    std::env::var("OFFNDAT_TEST_AMQP").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A unique namespace (`test-<uuid>`) whose exchanges and queues are deleted on `Drop`.
pub struct AmqpNamespace {
    pub name: String,
}

impl Default for AmqpNamespace {
    fn default() -> Self {
        Self::new()
    }
}

impl AmqpNamespace {
    pub fn new() -> Self {
        Self { name: format!("test-{}", uuid::Uuid::new_v4().simple()) }
    }

    /// The names the services derive from this namespace.
    pub fn topology(&self) -> Topology {
        Topology::new(&self.name)
    }
}

impl Drop for AmqpNamespace {
    fn drop(&mut self) {
        let topology = self.topology();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let Ok(connection) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else { return };
                for queue in topology.all_queues() {
                    let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
                }
                for exchange in [&topology.exchange, &topology.dead_letter_exchange, &topology.link_changes_exchange] {
                    let _ = channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await;
                }
                let _ = connection.close(0, "test done".into()).await;
            });
        })
        .join();
    }
}
