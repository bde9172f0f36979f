//! `VisitTally`: visits folded into exact counts per link and UTC hour, by
//! human/bot and by each dimension, with each link's newest visits. The API
//! folds a flush window into one; the worker merges the tallies of many events
//! before writing. Merging is associative and commutative, so a tally that could
//! not be written is merged into the next one and nothing is lost.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use litemap::LiteMap;
use offndat_domain::{Dimension, UserAgentClass};
use uuid::Uuid;

use crate::events::{HourCount, HourTally, LinkTally, LinkVisitedV2, RecentVisit, ValueCount};

/// How many newest visits are kept per link (what `recentVisits` shows).
pub const RECENT_VISITS: usize = 10;

/// The events of a flush over one event's worth of links are cut so that each
/// holds the links of one partition: the worker applies a batch's partitions
/// in concurrent transactions (its lanes), which then never wait for each
/// other's rows. Fixed, so API and worker agree whatever each is configured
/// with.
pub const VISIT_PARTITIONS: usize = 16;

/// `link_id`'s partition, from its last byte (random in UUIDv4 and v7 alike;
/// the leading bytes of a v7 are its creation time).
pub fn visit_partition(link_id: &Uuid) -> usize {
    usize::from(link_id.as_bytes()[15]) % VISIT_PARTITIONS
}

/// Human and bot visits of one value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    pub human: u64,
    pub bot: u64,
}

impl Split {
    fn add(&mut self, other: Split) {
        self.human += other.human;
        self.bot += other.bot;
    }

    pub fn total(self) -> u64 {
        self.human + self.bot
    }
}

/// One dimension's values and their visits, in value order.
///
/// Flat maps (one sorted vector each), not `BTreeMap`s: a window over many
/// links holds a fold per link with one or a few values per dimension, and a
/// B-tree's first node reserves room for eleven (≈ 2 KB per link and hour in
/// all; see docs/performance.md, "Fourth full run").
pub type ValueCounts = LiteMap<String, Split>;

/// One hour of one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourFold {
    pub visits: Split,
    /// Per dimension (by `Dimension::id`), per value.
    pub dimensions: [ValueCounts; 4],
}

impl HourFold {
    fn merge(&mut self, other: HourFold) {
        self.visits.add(other.visits);
        for (mine, theirs) in self.dimensions.iter_mut().zip(other.dimensions) {
            merge_values(mine, theirs);
        }
    }

    /// The values of `dimension` and their visits.
    pub fn dimension(&self, dimension: Dimension) -> &ValueCounts {
        &self.dimensions[dimension.id() as usize]
    }
}

/// Adds `theirs` into `mine`. A few values go in one by one; more are merged in
/// one pass over both sorted vectors, so that merging many events' values (a
/// flood of made-up referrer hosts, say) costs O(n) per merge, not a shift of
/// the vector per value.
fn merge_values(mine: &mut ValueCounts, theirs: ValueCounts) {
    if theirs.len() <= 8 {
        for (value, split) in theirs {
            mine.entry(value).or_default().add(split);
        }
        return;
    }
    let ours = std::mem::take(mine).into_tuple_vec();
    let theirs = theirs.into_tuple_vec();
    let mut merged = Vec::with_capacity(ours.len() + theirs.len());
    let (mut a, mut b) = (ours.into_iter().peekable(), theirs.into_iter().peekable());
    loop {
        let order = match (a.peek(), b.peek()) {
            (Some((x, _)), Some((y, _))) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => break,
        };
        match order {
            std::cmp::Ordering::Less => merged.extend(a.next()),
            std::cmp::Ordering::Greater => merged.extend(b.next()),
            std::cmp::Ordering::Equal => {
                if let (Some((value, mut split)), Some((_, more))) = (a.next(), b.next()) {
                    split.add(more);
                    merged.push((value, split));
                }
            }
        }
    }
    // Sorted and without repeats: both inputs were, and equal values were joined.
    *mine = LiteMap::from_sorted_store_unchecked(merged);
}

