//! Health and metrics endpoints: liveness, readiness (PostgreSQL answers and every
//! consumer is connected to the broker), per-dependency detail, and Prometheus.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use offndat_infrastructure::amqp::{BrokerStatus, ConsumerHealth};
use std::sync::{Arc, RwLock};

use offndat_application::apply_events::EventLedger;
use serde_json::{Map, Value, json};

/// How long one dependency check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the endpoints look at.
#[derive(Clone)]
pub(crate) struct HealthState {
    pub ledger: Arc<dyn EventLedger>,
    pub broker: BrokerStatus,
    pub metrics: PrometheusHandle,
    pub schema: SchemaStatus,
}

/// Whether the database has the schema this build needs: until the migrations
/// are applied the worker is live but not ready, and says what it waits for.
#[derive(Clone)]
pub(crate) struct SchemaStatus(Arc<RwLock<Option<String>>>);

impl Default for SchemaStatus {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(Some("schema not checked yet".to_owned()))))
    }
}

impl SchemaStatus {
    pub(crate) fn set_waiting(&self, problem: &str) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(problem.to_owned());
    }

    pub(crate) fn set_ready(&self) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// What is missing, or `None` once the schema is there.
    fn problem(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub(crate) fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(detail))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The process is up.
async fn live() -> Response {
    (StatusCode::OK, axum::Json(json!({ "status": "live" }))).into_response()
}

/// The worker can do its job: PostgreSQL answers and every consumer is connected.
async fn ready(State(state): State<HealthState>) -> Response {
    let mut failing = Map::new();
    match (check_postgres(&state).await, state.schema.problem()) {
        (Err(error), _) | (Ok(_), Some(error)) => {
            failing.insert("postgres".to_owned(), Value::String(error));
        }
        (Ok(_), None) => {}
    }
    if !state.broker.is_up() {
        failing.insert("rabbitmq".to_owned(), Value::String(broker_problem(&state.broker)));
    }
    if failing.is_empty() {
        (StatusCode::OK, axum::Json(json!({ "status": "ready" }))).into_response()
    } else {
        failing.insert("status".to_owned(), Value::String("not ready".to_owned()));
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(Value::Object(failing))).into_response()
    }
}

/// Every dependency with its state and latency.
async fn detail(State(state): State<HealthState>) -> Response {
    let postgres = match (check_postgres(&state).await, state.schema.problem()) {
        (Ok(latency), None) => json!({ "status": "up", "latencyMs": millis(latency) }),
        (Ok(_), Some(problem)) => json!({ "status": "down", "error": problem }),
        (Err(error), _) => json!({ "status": "down", "error": error }),
    };
    let consumers: Map<String, Value> = state
        .broker
        .consumers()
        .into_iter()
        .map(|(queue, health)| {
            let value = match health {
                ConsumerHealth::Up => json!({ "status": "up" }),
                ConsumerHealth::Down(error) => json!({ "status": "down", "error": error }),
            };
            (queue, value)
        })
        .collect();
    let rabbitmq = match (state.broker.is_up(), check_broker(&state).await) {
        (true, Ok(latency)) => json!({ "status": "up", "latencyMs": millis(latency), "consumers": consumers }),
        (_, Err(error)) => json!({ "status": "down", "error": error, "consumers": consumers }),
        (false, Ok(_)) => {
            json!({ "status": "down", "error": broker_problem(&state.broker), "consumers": consumers })
        }
    };
    let up = postgres["status"] == "up" && rabbitmq["status"] == "up";
    let (status, overall) = if up { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") };
    let body = json!({ "status": overall, "dependencies": { "postgres": postgres, "rabbitmq": rabbitmq } });
    (status, axum::Json(body)).into_response()
}

/// Prometheus text exposition.
async fn metrics(State(state): State<HealthState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}

async fn check_postgres(state: &HealthState) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, state.ledger.ping()).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
    }
}

/// A round trip to the broker: opening and closing a channel on a consumer's
/// connection.
async fn check_broker(state: &HealthState) -> Result<Duration, String> {
    let Some(connection) = state.broker.connection() else {
        return Err(broker_problem(&state.broker));
    };
    let started = Instant::now();
    let round_trip = async {
        let channel = connection.create_channel().await?;
        channel.close(200, "health check".into()).await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, round_trip).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
    }
}

/// Which consumers are down and why, in one line.
fn broker_problem(broker: &BrokerStatus) -> String {
    let down: Vec<String> = broker
        .consumers()
        .into_iter()
        .filter_map(|(queue, health)| match health {
            ConsumerHealth::Up => None,
            ConsumerHealth::Down(error) => Some(format!("{queue}: {error}")),
        })
        .collect();
    if down.is_empty() { "no consumer started".to_owned() } else { down.join("; ") }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
