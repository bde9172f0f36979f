//! `GET /v1/links`: pages, search, state filters and orders with exact bodies,
//! every bad parameter, and the query plans that serve them from indexes.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, spawn};
use crate::links_support::{create, patch, phrase_of, problem};

/// Phrase, target and visit total of each link, oldest first.
const LINKS: [(&str, &str, i64); 5] = [
    ("first-link", "https://example.com/a", 5),
    ("second-link", "https://shop.example/sale", 50),
    ("third-link", "https://example.com/walrus", 0),
    ("fourth-walrus", "https://other.example/", 7),
    ("fifth-link", "https://example.com/e", 1),
];

async fn seeded() -> (TestApp, TestDatabase) {
    let (app, db) = spawn().await;
    for (phrase, target, _) in LINKS {
        phrase_of(create(&app, json!({"phrase": phrase, "targetUrl": target})).await).await;
    }
    let mut conn = db.connect().await;
    for (phrase, _, visits) in LINKS {
        sqlx::query("INSERT INTO visit_summaries (link_id, total_visits, bot_visits) SELECT id, $2, 0 FROM links WHERE phrase = $1")
            .bind(phrase)
            .bind(visits)
            .execute(&mut conn)
            .await
            .expect("summary");
    }
    assert_eq!(
        patch(&app, "/v1/links/second-link", json!({"disabled": true, "disabledReason": "spam"})).await.status(),
        200
    );
    sqlx::query("UPDATE links SET expires_at = now() - interval '1 hour' WHERE phrase = 'third-link'")
        .execute(&mut conn)
        .await
        .expect("expire");
    (app, db)
}

async fn list(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/v1/links{query}")).send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
    response.json().await.expect("json")
}

fn phrases(body: &Value) -> Vec<&str> {
    body["links"].as_array().expect("links").iter().map(|l| l["phrase"].as_str().expect("phrase")).collect()
}

#[tokio::test]
async fn pages_are_newest_first_by_default_with_their_pagination() {
    let (app, _db) = seeded().await;
    let body = list(&app, "").await;
    assert_eq!(phrases(&body), ["fifth-link", "fourth-walrus", "third-link", "second-link", "first-link"]);
    assert_eq!(body["pagination"], json!({"page": 1, "pageSize": 20, "totalItems": 5, "totalPages": 1}));
    let mut second = body["links"][3].clone();
    let map = second.as_object_mut().expect("object");
    assert!(map.remove("id").is_some() && map.remove("createdAt").is_some());
    assert_eq!(
        second,
        json!({
            "phrase": "second-link", "targetUrl": "https://shop.example/sale", "languageId": 0, "themeId": 0,
            "visits": 50, "humanVisits": 50, "botVisits": 0, "state": "disabled", "expiresAt": null,
            "maxVisits": null, "disabledReason": "spam"
        })
    );

    let page = list(&app, "?page=2&pageSize=2").await;
    assert_eq!(phrases(&page), ["third-link", "second-link"]);
    assert_eq!(page["pagination"], json!({"page": 2, "pageSize": 2, "totalItems": 5, "totalPages": 3}));
    let past = list(&app, "?page=9&pageSize=2").await;
    assert_eq!(past, json!({"links": [], "pagination": {"page": 9, "pageSize": 2, "totalItems": 5, "totalPages": 3}}));
}

#[tokio::test]
async fn search_state_and_order_narrow_and_sort() {
    let (app, _db) = seeded().await;
    assert_eq!(phrases(&list(&app, "?search=WALRUS").await), ["fourth-walrus", "third-link"], "phrase or target");
    assert_eq!(phrases(&list(&app, "?search=shop.example").await), ["second-link"]);
    assert_eq!(phrases(&list(&app, "?search=100%25").await), Vec::<&str>::new(), "% is literal");
    assert_eq!(phrases(&list(&app, "?state=disabled").await), ["second-link"]);
    assert_eq!(phrases(&list(&app, "?state=expired").await), ["third-link"]);
    assert_eq!(phrases(&list(&app, "?state=active").await), ["fifth-link", "fourth-walrus", "first-link"]);
    assert_eq!(phrases(&list(&app, "?orderBy=createdAt-asc&pageSize=2").await), ["first-link", "second-link"]);
    assert_eq!(
        phrases(&list(&app, "?orderBy=visits-desc").await),
        ["second-link", "fourth-walrus", "first-link", "fifth-link", "third-link"]
    );
    let filtered = list(&app, "?state=active&search=example.com&orderBy=visits-desc").await;
    assert_eq!(phrases(&filtered), ["first-link", "fifth-link"]);
    assert_eq!(filtered["pagination"], json!({"page": 1, "pageSize": 20, "totalItems": 2, "totalPages": 1}));
}

