//! Visits as a user of the API sees them, with the real worker counting: totals
//! with the bot split, newest visits, HEAD and prefetch left uncounted, orphan
//! visits, the stats routes and every bad input to them, and the raw visit log in
//! both modes.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::Value;

use crate::helpers::{
    TestApp, TestDatabase, TestWorker, assert_problem, eventually, spawn, spawn_counting, spawn_with,
};

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const DEADLINE: Duration = Duration::from_secs(30);

async fn follow(app: &TestApp, phrase: &str, user_agent: &str, referrer: Option<&str>) {
    let mut request = app.client.get(app.url(&format!("/{phrase}"))).header("User-Agent", user_agent);
    if let Some(referrer) = referrer {
        request = request.header("Referer", referrer);
    }
    assert_eq!(request.send().await.expect("request").status(), 301);
}

async fn read(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).send().await.expect("request");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

/// Waits until the link's `visits` reaches `expected`, then checks it stays there.
async fn await_visits(app: &TestApp, phrase: &str, expected: i64) -> Value {
    let path = format!("/v1/links/{phrase}");
    eventually(DEADLINE, &format!("{expected} visits counted"), || async {
        let link = read(app, &path).await;
        if link["visits"] == expected { Ok(()) } else { Err(link.to_string()) }
    })
    .await;
    let link = read(app, &path).await;
    assert_eq!(link["visits"], expected, "counted once: {link}");
    link
}

/// The value of a counter with `labels` (exact label text) in the API's /metrics.
async fn counter(app: &TestApp, name_and_labels: &str) -> f64 {
    app.metrics().await.value(name_and_labels).unwrap_or_else(|| panic!("{name_and_labels} is not exported"))
}

