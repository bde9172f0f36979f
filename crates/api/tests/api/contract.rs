//! The v1 contract's happy paths: create, read, follow, auth, CORS, problem shape.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{API_KEY, OTHER_API_KEY, PUBLIC_BASE, assert_problem, spawn};

#[tokio::test]
async fn create_returns_201_with_location_and_urls_and_writes_link_and_outbox() {
    let (app, db) = spawn().await;
    let response = app
        .post("/v1/links")
        .json(&json!({"targetUrl": "https://example.com/some/page?q=1", "languageId": 0, "themeId": 0, "formatId": 0}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
    assert_eq!(response.headers()["api-supported-versions"], "1");
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let body: Value = response.json().await.expect("json");
    let url = body["url"].as_str().expect("url");
    assert_eq!(location, url);
    let phrase = url.strip_prefix(&format!("{PUBLIC_BASE}/")).expect("under base");
    assert_eq!(body["statsUrl"], format!("{PUBLIC_BASE}/s/{phrase}"));
    assert_eq!(body.as_object().expect("object").len(), 2, "{body}");
    let words: Vec<&str> = phrase.split('-').collect();
    assert!(words.len() >= 3, "{phrase}");
    assert!(phrase.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "kebab-case: {phrase}");

    let mut conn = db.connect().await;
    let (link_id, stored_phrase, target, language, theme): (Uuid, String, String, i16, i16) =
        sqlx::query_as("SELECT id, phrase, target_url, language_id, theme_id FROM links")
            .fetch_one(&mut conn)
            .await
            .expect("row");
    assert_eq!(
        (stored_phrase.as_str(), target.as_str(), language, theme),
        (phrase, "https://example.com/some/page?q=1", 0, 0)
    );
    // The relay in the app may have published the row already: it marks rows
    // published and keeps them for the retention (an hour at least), so the row
    // is read whatever its state, not only while unpublished.
    let rows: Vec<(String, Value)> =
        sqlx::query_as("SELECT event_type, payload FROM outbox").fetch_all(&mut conn).await.expect("outbox");
    let [(event_type, payload)] = &rows[..] else { panic!("one outbox row: {rows:?}") };
    assert_eq!(event_type, "link.created");
    assert_eq!(payload["linkId"], link_id.to_string());
    assert_eq!(payload["phrase"], phrase);
    assert_eq!(payload["targetUrl"], "https://example.com/some/page?q=1");
    assert_eq!(payload["version"], 1);
}

#[tokio::test]
async fn read_returns_the_link_with_no_visits_yet() {
    let (app, _db) = spawn().await;
    let phrase = app.create("https://example.com/", 0, 2, 1).await;
    let response = app.get(&format!("/v1/links/{phrase}")).send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
    assert_eq!(response.headers()["api-supported-versions"], "1");
    let body: Value = response.json().await.expect("json");
    Uuid::parse_str(body["id"].as_str().expect("id")).expect("uuid id");
    assert_eq!(body["phrase"], phrase.as_str());
    assert_eq!(body["targetUrl"], "https://example.com/");
    assert_eq!(body["languageId"], 0);
    assert_eq!(body["themeId"], 2);
    assert_eq!(body["visits"], 0);
    assert_eq!(body["recentVisits"], json!([]));
    let created =
        chrono::DateTime::parse_from_rfc3339(body["createdAt"].as_str().expect("createdAt")).expect("rfc3339");
    assert!(body["createdAt"].as_str().expect("str").ends_with('Z'));
    assert!((chrono::Utc::now() - created.to_utc()).num_seconds().abs() < 60);
    assert!(phrase.chars().next().is_some_and(char::is_uppercase), "pascal-case: {phrase}");
}

#[tokio::test]
async fn read_reports_visits_from_the_tables() {
    let (app, db) = spawn().await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    let mut conn = db.connect().await;
    // Written as the worker keeps them: totals on the summary, the newest visits
    // beside it.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO visit_summaries (link_id, total_visits, bot_visits)
         SELECT id, 12, 1 FROM links WHERE phrase = '{phrase}';
         INSERT INTO link_recent_visits (link_id, visits)
         SELECT id, (SELECT jsonb_agg(jsonb_build_object(
                    'visitedAt', to_char((timestamptz '2026-11-21T10:00:00Z' + make_interval(secs => n)) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    'ipAddress', '203.0.113.0', 'userAgent', 'agent ' || n, 'referrer', NULL, 'bot', n = 11) ORDER BY n DESC)
                FROM generate_series(3, 12) AS n)
         FROM links WHERE phrase = '{phrase}';"
    )))
    .execute(&mut conn)
    .await
    .expect("seed visits");
    let body: Value =
        app.get(&format!("/v1/links/{phrase}")).send().await.expect("request").json().await.expect("json");
    assert_eq!(body["visits"], 12);
    assert_eq!((body["humanVisits"].as_i64(), body["botVisits"].as_i64()), (Some(11), Some(1)));
    let recent = body["recentVisits"].as_array().expect("array");
    assert_eq!(recent.len(), 10);
    assert_eq!(
        recent[0],
        json!({
            "visitedAt": "2026-11-21T10:00:12.000Z", "ipAddress": "203.0.113.0", "userAgent": "agent 12",
            "referrer": null, "potentialBot": false
        })
    );
    assert_eq!(recent[9]["userAgent"], "agent 3");
    assert_eq!(recent[1]["potentialBot"], true);
}

