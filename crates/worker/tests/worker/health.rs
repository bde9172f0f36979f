//! The worker's health and metrics endpoints.

use offndat_test_support::{AmqpNamespace, Metrics, TestDatabase};
use uuid::Uuid;

use crate::helpers::{Publisher, TestWorker, await_total, insert_link};

#[tokio::test]
async fn health_endpoints_report_each_dependency_and_metrics_are_prometheus_text() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let worker = TestWorker::spawn(&db, &namespace).await;

    let (status, body) = worker.get_json("/health/live").await;
    assert_eq!((status, body), (200, serde_json::json!({ "status": "live" })));

    worker.ready().await;
    let (status, body) = worker.get_json("/health/ready").await;
    assert_eq!((status, body), (200, serde_json::json!({ "status": "ready" })));

    let (status, body) = worker.get_json("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    for dependency in ["postgres", "rabbitmq"] {
        assert_eq!(body["dependencies"][dependency]["status"], "up", "{body}");
        assert!(body["dependencies"][dependency]["latencyMs"].as_f64().is_some_and(|ms| ms >= 0.0), "{body}");
    }
    let topology = namespace.topology();
    assert_eq!(body["dependencies"]["rabbitmq"]["consumers"][&topology.link_visited_queue]["status"], "up");
    assert_eq!(body["dependencies"]["rabbitmq"]["consumers"][&topology.link_created_queue]["status"], "up");

    let link = insert_link(&db).await;
    Publisher::new(&namespace).await.visited(Uuid::now_v7(), &[(link, 1)]).await;
    await_total(&db, link, 1).await;
    let response = worker.client.get(worker.url("/metrics")).send().await.expect("metrics");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain"),
        "Prometheus text format"
    );
    let metrics = Metrics::parse(&response.text().await.expect("text")).expect("Prometheus text");
    let queue = &topology.link_visited_queue;
    assert_eq!(
        metrics.value(&format!("offndat_worker_messages_total{{queue=\"{queue}\",outcome=\"applied\"}}")),
        Some(1.0),
        "{metrics}"
    );
    assert!(metrics.samples("offndat_worker_batch_duration_seconds_bucket").next().is_some(), "{metrics}");
    worker.stop().await;
}
