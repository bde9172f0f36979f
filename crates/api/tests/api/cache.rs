//! The redirect cache seen through the API: links created on one process are
//! followed on another at once, and the lookup sources are counted.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, TestDatabase, eventually, spawn_with, write_vocabulary};

const ALL_PHRASES: [&str; 3] =
    ["alphanice-alphanice-alpharude", "alphanice-alpharude-alphanice", "alpharude-alphanice-alphanice"];

async fn status(app: &TestApp, phrase: &str) -> u16 {
    app.client.get(app.url(&format!("/{phrase}"))).send().await.expect("request").status().as_u16()
}

#[tokio::test]
async fn a_link_created_on_one_process_is_followed_on_another_within_the_negative_ttl() {
    // A three-phrase vocabulary lets the test ask for a phrase before it exists.
    let dir = tempfile::tempdir().expect("tempdir");
    write_vocabulary(dir.path(), &["alpha"]);
    let vocabulary = format!("--vocabulary-dir={}", dir.path().display());
    let db = TestDatabase::new();
    let flags = [vocabulary.as_str(), "--cache-negative-ttl=1s"];
    let creator = spawn_with(&db, &flags).await;
    let follower = spawn_with(&db, &flags).await;

    // Both processes learn that no phrase exists yet.
    for phrase in ALL_PHRASES {
        assert_eq!(status(&creator, phrase).await, 404);
        assert_eq!(status(&follower, phrase).await, 404);
    }
    let phrase = creator.create("https://example.com/fresh", 0, 0, 0).await;
    assert!(ALL_PHRASES.contains(&phrase.as_str()));

    // The creating process forgets its "unknown" at once.
    assert_eq!(status(&creator, &phrase).await, 301);
    // The other process within its negative TTL.
    eventually(Duration::from_secs(5), "the other process follows the new link", || async {
        match status(&follower, &phrase).await {
            301 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
}

#[tokio::test]
async fn lookups_are_counted_by_where_they_were_answered() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &[]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    let before = lookups(&app).await;
    assert_eq!(status(&app, &phrase).await, 301); // PostgreSQL (Redis is empty)
    assert_eq!(status(&app, &phrase).await, 301); // L1
    assert_eq!(status(&app, &phrase).await, 301); // L1
    assert_eq!(status(&app, "no-such-phrase-anywhere").await, 404); // not found
    let after = lookups(&app).await;
    // Other tests in this process count too, so only lower bounds hold.
    for (source, at_least) in [("db", 1.0), ("l1", 2.0), ("not_found", 1.0)] {
        let delta = after.get(source).copied().unwrap_or(0.0) - before.get(source).copied().unwrap_or(0.0);
        assert!(delta >= at_least, "{source}: {delta}");
    }
    let sources: HashSet<&str> = after.keys().map(String::as_str).collect();
    assert!(sources.is_subset(&HashSet::from(["l1", "l2", "db", "not_found"])), "{sources:?}");
}

#[tokio::test]
async fn health_reports_redis_and_rabbitmq_and_their_loss_only_degrades() {
    let db = TestDatabase::new();
    let app =
        spawn_with(&db, &["--redis-url=redis://127.0.0.1:1", "--amqp-url=amqp://guest:guest@127.0.0.1:1/%2f"]).await;
    let ready = app.client.get(app.ops_url("/health/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 200, "Redis and RabbitMQ away do not make the API unready");
    let health: serde_json::Value =
        app.client.get(app.ops_url("/health")).send().await.expect("h").json().await.expect("j");
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["dependencies"]["postgres"]["status"], "up");
    assert!(health["dependencies"]["postgres"]["latencyMs"].as_f64().is_some());
    // What is wrong in fixed words, never the drivers' text (hosts, ports, users).
    assert_eq!(health["dependencies"]["redis"], json!({"status": "down", "error": "unreachable"}));
    assert_eq!(health["dependencies"]["rabbitmq"], json!({"status": "down", "error": "not connected"}));
    // And redirects still work, from PostgreSQL.
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    assert_eq!(status(&app, &phrase).await, 301);

    let healthy = spawn_with(&db, &[]).await;
    let health = eventually(Duration::from_secs(10), "all dependencies up", || async {
        let health: serde_json::Value = healthy
            .client
            .get(healthy.ops_url("/health"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if health["status"] == "ready" { Ok(health) } else { Err(health.to_string()) }
    })
    .await;
    assert_eq!(health["dependencies"]["redis"]["status"], "up");
    assert_eq!(
        health["dependencies"],
        json!({
            "postgres": health["dependencies"]["postgres"],
            "redis": health["dependencies"]["redis"],
            "rabbitmq": {"status": "up"},
        })
    );
}

/// `offndat_redirect_lookups_total` by source, from /metrics.
async fn lookups(app: &TestApp) -> std::collections::HashMap<String, f64> {
    app.metrics().await.by_label("offndat_redirect_lookups_total", "source").into_iter().collect()
}
