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
    /// Cancelled to cut every connection open now.
    connections: CancellationToken,
}

impl TcpProxy {
    /// Starts a proxy to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ProxyState { enabled: true, connections: CancellationToken::new() }));
        let stop = CancellationToken::new();
        let (accept_state, accept_stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(pair) => pair, Err(_) => continue },
                    () = accept_stop.cancelled() => return,
                };
                let (enabled, cut) = {
                    let state = accept_state.lock().unwrap();
                    (state.enabled, state.connections.clone())
                };
                if !enabled {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
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
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.lock().unwrap().connections.cancel();
    }
}
