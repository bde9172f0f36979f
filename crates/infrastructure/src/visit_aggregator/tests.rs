//! The aggregator without a database: what a window folds into.

use std::sync::Arc;

use offndat_domain::Dimension;
use sqlx::PgPool;

use super::*;
use crate::postgres::PgVisitStore;
use crate::user_agents::UserAgents;

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn flusher() -> (Arc<VisitAggregator>, VisitFlusher) {
    flusher_with(1 << 30)
}

/// A flusher whose full log may hold `max_raw_bytes`.
fn flusher_with(max_raw_bytes: usize) -> (Arc<VisitAggregator>, VisitFlusher) {
    // Never connected: these tests only fold.
    let pool = PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("lazy pool");
    visit_aggregator(
        PgVisitStore::new(pool, VisitLog::Full),
        Arc::new(UserAgents::default()),
        VisitAggregatorConfig {
            flush_interval: Duration::from_secs(1),
            flush_at_keys: 1_000_000,
            drain_timeout: Duration::from_secs(1),
            log: VisitLog::Full,
            max_raw_bytes,
        },
    )
}

fn visit<'a>(link: u128, second: i64, ua: &'a str, referrer: &'a str) -> PendingVisit<'a> {
    PendingVisit {
        link_id: Uuid::from_u128(link),
        visited_at: DateTime::from_timestamp(second, 0).expect("time"),
        ip: "203.0.113.0".parse().ok(),
        user_agent: (!ua.is_empty()).then_some(ua.as_bytes()),
        referrer: (!referrer.is_empty()).then_some(referrer.as_bytes()),
    }
}

fn fold(flusher: &VisitFlusher) -> (VisitTally, Vec<(Uuid, RecentVisit)>) {
    let mut tally = VisitTally::default();
    let mut raw = Vec::new();
    let bytes = flusher.fold_into(&mut tally, &mut raw);
    assert_eq!(bytes == 0, raw.is_empty());
    (tally, raw)
}

#[tokio::test]
async fn visits_fold_into_exact_counts_by_class_and_hour() {
    let (aggregator, flusher) = flusher();
    for _ in 0..3 {
        aggregator.record(visit(1, 3_600 * 10 + 5, CHROME, "https://News.Example/a"));
    }
    aggregator.record(visit(1, 3_600 * 10 + 9, GOOGLEBOT, ""));
    aggregator.record(visit(1, 3_600 * 11, CHROME, ""));
    aggregator.record(visit(2, 3_600 * 10, "", "not a url"));
    aggregator.record_orphan(DateTime::from_timestamp(3_600 * 10 + 1, 0).expect("time"));

    let (tally, raw) = fold(&flusher);
    assert_eq!(tally.visits(), 6);
    assert_eq!(raw.len(), 6, "the full log keeps every visit");
    let one = &tally.links[&Uuid::from_u128(1)];
    assert_eq!((one.visits().human, one.visits().bot), (4, 1));
    let ten = &one.hours[&DateTime::from_timestamp(36_000, 0).expect("time")];
    assert_eq!((ten.visits.human, ten.visits.bot), (3, 1));
    let hosts = ten.dimension(Dimension::ReferrerHost);
    assert_eq!(hosts.get("news.example").copied().unwrap_or_default().human, 3);
    assert_eq!(hosts.get("").copied().unwrap_or_default().bot, 1);
    assert_eq!(ten.dimension(Dimension::Browser).get("Chrome").copied().unwrap_or_default().human, 3);
    assert_eq!(ten.dimension(Dimension::Device).get("bot").copied().unwrap_or_default().bot, 1);
    assert_eq!(one.recent.len(), 5);
    assert!(one.recent[0].visited_at >= one.recent[4].visited_at, "newest first");
    assert_eq!(one.recent.iter().filter(|v| v.bot).count(), 1);
    let two = &tally.links[&Uuid::from_u128(2)];
    assert_eq!(
        two.hours
            .values()
            .next()
            .expect("hour")
            .dimension(Dimension::Browser)
            .get("Other")
            .copied()
            .unwrap_or_default()
            .human,
        1
    );
    assert_eq!(tally.orphans.values().sum::<u64>(), 1);

    let (empty, _) = fold(&flusher);
    assert!(empty.is_empty(), "a fold takes the window");
}

