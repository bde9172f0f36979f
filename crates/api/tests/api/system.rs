//! The whole system as processes: `offndat-api` and `offndat-worker` binaries,
//! counting every redirect exactly once, bots apart, across a worker SIGKILL, a
//! RabbitMQ outage, a PostgreSQL outage and an API SIGTERM with an unflushed
//! aggregate, during traffic.
//!
//! Needs both binaries built (`cargo test --workspace` builds them).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use offndat_test_support::{Binary, Launch, Log, Metrics, Process, TcpProxy};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::helpers::{AmqpNamespace, TestDatabase, eventually};

pub(crate) const KEY: &str = "system-key-0123456789abcdef0123456789";
/// The public base URL of the system's API. Its own address is not known before it
/// starts (it binds port 0), and need not be: requests go to the address it
/// reports, and short URLs are read relative to this base.
pub(crate) const PUBLIC_BASE: &str = "http://short.test";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn add((a, b): (i64, i64), (c, d): (i64, i64)) -> (i64, i64) {
    (a + c, b + d)
}

pub(crate) fn api_binary() -> Binary {
    Binary::at(env!("CARGO_BIN_EXE_offndat-api"))
}

/// The API binary on `db` and `namespace`, both listeners on ports it picks and
/// reports, its short URLs under `base`; callers add the rest.
pub(crate) fn api_command(db: &TestDatabase, namespace: &AmqpNamespace, base: &str) -> Launch {
    api_binary()
        .command()
        .env("OFFNDAT_AMQP_NAMESPACE", &namespace.name)
        .env("OFFNDAT_LISTEN", "127.0.0.1:0")
        .env("OFFNDAT_OPS_LISTEN", "127.0.0.1:0")
        .env("OFFNDAT_PUBLIC_BASE_URL", base)
        .env("OFFNDAT_DATABASE_URL", &db.url)
}

