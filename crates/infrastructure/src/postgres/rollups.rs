//! The rows a batch of visit tallies adds to the rollup tables: per link and for
//! the whole service, hourly and daily. Built in key order, the same order in
//! every worker replica, so concurrent upserts cannot deadlock.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use offndat_application::VisitTally;
use offndat_application::visit_tally::{LinkFold, Split};
use offndat_domain::Dimension;
use offndat_domain::stats::Granularity;
use uuid::Uuid;

/// Service-wide rollup dimension: links created (counted in `human`).
pub const LINKS_CREATED: i16 = 8;
/// Service-wide rollup dimension: orphan visits (counted in `human`).
pub const ORPHAN_VISITS: i16 = 9;

/// Columns of service rollup rows, for `UNNEST`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServiceRollupRows {
    pub bucket: Vec<DateTime<Utc>>,
    pub dimension: Vec<i16>,
    pub value: Vec<String>,
    pub human: Vec<i64>,
    pub bot: Vec<i64>,
}

impl ServiceRollupRows {
    fn push(&mut self, (bucket, dimension, value): Key, split: Split) {
        self.bucket.push(bucket);
        self.dimension.push(dimension);
        self.value.push(value);
        self.human.push(signed(split.human));
        self.bot.push(signed(split.bot));
    }
}

/// Columns of link rollup rows, one per link and bucket, for `UNNEST`: the
/// bucket's visits and, per dimension value, its human and bot visits as JSON
/// objects keyed by the dimension id followed by the value (see the migration
/// `link_rollup_buckets`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LinkRollupRows {
    pub link_id: Vec<Uuid>,
    pub bucket: Vec<DateTime<Utc>>,
    pub human: Vec<i64>,
    pub bot: Vec<i64>,
    pub human_by: Vec<serde_json::Value>,
    pub bot_by: Vec<serde_json::Value>,
}

/// The key of `value` of `dimension` in a link rollup row's `human_by` / `bot_by`.
pub fn value_key(dimension: Dimension, value: &str) -> String {
    format!("{}{value}", dimension.id())
}

/// A rollup row's key: bucket, dimension, value.
type Key = (DateTime<Utc>, i16, String);

fn add(map: &mut BTreeMap<Key, Split>, key: Key, split: Split) {
    let entry = map.entry(key).or_default();
    entry.human += split.human;
    entry.bot += split.bot;
}

/// Adds every dimension value of `link`'s hours, in buckets of `granularity`.
fn add_link(map: &mut BTreeMap<Key, Split>, link: &LinkFold, granularity: Granularity) {
    for (hour, fold) in &link.hours {
        let bucket = granularity.floor(*hour);
        for dimension in Dimension::ALL {
            for (value, split) in fold.dimension(dimension) {
                add(map, (bucket, dimension.id(), value.clone()), *split);
            }
        }
    }
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rows of the links in `known` at `granularity`, in (link, bucket) order.
pub fn link_rows(tally: &VisitTally, known: &HashSet<Uuid>, granularity: Granularity) -> LinkRollupRows {
    let mut ids: Vec<&Uuid> = tally.links.keys().filter(|id| known.contains(id)).collect();
    ids.sort();
    let mut rows = LinkRollupRows::default();
    for id in ids {
        // Hours folded into the bucket first, so each bucket is one row.
        let mut buckets: BTreeMap<DateTime<Utc>, (Split, BTreeMap<String, Split>)> = BTreeMap::new();
        for (hour, fold) in &tally.links[id].hours {
            let (visits, values) = buckets.entry(granularity.floor(*hour)).or_default();
            visits.human += fold.visits.human;
            visits.bot += fold.visits.bot;
            for dimension in Dimension::ALL {
                for (value, split) in fold.dimension(dimension) {
                    let entry = values.entry(value_key(dimension, value)).or_default();
                    entry.human += split.human;
                    entry.bot += split.bot;
                }
            }
        }
        for (bucket, (visits, values)) in buckets {
            let counts = |pick: fn(&Split) -> u64| -> serde_json::Value {
                values
                    .iter()
                    .filter(|(_, split)| pick(split) > 0)
                    .map(|(key, split)| (key.clone(), serde_json::Value::from(pick(split))))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            };
            rows.link_id.push(*id);
            rows.bucket.push(bucket);
            rows.human.push(signed(visits.human));
            rows.bot.push(signed(visits.bot));
            rows.human_by.push(counts(|s| s.human));
            rows.bot_by.push(counts(|s| s.bot));
        }
    }
    rows
}

/// Rows of the whole service at `granularity`: the visits of links in `known`,
/// links created at `created`, and the tally's orphan visits.
pub fn service_rows(
    tally: &VisitTally,
    known: &HashSet<Uuid>,
    created: &[DateTime<Utc>],
    granularity: Granularity,
) -> ServiceRollupRows {
    let mut per_key = BTreeMap::new();
    for (id, link) in &tally.links {
        if known.contains(id) {
            add_link(&mut per_key, link, granularity);
        }
    }
    for at in created {
        add(&mut per_key, (granularity.floor(*at), LINKS_CREATED, String::new()), Split { human: 1, bot: 0 });
    }
    for (hour, count) in &tally.orphans {
        add(&mut per_key, (granularity.floor(*hour), ORPHAN_VISITS, String::new()), Split { human: *count, bot: 0 });
    }
    let mut rows = ServiceRollupRows::default();
    for (key, split) in per_key {
        rows.push(key, split);
    }
    rows
}

#[cfg(test)]
mod tests {
    use offndat_domain::{DeviceClass, UserAgentClass};

    use super::*;

    #[test]
    fn hours_fold_into_days_and_unknown_links_are_left_out() {
        let class =
            UserAgentClass { bot: false, browser: "Chrome".into(), os: "Linux".into(), device: DeviceClass::Desktop };
        let mut tally = VisitTally::default();
        let at = |h: i64| DateTime::from_timestamp(h * 3600, 0).expect("time");
        tally.add(Uuid::from_u128(1), at(1), &class, "a.example", 2);
        tally.add(Uuid::from_u128(1), at(5), &class, "a.example", 3);
        tally.add(Uuid::from_u128(2), at(1), &class, "", 7);
        tally.add_orphans(at(2), 4);
        let known = HashSet::from([Uuid::from_u128(1)]);

        let hourly = link_rows(&tally, &known, Granularity::Hour);
        assert_eq!(hourly.link_id, vec![Uuid::from_u128(1); 2], "one row per link and hour");
        assert_eq!(hourly.human, vec![2, 3]);
        let daily = link_rows(&tally, &known, Granularity::Day);
        assert_eq!(daily.link_id.len(), 1, "one row per link and day");
        assert_eq!((daily.human[0], daily.bot[0]), (5, 0));
        assert_eq!(
            daily.human_by[0],
            serde_json::json!({"0a.example": 5, "1Chrome": 5, "2Linux": 5, "3desktop": 5}),
            "every dimension sums to the bucket's total"
        );
        assert_eq!(daily.bot_by[0], serde_json::json!({}), "no bots, no keys");

        let service = service_rows(&tally, &known, &[at(3)], Granularity::Day);
        let find = |d: i16| service.dimension.iter().position(|x| *x == d).map(|i| service.human[i]);
        assert_eq!(find(Dimension::ReferrerHost.id()), Some(5));
        assert_eq!(find(LINKS_CREATED), Some(1));
        assert_eq!(find(ORPHAN_VISITS), Some(4));
    }
}
