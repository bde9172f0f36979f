//! Valid events: visit totals, zero summaries for created links, de-duplication,
//! and visits of links that do not exist.

use chrono::Utc;
use offndat_test_support::{AmqpNamespace, Metrics, TestDatabase, amqp_url, eventually};
use uuid::Uuid;

use crate::helpers::{
    DEADLINE, Publisher, TestWorker, await_total, config, counter, insert_link, metrics, total, visited_body,
};

#[tokio::test]
async fn visit_batches_add_up_to_exact_totals_per_link() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let (a, b) = (insert_link(&db).await, insert_link(&db).await);
    let worker = TestWorker::spawn(&db, &namespace).await;
    let publisher = Publisher::new(&namespace).await;

    publisher.visited(Uuid::now_v7(), &[(a, 3)]).await;
    publisher.visited(Uuid::now_v7(), &[(a, 2), (b, 7)]).await;
    for _ in 0..20 {
        publisher.visited(Uuid::now_v7(), &[(b, 1)]).await;
    }

    await_total(&db, a, 5).await;
    await_total(&db, b, 27).await;
    assert_eq!(db.count("inbox").await, 22, "every message recorded once");
    assert_eq!(
        db.scalar("SELECT count(*) FROM visit_summaries WHERE last_visited_at IS NULL").await,
        0,
        "last visit recorded"
    );
    let topology = namespace.topology();
    assert_eq!(publisher.ready_count(&topology.link_visited_queue).await, 0);
    assert_eq!(publisher.ready_count(&topology.dead_letter_queue).await, 0);
    worker.stop().await;
}

#[tokio::test]
async fn a_created_link_gets_a_zero_summary_and_an_unknown_one_none() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let link = insert_link(&db).await;
    let unknown = Uuid::now_v7();
    let worker = TestWorker::spawn(&db, &namespace).await;
    let publisher = Publisher::new(&namespace).await;

    publisher.created(unknown).await;
    publisher.created(link).await;

    await_total(&db, link, 0).await;
    eventually(DEADLINE, "both messages recorded", || async {
        let n = db.count("inbox").await;
        if n == 2 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    assert_eq!(total(&db, unknown).await, -1, "no summary for a link that does not exist");
    assert_eq!(db.count("visit_summaries").await, 1);
    // A visit after creation adds to the zero row.
    publisher.visited(Uuid::now_v7(), &[(link, 4)]).await;
    await_total(&db, link, 4).await;
    worker.stop().await;
}

#[tokio::test]
async fn a_message_delivered_twice_is_counted_once() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let link = insert_link(&db).await;
    let worker = TestWorker::spawn(&db, &namespace).await;
    let publisher = Publisher::new(&namespace).await;
    let queue = namespace.topology().link_visited_queue;

    let id = Uuid::now_v7();
    publisher.visited(id, &[(link, 5)]).await;
    await_total(&db, link, 5).await;
    // Redelivered later, in another batch.
    publisher.visited(id, &[(link, 5)]).await;
    // Twice back to back, most likely within one batch.
    let twin = Uuid::now_v7();
    publisher.visited(twin, &[(link, 1)]).await;
    publisher.visited(twin, &[(link, 1)]).await;

    let metrics_seen = eventually(DEADLINE, "duplicates observed", || async {
        let metrics = Metrics::fetch(&worker.client, &worker.url("/metrics")).await?;
        let (applied, duplicate) = (counter(&metrics, &queue, "applied"), counter(&metrics, &queue, "duplicate"));
        if applied == 2 && duplicate == 2 { Ok(()) } else { Err(format!("applied {applied}, duplicate {duplicate}")) }
    });
    metrics_seen.await;
    assert_eq!(total(&db, link).await, 6, "each message counted once");
    assert_eq!(db.count("inbox").await, 2);
    assert_eq!(publisher.ready_count(&queue).await, 0);
    worker.stop().await;
}

