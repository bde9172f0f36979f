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

/// The process can serve: PostgreSQL answers. Redis and RabbitMQ being away only
/// degrade the service (redirects fall back to PostgreSQL, events wait in the
/// outbox), so they are reported but never make the API unready.
pub async fn ready(State(state): State<AppState>) -> Response {
    match check_postgres(&state).await {
        Ok(_) => json(StatusCode::OK, &json!({ "status": "ready" })),
        Err(error) => json(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "not ready", "postgres": error })),
    }
}

/// Every dependency with its state and latency: `ready`, `degraded` (Redis or
/// RabbitMQ away) or `not ready` (PostgreSQL away, 503).
pub async fn detail(State(state): State<AppState>) -> Response {
    let (postgres, redis) = tokio::join!(check_postgres(&state), check_redis(&state));
    let rabbitmq = check_rabbitmq(&state);
    let degraded = matches!(redis, Some(Err(_))) || rabbitmq.is_err();
    let (status, overall) = match (&postgres, degraded) {
        (Err(_), _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        (Ok(_), true) => (StatusCode::OK, "degraded"),
        (Ok(_), false) => (StatusCode::OK, "ready"),
    };
    json(
        status,
        &json!({
            "status": overall,
            "dependencies": {
                "postgres": report(postgres.map(Some)),
                "redis": redis.map_or_else(|| json!({ "status": "disabled" }), |r| report(r.map(Some))),
                "rabbitmq": report(rabbitmq.map(|()| None)),
            }
        }),
    )
}

fn report(check: Result<Option<Duration>, String>) -> serde_json::Value {
    match check {
        Ok(Some(latency)) => json!({ "status": "up", "latencyMs": latency.as_secs_f64() * 1000.0 }),
        Ok(None) => json!({ "status": "up" }),
        Err(error) => json!({ "status": "down", "error": error }),
    }
}

async fn check_postgres(state: &AppState) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&state.pool)).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

/// `None` when L2 is turned off.
async fn check_redis(state: &AppState) -> Option<Result<Duration, String>> {
    Some(state.cache.l2()?.ping().await)
}

/// The outbox relay's connection; `Ok` when the relay is turned off.
fn check_rabbitmq(state: &AppState) -> Result<(), String> {
    use offndat_infrastructure::amqp::ConsumerHealth;
    match state.broker.consumers().into_values().next() {
        Some(ConsumerHealth::Down(error)) => Err(error),
        _ => Ok(()),
    }
}
