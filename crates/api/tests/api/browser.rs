//! The pages in a real browser, as a person uses them: headless Chromium (Debian's
//! `chromium` package) driven over the DevTools protocol against the real
//! `offndat-api` and `offndat-worker` binaries. Opens the home page, fills and
//! submits the form, lands on the result, follows the short URL to its target,
//! opens the stats page and waits for the visit to show in the chart. Every page
//! is checked with axe-core (no serious or critical finding, in light and dark),
//! and screenshots at desktop and phone width, light and dark, are written to
//! `target/screenshots/`, or to `docs/screenshots/` for the README with
//! `OFFNDAT_UPDATE_SCREENSHOTS=1`.
//!
//! Needs Chromium and the axe-core package: `scripts/browser-setup.sh` installs
//! both (`scripts/test.sh` and `.ci/run` run it). `OFFNDAT_SKIP_BROWSER=1` skips
//! this test, loudly; nothing else does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::{MediaFeature, SetDeviceMetricsOverrideParams};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::eventually;
use crate::system::System;

/// A desktop Chrome's user agent, so the visit counts as a person's (headless
/// Chromium's own names itself and is counted as a bot).
const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (360, 740);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("OFFNDAT_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: run scripts/browser-setup.sh (or set OFFNDAT_SKIP_BROWSER=1 to skip this test)",
        path.display()
    );
    path
}

fn axe_source() -> String {
    let path = repository().join("tools/browser-test/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!("{}: {error}; run scripts/browser-setup.sh (it runs `npm ci` in tools/browser-test)", path.display())
    })
}

