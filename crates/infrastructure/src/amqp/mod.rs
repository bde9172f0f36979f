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

/// The largest frame proposed to the broker, unless the URL's `frame_max` says
/// otherwise. lapin keeps a read and a write buffer of 32 frames per connection
/// for the connection's life: at RabbitMQ's default of 128 KiB that is 8 MiB
/// resident per connection, and the API's two were 16.8 MB of its 41 MB live
/// heap at the end of a benchmark (heaptrack). At 32 KiB it is 2 MiB; a 1 MiB
/// event then travels in 32 frames instead of 8.
const FRAME_MAX: u32 = 32 * 1024;

/// Connects to RabbitMQ, naming the connection so operators can tell replicas apart
/// in the management UI.
pub async fn connect(url: &Url, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let mut url = url.clone();
    if !url.query_pairs().any(|(key, _)| key == "frame_max") {
        url.query_pairs_mut().append_pair("frame_max", &FRAME_MAX.to_string());
    }
    Connection::connect(url.as_str(), properties).await
}
