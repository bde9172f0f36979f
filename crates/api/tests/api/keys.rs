//! Stored API keys: roles, creator isolation, admin-only routes, the audit log,
//! revocation seen by another process within a second, failing closed while the
//! key set cannot be refreshed, and the `keys` subcommands of the real binary.

use std::time::Duration;

use offndat_test_support::TcpProxy;
use serde_json::{Value, json};

use crate::helpers::{API_KEY, TestApp, TestDatabase, assert_problem, eventually, spawn, spawn_with};
use crate::system::api_binary;

/// Creates a stored key through the API as the configured admin; its secret.
async fn create_key(app: &TestApp, name: &str, role: &str) -> String {
    let response = app.post("/v1/keys").json(&json!({"name": name, "role": role})).send().await.expect("request");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
    let body: Value = response.json().await.expect("json");
    let secret = body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("offndat_") && secret.len() == 72, "{secret}");
    let created_at = body["createdAt"].as_str().expect("createdAt");
    assert_eq!(
        body,
        json!({"name": name, "role": role, "createdAt": created_at, "lastUsedAt": null, "revokedAt": null,
               "secret": secret})
    );
    // Every process, this one included, learns of new keys by its next poll (the
    // one-second promise is tested below; here it only needs to happen).
    eventually(Duration::from_secs(5), "the new key is accepted", || async {
        match status(get_as(app, &secret, "/v1/languages")).await {
            200 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    secret
}

fn get_as(app: &TestApp, key: &str, path: &str) -> reqwest::RequestBuilder {
    app.client.get(app.url(path)).header("X-Offnd-Api-Key", key)
}

/// Creates a link with `key`; its phrase.
async fn create_link_as(app: &TestApp, key: &str) -> String {
    let response = app
        .client
        .post(app.url("/v1/links"))
        .header("X-Offnd-Api-Key", key)
        .json(&json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let url = response.json::<Value>().await.expect("json")["url"].as_str().expect("url").to_owned();
    let encoded = url.rsplit('/').next().expect("phrase");
    percent_encoding::percent_decode_str(encoded).decode_utf8().expect("utf-8").into_owned()
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.expect("request").status().as_u16()
}

#[tokio::test]
async fn stored_keys_authenticate_and_only_admins_reach_admin_routes() {
    let (app, _db) = spawn().await;
    let creator = create_key(&app, "ci", "creator").await;
    let admin = create_key(&app, "ops", "admin").await;

    assert_eq!(status(get_as(&app, &creator, "/v1/languages")).await, 200);
    assert_eq!(status(get_as(&app, &admin, "/v1/languages")).await, 200);
    assert_eq!(status(get_as(&app, "offndat_not-a-key", "/v1/languages")).await, 401);

    for (method, path) in [
        ("GET", "/v1/keys"),
        ("POST", "/v1/keys"),
        ("DELETE", "/v1/keys/ops"),
        ("GET", "/v1/audit"),
        ("GET", "/v1/stats"),
    ] {
        let request = app
            .client
            .request(method.parse().expect("method"), app.url(path))
            .header("X-Offnd-Api-Key", &creator)
            .json(&json!({"name": "sneaky", "role": "admin"}));
        let body = assert_problem(request.send().await.expect("request"), 403, &["General.Forbidden"]).await;
        assert_eq!(
            body,
            json!({
                "type": "https://tools.ietf.org/html/rfc9110#section-15.5.4",
                "title": "Forbidden",
                "status": 403,
                "detail": "The API key's role does not allow this action; it needs an admin key.",
                "instance": format!("{method} {path}"),
                "errors": [{"code": "General.Forbidden",
                            "message": "The API key's role does not allow this action; it needs an admin key."}],
                "traceId": body["traceId"],
                "requestId": body["requestId"],
            })
        );
    }

    // A stored admin manages keys too.
    let listed: Value = get_as(&app, &admin, "/v1/keys").send().await.expect("request").json().await.expect("json");
    let summary: Vec<(String, String, Value)> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (k["name"].as_str().expect("name").into(), k["role"].as_str().expect("role").into(), k["revokedAt"].clone())
        })
        .collect();
    assert_eq!(
        summary,
        [("ci".to_owned(), "creator".to_owned(), Value::Null), ("ops".to_owned(), "admin".to_owned(), Value::Null)]
    );
    assert!(listed["keys"].as_array().expect("keys").iter().all(|k| k.get("secret").is_none()));
    app.stop().await;
}

#[tokio::test]
async fn creators_see_only_the_links_they_created() {
    let (app, db) = spawn().await;
    let alice = create_key(&app, "alice", "creator").await;
    let bob = create_key(&app, "bob", "creator").await;
    let theirs = create_link_as(&app, &alice).await;
    let admins = create_link_as(&app, API_KEY).await;

    let owner = db
        .scalar(&format!(
            "SELECT k.id FROM links l JOIN api_keys k ON k.id = l.owner_key_id WHERE l.phrase = '{theirs}' AND k.name = 'alice'"
        ))
        .await;
    assert!(owner > 0);
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM links WHERE phrase = '{admins}' AND owner_key_id IS NULL")).await,
        1
    );

    for path in [format!("/v1/links/{theirs}"), format!("/v1/links/{theirs}/stats")] {
        assert_eq!(status(get_as(&app, &alice, &path)).await, 200, "{path}");
        assert_eq!(status(get_as(&app, API_KEY, &path)).await, 200, "{path}");
        let response = get_as(&app, &bob, &path).send().await.expect("request");
        let body = assert_problem(response, 404, &["Link.NotFound"]).await;
        assert_eq!(
            body,
            json!({
                "type": "https://tools.ietf.org/html/rfc9110#section-15.5.5",
                "title": "Not Found",
                "status": 404,
                "detail": "The link with the specified phrase was not found.",
                "instance": format!("GET {path}"),
                "errors": [{"code": "Link.NotFound", "message": "The link with the specified phrase was not found."}],
                "traceId": body["traceId"],
                "requestId": body["requestId"],
            })
        );
    }
    // Links made by OFFNDAT_API_KEYS keys belong to no stored key: admins only.
    assert_eq!(status(get_as(&app, &alice, &format!("/v1/links/{admins}"))).await, 404);
    assert_eq!(status(get_as(&app, API_KEY, &format!("/v1/links/{admins}"))).await, 200);

    // The management routes: bob cannot list, edit, erase or delete alice's link,
    // each answer being the same 404 as for no link at all, and nothing changes.
    let listed = |key: &str| {
        let request = get_as(&app, key, "/v1/links?pageSize=100");
        async move {
            let body: Value = request.send().await.expect("request").json().await.expect("json");
            let mut phrases: Vec<String> = body["links"]
                .as_array()
                .expect("links")
                .iter()
                .map(|l| l["phrase"].as_str().expect("phrase").to_owned())
                .collect();
            phrases.sort();
            (phrases, body["pagination"]["totalItems"].clone())
        }
    };
    assert_eq!(listed(&alice).await, (vec![theirs.clone()], json!(1)));
    assert_eq!(listed(&bob).await, (vec![], json!(0)));
    let mut both = vec![theirs.clone(), admins.clone()];
    both.sort();
    assert_eq!(listed(API_KEY).await, (both, json!(2)));
    let link = format!("/v1/links/{theirs}");
    let as_bob = |request: reqwest::RequestBuilder| request.header("X-Offnd-Api-Key", &bob);
    let patched = as_bob(app.client.patch(app.url(&link))).json(&json!({"disabled": true})).send().await;
    assert_problem(patched.expect("request"), 404, &["Link.NotFound"]).await;
    let erased = as_bob(app.client.delete(app.url(&format!("{link}/visits")))).send().await;
    assert_problem(erased.expect("request"), 404, &["Link.NotFound"]).await;
    let deleted = as_bob(app.client.delete(app.url(&link))).send().await;
    assert_problem(deleted.expect("request"), 404, &["Link.NotFound"]).await;
    let read: Value = get_as(&app, &alice, &link).send().await.expect("request").json().await.expect("json");
    assert_eq!(read["state"], "active", "bob changed nothing");
    assert_eq!(db.scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'link.%'").await, 0);

    // An Idempotency-Key is the caller's own: bob reusing alice's key creates his
    // own link rather than replaying hers.
    let create_with_key = |key: &str| {
        app.client
            .post(app.url("/v1/links"))
            .header("X-Offnd-Api-Key", key)
            .header("Idempotency-Key", "same-key-1")
            .json(&json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0}))
            .send()
    };
    let first: Value = create_with_key(&alice).await.expect("request").json().await.expect("json");
    let other: Value = create_with_key(&bob).await.expect("request").json().await.expect("json");
    assert_ne!(first["url"], other["url"]);
    app.stop().await;
}

