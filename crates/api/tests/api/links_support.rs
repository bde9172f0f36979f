//! Helpers of the link-management tests: requests with the key, and problem
//! bodies without their per-request ids, so whole bodies can be compared.

use serde_json::{Value, json};

use crate::helpers::{API_KEY, TestApp};

/// `PATCH` with the key and a JSON body.
pub async fn patch(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client.patch(app.url(path)).header("X-Offnd-Api-Key", API_KEY).json(&body).send().await.expect("request")
}

/// `DELETE` with the key.
pub async fn delete(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.delete(app.url(path)).header("X-Offnd-Api-Key", API_KEY).send().await.expect("request")
}

/// Creates a link from `body` (merged over a valid request) and returns the response.
pub async fn create(app: &TestApp, extra: Value) -> reqwest::Response {
    let mut body = json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0});
    for (key, value) in extra.as_object().expect("object") {
        body[key] = value.clone();
    }
    app.post("/v1/links").json(&body).send().await.expect("request")
}

/// The problem body of `response`, checked for status and media type, with
/// `traceId` and `requestId` removed (they differ per request).
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let mut body: Value = response.json().await.expect("json");
    let map = body.as_object_mut().expect("object");
    assert_eq!(map.remove("traceId").and_then(|v| v.as_str().map(str::len)), Some(32));
    assert!(map.remove("requestId").is_some());
    body
}

/// The exact problem body for one error.
pub fn expected(status: u16, code: &str, message: &str, instance: &str) -> Value {
    let (kind, title) = match status {
        400 => ("https://tools.ietf.org/html/rfc9110#section-15.5.1", "One or more validation errors occurred."),
        404 => ("https://tools.ietf.org/html/rfc9110#section-15.5.5", "Not Found"),
        409 => ("https://tools.ietf.org/html/rfc9110#section-15.5.10", "Conflict"),
        410 => ("https://tools.ietf.org/html/rfc9110#section-15.5.11", "Gone"),
        422 => ("https://tools.ietf.org/html/rfc9110#section-15.5.21", "Unprocessable Content"),
        other => panic!("no expectation for {other}"),
    };
    json!({
        "type": kind,
        "title": title,
        "status": status,
        "detail": message,
        "instance": instance,
        "errors": [{"code": code, "message": message}],
    })
}

/// The exact 400 body listing `codes` with their messages (no `detail`).
pub fn validation(instance: &str, errors: &[(&str, &str)]) -> Value {
    json!({
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "instance": instance,
        "errors": errors.iter().map(|(code, message)| json!({"code": code, "message": message})).collect::<Vec<_>>(),
    })
}

/// The phrase of a create response (`url` under the public base).
pub async fn phrase_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    let url = body["url"].as_str().expect("url");
    let encoded = url.rsplit('/').next().expect("segment");
    percent_encoding::percent_decode_str(encoded).decode_utf8().expect("utf-8").into_owned()
}

pub const PHRASE_INVALID: &str = "The phrase must be a string of 3 to 128 characters without control characters, \
     slashes, `?`, `#`, `%` or spaces at either end.";
pub const PHRASE_RESERVED: &str = "The phrase is reserved for the service's own paths.";
pub const EXPIRES_INVALID: &str = "The expiry must be an RFC 3339 date-time, e.g. 2026-12-31T23:59:59Z.";
pub const EXPIRES_PAST: &str = "The expiry must be in the future.";
pub const MAX_VISITS: &str = "The visit limit must be an integer from 1 to 2147483647.";
