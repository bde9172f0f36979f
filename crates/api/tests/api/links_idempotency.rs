//! `Idempotency-Key` on `POST /v1/links`: retries answer the first link, another
//! body is refused, concurrent requests create one link, keys are per API key.

use serde_json::{Value, json};

use crate::helpers::{API_KEY, OTHER_API_KEY, TestApp, spawn};
use crate::links_support::{expected, problem};

fn body(target: &str) -> Value {
    json!({"targetUrl": target, "languageId": 0, "themeId": 0, "formatId": 0})
}

async fn post(app: &TestApp, api_key: &str, idempotency_key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/links"))
        .header("X-Offnd-Api-Key", api_key)
        .header("Idempotency-Key", idempotency_key)
        .json(body)
        .send()
        .await
        .expect("request")
}

/// Status, `Location` and body of a create.
async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let location =
        response.headers().get("location").map(|l| l.to_str().expect("ascii").to_owned()).unwrap_or_default();
    (status, location, response.json().await.expect("json"))
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_answers_the_first_link() {
    let (app, db) = spawn().await;
    let first = answer(post(&app, API_KEY, "retry-1", &body("https://example.com/")).await).await;
    assert_eq!(first.0, 201);
    // The same JSON object, written differently, is the same body.
    let reordered = json!({"formatId": 0, "themeId": 0, "languageId": 0, "targetUrl": "https://example.com/"});
    let second = answer(post(&app, API_KEY, "retry-1", &reordered).await).await;
    assert_eq!(second, first);
    assert_eq!(db.count("links").await, 1);
    assert_eq!(db.scalar("SELECT count(*) FROM outbox WHERE event_type = 'link.created'").await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let (app, db) = spawn().await;
    assert_eq!(post(&app, API_KEY, "reused", &body("https://example.com/")).await.status(), 201);
    let response = post(&app, API_KEY, "reused", &body("https://example.org/")).await;
    assert_eq!(
        problem(response, 422).await,
        expected(
            422,
            "Idempotency.KeyReused",
            "The Idempotency-Key was already used with a different request body.",
            "POST /v1/links"
        )
    );
    assert_eq!(db.count("links").await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_link() {
    let (app, db) = spawn().await;
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let request =
                app.post("/v1/links").header("Idempotency-Key", "concurrent").json(&body("https://example.com/once"));
            tokio::spawn(async move { answer(request.send().await.expect("request")).await })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.expect("task"));
    }
    assert_eq!(answers[0].0, 201, "{:?}", answers[0]);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(db.count("links").await, 1);
}

#[tokio::test]
async fn keys_belong_to_the_api_key_that_sent_them() {
    let (app, db) = spawn().await;
    let mine = answer(post(&app, API_KEY, "shared-name", &body("https://example.com/")).await).await;
    let theirs = answer(post(&app, OTHER_API_KEY, "shared-name", &body("https://example.com/")).await).await;
    assert_eq!((mine.0, theirs.0), (201, 201));
    assert_ne!(mine.2, theirs.2);
    assert_eq!(db.count("links").await, 2);
}

#[tokio::test]
async fn a_failed_request_does_not_use_up_its_key() {
    let (app, db) = spawn().await;
    let invalid = post(&app, API_KEY, "after-failure", &body("ftp://example.com/")).await;
    assert_eq!(invalid.status(), 400);
    let valid = post(&app, API_KEY, "after-failure", &body("https://example.com/")).await;
    assert_eq!(valid.status(), 201);
    assert_eq!(db.count("links").await, 1);
}

#[tokio::test]
async fn an_unusable_key_is_400() {
    let (app, db) = spawn().await;
    for key in ["x".repeat(256), "with space".to_owned(), "zażółć".to_owned()] {
        let response = app
            .client
            .post(app.url("/v1/links"))
            .header("X-Offnd-Api-Key", API_KEY)
            .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(key.as_bytes()).expect("header"))
            .json(&body("https://example.com/"))
            .send()
            .await
            .expect("request");
        assert_eq!(
            problem(response, 400).await,
            json!({
                "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                "title": "One or more validation errors occurred.",
                "status": 400,
                "detail": "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
                "instance": "POST /v1/links",
                "errors": [{"code": "Idempotency.KeyInvalid", "message": "The Idempotency-Key must be 1 to 255 visible ASCII characters."}]
            }),
            "{key}"
        );
    }
    assert_eq!(db.count("links").await, 0);
}
