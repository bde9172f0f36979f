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
use crate::visit_tally::{VISIT_PARTITIONS, visit_partition};

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
/// everything the events change, in one transaction per call (a batch, or one
/// lane of it).
#[async_trait]
pub trait EventLedger: Send + Sync {
    /// Records the ids of `messages` and applies the ones not applied before, all
    /// or nothing. Visits of links that do not exist MUST be skipped (and
    /// counted in the outcome), never fail the batch.
    async fn apply(&self, messages: &[&InboxMessage]) -> Result<LedgerOutcome, LedgerError>;

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
    lanes: usize,
}

/// What became of one lane's share of a batch.
#[derive(Debug)]
pub struct LaneResult {
    /// The lane's messages: positions in the slice handed to `execute`, in order.
    pub messages: Vec<usize>,
    pub result: Result<LedgerOutcome, LedgerError>,
}

impl ApplyEvents {
    /// Applies each batch in one transaction.
    pub fn new(ledger: Arc<dyn EventLedger>) -> Self {
        Self { ledger, lanes: 1 }
    }

    /// Applies each batch in up to `lanes` concurrent transactions (see
    /// `execute`).
    pub fn with_lanes(ledger: Arc<dyn EventLedger>, lanes: usize) -> Self {
        Self { ledger, lanes: lanes.clamp(1, VISIT_PARTITIONS) }
    }

    /// Applies `messages` exactly once, in one transaction per lane, and says
    /// what became of each lane's messages (each lane all or nothing).
    ///
    /// Messages are grouped by the partition of their links (`visit_partition`
    /// of the first; the API cuts the events of large flushes so that all share
    /// it) modulo the
    /// lanes, and the groups are applied concurrently: they touch different
    /// links, so their transactions do not wait for each other, except on the
    /// few service-wide rollup rows at the end. Messages of an earlier release
    /// mixing partitions are as correct, only slower: rows are locked in one
    /// order everywhere.
    ///
    /// A "permanent" failure from a store that no longer answers is a dying
    /// connection in disguise: it is reported as transient, so the lane's
    /// messages are retried rather than dead-lettered.
    pub async fn execute(&self, messages: &[&InboxMessage]) -> Vec<LaneResult> {
        let lanes = self.groups(messages);
        let results = futures_util::future::join_all(lanes.iter().map(|positions| {
            let group: Vec<&InboxMessage> = positions.iter().map(|&p| messages[p]).collect();
            async move { self.ledger.apply(&group).await }
        }))
        .await;
        let refused = results.iter().any(|r| matches!(r, Err(LedgerError::Permanent(_))));
        let answering = !refused || self.ledger.ping().await.is_ok();
        lanes
            .into_iter()
            .zip(results)
            .map(|(messages, result)| LaneResult {
                messages,
                result: match result {
                    Err(LedgerError::Permanent(error)) if !answering => Err(LedgerError::Transient(error)),
                    other => other,
                },
            })
            .collect()
    }

    /// Positions of `messages` by lane, in order within each; empty lanes left
    /// out. Events without links go to the first lane.
    fn groups(&self, messages: &[&InboxMessage]) -> Vec<Vec<usize>> {
        let mut lanes: Vec<Vec<usize>> = vec![Vec::new(); self.lanes];
        for (position, message) in messages.iter().enumerate() {
            let first_link = match &message.event {
                Event::LinkVisited(event) => event.links.first().map(|l| l.link_id),
                Event::LinkVisitedV1(event) => event.links.first().map(|l| l.link_id),
                Event::LinkCreated(event) => Some(event.link_id),
                Event::LinkChanged(event) => Some(event.link_id),
            };
            let lane = first_link.map_or(0, |id| visit_partition(&id) % self.lanes);
            lanes[lane].push(position);
        }
        lanes.retain(|lane| !lane.is_empty());
        lanes
    }
}

impl LedgerOutcome {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &LedgerOutcome) {
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.skipped += other.skipped;
        self.visits_counted += other.visits_counted;
        self.visits_skipped += other.visits_skipped;
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

    /// Which lanes fail, and how.
    type Refusal = fn(&[&InboxMessage]) -> Option<LedgerError>;

    /// Records each transaction's messages; every call waits at a barrier of
    /// `concurrent`, so calls made one after another would never return. `fail`
    /// picks the calls that fail; `answers` is what `ping` says.
    struct Lanes {
        calls: std::sync::Mutex<Vec<Vec<Uuid>>>,
        barrier: tokio::sync::Barrier,
        fail: Option<Refusal>,
        answers: AtomicBool,
    }

    impl Lanes {
        fn new(concurrent: usize) -> Arc<Self> {
            Self::failing(concurrent, None)
        }

        fn failing(concurrent: usize, fail: Option<Refusal>) -> Arc<Self> {
            Arc::new(Self {
                calls: Default::default(),
                barrier: tokio::sync::Barrier::new(concurrent),
                fail,
                answers: AtomicBool::new(true),
            })
        }
    }

