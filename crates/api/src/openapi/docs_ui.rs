//! `GET /docs`: the interactive API reference (Swagger UI). Every asset it needs is
//! compiled into the binary (utoipa-swagger-ui's `vendored` assets), so the page
//! works without internet access, and a strict Content-Security-Policy keeps the
//! browser from loading anything from elsewhere.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa_swagger_ui::Config;

use crate::error::ApiError;
use crate::state::AppState;

/// Where the page and its assets live.
const BASE: &str = "/docs";

/// Same-origin only. Swagger UI sets inline `style` attributes and renders a
/// few images as `data:` URIs; it needs no inline script and no `eval`.
/// `connect-src 'self'` lets "Try it out" call this API and nothing else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page itself. Ours rather than the bundled `index.html`, so that every
/// asset path is absolute (the page is served at `/docs`, without the trailing
/// slash its relative paths assume) and there is nothing inline.
const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>offndat API reference</title>
    <link rel="stylesheet" type="text/css" href="/docs/swagger-ui.css">
    <link rel="stylesheet" type="text/css" href="/docs/index.css">
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
    <link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="/docs/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="/docs/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"#;

/// `/docs` (and `/docs/`) and the assets under it.
pub fn routes() -> Router<AppState> {
    // `validatorUrl: none`: by default Swagger UI sends the document to an online
    // validator and shows its badge.
    let config = Arc::new(Config::new(["/openapi.json"]).validator_url("none"));
    Router::new()
        .route(BASE, get(docs))
        .route("/docs/", get(docs))
        .route("/docs/{*file}", get(move |Path(file): Path<String>| std::future::ready(asset(&file, config.clone()))))
}

/// Interactive API reference
///
/// Swagger UI for `/openapi.json`, served entirely by this service: it works
/// offline and loads nothing from other origins.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "apiReference",
    tag = "Documentation",
    responses(
        (status = 200, description = "The reference page (its scripts and styles are under `/docs/`).",
            content_type = "text/html", body = String,
            headers(("Content-Security-Policy" = String, description = "Same-origin only.")),
            example = json!("<!DOCTYPE html>\n<html lang=\"en\">…<script src=\"/docs/swagger-ui-bundle.js\" charset=\"UTF-8\"></script>…</html>")),
    ),
)]
pub async fn docs() -> Response {
    secured(
        ([(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], INDEX_HTML).into_response(),
    )
}

fn asset(file: &str, config: Arc<Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(file)) => {
            let content_type = HeaderValue::from_str(&file.content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
            let mut response = ([(header::CONTENT_TYPE, content_type)], file.bytes.into_owned()).into_response();
            if file.gzpipped {
                response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            secured(response)
        }
        Ok(None) => ApiError::RouteNotFound.into_response(),
        Err(error) => {
            tracing::error!(%error, file, "rendering a Swagger UI asset failed");
            ApiError::Internal.into_response()
        }
    }
}

/// Adds this page's own policy; the request-context middleware keeps it (its
/// default, `default-src 'none'`, would stop the page from loading its scripts)
/// and adds `nosniff` and the other security headers.
fn secured(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    response
}
