//! Safer targets: every refused class with its own code, `OFFNDAT_ALLOW_PRIVATE_TARGETS`,
//! the self check on normalised hosts and `OFFNDAT_SELF_HOSTS`, and the domain
//! blocklist: refused on create, reloaded when the file changes, applied to
//! existing links by `offndat-api blocklist apply`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, TestDatabase, assert_problem, eventually, spawn, spawn_with};
use crate::system::api_binary;

async fn create(app: &TestApp, target: &str) -> reqwest::Response {
    app.post("/v1/links")
        .json(&json!({"targetUrl": target, "languageId": 0, "themeId": 0, "formatId": 0}))
        .send()
        .await
        .expect("request")
}

/// Targets refused by default, with the code of each.
const REFUSED: &[(&str, &str)] = &[
    ("https://bank.example@evil.example/", "GenerateLink.TargetUrlHasUserInfo"),
    ("https://user:secret@example.com/", "GenerateLink.TargetUrlHasUserInfo"),
    ("http://127.0.0.1:8080/", "GenerateLink.TargetUrlIsLoopback"),
    ("http://2130706433/", "GenerateLink.TargetUrlIsLoopback"),
    ("http://[::1]/", "GenerateLink.TargetUrlIsLoopback"),
    ("http://localhost/", "GenerateLink.TargetUrlIsLoopback"),
    ("http://LOCALHOST./", "GenerateLink.TargetUrlIsLoopback"),
    ("http://app.localhost/", "GenerateLink.TargetUrlIsLoopback"),
    ("http://10.0.0.1/", "GenerateLink.TargetUrlIsPrivate"),
    ("http://172.16.5.4/", "GenerateLink.TargetUrlIsPrivate"),
    ("http://192.168.1.1/admin", "GenerateLink.TargetUrlIsPrivate"),
    ("http://[fd12:3456::1]/", "GenerateLink.TargetUrlIsPrivate"),
    ("http://[::ffff:192.168.0.1]/", "GenerateLink.TargetUrlIsPrivate"),
    ("http://169.254.169.254/latest/meta-data/", "GenerateLink.TargetUrlIsLinkLocal"),
    ("http://[fe80::1]/", "GenerateLink.TargetUrlIsLinkLocal"),
    ("http://100.64.0.1/", "GenerateLink.TargetUrlIsCarrierGradeNat"),
    ("http://0.0.0.0/", "GenerateLink.TargetUrlIsUnspecified"),
    ("http://[::]/", "GenerateLink.TargetUrlIsUnspecified"),
    ("http://224.0.0.1/", "GenerateLink.TargetUrlIsMulticast"),
    ("http://[ff02::1]/", "GenerateLink.TargetUrlIsMulticast"),
    ("http://printer.local/", "GenerateLink.TargetUrlIsLocalName"),
    ("http://metadata.google.internal/", "GenerateLink.TargetUrlIsLocalName"),
];