    #[async_trait]
    impl EventLedger for Lanes {
        async fn apply(&self, messages: &[&InboxMessage]) -> Result<LedgerOutcome, LedgerError> {
            self.calls.lock().expect("calls").push(messages.iter().map(|m| m.message_id).collect());
            self.barrier.wait().await;
            if let Some(error) = self.fail.and_then(|fail| fail(messages)) {
                return Err(error);
            }
            Ok(LedgerOutcome { applied: messages.len() as u64, visits_counted: 10, ..Default::default() })
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

    /// A `link.visited` message over links whose last byte is `last_byte`.
    fn visited(n: u128, last_byte: u8) -> InboxMessage {
        use crate::events::{LinkTally, LinkVisitedV2};
        let link = |i: u128| LinkTally {
            link_id: Uuid::from_u128(((n * 100 + i) << 8) | u128::from(last_byte)),
            hours: vec![],
            recent: vec![],
        };
        InboxMessage {
            message_id: Uuid::from_u128(n),
            event: Event::LinkVisited(LinkVisitedV2 { version: 2, links: vec![link(1), link(2)], orphans: vec![] }),
        }
    }

    const DEADLINE: Duration = Duration::from_secs(10);

    async fn execute(apply: &ApplyEvents, messages: &[InboxMessage]) -> Vec<LaneResult> {
        let refs: Vec<&InboxMessage> = messages.iter().collect();
        tokio::time::timeout(DEADLINE, apply.execute(&refs))
            .await
            .expect("the lanes ran at the same time, or the barrier would hold them")
    }

    #[tokio::test]
    async fn a_batch_is_applied_in_one_concurrent_transaction_per_lane() {
        let ledger = Lanes::new(2);
        let apply = ApplyEvents::with_lanes(ledger.clone(), 2);
        // Partitions 0, 1, 2, 3, 4: lanes 0, 1, 0, 1, 0.
        let messages: Vec<InboxMessage> = (0..5).map(|n| visited(n, n as u8)).collect();
        let lanes = execute(&apply, &messages).await;
        let positions: Vec<Vec<usize>> = lanes.iter().map(|l| l.messages.clone()).collect();
        assert_eq!(positions, [vec![0, 2, 4], vec![1, 3]], "by lane, in their order");
        let applied: Vec<u64> = lanes.iter().map(|l| l.result.as_ref().expect("committed").applied).collect();
        assert_eq!(applied, [3, 2]);
        let mut calls = ledger.calls.lock().expect("calls").clone();
        calls.sort();
        let ids = |ns: &[u128]| ns.iter().map(|n| Uuid::from_u128(*n)).collect::<Vec<_>>();
        assert_eq!(calls, [ids(&[0, 2, 4]), ids(&[1, 3])], "one transaction per lane");
    }

    #[tokio::test]
    async fn one_lane_or_one_partition_is_one_transaction() {
        let messages: Vec<InboxMessage> = (0..4).map(|n| visited(n, n as u8)).collect();
        let results = execute(&ApplyEvents::new(Lanes::new(1)), &messages).await;
        assert_eq!(results.iter().map(|l| l.messages.clone()).collect::<Vec<_>>(), [vec![0, 1, 2, 3]], "one lane");

        let same_partition: Vec<InboxMessage> = (0..4).map(|n| visited(n, 7)).collect();
        let results = execute(&ApplyEvents::with_lanes(Lanes::new(1), 4), &same_partition).await;
        assert_eq!(results.iter().map(|l| l.messages.clone()).collect::<Vec<_>>(), [vec![0, 1, 2, 3]], "one partition");
    }

    #[tokio::test]
    async fn each_lane_succeeds_or_fails_alone_and_a_refusal_stays_permanent_while_the_store_answers() {
        let refuse_lane_one = |messages: &[&InboxMessage]| {
            (messages[0].message_id == Uuid::from_u128(1)).then(|| LedgerError::Permanent("refused".into()))
        };
        let ledger = Lanes::failing(2, Some(refuse_lane_one));
        let messages: Vec<InboxMessage> = (0..4).map(|n| visited(n, n as u8)).collect();
        let lanes = execute(&ApplyEvents::with_lanes(ledger, 2), &messages).await;
        assert_eq!(lanes[0].messages, [0, 2]);
        assert_eq!(lanes[0].result.as_ref().expect("lane 0 committed").applied, 2);
        assert_eq!(lanes[1].messages, [1, 3]);
        let error = lanes[1].result.as_ref().expect_err("lane 1 refused");
        assert!(!error.is_transient(), "the store answers: retrying as is would be refused again");
    }

    #[tokio::test]
    async fn a_refusal_from_a_store_that_no_longer_answers_is_transient() {
        let ledger = Lanes::failing(1, Some(|_| Some(LedgerError::Permanent("refused".into()))));
        let apply = ApplyEvents::new(ledger.clone());
        let message = visited(1, 0);
        let error = |lanes: Vec<LaneResult>| lanes.into_iter().next().expect("a lane").result.expect_err("fails");
        assert!(!error(apply.execute(&[&message]).await).is_transient(), "a store that answers refused it");
        ledger.answers.store(false, Ordering::Relaxed);
        assert!(error(apply.execute(&[&message]).await).is_transient(), "the connection died");
    }
}
