//! `GET /v1/languages`, `/v1/themes`, `/v1/formats`.

use axum::http::StatusCode;
use axum::response::Response;
use offndat_application::catalogues::{self, CatalogueEntry};
use serde::Serialize;

use crate::response::json;

#[derive(Serialize)]
struct Entry {
    value: u8,
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
}

fn entries(list: Vec<CatalogueEntry>) -> Vec<Entry> {
    list.into_iter().map(|e| Entry { value: e.value, name: e.name, code: e.code }).collect()
}

pub async fn languages() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "languages": entries(catalogues::languages()) }))
}

pub async fn themes() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "themes": entries(catalogues::themes()) }))
}

pub async fn formats() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "formats": entries(catalogues::formats()) }))
}