/// The site the test link leads to.
async fn target_site() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new().route(
        "/landing",
        axum::routing::get(|| async {
            axum::response::Html("<!doctype html><html lang=en><title>Target</title><h1>You arrived</h1></html>")
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/landing")
}

/// The value of `expression` in the page, awaited if it is a promise; an error
/// while the page is between documents (its context is gone) is returned.
async fn try_evaluate(page: &Page, expression: &str) -> Result<Value, String> {
    let params = EvaluateParams::builder()
        .expression(expression)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(|e| e.to_string())?;
    let result = page.evaluate_expression(params).await.map_err(|e| format!("{expression}: {e}"))?;
    Ok(result.value().cloned().unwrap_or(Value::Null))
}

async fn evaluate(page: &Page, expression: &str) -> Value {
    try_evaluate(page, expression).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Runs axe-core in the page and fails on any serious or critical violation.
async fn accessible(page: &Page, axe: &str, what: &str) {
    if evaluate(page, "typeof window.axe").await != "object" {
        evaluate(page, axe).await;
    }
    let found = evaluate(
        page,
        "axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations \
           .filter(v => v.impact === 'serious' || v.impact === 'critical') \
           .map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', ')))",
    )
    .await;
    let found = found.as_array().unwrap_or_else(|| panic!("{what}: axe answered {found}"));
    assert!(found.is_empty(), "{what}: accessibility violations: {found:#?}");
}

async fn scheme(page: &Page, dark: bool) {
    let value = if dark { "dark" } else { "light" };
    page.emulate_media_features(vec![MediaFeature::new("prefers-color-scheme", value)]).await.expect("color scheme");
}

async fn size(page: &Page, (width, height): (u32, u32)) {
    let mobile = width < 600;
    page.execute(SetDeviceMetricsOverrideParams::new(width, height, 1.0, mobile)).await.expect("viewport");
}

/// Where screenshots go: `docs/screenshots/` (the README's) with
/// `OFFNDAT_UPDATE_SCREENSHOTS=1`, else `target/screenshots/`, so an ordinary
/// run leaves the checkout as it found it.
fn screenshots() -> std::path::PathBuf {
    let dir = if std::env::var("OFFNDAT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        repository().join("docs/screenshots")
    } else {
        repository().join("target/screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

/// Checks the page in all four variants and saves a screenshot of each as
/// `<screenshots>/<name>-<desktop|phone>-<light|dark>.png`.
async fn every_variant(page: &Page, axe: &str, name: &str) {
    let dir = screenshots();
    for (width_name, dimensions) in [("desktop", DESKTOP), ("phone", PHONE)] {
        for dark in [false, true] {
            // Set every time: a full-page screenshot clears the device metrics.
            size(page, dimensions).await;
            scheme(page, dark).await;
            let variant = format!("{name}-{width_name}-{}", if dark { "dark" } else { "light" });
            accessible(page, axe, &variant).await;
            // Nothing wider than the screen: usable at 360 px without sideways scrolling.
            let overflow = evaluate(page, "document.documentElement.scrollWidth - window.innerWidth").await;
            assert!(overflow.as_i64().is_some_and(|o| o <= 0), "{variant}: the page is {overflow} px too wide");
            page.save_screenshot(
                ScreenshotParams::builder().full_page(true).build(),
                dir.join(format!("{variant}.png")),
            )
            .await
            .expect("screenshot");
        }
    }
    size(page, DESKTOP).await;
    scheme(page, false).await;
}

#[tokio::test]
async fn a_person_makes_a_link_follows_it_and_sees_the_visit_counted() {
    if std::env::var("OFFNDAT_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("\n!!!!!!!! OFFNDAT_SKIP_BROWSER=1: the real-browser test of the pages was SKIPPED !!!!!!!!\n");
        return;
    }
    let (chromium, axe) = (chromium(), axe_source());
    let target = target_site().await;
    let mut system = System::new().await;
    // The API binds a port of the kernel's choosing, known only once it listens,
    // after its public base URL is set: Chromium resolves the base's host to it.
    // A `.localhost` name, so that the pages are a secure context and Chromium
    // sends the Fetch Metadata the form's forgery check reads, as over HTTPS.
    let base = "http://offndat.localhost";
    system.env.push(("OFFNDAT_PUBLIC_BASE_URL", base.to_owned()));
    // The target site is this test's own, on loopback, which targets may not be by default.
    system.env.push(("OFFNDAT_ALLOW_PRIVATE_TARGETS", "true".to_owned()));
    system.env.push(("OFFNDAT_STATS_CACHE_TTL", "0s".to_owned()));
    let _api = system.start_api().await;
    let _worker = system.start_worker().await;
    let listening = system.url("");
    let rule = format!("MAP {} {}", base.trim_start_matches("http://"), listening.trim_start_matches("http://"));

    let profile = tempfile::tempdir().expect("profile dir");
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .no_sandbox()
        .user_data_dir(profile.path())
        .viewport(Viewport { width: DESKTOP.0, height: DESKTOP.1, ..Viewport::default() })
        // chromiumoxide adds the leading `--` itself (it made `----disable-gpu`
        // of `--disable-gpu`, which Chromium ignored).
        .arg(("host-resolver-rules", rule.as_str()))
        .arg("disable-gpu")
        .arg("disable-dev-shm-usage")
        .launch_timeout(Duration::from_secs(60))
        .build()
        .expect("browser config");
    let (mut browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });

    // The home page, its form filled in and sent.
    let page = browser.new_page("about:blank").await.expect("a tab");
    page.set_user_agent(USER_AGENT).await.expect("user agent");
    page.goto(format!("{base}/")).await.expect("home page");
    assert_eq!(page.get_title().await.expect("title").as_deref(), Some("Make a short link · offndat"));
    every_variant(&page, &axe, "home").await;
    page.find_element("#targetUrl")
        .await
        .expect("url field")
        .click()
        .await
        .expect("focus")
        .type_str(&target)
        .await
        .expect("type");
    evaluate(&page, "document.getElementById('formatId').value = '0'").await;
    page.find_element("button[type=submit]").await.expect("submit").click().await.expect("submit");

    // The result: the short URL, a working copy button (the script ran under the
    // page's policy) and the QR code.
    let short_url = eventually(Duration::from_secs(20), "the result page", || async {
        match try_evaluate(&page, "document.getElementById('short-url')?.value ?? ''").await? {
            Value::String(url) if !url.is_empty() => Ok(url),
            other => Err(other.to_string()),
        }
    })
    .await;
    assert!(short_url.starts_with(&format!("{base}/")), "{short_url}");
    // The deferred script may still be on its way when the field is there.
    eventually(Duration::from_secs(10), "copy.js shows the Copy button", || async {
        match try_evaluate(&page, "document.querySelector('button.copy').hidden").await? {
            Value::Bool(false) => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    eventually(Duration::from_secs(10), "the QR image loads", || async {
        match try_evaluate(&page, "document.querySelector('img.qr').naturalWidth").await? {
            Value::Number(width) if width.as_u64().is_some_and(|w| w > 0) => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    accessible(&page, &axe, "created-desktop-light").await;
    size(&page, PHONE).await;
    page.save_screenshot(
        ScreenshotParams::builder().full_page(true).build(),
        screenshots().join("created-phone-light.png"),
    )
    .await
    .expect("screenshot");
    size(&page, DESKTOP).await;
    let stats_url =
        evaluate(&page, "[...document.querySelectorAll('a')].find(a => a.textContent.includes('See who')).href")
            .await
            .as_str()
            .expect("stats link")
            .to_owned();

    // Following the short URL lands on the target.
    page.goto(short_url.as_str()).await.expect("follow the short URL");
    eventually(Duration::from_secs(20), "the target page", || async {
        match try_evaluate(&page, "document.title").await? {
            Value::String(title) if title == "Target" => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;

    // The stats page counts the visit in the 48-hour chart (counts arrive within
    // a flush and a worker batch).
    page.goto(stats_url.as_str()).await.expect("stats page");
    // The totals and the chart are two reads; the worker may commit between them,
    // so wait until both show the visit.
    eventually(Duration::from_secs(30), "the chart and the totals count the visit", || async {
        page.reload().await.map_err(|e| e.to_string())?;
        let counted = try_evaluate(
            &page,
            "[document.getElementById('chart-hours')?.dataset.visits, document.getElementById('total-visits')?.textContent]",
        )
        .await?;
        if counted == serde_json::json!(["1", "1"]) { Ok(()) } else { Err(counted.to_string()) }
    })
    .await;
    let agents = evaluate(&page, "[...document.querySelectorAll('td.ua')].map(td => td.textContent)").await;
    assert_eq!(evaluate(&page, "document.getElementById('human-visits').textContent").await, "1", "{agents}");
    assert_eq!(evaluate(&page, "document.querySelectorAll('#chart-hours rect.human').length").await, 1);
    every_variant(&page, &axe, "stats").await;

    // An unknown short URL is a page for a person.
    page.goto(format!("{base}/no-such-phrase-here")).await.expect("unknown phrase");
    assert_eq!(evaluate(&page, "document.querySelector('h1').textContent").await, "No such link");
    accessible(&page, &axe, "not-found").await;

    browser.close().await.expect("close");
    browser.wait().await.expect("Chromium exits");
    events.abort();
}
