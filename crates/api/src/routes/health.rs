//! Health endpoints (liveness, readiness: PostgreSQL reachable, and detail) and
//! Prometheus metrics.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::response::json;
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Prometheus text exposition of this process's metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = Response::new(axum::body::Body::from(state.metrics.render()));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The process is up.
pub async fn live() -> Response {
    json(StatusCode::OK, &json!({ "status": "live" }))
}

/// The process can serve: PostgreSQL answers.
pub async fn ready(State(state): State<AppState>) -> Response {
    match check_postgres(&state).await {
        Ok(_) => json(StatusCode::OK, &json!({ "status": "ready" })),
        Err(error) => json(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "not ready", "postgres": error })),
    }
}

/// Every dependency with its state and latency.
pub async fn detail(State(state): State<AppState>) -> Response {
    let (status, postgres) = match check_postgres(&state).await {
        Ok(latency) => (StatusCode::OK, json!({ "status": "up", "latencyMs": latency.as_secs_f64() * 1000.0 })),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "down", "error": error })),
    };
    let overall = if status.is_success() { "ready" } else { "not ready" };
    json(status, &json!({ "status": overall, "dependencies": { "postgres": postgres } }))
}

async fn check_postgres(state: &AppState) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&state.pool)).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}