#[tokio::test]
async fn redirects_answer_301_with_no_cache_headers_on_both_routes() {
    let (app, _db) = spawn().await;
    let phrase = app.create("https://example.com/landing", 0, 0, 0).await;
    for path in [format!("/v1/redirects/{phrase}"), format!("/{phrase}")] {
        let response = app.client.get(app.url(&path)).send().await.expect("request");
        assert_eq!(response.status(), 301, "{path}");
        let headers = response.headers();
        assert_eq!(headers["location"], "https://example.com/landing");
        assert_eq!(headers["cache-control"], "no-store, no-cache, must-revalidate, max-age=0");
        assert_eq!(headers["pragma"], "no-cache");
        assert_eq!(headers["expires"], "0");
        assert_eq!(headers["api-supported-versions"], "1");
    }
}

#[tokio::test]
async fn polish_phrases_resolve_percent_encoded_and_raw() {
    let (app, _db) = spawn().await;
    // Draw until a phrase with a non-ASCII letter comes up.
    let mut phrase = String::new();
    for _ in 0..50 {
        phrase = app.create("https://example.pl/", 1, 0, 1).await;
        if !phrase.is_ascii() {
            break;
        }
    }
    assert!(!phrase.is_ascii(), "no Polish letter in 50 phrases: {phrase}");
    let encoded: String =
        percent_encoding::utf8_percent_encode(&phrase, percent_encoding::NON_ALPHANUMERIC).to_string();
    let response = app.client.get(app.url(&format!("/{encoded}"))).send().await.expect("request");
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "https://example.pl/");
    let body: Value =
        app.get(&format!("/v1/links/{encoded}")).send().await.expect("request").json().await.expect("json");
    assert_eq!(body["phrase"], phrase.as_str());
    assert_eq!(body["languageId"], 1);

    // Raw UTF-8 bytes in the request line, as some clients send them.
    let raw = raw_get(app.address, &format!("/v1/redirects/{phrase}")).await;
    assert!(raw.starts_with("HTTP/1.1 301"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("location: https://example.pl/"), "{raw}");
}

async fn raw_get(address: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn every_configured_key_is_accepted() {
    let (app, _db) = spawn().await;
    for key in [API_KEY, OTHER_API_KEY] {
        let response =
            app.client.get(app.url("/v1/themes")).header("X-Offnd-Api-Key", key).send().await.expect("request");
        assert_eq!(response.status(), 200, "{key}");
    }
}

#[tokio::test]
async fn unauthorized_requests_get_the_contract_problem() {
    let (app, db) = spawn().await;
    let cases: [(&str, Option<&str>); 3] = [("missing", None), ("wrong", Some("nope")), ("empty", Some(""))];
    for (name, key) in cases {
        for (method, path) in [("GET", "/v1/languages"), ("POST", "/v1/links"), ("GET", "/v1/links/some-phrase-here")] {
            let mut request = app.client.request(method.parse().expect("method"), app.url(path));
            if let Some(key) = key {
                request = request.header("X-Offnd-Api-Key", key);
            }
            let response = request
                .json(&json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0}))
                .send()
                .await
                .expect("request");
            let body = assert_problem(response, 401, &["General.Unauthorized"]).await;
            assert_eq!(body["type"], "https://tools.ietf.org/html/rfc9110#section-15.5.2", "{name}");
            assert_eq!(body["instance"], format!("{method} {path}"));
            assert_eq!(
                body["errors"][0]["message"],
                "You are not authorized to access the requested resource or perform the requested action."
            );
        }
    }
    assert_eq!(db.count("links").await, 0);
    assert_eq!(db.count("outbox").await, 0);
}

