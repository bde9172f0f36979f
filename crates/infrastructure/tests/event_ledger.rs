//! Worker replicas applying batches while others compact daily rollups: link
//! rollups stay exact (every dimension sums to each bucket's total, each day's
//! row to its hours), no batch deadlocks, and a day is read from exactly one of
//! the two tables whatever the compaction has done.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use offndat_application::apply_events::{EventLedger, InboxMessage};
use offndat_application::events::{Event, HourTally, LinkTally, LinkVisitedV2, RecentVisit, ValueCount};
use offndat_application::ports::VisitStatsStore;
use offndat_domain::stats::{Granularity, StatsRange, VisitCounts};
use offndat_infrastructure::postgres::{PgEventLedger, PgVisitStatsStore};
use offndat_test_support::TestDatabase;
use uuid::Uuid;

const LINKS: usize = 200;
const ROUNDS: usize = 10;

fn value(value: &str, human: u64, bot: u64) -> Vec<ValueCount> {
    vec![ValueCount { value: value.to_owned(), human, bot }]
}

/// One visit of each link in `hour`, its values depending on `replica` and
/// `round`, so the objects gain keys and add to existing ones.
fn event(links: &[Uuid], hour: DateTime<Utc>, replica: usize, round: usize) -> InboxMessage {
    let bot = (replica + round).is_multiple_of(3);
    let (human, bots) = if bot { (0, 1) } else { (1, 0) };
    let links = links
        .iter()
        .map(|id| LinkTally {
            link_id: *id,
            hours: vec![HourTally {
                hour,
                human,
                bot: bots,
                referrers: value(["", "a.example", "b.example"][round % 3], human, bots),
                browsers: value(["Chrome", "Firefox"][replica % 2], human, bots),
                operating_systems: value("Linux", human, bots),
                devices: value(["desktop", "mobile", "bot"][round % 3], human, bots),
            }],
            recent: vec![],
        })
        .collect();
    InboxMessage {
        message_id: Uuid::now_v7(),
        event: Event::LinkVisited(LinkVisitedV2 { version: 2, links, orphans: vec![] }),
    }
}

#[tokio::test]
async fn concurrent_replicas_add_up_exactly_without_deadlocks() {
    let db = TestDatabase::migrated().await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let ids: Vec<Uuid> = (0..LINKS).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at)
         SELECT id, 'replica-' || id, 'https://example.com/', 0, 0, now() FROM UNNEST($1::uuid[]) AS l(id)",
    )
    .bind(&ids)
    .execute(&pool)
    .await
    .expect("links");
    let hour: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().expect("hour");
    let next_day: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().expect("day");

    // A third replica compacts the (closed) day over and over meanwhile.
    let applying = Arc::new(AtomicBool::new(true));
    let compactor = {
        let (ledger, applying) = (PgEventLedger::new(pool.clone()), applying.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            while applying.load(Ordering::Relaxed) {
                ledger.compact_daily_rollups(next_day).await.expect("compaction never deadlocks");
                runs += 1;
            }
            runs
        })
    };
    let replicas = (0..2).map(|replica| {
        let ledger = PgEventLedger::new(pool.clone());
        // Each replica's links in a different order within its batches: the
        // ledger sorts them, so locks are still taken in one order.
        let mut links = ids.clone();
        if replica == 1 {
            links.reverse();
        }
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                // Two hours per batch, one shared with the other replica.
                let batch = [
                    event(&links, hour, replica, round),
                    event(&links, hour + TimeDelta::hours(1 + replica as i64), replica, round),
                ];
                ledger.apply(&[&batch[0], &batch[1]]).await.expect("a batch applies, never a deadlock");
            }
        })
    });
    for replica in replicas.collect::<Vec<_>>() {
        replica.await.expect("replica");
    }
    applying.store(false, Ordering::Relaxed);
    assert!(compactor.await.expect("compactor") > 0);
    // What the batches after the last run left pending.
    PgEventLedger::new(pool.clone()).compact_daily_rollups(next_day).await.expect("compaction");
    assert_eq!(
        db.scalar("SELECT count(*) FROM visit_summaries WHERE daily_pending_from < '2026-11-22T00:00:00Z'").await,
        0,
        "nothing before the compaction's day left pending"
    );

    let per_link = (2 * 2 * ROUNDS) as i64;
    let expected_rows = i64::try_from(LINKS * 3).expect("rows");
    assert_eq!(db.count("link_rollups_hourly").await, expected_rows, "one row per link and hour");
    assert_eq!(db.count("link_rollups_daily").await, i64::try_from(LINKS).expect("rows"));
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM link_rollups_daily WHERE human + bot <> {per_link}")).await,
        0,
        "{per_link} visits per link and day"
    );
    // Every dimension of every row sums to the row's human and bot counts.
    for table in ["link_rollups_hourly", "link_rollups_daily"] {
        let mismatches = db
            .scalar(&format!(
                "SELECT count(*) FROM {table} r, generate_series(0, 3) AS d
                 WHERE r.human <> (SELECT COALESCE(sum(value::bigint), 0) FROM jsonb_each(r.human_by) WHERE left(key, 1) = d::text)
                    OR r.bot <> (SELECT COALESCE(sum(value::bigint), 0) FROM jsonb_each(r.bot_by) WHERE left(key, 1) = d::text)"
            ))
            .await;
        assert_eq!(mismatches, 0, "{table}");
    }
    pool.close().await;
}