#[tokio::test]
async fn every_refused_target_class_has_its_own_code() {
    let (app, db) = spawn().await;
    for (target, code) in REFUSED {
        let body = assert_problem(create(&app, target).await, 400, &[code]).await;
        assert_eq!(body["title"], "One or more validation errors occurred.", "{target}");
        assert_eq!(body["instance"], "POST /v1/links", "{target}");
    }
    let response = create(&app, "https://bank.example@evil.example/").await;
    let body = assert_problem(response, 400, &["GenerateLink.TargetUrlHasUserInfo"]).await;
    assert_eq!(
        body,
        json!({
            "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "instance": "POST /v1/links",
            "errors": [{"code": "GenerateLink.TargetUrlHasUserInfo",
                        "message": "The target URL must not contain user info (`user@` before the host)."}],
            "traceId": body["traceId"],
            "requestId": body["requestId"],
        })
    );
    // The contract's codes still come first and alone where they apply.
    assert_problem(create(&app, "ftp://10.0.0.1/").await, 400, &["GenerateLink.TargetUrlSchemeNotAllowed"]).await;
    assert_problem(create(&app, "http://short.test/x").await, 400, &["GenerateLink.TargetUrlIsSelf"]).await;
    assert_eq!(db.count("links").await, 0);
    assert_eq!(create(&app, "https://example.com/").await.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn intranet_deployments_may_allow_private_targets() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--allow-private-targets=true"]).await;
    for (target, code) in REFUSED {
        let response = create(&app, target).await;
        match *code {
            "GenerateLink.TargetUrlHasUserInfo"
            | "GenerateLink.TargetUrlIsUnspecified"
            | "GenerateLink.TargetUrlIsMulticast" => {
                assert_problem(response, 400, &[code]).await;
            }
            _ => assert_eq!(response.status(), 201, "{target}"),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_self_check_compares_normalised_hosts() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--self-hosts=Bücher.example.,go.short.test"]).await;
    for target in [
        "http://SHORT.TEST./some-phrase",
        "https://short.test/",
        "https://xn--bcher-kva.example/x",
        "http://BÜCHER.example./",
        "https://go.short.test:8443/x",
    ] {
        assert_problem(create(&app, target).await, 400, &["GenerateLink.TargetUrlIsSelf"]).await;
    }
    assert_eq!(create(&app, "https://bucher.example/").await.status(), 201);
    assert_eq!(create(&app, "https://other.short.test/").await.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_self_host_fails_start_up() {
    let db = TestDatabase::new();
    let config = crate::helpers::config(
        &db,
        &crate::helpers::AmqpNamespace::new(),
        &crate::helpers::RedisPrefix::new(),
        &["--self-hosts=a/b"],
    );
    let error = offndat_api::Application::build(config).await.err().expect("refused");
    assert_eq!(error.to_string(), "OFFNDAT_SELF_HOSTS: `a/b` is not a host name");
}

#[tokio::test]
async fn the_blocklist_refuses_its_domains_and_is_reloaded_when_the_file_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("blocklist.txt");
    std::fs::write(&file, "# reported phishing\nevil.example\n").expect("write");
    let db = TestDatabase::new();
    let flag = format!("--blocklist-file={}", file.display());
    // Two replicas on one file and database: one audit row per change.
    let app = spawn_with(&db, &[&flag]).await;
    let other = spawn_with(&db, &[&flag]).await;

    let response = create(&app, "https://login.EVIL.example./x").await;
    let body = assert_problem(response, 400, &["GenerateLink.TargetUrlBlocked"]).await;
    assert_eq!(
        body["errors"],
        json!([{"code": "GenerateLink.TargetUrlBlocked", "message": "The target URL's domain is blocked on this service."}])
    );
    assert_eq!(create(&app, "https://notevil.example/").await.status(), 201);

    std::fs::write(&file, "next.example # newly reported\n").expect("rewrite");
    for replica in [&app, &other] {
        eventually(Duration::from_secs(10), "the new list is in force", || async {
            let statuses = (
                create(replica, "https://a.next.example/").await.status().as_u16(),
                create(replica, "https://evil.example/").await.status().as_u16(),
            );
            if statuses == (400, 201) { Ok(()) } else { Err(format!("{statuses:?}")) }
        })
        .await;
    }

    let audit: serde_json::Value = app.get("/v1/audit").send().await.expect("request").json().await.expect("json");
    let changes: Vec<(Option<i64>, serde_json::Value, serde_json::Value)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "blocklist.changed")
        .map(|e| {
            assert_eq!(e["actor"], "OFFNDAT_BLOCKLIST_FILE");
            assert_eq!(e["detail"]["file"], file.display().to_string());
            assert_eq!(e["detail"]["sha256"].as_str().map(str::len), Some(64));
            (e["detail"]["domains"].as_i64(), e["detail"]["added"].clone(), e["detail"]["removed"].clone())
        })
        .collect();
    assert_eq!(
        changes,
        [(Some(1), json!(["next.example"]), json!(["evil.example"])), (Some(1), json!(["evil.example"]), json!([]))]
    );
    app.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn blocklist_apply_finds_the_links_it_now_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("blocklist.txt");
    std::fs::write(&file, "").expect("write");
    let db = TestDatabase::new();
    let app = spawn_with(&db, &[]).await;
    let bad = app.create("https://www.evil.example/login", 0, 0, 0).await;
    let good = app.create("https://example.com/", 0, 0, 0).await;
    app.stop().await;
    std::fs::write(&file, "evil.example\n").expect("write");

    let output = api_binary()
        .command()
        .env("OFFNDAT_DATABASE_URL", &db.url)
        .env("OFFNDAT_BLOCKLIST_FILE", &file)
        .args(["blocklist", "apply", "--dry-run"])
        .output()
        .await;
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        stdout,
        format!("{bad}\twww.evil.example\tevil.example\n1 link(s) match the blocklist; nothing changed (--dry-run)\n")
    );
    assert!(!stdout.contains(&good));

    // For real: the link is disabled with the reason, audited as the CLI's, and a
    // second run finds nothing left to do.
    let apply = || {
        api_binary()
            .command()
            .env("OFFNDAT_DATABASE_URL", &db.url)
            .env("OFFNDAT_BLOCKLIST_FILE", &file)
            .args(["blocklist", "apply"])
            .output()
    };
    let output = apply().await;
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8(output.stdout).expect("utf-8"),
        format!("{bad}\twww.evil.example\tevil.example\n1 link(s) match the blocklist; 1 disabled now\n")
    );
    let again = apply().await;
    assert_eq!(String::from_utf8(again.stdout).expect("utf-8"), "0 link(s) match the blocklist; 0 disabled now\n");

    let app = spawn_with(&db, &[]).await;
    let link: serde_json::Value =
        app.get(&format!("/v1/links/{bad}")).send().await.expect("request").json().await.expect("json");
    assert_eq!(
        (link["state"].as_str(), link["disabledReason"].as_str()),
        (Some("disabled"), Some("blocklisted: evil.example"))
    );
    let followed = app.client.get(app.url(&format!("/v1/redirects/{bad}"))).send().await.expect("request");
    assert_eq!(followed.status().as_u16(), 410);
    let problem: serde_json::Value = followed.json().await.expect("json");
    assert_eq!(problem["errors"][0]["code"], "Link.Disabled");
    let good_link: serde_json::Value =
        app.get(&format!("/v1/links/{good}")).send().await.expect("request").json().await.expect("json");
    assert_eq!(good_link["state"], "active");
    let audit: serde_json::Value = app.get("/v1/audit").send().await.expect("request").json().await.expect("json");
    let disabled: Vec<_> =
        audit["entries"].as_array().expect("entries").iter().filter(|e| e["action"] == "link.disabled").collect();
    assert_eq!(disabled.len(), 1, "{audit}");
    assert_eq!(disabled[0]["actor"], "cli");
    assert_eq!(disabled[0]["linkPhrase"].as_str(), Some(bad.as_str()));
    assert_eq!(disabled[0]["detail"]["reason"], "blocklisted: evil.example");
    app.stop().await;
}