#[tokio::test]
async fn visits_are_counted_exactly_with_bots_apart_and_the_newest_first() {
    let (app, _worker, _db) = spawn_counting(&[]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    for i in 0..14 {
        let agent = if i % 7 == 3 { GOOGLEBOT } else { CHROME };
        follow(&app, &phrase, agent, Some(&format!("https://site{}.example/page", i % 2))).await;
    }
    let link = await_visits(&app, &phrase, 14).await;
    assert_eq!((link["humanVisits"].as_i64(), link["botVisits"].as_i64()), (Some(12), Some(2)));
    let recent = link["recentVisits"].as_array().expect("recent");
    assert_eq!(recent.len(), 10, "the ten newest");
    let times: Vec<&str> = recent.iter().map(|v| v["visitedAt"].as_str().expect("time")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    // Visits 4..=13 are the newest ten; visit 10 was the second bot.
    assert_eq!(recent.iter().filter(|v| v["potentialBot"] == true).count(), 1);
    assert_eq!(recent[0]["referrer"], "https://site1.example/page");
    assert_eq!(recent[0]["userAgent"], CHROME);
}

#[tokio::test]
async fn head_requests_and_prefetches_are_redirected_but_not_counted() {
    let (app, _worker, _db) = spawn_counting(&[]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    let head_before = counter(&app, "offndat_visits_uncounted_total{reason=\"head\"}").await;
    let prefetch_before = counter(&app, "offndat_visits_uncounted_total{reason=\"prefetch\"}").await;
    let url = app.url(&format!("/{phrase}"));

    let head = app.client.head(&url).send().await.expect("head");
    assert_eq!((head.status().as_u16(), head.headers()["location"].to_str().ok()), (301, Some("https://example.com/")));
    for (name, value) in [("Sec-Purpose", "prefetch"), ("Sec-Purpose", "prefetch;prerender"), ("Purpose", "prefetch")] {
        let response = app.client.get(&url).header(name, value).send().await.expect("prefetch");
        assert_eq!(response.status(), 301, "{name}: {value}");
    }
    follow(&app, &phrase, CHROME, None).await;

    let link = await_visits(&app, &phrase, 1).await;
    assert_eq!(link["recentVisits"].as_array().map(Vec::len), Some(1));
    // Other tests in this process follow links too: at least ours were counted.
    assert!(counter(&app, "offndat_visits_uncounted_total{reason=\"head\"}").await >= head_before + 1.0);
    assert!(counter(&app, "offndat_visits_uncounted_total{reason=\"prefetch\"}").await >= prefetch_before + 3.0);
}

#[tokio::test]
async fn orphan_visits_are_counted_per_hour_and_links_created_per_bucket() {
    let (app, _worker, _db) = spawn_counting(&[]).await;
    let orphans_before = counter(&app, "offndat_orphan_visits_total").await;
    for path in ["/no-such-phrase", "/another-missing-one", "/v1/redirects/nor-this-one", "/bad%20phrase!"] {
        let status = app.client.get(app.url(path)).send().await.expect("request").status().as_u16();
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    // A HEAD for an unknown phrase is no visit, orphan or not.
    assert_eq!(app.client.head(app.url("/no-such-phrase")).send().await.expect("head").status(), 404);
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    app.create("https://example.org/", 0, 0, 0).await;
    follow(&app, &phrase, CHROME, None).await;

    let stats = eventually(DEADLINE, "orphans, links and the visit counted", || async {
        let stats = read(&app, "/v1/stats?granularity=hour").await;
        let done = stats["totalOrphanVisits"] == 4 && stats["totalLinksCreated"] == 2 && stats["totals"]["visits"] == 1;
        if done { Ok(stats) } else { Err(stats.to_string()) }
    })
    .await;
    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).expect("hour");
    let buckets = stats["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 48, "48 hours by default");
    let last = buckets.len() - 1;
    assert_eq!(buckets[last]["start"], hour.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    assert_eq!(stats["orphanVisits"][last], 4);
    assert_eq!(stats["linksCreated"][last], 2);
    assert_eq!(stats["orphanVisits"].as_array().map(Vec::len), Some(48));
    assert!(counter(&app, "offndat_orphan_visits_total").await >= orphans_before + 4.0);
}

/// Seeds the rollups of a link as the worker writes them: one row per hour and
/// per day, the dimension values' humans and bots in JSON objects keyed by
/// dimension id and value. Every visit is in each dimension once, so the bucket's
/// totals are added from dimension 0's rows.
async fn seed_rollups(db: &TestDatabase, phrase: &str, rows: &[(&str, i16, &str, i64, i64)]) {
    let mut conn = db.connect().await;
    for (hour, dimension, value, human, bot) in rows {
        let (total_human, total_bot) = if *dimension == 0 { (*human, *bot) } else { (0, 0) };
        for (table, trunc) in [("link_rollups_hourly", "hour"), ("link_rollups_daily", "day")] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} AS r (link_id, bucket, human, bot, human_by, bot_by)
                 SELECT id, date_trunc('{trunc}', '{hour}'::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                        {total_human}, {total_bot},
                        CASE WHEN {human} > 0 THEN jsonb_build_object('{dimension}{value}', {human}) ELSE '{{}}' END,
                        CASE WHEN {bot} > 0 THEN jsonb_build_object('{dimension}{value}', {bot}) ELSE '{{}}' END
                 FROM links WHERE phrase = '{phrase}'
                 ON CONFLICT (link_id, bucket) DO UPDATE
                 SET human = r.human + EXCLUDED.human, bot = r.bot + EXCLUDED.bot,
                     human_by = offndat_add_counts(r.human_by, EXCLUDED.human_by),
                     bot_by = offndat_add_counts(r.bot_by, EXCLUDED.bot_by)"
            )))
            .execute(&mut conn)
            .await
            .expect("seed rollups");
        }
    }
}

/// Seeds rollups in the layout of releases before `link_rollups_*` (one row per
/// dimension value), which the stats still read.
async fn seed_legacy_rollups(db: &TestDatabase, phrase: &str, rows: &[(&str, i16, &str, i64, i64)]) {
    let mut conn = db.connect().await;
    for (hour, dimension, value, human, bot) in rows {
        for (table, trunc) in [("link_visits_hourly", "hour"), ("link_visits_daily", "day")] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} AS r (link_id, bucket, dimension, value, human, bot)
                 SELECT id, date_trunc('{trunc}', '{hour}'::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', {dimension}, '{value}', {human}, {bot}
                 FROM links WHERE phrase = '{phrase}'
                 ON CONFLICT (link_id, bucket, dimension, value) DO UPDATE SET human = r.human + EXCLUDED.human, bot = r.bot + EXCLUDED.bot"
            )))
            .execute(&mut conn)
            .await
            .expect("seed legacy rollups");
        }
    }
}

