//! The API side of the events pipeline: visits recorded through the buffer, outbox
//! rows relayed to RabbitMQ, and both surviving a broker outage.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use offndat_test_support::{AmqpNamespace, TcpProxy, amqp_url};
use serde_json::Value;

use crate::helpers::{TestApp, TestDatabase, eventually, spawn_in, spawn_with};

/// A queue of the test's own, bound to every event of a namespace.
struct Tap {
    _connection: Connection,
    _channel: Channel,
    consumer: Consumer,
}

/// A message as the tap saw it.
#[derive(Debug)]
struct Seen {
    event_type: String,
    message_id: String,
    delivery_mode: Option<u8>,
    traceparent: Option<String>,
    body: Value,
}

impl Tap {
    async fn new(namespace: &AmqpNamespace) -> Self {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("amqp");
        let channel = connection.create_channel().await.expect("channel");
        let topology = namespace.topology();
        topology.declare(&channel).await.expect("topology");
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.name().clone(),
                topology.exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let consumer = channel
            .basic_consume(queue.name().clone(), "tap".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .expect("consume");
        Self { _connection: connection, _channel: channel, consumer }
    }

    async fn next(&mut self) -> Seen {
        let delivery = tokio::time::timeout(Duration::from_secs(20), self.consumer.next())
            .await
            .expect("a message within 20 s")
            .expect("stream open")
            .expect("delivery");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
        let properties = &delivery.properties;
        let traceparent = properties.headers().as_ref().and_then(|h| match h.inner().get("traceparent") {
            Some(AMQPValue::LongString(s)) => Some(s.to_string()),
            _ => None,
        });
        Seen {
            event_type: properties.kind().as_ref().map(ToString::to_string).unwrap_or_default(),
            message_id: properties.message_id().as_ref().map(ToString::to_string).unwrap_or_default(),
            delivery_mode: *properties.delivery_mode(),
            traceparent,
            body: serde_json::from_slice(&delivery.data).expect("json body"),
        }
    }

    /// Visits counted in `link.visited` messages until `total` are seen.
    async fn visits(&mut self, total: u64) -> u64 {
        let mut seen = 0;
        while seen < total {
            let message = self.next().await;
            if message.event_type == "link.visited" {
                seen += message.body["links"]
                    .as_array()
                    .expect("links")
                    .iter()
                    .map(|l| l["visits"].as_u64().expect("visits"))
                    .sum::<u64>();
            }
        }
        seen
    }
}

/// ip_address, user_agent, referrer, potential_bot.
type StoredVisit = (Option<String>, Option<String>, Option<String>, bool);

async fn redirect(app: &TestApp, phrase: &str, user_agent: &str, referrer: &str) {
    let response = app
        .client
        .get(app.url(&format!("/{phrase}")))
        .header("User-Agent", user_agent)
        .header("Referer", referrer)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 301);
}

#[tokio::test]
async fn visits_are_recorded_with_their_details_and_relayed() {
    let db = TestDatabase::new();
    let namespace = AmqpNamespace::new();
    let mut tap = Tap::new(&namespace).await;
    let app = spawn_in(&db, namespace, &[]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;

    let created = tap.next().await;
    assert_eq!(created.event_type, "link.created");
    assert_eq!(created.delivery_mode, Some(2));
    assert_eq!(created.body["phrase"], phrase.as_str());
    uuid::Uuid::parse_str(&created.message_id).expect("message id is the outbox row id");
    let traceparent = created.traceparent.expect("trace context header");
    assert!(traceparent.starts_with("00-") && traceparent.len() == 55, "{traceparent}");

    redirect(&app, &phrase, "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0", "https://ref.example/a").await;
    redirect(&app, &phrase, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "").await;
    let long_agent = format!("Agent {}", "x".repeat(5000));
    redirect(&app, &phrase, &long_agent, "https://ref.example/b").await;
    assert_eq!(tap.visits(3).await, 3);

    let mut conn = db.connect().await;
    let rows: Vec<StoredVisit> =
        sqlx::query_as("SELECT ip_address, user_agent, referrer, potential_bot FROM visits ORDER BY visited_at, id")
            .fetch_all(&mut conn)
            .await
            .expect("visits");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].0.as_deref(), Some("127.0.0.0"), "IPv4 anonymised by default");
    assert_eq!(rows[0].1.as_deref(), Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"));
    assert_eq!(rows[0].2.as_deref(), Some("https://ref.example/a"));
    assert!(!rows[0].3);
    assert!(rows[1].3, "the crawler is flagged");
    assert_eq!(rows[1].2, None, "an empty referrer is stored as null");
    assert_eq!(rows[2].1.as_ref().map(|ua| ua.chars().count()), Some(512), "user agents are truncated, not refused");

    let body: Value = app.get(&format!("/v1/links/{phrase}")).send().await.expect("r").json().await.expect("j");
    let recent = body["recentVisits"].as_array().expect("recent");
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0]["userAgent"].as_str().map(|s| s.chars().count()), Some(512), "newest first");
    assert_eq!(recent[1]["potentialBot"], true);
    assert_eq!(recent[2]["referrer"], "https://ref.example/a");
    assert_eq!(recent[2]["ipAddress"], "127.0.0.0");
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let db = TestDatabase::new();
    let trusting = spawn_with(&db, &["--trusted-proxies=127.0.0.1", "--anonymize-ips=false"]).await;
    let phrase = trusting.create("https://example.com/", 0, 0, 0).await;
    let forwarded = |app: &TestApp| {
        app.client.get(app.url(&format!("/{phrase}"))).header("X-Forwarded-For", "6.6.6.6, 203.0.113.9").send()
    };
    assert_eq!(forwarded(&trusting).await.expect("request").status(), 301);
    let other = spawn_with(&db, &["--anonymize-ips=false"]).await;
    assert_eq!(forwarded(&other).await.expect("request").status(), 301);

    let ips = eventually(Duration::from_secs(10), "both visits written", || async {
        let mut conn = db.connect().await;
        let ips: Vec<Option<String>> = sqlx::query_scalar("SELECT ip_address FROM visits ORDER BY ip_address")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if ips.len() == 2 { Ok(ips) } else { Err(format!("{ips:?}")) }
    })
    .await;
    // Behind a trusted proxy, the nearest untrusted hop; otherwise the TCP peer.
    assert_eq!(ips, [Some("127.0.0.1".to_owned()), Some("203.0.113.9".to_owned())]);
}

