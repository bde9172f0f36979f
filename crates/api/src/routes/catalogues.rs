//! `GET /v1/languages`, `/v1/themes`, `/v1/formats`.

use axum::http::StatusCode;
use axum::response::Response;
use offndat_application::catalogues::{self, CatalogueEntry};
use serde::Serialize;

use crate::openapi::{responses, schemas};
use crate::response::json;

crate::openapi::document!(CataloguesApi: languages, themes, formats);

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

/// The languages phrases can be drawn in
#[utoipa::path(
    get,
    path = "/v1/languages",
    operation_id = "listLanguages",
    tag = "Catalogues",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "Every language, in `value` order.", body = schemas::LanguageList,
            example = json!(schemas::language_list())),
        (status = 401, response = responses::Unauthorized),
        (status = 429, response = responses::TooManyRequests),
    ),
)]
pub async fn languages() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "languages": entries(catalogues::languages()) }))
}

/// The themes phrases can be drawn from
#[utoipa::path(
    get,
    path = "/v1/themes",
    operation_id = "listThemes",
    tag = "Catalogues",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "Every theme, in `value` order.", body = schemas::ThemeList,
            example = json!(schemas::theme_list())),
        (status = 401, response = responses::Unauthorized),
        (status = 429, response = responses::TooManyRequests),
    ),
)]
pub async fn themes() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "themes": entries(catalogues::themes()) }))
}

/// The formats phrases can be written in
#[utoipa::path(
    get,
    path = "/v1/formats",
    operation_id = "listFormats",
    tag = "Catalogues",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "Every format, in `value` order.", body = schemas::FormatList,
            example = json!(schemas::format_list())),
        (status = 401, response = responses::Unauthorized),
        (status = 429, response = responses::TooManyRequests),
    ),
)]
pub async fn formats() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "formats": entries(catalogues::formats()) }))
}