#[tokio::test]
async fn bad_key_requests_revocation_and_the_audit_log() {
    let (app, _db) = spawn().await;
    let response = app.post("/v1/keys").json(&json!({})).send().await.expect("request");
    let body = assert_problem(response, 400, &["Key.NameInvalid", "Key.RoleInvalid"]).await;
    assert_eq!(body["title"], "One or more validation errors occurred.");
    assert_eq!(
        body["errors"],
        json!([
            {"code": "Key.NameInvalid",
             "message": "The key name must be 1 to 64 characters of letters, digits, `.`, `_` and `-`, not `cli` and not starting with `offndat`."},
            {"code": "Key.RoleInvalid", "message": "The role must be `admin` or `creator`."}
        ])
    );
    for bad in [json!({"name": "cli", "role": "admin"}), json!({"name": "has space", "role": "creator"})] {
        let response = app.post("/v1/keys").json(&bad).send().await.expect("request");
        assert_problem(response, 400, &["Key.NameInvalid"]).await;
    }
    let response = app.post("/v1/keys").json(&json!({"name": "x", "role": "root"})).send().await.expect("request");
    assert_problem(response, 400, &["Key.RoleInvalid"]).await;

    let secret = create_key(&app, "ci", "creator").await;
    let response = app.post("/v1/keys").json(&json!({"name": "ci", "role": "admin"})).send().await.expect("request");
    let body = assert_problem(response, 409, &["Key.NameTaken"]).await;
    assert_eq!(body["type"], "https://tools.ietf.org/html/rfc9110#section-15.5.10");
    assert_eq!(body["title"], "Conflict");
    let response = app.client.delete(app.url("/v1/keys/nobody")).header("X-Offnd-Api-Key", API_KEY).send().await;
    let body = assert_problem(response.expect("request"), 404, &["Key.NotFound"]).await;
    assert_eq!(body["detail"], "No API key has the specified name.");
    let response = app.client.delete(app.url("/v1/keys/%FF")).header("X-Offnd-Api-Key", API_KEY).send().await;
    assert_problem(response.expect("request"), 404, &["Key.NotFound"]).await;

    assert_eq!(status(get_as(&app, &secret, "/v1/languages")).await, 200);
    for _ in 0..2 {
        // Revoking twice is fine; the second changes nothing and is not audited.
        let response = app.client.delete(app.url("/v1/keys/ci")).header("X-Offnd-Api-Key", API_KEY).send().await;
        let response = response.expect("request");
        assert_eq!(response.status(), 204);
        assert_eq!(response.text().await.expect("body"), "");
    }
    eventually(Duration::from_secs(5), "the revoked key is refused", || async {
        match status(get_as(&app, &secret, "/v1/languages")).await {
            401 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    let listed: Value = app.get("/v1/keys").send().await.expect("request").json().await.expect("json");
    assert!(listed["keys"][0]["revokedAt"].is_string(), "{listed}");

    let audit: Value = app.get("/v1/audit?pageSize=1").send().await.expect("request").json().await.expect("json");
    let entry = &audit["entries"][0];
    assert_eq!(
        audit,
        json!({
            "entries": [{"id": entry["id"], "at": entry["at"], "actor": "OFFNDAT_API_KEYS#1", "action": "key.revoked",
                         "linkPhrase": null, "detail": {"name": "ci", "role": "creator"}}],
            "pagination": {"page": 1, "pageSize": 1, "totalItems": 2, "totalPages": 2}
        })
    );
    let second: Value =
        app.get("/v1/audit?page=2&pageSize=1").send().await.expect("request").json().await.expect("json");
    assert_eq!(second["entries"][0]["action"], "key.created");
    assert_eq!(second["entries"][0]["detail"], json!({"name": "ci", "role": "creator"}));
    let past: Value = app.get("/v1/audit?page=3&pageSize=1").send().await.expect("request").json().await.expect("json");
    assert_eq!(past["entries"], json!([]));

    let response = app.get("/v1/audit?page=0&pageSize=101").send().await.expect("request");
    let body = assert_problem(response, 400, &["Pagination.PageInvalid", "Pagination.PageSizeInvalid"]).await;
    assert_eq!(body["detail"], "`page` must be a whole number from 1.");
    let response = app.get("/v1/audit?pageSize=x").send().await.expect("request");
    assert_problem(response, 400, &["Pagination.PageSizeInvalid"]).await;
    app.stop().await;
}

#[tokio::test]
async fn a_revocation_reaches_another_process_within_a_second() {
    let db = TestDatabase::new();
    let first = spawn_with(&db, &[]).await;
    let second = spawn_with(&db, &[]).await;
    let secret = create_key(&first, "ci", "creator").await;
    eventually(Duration::from_secs(1), "the other process knows the new key", || async {
        match status(get_as(&second, &secret, "/v1/languages")).await {
            200 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;

    let response = first.client.delete(first.url("/v1/keys/ci")).header("X-Offnd-Api-Key", API_KEY).send().await;
    assert_eq!(response.expect("request").status(), 204);
    eventually(Duration::from_secs(1), "the other process refuses the revoked key", || async {
        match status(get_as(&second, &secret, "/v1/languages")).await {
            401 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;

    // A revocation made by hand in SQL reaches them too (the trigger bumps the counter).
    let other = create_key(&first, "by-hand", "admin").await;
    eventually(Duration::from_secs(1), "the second process knows it", || async {
        match status(get_as(&second, &other, "/v1/keys")).await {
            200 => Ok(()),
            status => Err(status.to_string()),
        }
    })
    .await;
    let mut conn = db.connect().await;
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE name = 'by-hand'").execute(&mut conn).await.expect("sql");
    eventually(Duration::from_secs(1), "both processes refuse it", || async {
        match (status(get_as(&first, &other, "/v1/keys")).await, status(get_as(&second, &other, "/v1/keys")).await) {
            (401, 401) => Ok(()),
            statuses => Err(format!("{statuses:?}")),
        }
    })
    .await;
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn stored_keys_fail_closed_while_postgres_is_unreachable_and_last_use_is_recorded() {
    let db = TestDatabase::new();
    let proxy = TcpProxy::to_port(5432).await;
    let via_proxy = format!("--database-url={}", db.url_via(proxy.address()));
    let app = spawn_with(&db, &[&via_proxy, "--keys-max-staleness=1s", "--database-acquire-timeout=200ms"]).await;
    let secret = create_key(&app, "ci", "creator").await;
    assert_eq!(status(get_as(&app, &secret, "/v1/languages")).await, 200);

    proxy.disable();
    let body = eventually(Duration::from_secs(15), "the stored key is refused with 503", || async {
        let response = get_as(&app, &secret, "/v1/languages").send().await.expect("request");
        if response.status() == 503 { Ok(response) } else { Err(response.status().to_string()) }
    })
    .await;
    let body = assert_problem(body, 503, &["General.ServiceUnavailable"]).await;
    assert_eq!(body["instance"], "GET /v1/languages");
    // Configured keys do not depend on PostgreSQL.
    assert_eq!(status(app.get("/v1/languages")).await, 200);

    proxy.enable();
    eventually(Duration::from_secs(15), "the stored key works again", || async {
        match status(get_as(&app, &secret, "/v1/languages")).await {
            200 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    // Use is written lazily; shutdown writes what is pending.
    app.stop().await;
    assert_eq!(db.scalar("SELECT count(*) FROM api_keys WHERE name = 'ci' AND last_used_at IS NOT NULL").await, 1);
}

/// Runs `offndat-api keys ...` on `db`; (exit code, stdout, stderr).
async fn cli(db: &TestDatabase, args: &[&str]) -> (i32, String, String) {
    let output = api_binary().command().env("OFFNDAT_DATABASE_URL", &db.url).args(args).output().await;
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("utf-8");
    (output.status.code().unwrap_or(-1), text(output.stdout), text(output.stderr))
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_keys() {
    let db = TestDatabase::new();
    let (code, stdout, stderr) = cli(&db, &["keys", "create", "--name", "ops", "--role", "admin"]).await;
    assert_eq!(code, 0, "{stderr}");
    let secret = stdout.trim_end().to_owned();
    assert!(secret.starts_with("offndat_") && secret.len() == 72 && stdout.lines().count() == 1, "{stdout}");
    assert!(!stderr.contains(&secret), "the secret is not logged");
    assert!(stderr.contains("created key `ops` (admin)"), "{stderr}");

    let (code, _, stderr) = cli(&db, &["keys", "create", "--name", "ops", "--role", "creator"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("a key with this name exists"), "{stderr}");
    let (code, _, stderr) = cli(&db, &["keys", "create", "--name", "ops", "--role", "root"]).await;
    assert_eq!(code, 2, "clap refuses an unknown role: {stderr}");

    let app = spawn_with(&db, &[]).await;
    assert_eq!(status(get_as(&app, &secret, "/v1/keys")).await, 200, "loaded at start");

    let (code, stdout, _) = cli(&db, &["keys", "list"]).await;
    assert_eq!(code, 0);
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["name", "role", "created", "last", "used", "revoked"]);
    assert_eq!((rows[1][0], rows[1][1], rows[1][4]), ("ops", "admin", "-"));
    assert_eq!(rows.len(), 2);
    assert!(!stdout.contains(&secret));

    let (code, stdout, stderr) = cli(&db, &["keys", "revoke", "ops"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "revoked key `ops`; every API process refuses it within a second\n");
    eventually(Duration::from_secs(1), "the running API refuses it", || async {
        match status(get_as(&app, &secret, "/v1/keys")).await {
            401 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    let (code, _, stderr) = cli(&db, &["keys", "revoke", "nobody"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no key has this name"), "{stderr}");

    let audit: Value = app.get("/v1/audit").send().await.expect("request").json().await.expect("json");
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["actor"].as_str().expect("actor"), e["action"].as_str().expect("action")))
        .collect();
    assert_eq!(actions, [("cli", "key.revoked"), ("cli", "key.created")]);
    app.stop().await;
}

#[tokio::test]
async fn a_max_staleness_shorter_than_two_polls_fails_start_up() {
    let db = TestDatabase::new();
    let config = crate::helpers::config(
        &db,
        &crate::helpers::AmqpNamespace::new(),
        &crate::helpers::RedisPrefix::new(),
        &["--keys-refresh-interval=500ms", "--keys-max-staleness=900ms"],
    );
    let error = offndat_api::Application::build(config).await.err().expect("refused");
    assert_eq!(
        error.to_string(),
        "OFFNDAT_KEYS_MAX_STALENESS must be at least twice OFFNDAT_KEYS_REFRESH_INTERVAL, or stored keys would be \
         refused between two polls"
    );
}

#[tokio::test]
async fn a_creator_may_take_its_link_down_but_only_an_admin_puts_it_back() {
    let (app, db) = spawn().await;
    let alice = create_key(&app, "alice", "creator").await;
    let phrase = create_link_as(&app, &alice).await;
    let link = format!("/v1/links/{phrase}");
    let patch_as =
        |key: &str, body: Value| app.client.patch(app.url(&link)).header("X-Offnd-Api-Key", key).json(&body).send();
    // Taking down: fine for the owner. Field names match case-insensitively, as on create.
    let down = patch_as(&alice, json!({"Disabled": true, "disabledReason": "oops"})).await.expect("request");
    assert_eq!(down.status(), 200);
    assert_eq!(down.json::<Value>().await.expect("json")["state"], "disabled");
    // Putting back up, with `false` or `null`: refused to the creator, changing nothing.
    for body in [json!({"disabled": false}), json!({"disabled": null})] {
        let refused = patch_as(&alice, body.clone()).await.expect("request");
        let problem = assert_problem(refused, 403, &["General.Forbidden"]).await;
        assert_eq!(
            problem["errors"][0]["message"],
            "The API key's role does not allow this action; it needs an admin key."
        );
    }
    let read: Value = get_as(&app, &alice, &link).send().await.expect("request").json().await.expect("json");
    assert_eq!((read["state"].as_str(), read["disabledReason"].as_str()), (Some("disabled"), Some("oops")));
    // An admin may.
    let up = patch_as(API_KEY, json!({"disabled": false})).await.expect("request");
    assert_eq!(up.status(), 200);
    assert_eq!(up.json::<Value>().await.expect("json")["state"], "active");
    assert_eq!(db.scalar("SELECT count(*) FROM audit_log WHERE action = 'link.enabled'").await, 1);
    app.stop().await;
}