#[tokio::test]
async fn link_stats_are_zero_filled_ranked_and_sum_to_the_totals() {
    let (app, db) = spawn().await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    // Every visit appears once per dimension (0 referrer, 1 browser, 2 OS, 3 device).
    let mut rows = Vec::new();
    for (hour, human, bot) in
        [("2026-11-20T08:00:00Z", 5, 1), ("2026-11-20T09:00:00Z", 2, 0), ("2026-11-22T23:00:00Z", 3, 0)]
    {
        rows.push((hour, 0, if human > 2 { "news.example" } else { "" }, human, bot));
        rows.push((hour, 1, "Chrome", human, 0));
        rows.push((hour, 1, "Googlebot", 0, bot));
        rows.push((hour, 2, "Windows", human, 0));
        rows.push((hour, 2, "Other", 0, bot));
        rows.push((hour, 3, "desktop", human, 0));
        rows.push((hour, 3, "bot", 0, bot));
    }
    // The last hour in the layout of earlier releases: both layouts add up.
    let (legacy, current): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.0.starts_with("2026-11-22"));
    seed_rollups(&db, &phrase, &current).await;
    seed_legacy_rollups(&db, &phrase, &legacy).await;

    let days = read(&app, &format!("/v1/links/{phrase}/stats?from=2026-11-19T00:00:00Z&to=2026-11-23T00:00:00Z")).await;
    assert_eq!(days["phrase"], phrase.as_str());
    assert_eq!((days["granularity"].as_str(), days["excludeBots"].as_bool()), (Some("day"), Some(false)));
    let counts = |b: &Value| (b["visits"].as_i64(), b["humanVisits"].as_i64(), b["botVisits"].as_i64());
    let series: Vec<_> = days["buckets"].as_array().expect("buckets").iter().map(counts).collect();
    assert_eq!(
        series,
        [
            (Some(0), Some(0), Some(0)),
            (Some(8), Some(7), Some(1)),
            (Some(0), Some(0), Some(0)),
            (Some(3), Some(3), Some(0))
        ]
    );
    assert_eq!(counts(&days["totals"]), (Some(11), Some(10), Some(1)));
    let top = |dimension: &str| -> Vec<(String, i64)> {
        days["top"][dimension]
            .as_array()
            .expect("top")
            .iter()
            .map(|r| (r["value"].as_str().expect("value").to_owned(), r["visits"].as_i64().expect("visits")))
            .collect()
    };
    assert_eq!(top("referrers"), [("news.example".to_owned(), 9), (String::new(), 2)]);
    assert_eq!(top("browsers"), [("Chrome".to_owned(), 10), ("Googlebot".to_owned(), 1)]);
    assert_eq!(top("operatingSystems"), [("Windows".to_owned(), 10), ("Other".to_owned(), 1)]);
    assert_eq!(top("devices"), [("desktop".to_owned(), 10), ("bot".to_owned(), 1)]);

    // Hours, widened to whole buckets, bots left out.
    let hours = read(
        &app,
        &format!("/v1/links/{phrase}/stats?granularity=hour&from=2026-11-20T07:30:00Z&to=2026-11-20T09:10:00Z&excludeBots=true"),
    )
    .await;
    assert_eq!(
        (hours["from"].as_str(), hours["to"].as_str()),
        (Some("2026-11-20T07:00:00.000Z"), Some("2026-11-20T10:00:00.000Z"))
    );
    let series: Vec<_> = hours["buckets"].as_array().expect("buckets").iter().map(counts).collect();
    assert_eq!(series, [(Some(0), Some(0), Some(0)), (Some(5), Some(5), Some(0)), (Some(2), Some(2), Some(0))]);
    assert_eq!(counts(&hours["totals"]), (Some(7), Some(7), Some(0)));
    let browsers = hours["top"]["browsers"].as_array().expect("browsers");
    assert_eq!(browsers.len(), 1, "a value with bot visits only drops out: {browsers:?}");
}

