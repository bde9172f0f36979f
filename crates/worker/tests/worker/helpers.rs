//! Running a worker in-process or as a process, publishing test messages, and
//! reading what the worker did.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use offndat_infrastructure::amqp::Topology;
use offndat_test_support::{AmqpNamespace, Binary, Metrics, Process, TestDatabase, amqp_url, eventually};
use offndat_worker::Worker;
use offndat_worker::config::WorkerConfig;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Generous: CI machines with two cores run many of these tests at once.
pub const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: WorkerConfig,
}

/// A worker configuration for tests: port 0, short timeouts, `extra` flags last.
pub fn config(database_url: &str, amqp: &str, namespace: &str, extra: &[&str]) -> WorkerConfig {
    let mut args = vec![
        "offndat-worker",
        "--worker-listen",
        "127.0.0.1:0",
        "--database-url",
        database_url,
        "--amqp-url",
        amqp,
        "--amqp-namespace",
        namespace,
        "--worker-batch-timeout",
        "10ms",
        "--database-acquire-timeout",
        "500ms",
        "--database-startup-timeout",
        "10s",
        "--shutdown-timeout",
        "10s",
    ];
    args.extend_from_slice(extra);
    Args::try_parse_from(args).expect("valid worker flags").config
}

/// A worker running in this process.
pub struct TestWorker {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestWorker {
    /// Builds and runs a worker on its database and namespace.
    pub async fn spawn(db: &TestDatabase, namespace: &AmqpNamespace) -> Self {
        Self::spawn_with(config(&db.url, &amqp_url(), &namespace.name, &[])).await
    }