/// One link's visits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFold {
    /// In hour order; usually one or two.
    pub hours: LiteMap<DateTime<Utc>, HourFold>,
    /// Newest first, at most `RECENT_VISITS`.
    pub recent: Vec<RecentVisit>,
}

impl LinkFold {
    /// Every visit of the link in the tally.
    pub fn visits(&self) -> Split {
        let mut total = Split::default();
        for hour in self.hours.values() {
            total.add(hour.visits);
        }
        total
    }

    fn merge(&mut self, other: LinkFold) {
        for (hour, fold) in other.hours {
            self.hours.entry(hour).or_default().merge(fold);
        }
        self.recent.extend(other.recent);
        keep_newest(&mut self.recent);
    }
}

/// Sorts newest first and keeps `RECENT_VISITS`.
pub fn keep_newest(visits: &mut Vec<RecentVisit>) {
    visits.sort_by_key(|v| std::cmp::Reverse(v.visited_at));
    visits.truncate(RECENT_VISITS);
}

/// Visits of many links, and orphan visits, folded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitTally {
    pub links: HashMap<Uuid, LinkFold>,
    /// Requests for unknown phrases, per UTC hour.
    pub orphans: BTreeMap<DateTime<Utc>, u64>,
}

impl VisitTally {
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.orphans.is_empty()
    }

    /// Every link visit in the tally (orphans aside).
    pub fn visits(&self) -> u64 {
        self.links.values().map(|l| l.visits().total()).sum()
    }

    /// Counts `count` visits of `link_id` in the hour starting at `hour`.
    pub fn add(&mut self, link_id: Uuid, hour: DateTime<Utc>, class: &UserAgentClass, referrer_host: &str, count: u64) {
        let split = if class.bot { Split { human: 0, bot: count } } else { Split { human: count, bot: 0 } };
        let fold = self.links.entry(link_id).or_default().hours.entry(hour).or_default();
        fold.visits.add(split);
        let values = [referrer_host, class.browser.as_str(), class.os.as_str(), class.device.as_str()];
        for (dimension, value) in fold.dimensions.iter_mut().zip(values) {
            match dimension.get_mut(value) {
                Some(existing) => existing.add(split),
                None => {
                    dimension.insert(value.to_owned(), split);
                }
            }
        }
    }

    /// Offers `visit` as one of the newest of `link_id`.
    pub fn add_recent(&mut self, link_id: Uuid, visit: RecentVisit) {
        let recent = &mut self.links.entry(link_id).or_default().recent;
        recent.push(visit);
        if recent.len() > 2 * RECENT_VISITS {
            keep_newest(recent);
        }
    }

    /// Counts `count` orphan visits in the hour starting at `hour`.
    pub fn add_orphans(&mut self, hour: DateTime<Utc>, count: u64) {
        *self.orphans.entry(hour).or_default() += count;
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, other: VisitTally) {
        for (link_id, fold) in other.links {
            match self.links.get_mut(&link_id) {
                Some(mine) => mine.merge(fold),
                None => {
                    let mut fold = fold;
                    keep_newest(&mut fold.recent);
                    self.links.insert(link_id, fold);
                }
            }
        }
        for (hour, count) in other.orphans {
            *self.orphans.entry(hour).or_default() += count;
        }
    }

    /// The tally of one event.
    pub fn from_event(event: &LinkVisitedV2) -> Self {
        let mut tally = Self::default();
        for link in &event.links {
            let mut fold = LinkFold { recent: link.recent.clone(), ..LinkFold::default() };
            for hour in &link.hours {
                let mut hour_fold =
                    HourFold { visits: Split { human: hour.human, bot: hour.bot }, ..HourFold::default() };
                let lists = [&hour.referrers, &hour.browsers, &hour.operating_systems, &hour.devices];
                for (dimension, list) in hour_fold.dimensions.iter_mut().zip(lists) {
                    for value in list {
                        dimension
                            .entry(value.value.clone())
                            .or_default()
                            .add(Split { human: value.human, bot: value.bot });
                    }
                }
                fold.hours.entry(hour.hour).or_default().merge(hour_fold);
            }
            tally.merge(Self { links: HashMap::from([(link.link_id, fold)]), orphans: BTreeMap::new() });
        }
        for orphan in &event.orphans {
            tally.add_orphans(orphan.hour, orphan.visits);
        }
        tally
    }

    /// The tally as events of at most `max_links` links and about `max_bytes` of
    /// JSON each (orphans ride in the first; a single link larger than that gets
    /// an event of its own). A tally of more than `max_links` links is cut by
    /// `visit_partition` too, each event within one, so the worker can apply
    /// them in parallel; a smaller one stays one event, so light traffic makes
    /// no more messages. Links in (partition, id) order, so the output is
    /// deterministic. The byte bound keeps messages far below what the worker
    /// accepts, whatever headers visitors send.
    pub fn to_events(&self, max_links: usize, max_bytes: usize) -> Vec<LinkVisitedV2> {
        let mut links: Vec<(&Uuid, &LinkFold)> = self.links.iter().collect();
        links.sort_by_key(|(id, _)| (visit_partition(id), **id));
        let by_partition = links.len() > max_links.max(1);
        let mut orphans: Vec<HourCount> =
            self.orphans.iter().map(|(hour, visits)| HourCount { hour: *hour, visits: *visits }).collect();
        let mut events = Vec::new();
        let mut current: Vec<LinkTally> = Vec::new();
        let mut current_bytes = 0;
        for (id, fold) in links {
            let tally = link_tally(*id, fold);
            // The serialised size, counted the way the payload will be written.
            let bytes = serde_json::to_vec(&tally).map_or(0, |json| json.len());
            let other_partition =
                by_partition && current.last().is_some_and(|l| visit_partition(&l.link_id) != visit_partition(id));
            if !current.is_empty()
                && (other_partition || current.len() >= max_links.max(1) || current_bytes + bytes > max_bytes)
            {
                let links = std::mem::take(&mut current);
                events.push(LinkVisitedV2 { version: 2, links, orphans: std::mem::take(&mut orphans) });
                current_bytes = 0;
            }
            current_bytes += bytes;
            current.push(tally);
        }
        if !current.is_empty() || !orphans.is_empty() {
            events.push(LinkVisitedV2 { version: 2, links: current, orphans });
        }
        events
    }
}

