//! Messages the worker cannot read go to the dead-letter queue at once, without
//! effect, and do not hold up the messages after them.

use offndat_test_support::{AmqpNamespace, TestDatabase, eventually};
use uuid::Uuid;

use crate::helpers::{DEADLINE, Publisher, TestWorker, await_total, counter, insert_link, visited_body};

#[tokio::test]
async fn unreadable_messages_are_dead_lettered_at_once_and_change_nothing() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let link = insert_link(&db).await;
    let worker = TestWorker::spawn(&db, &namespace).await;
    let publisher = Publisher::new(&namespace).await;
    let topology = namespace.topology();
    let valid = visited_body(&[(link, 4)], chrono::Utc::now());
    let id = || Uuid::now_v7().to_string();

    // Invalid JSON.
    publisher.publish_raw("link.visited", Some(&id()), Some("link.visited"), b"{not json").await;
    // Valid JSON of the wrong shape.
    publisher
        .publish_raw("link.visited", Some(&id()), Some("link.visited"), br#"{"version":1,"links":[{"linkId":"x"}]}"#)
        .await;
    // A version the worker does not know.
    publisher.publish_raw("link.visited", Some(&id()), Some("link.visited"), br#"{"version":3,"links":[]}"#).await;
    // An unknown type, and no type at all.
    publisher.publish_raw("link.visited", Some(&id()), Some("link.deleted"), &valid).await;
    publisher.publish_raw("link.visited", Some(&id()), None, &valid).await;
    // No message id, and one that is not a UUID.
    publisher.publish_raw("link.visited", None, Some("link.visited"), &valid).await;
    publisher.publish_raw("link.visited", Some("message-1"), Some("link.visited"), &valid).await;
    // The same on the other queue.
    publisher.publish_raw("link.created", Some(&id()), Some("link.created"), b"[]").await;

    eventually(DEADLINE, "eight dead letters", || async {
        let n = publisher.ready_count(&topology.dead_letter_queue).await;
        if n == 8 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    // A valid message after them is applied: nothing is stuck.
    publisher.publish_raw("link.visited", Some(&id()), Some("link.visited"), &valid).await;
    await_total(&db, link, 4).await;

    assert_eq!(db.count("inbox").await, 1, "only the valid message recorded");
    assert_eq!(db.count("visit_summaries").await, 1);
    assert_eq!(publisher.ready_count(&topology.link_visited_queue).await, 0, "none requeued");
    assert_eq!(publisher.ready_count(&topology.link_created_queue).await, 0, "none requeued");
    assert_eq!(publisher.ready_count(&topology.dead_letter_queue).await, 8, "dead letters stay put");
    let metrics = worker.client.get(worker.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "dead_lettered"), 7);
    assert_eq!(counter(&metrics, &topology.link_created_queue, "dead_lettered"), 1);
    worker.stop().await;
}

#[tokio::test]
async fn a_message_postgres_refuses_is_dead_lettered_alone_and_its_batch_mates_apply() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let (good, poisoned) = (insert_link(&db).await, insert_link(&db).await);
    // PostgreSQL refuses any summary of `poisoned`: a permanent failure that fails
    // whatever batch holds it.
    let mut conn = db.connect().await;
    for statement in [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'refused by the test'; END; $$"
            .to_owned(),
        format!(
            "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON visit_summaries
             FOR EACH ROW WHEN (NEW.link_id = '{poisoned}') EXECUTE FUNCTION refuse()"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await.expect("create trigger");
    }
    let publisher = Publisher::new(&namespace).await;
    let topology = namespace.topology();
    // Published before the worker starts, so they arrive in one batch.
    publisher.visited(Uuid::now_v7(), &[(good, 1)]).await;
    publisher.visited(Uuid::now_v7(), &[(poisoned, 1)]).await;
    publisher.visited(Uuid::now_v7(), &[(good, 2)]).await;
    let worker = TestWorker::spawn(&db, &namespace).await;

    await_total(&db, good, 3).await;
    eventually(DEADLINE, "the refused message dead-lettered", || async {
        let n = publisher.ready_count(&topology.dead_letter_queue).await;
        if n == 1 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    assert_eq!(db.count("inbox").await, 2, "the refused message left no trace");
    assert_eq!(publisher.ready_count(&topology.link_visited_queue).await, 0);
    let metrics = worker.client.get(worker.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "dead_lettered"), 1);
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "applied"), 2);
    worker.stop().await;
}
