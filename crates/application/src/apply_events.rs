//! The worker's use cases: apply a batch of events exactly once, prune what is
//! no longer needed (applied message ids, raw visits past the log's keep), and
//! compact closed days' rollups.
//! The consumer only decodes deliveries, calls these and acknowledges.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::events::Event;
use crate::ports::Clock;

/// A message about to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    /// The broker's message id: the de-duplication key.
    pub message_id: Uuid,
    pub event: Event,
}

impl InboxMessage {
    /// The event type recorded in the inbox.
    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }
}

/// What applying one batch did. Every message of the batch is exactly one of
/// `applied`, `duplicates` or `skipped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerOutcome {
    /// New messages with an effect (or nothing to do, like an empty visit list).
    pub applied: u64,
    /// Messages already applied, or repeated within the batch: no effect.
    pub duplicates: u64,
    /// New messages whose every link is unknown (deleted): recorded, no effect.
    pub skipped: u64,
    /// Visits added to totals and rollups.
    pub visits_counted: u64,
    /// Visits of links that do not exist, not counted.
    pub visits_skipped: u64,
}

/// Why a batch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The store is unreachable, or the transaction lost a race: the same batch is
    /// worth retrying as is.
    #[error("the event store is unavailable: {0}")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else: retrying the same batch would fail the same way.
    #[error("the event store refused the batch: {0}")]
    Permanent(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl LedgerError {
    /// Whether retrying the same work later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// Where the worker's effects are kept: the inbox of applied message ids and
/// everything the events change, in one transaction per batch.
#[async_trait]
pub trait EventLedger: Send + Sync {
    /// Records the ids of `messages` and applies the ones not applied before, all
    /// or nothing. Visits of links that do not exist MUST be skipped (and
    /// counted in the outcome), never fail the batch.
    async fn apply(&self, messages: &[InboxMessage]) -> Result<LedgerOutcome, LedgerError>;

    /// One round trip: whether the store answers at all.
    async fn ping(&self) -> Result<(), LedgerError>;

    /// Forgets applied message ids older than `older_than`; returns how many.
    async fn prune_inbox(&self, older_than: Duration) -> Result<u64, LedgerError>;

    /// Deletes raw visits older than `older_than`, or all of them for `None`;
    /// totals and rollups stay. Returns how many went.
    async fn prune_visit_log(&self, older_than: Option<Duration>) -> Result<u64, LedgerError>;

    /// Folds each link's hourly rollups of the days closed by `now` (UTC) that
    /// are not yet in its daily rollups into them; returns how many links were
    /// compacted. Visits applied meanwhile, late ones for a closed day included,
    /// MUST be neither lost nor counted twice.
    async fn compact_daily_rollups(&self, now: DateTime<Utc>) -> Result<u64, LedgerError>;
}

/// The apply-events use case.
#[derive(Clone)]
pub struct ApplyEvents {
    ledger: Arc<dyn EventLedger>,
}

impl ApplyEvents {
    pub fn new(ledger: Arc<dyn EventLedger>) -> Self {
        Self { ledger }
    }

    /// Applies `messages` exactly once. A "permanent" failure from a store that no
    /// longer answers is a dying connection in disguise: it is reported as
    /// transient, so the batch is retried rather than dead-lettered.
    pub async fn execute(&self, messages: &[InboxMessage]) -> Result<LedgerOutcome, LedgerError> {
        match self.ledger.apply(messages).await {
            Err(LedgerError::Permanent(error)) if self.ledger.ping().await.is_err() => {
                Err(LedgerError::Transient(error))
            }
            other => other,
        }
    }
}

/// What the worker keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Applied message ids are remembered this long (redeliveries within it are
    /// recognised).
    pub inbox: Duration,
    /// Raw visits older than this go; `None` keeps no raw visit (the `recent` log).
    pub visit_log: Option<Duration>,
}

/// The prune use case: run now and then by every worker replica (they share the
/// work).
#[derive(Clone)]
pub struct PruneRecords {
    ledger: Arc<dyn EventLedger>,
    retention: Retention,
}

impl PruneRecords {
    pub fn new(ledger: Arc<dyn EventLedger>, retention: Retention) -> Self {
        Self { ledger, retention }
    }

    /// Forgets applied message ids past the retention.
    pub async fn inbox(&self) -> Result<u64, LedgerError> {
        self.ledger.prune_inbox(self.retention.inbox).await
    }

    /// Deletes raw visits the visit log no longer keeps.
    pub async fn visit_log(&self) -> Result<u64, LedgerError> {
        self.ledger.prune_visit_log(self.retention.visit_log).await
    }
}

/// The compaction use case: daily rollups folded from the hourly ones once a
/// day has closed, run now and then by every worker replica (they share the
/// work). Until then a day's stats are read from its hours.
#[derive(Clone)]
pub struct CompactRollups {
    ledger: Arc<dyn EventLedger>,
    clock: Arc<dyn Clock>,
}

impl CompactRollups {
    pub fn new(ledger: Arc<dyn EventLedger>, clock: Arc<dyn Clock>) -> Self {
        Self { ledger, clock }
    }

    /// Compacts every day closed by now; returns how many links were compacted.
    pub async fn execute(&self) -> Result<u64, LedgerError> {
        self.ledger.compact_daily_rollups(self.clock.now()).await
    }

    /// Compacts today too, as if it had closed (for a rollback to a release that
    /// reads only daily rows; visits applied afterwards leave days pending again).
    pub async fn through_today(&self) -> Result<u64, LedgerError> {
        self.ledger.compact_daily_rollups(self.clock.now() + chrono::TimeDelta::days(1)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Failing {
        answers: AtomicBool,
    }

    #[async_trait]
    impl EventLedger for Failing {
        async fn apply(&self, _: &[InboxMessage]) -> Result<LedgerOutcome, LedgerError> {
            Err(LedgerError::Permanent("refused".into()))
        }
        async fn ping(&self) -> Result<(), LedgerError> {
            if self.answers.load(Ordering::Relaxed) { Ok(()) } else { Err(LedgerError::Transient("gone".into())) }
        }
        async fn prune_inbox(&self, _: Duration) -> Result<u64, LedgerError> {
            Ok(0)
        }
        async fn prune_visit_log(&self, _: Option<Duration>) -> Result<u64, LedgerError> {
            Ok(0)
        }
        async fn compact_daily_rollups(&self, _: DateTime<Utc>) -> Result<u64, LedgerError> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn a_refusal_from_a_store_that_no_longer_answers_is_transient() {
        let ledger = Arc::new(Failing { answers: AtomicBool::new(true) });
        let apply = ApplyEvents::new(ledger.clone());
        assert!(!apply.execute(&[]).await.expect_err("fails").is_transient(), "a store that answers refused it");
        ledger.answers.store(false, Ordering::Relaxed);
        assert!(apply.execute(&[]).await.expect_err("fails").is_transient(), "the connection died");
    }
}
