//! `PATCH /v1/links/{phrase}`, `DELETE /v1/links/{phrase}` and
//! `DELETE /v1/links/{phrase}/visits`: exact bodies, the 410s on both redirect
//! routes, audit rows and `link.changed` events.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, spawn, spawn_with, write_vocabulary};
use crate::links_support::{EXPIRES_PAST, MAX_VISITS, create, delete, expected, patch, phrase_of, problem, validation};

/// Follows `phrase` on both redirect routes and returns their statuses.
async fn follow(app: &TestApp, phrase: &str) -> Vec<reqwest::Response> {
    let mut responses = Vec::new();
    for path in [format!("/{phrase}"), format!("/v1/redirects/{phrase}")] {
        responses.push(app.client.get(app.url(&path)).send().await.expect("follow"));
    }
    responses
}

/// Asserts both redirect routes answer the exact 410 for `code`.
async fn assert_gone(app: &TestApp, phrase: &str, code: &str, message: &str) {
    for (response, path) in
        follow(app, phrase).await.into_iter().zip([format!("/{phrase}"), format!("/v1/redirects/{phrase}")])
    {
        assert_eq!(problem(response, 410).await, expected(410, code, message, &format!("GET {path}")));
    }
}

async fn assert_followed(app: &TestApp, phrase: &str, target: &str) {
    for response in follow(app, phrase).await {
        assert_eq!(response.status(), 301);
        assert_eq!(response.headers()["location"], target);
    }
}

