//! Inbox pruning forgets old message ids and keeps recent ones.

use std::time::Duration;

use offndat_application::apply_events::EventLedger;
use offndat_infrastructure::postgres::PgEventLedger;
use offndat_test_support::TestDatabase;

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