#[tokio::test]
async fn every_bad_parameter_is_listed() {
    let (app, _db) = spawn().await;
    let problem_for = |query: &'static str| {
        let request = app.get(&format!("/v1/links{query}")).send();
        async move { problem(request.await.expect("request"), 400).await }
    };
    let all = problem_for("?page=0&pageSize=101&search=&state=gone&orderBy=random").await;
    assert_eq!(
        all,
        json!({
            "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "detail": "`page` must be an integer from 1.",
            "instance": "GET /v1/links",
            "errors": [
                {"code": "ListLinks.PageInvalid", "message": "`page` must be an integer from 1."},
                {"code": "ListLinks.PageSizeInvalid", "message": "`pageSize` must be an integer from 1 to 100."},
                {"code": "ListLinks.SearchInvalid", "message": "`search` must be 1 to 200 characters."},
                {"code": "ListLinks.StateInvalid", "message": "`state` must be `active`, `disabled` or `expired`."},
                {"code": "ListLinks.OrderByInvalid", "message": "`orderBy` must be `createdAt-desc`, `createdAt-asc` or `visits-desc`."}
            ]
        })
    );
    for query in ["?page=x", "?page=-1", "?pageSize=0", "?pageSize=1.5"] {
        let body = problem_for(query).await;
        assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{query}: {body}");
    }
    let long = "a".repeat(201);
    let body = problem(app.get(&format!("/v1/links?search={long}")).send().await.expect("request"), 400).await;
    assert_eq!(body["errors"][0]["code"], "ListLinks.SearchInvalid");
    // PostgreSQL text cannot hold NUL: refused, not a 500 from the store.
    let body = problem(app.get("/v1/links?search=a%00b").send().await.expect("request"), 400).await;
    assert_eq!(
        body["errors"],
        json!([{"code": "ListLinks.SearchInvalid", "message": "`search` must be 1 to 200 characters."}])
    );
}

/// The plan PostgreSQL picks for a list query over many links.
async fn plan(conn: &mut sqlx::PgConnection, query: &str) -> String {
    let rows: Vec<(String,)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {query}"))).fetch_all(&mut *conn).await.expect("explain");
    rows.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn list_queries_are_served_by_indexes() {
    let db = TestDatabase::migrated().await;
    let mut conn = db.connect().await;
    sqlx::raw_sql(
        "INSERT INTO api_keys (name, role, secret_sha256)
         SELECT 'creator-' || n, 'creator', sha256(('secret-' || n)::bytea) FROM generate_series(1, 50) AS n;
         INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at, owner_key_id)
         SELECT gen_random_uuid(), 'phrase-' || n, 'https://site' || n || '.example/page', 0, 0,
                now() - make_interval(secs => n), n % 50 + 1
         FROM generate_series(1, 20000) AS n;
         INSERT INTO visit_summaries (link_id, total_visits) SELECT id, (random() * 1000)::bigint FROM links;
         ANALYZE links; ANALYZE visit_summaries;",
    )
    .execute(&mut conn)
    .await
    .expect("seed");
    let select = "SELECT l.id FROM links l LEFT JOIN visit_summaries s ON s.link_id = l.id";
    let newest = plan(&mut conn, &format!("{select} ORDER BY l.created_at DESC, l.id DESC LIMIT 20 OFFSET 40")).await;
    assert!(newest.contains("links_created"), "{newest}");
    let oldest = plan(&mut conn, &format!("{select} ORDER BY l.created_at ASC, l.id ASC LIMIT 20")).await;
    assert!(oldest.contains("links_created"), "{oldest}");
    let owner =
        plan(&mut conn, &format!("{select} WHERE l.owner_key_id = 7 ORDER BY l.created_at DESC, l.id DESC LIMIT 20"))
            .await;
    assert!(owner.contains("links_owner_created"), "{owner}");
    // Over 20,000 short rows a sequential scan is cheaper than the trigram index;
    // forbidding it shows the index can serve the search (on larger tables the
    // planner picks it by itself).
    sqlx::query("SET enable_seqscan = off").execute(&mut conn).await.expect("set");
    let search = plan(
        &mut conn,
        &format!("{select} WHERE l.phrase ILIKE '%site12345%' OR l.target_url ILIKE '%site12345%' ORDER BY l.created_at DESC LIMIT 20"),
    )
    .await;
    assert!(search.contains("links_search_trgm"), "{search}");
    let visits = plan(
        &mut conn,
        "SELECT l.id FROM visit_summaries s JOIN links l ON l.id = s.link_id ORDER BY s.total_visits DESC, s.link_id LIMIT 20",
    )
    .await;
    assert!(visits.contains("visit_summaries_total"), "{visits}");
}
