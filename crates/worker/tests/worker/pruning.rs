//! The periodic chores: inbox pruning forgets old message ids and keeps recent
//! ones; the running worker compacts closed days' rollups.

use std::time::Duration;

use offndat_application::apply_events::EventLedger;
use offndat_infrastructure::postgres::PgEventLedger;
use offndat_test_support::{AmqpNamespace, TestDatabase, eventually};

use crate::helpers::{TestWorker, insert_link};

#[tokio::test]
async fn inbox_rows_older_than_the_retention_are_pruned() {
    let db = TestDatabase::migrated().await;
    let mut conn = db.connect().await;
    sqlx::query(
        "INSERT INTO inbox (message_id, event_type, processed_at)
         SELECT gen_random_uuid(), 'link.visited', now() - interval '2 days' FROM generate_series(1, 12000)
         UNION ALL
         SELECT gen_random_uuid(), 'link.visited', now() - interval '1 hour' FROM generate_series(1, 5)",
    )
    .execute(&mut conn)
    .await
    .expect("insert inbox rows");
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let ledger = PgEventLedger::new(pool.clone());

    // More than two chunks' worth goes, the recent rows stay.
    let deleted = ledger.prune_inbox(Duration::from_secs(24 * 3600)).await.expect("prune");
    assert_eq!(deleted, 12_000);
    assert_eq!(db.count("inbox").await, 5);
    assert_eq!(ledger.prune_inbox(Duration::from_secs(24 * 3600)).await.expect("prune"), 0);
    pool.close().await;
}

#[tokio::test]
async fn the_worker_compacts_closed_days_into_daily_rollups() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let link = insert_link(&db).await;
    // Two hours of a closed day, pending, as a batch leaves them.
    let mut conn = db.connect().await;
    sqlx::query(
        "INSERT INTO link_rollups_hourly (link_id, bucket, human, bot, human_by, bot_by) VALUES
             ($1, '2026-11-20T08:00:00Z', 2, 1, '{\"0\": 2, \"1Chrome\": 2}', '{\"0\": 1, \"1Googlebot\": 1}'),
             ($1, '2026-11-20T09:00:00Z', 3, 0, '{\"0a.example\": 3, \"1Chrome\": 3}', '{}')",
    )
    .bind(link)
    .execute(&mut conn)
    .await
    .expect("hourly rows");
    sqlx::query(
        "INSERT INTO visit_summaries (link_id, total_visits, bot_visits, last_visited_at, daily_pending_from)
         VALUES ($1, 6, 1, '2026-11-20T09:10:00Z', '2026-11-20')",
    )
    .bind(link)
    .execute(&mut conn)
    .await
    .expect("summary");

    let worker = TestWorker::spawn(&db, &namespace).await;
    let query = format!(
        "SELECT human::text || ' ' || bot::text || ' ' || human_by::text || ' ' || bot_by::text
         FROM link_rollups_daily WHERE link_id = '{link}' AND bucket = '2026-11-20'"
    );
    let row = eventually(Duration::from_secs(10), "the closed day compacted", || async {
        db.text(&query).await.ok_or_else(|| "no daily row".to_owned())
    })
    .await;
    assert_eq!(row, r#"5 1 {"0": 2, "1Chrome": 5, "0a.example": 3} {"0": 1, "1Googlebot": 1}"#);
    let pending =
        db.text(&format!("SELECT daily_pending_from::text FROM visit_summaries WHERE link_id = '{link}'")).await;
    assert_eq!(pending, None, "no visit since: nothing pending");
    worker.stop().await;
}
