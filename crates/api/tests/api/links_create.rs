//! `POST /v1/links` with the optional `phrase`, `expiresAt` and `maxVisits`: exact
//! bodies for every outcome and every bad input, and phrase uniqueness under load.

use chrono::{SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::helpers::{PUBLIC_BASE, eventually, spawn};
use crate::links_support::{
    EXPIRES_INVALID, EXPIRES_PAST, MAX_VISITS, PHRASE_INVALID, PHRASE_RESERVED, create, expected, phrase_of, problem,
    validation,
};

#[tokio::test]
async fn a_chosen_phrase_with_expiry_and_limit_is_created_and_shown() {
    let (app, db) = spawn().await;
    let expires = (Utc::now() + TimeDelta::days(7)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let response = create(&app, json!({"phrase": "Zażółć-launch", "expiresAt": expires, "maxVisits": 1000})).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let body: Value = response.json().await.expect("json");
    let encoded = "Za%C5%BC%C3%B3%C5%82%C4%87-launch";
    assert_eq!(
        body,
        json!({"url": format!("{PUBLIC_BASE}/{encoded}"), "statsUrl": format!("{PUBLIC_BASE}/s/{encoded}")})
    );
    assert_eq!(location, format!("{PUBLIC_BASE}/{encoded}"));

    let link: Value = app.get(&format!("/v1/links/{encoded}")).send().await.expect("get").json().await.expect("json");
    assert_eq!(link["phrase"], "Zażółć-launch");
    assert_eq!(
        (&link["state"], &link["expiresAt"], &link["maxVisits"], &link["disabledReason"]),
        (&json!("active"), &json!(expires), &json!(1000), &Value::Null)
    );
    let followed = app.client.get(app.url(&format!("/{encoded}"))).send().await.expect("follow");
    assert_eq!(followed.status(), 301);
    assert_eq!(db.scalar("SELECT count(*) FROM links WHERE max_visits = 1000 AND expires_at IS NOT NULL").await, 1);
}

#[tokio::test]
async fn without_the_options_the_link_has_no_limits() {
    let (app, _db) = spawn().await;
    let phrase = phrase_of(create(&app, json!({"phrase": null, "expiresAt": null, "maxVisits": null})).await).await;
    let link: Value = app.get(&format!("/v1/links/{phrase}")).send().await.expect("get").json().await.expect("json");
    assert_eq!(
        (&link["state"], &link["expiresAt"], &link["maxVisits"], &link["disabledReason"]),
        (&json!("active"), &Value::Null, &Value::Null, &Value::Null)
    );
    assert!(phrase.split('-').count() >= 3, "a drawn phrase: {phrase}");
}

#[tokio::test]
async fn a_taken_phrase_is_409() {
    let (app, db) = spawn().await;
    phrase_of(create(&app, json!({"phrase": "spring-launch"})).await).await;
    let response = create(&app, json!({"phrase": "spring-launch", "targetUrl": "https://example.org/"})).await;
    assert_eq!(
        problem(response, 409).await,
        expected(
            409,
            "Link.PhraseTaken",
            "The phrase is already taken, or was deleted recently and is quarantined.",
            "POST /v1/links"
        )
    );
    assert_eq!(db.count("links").await, 1);
}

#[tokio::test]
async fn every_bad_optional_field_is_a_validation_problem() {
    let (app, db) = spawn().await;
    let past = (Utc::now() - TimeDelta::seconds(1)).to_rfc3339();
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (json!({"phrase": "ab"}), vec![("GenerateLink.PhraseInvalid", PHRASE_INVALID)]),
        (json!({"phrase": "a".repeat(129)}), vec![("GenerateLink.PhraseInvalid", PHRASE_INVALID)]),
        (json!({"phrase": " padded"}), vec![("GenerateLink.PhraseInvalid", PHRASE_INVALID)]),
        (json!({"phrase": "a/b/c"}), vec![("GenerateLink.PhraseInvalid", PHRASE_INVALID)]),
        (json!({"phrase": "why?"}), vec![("GenerateLink.PhraseInvalid", PHRASE_INVALID)]),
        (json!({"phrase": "line\nbreak"}), vec![("GenerateLink.PhraseInvalid", PHRASE_INVALID)]),
        (json!({"phrase": 12345}), vec![("GenerateLink.PhraseInvalid", PHRASE_INVALID)]),
        (json!({"phrase": "docs"}), vec![("GenerateLink.PhraseReserved", PHRASE_RESERVED)]),
        (json!({"phrase": "Health"}), vec![("GenerateLink.PhraseReserved", PHRASE_RESERVED)]),
        (json!({"phrase": "metrics"}), vec![("GenerateLink.PhraseReserved", PHRASE_RESERVED)]),
        (json!({"phrase": "openapi.json"}), vec![("GenerateLink.PhraseReserved", PHRASE_RESERVED)]),
        (json!({"phrase": "favicon.ico"}), vec![("GenerateLink.PhraseReserved", PHRASE_RESERVED)]),
        (json!({"expiresAt": "tomorrow"}), vec![("GenerateLink.ExpiresAtInvalid", EXPIRES_INVALID)]),
        (json!({"expiresAt": "2026-12-31"}), vec![("GenerateLink.ExpiresAtInvalid", EXPIRES_INVALID)]),
        (json!({"expiresAt": 1_800_000_000}), vec![("GenerateLink.ExpiresAtInvalid", EXPIRES_INVALID)]),
        (json!({"expiresAt": past}), vec![("GenerateLink.ExpiresAtNotInFuture", EXPIRES_PAST)]),
        (json!({"maxVisits": 0}), vec![("GenerateLink.MaxVisitsOutOfRange", MAX_VISITS)]),
        (json!({"maxVisits": -5}), vec![("GenerateLink.MaxVisitsOutOfRange", MAX_VISITS)]),
        (json!({"maxVisits": 2_147_483_648_i64}), vec![("GenerateLink.MaxVisitsOutOfRange", MAX_VISITS)]),
        (json!({"maxVisits": 1.5}), vec![("GenerateLink.MaxVisitsOutOfRange", MAX_VISITS)]),
        (json!({"maxVisits": "10"}), vec![("GenerateLink.MaxVisitsOutOfRange", MAX_VISITS)]),
        (
            json!({"targetUrl": null, "phrase": "s", "expiresAt": "soon", "maxVisits": 0}),
            vec![
                ("GenerateLink.TargetUrlIsRequired", "The target URL is required."),
                ("GenerateLink.TargetUrlMustBeAbsoluteUri", "The target URL must be an absolute URI."),
                ("GenerateLink.PhraseInvalid", PHRASE_INVALID),
                ("GenerateLink.ExpiresAtInvalid", EXPIRES_INVALID),
                ("GenerateLink.MaxVisitsOutOfRange", MAX_VISITS),
            ],
        ),
    ];
    for (extra, errors) in cases {
        let response = create(&app, extra.clone()).await;
        assert_eq!(problem(response, 400).await, validation("POST /v1/links", &errors), "{extra}");
    }
    assert_eq!(db.count("links").await, 0);
    assert_eq!(db.count("outbox").await, 0);
}

#[tokio::test]
async fn the_2_147_483_647_visit_limit_is_accepted() {
    let (app, _db) = spawn().await;
    let phrase = phrase_of(create(&app, json!({"maxVisits": 2_147_483_647_i64})).await).await;
    let link: Value = app.get(&format!("/v1/links/{phrase}")).send().await.expect("get").json().await.expect("json");
    assert_eq!(link["maxVisits"], 2_147_483_647_i64);
}

#[tokio::test]
async fn two_hundred_concurrent_creates_of_fifty_phrases_make_fifty_links() {
    let (app, db) = spawn().await;
    let requests: Vec<_> = (0..200)
        .map(|i| {
            let request = app.post("/v1/links").json(&json!({
                "targetUrl": format!("https://example.com/{i}"), "languageId": 0, "themeId": 0, "formatId": 0,
                "phrase": format!("phrase-{}", i % 50),
            }));
            tokio::spawn(async move { request.send().await.expect("request").status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.expect("task"));
    }
    let created = statuses.iter().filter(|s| **s == 201).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, conflicts), (50, 150), "{statuses:?}");
    assert_eq!(db.count("links").await, 50);
    assert_eq!(db.scalar("SELECT count(DISTINCT phrase) FROM links").await, 50);
    assert_eq!(db.scalar("SELECT count(*) FROM outbox WHERE event_type = 'link.created'").await, 50);
}

#[tokio::test]
async fn a_link_expires_by_the_clock_even_while_cached() {
    let (app, _db) = spawn().await;
    let expires = (Utc::now() + TimeDelta::seconds(2)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let phrase = phrase_of(create(&app, json!({"phrase": "short-lived", "expiresAt": expires})).await).await;
    // The first follow fills the caches with the link and its expiry.
    let first = app.client.get(app.url(&format!("/{phrase}"))).send().await.expect("follow");
    assert_eq!(first.status(), 301);
    for path in [format!("/{phrase}"), format!("/v1/redirects/{phrase}")] {
        let body = eventually(std::time::Duration::from_secs(10), "the link expires", || {
            let request = app.client.get(app.url(&path)).send();
            async move {
                let response = request.await.map_err(|e| e.to_string())?;
                if response.status() == 410 {
                    Ok(problem(response, 410).await)
                } else {
                    Err(response.status().to_string())
                }
            }
        })
        .await;
        assert_eq!(body, expected(410, "Link.Expired", "The link has expired.", &format!("GET {path}")));
    }
    let link: Value = app.get(&format!("/v1/links/{phrase}")).send().await.expect("get").json().await.expect("json");
    assert_eq!(link["state"], "expired");
}
