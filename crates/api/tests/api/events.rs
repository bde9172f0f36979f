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
        let topology = namespace.topology();
        topology.declare(&connection).await.expect("topology");
        let channel = connection.create_channel().await.expect("channel");
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

    /// Visits counted in `link.visited` messages until `total` are seen; returns
    /// the count and the messages.
    async fn visits(&mut self, total: u64) -> (u64, Vec<Value>) {
        let mut seen = 0;
        let mut bodies = Vec::new();
        while seen < total {
            let message = self.next().await;
            if message.event_type == "link.visited" {
                seen += visits_in(&message.body);
                bodies.push(message.body);
            }
        }
        (seen, bodies)
    }
}

/// The visits a `link.visited` (version 2) body counts: every hour's humans and bots.
fn visits_in(body: &Value) -> u64 {
    assert_eq!(body["version"], 2, "{body}");
    body["links"]
        .as_array()
        .expect("links")
        .iter()
        .flat_map(|l| l["hours"].as_array().expect("hours"))
        .map(|h| h["human"].as_u64().expect("human") + h["bot"].as_u64().expect("bot"))
        .sum()
}

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

    let link_id = created.body["linkId"].as_str().expect("link id").to_owned();

    redirect(
        &app,
        &phrase,
        "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
        "https://Ref.Example/a",
    )
    .await;
    redirect(&app, &phrase, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "").await;
    let long_agent = format!("Agent {}", "x".repeat(5000));
    redirect(&app, &phrase, &long_agent, "https://ref.example/b").await;
    let (visits, bodies) = tap.visits(3).await;
    assert_eq!(visits, 3);

    // Folded per link and hour: humans and bots apart, each dimension summing up.
    let mut hours = Vec::new();
    let mut recent = Vec::new();
    for body in &bodies {
        for link in body["links"].as_array().expect("links") {
            assert_eq!(link["linkId"], link_id.as_str());
            hours.extend(link["hours"].as_array().expect("hours").iter().cloned());
            recent.extend(link["recent"].as_array().expect("recent").iter().cloned());
        }
    }
    let sum = |key: &str| hours.iter().map(|h| h[key].as_u64().expect("count")).sum::<u64>();
    assert_eq!((sum("human"), sum("bot")), (2, 1));
    // Summed over the messages: visits may land in different flushes.
    let values = |dimension: &str| -> Vec<(String, u64, u64)> {
        let mut sums: std::collections::BTreeMap<String, (u64, u64)> = std::collections::BTreeMap::new();
        for value in hours.iter().flat_map(|h| h[dimension].as_array().expect("dimension").iter()) {
            let entry = sums.entry(value["value"].as_str().expect("value").to_owned()).or_default();
            entry.0 += value["human"].as_u64().expect("human");
            entry.1 += value["bot"].as_u64().expect("bot");
        }
        sums.into_iter().map(|(value, (human, bot))| (value, human, bot)).collect()
    };
    assert_eq!(values("referrers"), [("".to_owned(), 0, 1), ("ref.example".to_owned(), 2, 0)], "hosts, lower-cased");
    assert_eq!(values("devices"), [("bot".to_owned(), 0, 1), ("desktop".to_owned(), 1, 0), ("other".to_owned(), 1, 0)]);
    assert!(values("browsers").contains(&("Firefox".to_owned(), 1, 0)));
    assert!(values("browsers").contains(&("Googlebot".to_owned(), 0, 1)));

    recent.sort_by(|a, b| b["visitedAt"].as_str().cmp(&a["visitedAt"].as_str()));
    assert_eq!(recent.len(), 3);
    assert_eq!(
        recent[0]["userAgent"].as_str().map(|s| s.chars().count()),
        Some(512),
        "user agents are cut, not refused"
    );
    assert_eq!(recent[0]["referrer"], "https://ref.example/b");
    assert_eq!(recent[1]["bot"], true, "the crawler is flagged");
    assert_eq!(recent[1]["referrer"], Value::Null, "an empty referrer is stored as null");
    assert_eq!(recent[2]["ipAddress"], "127.0.0.0", "IPv4 anonymised by default");
    assert_eq!(recent[2]["referrer"], "https://Ref.Example/a");
    assert_eq!(db.count("visits").await, 0, "no row per visit with the default (recent) visit log");
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let db = TestDatabase::new();
    // The full visit log keeps every raw visit, so the stored IPs can be read back.
    let trusting = spawn_with(&db, &["--trusted-proxies=127.0.0.1", "--anonymize-ips=false", "--visit-log=full"]).await;
    let phrase = trusting.create("https://example.com/", 0, 0, 0).await;
    let forwarded = |app: &TestApp| {
        app.client.get(app.url(&format!("/{phrase}"))).header("X-Forwarded-For", "6.6.6.6, 203.0.113.9").send()
    };
    assert_eq!(forwarded(&trusting).await.expect("request").status(), 301);
    let other = spawn_with(&db, &["--anonymize-ips=false", "--visit-log=full"]).await;
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
async fn a_stalled_database_loses_no_visit_and_costs_one_flush() {
    let db = TestDatabase::new();
    let namespace = AmqpNamespace::new();
    let mut tap = Tap::new(&namespace).await;
    let app = spawn_in(&db, namespace, &[]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    let other = app.create("https://example.org/", 0, 0, 0).await;
    let _created = (tap.next().await, tap.next().await);

    // Hold the outbox so every flush waits: redirects go on, counted in memory.
    let mut locker = db.connect().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE outbox IN EXCLUSIVE MODE").execute(&mut locker).await.expect("lock");
    for i in 0..300 {
        redirect(&app, if i % 3 == 0 { &other } else { &phrase }, "agent", "").await;
    }
    assert_eq!(dropped(&app).await, 0);
    sqlx::raw_sql("COMMIT").execute(&mut locker).await.expect("unlock");

    let (visits, bodies) = tap.visits(300).await;
    assert_eq!(visits, 300, "every visit, none twice");
    let links: usize = bodies.iter().map(|b| b["links"].as_array().expect("links").len()).sum();
    assert!(links <= 2 * bodies.len() && bodies.len() <= 6, "a few events, not one per visit: {} events", bodies.len());
    assert_eq!(dropped(&app).await, 0);
}

/// `offndat_visits_dropped_total` as /metrics shows it (process-wide, so other
/// tests in this binary count too: they drop nothing either).
async fn dropped(app: &TestApp) -> u64 {
    let metrics = app.metrics().await;
    assert!(metrics.samples("offndat_visits_dropped_total").next().is_some(), "registered from the start");
    metrics.sum("offndat_visits_dropped_total") as u64
}

#[tokio::test]
async fn shutdown_flushes_the_aggregate_and_relays_it() {
    let db = TestDatabase::new();
    let namespace = AmqpNamespace::new();
    let mut tap = Tap::new(&namespace).await;
    // A flush interval far longer than the test: only the shutdown drain writes.
    let app = spawn_in(&db, namespace, &["--visit-flush-interval=60s"]).await;
    let phrase = app.create("https://example.com/", 0, 0, 0).await;
    for _ in 0..5 {
        redirect(&app, &phrase, "agent", "").await;
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox WHERE event_type = 'link.visited'").await,
        0,
        "nothing flushed before shutdown"
    );
    let namespace_guard = app.stop_keeping_namespace().await;
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox WHERE event_type = 'link.visited'").await,
        1,
        "one event for the window"
    );
    assert_eq!(tap.visits(5).await.0, 5, "the relay published the drained visits before exiting");
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
        let n = db.scalar("SELECT count(*) FROM outbox WHERE event_type = 'link.visited'").await;
        if n >= 1 { Ok(()) } else { Err(n.to_string()) }
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
            "link.visited" => visits += visits_in(&message.body),
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
