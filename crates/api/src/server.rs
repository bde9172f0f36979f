//! The API's accept loop: hyper (HTTP/1.1 and HTTP/2) with the per-connection
//! limits `axum::serve` does not offer: a header-read timeout, an idle timeout
//! and a cap on open connections, so slow or idle clients cannot hold the
//! process's sockets and memory. The timeouts are kept by
//! [`connection_deadlines`](crate::connection_deadlines): one sleep per
//! connection, not a timer per request.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::connection_deadlines::{Deadlines, HeaderTimer, Watched, wake_at_deadlines};

/// Limits on each client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest the server waits for a request's headers in full, counted from when
    /// it starts waiting for them: a client trickling headers (slowloris) is
    /// closed, and so is a kept-alive HTTP/1.1 connection idle this long, since
    /// hyper waits for the next request's headers as soon as a response is sent.
    pub header_read_timeout: Duration,
    /// Longest a read or a write may wait without progress: a client that stops
    /// sending a body or reading a response, or a quiet HTTP/2 connection.
    pub idle_timeout: Duration,
    /// Most connections open at once; past it, new ones wait in the kernel's
    /// accept queue until one closes.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting
/// and waits for the open connections to finish their requests (bounded by the
/// caller). Each request carries `ConnectInfo<SocketAddr>` of its peer.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    // The connection's watchdog wakes at least this often, so a deadline, which
    // starts with at least this long to run, is never missed.
    let watchdog_period = limits.header_read_timeout.min(limits.idle_timeout);
    let mut shutdown = pin!(shutdown);
    loop {
        // The permit is taken before accepting: at the cap, connections queue in
        // the kernel rather than being accepted and left unserved.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small responses (redirects) go out at once.
        let _ = stream.set_nodelay(true);
        let deadlines = Deadlines::new(limits.idle_timeout);
        let io = TokioIo::new(Watched::new(stream, deadlines.clone()));
        let mut builder = builder.clone();
        builder.http1().timer(HeaderTimer(deadlines.clone()));
        let service = router.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.map(Body::new)
        });
        let service = TowerToHyperService::new(service.map_err(|never: Infallible| match never {}));
        let connection = graceful.watch(builder.serve_connection(io, service).into_owned());
        tokio::spawn(async move {
            let ended = tokio::select! {
                biased;
                ended = connection => ended,
                never = wake_at_deadlines(deadlines, watchdog_period) => match never {},
            };
            if let Err(error) = ended {
                // Timeouts and resets are the client's business, not an incident.
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
