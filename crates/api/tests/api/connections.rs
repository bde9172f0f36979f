//! Slow and idle clients: a connection trickling its headers, one left idle after
//! a response, one that never sends, one that stops reading its answers, and more
//! connections than the cap, against the real server loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

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
    // The idle timeout far off: only the wait for the next request's headers
    // can close the connection in time.
    let app = spawn_with(&db, &["--http-header-read-timeout=1s", "--http-idle-timeout=5m"]).await;
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

/// Limits under which the idle timeout (1 s), not the header-read timeout (5 min),
/// closes a quiet connection; requests must time out before connections go idle.
const IDLE_FIRST: [&str; 3] = ["--http-header-read-timeout=5m", "--http-idle-timeout=1s", "--request-timeout=500ms"];

#[tokio::test]
async fn a_connection_that_never_sends_is_closed_after_the_idle_timeout() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &IDLE_FIRST).await;
    let mut stream = TcpStream::connect(app.address).await.expect("connect");
    let mut received = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received))
        .await
        .expect("closed long before the header-read timeout")
        .expect("read");
    assert!(received.is_empty(), "nothing was asked, nothing answered: {:?}", String::from_utf8_lossy(&received));
    assert_eq!(live(&app, &fresh_client()).await, 200, "still serving");
    app.stop().await;
}

/// The kernel's TCP state of the server's end of the connection from `client`
/// to `server`, from `/proc/net/tcp` (`None` once the socket is gone).
fn server_side_state(server: std::net::SocketAddr, client: std::net::SocketAddr) -> Option<u8> {
    let hex = |address: std::net::SocketAddr| match address {
        std::net::SocketAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port()),
        std::net::SocketAddr::V6(_) => unreachable!("the test server listens on IPv4"),
    };
    let (local, remote) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(2) == Some(&remote.as_str()))
            .then(|| u8::from_str_radix(fields[3], 16).expect("state"))
    })
}

const TCP_ESTABLISHED: u8 = 1;

#[tokio::test]
async fn a_client_that_stops_reading_its_answers_is_closed_after_the_idle_timeout() {
    let db = TestDatabase::new();
    let app = spawn_with(&db, &IDLE_FIRST).await;
    // A small receive window, and far more answers asked for than the kernel
    // buffers on both ends hold: the server's writes wait on the client.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(app.address).await.expect("connect");
    let client = stream.local_addr().expect("local address");
    const ASKED: usize = 400;
    let request = b"GET /openapi.json HTTP/1.1\r\nHost: offndat.test\r\n\r\n".repeat(ASKED);
    stream.write_all(&request).await.expect("pipelined requests");
    assert_eq!(server_side_state(app.address, client), Some(TCP_ESTABLISHED), "open while the answers flow");

    // Not reading: the server gives up on the write and closes its end.
    let started = tokio::time::Instant::now();
    while server_side_state(app.address, client) == Some(TCP_ESTABLISHED) {
        assert!(started.elapsed() < DEADLINE, "the server still waits on a client that does not read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // What got through before the close is fewer answers than were asked for.
    let mut received = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut received)).await.expect("the stream ends");
    let answers = received.windows(17).filter(|w| w == b"HTTP/1.1 200 OK\r\n").count();
    assert!(answers < ASKED, "all {ASKED} answers arrived: the connection was not cut");
    assert_eq!(live(&app, &fresh_client()).await, 200, "still serving");
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
