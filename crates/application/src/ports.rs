//! Ports: what the use cases need from the outside world. Adapters implement them
//! in `offndat-infrastructure`; tests may implement them in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offndat_domain::{Link, LinkStats, NewVisit, Phrase};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The phrase is already taken by another link. Stores MUST report a clash this
    /// way (from the unique index, never from a prior read), so the caller can retry
    /// with a fresh phrase.
    #[error("the phrase is already taken")]
    PhraseTaken,
    /// The store cannot be reached or timed out.
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Any other failure, including rows that break the domain's invariants.
    #[error("store failure")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Durable storage of links.
#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Inserts `link` and its `link.created` outbox message in one transaction.
    /// Returns `PhraseTaken` if the phrase exists, writing nothing.
    async fn create(&self, link: &Link) -> Result<(), StoreError>;

    /// The link with `phrase`, if any.
    async fn find_by_phrase(&self, phrase: &Phrase) -> Result<Option<Link>, StoreError>;

    /// The link with `phrase`, its visit total and its `recent` newest visits.
    async fn stats_by_phrase(&self, phrase: &Phrase, recent: u32) -> Result<Option<LinkStats>, StoreError>;
}

/// The current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Seeds for the random draws of phrase composition, injected so tests can make
/// them deterministic.
pub trait RandomSource: Send + Sync {
    /// A fresh seed for one composition attempt.
    fn seed(&self) -> u64;
}

/// Where redirects hand their visits. `record` must return at once: it may buffer
/// or drop, but never wait for I/O, so a redirect is never slowed by recording.
pub trait VisitSink: Send + Sync {
    fn record(&self, visit: NewVisit);
}
