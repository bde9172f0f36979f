//! Visit statistics over time: the range and granularity a caller may ask for,
//! and the zero-filled series and breakdowns answered from the rollups.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::audience::Dimension;

/// Bucket width of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn width(self) -> TimeDelta {
        match self {
            Self::Hour => TimeDelta::hours(1),
            Self::Day => TimeDelta::days(1),
        }
    }

    /// The start of the bucket holding `at`.
    pub fn floor(self, at: DateTime<Utc>) -> DateTime<Utc> {
        // Only fails for widths that do not divide the epoch's range: never here.
        at.duration_trunc(self.width()).unwrap_or(at)
    }

    /// Longest range one request may cover: 400 days of hours, 10 years of days.
    pub fn max_range(self) -> TimeDelta {
        match self {
            Self::Hour => TimeDelta::days(400),
            Self::Day => TimeDelta::days(3660),
        }
    }
}

/// Why a stats request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatsRangeError {
    #[error("`from` must be before `to`")]
    FromNotBeforeTo,
    #[error("the range is longer than allowed at this granularity")]
    TooLong,
}

/// A validated range: whole buckets from `from` (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: Granularity,
}

impl StatsRange {
    /// Widens `[from, to)` to whole buckets: `from` down to its bucket's start,
    /// `to` up to the end of the bucket it falls in (unless on a boundary).
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, granularity: Granularity) -> Result<Self, StatsRangeError> {
        if from >= to {
            return Err(StatsRangeError::FromNotBeforeTo);
        }
        if to - from > granularity.max_range() {
            return Err(StatsRangeError::TooLong);
        }
        let start = granularity.floor(from);
        let end_floor = granularity.floor(to);
        let end = if end_floor == to { to } else { end_floor + granularity.width() };
        Ok(Self { from: start, to: end, granularity })
    }

    /// The start of every bucket in the range, oldest first.
    pub fn buckets(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let width = self.granularity.width();
        std::iter::successors(Some(self.from), move |at| Some(*at + width)).take_while(|at| *at < self.to)
    }
}

/// Human and bot visits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VisitCounts {
    pub human: i64,
    pub bot: i64,
}

impl VisitCounts {
    pub fn total(self) -> i64 {
        self.human + self.bot
    }
}

impl std::ops::AddAssign for VisitCounts {
    fn add_assign(&mut self, other: Self) {
        self.human += other.human;
        self.bot += other.bot;
    }
}

/// One bucket of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub visits: VisitCounts,
}

/// A value of a dimension and its visits in the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub value: String,
    pub visits: VisitCounts,
}

/// Visits over a range: the zero-filled series, its totals and the top values of
/// each dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitSeries {
    pub range: StatsRange,
    pub buckets: Vec<Bucket>,
    pub totals: VisitCounts,
    /// Per dimension, the most frequent values first, at most `TOP`.
    pub top: Vec<(Dimension, Vec<Ranked>)>,
}

/// How many values of each dimension a stats answer lists.
pub const TOP: usize = 10;