fn link_tally(link_id: Uuid, fold: &LinkFold) -> LinkTally {
    let values = |map: &ValueCounts| -> Vec<ValueCount> {
        map.iter().map(|(value, s)| ValueCount { value: value.clone(), human: s.human, bot: s.bot }).collect()
    };
    let hours = fold
        .hours
        .iter()
        .map(|(hour, h)| HourTally {
            hour: *hour,
            human: h.visits.human,
            bot: h.visits.bot,
            referrers: values(h.dimension(Dimension::ReferrerHost)),
            browsers: values(h.dimension(Dimension::Browser)),
            operating_systems: values(h.dimension(Dimension::Os)),
            devices: values(h.dimension(Dimension::Device)),
        })
        .collect();
    let mut recent = fold.recent.clone();
    keep_newest(&mut recent);
    LinkTally { link_id, hours, recent }
}

#[cfg(test)]
mod tests {
    use offndat_domain::DeviceClass;

    use super::*;

    fn hour(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(h * 3600, 0).expect("time")
    }

    fn class(bot: bool, browser: &str) -> UserAgentClass {
        UserAgentClass {
            bot,
            browser: browser.to_owned(),
            os: "Linux".to_owned(),
            device: if bot { DeviceClass::Bot } else { DeviceClass::Desktop },
        }
    }

    fn visit(second: i64) -> RecentVisit {
        RecentVisit {
            visited_at: DateTime::from_timestamp(second, 0).expect("time"),
            ip_address: None,
            user_agent: None,
            referrer: None,
            bot: false,
        }
    }

