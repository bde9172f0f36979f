//! Two API processes on one database, Redis and broker namespace: an edit,
//! disable or delete on one is seen on the other within a second (`link.changed`
//! through the fanout exchange), and within the L1 TTL while the broker is
//! unreachable for the other.

use std::net::SocketAddr;
use std::time::Duration;

use offndat_api::Application;
use offndat_test_support::TcpProxy;
use reqwest::redirect::Policy;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::helpers::{AmqpNamespace, RedisPrefix, TestDatabase, config, eventually};
use crate::links_support::{create, delete, patch, phrase_of};

/// A second process sharing the first one's database, Redis prefix and namespace.
struct Replica {
    address: SocketAddr,
    ops_address: SocketAddr,
    client: reqwest::Client,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    async fn spawn(db: &TestDatabase, namespace: &AmqpNamespace, redis: &RedisPrefix, extra: &[&str]) -> Self {
        let app = Application::build(config(db, namespace, redis, extra)).await.expect("app builds");
        let address = app.local_addr().expect("bound");
        let ops_address = app.ops_addr().expect("bound");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        let client = reqwest::Client::builder().redirect(Policy::none()).build().expect("client");
        Self { address, ops_address, client, shutdown, handle }
    }

    /// Status and `Location` or error code of following `phrase`.
    async fn follow(&self, phrase: &str) -> (u16, String) {
        let response = self.client.get(format!("http://{}/{phrase}", self.address)).send().await.expect("follow");
        let status = response.status().as_u16();
        match response.headers().get("location") {
            Some(location) => (status, location.to_str().expect("ascii").to_owned()),
            None => {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                (status, body["errors"][0]["code"].as_str().unwrap_or_default().to_owned())
            }
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.expect("join").expect("clean stop");
    }
}

/// Waits until `replica` answers `expected` for `phrase`.
async fn until(replica: &Replica, phrase: &str, expected: (u16, &str), within: Duration) {
    eventually(within, &format!("{phrase} answers {expected:?}"), || async {
        let seen = replica.follow(phrase).await;
        if (seen.0, seen.1.as_str()) == expected { Ok(()) } else { Err(format!("{seen:?}")) }
    })
    .await;
}

/// The `TestApp` helpers want one; both processes here use `writer`'s.
async fn writer(db: &TestDatabase, namespace: &AmqpNamespace, redis: &RedisPrefix) -> crate::helpers::TestApp {
    let app = Replica::spawn(db, namespace, redis, &[]).await;
    crate::helpers::TestApp {
        address: app.address,
        ops_address: app.ops_address,
        namespace: AmqpNamespace { name: namespace.name.clone() },
        _redis: RedisPrefix { prefix: redis.prefix.clone() },
        client: app.client,
        shutdown: app.shutdown,
        handle: app.handle,
    }
}

/// Both processes are listening: a change made on `writer` reaches `reader`.
async fn wait_until_listening(writer: &crate::helpers::TestApp, reader: &Replica) {
    let probe =
        phrase_of(create(writer, json!({"phrase": format!("probe-{}", uuid::Uuid::new_v4().simple())})).await).await;
    assert_eq!(reader.follow(&probe).await.0, 301);
    assert_eq!(patch(writer, &format!("/v1/links/{probe}"), json!({"disabled": true})).await.status(), 200);
    until(reader, &probe, (410, "Link.Disabled"), Duration::from_secs(20)).await;
}

#[tokio::test]
async fn edits_disables_and_deletes_reach_the_other_process_within_a_second() {
    let (db, namespace, redis) = (TestDatabase::new(), AmqpNamespace::new(), RedisPrefix::new());
    let writer = writer(&db, &namespace, &redis).await;
    let reader = Replica::spawn(&db, &namespace, &redis, &[]).await;
    wait_until_listening(&writer, &reader).await;

    let phrase = phrase_of(create(&writer, json!({"phrase": "replicated"})).await).await;
    // The reader caches the link in its L1 (60 s by default): only the event
    // can make it forget within the second.
    assert_eq!(reader.follow(&phrase).await, (301, "https://example.com/".to_owned()));
    let second = Duration::from_secs(1);

    assert_eq!(
        patch(&writer, "/v1/links/replicated", json!({"targetUrl": "https://example.org/new"})).await.status(),
        200
    );
    until(&reader, &phrase, (301, "https://example.org/new"), second).await;

    assert_eq!(patch(&writer, "/v1/links/replicated", json!({"disabled": true})).await.status(), 200);
    until(&reader, &phrase, (410, "Link.Disabled"), second).await;

    assert_eq!(patch(&writer, "/v1/links/replicated", json!({"disabled": false})).await.status(), 200);
    until(&reader, &phrase, (301, "https://example.org/new"), second).await;

    assert_eq!(delete(&writer, "/v1/links/replicated").await.status(), 204);
    until(&reader, &phrase, (410, "Link.Deleted"), second).await;

    reader.stop().await;
    writer.stop().await;
}

#[tokio::test]
async fn while_the_broker_is_unreachable_the_l1_ttl_caps_staleness() {
    let (db, namespace, redis) = (TestDatabase::new(), AmqpNamespace::new(), RedisPrefix::new());
    let writer = writer(&db, &namespace, &redis).await;
    let broker = TcpProxy::to_port(5672).await;
    let amqp = format!("--amqp-url=amqp://guest:guest@{}/%2f", broker.address());
    let reader = Replica::spawn(&db, &namespace, &redis, &[&amqp, "--cache-l1-ttl=2s"]).await;
    wait_until_listening(&writer, &reader).await;

    broker.disable();
    let phrase = phrase_of(create(&writer, json!({"phrase": "isolated"})).await).await;
    assert_eq!(reader.follow(&phrase).await.0, 301);
    assert_eq!(patch(&writer, "/v1/links/isolated", json!({"disabled": true})).await.status(), 200);
    // No event reaches the reader; its L1 entry expires after 2 s and the link
    // is read again from PostgreSQL (the writer removed it from Redis).
    until(&reader, &phrase, (410, "Link.Disabled"), Duration::from_secs(10)).await;

    broker.enable();
    reader.stop().await;
    writer.stop().await;
}
