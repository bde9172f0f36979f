//! Spawning the app on port 0 against a fresh database, and small HTTP helpers.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use offndat_api::Application;
use offndat_api::cli::Cli;
use offndat_api::config::ApiConfig;
pub use offndat_test_support::{AmqpNamespace, Metrics, RedisPrefix, TestDatabase, eventually};
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const API_KEY: &str = "test-key-1-0123456789abcdef0123456789";
pub const OTHER_API_KEY: &str = "test-key-2-0123456789abcdef0123456789";
pub const PUBLIC_BASE: &str = "http://short.test";

/// A running app.
pub struct TestApp {
    pub address: SocketAddr,
    /// The operations listener: `/health`, `/health/ready`, `/metrics`.
    pub ops_address: SocketAddr,
    pub namespace: AmqpNamespace,
    /// Held so the app's Redis keys are deleted when the test ends.
    pub _redis: RedisPrefix,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A URL on the operations listener.
    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ops_address)
    }

    /// The app's `/metrics` (process-wide: other tests in this binary count too).
    pub async fn metrics(&self) -> Metrics {
        Metrics::get(&self.client, &self.ops_url("/metrics")).await
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).header("X-Offnd-Api-Key", API_KEY)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).header("X-Offnd-Api-Key", API_KEY)
    }

    /// Creates a link and returns its phrase.
    pub async fn create(&self, target: &str, language: i64, theme: i64, format: i64) -> String {
        let response = self
            .post("/v1/links")
            .json(&json!({ "targetUrl": target, "languageId": language, "themeId": theme, "formatId": format }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        let body: Value = response.json().await.expect("json");
        let url = body["url"].as_str().expect("url");
        let encoded = url.strip_prefix(&format!("{PUBLIC_BASE}/")).expect("under the public base");
        percent_encoding::percent_decode_str(encoded).decode_utf8().expect("utf-8").into_owned()
    }

    /// Stops the app the way SIGTERM would and waits for it.
    pub async fn stop(self) {
        drop(self.stop_keeping_namespace().await);
    }

    /// Stops the app and hands back its namespace, so a test can still read what
    /// was published to it.
    pub async fn stop_keeping_namespace(self) -> AmqpNamespace {
        self.shutdown.cancel();
        self.handle.await.expect("join").expect("clean shutdown");
        self.namespace
    }
}

/// Test configuration: port 0, known keys, the test database and AMQP namespace.
pub fn config(db: &TestDatabase, namespace: &AmqpNamespace, redis: &RedisPrefix, extra: &[&str]) -> ApiConfig {
    let mut args = vec![
        "offndat-api".to_owned(),
        format!("--amqp-namespace={}", namespace.name),
        format!("--redis-key-prefix={}", redis.prefix),
        "--visit-flush-interval=20ms".to_owned(),
        // Tests come from one IP; the protection tests turn limits back on.
        "--rate-limit-enabled=false".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        "--ops-listen=127.0.0.1:0".to_owned(),
        format!("--public-base-url={PUBLIC_BASE}"),
        format!("--database-url={}", db.url),
        format!("--api-keys={API_KEY},{OTHER_API_KEY}"),
        "--cors-origins=https://offnd.at".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Cli::try_parse_from(args).expect("valid test configuration").config
}

/// Spawns the app on `db` with extra flags.
pub async fn spawn_with(db: &TestDatabase, extra: &[&str]) -> TestApp {
    spawn_in(db, AmqpNamespace::new(), extra).await
}

/// Spawns the app on `db` and `namespace` with extra flags.
pub async fn spawn_in(db: &TestDatabase, namespace: AmqpNamespace, extra: &[&str]) -> TestApp {
    let redis = RedisPrefix::new();
    let config = config(db, &namespace, &redis, extra);
    spawn_config(config, namespace, redis).await
}

/// Spawns the app with `config`; `redis` names the key prefix whose keys are
/// deleted when the test ends.
pub async fn spawn_config(config: ApiConfig, namespace: AmqpNamespace, redis: RedisPrefix) -> TestApp {
    let app = Application::build(config).await.expect("app builds");
    let address = app.local_addr().expect("bound");
    let ops_address = app.ops_addr().expect("bound");
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run(shutdown.clone()));
    let client =
        reqwest::Client::builder().redirect(Policy::none()).timeout(Duration::from_secs(30)).build().expect("client");
    TestApp { address, ops_address, namespace, _redis: redis, client, shutdown, handle }
}

/// A worker running in this process on an app's database and namespace, so a
/// test can read what it counted.
pub struct TestWorker {
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

#[derive(Parser)]
struct WorkerArgs {
    #[command(flatten)]
    config: offndat_worker::config::WorkerConfig,
}

impl TestWorker {
    pub async fn spawn(db: &TestDatabase, namespace: &str, extra: &[&str]) -> Self {
        let mut args = vec![
            "offndat-worker".to_owned(),
            "--worker-listen=127.0.0.1:0".to_owned(),
            format!("--database-url={}", db.url),
            format!("--amqp-namespace={namespace}"),
            "--worker-batch-timeout=10ms".to_owned(),
            "--shutdown-timeout=10s".to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let config = WorkerArgs::try_parse_from(args).expect("valid worker flags").config;
        let worker = offndat_worker::Worker::build(config).await.expect("worker builds");
        let shutdown = CancellationToken::new();
        let handle = Some(tokio::spawn(worker.run(shutdown.clone())));
        Self { shutdown, handle }
    }

    /// Stops the worker and asserts it stopped cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("running");
        handle.await.expect("no panic").expect("clean stop");
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Spawns the app and a worker on a fresh database.
pub async fn spawn_counting(extra: &[&str]) -> (TestApp, TestWorker, TestDatabase) {
    let db = TestDatabase::new();
    let app = spawn_with(&db, extra).await;
    let worker = TestWorker::spawn(&db, &app.namespace.name, &[]).await;
    (app, worker, db)
}

/// Spawns the app on a fresh database.
pub async fn spawn() -> (TestApp, TestDatabase) {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &[]).await;
    (app, db)
}

/// Writes a vocabulary directory with `words` in every list the rules need.
pub fn write_vocabulary(dir: &Path, words: &[&str]) {
    for key in offndat_domain::vocabulary::required_keys() {
        let path = dir.join(key.path());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let tag = if key.offensiveness == offndat_domain::Offensiveness::Offensive { "rude" } else { "nice" };
        let tagged: Vec<String> = words.iter().map(|w| format!("{w}{tag}")).collect();
        std::fs::write(&path, tagged.join("\n")).expect("write list");
    }
}

/// Asserts a problem response and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16, codes: &[&str]) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(response.headers()["api-supported-versions"], "1");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    let actual: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().map(|e| e["code"].as_str().expect("code")).collect();
    assert_eq!(actual, codes, "{body}");
    for error in body["errors"].as_array().expect("errors") {
        assert!(!error["message"].as_str().expect("message").is_empty());
    }
    assert_eq!(body["traceId"].as_str().map(str::len), Some(32), "{body}");
    assert!(!body["requestId"].as_str().expect("requestId").is_empty());
    body
}
