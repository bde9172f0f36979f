//! Memory under attack: a flood of redirects with huge, all different headers
//! while every flush is blocked, against the real binary, whose memory is read
//! from /proc.

use std::time::Duration;

use futures_util::StreamExt;
use offndat_test_support::Metrics;
use serde_json::{Value, json};

use crate::helpers::{API_KEY, AmqpNamespace, RedisPrefix, TestDatabase, TestWorker, eventually};
use crate::system::api_command;

/// Where the binary's short URLs point; requests go to the address it reports.
const BASE: &str = "http://memory.test";

/// The resident memory of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A header of `len` bytes, different for every `i`.
fn huge(i: usize, len: usize) -> String {
    let head = format!("Mozilla/5.0 (X11; Linux x86_64; flood {i}) Gecko/20100101 Firefox/133.0 ");
    format!("{head}{}", "x".repeat(len - head.len()))
}

/// 16 KiB user agents and 16 KiB referrers, each one different, 6,000 redirects
/// over four links with the full visit log on, while the outbox is locked so the
/// flush hangs and every visit stays in memory.
///
/// The bound: a visit keeps its user agent and referrer cut to their stored
/// length (512 and 2,048 bytes of ASCII) plus about 160 bytes, 2.7 KB; 6,000 make
/// 16 MB. The keys (at most 128 per link and window) hold 0.4 MB more. Allowing
/// as much again for the allocator's slack and connection buffers gives 40 MiB.
/// Uncut, each visit would keep 32 KiB: the 64 MiB raw-log budget would be full
/// after 2,000 visits, with 8 MiB of keys on top (and with the earlier cut to
/// four bytes a character, 10.4 KB a visit, 62 MB): past the bound either way.
#[tokio::test]
async fn a_flood_of_huge_headers_while_flushes_hang_stays_bounded_and_every_visit_is_counted() {
    const VISITS: usize = 6_000;
    const WARM_UP: usize = 400;
    const BOUND: u64 = 40 * 1024 * 1024;
    let (db, namespace, redis) = (TestDatabase::new(), AmqpNamespace::new(), RedisPrefix::new());
    let api = api_command(&db, &namespace, BASE)
        .env("OFFNDAT_API_KEYS", API_KEY)
        .env("OFFNDAT_REDIS_KEY_PREFIX", &redis.prefix)
        .env("OFFNDAT_VISIT_LOG", "full")
        .env("OFFNDAT_VISIT_FLUSH_INTERVAL", "50ms")
        .env("OFFNDAT_MAX_HEADER_BYTES", "65536")
        .env("OFFNDAT_RATE_LIMIT_ENABLED", "false")
        .env("OFFNDAT_LOG", "warn,offndat_api::app=info")
        .spawn();
    let listening = api.listening().await;
    let (address, ops) = (listening.address("address"), listening.address("ops_address"));
    let pid = api.pid();
    let worker = TestWorker::spawn(&db, &namespace.name, &[]).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let base = format!("http://{address}");
    let mut phrases = Vec::new();
    for n in 0..4 {
        let created: Value = client
            .post(format!("{base}/v1/links"))
            .header("X-Offnd-Api-Key", API_KEY)
            .json(
                &json!({"targetUrl": format!("https://example.com/{n}"), "languageId": 0, "themeId": 0, "formatId": 0}),
            )
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let url = created["url"].as_str().expect("url");
        let encoded = url.strip_prefix(&format!("{BASE}/")).unwrap_or_else(|| panic!("{url} under {BASE}"));
        phrases.push(percent_encoding::percent_decode_str(encoded).decode_utf8().expect("utf-8").into_owned());
    }
    let flood = |from: usize, count: usize| {
        let (client, base, phrases) = (&client, &base, &phrases);
        futures_util::stream::iter(from..from + count)
            .map(move |i| async move {
                let response = client
                    .get(format!("{base}/{}", phrases[i % phrases.len()]))
                    .header("User-Agent", huge(i, 16 * 1024))
                    .header("Referer", format!("https://r{i}.example/{}", huge(i, 16 * 1024)))
                    .send()
                    .await
                    .expect("redirect");
                assert_eq!(response.status(), 301);
            })
            .buffer_unordered(8)
            .collect::<Vec<()>>()
    };
    // Warm up with the same kind of requests, written, so the baseline holds the
    // buffers and arenas a steady flood needs.
    flood(0, WARM_UP).await;
    eventually(Duration::from_secs(30), "the warm-up written", || async {
        let n = db.count("visits").await;
        if n == WARM_UP as i64 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    let baseline = rss(pid);

    // Every flush now hangs on the outbox: nothing leaves memory.
    let mut locker = db.connect().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE outbox IN EXCLUSIVE MODE").execute(&mut locker).await.expect("lock");
    let mut peak = baseline;
    for chunk in 0..(VISITS / 500) {
        flood(WARM_UP + chunk * 500, 500).await;
        peak = peak.max(rss(pid));
    }
    assert_eq!(db.count("visits").await, WARM_UP as i64, "nothing written while the outbox is locked");
    let growth = peak.saturating_sub(baseline);
    eprintln!("RSS: baseline {} MiB, peak {} MiB, growth {} KiB", baseline >> 20, peak >> 20, growth >> 10);
    assert!(growth < BOUND, "RSS grew by {} MiB (from {} MiB)", growth >> 20, baseline >> 20);

    // PostgreSQL answers again: every visit is written, counted and kept.
    sqlx::raw_sql("COMMIT").execute(&mut locker).await.expect("unlock");
    let total = (WARM_UP + VISITS) as i64;
    eventually(Duration::from_secs(60), "every raw visit written", || async {
        let n = db.count("visits").await;
        if n == total { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    eventually(Duration::from_secs(60), "every visit counted by the worker", || async {
        let n = db.scalar("SELECT coalesce(sum(total_visits), 0)::bigint FROM visit_summaries").await;
        if n == total { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    for phrase in &phrases {
        let per_link = db
            .scalar(&format!(
                "SELECT total_visits::bigint FROM visit_summaries s JOIN links l ON l.id = s.link_id WHERE l.phrase = '{phrase}'"
            ))
            .await;
        assert_eq!(per_link, total / 4, "{phrase}");
    }
    let stored =
        db.scalar("SELECT (max(octet_length(user_agent)) + max(octet_length(referrer)))::bigint FROM visits").await;
    assert_eq!(stored, 512 + 2048, "stored cut, as the memory was");
    // The binary's own counters (no other test shares its process).
    let metrics = Metrics::get(&client, &format!("http://{ops}/metrics")).await;
    for lost in ["offndat_visits_dropped_total", "offndat_visit_log_dropped_total"] {
        assert!(metrics.names().contains(lost), "{lost} is registered from the start");
        assert_eq!(metrics.sum(lost), 0.0, "{lost}");
    }

    worker.stop().await;
    api.stop().await;
}