#[tokio::test]
async fn visits_of_unknown_links_are_skipped_and_later_messages_still_apply() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let link = insert_link(&db).await;
    let unknown = Uuid::now_v7();
    let worker = TestWorker::spawn(&db, &namespace).await;
    let publisher = Publisher::new(&namespace).await;
    let topology = namespace.topology();

    publisher.visited(Uuid::now_v7(), &[(unknown, 9)]).await;
    publisher.visited(Uuid::now_v7(), &[(unknown, 1), (link, 2)]).await;
    await_total(&db, link, 2).await;
    publisher.visited(Uuid::now_v7(), &[(link, 3)]).await;

    await_total(&db, link, 5).await;
    assert_eq!(total(&db, unknown).await, -1, "nothing counted for an unknown link");
    assert_eq!(db.count("inbox").await, 3, "the skipped message is recorded too");
    assert_eq!(publisher.ready_count(&topology.dead_letter_queue).await, 0, "skipping is not poison");
    let metrics = metrics(&worker).await;
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "skipped"), 1);
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "applied"), 2);
    worker.stop().await;
}

/// A `link.visited` version 2 body: `visits` (human, bot) per link in one hour,
/// every visit from `referrer`, and one recent visit per link at `at`.
fn tally_body(visits: &[(Uuid, u64, u64)], hour: &str, referrer: &str, at: &str, orphans: u64) -> Vec<u8> {
    let value = |v: &str, h: u64, b: u64| serde_json::json!([{"value": v, "human": h, "bot": b}]);
    let links: Vec<serde_json::Value> = visits
        .iter()
        .map(|(id, human, bot)| {
            serde_json::json!({
                "linkId": id,
                "hours": [{
                    "hour": hour, "human": human, "bot": bot,
                    "referrers": value(referrer, *human, *bot),
                    "browsers": value("Chrome", *human, *bot),
                    "operatingSystems": value("Windows", *human, *bot),
                    "devices": value("desktop", *human, *bot),
                }],
                "recent": [{"visitedAt": at, "ipAddress": "203.0.113.0", "userAgent": "ua", "referrer": null, "bot": false}],
            })
        })
        .collect();
    serde_json::to_vec(
        &serde_json::json!({"version": 2, "links": links, "orphans": [{"hour": hour, "visits": orphans}]}),
    )
    .expect("json")
}

