//! The API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! attributes and served at `GET /openapi.json`, and an interactive reference
//! (Swagger UI, its assets compiled into the binary) at `GET /docs`.
//!
//! The route modules are private to the router, so each hands its operations over
//! with [`document!`]: it implements [`utoipa::OpenApi`] for a marker type declared
//! here, and [`openapi`] merges them. [`ROUTES`] lists every operation the router
//! serves; the integration tests compare it with this document and with the live
//! router, so neither can drift from the other unnoticed.

mod constraints;
mod docs_ui;
pub mod responses;
pub mod schemas;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;
use crate::response::JSON_UTF8;
use crate::state::AppState;

/// Every API operation the router serves, as `(method, path)` with OpenAPI path
/// templates. Kept by hand on purpose: the tests check it against both the
/// document and the running router, which is what catches a route added to one
/// and forgotten in the other. The pages for people (`/`, `/s/{phrase}`,
/// `/assets/…`, see `crate::pages`) answer HTML, not the API, and are left out.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/languages"),
    ("GET", "/v1/themes"),
    ("GET", "/v1/formats"),
    ("POST", "/v1/links"),
    ("GET", "/v1/links"),
    ("GET", "/v1/links/{phrase}"),
    ("PATCH", "/v1/links/{phrase}"),
    ("DELETE", "/v1/links/{phrase}"),
    ("DELETE", "/v1/links/{phrase}/visits"),
    ("GET", "/v1/links/{phrase}/stats"),
    ("GET", "/v1/stats"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("DELETE", "/v1/keys/{name}"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/links/{phrase}/qr.svg"),
    ("GET", "/v1/links/{phrase}/qr.png"),
    ("GET", "/v1/redirects/{phrase}"),
    ("GET", "/{phrase}"),
    ("GET", "/health/live"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
];

/// The name of the API-key security scheme in the document.
pub const API_KEY_SCHEME: &str = "apiKey";

/// Implements [`utoipa::OpenApi`] for the marker `$marker` (declared in this
/// module) with the operations of `$handler`s, so a private route module can hand
/// them to [`openapi`]; the schemas they use are collected with them.
macro_rules! document {
    ($marker:ident: $($handler:ident),+ $(,)?) => {
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($handler),+))]
        struct Operations;

        impl utoipa::OpenApi for $crate::openapi::$marker {
            fn openapi() -> utoipa::openapi::OpenApi {
                <Operations as utoipa::OpenApi>::openapi()
            }
        }
    };
}
pub(crate) use document;

/// The operations of `routes::catalogues`.
pub struct CataloguesApi;
/// The operations of `routes::create_link`.
pub struct CreateLinkApi;
/// The operations of `routes::read_link`.
pub struct ReadLinkApi;
/// The operations of `routes::list_links`.
pub struct ListLinksApi;
/// The operations of `routes::manage_link`.
pub struct ManageLinkApi;
/// The operations of `routes::stats`.
pub struct StatsApi;
/// The operations of `routes::keys`.
pub struct KeysApi;
/// The operations of `routes::audit`.
pub struct AuditApi;
/// The operations of `routes::redirect`.
pub struct RedirectApi;
/// The operations of `routes::health`.
pub struct HealthApi;
/// The operations of `pages::qr`.
pub struct QrApi;

/// The parts of the document that belong to no single route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "offndat",
        version = "1",
        description = "Phrase link shortener, a drop-in replacement for the offnd.at v1 API. \
            Every `/v1` route except redirects needs the `X-Offnd-Api-Key` header. Every error is \
            an RFC 9457 problem (`application/problem+json`) whose `errors[].code` is stable. \
            Every response carries `api-supported-versions: 1` and `X-Request-Id`. \
            Events published to RabbitMQ are described by `docs/asyncapi.yaml` in the repository.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(openapi_json, docs_ui::docs),
    components(
        schemas(schemas::Problem, schemas::ProblemError, schemas::CreateKeyRequest, schemas::KeyRole),
        responses(
            responses::CreateLinkBadRequest,
            responses::EditLinkBadRequest,
            responses::ListLinksBadRequest,
            responses::PhraseTaken,
            responses::IdempotencyKeyReused,
            responses::LinkGone,
            responses::LinkDeleted,
            responses::InvalidPhrase,
            responses::Unauthorized,
            responses::LinkNotFound,
            responses::StatsBadRequest,
            responses::QrBadRequest,
            responses::RequestTimeout,
            responses::PayloadTooLarge,
            responses::TooManyRequests,
            responses::HeadersTooLarge,
            responses::ServerError,
            responses::ServiceUnavailable,
            responses::CreateLinkUnavailable,
            responses::CreateKeyBadRequest,
            responses::KeyNameTaken,
            responses::KeyNotFound,
            responses::Forbidden,
            responses::PaginationBadRequest,
        ),
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "Catalogues", description = "The languages, themes and formats a phrase can be drawn in."),
        (name = "Links", description = "Create, read, edit, disable and delete links, and read or erase \
            their visits."),
        (name = "Keys", description = "Stored API keys and the audit log; admin keys only."),
        (name = "QR codes", description = "QR codes of short URLs, for print and for phones. No API key."),
        (name = "Redirects", description = "Follow a link; every visit is counted."),
        (name = "Operations", description = "Health checks and Prometheus metrics for operators."),
        (name = "Documentation", description = "This document and its interactive reference."),
    ),
)]
struct ApiDoc;