async fn link(pool: &sqlx::PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at)
         VALUES ($1, 'compact-' || $1, 'https://example.com/', 0, 0, now())",
    )
    .bind(id)
    .execute(pool)
    .await
    .expect("link");
    id
}

/// `event` for one link with its visit as the newest, as the API sends it.
fn visit(link: Uuid, hour: DateTime<Utc>, round: usize) -> InboxMessage {
    let mut message = event(&[link], hour, 0, round);
    if let Event::LinkVisited(visited) = &mut message.event {
        visited.links[0].recent = vec![RecentVisit {
            visited_at: hour + TimeDelta::minutes(30),
            ip_address: None,
            user_agent: None,
            referrer: None,
            bot: false,
        }];
    }
    message
}

/// The link's visits by day over 2026-11-20 .. 2026-11-24, as a stats read sees them.
async fn by_day(stats: &PgVisitStatsStore, link: Uuid) -> Vec<(String, i64)> {
    let range = StatsRange::new(
        "2026-11-20T00:00:00Z".parse().expect("from"),
        "2026-11-24T00:00:00Z".parse().expect("to"),
        Granularity::Day,
    )
    .expect("range");
    let rows = stats.link_rollups(link, &range).await.expect("stats");
    let mut days: Vec<(String, i64)> = rows
        .buckets
        .into_iter()
        .map(|(day, VisitCounts { human, bot })| (day.format("%d").to_string(), human + bot))
        .collect();
    days.sort();
    days
}

#[tokio::test]
async fn a_closed_day_is_compacted_once_and_again_after_late_visits() {
    let db = TestDatabase::migrated().await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let (ledger, stats) = (PgEventLedger::new(pool.clone()), PgVisitStatsStore::new(pool.clone()));
    let a = link(&pool).await;
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("time") };
    let pending =
        format!("SELECT extract(epoch FROM daily_pending_from)::bigint FROM visit_summaries WHERE link_id = '{a}'");
    let daily =
        |d: &str| format!("SELECT human + bot FROM link_rollups_daily WHERE link_id = '{a}' AND bucket = '{d}'");

    // Two hours of the 21st and one of the 22nd.
    let apply = |hour: &str, round: usize| {
        let batch = [visit(a, at(hour), round)];
        let ledger = ledger.clone();
        async move { ledger.apply(&[&batch[0]]).await }
    };
    apply("2026-11-21T10:00:00Z", 1).await.expect("batch");
    apply("2026-11-21T11:00:00Z", 2).await.expect("batch");
    apply("2026-11-22T09:00:00Z", 1).await.expect("batch");
    assert_eq!(db.scalar(&pending).await, at("2026-11-21T00:00:00Z").timestamp(), "from the first day visited");
    assert_eq!(db.count("link_rollups_daily").await, 0, "batches write hourly rows only");
    let expected = vec![("21".to_owned(), 2), ("22".to_owned(), 1)];
    assert_eq!(by_day(&stats, a).await, expected, "pending days are read from their hours");

    // On the 22nd only the 21st is closed.
    assert_eq!(ledger.compact_daily_rollups(at("2026-11-22T08:00:00Z")).await.expect("compaction"), 1);
    assert_eq!(db.scalar(&daily("2026-11-21")).await, 2);
    assert_eq!(db.count("link_rollups_daily").await, 1, "the open day is not compacted");
    assert_eq!(db.scalar(&pending).await, at("2026-11-22T00:00:00Z").timestamp(), "the 22nd stays pending");
    assert_eq!(by_day(&stats, a).await, expected, "the same counts from the daily row");
    assert_eq!(ledger.compact_daily_rollups(at("2026-11-22T09:00:00Z")).await.expect("compaction"), 0, "idle");

    // A late visit to the compacted 21st: the day is pending again, read from
    // its hours until compacted again, then replaced (not added to).
    apply("2026-11-21T23:00:00Z", 3).await.expect("late batch");
    assert_eq!(db.scalar(&pending).await, at("2026-11-21T00:00:00Z").timestamp());
    let with_late = vec![("21".to_owned(), 3), ("22".to_owned(), 1)];
    assert_eq!(by_day(&stats, a).await, with_late);
    // A stale daily row for a pending day (a worker of an earlier release wrote
    // daily rows too) is neither read nor added to.
    sqlx::query("INSERT INTO link_rollups_daily (link_id, bucket, human) VALUES ($1, '2026-11-22', 40)")
        .bind(a)
        .execute(&pool)
        .await
        .expect("stale row");
    assert_eq!(by_day(&stats, a).await, with_late);
    assert_eq!(ledger.compact_daily_rollups(at("2026-11-23T00:00:00Z")).await.expect("compaction"), 1);
    assert_eq!(db.scalar(&daily("2026-11-21")).await, 3);
    assert_eq!(db.scalar(&daily("2026-11-22")).await, 1, "replaced from its hours");
    assert_eq!(by_day(&stats, a).await, with_late);
    // No visit on or after the 23rd: nothing left pending.
    let open = db.text(&format!("SELECT daily_pending_from::text FROM visit_summaries WHERE link_id = '{a}'")).await;
    assert_eq!(open, None);

    // An event whose hours are newer than its newest visits (none here): the
    // compaction goes by the hourly rows, so the new day stays pending and read.
    apply("2026-11-22T10:00:00Z", 4).await.expect("batch");
    ledger.apply(&[&event(&[a], at("2026-11-23T01:00:00Z"), 0, 5)]).await.expect("batch without newest visits");
    assert_eq!(ledger.compact_daily_rollups(at("2026-11-23T02:00:00Z")).await.expect("compaction"), 1);
    assert_eq!(db.scalar(&pending).await, at("2026-11-23T00:00:00Z").timestamp(), "the 23rd has hours: pending");
    let expected = vec![("21".to_owned(), 3), ("22".to_owned(), 2), ("23".to_owned(), 1)];
    assert_eq!(by_day(&stats, a).await, expected);
    pool.close().await;
}

