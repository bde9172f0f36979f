//! Messages the worker cannot read go to the dead-letter queue at once, without
//! effect, and do not hold up the messages after them.

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use offndat_infrastructure::amqp::dead_letter_arguments;
use offndat_test_support::{AmqpNamespace, TestDatabase, amqp_url, eventually};
use uuid::Uuid;

use crate::helpers::{
    DEADLINE, Publisher, TestWorker, await_total, batch_with_a_failing_lane, config, counter, insert_link, metrics,
    visited_body,
};

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
    let metrics = metrics(&worker).await;
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "dead_lettered"), 7);
    assert_eq!(counter(&metrics, &topology.link_created_queue, "dead_lettered"), 1);
    worker.stop().await;
}

#[tokio::test]
async fn a_message_postgres_refuses_is_dead_lettered_alone_and_its_batch_mates_apply() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let topology = namespace.topology();
    // PostgreSQL refuses any summary of `poisoned`: a permanent failure that
    // fails whatever batch holds it. The good lane commits and is acknowledged
    // as applied while the other is split.
    let (good, _poisoned, publisher, worker) = batch_with_a_failing_lane(&db, &namespace, "refuse", "P0001", 1).await;

    await_total(&db, good, 3).await;
    eventually(DEADLINE, "the refused message dead-lettered", || async {
        let n = publisher.ready_count(&topology.dead_letter_queue).await;
        if n == 1 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    assert_eq!(db.count("inbox").await, 2, "the refused message left no trace");
    assert_eq!(publisher.ready_count(&topology.link_visited_queue).await, 0);
    let metrics = metrics(&worker).await;
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "dead_lettered"), 1);
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "applied"), 2);
    assert_eq!(
        counter(&metrics, &topology.link_visited_queue, "duplicate"),
        0,
        "the committed lane is not applied again"
    );
    worker.stop().await;
}

#[tokio::test]
async fn oversized_messages_and_inflated_counts_are_dead_lettered_unapplied() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let link = insert_link(&db).await;
    let extra = ["--worker-max-message-bytes", "2048", "--worker-max-visits-per-link", "1000"];
    let worker = TestWorker::spawn_with(config(&db.url, &amqp_url(), &namespace.name, &extra)).await;
    let publisher = Publisher::new(&namespace).await;
    let topology = namespace.topology();
    let id = || Uuid::now_v7().to_string();

    // Over the size limit: refused before it is parsed, even though it is valid.
    let links: Vec<(Uuid, u32)> = (0..40).map(|_| (link, 1)).collect();
    let big = visited_body(&links, chrono::Utc::now());
    assert!(big.len() > 2048, "{} bytes", big.len());
    publisher.publish_raw("link.visited", Some(&id()), Some("link.visited"), &big).await;
    // 600 + 600 visits of one link in one message: over 1,000.
    let inflated = visited_body(&[(link, 600), (link, 600)], chrono::Utc::now());
    publisher.publish_raw("link.visited", Some(&id()), Some("link.visited"), &inflated).await;
    eventually(DEADLINE, "two dead letters", || async {
        let n = publisher.ready_count(&topology.dead_letter_queue).await;
        if n == 2 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;

    // At the limit is fine.
    publisher
        .publish_raw(
            "link.visited",
            Some(&id()),
            Some("link.visited"),
            &visited_body(&[(link, 1000)], chrono::Utc::now()),
        )
        .await;
    await_total(&db, link, 1000).await;
    assert_eq!(db.count("inbox").await, 1, "the refused messages left no trace");
    worker.stop().await;
}

#[tokio::test]
async fn the_dead_letter_queue_is_bounded_and_an_older_unbounded_one_still_works() {
    // Bounded: declaring it with other arguments is refused by the broker.
    let namespace = AmqpNamespace::new();
    let topology = namespace.topology();
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("connect");
    topology.declare(&connection).await.expect("declare");
    let channel = connection.create_channel().await.expect("channel");
    let refused = channel
        .queue_declare(
            topology.dead_letter_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await;
    assert!(refused.is_err(), "an unbounded redeclaration is refused, so the bounds are set");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            topology.dead_letter_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            dead_letter_arguments(),
        )
        .await
        .expect("the same bounds are accepted");

    // A namespace whose dead-letter queue an older release declared without bounds:
    // the worker still starts, consumes and dead-letters into it.
    let db = TestDatabase::migrated().await;
    let old = AmqpNamespace::new();
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            old.topology().dead_letter_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .expect("an unbounded queue, as before");
    let link = insert_link(&db).await;
    let worker = TestWorker::spawn(&db, &old).await;
    let publisher = Publisher::new(&old).await;
    publisher.publish_raw("link.visited", Some(&Uuid::now_v7().to_string()), Some("link.visited"), b"{").await;
    publisher.visited(Uuid::now_v7(), &[(link, 3)]).await;
    await_total(&db, link, 3).await;
    eventually(DEADLINE, "the dead letter in the old queue", || async {
        let n = publisher.ready_count(&old.topology().dead_letter_queue).await;
        if n == 1 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    worker.stop().await;
}
