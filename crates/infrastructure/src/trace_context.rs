//! The W3C trace context of the request in hand, carried into outbox rows so a
//! trace continues through the broker to the worker.

use serde_json::{Value, json};

tokio::task_local! {
    static TRACEPARENT: String;
}

/// Runs `future` with `traceparent` as the current trace context.
pub async fn scope<F: Future>(traceparent: String, future: F) -> F::Output {
    TRACEPARENT.scope(traceparent, future).await
}

/// AMQP headers for a message written now: the current `traceparent`, if any.
pub fn current_headers() -> Value {
    TRACEPARENT.try_with(|tp| json!({ "traceparent": tp })).unwrap_or_else(|_| json!({}))
}