async fn audit(db: &TestDatabase) -> Vec<(String, String, Option<String>, Value)> {
    let mut conn = db.connect().await;
    sqlx::query_as("SELECT actor, action, link_phrase, detail FROM audit_log ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .expect("audit")
}

async fn changes(db: &TestDatabase) -> Vec<Value> {
    let mut conn = db.connect().await;
    let rows: Vec<(Value,)> =
        sqlx::query_as("SELECT payload FROM outbox WHERE event_type = 'link.changed' ORDER BY created_at, id")
            .fetch_all(&mut conn)
            .await
            .expect("outbox");
    rows.into_iter()
        .map(|(mut payload,)| {
            let map = payload.as_object_mut().expect("object");
            assert!(map.remove("linkId").is_some() && map.remove("changedAt").is_some(), "{map:?}");
            payload
        })
        .collect()
}

#[tokio::test]
async fn disabling_takes_a_link_down_at_once_and_enabling_restores_it() {
    let (app, db) = spawn().await;
    let phrase = phrase_of(create(&app, json!({"phrase": "phishy-link"})).await).await;
    // Warm the cache first: the edit must evict it.
    assert_followed(&app, &phrase, "https://example.com/").await;

    let response =
        patch(&app, "/v1/links/phishy-link", json!({"disabled": true, "disabledReason": "Reported as phishing"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
    let mut body: Value = response.json().await.expect("json");
    let map = body.as_object_mut().expect("object");
    assert!(map.remove("id").is_some() && map.remove("createdAt").is_some());
    assert_eq!(
        body,
        json!({
            "phrase": "phishy-link", "targetUrl": "https://example.com/", "languageId": 0, "themeId": 0,
            "visits": 0, "humanVisits": 0, "botVisits": 0, "recentVisits": [],
            "state": "disabled", "expiresAt": null, "maxVisits": null, "disabledReason": "Reported as phishing"
        })
    );
    assert_gone(&app, &phrase, "Link.Disabled", "The link has been disabled.").await;

    let enabled: Value =
        patch(&app, "/v1/links/phishy-link", json!({"disabled": false})).await.json().await.expect("json");
    assert_eq!((&enabled["state"], &enabled["disabledReason"]), (&json!("active"), &Value::Null));
    assert_followed(&app, &phrase, "https://example.com/").await;

    assert_eq!(
        audit(&db).await,
        vec![
            (
                "OFFNDAT_API_KEYS#1".to_owned(),
                "link.disabled".to_owned(),
                Some("phishy-link".to_owned()),
                json!({"disabled": true, "disabledReason": "Reported as phishing"})
            ),
            (
                "OFFNDAT_API_KEYS#1".to_owned(),
                "link.enabled".to_owned(),
                Some("phishy-link".to_owned()),
                json!({"disabled": false, "disabledReason": null})
            ),
        ]
    );
    assert_eq!(
        changes(&db).await,
        vec![
            json!({"version": 1, "phrase": "phishy-link", "change": "disabled"}),
            json!({"version": 1, "phrase": "phishy-link", "change": "enabled"}),
        ]
    );
}

#[tokio::test]
async fn editing_the_target_redirects_to_the_new_one_and_null_clears_limits() {
    let (app, db) = spawn().await;
    let phrase = phrase_of(
        create(&app, json!({"phrase": "moving-target", "expiresAt": "2999-01-01T00:00:00Z", "maxVisits": 5})).await,
    )
    .await;
    assert_followed(&app, &phrase, "https://example.com/").await;
    let body: Value = patch(
        &app,
        "/v1/links/moving-target",
        json!({"targetUrl": "https://Example.org/new path", "expiresAt": null, "maxVisits": null}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        (&body["targetUrl"], &body["expiresAt"], &body["maxVisits"], &body["state"]),
        (&json!("https://example.org/new%20path"), &Value::Null, &Value::Null, &json!("active"))
    );
    assert_followed(&app, &phrase, "https://example.org/new%20path").await;
    let (_, action, _, detail) = audit(&db).await.remove(0);
    assert_eq!(
        (action.as_str(), detail),
        ("link.edited", json!({"targetUrl": "https://example.org/new%20path", "expiresAt": null, "maxVisits": null}))
    );
}

#[tokio::test]
async fn a_visit_limit_below_the_counted_visits_closes_the_link() {
    let (app, db) = spawn().await;
    let phrase = phrase_of(create(&app, json!({"phrase": "counted-link"})).await).await;
    let mut conn = db.connect().await;
    // As the worker keeps them: 6 visits, 1 of them a bot.
    sqlx::query("INSERT INTO visit_summaries (link_id, total_visits, bot_visits) SELECT id, 6, 1 FROM links")
        .execute(&mut conn)
        .await
        .expect("seed");
    assert_followed(&app, &phrase, "https://example.com/").await;
    let body: Value = patch(&app, "/v1/links/counted-link", json!({"maxVisits": 5})).await.json().await.expect("json");
    assert_eq!((&body["state"], &body["maxVisits"]), (&json!("visit-limit-reached"), &json!(5)));
    assert_gone(&app, &phrase, "Link.VisitLimitReached", "The link has reached its visit limit.").await;
    let body: Value = patch(&app, "/v1/links/counted-link", json!({"maxVisits": 6})).await.json().await.expect("json");
    assert_eq!(body["state"], "active", "5 human visits are under a limit of 6");
    assert_followed(&app, &phrase, "https://example.com/").await;
}

#[tokio::test]
async fn every_bad_patch_is_a_problem_and_changes_nothing() {
    let (app, db) = spawn().await;
    phrase_of(create(&app, json!({"phrase": "stable-link"})).await).await;
    let instance = "PATCH /v1/links/stable-link";
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            json!({"targetUrl": null}),
            vec![
                ("GenerateLink.TargetUrlIsRequired", "The target URL is required."),
                ("GenerateLink.TargetUrlMustBeAbsoluteUri", "The target URL must be an absolute URI."),
            ],
        ),
        (
            json!({"targetUrl": "ftp://example.com/"}),
            vec![("GenerateLink.TargetUrlSchemeNotAllowed", "The target URL must use the http or https scheme.")],
        ),
        (
            json!({"targetUrl": "http://short.test/loop"}),
            vec![("GenerateLink.TargetUrlIsSelf", "The target URL must not point at this service.")],
        ),
        (
            json!({"targetUrl": 42}),
            vec![
                ("GenerateLink.TargetUrlIsRequired", "The target URL is required."),
                ("GenerateLink.TargetUrlMustBeAbsoluteUri", "The target URL must be an absolute URI."),
            ],
        ),
        (json!({"expiresAt": "2000-01-01T00:00:00Z"}), vec![("GenerateLink.ExpiresAtNotInFuture", EXPIRES_PAST)]),
        (json!({"maxVisits": 0}), vec![("GenerateLink.MaxVisitsOutOfRange", MAX_VISITS)]),
        (json!({"disabled": "yes"}), vec![("EditLink.DisabledInvalid", "`disabled` must be true or false.")]),
        (
            json!({"disabledReason": "a\u{0}b"}),
            vec![(
                "EditLink.DisabledReasonInvalid",
                "The reason for disabling must be a string of at most 500 characters.",
            )],
        ),
        (
            json!({"disabledReason": "x".repeat(501)}),
            vec![(
                "EditLink.DisabledReasonInvalid",
                "The reason for disabling must be a string of at most 500 characters.",
            )],
        ),
    ];
    for (body, errors) in cases {
        assert_eq!(
            problem(patch(&app, "/v1/links/stable-link", body.clone()).await, 400).await,
            validation(instance, &errors),
            "{body}"
        );
    }
    let not_json = app
        .client
        .patch(app.url("/v1/links/stable-link"))
        .header("X-Offnd-Api-Key", crate::helpers::API_KEY)
        .body("{\"disabled\": ")
        .send()
        .await
        .expect("request");
    let body = problem(not_json, 400).await;
    assert_eq!(
        body["errors"],
        json!([{"code": "General.InvalidJson", "message": "The request body is not valid JSON."}])
    );
    assert_eq!(
        problem(patch(&app, "/v1/links/no-such-link", json!({"disabled": true})).await, 404).await,
        expected(
            404,
            "Link.NotFound",
            "The link with the specified phrase was not found.",
            "PATCH /v1/links/no-such-link"
        )
    );
    // An empty patch changes nothing and answers the link as it is.
    let unchanged = patch(&app, "/v1/links/stable-link", json!({})).await;
    assert_eq!(unchanged.status(), 200);
    let unchanged: Value = unchanged.json().await.expect("json");
    assert_eq!((&unchanged["phrase"], &unchanged["state"]), (&json!("stable-link"), &json!("active")));
    assert_eq!(
        problem(patch(&app, "/v1/links/no-such-link", json!({})).await, 404).await["errors"][0]["code"],
        "Link.NotFound"
    );
    assert_eq!(db.count("audit_log").await, 0);
    assert_eq!(db.scalar("SELECT count(*) FROM outbox WHERE event_type = 'link.changed'").await, 0);
}

#[tokio::test]
async fn a_deleted_link_is_gone_everywhere_and_its_phrase_quarantined() {
    let (app, db) = spawn().await;
    let phrase = phrase_of(create(&app, json!({"phrase": "doomed-link"})).await).await;
    assert_followed(&app, &phrase, "https://example.com/").await;
    let response = delete(&app, "/v1/links/doomed-link").await;
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.expect("body"), "");

    assert_gone(&app, &phrase, "Link.Deleted", "The link has been deleted.").await;
    let deleted = |instance: &str| expected(410, "Link.Deleted", "The link has been deleted.", instance);
    let read = app.get("/v1/links/doomed-link").send().await.expect("read");
    assert_eq!(problem(read, 410).await, deleted("GET /v1/links/doomed-link"));
    let stats = app.get("/v1/links/doomed-link/stats").send().await.expect("stats");
    assert_eq!(problem(stats, 410).await, deleted("GET /v1/links/doomed-link/stats"));
    assert_eq!(
        problem(delete(&app, "/v1/links/doomed-link").await, 410).await,
        deleted("DELETE /v1/links/doomed-link")
    );
    assert_eq!(
        problem(delete(&app, "/v1/links/doomed-link/visits").await, 410).await,
        deleted("DELETE /v1/links/doomed-link/visits")
    );
    assert_eq!(
        problem(patch(&app, "/v1/links/doomed-link", json!({"disabled": false})).await, 410).await,
        deleted("PATCH /v1/links/doomed-link")
    );
    let again = create(&app, json!({"phrase": "doomed-link"})).await;
    assert_eq!(problem(again, 409).await["errors"][0]["code"], "Link.PhraseTaken");

    assert_eq!(db.count("links").await, 0);
    let (actor, action, link, detail) = audit(&db).await.remove(0);
    assert_eq!(
        (actor.as_str(), action.as_str(), link.as_deref(), detail),
        ("OFFNDAT_API_KEYS#1", "link.deleted", Some("doomed-link"), json!({}))
    );
    assert_eq!(changes(&db).await, vec![json!({"version": 1, "phrase": "doomed-link", "change": "deleted"})]);
    assert_eq!(
        db.scalar("SELECT count(*) FROM phrase_tombstones WHERE quarantined_until BETWEEN now() + interval '29 days' AND now() + interval '31 days'").await,
        1
    );
}

#[tokio::test]
async fn a_quarantined_phrase_is_never_drawn_again() {
    // One word per list, theme proper-names: exactly two phrases can be drawn.
    let dir = tempfile::tempdir().expect("tempdir");
    write_vocabulary(dir.path(), &["alpha"]);
    let db = TestDatabase::new();
    let app = spawn_with(&db, &[&format!("--vocabulary-dir={}", dir.path().display())]).await;
    let body = json!({"themeId": 1});
    let first = phrase_of(create(&app, body.clone()).await).await;
    let second = phrase_of(create(&app, body.clone()).await).await;
    assert_ne!(first, second);
    assert_eq!(delete(&app, &format!("/v1/links/{first}")).await.status(), 204);
    let response = create(&app, body).await;
    assert_eq!(problem(response, 503).await["errors"][0]["code"], "Link.CouldNotGenerate");
}

#[tokio::test]
async fn without_quarantine_a_deleted_phrase_can_be_chosen_again() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--phrase-quarantine-days=0"]).await;
    phrase_of(create(&app, json!({"phrase": "reusable"})).await).await;
    assert_eq!(delete(&app, "/v1/links/reusable").await.status(), 204);
    let phrase =
        phrase_of(create(&app, json!({"phrase": "reusable", "targetUrl": "https://example.org/"})).await).await;
    assert_followed(&app, &phrase, "https://example.org/").await;
}

#[tokio::test]
async fn erasing_visits_removes_what_identifies_visitors_and_keeps_totals() {
    let (app, db) = spawn().await;
    phrase_of(create(&app, json!({"phrase": "private-link"})).await).await;
    let mut conn = db.connect().await;
    for statement in [
        "INSERT INTO visits (link_id, visited_at, ip_address, user_agent) SELECT id, now(), '203.0.113.0', 'agent' FROM links",
        "INSERT INTO visits (link_id, visited_at, ip_address, user_agent) SELECT id, now(), '198.51.100.0', 'agent' FROM links",
        // The newest visits where the worker keeps them, and a copy in the
        // summary's old column, as releases before `link_recent_visits` left it.
        "INSERT INTO visit_summaries (link_id, total_visits, bot_visits, recent_visits)
         SELECT id, 7, 0, '[{\"visitedAt\": \"2026-11-21T09:00:00Z\", \"ipAddress\": \"198.51.100.0\", \"userAgent\": \"agent\", \"referrer\": null, \"bot\": false}]'::jsonb
         FROM links",
        "INSERT INTO link_recent_visits (link_id, visits)
         SELECT id, '[{\"visitedAt\": \"2026-11-21T10:00:00Z\", \"ipAddress\": \"203.0.113.0\", \"userAgent\": \"agent\", \"referrer\": null, \"bot\": false},
                      {\"visitedAt\": \"2026-11-21T09:00:00Z\", \"ipAddress\": \"198.51.100.0\", \"userAgent\": \"agent\", \"referrer\": null, \"bot\": false}]'::jsonb
         FROM links",
        "INSERT INTO link_visits_hourly (link_id, bucket, dimension, value, human) SELECT id, '2026-11-21T10:00:00Z', 0, 'news.example', 7 FROM links",
        "INSERT INTO link_visits_daily (link_id, bucket, dimension, value, human) SELECT id, '2026-11-21T00:00:00Z', 0, 'news.example', 7 FROM links",
        "INSERT INTO link_rollups_hourly (link_id, bucket, human, human_by) SELECT id, '2026-11-22T10:00:00Z', 1, '{\"0\": 1}' FROM links",
        "INSERT INTO link_rollups_daily (link_id, bucket, human, human_by) SELECT id, '2026-11-22T00:00:00Z', 1, '{\"0\": 1}' FROM links",
    ] {
        sqlx::query(statement).execute(&mut conn).await.expect("seed");
    }
    let response = delete(&app, "/v1/links/private-link/visits").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({"rawVisits": 2, "recentVisits": 2, "rollupRows": 4}));

    let link: Value = app.get("/v1/links/private-link").send().await.expect("read").json().await.expect("json");
    assert_eq!((&link["visits"], &link["recentVisits"]), (&json!(7), &json!([])));
    assert_eq!(db.count("visits").await, 0);
    assert_eq!(db.count("link_recent_visits").await, 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM visit_summaries WHERE recent_visits IS NOT NULL").await,
        0,
        "the old column's copy is erased too"
    );
    for table in ["link_visits_hourly", "link_visits_daily", "link_rollups_hourly", "link_rollups_daily"] {
        assert_eq!(db.count(table).await, 0, "{table}");
    }
    let (_, action, _, detail) = audit(&db).await.remove(0);
    assert_eq!(
        (action.as_str(), detail),
        ("link.visits_erased", json!({"rawVisits": 2, "recentVisits": 2, "rollupRows": 4}))
    );
    assert_eq!(changes(&db).await, vec![json!({"version": 1, "phrase": "private-link", "change": "visits-erased"})]);
    let unknown = delete(&app, "/v1/links/no-such-link/visits").await;
    assert_eq!(
        problem(unknown, 404).await,
        expected(
            404,
            "Link.NotFound",
            "The link with the specified phrase was not found.",
            "DELETE /v1/links/no-such-link/visits"
        )
    );
}