/// The whole document: the shared parts plus every route module's operations,
/// with what the layers around every route add (see [`CrossCutting`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(CataloguesApi::openapi());
    doc.merge(CreateLinkApi::openapi());
    doc.merge(ReadLinkApi::openapi());
    doc.merge(ManageLinkApi::openapi());
    doc.merge(ListLinksApi::openapi());
    doc.merge(StatsApi::openapi());
    doc.merge(KeysApi::openapi());
    doc.merge(AuditApi::openapi());
    doc.merge(RedirectApi::openapi());
    doc.merge(HealthApi::openapi());
    doc.merge(QrApi::openapi());
    constraints::Constraints.modify(&mut doc);
    CrossCutting.modify(&mut doc);
    doc
}

/// `GET /openapi.json` and the interactive reference under `/docs`; no API key.
pub fn routes() -> Router<AppState> {
    // Rendered once: the document is fixed for the life of the process.
    let document = serde_json::to_vec(&openapi()).map(Bytes::from).map_err(|error| {
        tracing::error!(%error, "serialising the OpenAPI document failed");
    });
    Router::new()
        .route("/openapi.json", get(move || std::future::ready(serve_document(document.clone()))))
        .merge(docs_ui::routes())
        // The document is ~36 KB of JSON and the reference's script far more;
        // gzip or brotli, as the client accepts, shrink them several times.
        .layer(CompressionLayer::new())
}

fn serve_document(document: Result<Bytes, ()>) -> Response {
    match document {
        Ok(bytes) => ([(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8))], bytes).into_response(),
        Err(()) => ApiError::Internal.into_response(),
    }
}

/// The OpenAPI 3.1 document of this API
///
/// Generated from the code at build time; the same document the reference at
/// `/docs` renders.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openApiDocument",
    tag = "Documentation",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json",
            body = inline(Object), example = json!({"openapi": "3.1.0", "info": {"title": "offndat", "version": "1"}, "paths": {}})),
    ),
)]
#[expect(dead_code, reason = "documentation only: `routes` serves the path with a closure over the rendered document")]
fn openapi_json() {}

/// Declares the `X-Offnd-Api-Key` scheme that authenticated operations name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Offnd-Api-Key",
                "One of the keys configured in `OFFNDAT_API_KEYS` (admins), or an active stored key \
                 (`offndat-api keys create`, `POST /v1/keys`) with its role. Missing, empty or wrong: \
                 `401` with `General.Unauthorized`; a creator key on an admin route: `403` with \
                 `General.Forbidden`.",
            ))),
        );
    }
}

/// What the layers around every route add to every operation: the responses they
/// can answer with whatever the route (408 timeout, 431 oversized headers, 500),
/// and the headers the request-context middleware puts on every response.
/// Route-specific statuses stay in the handlers' attributes.
struct CrossCutting;

const API_SUPPORTED_VERSIONS: &str = "api-supported-versions";
const X_REQUEST_ID: &str = "X-Request-Id";

/// `(status, response component)` every operation can answer with.
const EVERY_ROUTE: [(&str, &str); 3] = [("408", "RequestTimeout"), ("431", "HeadersTooLarge"), ("500", "ServerError")];

impl Modify for CrossCutting {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.headers.insert(
            API_SUPPORTED_VERSIONS.to_owned(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["1"]))))
                    .description(Some("The versions of the v1 contract this service speaks: always `1`."))
                    .example(Some("1".into()))
                    .build(),
            ),
        );
        components.headers.insert(
            X_REQUEST_ID.to_owned(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(128)),
                    ))
                    .description(Some(
                        "The request's id: the client's own `X-Request-Id` when it sent a valid one (1–128 \
                         characters of `A–Z a–z 0–9 - _ . :`), otherwise a new one. Also the problem body's \
                         `requestId`.",
                    ))
                    .example(Some("8d1c2e3f00000000002a".into()))
                    .build(),
            ),
        );
        let add_headers = |response: &mut RefOr<utoipa::openapi::Response>| {
            if let RefOr::T(response) = response {
                for name in [API_SUPPORTED_VERSIONS, X_REQUEST_ID] {
                    response
                        .headers
                        .entry(name.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/headers/{name}"))));
                }
            }
        };
        components.responses.values_mut().for_each(add_headers);
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                // A stored key cannot be verified while PostgreSQL is out of reach
                // for too long (fail closed), whatever the route does.
                let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut operation.responses.responses;
                if authenticated {
                    responses
                        .entry("503".to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name("ServiceUnavailable")));
                }
                for (status, component) in EVERY_ROUTE {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(component)));
                }
                responses.values_mut().for_each(add_headers);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(openapi()).expect("serialisable")
    }

    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference.clone());
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut found = Vec::new();
        references(&doc, &mut found);
        assert!(!found.is_empty());
        for reference in found {
            let pointer = reference.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "dangling {reference}");
        }
    }

    #[test]
    fn the_document_has_exactly_the_listed_routes() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object().expect("path item").keys().map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let listed: BTreeSet<(String, String)> =
            ROUTES.iter().map(|(method, path)| ((*method).to_owned(), (*path).to_owned())).collect();
        assert_eq!(documented, listed);
    }
}
