//! Worker replicas applying batches at the same time: link rollups stay exact
//! (every dimension sums to each bucket's total) and no batch deadlocks.

use chrono::{DateTime, TimeDelta, Utc};
use offndat_application::apply_events::{EventLedger, InboxMessage};
use offndat_application::events::{Event, HourTally, LinkTally, LinkVisitedV2, ValueCount};
use offndat_infrastructure::postgres::PgEventLedger;
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
                ledger.apply(&batch).await.expect("a batch applies, never a deadlock");
            }
        })
    });
    for replica in replicas.collect::<Vec<_>>() {
        replica.await.expect("replica");
    }

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
