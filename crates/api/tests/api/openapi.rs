//! The OpenAPI document and the `/docs` reference cannot drift from the router:
//! `offndat_api::openapi::ROUTES` must equal the document's operations and be
//! exactly what the running router serves, every route documents the statuses it
//! can answer with, live bodies have the documented shapes, and the reference
//! page loads nothing from other origins.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use offndat_api::openapi::ROUTES;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn};

/// The statuses each operation can answer with; kept by hand so that a change
/// to either the handlers' attributes or the layers shows up here. 408 (request
/// timeout), 431 (headers too large) and 500 come from the layers around every
/// route; 429 from the rate limiters on `/v1` and redirects (never on health,
/// metrics or docs); 503 on every authenticated route (stored keys are refused
/// while they cannot be verified).
const STATUSES: &[(&str, &str, &[u16])] = &[
    ("GET", "/v1/languages", &[200, 401, 408, 429, 431, 500, 503]),
    ("GET", "/v1/themes", &[200, 401, 408, 429, 431, 500, 503]),
    ("GET", "/v1/formats", &[200, 401, 408, 429, 431, 500, 503]),
    ("POST", "/v1/links", &[201, 400, 401, 408, 409, 413, 422, 429, 431, 500, 503]),
    ("GET", "/v1/links", &[200, 400, 401, 408, 429, 431, 500, 503]),
    ("GET", "/v1/links/{phrase}", &[200, 400, 401, 404, 408, 410, 429, 431, 500, 503]),
    ("PATCH", "/v1/links/{phrase}", &[200, 400, 401, 403, 404, 408, 410, 413, 429, 431, 500, 503]),
    ("DELETE", "/v1/links/{phrase}", &[204, 400, 401, 404, 408, 410, 429, 431, 500, 503]),
    ("DELETE", "/v1/links/{phrase}/visits", &[200, 400, 401, 404, 408, 410, 429, 431, 500, 503]),
    ("GET", "/v1/links/{phrase}/stats", &[200, 400, 401, 404, 408, 410, 429, 431, 500, 503]),
    ("GET", "/v1/stats", &[200, 400, 401, 403, 408, 429, 431, 500, 503]),
    ("GET", "/v1/keys", &[200, 401, 403, 408, 429, 431, 500, 503]),
    ("POST", "/v1/keys", &[201, 400, 401, 403, 408, 409, 413, 429, 431, 500, 503]),
    ("DELETE", "/v1/keys/{name}", &[204, 401, 403, 404, 408, 429, 431, 500, 503]),
    ("GET", "/v1/audit", &[200, 400, 401, 403, 408, 429, 431, 500, 503]),
    ("GET", "/v1/links/{phrase}/qr.svg", &[200, 400, 404, 408, 410, 429, 431, 500, 503]),
    ("GET", "/v1/links/{phrase}/qr.png", &[200, 400, 404, 408, 410, 429, 431, 500, 503]),
    ("GET", "/v1/redirects/{phrase}", &[301, 400, 404, 408, 410, 429, 431, 500, 503]),
    ("GET", "/{phrase}", &[301, 400, 404, 408, 410, 429, 431, 500, 503]),
    ("GET", "/health/live", &[200, 408, 431, 500]),
    ("GET", "/openapi.json", &[200, 408, 431, 500]),
    ("GET", "/docs", &[200, 408, 431, 500]),
];

async fn document(app: &TestApp) -> Value {
    // No API key: the document is public.
    let response = app.client.get(app.url("/openapi.json")).send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
    assert_eq!(response.headers()["api-supported-versions"], "1");
    response.json().await.expect("json")
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().expect("path item").keys().map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

fn listed() -> BTreeSet<(String, String)> {
    ROUTES.iter().map(|(method, path)| ((*method).to_owned(), (*path).to_owned())).collect()
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &doc["paths"][path][method.to_lowercase()];
    assert!(operation.is_object(), "{method} {path} is not documented");
    operation
}

/// Follows a local `$ref`, once.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            doc.pointer(reference.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling {reference}"))
        }
        None => value,
    }
}

fn response<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    resolve(doc, &operation(doc, method, path)["responses"][status.to_string()])
}

/// A path with its template filled in, for requests.
fn concrete(path: &str, phrase: &str) -> String {
    path.replace("{phrase}", phrase)
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_exactly_the_routes() {
    let (app, _db) = spawn().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().expect("openapi").starts_with("3.1."), "{}", doc["openapi"]);
    assert_eq!(operations(&doc), listed(), "ROUTES and the document disagree");
    let expected: BTreeSet<(String, String)> =
        STATUSES.iter().map(|(method, path, _)| ((*method).to_owned(), (*path).to_owned())).collect();
    assert_eq!(expected, listed(), "the test's STATUSES and ROUTES disagree");
}

