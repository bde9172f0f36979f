//! Pages for people: the home page and its form, the stats page, HTML error
//! pages for browsers (and problem bodies still for API clients), QR codes and
//! the static assets. Every value a visitor or a link's creator controls is shown
//! escaped.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    API_KEY, PUBLIC_BASE, TestApp, TestDatabase, TestWorker, assert_problem, eventually, spawn, spawn_with,
    write_vocabulary,
};

const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                        form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const HOSTILE_AGENT: &str = "<script>alert(1)</script>";
const HOSTILE_REFERRER: &str = "https://evil.example/\"><img src=x onerror=alert(2)>";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// Asserts an HTML page with the pages' policy and returns its body.
async fn page(response: reqwest::Response, status: u16, cache_control: &str) -> String {
    assert_eq!(response.status(), status);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["content-security-policy"], PAGE_CSP);
    assert_eq!(headers["cache-control"], cache_control);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let body = response.text().await.expect("body");
    assert!(body.starts_with("<!doctype html>"), "{body}");
    body
}

/// Posts the home page's form as a browser on this site would.
fn post_form(app: &TestApp, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    app.client
        .post(app.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", BROWSER_ACCEPT)
        .header("sec-fetch-site", "same-origin")
        .body(body)
}

/// The phrase of the short URL a created page shows.
fn phrase_of(location: &str) -> String {
    let encoded = location.strip_prefix(&format!("{PUBLIC_BASE}/")).expect("under the public base");
    percent_encoding::percent_decode_str(encoded).decode_utf8().expect("utf-8").into_owned()
}

#[tokio::test]
async fn the_home_page_offers_every_catalogue_entry_in_a_labelled_form() {
    let (app, _db) = spawn().await;
    let body = page(app.client.get(app.url("/")).send().await.expect("home"), 200, "public, max-age=60").await;
    for expected in [
        r#"<form class="card" method="post" action="/" novalidate>"#,
        r#"<label for="targetUrl">Long address (URL)</label>"#,
        r#"<input id="targetUrl" name="targetUrl" type="url""#,
        r#"<label for="languageId">Language</label>"#,
        r#"<option value="0" selected>English</option><option value="1">Polish</option>"#,
        r#"<option value="0" selected>No theme</option><option value="1">Proper names</option><option value="2">Politicians</option>"#,
        r#"<option value="0" selected>kebab-case (wildly-grumpy-walrus)</option><option value="1">PascalCase (WildlyGrumpyWalrus)</option>"#,
        r#"<link rel="stylesheet" href="/assets/site.css">"#,
        r#"<script src="/assets/copy.js" defer></script>"#,
    ] {
        assert!(body.contains(expected), "missing {expected} in {body}");
    }
    // Nothing inline that the policy would block.
    assert!(!body.contains("style=") && !body.contains("<script>") && !body.contains("onclick"), "{body}");
}

#[tokio::test]
async fn the_form_makes_a_link_and_shows_it_with_its_qr_code_and_stats_link() {
    let (app, _db) = spawn().await;
    let response = post_form(
        &app,
        &[("targetUrl", "https://example.com/a?b=1&c=2"), ("languageId", "0"), ("themeId", "1"), ("formatId", "1")],
    )
    .send()
    .await
    .expect("post");
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let body = page(response, 201, "no-store").await;
    let phrase = phrase_of(&location);
    assert!(phrase.chars().next().is_some_and(char::is_uppercase), "PascalCase: {phrase}");
    for expected in [
        format!(r#"<input id="short-url" type="text" value="{location}" readonly>"#),
        r#"<button type="button" class="copy" data-copy="short-url" hidden>Copy</button>"#.to_owned(),
        format!(r#"<img class="qr" src="/v1/links/{phrase}/qr.svg""#),
        format!(r#"<a href="{PUBLIC_BASE}/s/{phrase}">See who follows it</a>"#),
        r#"href="https://example.com/a?b=1&#38;c=2""#.to_owned(),
    ] {
        assert!(body.contains(&expected), "missing {expected} in {body}");
    }
    // The link is real: the API reads it back.
    let link: Value = app.get(&format!("/v1/links/{phrase}")).send().await.expect("read").json().await.expect("json");
    assert_eq!(
        (link["targetUrl"].as_str(), link["themeId"].as_i64()),
        (Some("https://example.com/a?b=1&c=2"), Some(1))
    );
}

#[tokio::test]
async fn validation_errors_are_shown_beside_their_fields_in_words() {
    let (app, _db) = spawn().await;
    let response = post_form(&app, &[("targetUrl", ""), ("languageId", "7"), ("themeId", "x"), ("formatId", "1")])
        .send()
        .await
        .expect("post");
    let body = page(response, 400, "no-store").await;
    for expected in [
        r#"aria-invalid="true" aria-describedby="targetUrl-error""#,
        r#"<p class="field-error" id="targetUrl-error">The target URL is required. The target URL must be an absolute URI.</p>"#,
        r#"<p class="field-error" id="languageId-error">The language identifier must be in the range from 0 to 1 inclusive.</p>"#,
        r#"<p class="field-error" id="themeId-error">The theme identifier must be in the range from 0 to 2 inclusive.</p>"#,
        // What was chosen stays chosen.
        r#"<option value="1" selected>PascalCase (WildlyGrumpyWalrus)</option>"#,
        r#"<div class="alert" role="alert">"#,
    ] {
        assert!(body.contains(expected), "missing {expected} in {body}");
    }
    assert!(!body.contains(r#"id="formatId-error""#), "{body}");

    // A hostile target is refused by the API's rules and echoed back as text.
    let hostile = "javascript:\"><script>alert(1)</script>";
    let response = post_form(&app, &[("targetUrl", hostile), ("languageId", "0"), ("themeId", "0"), ("formatId", "0")])
        .send()
        .await
        .expect("post");
    let body = page(response, 400, "no-store").await;
    assert!(body.contains("The target URL must use the http or https scheme."), "{body}");
    assert!(body.contains(r#"value="javascript:&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;""#), "{body}");
    assert!(!body.contains("<script>alert(1)"), "{body}");

    // And a target pointing back at this service.
    let response = post_form(
        &app,
        &[("targetUrl", &format!("{PUBLIC_BASE}/x")), ("languageId", "0"), ("themeId", "0"), ("formatId", "0")],
    )
    .send()
    .await
    .expect("post");
    let body = page(response, 400, "no-store").await;
    assert!(body.contains("The target URL must not point at this service."), "{body}");
}

#[tokio::test]
async fn form_posts_from_other_sites_are_refused() {
    let (app, db) = spawn().await;
    let fields = "targetUrl=https%3A%2F%2Fexample.com%2F&languageId=0&themeId=0&formatId=0";
    let cross_site = app
        .client
        .post(app.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(fields)
        .send()
        .await
        .expect("post");
    let body = page(cross_site, 403, "no-store").await;
    assert!(body.contains("<h1>Request refused</h1>"), "{body}");
    // A browser without Fetch Metadata: its Origin must be ours.
    let foreign_origin = app
        .client
        .post(app.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .body(fields)
        .send()
        .await
        .expect("post");
    assert_eq!(foreign_origin.status(), 403);
    assert_eq!(db.count("links").await, 0);
    // Our own origin passes.
    let own = app
        .client
        .post(app.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", PUBLIC_BASE)
        .body(fields)
        .send()
        .await
        .expect("post");
    assert_eq!(own.status(), 201);
}

#[tokio::test]
async fn web_create_can_be_turned_off() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--web-create=false"]).await;
    let body = page(app.client.get(app.url("/")).send().await.expect("home"), 200, "public, max-age=60").await;
    assert!(body.contains("Creating links from this page is turned off on this server."), "{body}");
    assert!(body.contains(&format!("curl -X POST {PUBLIC_BASE}/v1/links")), "{body}");
    assert!(!body.contains("<form"), "{body}");
    let response = post_form(&app, &[("targetUrl", "https://example.com/")]).send().await.expect("post");
    let body = page(response, 403, "no-store").await;
    assert!(body.contains("Creating links here is turned off"), "{body}");
    assert_eq!(db.count("links").await, 0);
}

#[tokio::test]
async fn web_create_has_its_own_rate_limit() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--rate-limit-enabled=true", "--rate-limit-web-create-per-minute=2"]).await;
    let fields = [("targetUrl", "https://example.com/"), ("languageId", "0"), ("themeId", "0"), ("formatId", "0")];
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post_form(&app, &fields).send().await.expect("post").status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 429]);
    let limited = post_form(&app, &fields).send().await.expect("post");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body = page(limited, 429, "no-store").await;
    assert!(body.contains(&format!("Please try again in {retry_after} second")), "{body}");
    // The API's create is not affected, and the home page still shows.
    assert!(!app.create("https://example.com/", 0, 0, 0).await.is_empty());
    assert_eq!(app.client.get(app.url("/")).send().await.expect("home").status(), 200);
}

#[tokio::test]
async fn the_stats_page_shows_totals_charts_top_lists_and_visits_escaped() {
    // Vocabularies allow letters, spaces, `-` and `'`: a quote is the most
    // hostile a phrase can be, and it must not end an attribute.
    let dir = tempfile::tempdir().expect("tempdir");
    write_vocabulary(dir.path(), &["it's"]);
    let db = TestDatabase::new();
    let vocabulary = format!("--vocabulary-dir={}", dir.path().display());
    let app = spawn_with(&db, &[&vocabulary, "--stats-cache-ttl=0s"]).await;
    let worker = TestWorker::spawn(&db, &app.namespace.name, &[]).await;
    let phrase = app.create("https://example.com/?q=%3Cb%3E", 0, 0, 0).await;
    assert!(phrase.contains("it's"), "{phrase}");
    let encoded = percent_encoding::utf8_percent_encode(&phrase, percent_encoding::NON_ALPHANUMERIC).to_string();

    let visit = app
        .client
        .get(app.url(&format!("/{encoded}")))
        .header("user-agent", HOSTILE_AGENT)
        .header("referer", HOSTILE_REFERRER)
        .send()
        .await
        .expect("visit");
    assert_eq!(visit.status(), 301);
    let crawler = app.client.get(app.url(&format!("/{encoded}"))).header("user-agent", BOT).send().await;
    assert_eq!(crawler.expect("crawler").status(), 301);

    let body = eventually(Duration::from_secs(20), "the stats page counts both visits", || async {
        let response = app.client.get(app.url(&format!("/s/{encoded}"))).send().await.map_err(|e| e.to_string())?;
        let body = page(response, 200, "public, max-age=5").await;
        if body.contains(r#"<span class="number" id="total-visits">2</span>"#) { Ok(body) } else { Err(body) }
    })
    .await;
    worker.stop().await;

    let escaped_phrase = phrase.replace('\'', "&#39;");
    for expected in [
        format!("<h1>Statistics of <span class=\"phrase\">{escaped_phrase}</span></h1>"),
        r#"<span class="number" id="human-visits">1</span>"#.to_owned(),
        r#"<span class="number" id="bot-visits">1</span>"#.to_owned(),
        r#"<figure class="chart" id="chart-hours" data-visits="2" data-humans="1" data-bots="1">"#.to_owned(),
        r#"<figure class="chart" id="chart-days" data-visits="2" data-humans="1" data-bots="1">"#.to_owned(),
        "2 visits in the last 48 hours: 1 by people, 1 by bots.".to_owned(),
        "2 visits in the last 90 days: 1 by people, 1 by bots.".to_owned(),
        r#"<rect class="human""#.to_owned(),
        r#"<rect class="bot""#.to_owned(),
        ": 1 person, 1 bot</title>".to_owned(),
        "<td>Bot</td>".to_owned(),
        "<td>evil.example</td>".to_owned(),
        "&#60;script&#62;alert(1)&#60;/script&#62;".to_owned(),
        // Newest visits show the referrer's host only: its path may carry a visitor's data.
        r#"<td class="ua">evil.example</td>"#.to_owned(),
        r#"href="https://example.com/?q=%3Cb%3E""#.to_owned(),
        "<td>Person</td>".to_owned(),
    ] {
        assert!(body.contains(&expected), "missing {expected} in {body}");
    }
    assert!(!body.contains("<script>alert") && !body.contains("<img src=x") && !body.contains("it's"), "{body}");
    assert!(!body.contains("onerror"), "no referrer path on a public page: {body}");
    // No visitor's address, anonymised or not.
    assert!(!body.contains("127.0.0."), "{body}");
}

#[tokio::test]
async fn stats_pages_of_links_that_cannot_be_followed_are_gone_pages() {
    let (app, _db) = spawn().await;
    let disabled = app.create("https://phish.example/login", 0, 0, 0).await;
    let deleted = app.create("https://example.com/old", 0, 0, 0).await;
    let edit = app
        .client
        .patch(app.url(&format!("/v1/links/{disabled}")))
        .header("X-Offnd-Api-Key", API_KEY)
        .json(&serde_json::json!({"disabled": true, "disabledReason": "phishing"}))
        .send()
        .await
        .expect("disable");
    assert_eq!(edit.status(), 200);
    let delete = app
        .client
        .delete(app.url(&format!("/v1/links/{deleted}")))
        .header("X-Offnd-Api-Key", API_KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(delete.status(), 204);
    for phrase in [&disabled, &deleted] {
        let encoded = percent_encoding::utf8_percent_encode(phrase, percent_encoding::NON_ALPHANUMERIC).to_string();
        let response = app.client.get(app.url(&format!("/s/{encoded}"))).send().await.expect("stats page");
        let body = page(response, 410, "no-store").await;
        assert!(!body.contains("phish.example") && !body.contains("example.com/old"), "no target shown: {body}");
        assert!(!body.contains("Statistics of"), "{body}");
    }
}

#[tokio::test]
async fn pages_of_unknown_and_impossible_phrases_are_error_pages() {
    let (app, _db) = spawn().await;
    let body = page(app.client.get(app.url("/s/no-such-phrase")).send().await.expect("stats"), 404, "no-store").await;
    assert!(body.contains("<h1>No such link</h1>"), "{body}");
    let body = page(app.client.get(app.url("/s/%FF")).send().await.expect("stats"), 400, "no-store").await;
    assert!(body.contains("<h1>This is not a short link</h1>"), "{body}");
}

#[tokio::test]
async fn short_url_errors_are_pages_for_browsers_and_problems_for_api_clients() {
    let db = TestDatabase::new();
    let app = spawn_with(
        &db,
        &["--rate-limit-enabled=true", "--rate-limit-redirect-burst=3", "--rate-limit-redirect-per-second=0.01"],
    )
    .await;
    let browser = app.client.get(app.url("/no-such-phrase")).header("accept", BROWSER_ACCEPT).send().await;
    let body = page(browser.expect("browser"), 404, "no-store").await;
    assert!(body.contains("<h1>No such link</h1>"), "{body}");
    assert!(body.contains("No link has this phrase."), "{body}");

    let api = app.client.get(app.url("/no-such-phrase")).send().await.expect("api");
    assert_problem(api, 404, &["Link.NotFound"]).await;
    // The v1 redirect is API only: a problem even for HTML.
    let v1 = app.client.get(app.url("/v1/redirects/no-such-phrase")).header("accept", BROWSER_ACCEPT).send().await;
    assert_problem(v1.expect("v1"), 404, &["Link.NotFound"]).await;

    // The burst of three is spent: rate limited, as a page and as a problem.
    let limited = app.client.get(app.url("/no-such-phrase")).header("accept", BROWSER_ACCEPT).send().await;
    let limited = limited.expect("limited");
    assert!(limited.headers().contains_key("retry-after"));
    let body = page(limited, 429, "no-store").await;
    assert!(body.contains("<h1>Slow down a little</h1>"), "{body}");
    let api = app.client.get(app.url("/no-such-phrase")).send().await.expect("api");
    assert_problem(api, 429, &["General.TooManyRequests"]).await;
}

#[tokio::test]
async fn qr_codes_encode_the_short_url_without_an_api_key() {
    let (app, _db) = spawn().await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;

    let svg = app.client.get(app.url(&format!("/v1/links/{phrase}/qr.svg"))).send().await.expect("svg");
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert_eq!(svg.headers()["cache-control"], "public, max-age=86400");
    let body = svg.text().await.expect("svg body");
    assert!(body.contains("<svg") && body.contains("#000000"), "{body}");

    let png = app.client.get(app.url(&format!("/v1/links/{phrase}/qr.png?size=128"))).send().await.expect("png");
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.expect("png body");
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a PNG");
    let (width, height) = (reader.info().width, reader.info().height);
    assert_eq!(width, height);
    assert!((64..=128).contains(&width), "{width}");

    let default = app.client.get(app.url(&format!("/v1/links/{phrase}/qr.png"))).send().await.expect("png");
    let bytes = default.bytes().await.expect("png body");
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a PNG");
    assert!((200..=256).contains(&reader.info().width), "{}", reader.info().width);

    for bad in ["5000", "10", "big"] {
        let response =
            app.client.get(app.url(&format!("/v1/links/{phrase}/qr.png?size={bad}"))).send().await.expect("png");
        let problem = assert_problem(response, 400, &["Qr.SizeOutOfRange"]).await;
        assert_eq!(problem["errors"][0]["message"], "`size` must be a whole number of pixels from 64 to 1024.");
    }
    let unknown = app.client.get(app.url("/v1/links/no-such-phrase/qr.svg")).send().await.expect("unknown");
    assert_problem(unknown, 404, &["Link.NotFound"]).await;
    // The key is not needed, but a caller sending one is not refused either.
    let keyed = app.get(&format!("/v1/links/{phrase}/qr.svg")).send().await.expect("keyed");
    assert_eq!(keyed.status(), 200);
    let _ = API_KEY;
}

#[tokio::test]
async fn assets_are_served_from_the_binary_and_api_responses_keep_their_policy() {
    let (app, _db) = spawn().await;
    for (path, content_type, marker) in [
        ("/assets/site.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"),
        ("/assets/copy.js", "text/javascript; charset=utf-8", "navigator.clipboard"),
    ] {
        let response = app.client.get(app.url(path)).send().await.expect("asset");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
        assert!(response.text().await.expect("body").contains(marker));
    }
    let api = app.get("/v1/languages").send().await.expect("languages");
    assert_eq!(api.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
}