#[tokio::test]
async fn live_visits_reach_the_stats_of_the_link_and_the_service() {
    let (app, _worker, _db) = spawn_counting(&[]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    follow(&app, &phrase, CHROME, Some("https://News.Example/story")).await;
    follow(&app, &phrase, GOOGLEBOT, None).await;
    follow(&app, &phrase, CHROME, None).await;
    await_visits(&app, &phrase, 3).await;

    let stats = read(&app, &format!("/v1/links/{phrase}/stats?granularity=hour")).await;
    assert_eq!(stats["totals"]["visits"], 3);
    assert_eq!(stats["totals"]["botVisits"], 1);
    assert_eq!(stats["buckets"].as_array().map(Vec::len), Some(48));
    let referrers = &stats["top"]["referrers"];
    assert_eq!(referrers[0]["value"], "", "two visits without a referrer");
    assert_eq!(referrers[1]["value"], "news.example");
    assert_eq!(stats["top"]["devices"][0]["value"], "desktop");
    let days = read(&app, &format!("/v1/links/{phrase}/stats")).await;
    assert_eq!(days["totals"]["visits"], 3, "the daily rollup agrees");
    assert_eq!(days["buckets"].as_array().map(Vec::len), Some(30), "the 30 days up to today");
    // link.created and link.visited travel on separate queues: the new link may
    // be rolled up after its visits.
    let service = eventually(Duration::from_secs(30), "the created link is rolled up", || async {
        let service = read(&app, "/v1/stats").await;
        if service["totalLinksCreated"] == 1 { Ok(service) } else { Err(service.to_string()) }
    })
    .await;
    assert_eq!(service["totals"]["visits"], 3);
}

#[tokio::test]
async fn bad_stats_requests_get_400_problems_with_stable_codes() {
    let (app, _db) = spawn().await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    let cases: [(&str, &[&str]); 9] = [
        ("from=yesterday", &["Stats.FromInvalid"]),
        ("to=2026-13-01T00:00:00Z", &["Stats.ToInvalid"]),
        ("granularity=week", &["Stats.GranularityInvalid"]),
        ("excludeBots=maybe", &["Stats.ExcludeBotsInvalid"]),
        ("from=2026-11-22T00:00:00Z&to=2026-11-21T00:00:00Z", &["Stats.RangeInvalid"]),
        ("from=2026-11-21T00:00:00Z&to=2026-11-21T00:00:00Z", &["Stats.RangeInvalid"]),
        ("granularity=hour&from=2025-01-01T00:00:00Z&to=2026-11-21T00:00:00Z", &["Stats.RangeTooLong"]),
        ("granularity=day&from=2000-01-01T00:00:00Z&to=2026-11-21T00:00:00Z", &["Stats.RangeTooLong"]),
        (
            "from=x&to=y&granularity=z&excludeBots=1",
            &["Stats.FromInvalid", "Stats.ToInvalid", "Stats.GranularityInvalid", "Stats.ExcludeBotsInvalid"],
        ),
    ];
    for (query, codes) in cases {
        for path in [format!("/v1/links/{phrase}/stats?{query}"), format!("/v1/stats?{query}")] {
            let response = app.get(&path).send().await.expect("request");
            let body = assert_problem(response, 400, codes).await;
            assert_eq!(body["instance"], format!("GET {}", path.split('?').next().expect("path")), "{path}");
        }
    }
    // A day range over 400 days is fine.
    let long = read(&app, &format!("/v1/links/{phrase}/stats?from=2025-01-01T00:00:00Z&to=2026-11-21T00:00:00Z")).await;
    assert_eq!(long["buckets"].as_array().map(Vec::len), Some(689));

    let unknown = app.get("/v1/links/no-such-phrase/stats").send().await.expect("request");
    assert_problem(unknown, 404, &["Link.NotFound"]).await;
    let keyless = app.client.get(app.url(&format!("/v1/links/{phrase}/stats"))).send().await.expect("request");
    assert_problem(keyless, 401, &["General.Unauthorized"]).await;
    let keyless = app.client.get(app.url("/v1/stats")).send().await.expect("request");
    assert_problem(keyless, 401, &["General.Unauthorized"]).await;
}

#[tokio::test]
async fn the_recent_log_keeps_no_raw_rows_and_the_newest_on_the_summary() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &[]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    // Raw rows from before this release (the old per-visit pipeline wrote them).
    let mut conn = db.connect().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO visits (link_id, visited_at, user_agent)
         SELECT id, now() - make_interval(secs => n), 'old ' || n FROM links, generate_series(1, 50) n WHERE phrase = '{phrase}'"
    )))
    .execute(&mut conn)
    .await
    .expect("seed");
    let _worker = TestWorker::spawn(&db, &app.namespace.name, &[]).await;
    for _ in 0..3 {
        follow(&app, &phrase, CHROME, None).await;
    }
    let link = await_visits(&app, &phrase, 3).await;
    eventually(DEADLINE, "raw rows pruned", || async {
        match db.count("visits").await {
            0 => Ok(()),
            n => Err(n.to_string()),
        }
    })
    .await;
    assert_eq!(link["recentVisits"].as_array().map(Vec::len), Some(3), "the newest live on the summary");
    assert_eq!(read(&app, &format!("/v1/links/{phrase}")).await["visits"], 3, "pruning changes no total");
}

