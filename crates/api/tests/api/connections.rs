//! Slow and idle clients: a connection trickling its headers, one left idle after
//! a response, and more connections than the cap, against the real server loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, TestDatabase, spawn_with};

/// Long enough for any of these closures, far shorter than a trickled request.
const DEADLINE: Duration = Duration::from_secs(60);

fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

async fn live(app: &TestApp, client: &reqwest::Client) -> u16 {
    client.get(app.url("/health/live")).send().await.expect("live").status().as_u16()
}

#[tokio::test]
async fn a_client_sending_headers_one_byte_a_second_is_closed_while_others_are_served() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--http-header-read-timeout=2s"]).await;
    let request: &'static [u8] =
        b"GET /health/live HTTP/1.1\r\nHost: offndat.test\r\nUser-Agent: slowloris/1.0 (one byte a second)\r\n\r\n";
    let (mut reader, mut writer) = TcpStream::connect(app.address).await.expect("connect").into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let trickle = tokio::spawn({
        let sent = sent.clone();
        async move {
            // The pace is the thing under test: a client trickling its headers.
            let mut every_second = tokio::time::interval(Duration::from_secs(1));
            for byte in request {
                every_second.tick().await;
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let closed = tokio::spawn(async move {
        let mut received = Vec::new();
        let _ = reader.read_to_end(&mut received).await;
        received
    });

    // Meanwhile the server answers everyone else, on fresh connections.
    for _ in 0..3 {
        assert_eq!(live(&app, &fresh_client()).await, 200);
    }

    let received = tokio::time::timeout(DEADLINE, closed).await.expect("the server closed it").expect("join");
    let sent = sent.load(Ordering::SeqCst);
    trickle.abort();
    assert!(sent < request.len(), "closed only after the whole request: {sent} of {} bytes", request.len());
    let received = String::from_utf8_lossy(&received);
    assert!(received.is_empty() || received.starts_with("HTTP/1.1 408"), "no answer but a 408: {received:?}");
    assert_eq!(live(&app, &fresh_client()).await, 200, "still serving");
    app.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_left_idle_is_closed() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--http-header-read-timeout=1s"]).await;
    let mut stream = TcpStream::connect(app.address).await.expect("connect");
    stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: offndat.test\r\n\r\n").await.expect("write");
    // The answer, then nothing: reading to the end finishes only when the server
    // closes the kept-alive connection.
    let mut received = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received))
        .await
        .expect("the idle connection was closed")
        .expect("read");
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received}");
    assert!(received.ends_with("{\"status\":\"live\"}"), "one answer, then the close: {received}");
    app.stop().await;
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_wait_until_one_closes() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &["--http-max-connections=1", "--http-header-read-timeout=5m"]).await;
    // Holds the only place: connected, sending nothing.
    let holder = TcpStream::connect(app.address).await.expect("connect");
    let waiting = tokio::spawn({
        let url = app.url("/health/live");
        async move { fresh_client().get(url).send().await.map(|r| r.status().as_u16()) }
    });
    let waiting = {
        let mut waiting = waiting;
        // Unanswered while the place is taken. That something does not happen can
        // only be watched for a while: this window is the thing under test, not a
        // wait for an effect (which would be polled).
        assert!(tokio::time::timeout(Duration::from_millis(500), &mut waiting).await.is_err(), "answered past the cap");
        waiting
    };
    drop(holder);
    let status = tokio::time::timeout(DEADLINE, waiting).await.expect("answered once a place is free").expect("join");
    assert_eq!(status.expect("request"), 200);
    app.stop().await;
}
