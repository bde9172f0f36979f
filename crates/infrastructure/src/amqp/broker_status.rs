//! Whether the worker's consumers are connected to the broker, as readiness and
//! health checks see it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use lapin::Connection;

/// Whether each consumer is connected to the broker, for readiness checks.
#[derive(Clone, Default)]
pub struct BrokerStatus {
    queues: Arc<Mutex<BTreeMap<String, QueueStatus>>>,
}

/// A consumer's connection (kept for round-trip health checks), or why it has none.
pub(crate) enum QueueStatus {
    Connected(Arc<Connection>),
    Disconnected(String),
}

/// One consumer's state as health checks report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerHealth {
    /// Consuming.
    Up,
    /// Not connected, with the last error.
    Down(String),
}

impl BrokerStatus {
    pub(crate) fn set(&self, queue: &str, status: QueueStatus) {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner).insert(queue.to_owned(), status);
    }

    /// Every consumer's health, by queue name.
    pub fn consumers(&self) -> BTreeMap<String, ConsumerHealth> {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues
            .iter()
            .map(|(queue, status)| {
                let health = match status {
                    // The connection may have died a moment before its consumer noticed.
                    QueueStatus::Connected(c) if c.status().connected() => ConsumerHealth::Up,
                    QueueStatus::Connected(_) => ConsumerHealth::Down("connection lost".to_owned()),
                    QueueStatus::Disconnected(error) => ConsumerHealth::Down(error.clone()),
                };
                (queue.clone(), health)
            })
            .collect()
    }

    /// Whether there is at least one consumer and every consumer is connected.
    pub fn is_up(&self) -> bool {
        let consumers = self.consumers();
        !consumers.is_empty() && consumers.values().all(|h| *h == ConsumerHealth::Up)
    }

    /// A live connection, for a round-trip check.
    pub fn connection(&self) -> Option<Arc<Connection>> {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.values().find_map(|status| match status {
            QueueStatus::Connected(c) if c.status().connected() => Some(c.clone()),
            _ => None,
        })
    }
}
