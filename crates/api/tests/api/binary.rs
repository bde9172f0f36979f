//! The built `offndat-api` binary, run as a process.

use std::time::Duration;

use offndat_test_support::{Launch, TcpProxy};
use serde_json::{Value, json};

use crate::helpers::{AmqpNamespace, TestDatabase, write_vocabulary};
use crate::system::api_command;

/// Where the binary's short URLs point; requests go to the address it reports.
const BASE: &str = "http://binary.test";

fn command(db: &TestDatabase, namespace: &AmqpNamespace) -> Launch {
    api_command(db, namespace, BASE)
}

#[tokio::test]
async fn serves_with_a_generated_key_and_exits_0_on_sigterm() {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("generated.key");
    let child = command(&db, &namespace).env("OFFNDAT_GENERATED_API_KEY_FILE", &key_file).spawn();
    let line = child.line_containing("api_key_file=").await;
    assert!(line.contains(&key_file.display().to_string()), "{line}");
    let key = std::fs::read_to_string(&key_file).expect("key file").trim_end().to_owned();
    assert_eq!(key.len(), 64);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    }
    let address = child.address("address").await;
    assert!(!child.output().contains(&key), "the key stays out of the log:\n{}", child.output());

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let listening = format!("http://{address}");
    let response = client
        .post(format!("{listening}/v1/links"))
        .header("X-Offnd-Api-Key", &key)
        .json(&json!({"targetUrl": "https://example.com/bin", "languageId": 0, "themeId": 0, "formatId": 0}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let url = response.json::<Value>().await.expect("json")["url"].as_str().expect("url").to_owned();
    let phrase = url.strip_prefix(&format!("{BASE}/")).unwrap_or_else(|| panic!("{url} under {BASE}"));
    let response = client.get(format!("{listening}/{phrase}")).send().await.expect("follow");
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "https://example.com/bin");
    let response =
        client.get(format!("{listening}/v1/languages")).header("X-Offnd-Api-Key", "guess").send().await.expect("r");
    assert_eq!(response.status(), 401);

    child.stop().await;
}

#[tokio::test]
async fn migrate_applies_migrations_and_exits_0() {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let output = command(&db, &namespace).arg("migrate").output().await;
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(db.count("links").await, 0, "the links table exists");
}

#[tokio::test]
async fn vocabulary_prints_the_phrase_space() {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let output = command(&db, &namespace).arg("vocabulary").output().await;
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let rows: Vec<(&str, &str, u128)> = stdout
        .lines()
        .skip(2)
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols[0], cols[1], cols[2].replace(',', "").parse().expect("number"))
        })
        .collect();
    assert_eq!(rows.len(), 6, "{stdout}");
    for (language, theme, space) in rows {
        let floor = if (language, theme) == ("en", "none") { 100_000_000 } else { 1_000_000 };
        assert!(space >= floor, "{language} {theme}: {space}");
    }
}

#[tokio::test]
async fn an_incomplete_vocabulary_directory_fails_start_up_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_vocabulary(dir.path(), &["word"]);
    let missing = dir.path().join("en/offensive/none/none/none/adverbs.txt");
    std::fs::remove_file(&missing).expect("remove");
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let output = command(&db, &namespace).env("OFFNDAT_VOCABULARY_DIR", dir.path()).output().await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().find(|l| l.starts_with("offndat-api:")).expect("one error line");
    assert!(line.contains(&missing.display().to_string()), "{line}");
}

#[tokio::test]
async fn sigterm_while_waiting_for_postgresql_at_start_up_exits_0_promptly() {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    // A PostgreSQL that closes every connection at once (a proxy, disabled, that
    // holds its port): start-up keeps retrying for the default 60 s.
    let closed = TcpProxy::to_port(5432).await;
    closed.disable();
    let mut child = command(&db, &namespace)
        .env("OFFNDAT_DATABASE_URL", db.url_via(closed.address()))
        .env("OFFNDAT_API_KEYS", "sigterm-key-0123456789abcdef0123456789")
        .spawn();
    child.line_containing("PostgreSQL unreachable, retrying").await;
    child.signal("TERM");
    // Well inside the 60 s start-up timeout: the signal, not the timeout, ended it.
    assert_eq!(child.exit_code_within(Duration::from_secs(20)).await, Some(0), "{}", child.output());
}

