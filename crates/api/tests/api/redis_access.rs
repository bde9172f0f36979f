//! Redis as a careful operator runs it: behind a password, and over TLS. A
//! wrong password or an untrusted certificate only degrades the service.

use std::net::SocketAddr;
use std::time::Duration;

use offndat_test_support::{Metrics, RedisServer};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, AmqpNamespace, TestApp, TestDatabase, eventually, spawn_with};
use crate::system::api_command;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Status and `Location` of following `url`.
async fn follow(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.expect("follow");
    let location = response.headers().get("location").map(|l| l.to_str().expect("ascii").to_owned());
    (response.status().as_u16(), location.unwrap_or_default())
}

async fn health(client: &reqwest::Client, ops_url: String) -> Value {
    client.get(ops_url).send().await.expect("health").json().await.expect("json")
}

async fn follow_app(app: &TestApp, phrase: &str) -> (u16, String) {
    follow(&app.client, &app.url(&format!("/{phrase}"))).await
}

#[tokio::test]
async fn a_password_protected_redis_is_used_and_a_wrong_password_only_degrades() {
    let redis = RedisServer::start("s3cret-pass-for-tests").await;
    let db = TestDatabase::new();
    // No L1: every redirect asks Redis first.
    let url = format!("--redis-url={}", redis.url());
    let app = spawn_with(&db, &[&url, "--cache-l1-enabled=false"]).await;
    let phrase = app.create("https://example.com/pw", 0, 0, 0).await;
    assert_eq!(follow_app(&app, &phrase).await, (301, "https://example.com/pw".to_owned()));
    let key = format!("{}link:{phrase}", app._redis.prefix);
    eventually(Duration::from_secs(5), "the link cached in the password-protected Redis", || async {
        redis.get(&key).await.map(|_| ()).ok_or_else(|| "not yet".to_owned())
    })
    .await;
    // Changed behind the caches' back: an answer from Redis still has the old target.
    let mut conn = db.connect().await;
    sqlx::query("UPDATE links SET target_url = 'https://example.com/changed' WHERE phrase = $1")
        .bind(&phrase)
        .execute(&mut conn)
        .await
        .expect("update");
    assert_eq!(follow_app(&app, &phrase).await, (301, "https://example.com/pw".to_owned()), "answered by Redis");
    let up = health(&app.client, app.ops_url("/health")).await;
    assert_eq!(up["dependencies"]["redis"]["status"], "up", "{up}");

    let wrong = format!("--redis-url={}", redis.url_with("not-the-password"));
    let refused = spawn_with(&db, &[&wrong, "--cache-l1-enabled=false"]).await;
    // Redirects go on, from PostgreSQL.
    assert_eq!(follow_app(&refused, &phrase).await, (301, "https://example.com/changed".to_owned()));
    let down = health(&refused.client, refused.ops_url("/health")).await;
    assert_eq!(down["status"], "degraded", "{down}");
    assert_eq!(down["dependencies"]["redis"], json!({"status": "down", "error": "unreachable"}));
}

/// `offndat_redirect_lookups_total{source="l2"}` of one process.
async fn l2_lookups(client: &reqwest::Client, ops: SocketAddr) -> f64 {
    Metrics::get(client, &format!("http://{ops}/metrics"))
        .await
        .value(r#"offndat_redirect_lookups_total{source="l2"}"#)
        .unwrap_or(0.0)
}

/// Where the binary's short URLs point; requests go to the address it reports.
const BASE: &str = "http://redis-access.test";

#[tokio::test]
async fn redis_over_tls_is_used_when_its_ca_is_trusted_and_refused_when_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RedisServer::start_tls("tls-pass-for-tests", dir.path()).await;
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let launch = |trust: bool| {
        let launch = api_command(&db, &namespace, BASE)
            .env("OFFNDAT_API_KEYS", API_KEY)
            .env("OFFNDAT_REDIS_URL", redis.url())
            .env("OFFNDAT_CACHE_L1_ENABLED", "false")
            .env("OFFNDAT_RATE_LIMIT_ENABLED", "false");
        // The system's roots, or this file: how an operator trusts a private CA.
        if trust { launch.env("SSL_CERT_FILE", redis.ca_file().expect("a TLS server")) } else { launch }
    };
    let client = client();
    let trusted = launch(true).spawn();
    let listening = trusted.listening().await;
    let (address, ops) = (listening.address("address"), listening.address("ops_address"));
    let created: Value = client
        .post(format!("http://{address}/v1/links"))
        .header("X-Offnd-Api-Key", API_KEY)
        .json(&json!({"targetUrl": "https://example.com/tls", "languageId": 0, "themeId": 0, "formatId": 0}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let url = created["url"].as_str().expect("url");
    let phrase = url.strip_prefix(&format!("{BASE}/")).unwrap_or_else(|| panic!("{url} under {BASE}")).to_owned();
    // The first redirect reads PostgreSQL and fills Redis; later ones are
    // answered by Redis, over TLS.
    eventually(Duration::from_secs(10), "a redirect answered by Redis over TLS", || async {
        let followed = follow(&client, &format!("http://{address}/{phrase}")).await;
        assert_eq!(followed, (301, "https://example.com/tls".to_owned()));
        let lookups = l2_lookups(&client, ops).await;
        if lookups >= 1.0 { Ok(()) } else { Err(lookups.to_string()) }
    })
    .await;
    let up = health(&client, format!("http://{ops}/health")).await;
    assert_eq!(up["dependencies"]["redis"]["status"], "up", "{up}");

    // Without the CA the certificate is not trusted: Redis is down, redirects go on.
    let untrusted = launch(false).spawn();
    let listening = untrusted.listening().await;
    let (address, ops) = (listening.address("address"), listening.address("ops_address"));
    let followed = follow(&client, &format!("http://{address}/{phrase}")).await;
    assert_eq!(followed, (301, "https://example.com/tls".to_owned()));
    let down = health(&client, format!("http://{ops}/health")).await;
    assert_eq!(down["dependencies"]["redis"], json!({"status": "down", "error": "unreachable"}), "{down}");
    assert_eq!(l2_lookups(&client, ops).await, 0.0);

    trusted.stop().await;
    untrusted.stop().await;
}
