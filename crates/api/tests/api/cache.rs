//! The redirect cache seen through the API: links created on one process are
//! followed on another at once, the lookup sources are counted, and deployments
//! that share a Redis never serve each other's links.

use std::collections::HashSet;
use std::time::Duration;

use offndat_infrastructure::deployment::Deployment;
use serde_json::json;

use crate::helpers::{
    AmqpNamespace, RedisPrefix, TestApp, TestDatabase, config, eventually, spawn_config, spawn_with, write_vocabulary,
};
use crate::links_support::{create, phrase_of};

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

/// Follows `phrase`: status and `Location`.
async fn follow(app: &TestApp, phrase: &str) -> (u16, String) {
    let response = app.client.get(app.url(&format!("/{phrase}"))).send().await.expect("request");
    let location = response.headers().get("location").map(|l| l.to_str().expect("ascii").to_owned());
    (response.status().as_u16(), location.unwrap_or_default())
}

/// `db`'s identity, as the API reads it.
async fn deployment(db: &TestDatabase) -> Deployment {
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let deployment = Deployment::load(&pool).await.expect("identity");
    pool.close().await;
    deployment
}

/// The app on `db` (created and migrated) with `OFFNDAT_REDIS_KEY_PREFIX` unset,
/// as deployed by default; the keys under the prefix it derives are deleted when
/// the test ends.
async fn spawn_with_default_prefix(db: &TestDatabase, extra: &[&str]) -> TestApp {
    let namespace = AmqpNamespace::new();
    let derived = RedisPrefix { prefix: deployment(db).await.default_redis_key_prefix() };
    let mut config = config(db, &namespace, &derived, extra);
    config.cache.redis_key_prefix = None;
    spawn_config(config, namespace, derived).await
}

/// Creates a link under the chosen `phrase`.
async fn create_at(app: &TestApp, phrase: &str, target: &str) {
    let created = phrase_of(create(app, json!({"phrase": phrase, "targetUrl": target})).await).await;
    assert_eq!(created, phrase);
}

#[tokio::test]
async fn two_deployments_sharing_a_redis_with_the_default_prefix_never_serve_each_others_links() {
    let (db_a, db_b) = (TestDatabase::migrated().await, TestDatabase::migrated().await);
    // No L1: every redirect goes through Redis.
    let flags = ["--cache-l1-enabled=false"];
    let a = spawn_with_default_prefix(&db_a, &flags).await;
    let b = spawn_with_default_prefix(&db_b, &flags).await;
    let (prefix_a, prefix_b) = (&a._redis.prefix, &b._redis.prefix);
    assert!(prefix_a.starts_with("offndat:") && prefix_b.starts_with("offndat:"), "{prefix_a} {prefix_b}");
    assert_ne!(prefix_a, prefix_b, "derived from each deployment's database");

    let phrase = format!("shared-{}", uuid::Uuid::new_v4().simple());
    create_at(&a, &phrase, "https://a.example/").await;
    create_at(&b, &phrase, "https://b.example/").await;
    let expected_a = (301, "https://a.example/".to_owned());
    let expected_b = (301, "https://b.example/".to_owned());
    // Each fills its own key; both keys are in the one Redis.
    for (app, expected) in [(&a, &expected_a), (&b, &expected_b)] {
        assert_eq!(&follow(app, &phrase).await, expected);
        eventually(Duration::from_secs(5), "the link cached under its deployment's prefix", || async {
            app._redis.get(&format!("link:{phrase}")).await.map(|_| ()).ok_or_else(|| "absent".to_owned())
        })
        .await;
    }
    // Answered from Redis now, and still each its own.
    for _ in 0..3 {
        assert_eq!(follow(&a, &phrase).await, expected_a);
        assert_eq!(follow(&b, &phrase).await, expected_b);
    }
    // A second replica of A (same database) shares A's cache entries.
    let replica = spawn_with_default_prefix(&db_a, &flags).await;
    assert_eq!(&replica._redis.prefix, prefix_a);
    assert_eq!(follow(&replica, &phrase).await, expected_a);
}

#[tokio::test]
async fn a_value_from_another_deployment_under_a_shared_prefix_is_refused_and_replaced() {
    // A prefix set equal in both by mistake: the values still tell them apart.
    let (db_a, db_b, shared) = (TestDatabase::new(), TestDatabase::new(), RedisPrefix::new());
    let spawn = |db: &TestDatabase| {
        let namespace = AmqpNamespace::new();
        let config = config(db, &namespace, &shared, &["--cache-l1-enabled=false"]);
        spawn_config(config, namespace, RedisPrefix { prefix: shared.prefix.clone() })
    };
    let a = spawn(&db_a).await;
    let b = spawn(&db_b).await;
    let phrase = format!("poisoned-{}", uuid::Uuid::new_v4().simple());
    create_at(&b, &phrase, "https://b.example/").await;
    create_at(&a, &phrase, "https://a.example/").await;
    assert_eq!(follow(&a, &phrase).await, (301, "https://a.example/".to_owned()));
    let key = format!("link:{phrase}");
    let written_by_a = eventually(Duration::from_secs(5), "A's value in the shared key", || async {
        shared.get(&key).await.ok_or_else(|| "absent".to_owned())
    })
    .await;
    assert!(written_by_a.ends_with(b"https://a.example/"));

    let before = rejected_foreign(&b).await;
    // B finds A's value under its key: refused, answered from B's database.
    assert_eq!(follow(&b, &phrase).await, (301, "https://b.example/".to_owned()));
    assert!(rejected_foreign(&b).await > before, "counted as foreign");
    eventually(Duration::from_secs(5), "B's value written over A's", || async {
        match shared.get(&key).await {
            Some(value) if value.ends_with(b"https://b.example/") => Ok(()),
            other => Err(format!("{:?}", other.map(|v| String::from_utf8_lossy(&v).into_owned()))),
        }
    })
    .await;
    // And A, in turn, never serves B's.
    assert_eq!(follow(&a, &phrase).await, (301, "https://a.example/".to_owned()));

    // A forged value (no MAC of B's) naming B's own link and an evil target is
    // not served either.
    let body = String::from_utf8(written_by_a).expect("ascii");
    let forged = body.replace("https://a.example/", "https://evil.example/");
    shared.set(&key, forged.as_bytes()).await;
    assert_eq!(follow(&b, &phrase).await, (301, "https://b.example/".to_owned()));
}

/// `offndat_cache_l2_rejected_total{reason="foreign"}` (process-wide: other tests
/// in this binary count too, so only growth is asserted).
async fn rejected_foreign(app: &TestApp) -> f64 {
    app.metrics()
        .await
        .value(r#"offndat_cache_l2_rejected_total{reason="foreign"}"#)
        .expect("registered from the start")
}
