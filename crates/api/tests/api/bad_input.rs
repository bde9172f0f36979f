//! Every bad input named by the core-service issue: a problem response, and nothing
//! written.

use serde_json::{Value, json};

use crate::helpers::{PUBLIC_BASE, TestApp, TestDatabase, assert_problem, spawn};

const REQUIRED: &str = "GenerateLink.TargetUrlIsRequired";
const ABSOLUTE: &str = "GenerateLink.TargetUrlMustBeAbsoluteUri";
const SCHEME: &str = "GenerateLink.TargetUrlSchemeNotAllowed";
const LONG: &str = "TargetUrl.LongerThanAllowed";
const SELF: &str = "GenerateLink.TargetUrlIsSelf";
const LANGUAGE: &str = "GenerateLink.LanguageIdOutOfRange";
const THEME: &str = "GenerateLink.ThemeIdOutOfRange";
const FORMAT: &str = "GenerateLink.FormatIdOutOfRange";

async fn assert_nothing_written(db: &TestDatabase) {
    assert_eq!(db.count("links").await, 0, "links written");
    // Requests for unknown phrases are counted (orphan visits), nothing else.
    assert_eq!(db.scalar("SELECT count(*) FROM outbox WHERE event_type <> 'link.visited'").await, 0, "outbox written");
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox, jsonb_array_elements(COALESCE(body::jsonb, payload) -> 'links')").await,
        0,
        "visits of links written"
    );
}

async fn post_raw(app: &TestApp, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.post("/v1/links").header("Content-Type", "application/json").body(body).send().await.expect("request")
}

fn valid() -> Value {
    json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0})
}

fn with(field: &str, value: Value) -> Value {
    let mut body = valid();
    body[field] = value;
    body
}

#[tokio::test]
async fn bodies_that_are_not_json_objects() {
    let (app, db) = spawn().await;
    let cases: [(&str, &str); 5] = [
        ("", "The request body is empty; a JSON object is required."),
        ("   ", "The request body is empty; a JSON object is required."),
        ("targetUrl=https://example.com", "The request body is not valid JSON."),
        ("{\"targetUrl\": ", "The request body is not valid JSON."),
        ("[{\"targetUrl\": \"https://example.com/\"}]", "The request body must be a JSON object."),
    ];
    for (body, message) in cases {
        let response = post_raw(&app, body).await;
        let problem = assert_problem(response, 400, &["General.InvalidJson"]).await;
        assert_eq!(problem["errors"][0]["message"], message, "{body:?}");
        assert_eq!(problem["title"], "One or more validation errors occurred.");
        assert_eq!(problem["type"], "https://tools.ietf.org/html/rfc9110#section-15.5.1");
        assert_eq!(problem["instance"], "POST /v1/links");
    }
    assert_nothing_written(&db).await;
}

#[tokio::test]
async fn empty_object_lists_every_rule_in_order() {
    let (app, db) = spawn().await;
    let response = post_raw(&app, "{}").await;
    let problem = assert_problem(response, 400, &[REQUIRED, ABSOLUTE, LANGUAGE, THEME, FORMAT]).await;
    let messages: Vec<&str> =
        problem["errors"].as_array().expect("errors").iter().map(|e| e["message"].as_str().expect("m")).collect();
    assert_eq!(
        messages,
        [
            "The target URL is required.",
            "The target URL must be an absolute URI.",
            "The language identifier must be in the range from 0 to 1 inclusive.",
            "The theme identifier must be in the range from 0 to 2 inclusive.",
            "The format identifier must be in the range from 0 to 1 inclusive.",
        ]
    );
    assert_nothing_written(&db).await;
}

#[tokio::test]
async fn wrong_field_types_are_validation_errors() {
    let (app, db) = spawn().await;
    let cases = [
        (with("languageId", json!("x")), vec![LANGUAGE]),
        (with("languageId", json!(1.5)), vec![LANGUAGE]),
        (with("languageId", Value::Null), vec![LANGUAGE]),
        (with("themeId", json!("1")), vec![THEME]),
        (with("formatId", json!(true)), vec![FORMAT]),
        (with("targetUrl", json!(42)), vec![REQUIRED, ABSOLUTE]),
        (with("targetUrl", Value::Null), vec![REQUIRED, ABSOLUTE]),
        (
            json!({"targetUrl": ["https://example.com/"], "languageId": {}, "themeId": [], "formatId": "0"}),
            vec![REQUIRED, ABSOLUTE, LANGUAGE, THEME, FORMAT],
        ),
    ];
    for (body, codes) in cases {
        let response = app.post("/v1/links").json(&body).send().await.expect("request");
        assert_problem(response, 400, &codes).await;
    }
    assert_nothing_written(&db).await;
}