pub(crate) fn worker_binary() -> Binary {
    Binary::beside(env!("CARGO_BIN_EXE_offndat-api"), "offndat-worker")
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
    /// Every API process's output, restarts included; the same for the worker.
    api_log: Log,
    worker_log: Log,
    /// Where the API started last listens: public and operations listeners. Every
    /// start binds port 0 afresh and reports what it bound.
    api: Mutex<Option<(SocketAddr, SocketAddr)>>,
    /// Where the worker started last serves health and metrics.
    worker: Mutex<Option<SocketAddr>>,
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
            api_log: Log::default(),
            worker_log: Log::default(),
            api: Mutex::new(None),
            worker: Mutex::new(None),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    fn launch(&self, binary: &Binary, log: &Log) -> Launch {
        binary
            .command()
            .env("OFFNDAT_DATABASE_URL", self.db.url_via(self.database.address()))
            .env("OFFNDAT_AMQP_URL", format!("amqp://guest:guest@{}/%2f", self.broker.address()))
            .env("OFFNDAT_AMQP_NAMESPACE", &self.namespace.name)
            .env("OFFNDAT_API_KEYS", KEY)
            .env("OFFNDAT_LISTEN", "127.0.0.1:0")
            .env("OFFNDAT_OPS_LISTEN", "127.0.0.1:0")
            .env("OFFNDAT_PUBLIC_BASE_URL", PUBLIC_BASE)
            .env("OFFNDAT_WORKER_LISTEN", "127.0.0.1:0")
            .env("OFFNDAT_VISIT_FLUSH_INTERVAL", "50ms")
            .env("OFFNDAT_RATE_LIMIT_ENABLED", "false")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .log_to(log)
    }

    /// Starts the API without waiting for it.
    pub(crate) fn spawn_api(&self) -> Process {
        self.launch(&api_binary(), &self.api_log).spawn()
    }

    /// Starts the worker without waiting for it.
    pub(crate) fn spawn_worker(&self) -> Process {
        self.launch(&worker_binary(), &self.worker_log).spawn()
    }

    /// Takes the addresses `api` listens on, once it does.
    async fn adopt_api(&self, api: &Process) {
        let listening = api.listening().await;
        *self.api.lock().expect("lock") = Some((listening.address("address"), listening.address("ops_address")));
    }

    /// Takes the address `worker` serves on, once it does.
    async fn adopt_worker(&self, worker: &Process) {
        *self.worker.lock().expect("lock") = Some(worker.address("address").await);
    }

    /// Starts the API and waits until it is ready.
    pub(crate) async fn start_api(&self) -> Process {
        let api = self.spawn_api();
        self.adopt_api(&api).await;
        api.ready("ops_address", &self.client).await;
        api
    }

    /// Starts the worker and waits until it listens (ready comes later, once the
    /// API has applied the migrations).
    pub(crate) async fn start_worker(&self) -> Process {
        let worker = self.spawn_worker();
        self.adopt_worker(&worker).await;
        worker
    }

    fn api_address(&self) -> (SocketAddr, SocketAddr) {
        self.api.lock().expect("lock").expect("the API was started")
    }

    /// A URL on the API's operations listener (health detail, metrics).
    pub(crate) fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api_address().1)
    }

    /// A URL on the worker's health and metrics listener.
    pub(crate) fn worker_url(&self, path: &str) -> String {
        let address = self.worker.lock().expect("lock").expect("the worker was started");
        format!("http://{address}{path}")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api_address().0)
    }

    /// The API's `/metrics`, parsed.
    pub(crate) async fn api_metrics(&self) -> Metrics {
        Metrics::get(&self.client, &self.ops_url("/metrics")).await
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
        url.strip_prefix(&format!("{PUBLIC_BASE}/")).expect("under the public base").to_owned()
    }

    /// Sends `n` redirects, 8 at a time, every fourth from a crawler; all must
    /// answer 301. Returns (humans, bots) sent.
    async fn redirects(&self, phrase: &str, n: usize) -> (i64, i64) {
        let (_, open) = watch::channel(true);
        self.redirects_held(phrase, n, n, Arc::default(), open).await
    }

    /// As `redirects`, but the ones from the `held_at`-th on wait until `go` is
    /// true; `answered` counts the 301s as they come.
    async fn redirects_held(
        &self,
        phrase: &str,
        n: usize,
        held_at: usize,
        answered: Arc<AtomicUsize>,
        go: watch::Receiver<bool>,
    ) -> (i64, i64) {
        let url = Arc::new(self.url(&format!("/{phrase}")));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let (client, url, answered, mut go) = (self.client.clone(), url.clone(), answered.clone(), go.clone());
            tasks.spawn(async move {
                for i in (worker..n).step_by(8) {
                    if i >= held_at {
                        go.wait_for(|go| *go).await.expect("the gate is kept");
                    }
                    let agent = if i % 4 == 0 { BOT } else { "system-test" };
                    let response = client.get(url.as_str()).header("User-Agent", agent).send().await;
                    assert_eq!(response.expect("redirect").status(), 301);
                    answered.fetch_add(1, Ordering::SeqCst);
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

    /// What every API process of this system wrote so far.
    pub(crate) fn api_log(&self) -> String {
        self.api_log.text()
    }

    pub(crate) fn dump_logs(&self) -> String {
        format!("--- api\n{}--- worker\n{}", self.api_log.text(), self.worker_log.text())
    }

    /// SIGTERM to `process` and a clean exit, or the logs of both.
    pub(crate) async fn stop(&self, mut process: Process) {
        process.signal("TERM");
        assert_eq!(process.exit_code().await, Some(0), "exit code\n{}", self.dump_logs());
    }
}

#[tokio::test]
async fn every_redirect_is_counted_once_across_kills_outages_and_restarts() {
    let mut system = System::new().await;
    let api = system.start_api().await;
    let mut worker = system.start_worker().await;
    let phrase = system.create().await;

    // Plain traffic.
    let mut sent = system.redirects(&phrase, 200).await;
    system.await_visits(&phrase, sent, "after plain traffic").await;

    // The worker is SIGKILLed while visits flow, then restarted: the traffic
    // holds at half way until the kill is done.
    let (answered, (go, held)) = (Arc::new(AtomicUsize::new(0)), watch::channel(false));
    let traffic = system.redirects_held(&phrase, 300, 150, answered.clone(), held);
    let kill = async {
        eventually(Duration::from_secs(30), "half the traffic answered", || async {
            match answered.load(Ordering::SeqCst) {
                150 => Ok(()),
                n => Err(n.to_string()),
            }
        })
        .await;
        worker.signal("KILL");
        go.send_replace(true);
    };
    let (during, ()) = tokio::join!(traffic, kill);
    sent = add(sent, during);
    assert_eq!(worker.exit_code().await, None, "killed by a signal");
    let worker = system.start_worker().await;
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
    system.stop(api).await;
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
                    // Refused once the API has stopped listening. Not a wait for
                    // an effect: a pause, so the loop does not spin until the
                    // test tells it to stop.
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
    system.stop(api).await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("traffic task");
    sent = add(sent, (answered.load(Ordering::Relaxed) as i64, 0));
    system.env.pop();
    let api = system.start_api().await;
    system.await_visits(&phrase, sent, "after an API SIGTERM with an unflushed aggregate").await;

    system.stop(worker).await;
    system.stop(api).await;
}

#[tokio::test]
async fn the_visit_metrics_exist_from_the_start_and_move_with_their_actions() {
    let system = System::new().await;
    let api = system.start_api().await;
    let start = system.api_metrics().await;
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
        assert_eq!(start.value(name), Some(0.0), "{name} at 0 from the start:\n{start}");
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
        let page = system.api_metrics().await;
        if page.value("offndat_visits_recorded_total") == Some(3.0) { Ok(page) } else { Err(page.to_string()) }
    })
    .await;
    assert_eq!(after.value("offndat_visits_uncounted_total{reason=\"head\"}"), Some(1.0));
    assert_eq!(after.value("offndat_visits_uncounted_total{reason=\"prefetch\"}"), Some(1.0));
    assert_eq!(after.value("offndat_orphan_visits_total"), Some(1.0));
    assert_eq!(after.value("offndat_links_created_total{language=\"en\",theme=\"none\"}"), Some(1.0));
    assert_eq!(after.value("offndat_links_created_total{language=\"pl\",theme=\"none\"}"), Some(0.0));
    assert_eq!(after.value("offndat_redirect_lookups_total{source=\"not_found\"}"), Some(1.0));
    assert_eq!(after.value("offndat_visits_dropped_total{reason=\"shutdown\"}"), Some(0.0));
    let lookups: f64 = ["l1", "l2", "db"]
        .iter()
        .filter_map(|source| after.value(&format!("offndat_redirect_lookups_total{{source=\"{source}\"}}")))
        .sum();
    assert!(lookups >= 5.0, "every redirect looked its link up:\n{after}");
    assert!(after.value("offndat_visit_flushes_total{outcome=\"written\"}").is_some_and(|n| n >= 1.0));
    system.stop(api).await;
}

#[tokio::test]
async fn the_api_and_the_worker_started_together_on_a_fresh_database_are_ready_within_30_s() {
    // As compose and Kubernetes start them: at once, on a database that does not exist yet.
    let system = System::new().await;
    let mut worker = system.spawn_worker();
    let api = system.spawn_api();
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
        // Each reports its addresses once it has bound them: the API only after
        // PostgreSQL answered and the migrations ran.
        let (Some(api_at), Some(worker_at)) = (api.listening_now(), worker.listening_now()) else {
            return Err(format!("not listening yet\n{}", system.dump_logs()));
        };
        ready(format!("http://{}/health/ready", api_at.address("ops_address"))).await?;
        ready(format!("http://{}/health/ready", worker_at.address("address"))).await
    })
    .await;
    assert_eq!(worker.exited(), None, "the worker is still running\n{}", system.dump_logs());
    system.adopt_api(&api).await;
    system.adopt_worker(&worker).await;

    // And the worker does its job: a redirect is counted.
    let phrase = system.create().await;
    let sent = system.redirects(&phrase, 2).await;
    system.await_visits(&phrase, sent, "after a start together").await;

    system.stop(worker).await;
    system.stop(api).await;
}