#[tokio::test]
async fn version_2_tallies_apply_once_to_totals_newest_visits_and_rollups() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let (a, b) = (insert_link(&db).await, insert_link(&db).await);
    let deleted = Uuid::now_v7();
    let worker = TestWorker::spawn(&db, &namespace).await;
    let publisher = Publisher::new(&namespace).await;

    let first = Uuid::now_v7().to_string();
    let body = tally_body(
        &[(a, 3, 1), (b, 2, 0), (deleted, 9, 0)],
        "2026-11-21T10:00:00Z",
        "x.example",
        "2026-11-21T10:59:00Z",
        5,
    );
    publisher.publish_raw("link.visited", Some(&first), Some("link.visited"), &body).await;
    // Redelivered (same id): no effect.
    publisher.publish_raw("link.visited", Some(&first), Some("link.visited"), &body).await;
    let later = tally_body(&[(a, 1, 0)], "2026-11-21T11:00:00Z", "", "2026-11-21T11:00:01Z", 0);
    publisher.publish_raw("link.visited", Some(&Uuid::now_v7().to_string()), Some("link.visited"), &later).await;

    await_total(&db, a, 5).await;
    await_total(&db, b, 2).await;
    let bots = |id: Uuid| format!("SELECT bot_visits FROM visit_summaries WHERE link_id = '{id}'");
    assert_eq!(db.scalar(&bots(a)).await, 1);
    let newest = db
        .scalar(&format!("SELECT jsonb_array_length(visits)::bigint FROM link_recent_visits WHERE link_id = '{a}'"))
        .await;
    assert_eq!(newest, 2, "the newest of both messages, merged");
    let first_newest: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT visits -> 0 ->> 'visitedAt' FROM link_recent_visits WHERE link_id = '{a}'"
    )))
    .fetch_one(&mut db.connect().await)
    .await
    .expect("newest");
    assert!(first_newest.starts_with("2026-11-21T11:00:01"), "newest first: {first_newest}");

    // A late message with an older visit (a replica's flush delayed): merged in
    // order, not prepended.
    let late = tally_body(&[(a, 1, 0)], "2026-11-21T09:00:00Z", "", "2026-11-21T09:30:00Z", 0);
    publisher.publish_raw("link.visited", Some(&Uuid::now_v7().to_string()), Some("link.visited"), &late).await;
    await_total(&db, a, 6).await;
    let order: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT v ->> 'visitedAt' FROM link_recent_visits, jsonb_array_elements(visits) v WHERE link_id = '{a}'"
    )))
    .fetch_all(&mut db.connect().await)
    .await
    .expect("order");
    assert_eq!(order.len(), 3);
    assert!(order[0].starts_with("2026-11-21T11:00:01") && order[2].starts_with("2026-11-21T09:30"), "{order:?}");

    let sum =
        |table: &str, filter: &str| format!("SELECT COALESCE(sum(human + bot), 0)::bigint FROM {table} WHERE {filter}");
    // One row per link and bucket; each dimension's values (human and bot) sum
    // to the bucket's visits.
    let by_dimension = |table: &str, dimension: i16| {
        format!(
            "SELECT COALESCE(sum(e.value::bigint), 0)::bigint
             FROM {table} r, LATERAL (SELECT * FROM jsonb_each(r.human_by) UNION ALL SELECT * FROM jsonb_each(r.bot_by)) e
             WHERE r.link_id = '{a}' AND left(e.key, 1) = '{dimension}'"
        )
    };
    let table = "link_rollups_hourly";
    assert_eq!(db.scalar(&sum(table, &format!("link_id = '{a}'"))).await, 6, "{table}");
    for dimension in 0..4 {
        assert_eq!(db.scalar(&by_dimension(table, dimension)).await, 6, "{table} dimension {dimension}");
    }
    assert_eq!(db.scalar(&format!("SELECT count(*) FROM link_rollups_hourly WHERE link_id = '{a}'")).await, 3);
    // The day is in its daily row once the worker's compaction has run (at its
    // start and every minute, so either may hold here), and pending until then:
    // read from exactly one of the two, it holds all six.
    let day = db
        .scalar(&format!(
            "SELECT CASE WHEN s.daily_pending_from <= '2026-11-21'
                    THEN (SELECT sum(human + bot) FROM link_rollups_hourly WHERE link_id = s.link_id AND bucket >= '2026-11-21')
                    ELSE (SELECT human + bot FROM link_rollups_daily WHERE link_id = s.link_id AND bucket = '2026-11-21') END::bigint
             FROM visit_summaries s WHERE s.link_id = '{a}'"
        ))
        .await;
    assert_eq!(day, 6);
    assert_eq!(db.count("link_visits_hourly").await + db.count("link_visits_daily").await, 0, "the old layout unused");
    assert_eq!(db.scalar(&sum("service_visits_hourly", "dimension = 0")).await, 8, "the unknown link's 9 skipped");
    assert_eq!(db.scalar(&sum("service_visits_daily", "dimension = 9")).await, 5, "orphans counted once");
    assert_eq!(db.count("visit_summaries").await, 2);

    let metrics = metrics(&worker).await;
    let visits =
        |outcome: &str| metrics.value(&format!("offndat_worker_visits_total{{outcome=\"{outcome}\"}}")).unwrap_or(0.0);
    assert!(visits("skipped") >= 9.0, "{metrics}");
    let topology = namespace.topology();
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "duplicate"), 1);
    worker.stop().await;
}

#[tokio::test]
async fn a_batch_stops_filling_at_its_byte_bound() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let link = insert_link(&db).await;
    let publisher = Publisher::new(&namespace).await;
    // Queued before the worker starts: without the bound one batch takes them all.
    let messages = 10;
    for _ in 0..messages {
        publisher.visited(Uuid::now_v7(), &[(link, 1)]).await;
    }
    let body = visited_body(&[(link, 1)], Utc::now()).len();
    let extra = ["--worker-batch-max-bytes", "1024"];
    let worker = TestWorker::spawn_with(config(&db.url, &amqp_url(), &namespace.name, &extra)).await;

    await_total(&db, link, messages).await;
    let queue = namespace.topology().link_visited_queue;
    let batches = metrics(&worker)
        .await
        .value(&format!("offndat_worker_batch_duration_seconds_count{{queue=\"{queue}\"}}"))
        .unwrap_or(0.0) as i64;
    // A batch takes messages until its bodies reach 1,024 bytes.
    let most_per_batch = 1024u64.div_ceil(body as u64);
    assert!(
        batches as u64 >= (messages as u64).div_ceil(most_per_batch),
        "{batches} batches for {messages} messages of {body} bytes under a 1,024-byte bound"
    );
    worker.stop().await;
}
