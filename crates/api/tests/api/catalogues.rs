//! The catalogue routes answer exactly the contract's bodies.

use serde_json::{Value, json};

use crate::helpers::spawn;

async fn get_json(path: &str) -> Value {
    let (app, _db) = spawn().await;
    let response = app.get(path).send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
    assert_eq!(response.headers()["api-supported-versions"], "1");
    response.json().await.expect("json")
}

#[tokio::test]
async fn languages() {
    assert_eq!(
        get_json("/v1/languages").await,
        json!({"languages":[{"value":0,"name":"English","code":"en"},{"value":1,"name":"Polish","code":"pl"}]})
    );
}

#[tokio::test]
async fn themes() {
    assert_eq!(
        get_json("/v1/themes").await,
        json!({"themes":[{"value":0,"name":"none"},{"value":1,"name":"proper-names"},{"value":2,"name":"politicians"}]})
    );
}

#[tokio::test]
async fn formats() {
    assert_eq!(
        get_json("/v1/formats").await,
        json!({"formats":[{"value":0,"name":"kebab-case"},{"value":1,"name":"pascal-case"}]})
    );
}