impl VisitSeries {
    /// Builds the series from sparse rollup rows (`bucket`, counts) and the
    /// dimension sums, zero-filling empty buckets. With `exclude_bots` bot counts
    /// are left out of everything, ranking included.
    pub fn assemble(
        range: StatsRange,
        rows: impl IntoIterator<Item = (DateTime<Utc>, VisitCounts)>,
        dimensions: impl IntoIterator<Item = (Dimension, String, VisitCounts)>,
        exclude_bots: bool,
    ) -> Self {
        let keep = |mut counts: VisitCounts| {
            if exclude_bots {
                counts.bot = 0;
            }
            counts
        };
        let mut sparse: std::collections::HashMap<DateTime<Utc>, VisitCounts> = std::collections::HashMap::new();
        for (at, counts) in rows {
            *sparse.entry(range.granularity.floor(at)).or_default() += keep(counts);
        }
        let buckets: Vec<Bucket> = range
            .buckets()
            .map(|start| Bucket { start, visits: sparse.get(&start).copied().unwrap_or_default() })
            .collect();
        let mut totals = VisitCounts::default();
        for bucket in &buckets {
            totals += bucket.visits;
        }
        let mut per_dimension: std::collections::BTreeMap<Dimension, Vec<Ranked>> =
            Dimension::ALL.into_iter().map(|d| (d, Vec::new())).collect();
        for (dimension, value, counts) in dimensions {
            let visits = keep(counts);
            if visits.total() > 0 {
                per_dimension.entry(dimension).or_default().push(Ranked { value, visits });
            }
        }
        let top = per_dimension
            .into_iter()
            .map(|(dimension, mut ranked)| {
                ranked.sort_by(|a, b| b.visits.total().cmp(&a.visits.total()).then_with(|| a.value.cmp(&b.value)));
                ranked.truncate(TOP);
                (dimension, ranked)
            })
            .collect();
        Self { range, buckets, totals, top }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn ranges_widen_to_whole_buckets() {
        let range =
            StatsRange::new(at("2026-11-21T10:30:00Z"), at("2026-11-21T12:10:00Z"), Granularity::Hour).expect("valid");
        assert_eq!((range.from, range.to), (at("2026-11-21T10:00:00Z"), at("2026-11-21T13:00:00Z")));
        assert_eq!(range.buckets().count(), 3);
        let days =
            StatsRange::new(at("2026-11-01T00:00:00Z"), at("2026-11-03T00:00:00Z"), Granularity::Day).expect("valid");
        assert_eq!(days.buckets().collect::<Vec<_>>(), [at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z")]);
    }

    #[test]
    fn bad_ranges_are_refused() {
        let t = at("2026-11-21T10:00:00Z");
        assert_eq!(StatsRange::new(t, t, Granularity::Hour), Err(StatsRangeError::FromNotBeforeTo));
        assert_eq!(StatsRange::new(t - TimeDelta::days(401), t, Granularity::Hour), Err(StatsRangeError::TooLong));
        assert!(StatsRange::new(t - TimeDelta::days(401), t, Granularity::Day).is_ok());
    }

    #[test]
    fn series_are_zero_filled_and_sum_to_totals() {
        let range =
            StatsRange::new(at("2026-11-21T00:00:00Z"), at("2026-11-21T04:00:00Z"), Granularity::Hour).expect("valid");
        let rows = [
            (at("2026-11-21T01:00:00Z"), VisitCounts { human: 3, bot: 1 }),
            (at("2026-11-21T03:00:00Z"), VisitCounts { human: 2, bot: 0 }),
        ];
        let dims = [
            (Dimension::Browser, "Chrome".to_owned(), VisitCounts { human: 4, bot: 0 }),
            (Dimension::Browser, "Googlebot".to_owned(), VisitCounts { human: 0, bot: 1 }),
            (Dimension::Browser, "Firefox".to_owned(), VisitCounts { human: 1, bot: 0 }),
        ];
        let series = VisitSeries::assemble(range, rows, dims.clone(), false);
        assert_eq!(series.buckets.len(), 4);
        assert_eq!(series.buckets[0].visits, VisitCounts::default());
        assert_eq!(series.totals, VisitCounts { human: 5, bot: 1 });
        let browsers = &series.top.iter().find(|(d, _)| *d == Dimension::Browser).expect("browsers").1;
        assert_eq!(browsers.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(), ["Chrome", "Firefox", "Googlebot"]);

        let humans = VisitSeries::assemble(range, rows, dims, true);
        assert_eq!(humans.totals, VisitCounts { human: 5, bot: 0 });
        let browsers = &humans.top.iter().find(|(d, _)| *d == Dimension::Browser).expect("browsers").1;
        assert_eq!(browsers.len(), 2, "a value with only bot visits drops out");
    }
}