#[tokio::test]
async fn a_full_buffer_drops_and_counts_visits_without_slowing_redirects() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--visit-buffer-capacity=2", "--visit-batch-size=1"]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    let dropped_before = dropped(&app).await;

    // Hold the visits table so the flusher's insert waits: the buffer fills up.
    let mut locker = db.connect().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE visits IN EXCLUSIVE MODE").execute(&mut locker).await.expect("lock");
    for _ in 0..20 {
        redirect(&app, &phrase, "agent", "").await;
    }
    let dropped_during = dropped(&app).await - dropped_before;
    sqlx::raw_sql("COMMIT").execute(&mut locker).await.expect("unlock");

    // At most the batch in the flusher's hands and two buffered visits got through.
    assert!(dropped_during >= 17, "dropped {dropped_during}");
    let written = eventually(Duration::from_secs(10), "buffered visits written", || async {
        let n = db.count("visits").await;
        if n + dropped_during as i64 == 20 { Ok(n) } else { Err(format!("{n} written, {dropped_during} dropped")) }
    })
    .await;
    assert!(written >= 1);
}

/// `offndat_visits_dropped_total` as /metrics shows it (process-wide).
async fn dropped(app: &TestApp) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with("offndat_visits_dropped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn shutdown_drains_the_buffer_and_relays_it() {
    let db = TestDatabase::new();
    let namespace = AmqpNamespace::new();
    let mut tap = Tap::new(&namespace).await;
    // A flush interval far longer than the test: only the shutdown drain writes.
    let app = spawn_in(&db, namespace, &["--visit-flush-interval=1h"]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    for _ in 0..5 {
        redirect(&app, &phrase, "agent", "").await;
    }
    assert_eq!(db.count("visits").await, 0, "nothing flushed before shutdown");
    let namespace_guard = app.stop_keeping_namespace().await;
    assert_eq!(db.count("visits").await, 5);
    assert_eq!(tap.visits(5).await, 5, "the relay published the drained visits before exiting");
    drop(namespace_guard);
}

#[tokio::test]
async fn the_broker_being_down_stops_nothing_and_loses_nothing() {
    let db = TestDatabase::new();
    let namespace = AmqpNamespace::new();
    let mut tap = Tap::new(&namespace).await;
    let broker = TcpProxy::to_port(5672).await;
    broker.disable();
    let amqp = format!("--amqp-url=amqp://guest:guest@{}/%2f", broker.address());
    let app = spawn_in(&db, namespace, &[&amqp]).await;

    let mut phrases = Vec::new();
    for _ in 0..5 {
        phrases.push(app.create("https://example.com/", 0, 0, 0).await);
    }
    for phrase in &phrases {
        redirect(&app, phrase, "agent", "").await;
    }
    eventually(Duration::from_secs(10), "visits written while the broker is down", || async {
        let n = db.count("visits").await;
        if n == 5 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;
    assert!(db.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").await >= 6);

    broker.enable();
    let mut created = 0;
    let mut visits = 0;
    while created < 5 || visits < 5 {
        let message = tap.next().await;
        match message.event_type.as_str() {
            "link.created" => created += 1,
            "link.visited" => {
                visits += message.body["links"]
                    .as_array()
                    .expect("links")
                    .iter()
                    .map(|l| l["visits"].as_u64().expect("n"))
                    .sum::<u64>()
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, visits), (5, 5));
    eventually(Duration::from_secs(10), "outbox rows marked published", || async {
        let pending = db.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").await;
        if pending == 0 { Ok(()) } else { Err(pending.to_string()) }
    })
    .await;
}

#[tokio::test]
async fn replicas_share_the_outbox_and_every_row_is_published() {
    let db = TestDatabase::new();
    let namespace = AmqpNamespace::new();
    let shared = format!("--amqp-namespace={}", namespace.name);
    let mut tap = Tap::new(&namespace).await;
    let first = spawn_in(&db, namespace, &[]).await;
    let second = spawn_with(&db, &[&shared]).await;

    let mut phrases = std::collections::HashSet::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { &first } else { &second };
        phrases.insert(app.create("https://example.com/", 0, 0, 0).await);
    }
    let mut ids = std::collections::HashSet::new();
    let mut published = std::collections::HashSet::new();
    while published.len() < 40 {
        let message = tap.next().await;
        assert_eq!(message.event_type, "link.created");
        ids.insert(message.message_id);
        published.insert(message.body["phrase"].as_str().expect("phrase").to_owned());
    }
    assert_eq!(published, phrases);
    assert_eq!(ids.len(), 40);
    eventually(Duration::from_secs(10), "every row marked published", || async {
        let pending = db.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").await;
        if pending == 0 { Ok(()) } else { Err(pending.to_string()) }
    })
    .await;
}