#[tokio::test]
async fn ids_out_of_range() {
    let (app, db) = spawn().await;
    for id in [json!(-1), json!(2), json!(99), json!(1_i64 << 40)] {
        let response = app.post("/v1/links").json(&with("languageId", id.clone())).send().await.expect("request");
        assert_problem(response, 400, &[LANGUAGE]).await;
        let response = app.post("/v1/links").json(&with("formatId", id.clone())).send().await.expect("request");
        assert_problem(response, 400, &[FORMAT]).await;
    }
    for id in [json!(-1), json!(3), json!(99), json!(1_i64 << 40)] {
        let response = app.post("/v1/links").json(&with("themeId", id)).send().await.expect("request");
        assert_problem(response, 400, &[THEME]).await;
    }
    let response = app
        .post("/v1/links")
        .json(&json!({"targetUrl": "https://example.com/", "languageId": 2, "themeId": 3, "formatId": 2}))
        .send()
        .await
        .expect("request");
    assert_problem(response, 400, &[LANGUAGE, THEME, FORMAT]).await;
    assert_nothing_written(&db).await;
}

#[tokio::test]
async fn unacceptable_targets() {
    let (app, db) = spawn().await;
    let long = format!("https://example.com/{}", "a".repeat(4097 - "https://example.com/".len()));
    assert_eq!(long.chars().count(), 4097);
    let cases: Vec<(String, Vec<&str>)> = vec![
        (String::new(), vec![REQUIRED, ABSOLUTE]),
        ("   ".into(), vec![REQUIRED, ABSOLUTE]),
        ("example.com/page".into(), vec![ABSOLUTE]),
        ("/relative/path".into(), vec![ABSOLUTE]),
        ("javascript:alert(1)".into(), vec![SCHEME]),
        ("data:text/html;base64,PHNjcmlwdD4=".into(), vec![SCHEME]),
        ("ftp://example.com/file".into(), vec![SCHEME]),
        ("mailto:someone@example.com".into(), vec![SCHEME]),
        (long, vec![LONG]),
        (format!("{PUBLIC_BASE}/wildly-grumpy-walrus"), vec![SELF]),
        ("HTTP://SHORT.TEST/".into(), vec![SELF]),
    ];
    for (target, codes) in cases {
        let response = app.post("/v1/links").json(&with("targetUrl", json!(target))).send().await.expect("request");
        let problem = assert_problem(response, 400, &codes).await;
        assert_eq!(problem["title"], "One or more validation errors occurred.", "{target}");
    }
    assert_nothing_written(&db).await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let (app, db) = spawn().await;
    let mut body = valid();
    body["padding"] = json!("x".repeat(64 * 1024));
    let response = app.post("/v1/links").json(&body).send().await.expect("request");
    let problem = assert_problem(response, 413, &["General.PayloadTooLarge"]).await;
    assert_eq!(problem["type"], "https://tools.ietf.org/html/rfc9110#section-15.5.14");
    // The same without a Content-Length: a chunked body is cut off at the limit too.
    let chunks = futures_stream(vec![vec![b' '; 40 * 1024], vec![b' '; 40 * 1024]]);
    let response = app.post("/v1/links").body(reqwest::Body::wrap_stream(chunks)).send().await.expect("request");
    assert_problem(response, 413, &["General.PayloadTooLarge"]).await;
    assert_nothing_written(&db).await;
}

fn futures_stream(
    chunks: Vec<Vec<u8>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    tokio_stream::iter(chunks.into_iter().map(Ok))
}

#[tokio::test]
async fn bad_phrases_on_read_and_redirect() {
    let (app, db) = spawn().await;
    let long = "a".repeat(5000);
    let cases: [(&str, u16, &str); 7] = [
        ("%ff%fe", 400, "Link.InvalidPhrase"),
        ("wildly%2Fgrumpy", 400, "Link.InvalidPhrase"),
        ("wildly%0D%0Agrumpy", 400, "Link.InvalidPhrase"),
        ("wildly%00grumpy", 400, "Link.InvalidPhrase"),
        (&long, 400, "Link.InvalidPhrase"),
        ("%zz-not-encoding", 404, "Link.NotFound"),
        // Decoded once: `%25ff` is the text `%ff`, valid UTF-8 and simply unknown.
        ("%25ff%25fe", 404, "Link.NotFound"),
    ];
    for (phrase, status, code) in cases {
        for prefix in ["/v1/links/", "/v1/redirects/", "/"] {
            let response = app.get(&format!("{prefix}{phrase}")).send().await.expect("request");
            assert!(response.headers().get("location").is_none());
            let problem = assert_problem(response, status, &[code]).await;
            let instance = problem["instance"].as_str().expect("instance");
            assert!(instance.starts_with(&format!("GET {prefix}")), "{instance}");
            assert!(instance.chars().count() < 600, "instance is bounded");
        }
    }
    // A CR/LF never reaches a header: the redirect of an invalid phrase has no Location.
    assert_nothing_written(&db).await;
}
