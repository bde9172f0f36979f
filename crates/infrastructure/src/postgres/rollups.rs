//! The rows a batch of visit tallies adds to the rollup tables: per link and for
//! the whole service, hourly and daily. Built in key order, the same order in
//! every worker replica, so concurrent upserts cannot deadlock.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

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
    fn push(&mut self, (bucket, dimension, value): (DateTime<Utc>, i16, String), split: Split) {
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
/// `link_rollup_buckets`). The objects are JSON text, written directly: building
/// `serde_json::Value` maps and serialising them again was a fifth of the
/// worker's own time per batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LinkRollupRows {
    pub link_id: Vec<Uuid>,
    pub bucket: Vec<DateTime<Utc>>,
    pub human: Vec<i64>,
    pub bot: Vec<i64>,
    pub human_by: Vec<String>,
    pub bot_by: Vec<String>,
}

/// A rollup row's key: bucket, dimension, value (borrowed from the tally).
type Key<'a> = (DateTime<Utc>, i16, &'a str);

fn add<'a>(map: &mut BTreeMap<Key<'a>, Split>, key: Key<'a>, split: Split) {
    let entry = map.entry(key).or_default();
    entry.human += split.human;
    entry.bot += split.bot;
}

/// Adds every dimension value of `link`'s hours, in buckets of `granularity`.
fn add_link<'a>(map: &mut BTreeMap<Key<'a>, Split>, link: &'a LinkFold, granularity: Granularity) {
    for (hour, fold) in &link.hours {
        let bucket = granularity.floor(*hour);
        for dimension in Dimension::ALL {
            for (value, split) in fold.dimension(dimension) {
                add(map, (bucket, dimension.id(), value), *split);
            }
        }
    }
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One bucket's counts of each (dimension id, value), borrowed from the tally.
type ValueCounts<'a> = BTreeMap<(i16, &'a str), Split>;

/// `{"<dimension id><value>": count, ...}` of the values whose `pick` is not 0,
/// in key order.
fn counts_json(values: &ValueCounts<'_>, pick: fn(&Split) -> u64) -> String {
    let mut json = String::with_capacity(2 + values.len() * 24);
    json.push('{');
    for ((dimension, value), split) in values {
        let n = pick(split);
        if n == 0 {
            continue;
        }
        if json.len() > 1 {
            json.push(',');
        }
        // The key escaped as JSON: the dimension id is a digit, so prefixing it
        // inside the quotes keeps the escaping of the value intact.
        let quoted = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned());
        let _ = write!(json, "\"{dimension}{}:{n}", &quoted[1..]);
    }
    json.push('}');
    json
}

/// Rows of the links in `known` at `granularity`, in (link, bucket) order.
pub fn link_rows(tally: &VisitTally, known: &HashSet<Uuid>, granularity: Granularity) -> LinkRollupRows {
    let mut ids: Vec<&Uuid> = tally.links.keys().filter(|id| known.contains(id)).collect();
    ids.sort();
    let mut rows = LinkRollupRows::default();
    for id in ids {
        // Hours folded into the bucket first, so each bucket is one row.
        let mut buckets: BTreeMap<DateTime<Utc>, (Split, ValueCounts<'_>)> = BTreeMap::new();
        for (hour, fold) in &tally.links[id].hours {
            let (visits, values) = buckets.entry(granularity.floor(*hour)).or_default();
            visits.human += fold.visits.human;
            visits.bot += fold.visits.bot;
            for dimension in Dimension::ALL {
                for (value, split) in fold.dimension(dimension) {
                    let entry = values.entry((dimension.id(), value.as_str())).or_default();
                    entry.human += split.human;
                    entry.bot += split.bot;
                }
            }
        }
        for (bucket, (visits, values)) in buckets {
            rows.link_id.push(*id);
            rows.bucket.push(bucket);
            rows.human.push(signed(visits.human));
            rows.bot.push(signed(visits.bot));
            rows.human_by.push(counts_json(&values, |s| s.human));
            rows.bot_by.push(counts_json(&values, |s| s.bot));
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
        add(&mut per_key, (granularity.floor(*at), LINKS_CREATED, ""), Split { human: 1, bot: 0 });
    }
    for (hour, count) in &tally.orphans {
        add(&mut per_key, (granularity.floor(*hour), ORPHAN_VISITS, ""), Split { human: *count, bot: 0 });
    }
    let mut rows = ServiceRollupRows::default();
    for ((bucket, dimension, value), split) in per_key {
        rows.push((bucket, dimension, value.to_owned()), split);
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
        let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).expect("JSON");
        assert_eq!(
            json(&daily.human_by[0]),
            serde_json::json!({"0a.example": 5, "1Chrome": 5, "2Linux": 5, "3desktop": 5}),
            "every dimension sums to the bucket's total"
        );
        assert_eq!(json(&daily.bot_by[0]), serde_json::json!({}), "no bots, no keys");

        let mut odd = VisitTally::default();
        odd.add(Uuid::from_u128(3), at(1), &class, "q\"uote\\back.example\u{7f}é", 1);
        let rows = link_rows(&odd, &HashSet::from([Uuid::from_u128(3)]), Granularity::Hour);
        assert_eq!(
            json(&rows.human_by[0])["0q\"uote\\back.example\u{7f}é"],
            1,
            "values are escaped inside their keys: {}",
            rows.human_by[0]
        );

        let service = service_rows(&tally, &known, &[at(3)], Granularity::Day);
        let find = |d: i16| service.dimension.iter().position(|x| *x == d).map(|i| service.human[i]);
        assert_eq!(find(Dimension::ReferrerHost.id()), Some(5));
        assert_eq!(find(LINKS_CREATED), Some(1));
        assert_eq!(find(ORPHAN_VISITS), Some(4));
    }
}
