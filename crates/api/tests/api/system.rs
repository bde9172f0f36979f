//! The whole system as processes: `offndat-api` and `offndat-worker` binaries,
//! counting every redirect exactly once, bots apart, across a worker SIGKILL, a
//! RabbitMQ outage, a PostgreSQL outage and an API SIGTERM with an unflushed
//! aggregate, during traffic.
//!
//! Needs both binaries built (`cargo test --workspace` builds them).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use offndat_test_support::TcpProxy;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{AmqpNamespace, TestDatabase, eventually};

pub(crate) const KEY: &str = "system-key-0123456789abcdef0123456789";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn add((a, b): (i64, i64), (c, d): (i64, i64)) -> (i64, i64) {
    (a + c, b + d)
}

fn binary(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_offndat-api")).with_file_name(name);
    assert!(path.exists(), "{} is not built; run the tests with `cargo test --workspace`", path.display());
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The environment both binaries share.
pub(crate) struct System {
    /// More variables for both binaries.
    pub(crate) env: Vec<(&'static str, String)>,
    db: TestDatabase,
    namespace: AmqpNamespace,
    broker: TcpProxy,
    /// Between both binaries and PostgreSQL: disabling it is a database restart.
    database: TcpProxy,
    logs: tempfile::TempDir,
    api_port: u16,
    worker_port: u16,
    ops_port: u16,
    pub(crate) client: reqwest::Client,
}

impl System {
    pub(crate) async fn new() -> Self {
        Self {
            env: Vec::new(),
            db: TestDatabase::new(),
            namespace: AmqpNamespace::new(),
            broker: TcpProxy::to_port(5672).await,
            database: TcpProxy::to_port(5432).await,
            logs: tempfile::tempdir().expect("tempdir"),
            api_port: free_port(),
            worker_port: free_port(),
            ops_port: free_port(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    fn command(&self, name: &str, log: &str) -> Command {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.logs.path().join(log)).expect("log");
        let mut command = Command::new(binary(name));
        command
            .env_clear()
            .env("OFFNDAT_DATABASE_URL", self.db.url_via(self.database.address()))
            .env("OFFNDAT_AMQP_URL", format!("amqp://guest:guest@{}/%2f", self.broker.address()))
            .env("OFFNDAT_AMQP_NAMESPACE", &self.namespace.name)
            .env("OFFNDAT_API_KEYS", KEY)
            .env("OFFNDAT_LISTEN", format!("127.0.0.1:{}", self.api_port))
            .env("OFFNDAT_OPS_LISTEN", format!("127.0.0.1:{}", self.ops_port))
            .env("OFFNDAT_PUBLIC_BASE_URL", "http://short.test")
            .env("OFFNDAT_WORKER_LISTEN", format!("127.0.0.1:{}", self.worker_port))
            .env("OFFNDAT_VISIT_FLUSH_INTERVAL", "50ms")
            .env("OFFNDAT_RATE_LIMIT_ENABLED", "false")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        command
    }

    pub(crate) async fn start_api(&self) -> Child {
        let child = self.command("offndat-api", "api.log").spawn().expect("spawn api");
        let url = self.ops_url("/health/ready");
        eventually(Duration::from_secs(60), "the API answers", || async {
            match self.client.get(&url).send().await {
                Ok(r) if r.status() == 200 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        child
    }

    pub(crate) fn start_worker(&self) -> Child {
        self.command("offndat-worker", "worker.log").spawn().expect("spawn worker")
    }

    /// A URL on the API's operations listener (health detail, metrics).
    pub(crate) fn ops_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ops_port)
    }

    /// A URL on the worker's health and metrics listener.
    pub(crate) fn worker_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.worker_port)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    pub(crate) async fn create(&self) -> String {
        let response = self
            .client
            .post(self.url("/v1/links"))
            .header("X-Offnd-Api-Key", KEY)
            .json(&json!({"targetUrl": "https://example.com/", "languageId": 0, "themeId": 0, "formatId": 0}))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
        let url = response.json::<Value>().await.expect("json")["url"].as_str().expect("url").to_owned();
        url.trim_start_matches("http://short.test/").to_owned()
    }

    /// Sends `n` redirects, 8 at a time, every fourth from a crawler; all must
    /// answer 301. Returns (humans, bots) sent.
    async fn redirects(&self, phrase: &str, n: usize) -> (i64, i64) {
        let url = Arc::new(self.url(&format!("/{phrase}")));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let (client, url) = (self.client.clone(), url.clone());
            tasks.spawn(async move {
                for i in (worker..n).step_by(8) {
                    let agent = if i % 4 == 0 { BOT } else { "system-test" };
                    let response = client.get(url.as_str()).header("User-Agent", agent).send().await;
                    assert_eq!(response.expect("redirect").status(), 301);
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("redirect task");
        }
        let bots = n.div_ceil(4) as i64;
        (n as i64 - bots, bots)
    }

    /// `visits` and `botVisits` as the stats read reports them, and how many
    /// recent visits it lists.
    async fn visits(&self, phrase: &str) -> Result<(i64, i64, usize), String> {
        let response = self
            .client
            .get(self.url(&format!("/v1/links/{phrase}")))
            .header("X-Offnd-Api-Key", KEY)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        let total = body["visits"].as_i64().ok_or_else(|| body.to_string())?;
        let bots = body["botVisits"].as_i64().ok_or_else(|| body.to_string())?;
        Ok((total, bots, body["recentVisits"].as_array().map_or(0, Vec::len)))
    }

    /// Waits for exactly `humans` + `bots` visits, bots apart, and the newest ten.
    async fn await_visits(&self, phrase: &str, (humans, bots): (i64, i64), when: &str) {
        let expected = (humans + bots, bots, (humans + bots).min(10) as usize);
        eventually(Duration::from_secs(30), &format!("{expected:?} visits counted {when}"), || async {
            match self.visits(phrase).await? {
                n if n == expected => Ok(()),
                n => Err(format!("{n:?} counted")),
            }
        })
        .await;
        // Counted exactly once: the count stays put rather than overshooting.
        assert_eq!(self.visits(phrase).await, Ok(expected), "{when}");
    }

    /// What a binary wrote so far: `api.log` or `worker.log`.
    pub(crate) fn log(&self, file: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(file)).unwrap_or_default()
    }

    pub(crate) fn dump_logs(&self) -> String {
        ["api.log", "worker.log"].iter().map(|f| format!("--- {f}\n{}", self.log(f))).collect()
    }
}

pub(crate) fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args([signal, &pid]).status().expect("kill").success());
}

pub(crate) async fn exit_code(child: &mut Child) -> Option<i32> {
    tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits in time").expect("wait").code()
}

#[tokio::test]
async fn every_redirect_is_counted_once_across_kills_outages_and_restarts() {
    let mut system = System::new().await;
    let mut api = system.start_api().await;
    let mut worker = system.start_worker();
    let phrase = system.create().await;

    // Plain traffic.
    let mut sent = system.redirects(&phrase, 200).await;
    system.await_visits(&phrase, sent, "after plain traffic").await;

    // The worker is SIGKILLed while visits flow, then restarted.
    let traffic = system.redirects(&phrase, 300);
    let kill = async {
        // Only places the kill inside the traffic; effects are awaited below.
        tokio::time::sleep(Duration::from_millis(100)).await;
        signal(&worker, "-KILL");
    };
    let (during, ()) = tokio::join!(traffic, kill);
    sent = add(sent, during);
    assert_eq!(exit_code(&mut worker).await, None, "killed by a signal");
    let mut worker = system.start_worker();
    system.await_visits(&phrase, sent, "after a worker SIGKILL").await;

    // RabbitMQ is unreachable for API and worker while links are created and
    // redirects served; everything arrives after it returns.
    system.broker.disable();
    let during_outage = system.create().await;
    sent = add(sent, system.redirects(&phrase, 100).await);
    let other = system.redirects(&during_outage, 7).await;
    system.broker.enable();
    system.await_visits(&phrase, sent, "after a broker outage").await;
    system.await_visits(&during_outage, other, "for a link created during the outage").await;

    // PostgreSQL goes away (a restart) while cached redirects go on: the visits
    // wait in memory and are written once it is back.
    system.database.disable();
    sent = add(sent, system.redirects(&phrase, 150).await);
    system.database.enable();
    system.await_visits(&phrase, sent, "after a PostgreSQL outage").await;

    // The API restarts with a flush interval longer than the test, then gets
    // SIGTERM while traffic flows: only the shutdown flush writes what it
    // counted, and everything it answered 301 to is counted.
    signal(&api, "-TERM");
    assert_eq!(exit_code(&mut api).await, Some(0), "API exit code\n{}", system.dump_logs());
    system.env.push(("OFFNDAT_VISIT_FLUSH_INTERVAL", "60s".to_owned()));
    let api = system.start_api().await;
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (client, url, answered, stop) =
            (system.client.clone(), system.url(&format!("/{phrase}")), answered.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 301 => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => panic!("unexpected {}", r.status()),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
    };
    eventually(Duration::from_secs(10), "traffic flowing", || async {
        if answered.load(Ordering::Relaxed) >= 50 { Ok(()) } else { Err("not yet".to_owned()) }
    })
    .await;
    assert_eq!(system.visits(&phrase).await.map(|v| v.0), Ok(sent.0 + sent.1), "nothing flushed yet");
    let mut api = api;
    signal(&api, "-TERM");
    assert_eq!(exit_code(&mut api).await, Some(0), "API exit code\n{}", system.dump_logs());
    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("traffic task");
    sent = add(sent, (answered.load(Ordering::Relaxed) as i64, 0));
    system.env.pop();
    let mut api = system.start_api().await;
    system.await_visits(&phrase, sent, "after an API SIGTERM with an unflushed aggregate").await;

    signal(&worker, "-TERM");
    assert_eq!(exit_code(&mut worker).await, Some(0), "worker exit code\n{}", system.dump_logs());
    signal(&api, "-TERM");
    assert_eq!(exit_code(&mut api).await, Some(0), "API exit code\n{}", system.dump_logs());
}

/// The value of `name_and_labels` (exact label text) in a Prometheus text page.
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_visit_metrics_exist_from_the_start_and_move_with_their_actions() {
    let system = System::new().await;
    let mut api = system.start_api().await;
    let metrics = || async {
        system.client.get(system.ops_url("/metrics")).send().await.expect("metrics").text().await.expect("text")
    };
    let start = metrics().await;
    for name in [
        "offndat_visits_recorded_total",
        "offndat_visits_dropped_total{reason=\"shutdown\"}",
        "offndat_visits_uncounted_total{reason=\"head\"}",
        "offndat_visits_uncounted_total{reason=\"prefetch\"}",
        "offndat_orphan_visits_total",
        "offndat_visit_log_dropped_total",
        "offndat_redirect_lookups_total{source=\"l1\"}",
        "offndat_redirect_lookups_total{source=\"db\"}",
        "offndat_redirect_lookups_total{source=\"not_found\"}",
        "offndat_links_created_total{language=\"en\",theme=\"none\"}",
        "offndat_outbox_published_total",
        "offndat_visit_flushes_total{outcome=\"failed\"}",
    ] {
        assert_eq!(metric(&start, name), Some(0.0), "{name} at 0 from the start:\n{start}");
    }

    let phrase = system.create().await;
    let url = system.url(&format!("/{phrase}"));
    assert_eq!(system.client.head(&url).send().await.expect("head").status(), 301);
    let prefetch = system.client.get(&url).header("Sec-Purpose", "prefetch").send().await.expect("prefetch");
    assert_eq!(prefetch.status(), 301);
    system.redirects(&phrase, 3).await;
    let missing = system.client.get(system.url("/no-such-phrase")).send().await.expect("orphan");
    assert_eq!(missing.status(), 404);

    let after = eventually(Duration::from_secs(10), "the flush counted", || async {
        let text = metrics().await;
        if metric(&text, "offndat_visits_recorded_total") == Some(3.0) { Ok(text) } else { Err(text) }
    })
    .await;
    assert_eq!(metric(&after, "offndat_visits_uncounted_total{reason=\"head\"}"), Some(1.0));
    assert_eq!(metric(&after, "offndat_visits_uncounted_total{reason=\"prefetch\"}"), Some(1.0));
    assert_eq!(metric(&after, "offndat_orphan_visits_total"), Some(1.0));
    assert_eq!(metric(&after, "offndat_links_created_total{language=\"en\",theme=\"none\"}"), Some(1.0));
    assert_eq!(metric(&after, "offndat_links_created_total{language=\"pl\",theme=\"none\"}"), Some(0.0));
    assert_eq!(metric(&after, "offndat_redirect_lookups_total{source=\"not_found\"}"), Some(1.0));
    assert_eq!(metric(&after, "offndat_visits_dropped_total{reason=\"shutdown\"}"), Some(0.0));
    let lookups: f64 = ["l1", "l2", "db"]
        .iter()
        .filter_map(|source| metric(&after, &format!("offndat_redirect_lookups_total{{source=\"{source}\"}}")))
        .sum();
    assert!(lookups >= 5.0, "every redirect looked its link up:\n{after}");
    assert!(metric(&after, "offndat_visit_flushes_total{outcome=\"written\"}").is_some_and(|n| n >= 1.0));
    signal(&api, "-TERM");
    assert_eq!(exit_code(&mut api).await, Some(0), "API exit code\n{}", system.dump_logs());
}

#[tokio::test]
async fn the_api_and_the_worker_started_together_on_a_fresh_database_are_ready_within_30_s() {
    // As compose and Kubernetes start them: at once, on a database that does not exist yet.
    let system = System::new().await;
    let mut worker = system.start_worker();
    let mut api = system.command("offndat-api", "api.log").spawn().expect("spawn api");
    let ready = |url: String| {
        let client = system.client.clone();
        async move {
            match client.get(&url).send().await {
                Ok(r) if r.status() == 200 => Ok(()),
                Ok(r) => Err(format!("{url}: {} {}", r.status(), r.text().await.unwrap_or_default())),
                Err(e) => Err(format!("{url}: {e}")),
            }
        }
    };
    eventually(Duration::from_secs(30), "the API and the worker are ready", || async {
        ready(system.ops_url("/health/ready")).await?;
        ready(system.worker_url("/health/ready")).await
    })
    .await;
    assert_eq!(exit_code_now(&mut worker), None, "the worker is still running\n{}", system.dump_logs());

    // And the worker does its job: a redirect is counted.
    let phrase = system.create().await;
    let sent = system.redirects(&phrase, 2).await;
    system.await_visits(&phrase, sent, "after a start together").await;

    signal(&worker, "-TERM");
    assert_eq!(exit_code(&mut worker).await, Some(0), "worker exit code\n{}", system.dump_logs());
    signal(&api, "-TERM");
    assert_eq!(exit_code(&mut api).await, Some(0), "API exit code\n{}", system.dump_logs());
}

/// The exit code if the process has already exited.
fn exit_code_now(child: &mut Child) -> Option<i32> {
    child.try_wait().expect("try_wait").map(|status| status.code().unwrap_or(-1))
}