#[tokio::test]
async fn the_full_log_keeps_every_visit_and_prunes_past_the_retention() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--visit-log=full"]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    let mut conn = db.connect().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO visits (link_id, visited_at, user_agent)
         SELECT id, now() - interval '3 days', 'too old' FROM links WHERE phrase = '{phrase}';
         INSERT INTO visits (link_id, visited_at, user_agent)
         SELECT id, now() - interval '12 hours', 'kept' FROM links WHERE phrase = '{phrase}';"
    )))
    .execute(&mut conn)
    .await
    .expect("seed");
    let _worker = TestWorker::spawn(&db, &app.namespace.name, &["--visit-log=full", "--visit-retention-days=2"]).await;
    for i in 0..12 {
        follow(&app, &phrase, if i == 0 { GOOGLEBOT } else { CHROME }, Some("https://a.example/\"quoted\",comma"))
            .await;
    }
    await_visits(&app, &phrase, 12).await;
    eventually(DEADLINE, "the old raw row pruned, every new one kept", || async {
        let agents: Vec<String> = sqlx::query_scalar("SELECT user_agent FROM visits ORDER BY visited_at")
            .fetch_all(&mut db.connect().await)
            .await
            .map_err(|e| e.to_string())?;
        if agents.len() == 13 && agents[0] == "kept" { Ok(()) } else { Err(format!("{agents:?}")) }
    })
    .await;
    let stored: Vec<(Option<String>, Option<String>, bool)> = sqlx::query_as(
        "SELECT referrer, ip_address, potential_bot FROM visits WHERE user_agent <> 'kept' ORDER BY visited_at",
    )
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    assert_eq!(stored[0].0.as_deref(), Some("https://a.example/\"quoted\",comma"), "COPY keeps the text as sent");
    assert_eq!(stored[0].1.as_deref(), Some("127.0.0.0"));
    assert!(stored[0].2, "the bot flag is stored");
    assert_eq!(stored.iter().filter(|r| r.2).count(), 1);
}