/// A link's ten newest visits (over PostgreSQL's 2 kB compression threshold) are
/// stored with lz4, the cheaper method the migrations set on every JSON column
/// the worker rewrites and on the outbox's visit events, and read back whole.
#[tokio::test]
async fn a_full_newest_visits_array_is_stored_with_lz4() {
    let db = TestDatabase::migrated().await;
    let lz4 = "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)";
    if db.scalar(lz4).await == 0 {
        return; // A server built without lz4 keeps pglz (the migration says so).
    }
    // Set by the migration, whatever the server's default.
    let columns = db
        .scalar(
            "SELECT count(*) FROM pg_attribute
             WHERE attcompression = 'l' AND NOT attisdropped
               AND (attrelid, attname) IN (('link_recent_visits'::regclass, 'visits'),
                   ('link_rollups_hourly'::regclass, 'human_by'), ('link_rollups_hourly'::regclass, 'bot_by'),
                   ('link_rollups_daily'::regclass, 'human_by'), ('link_rollups_daily'::regclass, 'bot_by'),
                   ('outbox'::regclass, 'body'))",
        )
        .await;
    assert_eq!(columns, 6, "newest visits, rollup counts and the outbox's visit events");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let link = link(&pool).await;
    let ledger = PgEventLedger::new(pool.clone());
    let hour: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().expect("hour");
    let mut message = event(&[link], hour, 0, 0);
    if let Event::LinkVisited(visited) = &mut message.event {
        visited.links[0].recent = (0..10)
            .map(|i| RecentVisit {
                visited_at: hour + TimeDelta::minutes(50 - i),
                ip_address: Some("203.0.113.0".into()),
                user_agent: Some(format!(
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.{i}.0 Safari/537.36"
                )),
                referrer: Some(format!("https://www.example.com/articles/{i}?utm_source=newsletter")),
                bot: false,
            })
            .collect();
    }
    ledger.apply(&[&message]).await.expect("apply");
    let row = format!("FROM link_recent_visits WHERE link_id = '{link}'");
    assert!(db.scalar(&format!("SELECT length(visits::text)::bigint {row}")).await > 2_048, "over the threshold");
    assert_eq!(db.text(&format!("SELECT pg_column_compression(visits) {row}")).await.as_deref(), Some("lz4"));
    assert_eq!(db.scalar(&format!("SELECT jsonb_array_length(visits)::bigint {row}")).await, 10);
    assert_eq!(
        db.text(&format!("SELECT visits -> 9 ->> 'referrer' {row}")).await.as_deref(),
        Some("https://www.example.com/articles/9?utm_source=newsletter")
    );
    pool.close().await;
}