#[tokio::test]
async fn the_newest_ten_are_right_under_concurrent_writers() {
    let (aggregator, flusher) = flusher();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let aggregator = aggregator.clone();
            std::thread::spawn(move || {
                // Each thread writes its own seconds, in an order of its own.
                for i in 0..500 {
                    let second = if t % 2 == 0 { i * 4 + t } else { (499 - i) * 4 + t };
                    aggregator.record(visit(7, second, CHROME, ""));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer");
    }
    let (tally, _) = fold(&flusher);
    let link = &tally.links[&Uuid::from_u128(7)];
    assert_eq!(link.visits().total(), 2_000);
    let seconds: Vec<i64> = link.recent.iter().map(|v| v.visited_at.timestamp()).collect();
    assert_eq!(seconds, (1_990..2_000).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn many_distinct_user_agents_are_still_counted_exactly() {
    let (aggregator, flusher) = flusher();
    for i in 0..1_000 {
        aggregator.record(visit(3, 3_600, &format!("agent-{i}"), &format!("https://r{i}.example/")));
    }
    let (tally, _) = fold(&flusher);
    let link = &tally.links[&Uuid::from_u128(3)];
    assert_eq!(link.visits().total(), 1_000);
    let hour = link.hours.values().next().expect("hour");
    assert_eq!(hour.dimension(Dimension::ReferrerHost).len(), MAX_KEYS_PER_LINK + 1, "the rest under ''");
    for dimension in Dimension::ALL {
        assert_eq!(hour.dimension(dimension).values().map(|s| s.total()).sum::<u64>(), 1_000);
    }
}

#[tokio::test]
async fn a_flood_of_made_up_bot_agents_past_the_key_bound_stays_bots() {
    let (aggregator, flusher) = flusher();
    // Fills the link's keys with humans, then floods it with one-off crawler agents.
    for i in 0..MAX_KEYS_PER_LINK {
        aggregator.record(visit(4, 3_600, &format!("{CHROME} {i}"), ""));
    }
    for i in 0..500 {
        aggregator.record(visit(4, 3_600, &format!("Mozilla/5.0 (compatible; Googlebot/2.1; run {i})"), ""));
        aggregator.record(visit(4, 3_600, &format!("{CHROME} extra {i}"), ""));
    }
    let (tally, _) = fold(&flusher);
    let link = &tally.links[&Uuid::from_u128(4)];
    assert_eq!((link.visits().human, link.visits().bot), (MAX_KEYS_PER_LINK as u64 + 500, 500));
    let hour = link.hours.values().next().expect("hour");
    assert_eq!(hour.dimension(Dimension::Device).get("bot").copied().unwrap_or_default().bot, 500);
}

#[tokio::test]
async fn huge_headers_are_cut_to_their_stored_length_before_they_are_kept() {
    let (aggregator, flusher) = flusher();
    let huge = "x".repeat(16 * 1024);
    // Leading blanks are not stored either; a multi-byte character counts once.
    let wide = format!("   {}", "ł".repeat(16 * 1024));
    aggregator.record(visit(4, 0, &huge, &format!("https://a.example/{huge}")));
    aggregator.record(visit(4, 1, &wide, &format!("https://b.example/{wide}")));
    {
        let shard = lock(aggregator.shard(&Uuid::from_u128(4)));
        let window = &shard.links[&Uuid::from_u128(4)];
        let mut agents: Vec<usize> =
            window.counts.keys().filter_map(|k| k.user_agent.as_deref().map(<[u8]>::len)).collect();
        agents.sort_unstable();
        assert_eq!(agents, [MAX_USER_AGENT_CHARS, 2 * MAX_USER_AGENT_CHARS], "512 characters, in bytes");
        let referrers: Vec<usize> =
            window.newest.iter().filter_map(|v| v.referrer.as_deref().map(<[u8]>::len)).collect();
        assert_eq!(referrers, [MAX_REFERRER_CHARS, 2 * MAX_REFERRER_CHARS - "https://b.example/   ".len()]);
        let raw: Vec<usize> = shard.raw.iter().map(|(_, v)| v.size()).collect();
        assert_eq!(raw[0], RAW_VISIT_OVERHEAD + MAX_USER_AGENT_CHARS + MAX_REFERRER_CHARS);
    }
    let (tally, raw) = fold(&flusher);
    let recent = &tally.links[&Uuid::from_u128(4)].recent;
    assert_eq!(recent[1].user_agent.as_deref(), Some(&huge[..MAX_USER_AGENT_CHARS]));
    assert_eq!(recent[1].referrer.as_deref().map(str::len), Some(MAX_REFERRER_CHARS));
    assert_eq!(recent[0].user_agent.as_deref(), Some(&wide.trim_start()[..2 * MAX_USER_AGENT_CHARS]), "as stored");
    assert_eq!(raw.len(), 2);
}

#[tokio::test]
async fn the_full_log_is_bounded_in_bytes_while_counts_stay_exact() {
    let visit_size = RAW_VISIT_OVERHEAD + CHROME.len();
    let (aggregator, flusher) = flusher_with(1_000 * visit_size);
    let dropped = || metric("offndat_visit_log_dropped_total");
    let before = dropped();
    let mut tally = VisitTally::default();
    let mut raw = Vec::new();
    let mut held = 0;
    for round in 0..3 {
        for i in 0..600 {
            aggregator.record(visit(5, round * 1_000 + i, CHROME, ""));
        }
        held += flusher.fold_into(&mut tally, &mut raw);
    }
    assert_eq!(tally.visits(), 1_800, "every visit counted");
    assert_eq!(raw.len(), 1_000, "the raw log holds what its budget allows");
    assert_eq!(held, 1_000 * visit_size);
    assert!(dropped() >= before + 800, "and says what it lost");
    // Written: the room is given back.
    aggregator.release_raw(held);
    aggregator.record(visit(5, 9_999, CHROME, ""));
    assert_eq!(fold(&flusher).1.len(), 1);
}

#[tokio::test]
async fn referrer_hosts_piling_up_while_nothing_is_written_are_bounded_and_still_counted() {
    let (aggregator, flusher) = flusher();
    let mut pending = VisitTally::default();
    let mut raw = Vec::new();
    // Window after window (PostgreSQL away), each with new made-up hosts.
    for window in 0..20 {
        for i in 0..100 {
            aggregator.record(visit(6, 3_600, CHROME, &format!("https://h{window}-{i}.example/")));
        }
        aggregator.record(visit(6, 3_600, CHROME, "https://kept.example/"));
        flusher.fold_into(&mut pending, &mut raw);
    }
    let hour = pending.links[&Uuid::from_u128(6)].hours.values().next().expect("hour");
    let hosts = hour.dimension(Dimension::ReferrerHost);
    assert_eq!(hour.visits.total(), 20 * 101);
    assert_eq!(hosts.values().map(|s| s.total()).sum::<u64>(), 20 * 101, "every visit in the dimension");
    assert!(hosts.len() <= MAX_HOSTS_PER_LINK_HOUR + 1, "{} hosts", hosts.len());
    // At most 1,000 hosts of one visit each besides kept.example's 20: the rest
    // is under no host.
    assert!(
        hosts.get("").copied().unwrap_or_default().total() >= 20 * 101 - 20 - MAX_HOSTS_PER_LINK_HOUR as u64,
        "{}",
        hosts.get("").copied().unwrap_or_default().total()
    );
    assert_eq!(
        hosts.get("kept.example").copied().unwrap_or_default().total(),
        20,
        "a host already held keeps counting"
    );
}

/// A counter of the global recorder (zero when none is installed).
fn metric(name: &str) -> u64 {
    crate::telemetry::metrics_handle()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}
