//! Ceiling server for the offndat benchmark: answers `GET /{phrase}` and
//! `GET /v1/redirects/{phrase}` with `301 Location:` from an in-memory map loaded at
//! start, with the same no-cache headers as the service, and `404` otherwise.
//! Nothing else: no visit recording, no middleware. It shows what axum + tokio +
//! the load generator can do on this machine.
//!
//! Usage: offndat-ceiling <listen-addr> <links.tsv>   (lines: `phrase<TAB>target`)

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

type Links = Arc<HashMap<String, HeaderValue>>;

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0");

async fn redirect(State(links): State<Links>, Path(phrase): Path<String>) -> Response {
    match links.get(&phrase) {
        Some(location) => {
            let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, location.clone());
            headers.insert(header::CACHE_CONTROL, NO_STORE);
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn ready() -> &'static str {
    "ready"
}

fn load(path: &str) -> Result<HashMap<String, HeaderValue>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut links = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (phrase, target) = line.split_once('\t').ok_or_else(|| format!("{path}:{}: expected phrase<TAB>target", n + 1))?;
        let target = HeaderValue::from_str(target).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
        links.insert(phrase.to_owned(), target);
    }
    Ok(links)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: offndat-ceiling <listen-addr> <links.tsv>");
        std::process::exit(2);
    };
    let links = match load(&file) {
        Ok(links) => Arc::new(links),
        Err(e) => {
            eprintln!("offndat-ceiling: {e}");
            std::process::exit(1);
        }
    };
    let count = links.len();
    let app = Router::new()
        .route("/health/ready", get(ready))
        .route("/v1/redirects/{phrase}", get(redirect))
        .route("/{phrase}", get(redirect))
        .with_state(links);
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("offndat-ceiling: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    // As the services do: the address it bound (port 0 picks one), for bench.py.
    let address = listener.local_addr().map_or_else(|_| listen.clone(), |a| a.to_string());
    eprintln!("offndat-ceiling listening address={address} links={count}");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        eprintln!("offndat-ceiling: {e}");
        std::process::exit(1);
    }
}
