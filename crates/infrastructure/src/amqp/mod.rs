//! RabbitMQ: connections, the topology both binaries declare, and message
//! properties.

mod broker_status;
pub mod consumer;
mod link_changes;
mod topology;

pub(crate) use broker_status::QueueStatus;
pub use broker_status::{BrokerStatus, ConsumerHealth};
pub use consumer::{BatchSettings, EventConsumer};
pub use link_changes::LinkChangeListener;
pub use topology::{DEAD_LETTER_MAX_AGE_MS, DEAD_LETTER_MAX_LENGTH, Topology, dead_letter_arguments};

use lapin::{Connection, ConnectionProperties};
use url::Url;

/// Connects to RabbitMQ, naming the connection so operators can tell replicas apart
/// in the management UI.
pub async fn connect(url: &Url, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url.as_str(), properties).await
}
