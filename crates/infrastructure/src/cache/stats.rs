//! A short-lived cache in front of the rollup reads. Counts change once per
//! flush interval at most, so answering a stats page or a dashboard poll from a
//! copy a second or two old loses nothing, and a popular link's stats cost one
//! pair of queries per TTL instead of one per request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offndat_application::ports::{RollupRows, StoreError, VisitStatsStore};
use offndat_domain::stats::StatsRange;
use uuid::Uuid;

use super::SingleFlight;

/// Which rollups over which range; bots are filtered after, so not part of it.
type Key = (Option<Uuid>, DateTime<Utc>, DateTime<Utc>, bool);

/// Most answers kept: each is a few hundred rows at most.
const MAX_ENTRIES: u64 = 10_000;

/// A load's result, shared by the callers of one flight.
type Loaded = Result<Arc<RollupRows>, Arc<StoreError>>;

/// `VisitStatsStore` with a TTL cache in front; concurrent misses of one key
/// (a popular page when its entry expires) make one load.
pub struct CachedVisitStats {
    store: Arc<dyn VisitStatsStore>,
    cache: moka::sync::Cache<Key, Arc<RollupRows>>,
    flights: SingleFlight<Key, Loaded>,
}

impl CachedVisitStats {
    /// Caches `store`'s answers for `ttl`.
    pub fn new(store: Arc<dyn VisitStatsStore>, ttl: Duration) -> Self {
        Self {
            store,
            cache: moka::sync::Cache::builder().max_capacity(MAX_ENTRIES).time_to_live(ttl).build(),
            flights: SingleFlight::default(),
        }
    }

    async fn get<F, Fut>(&self, key: Key, load: F) -> Result<RollupRows, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<RollupRows, StoreError>>,
    {
        if let Some(rows) = self.cache.get(&key) {
            return Ok((*rows).clone());
        }
        let (loaded, _) = self
            .flights
            .run(key, || async {
                let rows = Arc::new(load().await.map_err(Arc::new)?);
                self.cache.insert(key, rows.clone());
                Ok(rows)
            })
            .await;
        match loaded {
            Ok(rows) => Ok((*rows).clone()),
            Err(error) => Err(match &*error {
                StoreError::Unavailable(e) => StoreError::Unavailable(e.to_string().into()),
                other => StoreError::Other(other.to_string().into()),
            }),
        }
    }

    fn key(scope: Option<Uuid>, range: &StatsRange) -> Key {
        (scope, range.from, range.to, range.granularity == offndat_domain::stats::Granularity::Hour)
    }
}

#[async_trait]
impl VisitStatsStore for CachedVisitStats {
    async fn link_rollups(&self, link_id: Uuid, range: &StatsRange) -> Result<RollupRows, StoreError> {
        self.get(Self::key(Some(link_id), range), || self.store.link_rollups(link_id, range)).await
    }

    async fn service_rollups(&self, range: &StatsRange) -> Result<RollupRows, StoreError> {
        self.get(Self::key(None, range), || self.store.service_rollups(range)).await
    }
}
