//! The W3C trace context of the request in hand, carried into outbox rows so a
//! trace continues through the broker to the worker.

use rand::Rng;
use serde_json::{Value, json};

tokio::task_local! {
    static TRACE_ID: u128;
}

/// Runs `future` with `trace_id` as the current trace. A plain number, formatted
/// only when a message is written, so requests that write none pay nothing.
pub async fn scope<F: Future>(trace_id: u128, future: F) -> F::Output {
    TRACE_ID.scope(trace_id, future).await
}

/// AMQP headers for a message written now: a `traceparent` continuing the current
/// trace with a new span id, if there is a current trace.
pub fn current_headers() -> Value {
    TRACE_ID
        .try_with(|trace_id| {
            let span_id = rand::rng().random::<u64>() | 1;
            json!({ "traceparent": format!("00-{trace_id:032x}-{span_id:016x}-01") })
        })
        .unwrap_or_else(|_| json!({}))
}