/// Every listed operation is served (anything but the router's own "no such
/// route" or "no such method" problem), and every other method on those paths
/// is refused: the router serves no operation on them that is not documented.
#[tokio::test]
async fn the_router_serves_exactly_the_listed_operations() {
    let (app, _db) = spawn().await;
    let by_path: BTreeMap<&str, Vec<&str>> = ROUTES.iter().fold(BTreeMap::new(), |mut map, (method, path)| {
        map.entry(*path).or_insert_with(Vec::new).push(*method);
        map
    });
    for (path, methods) in by_path {
        let url = concrete(path, "no-such-phrase");
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let response = app
                .client
                .request(method.clone(), app.url(&url))
                .header("X-Offnd-Api-Key", crate::helpers::API_KEY)
                .json(&json!({}))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let is_json_problem =
                response.headers().get("content-type").is_some_and(|v| v == "application/problem+json");
            let body: Value = if is_json_problem { response.json().await.expect("problem") } else { Value::Null };
            let code = body["errors"][0]["code"].as_str().unwrap_or_default().to_owned();
            if methods.contains(&method.as_str()) {
                assert!(
                    code != "General.NotFound" && code != "General.MethodNotAllowed",
                    "{method} {path} is documented but not served: {status} {body}"
                );
            } else {
                assert_eq!(
                    (status, code.as_str()),
                    (405, "General.MethodNotAllowed"),
                    "{method} {path} is served but not documented: {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_route_documents_every_status_it_can_answer_with() {
    let (app, _db) = spawn().await;
    let doc = document(&app).await;
    for (method, path, statuses) in STATUSES {
        let documented: Vec<u16> = operation(&doc, method, path)["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .map(|status| status.parse().expect("numeric status"))
            .collect();
        assert_eq!(&documented, statuses, "{method} {path}");

        for status in *statuses {
            let response = response(&doc, method, path, *status);
            assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}");
            for header in ["api-supported-versions", "X-Request-Id"] {
                assert!(response["headers"][header].is_object(), "{method} {path} {status} lacks {header}");
            }
            let content = response["content"].as_object();
            let is_problem = *status >= 400 && !path.starts_with("/health");
            if is_problem {
                let problem = &response["content"]["application/problem+json"];
                assert_eq!(problem["schema"]["$ref"], "#/components/schemas/Problem", "{method} {path} {status}");
                let examples = problem["examples"].as_object().expect("problem examples");
                for example in examples.values() {
                    assert_eq!(example["value"]["status"], *status, "{method} {path}: {example}");
                }
            } else if let Some(content) = content {
                for (media, body) in content {
                    assert!(
                        body.get("example").is_some() || body.get("examples").is_some(),
                        "{method} {path} {status} {media} has no example"
                    );
                }
            }
            if matches!(status, 429 | 503) && is_problem {
                assert!(response["headers"]["Retry-After"].is_object(), "{method} {path} {status} lacks Retry-After");
            }
        }

        // The API key is required exactly where the contract says; QR codes hold
        // only the public short URL and need none.
        let authenticated = path.starts_with("/v1/") && !path.starts_with("/v1/redirects/") && !path.contains("/qr.");
        let security = &operation(&doc, method, path)["security"];
        if authenticated {
            assert_eq!(security, &json!([{"apiKey": []}]), "{method} {path}");
        } else {
            assert!(security.is_null(), "{method} {path} must not need a key");
        }
    }

    assert_eq!(
        doc["components"]["securitySchemes"]["apiKey"],
        json!({"type": "apiKey", "in": "header", "name": "X-Offnd-Api-Key",
               "description": doc["components"]["securitySchemes"]["apiKey"]["description"]})
    );
    let problem = &doc["components"]["schemas"]["Problem"];
    let properties: BTreeSet<&str> =
        problem["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
    assert_eq!(
        properties,
        BTreeSet::from(["type", "title", "status", "detail", "instance", "errors", "traceId", "requestId"])
    );
    let contract =
        &response(&doc, "POST", "/v1/links", 400)["content"]["application/problem+json"]["examples"]["contract"];
    assert_eq!(
        contract["value"],
        json!({
            "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "detail": "optional human text",
            "instance": "POST /v1/links",
            "errors": [ { "code": "GenerateLink.TargetUrlIsRequired", "message": "The target URL is required." } ],
            "traceId": "…",
            "requestId": "…"
        })
    );
}

/// The property names of the schema `$ref`erenced (or inlined) at `schema`.
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    resolve(doc, schema)["properties"].as_object().expect("an object schema").keys().cloned().collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().expect("an object").keys().cloned().collect()
}

fn assert_shape(doc: &Value, schema: &Value, body: &Value, what: &str) {
    let schema = resolve(doc, schema);
    let documented = properties(doc, schema);
    let required: BTreeSet<String> =
        schema["required"].as_array().into_iter().flatten().map(|r| r.as_str().expect("name").to_owned()).collect();
    let actual = keys(body);
    assert!(actual.is_subset(&documented), "{what}: undocumented fields {:?}", actual.difference(&documented));
    assert!(required.is_subset(&actual), "{what}: missing required {:?}", required.difference(&actual));
}

#[tokio::test]
async fn live_bodies_have_the_documented_shapes_and_examples() {
    let (app, _worker, _db) = crate::helpers::spawn_counting(&[]).await;
    let doc = document(&app).await;

    for path in ["/v1/languages", "/v1/themes", "/v1/formats"] {
        let body: Value = app.get(path).send().await.expect("request").json().await.expect("json");
        let documented = &response(&doc, "GET", path, 200)["content"]["application/json"];
        assert_eq!(documented["example"], body, "{path}: the example is the real catalogue");
        assert_shape(&doc, &documented["schema"], &body, path);
    }

    let created = app
        .post("/v1/links")
        .json(&json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0}))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    let documented = &response(&doc, "POST", "/v1/links", 201)["content"]["application/json"];
    assert_shape(&doc, &documented["schema"], &created, "POST /v1/links");
    assert_eq!(keys(&created), keys(&documented["example"]));

    let phrase = app.create("https://example.com/a", 0, 0, 0).await;
    let visit = app.client.get(app.url(&format!("/v1/redirects/{phrase}"))).send().await.expect("request");
    assert_eq!(visit.status(), 301);
    let link = crate::helpers::eventually(Duration::from_secs(10), "the visit is recorded", || async {
        let link: Value =
            app.get(&format!("/v1/links/{phrase}")).send().await.expect("request").json().await.expect("json");
        let recorded = link["recentVisits"].as_array().is_some_and(|v| !v.is_empty());
        if recorded { Ok(link) } else { Err(link.to_string()) }
    })
    .await;
    let documented = &response(&doc, "GET", "/v1/links/{phrase}", 200)["content"]["application/json"];
    assert_shape(&doc, &documented["schema"], &link, "GET /v1/links/{phrase}");
    assert_eq!(keys(&link), keys(&documented["example"]));
    let visit_schema = &resolve(&doc, &documented["schema"])["properties"]["recentVisits"]["items"];
    assert_shape(&doc, visit_schema, &link["recentVisits"][0], "a recent visit");
    assert_eq!(keys(&link["recentVisits"][0]), keys(&documented["example"]["recentVisits"][0]));

    // The link-management routes: list, edit, erase.
    let listed: Value = app.get("/v1/links").send().await.expect("request").json().await.expect("json");
    let documented = &response(&doc, "GET", "/v1/links", 200)["content"]["application/json"];
    assert_shape(&doc, &documented["schema"], &listed, "GET /v1/links");
    assert_eq!(keys(&listed), keys(&documented["example"]));
    assert_eq!(keys(&listed["links"][0]), keys(&documented["example"]["links"][0]));
    assert_eq!(keys(&listed["pagination"]), keys(&documented["example"]["pagination"]));
    let edited = app
        .client
        .patch(app.url(&format!("/v1/links/{phrase}")))
        .header("X-Offnd-Api-Key", crate::helpers::API_KEY)
        .json(&json!({"disabled": true, "disabledReason": "testing"}))
        .send()
        .await
        .expect("request");
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.expect("json");
    let documented = &response(&doc, "PATCH", "/v1/links/{phrase}", 200)["content"]["application/json"];
    assert_shape(&doc, &documented["schema"], &edited, "PATCH /v1/links/{phrase}");
    assert_eq!(keys(&edited), keys(&documented["example"]));
    let erased = app
        .client
        .delete(app.url(&format!("/v1/links/{phrase}/visits")))
        .header("X-Offnd-Api-Key", crate::helpers::API_KEY)
        .send()
        .await
        .expect("request");
    let erased: Value = erased.json().await.expect("json");
    let documented = &response(&doc, "DELETE", "/v1/links/{phrase}/visits", 200)["content"]["application/json"];
    assert_shape(&doc, &documented["schema"], &erased, "DELETE /v1/links/{phrase}/visits");
    assert_eq!(keys(&erased), keys(&documented["example"]));

    let live: Value =
        app.client.get(app.url("/health/live")).send().await.expect("request").json().await.expect("json");
    let documented = &response(&doc, "GET", "/health/live", 200)["content"]["application/json"];
    assert_shape(&doc, &documented["schema"], &live, "/health/live");

    let problem = app.get("/v1/links/no-such-phrase").send().await.expect("request");
    let problem = crate::helpers::assert_problem(problem, 404, &["Link.NotFound"]).await;
    assert_shape(&doc, &json!({"$ref": "#/components/schemas/Problem"}), &problem, "a problem");
    let example = &response(&doc, "GET", "/v1/links/{phrase}", 404)["content"]["application/problem+json"]["examples"]
        ["linkNotFound"]["value"];
    for field in ["type", "title", "status", "detail", "errors", "instance"] {
        assert_eq!(example[field], problem[field], "the 404 example's {field}");
    }
}

#[tokio::test]
async fn key_and_audit_bodies_have_the_documented_shapes_and_examples() {
    let (app, _db) = spawn().await;
    let doc = document(&app).await;
    let created = app.post("/v1/keys").json(&json!({"name": "ci", "role": "creator"})).send().await.expect("request");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    let documented = &response(&doc, "POST", "/v1/keys", 201)["content"]["application/json"];
    assert_eq!(keys(&created), keys(&documented["example"]));
    let schema = resolve(&doc, &documented["schema"]);
    assert_shape(
        &doc,
        &schema["allOf"][0],
        &created.as_object().expect("object").clone().into_iter().filter(|(k, _)| k != "secret").collect(),
        "POST /v1/keys",
    );
    assert_eq!(properties(&doc, &schema["allOf"][1]), BTreeSet::from(["secret".to_owned()]));

    let listed: Value = app.get("/v1/keys").send().await.expect("request").json().await.expect("json");
    let documented = &response(&doc, "GET", "/v1/keys", 200)["content"]["application/json"];
    assert_shape(&doc, &documented["schema"], &listed, "GET /v1/keys");
    assert_eq!(keys(&listed["keys"][0]), keys(&documented["example"]["keys"][0]));

    let audit: Value = app.get("/v1/audit").send().await.expect("request").json().await.expect("json");
    let documented = &response(&doc, "GET", "/v1/audit", 200)["content"]["application/json"];
    assert_shape(&doc, &documented["schema"], &audit, "GET /v1/audit");
    assert_eq!(keys(&audit["entries"][0]), keys(&documented["example"]["entries"][0]));
    assert_eq!(keys(&audit["pagination"]), keys(&documented["example"]["pagination"]));
    app.stop().await;
}

#[tokio::test]
async fn the_reference_page_is_served_by_the_binary_alone() {
    let (app, _db) = spawn().await;
    let page = app.client.get(app.url("/docs")).send().await.expect("request");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    for directive in ["default-src 'self'", "script-src 'self'", "connect-src 'self'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    let html = page.text().await.expect("html");
    assert!(!html.contains("http://") && !html.contains("https://"), "the page names another origin:\n{html}");
    assert!(!html.contains("<script>") && !html.contains("<style"), "nothing inline:\n{html}");

    let assets: Vec<String> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| {
            html.split(attribute).skip(1).map(|rest| rest.split('"').next().unwrap_or_default().to_owned())
        })
        .collect();
    assert!(assets.len() >= 4, "{assets:?}");
    for asset in &assets {
        assert!(asset.starts_with("/docs/"), "{asset} is not one of the binary's own paths");
        let response = app.client.get(app.url(asset)).send().await.expect("request");
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.headers().contains_key("content-security-policy"), "{asset}");
    }

    let config = app.client.get(app.url("/docs/swagger-initializer.js")).send().await.expect("request");
    let config = config.text().await.expect("js");
    assert!(config.contains("\"url\": \"/openapi.json\""), "{config}");
    assert!(config.contains("\"validatorUrl\": \"none\""), "no online validator:\n{config}");
    assert!(!config.contains("http://") && !config.contains("https://"), "{config}");

    // The trailing-slash form is the same page; unknown assets are problems.
    assert_eq!(app.client.get(app.url("/docs/")).send().await.expect("request").text().await.expect("html"), html);
    let missing = app.client.get(app.url("/docs/no-such-asset.js")).send().await.expect("request");
    crate::helpers::assert_problem(missing, 404, &["General.NotFound"]).await;
}

#[tokio::test]
async fn the_document_is_gzipped_for_clients_that_accept_it() {
    use std::io::Read;

    let (app, _db) = spawn().await;
    let plain = app.client.get(app.url("/openapi.json")).send().await.expect("request");
    assert_eq!(plain.status(), 200);
    assert!(!plain.headers().contains_key("content-encoding"), "uncompressed unless asked");
    let plain = plain.bytes().await.expect("body");

    let gzipped =
        app.client.get(app.url("/openapi.json")).header("Accept-Encoding", "gzip").send().await.expect("request");
    assert_eq!(gzipped.status(), 200);
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["content-type"], "application/json; charset=utf-8");
    let compressed = gzipped.bytes().await.expect("body");
    assert!(compressed.len() * 3 < plain.len(), "{} bytes gzipped of {}", compressed.len(), plain.len());
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_ref()).read_to_end(&mut inflated).expect("valid gzip");
    assert_eq!(inflated, plain.as_ref(), "the same document");
    let document: Value = serde_json::from_slice(&inflated).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
}
