//! Health endpoints (liveness, readiness: PostgreSQL reachable, and detail) and
//! Prometheus metrics.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::openapi::schemas;
use crate::response::json;
use crate::state::AppState;

// Only liveness is on the public listener (and in its OpenAPI document); the
// rest is on the operations listener, described in docs/operations.md.
crate::openapi::document!(HealthApi: live);

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Prometheus text exposition of this process's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "Operations",
    responses(
        (status = 200, description = "The Prometheus text format, version 0.0.4.", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8",
            example = "# TYPE offndat_http_requests_total counter\noffndat_http_requests_total{method=\"GET\",route=\"/{phrase}\",status=\"301\"} 42\n"),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = Response::new(axum::body::Body::from(state.metrics.render()));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/health/live",
    operation_id = "liveness",
    tag = "Operations",
    responses(
        (status = 200, description = "The process is up.", body = schemas::Liveness, example = json!({"status": "live"})),
    ),
)]
pub async fn live() -> Response {
    json(StatusCode::OK, &json!({ "status": "live" }))
}

/// The process can serve: PostgreSQL answers. Redis and RabbitMQ being away only
/// degrade the service (redirects fall back to PostgreSQL, events wait in the
/// outbox), so they are reported but never make the API unready.
#[utoipa::path(
    get,
    path = "/health/ready",
    operation_id = "readiness",
    summary = "Readiness: PostgreSQL answers",
    tag = "Operations",
    responses(
        (status = 200, description = "PostgreSQL answers: the process can serve.", body = schemas::Readiness,
            example = json!({"status": "ready"})),
        (status = 503, description = "PostgreSQL does not answer (a JSON body, not a problem).", body = schemas::Readiness,
            example = json!({"status": "not ready", "postgres": "no answer within 2s"})),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    match check_postgres(&state).await {
        Ok(_) => json(StatusCode::OK, &json!({ "status": "ready" })),
        Err(error) => json(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "not ready", "postgres": error })),
    }
}

/// Every dependency with its state and latency: `ready`, `degraded` (Redis or
/// RabbitMQ away) or `not ready` (PostgreSQL away, 503).
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    summary = "Every dependency's state and latency",
    tag = "Operations",
    responses(
        (status = 200, description = "`ready`, or `degraded` when Redis or RabbitMQ is away.", body = schemas::HealthDetail,
            example = json!({"status": "degraded", "dependencies": {
                "postgres": {"status": "up", "latencyMs": 0.42},
                "redis": {"status": "down", "error": "unreachable"},
                "rabbitmq": {"status": "up"}}})),
        (status = 503, description = "`not ready`: PostgreSQL is away (a JSON body, not a problem).",
            body = schemas::HealthDetail,
            example = json!({"status": "not ready", "dependencies": {
                "postgres": {"status": "down", "error": "no answer within 2s"},
                "redis": {"status": "disabled"},
                "rabbitmq": {"status": "up"}}})),
    ),
)]
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

// The answers say what is wrong in fixed words: raw driver errors name hosts,
// ports, users and versions, which are nobody's business outside; they go to
// the log at debug instead (health is probed every few seconds).

/// A dependency that answers no more.
const UNREACHABLE: &str = "unreachable";

async fn check_postgres(state: &AppState) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&state.pool)).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(error)) => {
            tracing::debug!(dependency = "postgres", error = %error, "health check failed");
            Err(UNREACHABLE.to_owned())
        }
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

/// `None` when L2 is turned off.
async fn check_redis(state: &AppState) -> Option<Result<Duration, String>> {
    Some(state.cache.l2()?.ping().await.map_err(|error| {
        tracing::debug!(dependency = "redis", error = %error, "health check failed");
        UNREACHABLE.to_owned()
    }))
}

/// The outbox relay's connection; `Ok` when the relay is turned off.
fn check_rabbitmq(state: &AppState) -> Result<(), String> {
    use offndat_infrastructure::amqp::ConsumerHealth;
    match state.broker.consumers().into_values().next() {
        Some(ConsumerHealth::Down(error)) => {
            tracing::debug!(dependency = "rabbitmq", error = %error, "health check failed");
            Err("not connected".to_owned())
        }
        _ => Ok(()),
    }
}