    #[test]
    fn merging_many_values_adds_them_up_in_order() {
        // Interleaved and overlapping sets, large enough for the one-pass merge.
        let tally_of = |hosts: std::ops::Range<u32>, step: usize, count: u64| {
            let mut tally = VisitTally::default();
            for n in hosts.step_by(step) {
                tally.add(Uuid::from_u128(1), hour(1), &class(false, "Chrome"), &format!("h{n:05}.example"), count);
            }
            tally
        };
        let mut merged = tally_of(0..3_000, 2, 1);
        merged.merge(tally_of(0..3_000, 3, 10));
        merged.merge(tally_of(1..4, 1, 100)); // a few, one by one
        let hosts = merged.links[&Uuid::from_u128(1)].hours[&hour(1)].dimension(Dimension::ReferrerHost);
        let mut expected = BTreeMap::new();
        for (n, count) in (0..3_000).step_by(2).map(|n| (n, 1)).chain((0..3_000).step_by(3).map(|n| (n, 10))) {
            *expected.entry(format!("h{n:05}.example")).or_insert(0) += count;
        }
        for n in 1..4 {
            *expected.entry(format!("h{n:05}.example")).or_insert(0) += 100;
        }
        let got: Vec<(String, u64)> = hosts.iter().map(|(k, v)| (k.clone(), v.human)).collect();
        assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "every value once, in order, summed");
    }

    /// A small deterministic generator, so the property tests need no crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % below
        }
    }

    fn random_tally(rng: &mut Lcg, visits: usize) -> VisitTally {
        let mut tally = VisitTally::default();
        for _ in 0..visits {
            let link = Uuid::from_u128(u128::from(rng.next(5)));
            let bot = rng.next(4) == 0;
            let browser = ["Chrome", "Firefox", "Safari"][rng.next(3) as usize];
            let referrer = ["", "a.example", "b.example"][rng.next(3) as usize];
            tally.add(link, hour(rng.next(3) as i64), &class(bot, browser), referrer, 1);
            tally.add_recent(link, visit(rng.next(10_000) as i64));
        }
        if rng.next(2) == 0 {
            tally.add_orphans(hour(1), rng.next(7));
        }
        tally
    }

    /// Every dimension of every hour sums to the hour's visits.
    fn assert_consistent(tally: &VisitTally) {
        for fold in tally.links.values() {
            assert!(fold.recent.len() <= RECENT_VISITS);
            for h in fold.hours.values() {
                for dimension in Dimension::ALL {
                    let sum = h.dimension(dimension).values().fold(Split::default(), |mut acc, s| {
                        acc.add(*s);
                        acc
                    });
                    assert_eq!(sum, h.visits, "{dimension:?}");
                }
            }
        }
    }

    #[test]
    fn rollups_sum_to_totals_whatever_the_visits() {
        for seed in 0..200 {
            let mut rng = Lcg(seed);
            let n = rng.next(300) as usize;
            let mut tally = random_tally(&mut rng, n);
            keep_all_newest(&mut tally);
            assert_consistent(&tally);
            assert_eq!(tally.visits(), n as u64);
        }
    }

    fn keep_all_newest(tally: &mut VisitTally) {
        for fold in tally.links.values_mut() {
            keep_newest(&mut fold.recent);
        }
    }

    #[test]
    fn merging_is_order_free_and_survives_the_event_round_trip() {
        for seed in 0..100 {
            let mut rng = Lcg(seed);
            let (na, nb) = (rng.next(200) as usize, rng.next(200) as usize);
            let a = random_tally(&mut rng, na);
            let b = random_tally(&mut rng, nb);
            let mut ab = a.clone();
            ab.merge(b.clone());
            let mut ba = b.clone();
            ba.merge(a.clone());
            keep_all_newest(&mut ab);
            keep_all_newest(&mut ba);
            assert_eq!(ab.visits(), (na + nb) as u64);
            assert_eq!(ab.orphans, ba.orphans);
            for (id, fold) in &ab.links {
                let other = &ba.links[id];
                assert_eq!(fold.hours, other.hours);
                let times = |f: &LinkFold| f.recent.iter().map(|v| v.visited_at).collect::<Vec<_>>();
                assert_eq!(times(fold), times(other));
            }
            // Split into events of 2 links and merged back: the same tally.
            let mut back = VisitTally::default();
            for event in ab.to_events(2, usize::MAX) {
                assert!(event.links.len() <= 2);
                back.merge(event.tally());
            }
            keep_all_newest(&mut back);
            assert_eq!(back.orphans, ab.orphans);
            assert_eq!(back.visits(), ab.visits());
            for (id, fold) in &ab.links {
                assert_eq!(back.links[id].hours, fold.hours);
            }
        }
    }

    #[test]
    fn newest_visits_are_the_newest_ten() {
        let mut tally = VisitTally::default();
        let link = Uuid::nil();
        for second in [5, 1, 30, 7, 2, 99, 15, 3, 8, 40, 11, 6, 60] {
            tally.add_recent(link, visit(second));
        }
        let events = tally.to_events(10, usize::MAX);
        let seconds: Vec<i64> = events[0].links[0].recent.iter().map(|v| v.visited_at.timestamp()).collect();
        assert_eq!(seconds, [99, 60, 40, 30, 15, 11, 8, 7, 6, 5]);
    }

    #[test]
    fn events_are_cut_by_size_as_well_as_by_links() {
        let mut tally = VisitTally::default();
        // One partition (the same last byte), so only size and count cut.
        for n in 0..6u128 {
            let mut visit = visit(1);
            visit.user_agent = Some("x".repeat(400));
            tally.add_recent(Uuid::from_u128(n << 8), visit);
        }
        let one_link = serde_json::to_vec(&tally.to_events(1, usize::MAX)[0].links[0]).expect("json").len();
        // Room for two links' JSON, not three.
        let events = tally.to_events(100, one_link * 2 + one_link / 2);
        assert_eq!(events.iter().map(|e| e.links.len()).collect::<Vec<_>>(), [2, 2, 2]);
        // One link bigger than the budget still goes, alone.
        assert_eq!(tally.to_events(100, 10).len(), 6);
        let ids: Vec<Uuid> = tally.to_events(100, 10).iter().flat_map(|e| e.links.iter().map(|l| l.link_id)).collect();
        assert_eq!(
            ids,
            (0..6u128).map(|n| Uuid::from_u128(n << 8)).collect::<Vec<_>>(),
            "every link once, in id order"
        );
    }

    #[test]
    fn a_tally_over_the_event_size_is_cut_by_partition_and_a_smaller_one_is_not() {
        let mut tally = VisitTally::default();
        let class = class(false, "Firefox");
        // 40 links over every partition, two or three in each.
        let ids: Vec<Uuid> = (0..40u128).map(|n| Uuid::from_u128(((n * 7919) << 64) | (n * 13))).collect();
        for id in &ids {
            tally.add(*id, hour(1), &class, "", 1);
        }
        tally.add_orphans(hour(1), 2);
        assert_eq!(tally.to_events(40, usize::MAX).len(), 1, "40 links fit one event: one, partitions mixed");
        let events = tally.to_events(5, usize::MAX);
        let partitions: Vec<usize> =
            ids.iter().map(visit_partition).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        assert_eq!(partitions, (0..VISIT_PARTITIONS).collect::<Vec<_>>(), "the ids cover every partition");
        assert_eq!(events.len(), VISIT_PARTITIONS, "one event per partition");
        for event in &events {
            let first = visit_partition(&event.links[0].link_id);
            assert!(event.links.iter().all(|l| visit_partition(&l.link_id) == first), "one partition per event");
        }
        let mut seen: Vec<Uuid> = events.iter().flat_map(|e| e.links.iter().map(|l| l.link_id)).collect();
        seen.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(seen, expected, "every link once");
        assert_eq!(events[0].orphans.len(), 1, "orphans in the first event");
        assert!(events[1..].iter().all(|e| e.orphans.is_empty()));
    }

    #[test]
    fn an_empty_tally_makes_no_event_and_orphans_alone_make_one() {
        assert!(VisitTally::default().to_events(10, usize::MAX).is_empty());
        let mut tally = VisitTally::default();
        tally.add_orphans(hour(2), 4);
        let events = tally.to_events(10, usize::MAX);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].orphans, [HourCount { hour: hour(2), visits: 4 }]);
    }
}
