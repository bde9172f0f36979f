//! `maxVisits`: the worker marks a link whose human visits reached its limit,
//! and every process then answers `410 Link.VisitLimitReached`. Bots do not count.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{eventually, spawn_counting};
use crate::links_support::{create, expected, phrase_of, problem};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

#[tokio::test]
async fn a_link_stops_after_its_human_visits_reach_the_limit() {
    let (app, worker, db) = spawn_counting(&[]).await;
    let phrase = phrase_of(create(&app, json!({"phrase": "three-visits", "maxVisits": 3})).await).await;
    let follow = |agent: &'static str| app.client.get(app.url("/three-visits")).header("User-Agent", agent).send();

    for _ in 0..2 {
        assert_eq!(follow(BOT).await.expect("follow").status(), 301);
    }
    let read = || async {
        let link: Value = app
            .get(&format!("/v1/links/{phrase}"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<Value, String>(link)
    };
    eventually(Duration::from_secs(10), "the bot visits are counted", || async {
        let link = read().await?;
        if link["botVisits"] == 2 { Ok(()) } else { Err(link.to_string()) }
    })
    .await;
    assert_eq!(read().await.expect("read")["state"], "active", "bots do not count towards the limit");

    for _ in 0..3 {
        assert_eq!(follow(BROWSER).await.expect("follow").status(), 301);
    }
    let body = eventually(Duration::from_secs(10), "the limit closes the link", || async {
        let response = follow(BROWSER).await.map_err(|e| e.to_string())?;
        if response.status() == 410 { Ok(problem(response, 410).await) } else { Err(response.status().to_string()) }
    })
    .await;
    let message = "The link has reached its visit limit.";
    assert_eq!(body, expected(410, "Link.VisitLimitReached", message, "GET /three-visits"));
    let redirect = app.client.get(app.url("/v1/redirects/three-visits")).send().await.expect("follow");
    assert_eq!(
        problem(redirect, 410).await,
        expected(410, "Link.VisitLimitReached", message, "GET /v1/redirects/three-visits")
    );
    let link = read().await.expect("read");
    assert_eq!((&link["state"], &link["maxVisits"]), (&json!("visit-limit-reached"), &json!(3)));
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox WHERE event_type = 'link.changed' AND payload ->> 'change' = 'visit-limit-reached'").await,
        1
    );
    worker.stop().await;
}

#[tokio::test]
async fn visits_of_a_deleted_link_are_skipped_and_the_rest_still_count() {
    let (app, worker, db) = spawn_counting(&[]).await;
    let doomed = phrase_of(create(&app, json!({"phrase": "doomed-visited"})).await).await;
    let kept = phrase_of(create(&app, json!({"phrase": "kept-visited"})).await).await;
    for phrase in [&doomed, &kept] {
        let response = app.client.get(app.url(&format!("/{phrase}"))).header("User-Agent", BROWSER).send().await;
        assert_eq!(response.expect("follow").status(), 301);
    }
    // Deleted while its visit may still be in memory or in flight.
    assert_eq!(crate::links_support::delete(&app, "/v1/links/doomed-visited").await.status(), 204);
    eventually(Duration::from_secs(10), "the kept link's visit is counted", || async {
        let link: Value = app
            .get(&format!("/v1/links/{kept}"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if link["visits"] == 1 { Ok(()) } else { Err(link.to_string()) }
    })
    .await;
    assert_eq!(db.count("links").await, 1);
    assert_eq!(db.scalar("SELECT count(*) FROM visit_summaries").await, 1);
    worker.stop().await;
}
