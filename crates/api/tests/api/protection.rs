//! Protection: rate limits per client IP (not fooled by spoofed headers), request
//! timeouts, size limits, security headers, compression.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{API_KEY, TestApp, TestDatabase, assert_problem, spawn_with};

async fn limited(extra: &[&str]) -> (TestApp, TestDatabase) {
    let db = TestDatabase::new();
    let mut flags = vec!["--rate-limit-enabled=true"];
    flags.extend_from_slice(extra);
    (spawn_with(&db, &flags).await, db)
}

#[tokio::test]
async fn redirect_floods_get_429_with_retry_after_and_never_a_500() {
    let (app, _db) = limited(&["--rate-limit-redirect-burst=5", "--rate-limit-redirect-per-second=0.1"]).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..12 {
        let response = app.client.get(app.url("/no-such-phrase-here")).send().await.expect("request");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            last = Some(response);
        }
    }
    // The burst of five passes (unknown phrases: 404), the rest is refused.
    assert_eq!(statuses, [404, 404, 404, 404, 404, 429, 429, 429, 429, 429, 429, 429]);
    let response = last.expect("a 429");
    let retry_after: u64 = response.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let problem = assert_problem(response, 429, &["General.TooManyRequests"]).await;
    assert_eq!(problem["type"], "https://tools.ietf.org/html/rfc6585#section-4");
    assert_eq!(problem["errors"][0]["message"], "Too many requests. Please try again later.");
}

#[tokio::test]
async fn api_floods_are_limited_before_the_key_is_checked() {
    let (app, _db) = limited(&["--rate-limit-api-per-minute=3"]).await;
    let mut statuses = Vec::new();
    for key in [API_KEY, API_KEY, "wrong", "wrong", API_KEY] {
        let response =
            app.client.get(app.url("/v1/languages")).header("X-Offnd-Api-Key", key).send().await.expect("request");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 401, 429, 429]);
    // Operator endpoints are never limited.
    for _ in 0..10 {
        assert_eq!(app.client.get(app.url("/health/live")).send().await.expect("live").status(), 200);
    }
}

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // Without trusted proxies every request is the TCP peer's, whatever it claims.
    let (app, _db) = limited(&["--rate-limit-redirect-burst=2", "--rate-limit-redirect-per-second=0.1"]).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let response = app
            .client
            .get(app.url("/unknown-phrase-x"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .send()
            .await
            .expect("request");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [404, 404, 429, 429]);

    // Behind a trusted proxy, each forwarded client has a bucket of its own.
    let (app, _db) = limited(&[
        "--rate-limit-redirect-burst=2",
        "--rate-limit-redirect-per-second=0.1",
        "--trusted-proxies=127.0.0.1",
    ])
    .await;
    for i in 0..4 {
        let response = app
            .client
            .get(app.url("/unknown-phrase-x"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 404, "client {i} has its own bucket");
    }
}

#[tokio::test]
async fn oversized_headers_get_431_and_oversized_bodies_413() {
    let (app, db) = limited(&[]).await;
    let response = app
        .client
        .get(app.url("/v1/languages"))
        .header("X-Offnd-Api-Key", API_KEY)
        .header("X-Padding", "p".repeat(20 * 1024))
        .send()
        .await
        .expect("request");
    let problem = assert_problem(response, 431, &["General.HeadersTooLarge"]).await;
    assert_eq!(problem["type"], "https://tools.ietf.org/html/rfc6585#section-5");

    let body = json!({"targetUrl": format!("https://example.com/{}", "a".repeat(70 * 1024)), "languageId": 0, "themeId": 0, "formatId": 0});
    let response = app.post("/v1/links").json(&body).send().await.expect("request");
    assert_problem(response, 413, &["General.PayloadTooLarge"]).await;
    assert_eq!(db.count("links").await, 0);
}

#[tokio::test]
async fn a_slow_request_is_timed_out_with_408() {
    let (app, db) = limited(&["--request-timeout=300ms"]).await;
    let mut stream = tokio::net::TcpStream::connect(app.address).await.expect("connect");
    // Headers promise a body that never fully arrives.
    let head = format!(
        "POST /v1/links HTTP/1.1\r\nHost: x\r\nX-Offnd-Api-Key: {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"targetUrl\""
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server answers instead of waiting forever")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json") && text.contains("General.RequestTimeout"), "{text}");
    assert_eq!(db.count("links").await, 0);
}

