//! A TCP proxy the test controls, to simulate a dependency going away and coming
//! back without touching the shared services.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards `127.0.0.1:<port>` to a target. While disabled it cuts every open
/// connection and closes new ones at once, as a dead host behind a load balancer.
pub struct TcpProxy {
    address: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    stop: CancellationToken,
}

struct ProxyState {
    enabled: bool,
    /// While true, open connections stay open but nothing is forwarded: a hung
    /// server, or a network path that silently drops packets.
    stalled: tokio::sync::watch::Sender<bool>,
    /// Cancelled to cut every connection open now.
    connections: CancellationToken,
}

impl TcpProxy {
    /// Starts a proxy to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ProxyState {
            enabled: true,
            stalled: tokio::sync::watch::Sender::new(false),
            connections: CancellationToken::new(),
        }));
        let stop = CancellationToken::new();
        let (accept_state, accept_stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (inbound, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(pair) => pair, Err(_) => continue },
                    () = accept_stop.cancelled() => return,
                };
                let (enabled, cut, stalled) = {
                    let state = accept_state.lock().unwrap();
                    (state.enabled, state.connections.clone(), state.stalled.subscribe())
                };
                if !enabled {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    let (from_client, to_client) = inbound.into_split();
                    let (from_server, to_server) = outbound.into_split();
                    tokio::select! {
                        () = forward(from_client, to_server, stalled.clone()) => {}
                        () = forward(from_server, to_client, stalled) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        Self { address, state, stop }
    }

    /// Starts a proxy to `host:port` on loopback.
    pub async fn to_port(port: u16) -> Self {
        Self::start(SocketAddr::from(([127, 0, 0, 1], port))).await
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Cuts every connection and refuses new ones until `enable`.
    pub fn disable(&self) {
        let mut state = self.state.lock().unwrap();
        state.enabled = false;
        state.connections.cancel();
        state.connections = CancellationToken::new();
    }

    /// Forwards again.
    pub fn enable(&self) {
        self.state.lock().unwrap().enabled = true;
    }

    /// Keeps connections open but forwards nothing until `resume`.
    pub fn stall(&self) {
        self.state.lock().unwrap().stalled.send_replace(true);
    }

    /// Forwards what was held back, and everything after it.
    pub fn resume(&self) {
        self.state.lock().unwrap().stalled.send_replace(false);
    }
}

/// Copies `from` to `to`, holding each chunk while the proxy is stalled.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if stalled.wait_for(|stalled| !stalled).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.lock().unwrap().connections.cancel();
    }
}
