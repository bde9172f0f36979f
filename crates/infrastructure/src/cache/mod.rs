//! The two-level redirect cache: L1 in this process (moka), L2 in Redis, then
//! PostgreSQL. A miss fills the levels above it; concurrent misses for one phrase
//! make one load; unknown phrases are remembered briefly in both levels.

mod l1;
mod l2;
mod l2_value;
mod single_flight;
mod stats;

use std::sync::Arc;

use async_trait::async_trait;
use metrics::Counter;
use offndat_application::ports::{LinkResolver, LinkStore, StoreError};
use offndat_domain::Phrase;

pub use l1::{Answer, L1, L1Settings};
pub use l2::{L2, L2Lookup, L2Settings};
pub use l2_value::Rejection;
pub use single_flight::SingleFlight;
pub use stats::CachedVisitStats;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    L2,
    Db,
}

/// A load failure, shareable between the callers of one flight.
#[derive(Debug, Clone)]
struct LoadError {
    unavailable: bool,
    message: String,
}

impl From<LoadError> for StoreError {
    fn from(error: LoadError) -> Self {
        if error.unavailable {
            StoreError::Unavailable(error.message.into())
        } else {
            StoreError::Other(error.message.into())
        }
    }
}

type LoadResult = Result<(Answer, Source), LoadError>;

/// `offndat_redirect_lookups_total{source}`, registered once so the hot path only
/// bumps an atomic.
struct Lookups {
    l1: Counter,
    l2: Counter,
    db: Counter,
    not_found: Counter,
}

impl Lookups {
    fn new() -> Self {
        let counter = |source: &'static str| metrics::counter!("offndat_redirect_lookups_total", "source" => source);
        Self { l1: counter("l1"), l2: counter("l2"), db: counter("db"), not_found: counter("not_found") }
    }
}

/// L1 → L2 → PostgreSQL, each level optional.
pub struct TwoLevelCache {
    l1: Option<L1>,
    l2: Option<Arc<L2>>,
    store: Arc<dyn LinkStore>,
    flights: SingleFlight<Arc<str>, LoadResult>,
    lookups: Lookups,
}

impl TwoLevelCache {
    pub fn new(l1: Option<L1>, l2: Option<Arc<L2>>, store: Arc<dyn LinkStore>) -> Self {
        Self { l1, l2, store, flights: SingleFlight::default(), lookups: Lookups::new() }
    }

    /// The Redis client, for health checks.
    pub fn l2(&self) -> Option<&Arc<L2>> {
        self.l2.as_ref()
    }

    /// L2, then PostgreSQL; fills L2 (in the background) and L1.
    async fn load(&self, phrase: &Arc<str>) -> LoadResult {
        if let Some(l2) = &self.l2 {
            let answer = match l2.get(phrase).await {
                L2Lookup::Hit(target) => Some(Some(target)),
                L2Lookup::Absent => Some(None),
                L2Lookup::Miss | L2Lookup::Garbage(_) | L2Lookup::Unavailable => None,
            };
            if let Some(answer) = answer {
                self.fill_l1(phrase, &answer);
                return Ok((answer, Source::L2));
            }
        }
        let valid = Phrase::parse(phrase).map_err(|e| LoadError { unavailable: false, message: e.to_string() })?;
        let answer = self
            .store
            .redirect_target(&valid)
            .await
            .map_err(|e| LoadError { unavailable: matches!(e, StoreError::Unavailable(_)), message: e.to_string() })?;
        if let Some(l2) = &self.l2 {
            // Off the request's path: a slow Redis must not delay the redirect.
            let (l2, phrase, answer) = (l2.clone(), phrase.clone(), answer.clone());
            tokio::spawn(async move {
                match answer {
                    Some(target) => l2.set(&phrase, &target).await,
                    None => l2.set_absent(&phrase).await,
                }
            });
        }
        self.fill_l1(phrase, &answer);
        Ok((answer, Source::Db))
    }

    /// Forgets every phrase this process cached: after missing `link.changed`
    /// events (the broker connection was lost), nothing cached can be trusted.
    pub fn clear_l1(&self) {
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
    }

    /// Forgets `phrase` in L1 and in Redis.
    pub async fn forget(&self, phrase: &str) {
        self.invalidate(phrase);
        if let Some(l2) = &self.l2 {
            l2.delete(phrase).await;
        }
    }

    fn fill_l1(&self, phrase: &Arc<str>, answer: &Answer) {
        if let Some(l1) = &self.l1 {
            l1.insert(phrase.clone(), answer.clone());
        }
    }
}

#[async_trait]
impl LinkResolver for TwoLevelCache {
    fn cached(&self, phrase: &str) -> Option<Answer> {
        let answer = self.l1.as_ref()?.get(phrase)?;
        if answer.is_some() {
            self.lookups.l1.increment(1)
        } else {
            self.lookups.not_found.increment(1)
        }
        Some(answer)
    }

    async fn resolve(&self, phrase: &str) -> Result<Answer, StoreError> {
        let key: Arc<str> = phrase.into();
        let (result, _) = self.flights.run(key.clone(), || self.load(&key)).await;
        let (answer, source) = result?;
        let counter = match (&answer, source) {
            (None, _) => &self.lookups.not_found,
            (Some(_), Source::L2) => &self.lookups.l2,
            (Some(_), Source::Db) => &self.lookups.db,
        };
        counter.increment(1);
        Ok(answer)
    }

    fn invalidate(&self, phrase: &str) {
        if let Some(l1) = &self.l1 {
            l1.invalidate(phrase);
        }
    }

    async fn evict(&self, phrase: &str) {
        self.forget(phrase).await;
    }
}
