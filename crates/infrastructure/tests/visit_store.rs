//! Writing a flush is idempotent: a batch retried after a commit whose reply was
//! lost writes nothing twice.

use chrono::{DateTime, Utc};
use offndat_application::VisitTally;
use offndat_application::events::RecentVisit;
use offndat_domain::{DeviceClass, UserAgentClass};
use offndat_infrastructure::config::VisitLog;
use offndat_infrastructure::postgres::{FlushBatch, PgVisitStore};
use offndat_test_support::TestDatabase;
use uuid::Uuid;

#[tokio::test]
async fn a_retried_batch_is_written_once() {
    let db = TestDatabase::migrated().await;
    let link = Uuid::now_v7();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at)
         VALUES ('{link}', 'retried-batch-walrus', 'https://example.com/', 0, 0, now())"
    )))
    .execute(&mut db.connect().await)
    .await
    .expect("link");
    let at: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().expect("time");
    let class =
        UserAgentClass { bot: false, browser: "Chrome".into(), os: "Linux".into(), device: DeviceClass::Desktop };
    let mut tally = VisitTally::default();
    tally.add(link, at, &class, "", 2);
    tally.add_orphans(at, 3);
    let visit = |n: i64| RecentVisit {
        visited_at: at + chrono::TimeDelta::seconds(n),
        ip_address: None,
        user_agent: Some("ua".into()),
        referrer: None,
        bot: false,
    };
    let raw = vec![(link, visit(1)), (link, visit(2)), (Uuid::now_v7(), visit(3))];
    let batch = FlushBatch::new(&tally, raw).expect("something to write");
    assert_eq!((batch.visits, batch.links), (2, 1));

    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let store = PgVisitStore::new(pool.clone(), VisitLog::Full);
    store.write(&batch).await.expect("first write");
    store.write(&batch).await.expect("the retry");
    assert_eq!(db.scalar("SELECT count(*) FROM outbox WHERE event_type = 'link.visited'").await, 1);
    assert_eq!(db.count("visits").await, 2, "the raw log once, without the unknown link's visit");
    // Stored as text for the relay to send on unparsed (migration `outbox_body`).
    let (event, payload): (serde_json::Value, Option<serde_json::Value>) =
        sqlx::query_as("SELECT body::jsonb, payload FROM outbox").fetch_one(&pool).await.expect("body");
    assert_eq!(payload, None, "no jsonb copy");
    assert_eq!(event["orphans"][0]["visits"], 3);
    assert_eq!(event["links"][0]["hours"][0]["human"], 2);
    assert!(FlushBatch::new(&VisitTally::default(), Vec::new()).is_none(), "nothing to write, no batch");
    pool.close().await;
}
