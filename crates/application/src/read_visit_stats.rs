//! Read visit statistics over time, for one link or the whole service, from the
//! rollups the worker keeps: zero-filled buckets, totals and the top values of
//! each dimension.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use offndat_domain::stats::{Granularity, StatsRange, VisitSeries};
use offndat_domain::{Link, Phrase};

use crate::error::ApplicationError;
use crate::ports::{Clock, LinkStore, RollupRows, VisitStatsStore};

/// What a caller asks for; absent bounds get defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub granularity: Granularity,
    pub exclude_bots: bool,
}

impl StatsQuery {
    /// The range asked for: `to` defaults to the end of the current bucket, `from`
    /// to 48 hours (hourly) or 30 days (daily) before `to`, so the defaults give 48
    /// or 30 whole buckets, the last one the current.
    pub fn range(&self, now: DateTime<Utc>) -> Result<StatsRange, ApplicationError> {
        let to = self.to.unwrap_or_else(|| self.granularity.floor(now) + self.granularity.width());
        let from = self.from.unwrap_or_else(|| {
            to - match self.granularity {
                Granularity::Hour => TimeDelta::hours(48),
                Granularity::Day => TimeDelta::days(30),
            }
        });
        StatsRange::new(from, to, self.granularity).map_err(ApplicationError::InvalidStatsRange)
    }
}

/// The whole service's visits, plus links created and orphan visits per bucket
/// (aligned with `series.buckets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    pub series: VisitSeries,
    pub links_created: Vec<i64>,
    pub orphan_visits: Vec<i64>,
}

/// The read-visit-stats use case.
#[derive(Clone)]
pub struct ReadVisitStats {
    links: Arc<dyn LinkStore>,
    stats: Arc<dyn VisitStatsStore>,
    clock: Arc<dyn Clock>,
}

impl ReadVisitStats {
    pub fn new(links: Arc<dyn LinkStore>, stats: Arc<dyn VisitStatsStore>, clock: Arc<dyn Clock>) -> Self {
        Self { links, stats, clock }
    }

    /// The link with `phrase` and its visits over the range asked for; `NotFound`
    /// when the link is outside `scope` (`Actor::owner_scope`).
    pub async fn for_link(
        &self,
        phrase: &Phrase,
        scope: Option<i64>,
        query: StatsQuery,
    ) -> Result<(Link, VisitSeries), ApplicationError> {
        // A bad range is refused before any I/O.
        query.range(self.clock.now())?;
        let link = self
            .links
            .find_by_phrase(phrase)
            .await?
            .filter(|link| link.visible_to(scope))
            .ok_or(ApplicationError::NotFound)?;
        let series = self.series_of(&link, query).await?;
        Ok((link, series))
    }

    /// The visits of a link the caller has already read, over the range asked
    /// for: one rollup read, no second lookup of the link (the stats page reads
    /// the link with its newest visits first).
    pub async fn series_of(&self, link: &Link, query: StatsQuery) -> Result<VisitSeries, ApplicationError> {
        let range = query.range(self.clock.now())?;
        let rows = self.stats.link_rollups(link.id, &range).await?;
        Ok(VisitSeries::assemble(range, rows.buckets, rows.dimensions, query.exclude_bots))
    }

    /// The current time of the use case's clock, so callers build ranges from the
    /// same clock the defaults use.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The whole service's visits over the range asked for.
    pub async fn for_service(&self, query: StatsQuery) -> Result<ServiceStats, ApplicationError> {
        let range = query.range(self.clock.now())?;
        let RollupRows { buckets, dimensions, links_created, orphan_visits } =
            self.stats.service_rollups(&range).await?;
        let series = VisitSeries::assemble(range, buckets, dimensions, query.exclude_bots);
        let align = |rows: Vec<(DateTime<Utc>, i64)>| {
            let mut sparse: HashMap<DateTime<Utc>, i64> = HashMap::new();
            for (at, n) in rows {
                *sparse.entry(range.granularity.floor(at)).or_default() += n;
            }
            series.buckets.iter().map(|b| sparse.get(&b.start).copied().unwrap_or(0)).collect()
        };
        let links_created = align(links_created);
        let orphan_visits = align(orphan_visits);
        Ok(ServiceStats { series, links_created, orphan_visits })
    }
}