#[tokio::test]
async fn responses_carry_security_headers_and_json_is_compressed() {
    let (app, _db) = limited(&[]).await;
    let response = app.get("/v1/languages").header("Accept-Encoding", "gzip").send().await.expect("request");
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    assert_eq!(headers["content-encoding"], "gzip");
    let compressed = response.bytes().await.expect("body");
    assert_eq!(&compressed[..2], [0x1f, 0x8b], "a gzip stream");
}

#[tokio::test]
async fn http_metrics_are_labelled_by_route_not_path() {
    let (app, _db) = limited(&[]).await;
    for phrase in ["first-unknown-one", "second-unknown-one"] {
        app.client.get(app.url(&format!("/{phrase}"))).send().await.expect("request");
    }
    app.client.get(app.url("/a/b/c/d")).send().await.expect("request");
    let metrics = app.metrics().await;
    let requests: Vec<_> = metrics.samples("http_requests_total").collect();
    assert!(
        requests.iter().any(|s| s.labels.get("route").is_some_and(|r| r == "/{phrase}")
            && s.labels.get("status").is_some_and(|s| s == "404")),
        "{metrics}"
    );
    assert!(requests.iter().any(|s| s.labels.get("route").is_some_and(|r| r == "unmatched")), "{metrics}");
    assert!(metrics.samples("http_request_duration_seconds_bucket").next().is_some(), "histogram buckets exported");
    assert!(!metrics.text().contains("first-unknown-one"), "raw paths never become labels");
}

#[tokio::test]
async fn operations_routes_are_on_their_own_listener_and_only_liveness_is_public() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &[]).await;
    // One segment is a phrase to the short-URL route; two match no route.
    for (path, codes) in [
        ("/metrics", &["Link.NotFound"][..]),
        ("/health", &["Link.NotFound"]),
        ("/health/ready", &["General.NotFound"]),
    ] {
        let public = app.client.get(app.url(path)).send().await.expect("public");
        assert_problem(public, 404, codes).await;
    }
    let live = app.client.get(app.url("/health/live")).send().await.expect("live");
    assert_eq!(live.status(), 200);
    assert_eq!(live.text().await.expect("body"), r#"{"status":"live"}"#);

    for path in ["/health/live", "/health/ready"] {
        let ops = app.client.get(app.ops_url(path)).send().await.expect("ops");
        assert_eq!(ops.status(), 200, "{path}");
    }
    let ready = app.client.get(app.ops_url("/health/ready")).send().await.expect("ready");
    assert_eq!(ready.text().await.expect("body"), r#"{"status":"ready"}"#);
    let metrics = app.metrics().await;
    assert!(metrics.value("offndat_redirect_lookups_total{source=\"db\"}").is_some(), "{metrics}");
    let health: serde_json::Value =
        app.client.get(app.ops_url("/health")).send().await.expect("h").json().await.expect("j");
    assert_eq!(health["dependencies"]["postgres"]["status"], "up", "{health}");
    app.stop().await;
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_network_not_per_address() {
    // Behind a trusted proxy: a host rotating addresses inside its /64 keeps one
    // bucket; another /64 has its own.
    let (app, _db) = limited(&[
        "--rate-limit-redirect-burst=2",
        "--rate-limit-redirect-per-second=0.1",
        "--trusted-proxies=127.0.0.1",
    ])
    .await;
    let follow =
        |client: &'static str| app.client.get(app.url("/unknown-phrase-v6")).header("X-Forwarded-For", client).send();
    let mut rotating = Vec::new();
    for client in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:2::4"] {
        rotating.push(follow(client).await.expect("request").status().as_u16());
    }
    assert_eq!(rotating, [404, 404, 429, 429], "one /64, one bucket");
    assert_eq!(follow("2001:db8:1:3::1").await.expect("request").status(), 404, "another /64");
    assert_eq!(follow("::ffff:198.51.100.9").await.expect("request").status(), 404, "IPv4-mapped is its own IPv4");
}

#[tokio::test]
async fn each_api_key_has_a_create_quota() {
    let (app, db) = limited(&["--rate-limit-create-per-key-per-minute=2", "--rate-limit-api-per-minute=100"]).await;
    let body = json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0});
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let response = app.post("/v1/links").json(&body).send().await.expect("request");
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    assert_eq!(statuses, [201, 201, 429]);
    let response = last.expect("a response");
    let retry_after: u64 = response.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(response, 429, &["General.TooManyRequests"]).await;
    assert_eq!(db.count("links").await, 2, "the refused create made nothing");
    // Other routes of the same key are not affected by the create quota.
    assert_eq!(app.get("/v1/languages").send().await.expect("request").status(), 200);
}
