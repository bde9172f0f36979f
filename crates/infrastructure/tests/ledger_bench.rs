//! A micro-benchmark of the worker's transaction, not a test: applies rounds of
//! `link.visited` v2 events for 7,000 links (realistic dimension values) through
//! `PgEventLedger` against a scratch database and prints the time per round.
//! Ignored by default; run it alone, in release mode, on a quiet machine:
//!
//! ```text
//! cargo test --release -p offndat-infrastructure --test ledger_bench -- --ignored --nocapture
//! ```
//!
//! `LEDGER_BENCH_LINKS` and `LEDGER_BENCH_ROUNDS` change the size.

#![allow(clippy::print_stdout)] // A benchmark reports on stdout.

use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use offndat_application::apply_events::{EventLedger, InboxMessage};
use offndat_application::events::{Event, HourTally, LinkTally, LinkVisitedV2, RecentVisit, ValueCount};
use offndat_infrastructure::postgres::PgEventLedger;
use offndat_test_support::TestDatabase;
use uuid::Uuid;

/// Links per event, as the API cuts them.
const LINKS_PER_EVENT: usize = 500;

const REFERRERS: [&str; 12] = [
    "",
    "www.google.com",
    "t.co",
    "news.ycombinator.com",
    "www.reddit.com",
    "www.facebook.com",
    "l.instagram.com",
    "www.linkedin.com",
    "duckduckgo.com",
    "github.com",
    "stackoverflow.com",
    "mail.example.com",
];
const BROWSERS: [&str; 6] = ["Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Googlebot"];
const SYSTEMS: [&str; 5] = ["Windows", "Android", "iOS", "Mac OS X", "Linux"];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];

/// A small deterministic generator (SplitMix64): the same load every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One flush window's visits of one link in `hour`: 2-5 visits, each with a
/// referrer, browser, OS and device drawn from the lists above (so 6-13 values
/// per link and hour), one newest visit, later in each round.
fn link_tally(dice: &mut Dice, link_id: Uuid, hour: DateTime<Utc>, round: usize) -> LinkTally {
    let visits = 2 + dice.roll(4);
    let mut tally = HourTally {
        hour,
        human: 0,
        bot: 0,
        referrers: vec![],
        browsers: vec![],
        operating_systems: vec![],
        devices: vec![],
    };
    let add = |list: &mut Vec<ValueCount>, value: &str| match list.iter_mut().find(|v| v.value == value) {
        Some(v) => v.human += 1,
        None => list.push(ValueCount { value: value.to_owned(), human: 1, bot: 0 }),
    };
    for _ in 0..visits {
        tally.human += 1;
        add(&mut tally.referrers, REFERRERS[dice.roll(REFERRERS.len())]);
        add(&mut tally.browsers, BROWSERS[dice.roll(3)]);
        add(&mut tally.operating_systems, SYSTEMS[dice.roll(3)]);
        add(&mut tally.devices, DEVICES[dice.roll(2)]);
    }
    let recent = vec![RecentVisit {
        // Later rounds, later visits: time moves forward, the usual case.
        visited_at: hour + TimeDelta::seconds((round * 120 + dice.roll(120)) as i64),
        ip_address: Some("203.0.113.0".into()),
        user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0".into()),
        referrer: Some("https://www.google.com/".into()),
        bot: false,
    }];
    LinkTally { link_id, hours: vec![tally], recent }
}

#[tokio::test]
#[ignore = "a benchmark: run it alone with --ignored --nocapture"]
async fn apply_rounds_of_visits_over_many_links() {
    let links = env("LEDGER_BENCH_LINKS", 7_000);
    let rounds = env("LEDGER_BENCH_ROUNDS", 8);
    let db = TestDatabase::migrated().await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let ids: Vec<Uuid> = (0..links).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at)
         SELECT id, 'bench-' || id, 'https://example.com/', 0, 0, now() FROM UNNEST($1::uuid[]) AS l(id)",
    )
    .bind(&ids)
    .execute(&pool)
    .await
    .expect("links");
    let ledger = PgEventLedger::new(pool.clone());
    let hour: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().expect("hour");
    let mut dice = Dice(7);
    let mut times = Vec::new();
    for round in 0..rounds {
        let messages: Vec<InboxMessage> = ids
            .chunks(LINKS_PER_EVENT)
            .map(|chunk| InboxMessage {
                message_id: Uuid::now_v7(),
                event: Event::LinkVisited(LinkVisitedV2 {
                    version: 2,
                    links: chunk.iter().map(|id| link_tally(&mut dice, *id, hour, round)).collect(),
                    orphans: vec![],
                }),
            })
            .collect();
        let started = Instant::now();
        let outcome = ledger.apply(&messages.iter().collect::<Vec<_>>()).await.expect("apply");
        let elapsed = started.elapsed();
        assert_eq!(outcome.applied, messages.len() as u64);
        println!(
            "round {round}: {links} links in {} events, {:.1} ms ({})",
            messages.len(),
            elapsed.as_secs_f64() * 1e3,
            if round == 0 { "rows inserted" } else { "rows updated" }
        );
        times.push(elapsed.as_secs_f64() * 1e3);
    }
    let updates = &mut times[1..];
    updates.sort_by(f64::total_cmp);
    if !updates.is_empty() {
        println!("median of the update rounds: {:.1} ms", updates[updates.len() / 2]);
    }
    // The size of a link's rollups in either layout, after every round.
    let sizes: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT relname::text, reltuples::bigint, pg_total_relation_size(oid)
         FROM pg_class WHERE relname IN ('link_visits_hourly', 'link_visits_daily', 'link_rollups_hourly', 'link_rollups_daily')
         ORDER BY relname",
    )
    .fetch_all(&pool)
    .await
    .expect("sizes");
    for (table, _, bytes) in sizes {
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&pool)
            .await
            .expect("rows");
        println!("{table}: {rows} rows, {:.1} MB with indexes", bytes as f64 / 1e6);
    }
    pool.close().await;
}
