//! The built `offndat-api` binary, run as a process.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{AmqpNamespace, TestDatabase, write_vocabulary};

const BINARY: &str = env!("CARGO_BIN_EXE_offndat-api");

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub(crate) fn command(db: &TestDatabase, namespace: &AmqpNamespace, port: u16) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("OFFNDAT_AMQP_NAMESPACE", &namespace.name)
        .env("OFFNDAT_LISTEN", format!("127.0.0.1:{port}"))
        // Not the default 8092: tests run side by side.
        .env("OFFNDAT_OPS_LISTEN", "127.0.0.1:0")
        .env("OFFNDAT_PUBLIC_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("OFFNDAT_DATABASE_URL", &db.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Reads stdout until a line contains `needle`, within a deadline.
pub(crate) async fn wait_for_line(child: &mut Child, needle: &str) -> String {
    let stdout = child.stdout.as_mut().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("the process closed stdout before logging {needle:?}");
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {needle:?} within 60 s"))
}

/// A started `offndat-api` process.
pub(crate) struct Running {
    pub child: Child,
    /// Its operations listener (`/metrics`, `/health`).
    pub ops_address: std::net::SocketAddr,
}

/// Spawns `command` and waits until it logs that it listens. Its output is read
/// on in the background, so a full pipe never blocks its logging.
pub(crate) async fn start(mut command: Command) -> Running {
    let mut child = command.spawn().expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("offndat-api listening") {
                return line;
            }
        }
        panic!("the process closed stdout before listening");
    })
    .await
    .expect("listening within 60 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    if let Some(stderr) = child.stderr.take() {
        let mut lines = BufReader::new(stderr).lines();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    }
    let ops_address = listening
        .split_whitespace()
        .find_map(|field| field.strip_prefix("ops_address="))
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no ops_address in {listening:?}"));
    Running { child, ops_address }
}

pub(crate) fn sigterm(child: &Child) {
    let pid = child.id().expect("running");
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn serves_with_a_generated_key_and_exits_0_on_sigterm() {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("generated.key");
    let mut child =
        command(&db, &namespace, port).env("OFFNDAT_GENERATED_API_KEY_FILE", &key_file).spawn().expect("spawn");
    let line = wait_for_line(&mut child, "api_key_file=").await;
    assert!(line.contains(&key_file.display().to_string()), "{line}");
    let key = std::fs::read_to_string(&key_file).expect("key file").trim_end().to_owned();
    assert_eq!(key.len(), 64);
    assert!(!line.contains(&key), "the key stays out of the log: {line}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    }
    let rest = wait_for_line(&mut child, "listening").await;
    assert!(!rest.contains(&key));

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let base = format!("http://127.0.0.1:{port}");
    let response = client
        .post(format!("{base}/v1/links"))
        .header("X-Offnd-Api-Key", &key)
        .json(&json!({"targetUrl": "https://example.com/bin", "languageId": 0, "themeId": 0, "formatId": 0}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let url = response.json::<Value>().await.expect("json")["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with(&base), "{url}");
    let response = client.get(&url).send().await.expect("follow");
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()["location"], "https://example.com/bin");
    let response =
        client.get(format!("{base}/v1/languages")).header("X-Offnd-Api-Key", "guess").send().await.expect("r");
    assert_eq!(response.status(), 401);

    sigterm(&child);
    let status =
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits in time").expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn migrate_applies_migrations_and_exits_0() {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let output = command(&db, &namespace, free_port()).arg("migrate").output().await.expect("run");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(db.count("links").await, 0, "the links table exists");
}

#[tokio::test]
async fn vocabulary_prints_the_phrase_space() {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let output = command(&db, &namespace, free_port()).arg("vocabulary").output().await.expect("run");
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
    let output =
        command(&db, &namespace, free_port()).env("OFFNDAT_VOCABULARY_DIR", dir.path()).output().await.expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().find(|l| l.starts_with("offndat-api:")).expect("one error line");
    assert!(line.contains(&missing.display().to_string()), "{line}");
}

#[tokio::test]
async fn sigterm_while_waiting_for_postgresql_at_start_up_exits_0_promptly() {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    // Nothing listens there: start-up keeps retrying for the default 60 s.
    let closed = free_port();
    let mut child = command(&db, &namespace, free_port())
        .env("OFFNDAT_DATABASE_URL", format!("postgres://postgres@127.0.0.1:{closed}/{}", db.name))
        .env("OFFNDAT_API_KEYS", "sigterm-key-0123456789abcdef0123456789")
        .spawn()
        .expect("spawn");
    wait_for_line(&mut child, "PostgreSQL unreachable, retrying").await;
    sigterm(&child);
    // Well inside the 60 s start-up timeout: the signal, not the timeout, ended it.
    let status =
        tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("exits on SIGTERM").expect("wait");
    assert_eq!(status.code(), Some(0));
}

/// Runs the binary with one variable set and returns its exit code and stderr.
async fn start_with(name: &str, value: &str) -> (Option<i32>, String) {
    let (db, namespace) = (TestDatabase::new(), AmqpNamespace::new());
    let output = command(&db, &namespace, free_port()).env(name, value).output().await.expect("run");
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
        ("OFFNDAT_CACHE_L1_TTL", "2000years", "--cache-l1-ttl", "must be from 1s to 30days"),
        ("OFFNDAT_REDIS_TIMEOUT", "5h", "--redis-timeout", "must be from 1ms to 1m"),
        ("OFFNDAT_SHUTDOWN_TIMEOUT", "soon", "--shutdown-timeout", "expected number at 0"),
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
    let output =
        command(&db, &namespace, free_port()).env("OFFNDAT_PUBLIC_BASE_URL", "not a url").output().await.expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--public-base-url"));
}
