//! Dependencies going away while the worker runs: PostgreSQL (the batch is held
//! and applied once it returns) and RabbitMQ (the worker reconnects by itself).

use offndat_test_support::{AmqpNamespace, TcpProxy, TestDatabase, amqp_url, eventually};
use uuid::Uuid;

use crate::helpers::{
    DEADLINE, Publisher, TestWorker, await_total, batch_with_a_failing_lane, config, counter, insert_link, metrics,
    total,
};

#[tokio::test]
async fn a_postgres_outage_holds_deliveries_and_applies_them_exactly_once_when_it_returns() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let proxy = TcpProxy::to_port(5432).await;
    let worker = TestWorker::spawn_with(config(&db.url_via(proxy.address()), &amqp_url(), &namespace.name, &[])).await;
    worker.ready().await;
    let publisher = Publisher::new(&namespace).await;
    let queue = namespace.topology().link_visited_queue;
    let link = insert_link(&db).await;
    publisher.visited(Uuid::now_v7(), &[(link, 1)]).await;
    await_total(&db, link, 1).await;

    proxy.disable();
    for _ in 0..10 {
        publisher.visited(Uuid::now_v7(), &[(link, 2)]).await;
    }
    // The worker takes the deliveries and holds them unacknowledged.
    eventually(DEADLINE, "deliveries taken by the worker", || async {
        let ready = publisher.ready_count(&queue).await;
        if ready == 0 { Ok(()) } else { Err(format!("{ready} ready")) }
    })
    .await;
    eventually(DEADLINE, "readiness reports PostgreSQL", || async {
        let (status, body) = worker.get_json("/health/ready").await;
        if status == 503 && body["postgres"].is_string() { Ok(()) } else { Err(format!("{status} {body}")) }
    })
    .await;
    assert_eq!(total(&db, link).await, 1, "nothing applied while PostgreSQL is away");
    assert_eq!(db.count("inbox").await, 1);

    proxy.enable();
    await_total(&db, link, 21).await;
    assert_eq!(db.count("inbox").await, 11, "each message applied once");
    assert_eq!(publisher.ready_count(&queue).await, 0);
    assert_eq!(publisher.ready_count(&namespace.topology().dead_letter_queue).await, 0, "an outage is not poison");
    worker.ready().await;
    worker.stop().await;
}

#[tokio::test]
async fn a_lost_broker_connection_is_re_established_and_consumption_resumes() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let proxy = TcpProxy::to_port(5672).await;
    let amqp = format!("amqp://guest:guest@{}/%2f", proxy.address());
    let worker = TestWorker::spawn_with(config(&db.url, &amqp, &namespace.name, &[])).await;
    worker.ready().await;
    let publisher = Publisher::new(&namespace).await;
    let link = insert_link(&db).await;
    publisher.visited(Uuid::now_v7(), &[(link, 1)]).await;
    await_total(&db, link, 1).await;

    proxy.disable();
    eventually(DEADLINE, "readiness reports RabbitMQ", || async {
        let (status, body) = worker.get_json("/health/ready").await;
        if status == 503 && body["rabbitmq"].is_string() { Ok(()) } else { Err(format!("{status} {body}")) }
    })
    .await;
    for _ in 0..10 {
        publisher.visited(Uuid::now_v7(), &[(link, 3)]).await;
    }
    assert_eq!(total(&db, link).await, 1, "nothing consumed while disconnected");

    proxy.enable();
    await_total(&db, link, 31).await;
    worker.ready().await;
    assert_eq!(db.count("inbox").await, 11);
    assert_eq!(publisher.ready_count(&namespace.topology().link_visited_queue).await, 0);
    worker.stop().await;
}

/// A lane PostgreSQL fails transiently (a serialization failure on one link's
/// summary) is retried alone: the other lane's messages are applied and
/// acknowledged meanwhile, the failing lane's once it recovers, each once.
#[tokio::test]
async fn a_lane_that_fails_transiently_is_retried_alone_while_the_other_lane_is_applied() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let topology = namespace.topology();
    // A serialization failure: transient.
    let (good, stuck, publisher, worker) = batch_with_a_failing_lane(&db, &namespace, "fail_for_now", "40001", 5).await;

    await_total(&db, good, 3).await;
    assert_eq!(total(&db, stuck).await, -1, "the failing lane committed nothing");
    sqlx::raw_sql("DROP TRIGGER fail_for_now ON visit_summaries")
        .execute(&mut db.connect().await)
        .await
        .expect("drop trigger");
    await_total(&db, stuck, 5).await;

    let metrics = metrics(&worker).await;
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "applied"), 3);
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "duplicate"), 0, "nothing applied twice");
    assert_eq!(counter(&metrics, &topology.link_visited_queue, "dead_lettered"), 0);
    worker.stop().await;
    // Unacknowledged deliveries would be back in the queue once its channel closed.
    assert_eq!(publisher.ready_count(&topology.link_visited_queue).await, 0, "every delivery acknowledged");
    assert_eq!(db.count("inbox").await, 3);
}
