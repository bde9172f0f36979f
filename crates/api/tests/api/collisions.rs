//! Uniqueness under load and collisions, persistence across restarts, and start-up
//! of several replicas at once.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestDatabase, assert_problem, spawn, spawn_with, write_vocabulary};

#[tokio::test]
async fn two_hundred_concurrent_creates_give_two_hundred_distinct_phrases() {
    let (app, db) = spawn().await;
    let requests = (0..200).map(|i| {
        let request = app.post("/v1/links").json(&json!({
            "targetUrl": format!("https://example.com/{i}"), "languageId": i % 2, "themeId": i % 3, "formatId": (i / 2) % 2
        }));
        async move {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.expect("json")["url"].as_str().expect("url").to_owned()
        }
    });
    let urls: HashSet<String> = futures_join_all(requests).await.into_iter().collect();
    assert_eq!(urls.len(), 200);
    assert_eq!(db.count("links").await, 200);
    assert_eq!(db.count("outbox").await, 200);
}

async fn futures_join_all<F: Future<Output = T> + Send + 'static, T: Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn a_tiny_vocabulary_collides_until_no_phrase_is_left() {
    // One word per list: English theme none has exactly three phrases (one per
    // offensive slot).
    let dir = tempfile::tempdir().expect("tempdir");
    write_vocabulary(dir.path(), &["alpha"]);
    let db = TestDatabase::new();
    let flag = format!("--vocabulary-dir={}", dir.path().display());
    let app = spawn_with(&db, &[&flag]).await;
    let body = json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0});

    let mut phrases = HashSet::new();
    let mut requests = 0;
    while phrases.len() < 3 {
        requests += 1;
        assert!(requests <= 60, "three phrases never came up: {phrases:?}");
        let response = app.post("/v1/links").json(&body).send().await.expect("request");
        match response.status().as_u16() {
            201 => {
                let url = response.json::<Value>().await.expect("json")["url"].as_str().expect("url").to_owned();
                assert!(phrases.insert(url.clone()), "a phrase was handed out twice: {url}");
            }
            503 => continue,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        phrases,
        HashSet::from([
            "http://short.test/alphanice-alphanice-alpharude".to_owned(),
            "http://short.test/alphanice-alpharude-alphanice".to_owned(),
            "http://short.test/alpharude-alphanice-alphanice".to_owned(),
        ])
    );

    // Every phrase is taken: ten attempts clash, and the client is told to retry.
    let response = app.post("/v1/links").json(&body).send().await.expect("request");
    assert_eq!(response.headers()["retry-after"], "1");
    let problem = assert_problem(response, 503, &["Link.CouldNotGenerate"]).await;
    assert_eq!(problem["errors"][0]["message"], "The link could not be generated at this time. Please try again.");
    assert_eq!(problem["type"], "https://tools.ietf.org/html/rfc9110#section-15.6.4");
    assert_eq!(db.count("links").await, 3);
    assert_eq!(db.count("outbox").await, 3);
}

#[tokio::test]
async fn links_survive_a_restart() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &[]).await;
    let phrase = app.create("https://example.com/persisted", 1, 1, 0).await;
    app.stop().await;

    let app = spawn_with(&db, &[]).await;
    let response = app.client.get(app.url(&format!("/{}", urlencode(&phrase)))).send().await.expect("request");
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "https://example.com/persisted");
    let body: Value =
        app.get(&format!("/v1/links/{}", urlencode(&phrase))).send().await.expect("r").json().await.expect("j");
    assert_eq!(body["targetUrl"], "https://example.com/persisted");
    assert_eq!((body["languageId"].as_i64(), body["themeId"].as_i64()), (Some(1), Some(1)));
}

fn urlencode(phrase: &str) -> String {
    percent_encoding::utf8_percent_encode(phrase, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn replicas_starting_together_create_and_migrate_the_database_once() {
    let db = TestDatabase::new();
    let (a, b, c) = tokio::join!(spawn_with(&db, &[]), spawn_with(&db, &[]), spawn_with(&db, &[]));
    let phrase = a.create("https://example.com/", 0, 0, 0).await;
    for app in [&b, &c] {
        let response = app.get(&format!("/v1/links/{phrase}")).send().await.expect("request");
        assert_eq!(response.status(), 200);
    }
    let mut conn = db.connect().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .expect("migrations table");
    assert_eq!(applied, offndat_infrastructure::postgres::MIGRATOR.iter().count() as i64);
}