#[tokio::test]
async fn a_link_deleted_before_the_flush_costs_no_other_link_its_visits() {
    let db = TestDatabase::new();
    // Only the shutdown flush writes: the deletion lands between redirect and flush.
    let app = spawn_with(&db, &["--visit-flush-interval=60s", "--visit-log=full"]).await;
    let kept = app.create("https://example.com/", 0, 0, 0).await;
    let doomed = app.create("https://example.org/", 0, 0, 0).await;
    for phrase in [&kept, &doomed, &kept] {
        follow(&app, phrase, CHROME, None).await;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DELETE FROM links WHERE phrase = '{doomed}'")))
        .execute(&mut db.connect().await)
        .await
        .expect("delete");
    let namespace = app.stop_keeping_namespace().await;
    assert_eq!(db.count("visits").await, 2, "the full log keeps the existing link's visits only");

    let worker = TestWorker::spawn(&db, &namespace.name, &["--visit-log=full"]).await;
    let app = spawn_with(&db, &[&format!("--amqp-namespace={}", namespace.name)]).await;
    await_visits(&app, &kept, 2).await;
    worker.stop().await;
    assert_eq!(db.scalar("SELECT count(*) FROM visit_summaries").await, 1);
    let hourly = db.scalar("SELECT COALESCE(sum(human), 0)::bigint FROM link_rollups_hourly").await;
    assert_eq!(hourly, 2);
    let service =
        db.scalar("SELECT COALESCE(sum(human), 0)::bigint FROM service_visits_hourly WHERE dimension = 0").await;
    assert_eq!(service, 2, "the deleted link's visit is skipped everywhere");
}

#[tokio::test]
async fn a_flood_of_unknown_phrases_does_not_grow_the_event() {
    let (app, db) = spawn().await;
    for i in 0..200 {
        let response = app.client.get(app.url(&format!("/missing-{i}"))).send().await.expect("request");
        assert_eq!(response.status(), 404);
    }
    let events = eventually(DEADLINE, "the orphans flushed", || async {
        let mut conn = db.connect().await;
        let payloads: Vec<Value> =
            sqlx::query_scalar("SELECT body::jsonb FROM outbox WHERE event_type = 'link.visited'")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        let orphans: u64 = payloads
            .iter()
            .flat_map(|p| p["orphans"].as_array().cloned().unwrap_or_default())
            .map(|o| o["visits"].as_u64().unwrap_or(0))
            .sum();
        if orphans == 200 { Ok(payloads) } else { Err(format!("{orphans} of 200")) }
    })
    .await;
    for event in &events {
        assert!(event["orphans"].as_array().expect("orphans").len() <= 2, "one count per hour: {event}");
        let at: DateTime<Utc> = serde_json::from_value(event["orphans"][0]["hour"].clone()).expect("hour");
        assert_eq!(at, at.duration_trunc(TimeDelta::hours(1)).expect("hour"));
    }
}

#[tokio::test]
async fn stats_answers_are_reused_for_the_cache_ttl_and_fresh_without_it() {
    let db = TestDatabase::new();
    let cached = spawn_with(&db, &["--stats-cache-ttl=60s"]).await;
    let fresh = spawn_with(&db, &["--stats-cache-ttl=0s"]).await;
    let phrase = cached.create("https://example.com/", 0, 0, 0).await;
    let path = format!("/v1/links/{phrase}/stats?granularity=hour&from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z");
    seed_rollups(&db, &phrase, &[("2026-11-20T08:00:00Z", 0, "", 2, 1)]).await;
    assert_eq!(read(&cached, &path).await["totals"]["visits"], 3);
    seed_rollups(&db, &phrase, &[("2026-11-20T08:00:00Z", 0, "", 3, 0)]).await;
    assert_eq!(read(&cached, &path).await["totals"]["visits"], 3, "the cached answer, within its TTL");
    assert_eq!(read(&fresh, &path).await["totals"]["visits"], 6, "no cache: the rollups as they are");
    // The cache keeps rows with bots; the filter applies to the cached copy.
    let excluded = read(&cached, &format!("{path}&excludeBots=true")).await;
    assert_eq!((excluded["totals"]["visits"].as_i64(), excluded["totals"]["botVisits"].as_i64()), (Some(2), Some(0)));
}