/// Runs the binary with one variable set and returns its exit code and stderr.
async fn start_with(name: &str, value: &str) -> (Option<i32>, String) {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let output = command(&db, &namespace).env(name, value).output().await;
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn out_of_range_rates_and_durations_are_refused_with_their_bounds() {
    for (name, value, flag, message) in [
        (
            "OFFNDAT_RATE_LIMIT_REDIRECT_PER_SECOND",
            "1e-300",
            "--rate-limit-redirect-per-second",
            "must be a number from 0.001 to 1000000",
        ),
        ("OFFNDAT_RATE_LIMIT_REDIRECT_PER_SECOND", "0", "--rate-limit-redirect-per-second", "from 0.001 to 1000000"),
        ("OFFNDAT_REQUEST_TIMEOUT", "0s", "--request-timeout", "must be from 1ms to 10m"),
        ("OFFNDAT_CACHE_L1_TTL", "2000years", "--cache-l1-ttl", "must be from 1s to 30d"),
        ("OFFNDAT_REDIS_TIMEOUT", "5h", "--redis-timeout", "must be from 1ms to 1m"),
        ("OFFNDAT_SHUTDOWN_TIMEOUT", "soon", "--shutdown-timeout", "expected number at 0"),
        ("OFFNDAT_MAX_BODY_BYTES", "0", "--max-body-bytes", "0 is not in 1024..=67108864"),
        ("OFFNDAT_MAX_HEADER_BYTES", "0", "--max-header-bytes", "0 is not in 1024..=1048576"),
        ("OFFNDAT_DATABASE_MAX_CONNECTIONS", "0", "--database-max-connections", "0 is not in 1..=10000"),
    ] {
        let (code, stderr) = start_with(name, value).await;
        assert_eq!(code, Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(message), "{name}={value}: {stderr}");
    }
}

#[tokio::test]
async fn short_and_placeholder_api_keys_are_refused_outside_development_mode() {
    for (keys, problem) in [
        ("short-key", "key 1 has 9 characters, fewer than 32"),
        ("local-dev-key", "key 1 is a placeholder from the deployment files"),
        ("CHANGE-ME-api-key", "key 1 is a placeholder from the deployment files"),
    ] {
        let (code, stderr) = start_with("OFFNDAT_API_KEYS", keys).await;
        assert_eq!(code, Some(1), "{keys}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with(&format!("offndat-api: OFFNDAT_API_KEYS: {problem};")), "{keys}: {stderr}");
        assert!(stderr.contains("OFFNDAT_DEVELOPMENT_MODE=true"), "{stderr}");
        assert!(!stderr.contains(keys), "the key is not echoed: {stderr}");
    }
}

#[tokio::test]
async fn invalid_configuration_fails_fast() {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let output = command(&db, &namespace).env("OFFNDAT_PUBLIC_BASE_URL", "not a url").output().await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--public-base-url"));
}

#[tokio::test]
async fn compact_rollups_folds_pending_days_today_included_into_daily_rows() {
    let db = TestDatabase::migrated().await;
    let namespace = AmqpNamespace::new();
    let mut conn = db.connect().await;
    let link = uuid::Uuid::now_v7();
    // Two hours of today, pending, as the worker leaves an active link.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at)
         VALUES ('{link}', 'compact-cli-walrus', 'https://example.com/', 0, 0, now());
         INSERT INTO link_rollups_hourly (link_id, bucket, human, bot, human_by, bot_by) VALUES
             ('{link}', date_trunc('day', now(), 'UTC'), 2, 0, '{{\"0\": 2, \"1Chrome\": 2}}', '{{}}'),
             ('{link}', date_trunc('day', now(), 'UTC') + interval '1 hour', 1, 1, '{{\"0\": 1, \"1Chrome\": 1}}', '{{\"0\": 1}}');
         INSERT INTO visit_summaries (link_id, total_visits, bot_visits, last_visited_at, daily_pending_from)
         VALUES ('{link}', 4, 1, now(), date_trunc('day', now(), 'UTC'))"
    )))
    .execute(&mut conn)
    .await
    .expect("seed");

    let output = command(&db, &namespace).arg("compact-rollups").output().await;
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "compacted the daily rollups of 1 link(s)\n");
    let daily = db
        .text(&format!(
            "SELECT human::text || ' ' || bot::text || ' ' || human_by::text || ' ' || bot_by::text
             FROM link_rollups_daily WHERE link_id = '{link}' AND bucket = date_trunc('day', now(), 'UTC')"
        ))
        .await;
    assert_eq!(daily.as_deref(), Some(r#"3 1 {"0": 3, "1Chrome": 3} {"0": 1}"#));
    let pending =
        db.text(&format!("SELECT daily_pending_from::text FROM visit_summaries WHERE link_id = '{link}'")).await;
    assert_eq!(pending, None, "every day complete in the daily rows");
}