    pub async fn spawn_with(config: WorkerConfig) -> Self {
        init_logs();
        let worker = Worker::build(config).await.expect("worker builds");
        let address = worker.local_addr().expect("bound");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        Self { address, client, shutdown, handle: Some(handle) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `GET path`: status and body as JSON (or `null`).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        get_json(&self.client, &self.url(path)).await
    }

    /// Waits until `/health/ready` answers 200: PostgreSQL up, consumers connected.
    pub async fn ready(&self) {
        wait_ready(&self.client, &self.url("/health/ready")).await;
    }

    /// Stops the worker and asserts it stopped cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("running");
        let result = tokio::time::timeout(DEADLINE, handle).await.expect("stops in time").expect("no panic");
        result.expect("clean stop");
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = client.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

pub async fn wait_ready(client: &reqwest::Client, url: &str) {
    eventually(DEADLINE, "worker ready", || async {
        match client.get(url).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(response.text().await.unwrap_or_default()),
            Err(error) => Err(error.to_string()),
        }
    })
    .await;
}

/// Logs of in-process workers, when `OFFNDAT_TEST_LOG` is set (e.g. `debug`).
fn init_logs() {
    if let Ok(filter) = std::env::var("OFFNDAT_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
}

/// Publishes to a namespace's exchange with confirms, as the outbox relay does.
pub struct Publisher {
    connection: Connection,
    channel: Channel,
    topology: Topology,
}

impl Publisher {
    /// Connects and declares the namespace's topology (so nothing published
    /// before a worker starts is unroutable).
    pub async fn new(namespace: &AmqpNamespace) -> Self {
        let connection =
            Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("connect to RabbitMQ");
        let topology = namespace.topology();
        topology.declare(&connection).await.expect("declare topology");
        let channel = connection.create_channel().await.expect("channel");
        channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
        Self { connection, channel, topology }
    }

    /// Publishes a raw message, persistent, and waits for the broker's confirm.
    pub async fn publish_raw(&self, routing_key: &str, message_id: Option<&str>, kind: Option<&str>, body: &[u8]) {
        let mut properties =
            BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
        if let Some(id) = message_id {
            properties = properties.with_message_id(id.into());
        }
        if let Some(kind) = kind {
            properties = properties.with_type(kind.into());
        }
        self.channel
            .basic_publish(
                self.topology.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirmed");
    }

    /// Publishes a `link.visited` message with id `message_id`.
    pub async fn visited(&self, message_id: Uuid, visits: &[(Uuid, u32)]) {
        let body = visited_body(visits, Utc::now());
        self.publish_raw("link.visited", Some(&message_id.to_string()), Some("link.visited"), &body).await;
    }

    /// Publishes a `link.created` message for `link_id`.
    pub async fn created(&self, link_id: Uuid) {
        let body = json!({
            "version": 1,
            "linkId": link_id,
            "phrase": format!("test-{}", link_id.simple()),
            "targetUrl": "https://example.com/",
            "languageId": 0,
            "themeId": 0,
            "createdAt": Utc::now(),
        });
        let body = serde_json::to_vec(&body).expect("json");
        self.publish_raw("link.created", Some(&Uuid::now_v7().to_string()), Some("link.created"), &body).await;
    }

    /// Messages ready (not delivered, or returned) in `queue`.
    pub async fn ready_count(&self, queue: &str) -> u32 {
        // A passive declare of a missing queue closes the channel: use a fresh one.
        let channel = self.connection.create_channel().await.expect("channel");
        let queue = channel
            .queue_declare(queue.into(), QueueDeclareOptions::default().passive(), FieldTable::default())
            .await
            .expect("queue exists");
        let _ = channel.close(200, "done".into()).await;
        queue.message_count()
    }
}

/// A `link.visited` body.
pub fn visited_body(visits: &[(Uuid, u32)], at: DateTime<Utc>) -> Vec<u8> {
    let links: Vec<_> =
        visits.iter().map(|(id, n)| json!({ "linkId": id, "visits": n, "lastVisitedAt": at })).collect();
    serde_json::to_vec(&json!({ "version": 1, "links": links })).expect("json")
}

/// Inserts a link directly and returns its id.
pub async fn insert_link(db: &TestDatabase) -> Uuid {
    insert_link_with_id(db, Uuid::now_v7()).await
}

/// Makes PostgreSQL fail every write of `link_id`'s summary with `sqlstate`
/// (`P0001`, a plain exception, is a refusal; `40001`, a serialization failure,
/// is worth retrying), through a trigger named `name`; drop it to stop.
pub async fn fail_summary_writes(db: &TestDatabase, link_id: Uuid, name: &str, sqlstate: &str) {
    let mut conn = db.connect().await;
    for statement in [
        format!(
            "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'failed by the test' USING ERRCODE = '{sqlstate}'; END; $$"
        ),
        format!(
            "CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON visit_summaries
             FOR EACH ROW WHEN (NEW.link_id = '{link_id}') EXECUTE FUNCTION {name}()"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await.expect("create trigger");
    }
}

/// A batch split over a worker's two lanes (the default): a link in each, the
/// second's summary writes failed by trigger `trigger` with `sqlstate`, and
/// three visit messages (the good link 1, the failing one `failing_visits`,
/// the good one 2) published before the worker starts, so they arrive in one
/// batch. Returns the links, the publisher and the started worker.
pub async fn batch_with_a_failing_lane(
    db: &TestDatabase,
    namespace: &AmqpNamespace,
    trigger: &str,
    sqlstate: &str,
    failing_visits: u32,
) -> (Uuid, Uuid, Publisher, TestWorker) {
    let (good, failing) = (insert_link_in_lane(db, 0, 2).await, insert_link_in_lane(db, 1, 2).await);
    fail_summary_writes(db, failing, trigger, sqlstate).await;
    let publisher = Publisher::new(namespace).await;
    publisher.visited(Uuid::now_v7(), &[(good, 1)]).await;
    publisher.visited(Uuid::now_v7(), &[(failing, failing_visits)]).await;
    publisher.visited(Uuid::now_v7(), &[(good, 2)]).await;
    let worker = TestWorker::spawn(db, namespace).await;
    (good, failing, publisher, worker)
}

/// A link whose visits go to `lane` of `lanes` (see `ApplyEvents::execute`).
pub async fn insert_link_in_lane(db: &TestDatabase, lane: usize, lanes: usize) -> Uuid {
    let id = std::iter::repeat_with(Uuid::now_v7)
        .find(|id| offndat_application::visit_tally::visit_partition(id) % lanes == lane)
        .expect("an id");
    insert_link_with_id(db, id).await
}

async fn insert_link_with_id(db: &TestDatabase, id: Uuid) -> Uuid {
    let mut conn = db.connect().await;
    sqlx::query("INSERT INTO links (id, phrase, target_url, language_id, theme_id, created_at) VALUES ($1, $2, 'https://example.com/', 0, 0, now())")
        .bind(id)
        .bind(format!("test-{}", id.simple()))
        .execute(&mut conn)
        .await
        .expect("insert link");
    id
}

/// A link's total visits, or -1 without a summary row.
pub async fn total(db: &TestDatabase, link_id: Uuid) -> i64 {
    db.scalar(&format!("SELECT COALESCE((SELECT total_visits FROM visit_summaries WHERE link_id = '{link_id}'), -1)"))
        .await
}

/// Waits until `link_id`'s total is `expected`.
pub async fn await_total(db: &TestDatabase, link_id: Uuid, expected: i64) {
    eventually(DEADLINE, &format!("total of {link_id} = {expected}"), || async move {
        let actual = total(db, link_id).await;
        if actual == expected { Ok(()) } else { Err(actual.to_string()) }
    })
    .await;
}

/// The worker's `/metrics`, parsed.
pub async fn metrics(worker: &TestWorker) -> Metrics {
    Metrics::get(&worker.client, &worker.url("/metrics")).await
}

/// The worker's counter of messages from `queue` with `outcome` (0 when absent).
pub fn counter(metrics: &Metrics, queue: &str, outcome: &str) -> u64 {
    metrics.value(&format!("offndat_worker_messages_total{{queue=\"{queue}\",outcome=\"{outcome}\"}}")).unwrap_or(0.0)
        as u64
}

/// The worker binary, configured by environment variables: on `db` and
/// `namespace`, health and metrics on a port it picks and reports, `env` last.
pub fn worker_process(db: &TestDatabase, namespace: &AmqpNamespace, env: &[(&str, &str)]) -> Process {
    Binary::at(env!("CARGO_BIN_EXE_offndat-worker"))
        .command()
        .env("OFFNDAT_DATABASE_URL", &db.url)
        .env("OFFNDAT_AMQP_URL", amqp_url())
        .env("OFFNDAT_AMQP_NAMESPACE", &namespace.name)
        .env("OFFNDAT_WORKER_LISTEN", "127.0.0.1:0")
        .env("OFFNDAT_WORKER_BATCH_TIMEOUT", "10ms")
        .env("OFFNDAT_LOG", "info")
        .env("OFFNDAT_LOG_FORMAT", "text")
        .envs(env.iter().copied())
        .spawn()
}

/// A URL on a worker process's health and metrics listener, once it listens.
pub async fn process_url(worker: &Process, path: &str) -> String {
    format!("http://{}{path}", worker.address("address").await)
}

impl Publisher {
    /// Publishes many `link.visited` messages, waiting for all confirms at the end
    /// rather than one by one.
    pub async fn visited_many(&self, messages: &[(Uuid, Vec<(Uuid, u32)>)]) {
        let now = Utc::now();
        for (id, visits) in messages {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(id.to_string().into())
                .with_type("link.visited".into());
            // The confirm is awaited below, with all the others.
            let _confirm = self
                .channel
                .basic_publish(
                    self.topology.exchange.as_str().into(),
                    "link.visited".into(),
                    BasicPublishOptions::default(),
                    &visited_body(visits, now),
                    properties,
                )
                .await
                .expect("publish");
        }
        let returned = self.channel.wait_for_confirms().await.expect("confirmed");
        assert!(returned.is_empty(), "every message routed");
    }
}