#[tokio::test]
async fn not_found_problem_is_exact() {
    let (app, _db) = spawn().await;
    let response = app.get("/v1/links/no-such-phrase").header("X-Request-Id", "req-42").send().await.expect("request");
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let body = assert_problem(response, 404, &["Link.NotFound"]).await;
    assert_eq!(body["type"], "https://tools.ietf.org/html/rfc9110#section-15.5.5");
    assert_eq!(body["title"], "Not Found");
    assert_eq!(body["detail"], "The link with the specified phrase was not found.");
    assert_eq!(body["instance"], "GET /v1/links/no-such-phrase");
    assert_eq!(body["requestId"], "req-42");
    assert_eq!(body["errors"][0]["message"], "The link with the specified phrase was not found.");
    for path in ["/v1/redirects/no-such-phrase", "/no-such-phrase"] {
        let response = app.client.get(app.url(path)).send().await.expect("request");
        let body = assert_problem(response, 404, &["Link.NotFound"]).await;
        assert_eq!(body["instance"], format!("GET {path}"));
    }
}

#[tokio::test]
async fn trace_context_is_taken_from_traceparent() {
    let (app, _db) = spawn().await;
    let response = app
        .get("/v1/links/nope")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .expect("request");
    let body = assert_problem(response, 404, &["Link.NotFound"]).await;
    assert_eq!(body["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let (app, _db) = spawn().await;
    let response = app.get("/v1/links/a/b").send().await.expect("request");
    assert_problem(response, 404, &["General.NotFound"]).await;
    let response =
        app.client.delete(app.url("/v1/links")).header("X-Offnd-Api-Key", API_KEY).send().await.expect("request");
    assert_problem(response, 405, &["General.MethodNotAllowed"]).await;
}

#[tokio::test]
async fn cors_preflight_allows_the_configured_origin_only() {
    let (app, _db) = spawn().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/links"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "x-offnd-api-key,content-type")
            .send()
    };
    let allowed = preflight("https://offnd.at").await.expect("request");
    assert!(allowed.status().is_success());
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://offnd.at");
    let headers = allowed.headers()["access-control-allow-headers"].to_str().expect("ascii").to_owned();
    assert!(headers.contains("x-offnd-api-key") && headers.contains("content-type"), "{headers}");
    let foreign = preflight("https://evil.example").await.expect("request");
    assert!(foreign.headers().get("access-control-allow-origin").is_none());

    let response = app.get("/v1/themes").header("Origin", "https://offnd.at").send().await.expect("request");
    assert_eq!(response.headers()["access-control-allow-origin"], "https://offnd.at");
}

#[tokio::test]
async fn field_names_match_case_insensitively_like_the_original() {
    let (app, _db) = spawn().await;
    let response = app
        .post("/v1/links")
        .json(&json!({"TargetUrl": "https://example.com/", "LanguageId": 0, "themeid": 1, "formatId": 0}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn every_language_theme_and_format_generates_and_resolves() {
    let (app, _db) = spawn().await;
    for language in 0..=1 {
        for theme in 0..=2 {
            for format in 0..=1 {
                let target = format!("https://example.com/{language}/{theme}/{format}");
                let phrase = app.create(&target, language, theme, format).await;
                if format == 0 {
                    assert_eq!(phrase, phrase.to_lowercase(), "kebab-case {phrase}");
                    assert!(phrase.contains('-'));
                } else {
                    assert!(!phrase.contains('-') && !phrase.contains(' '), "pascal-case {phrase}");
                }
                let encoded =
                    percent_encoding::utf8_percent_encode(&phrase, percent_encoding::NON_ALPHANUMERIC).to_string();
                let response = app.client.get(app.url(&format!("/{encoded}"))).send().await.expect("request");
                assert_eq!(response.status(), 301);
                assert_eq!(response.headers()["location"], target.as_str());
                let body: Value =
                    app.get(&format!("/v1/links/{encoded}")).send().await.expect("request").json().await.expect("json");
                assert_eq!((body["languageId"].as_i64(), body["themeId"].as_i64()), (Some(language), Some(theme)));
            }
        }
    }
}
