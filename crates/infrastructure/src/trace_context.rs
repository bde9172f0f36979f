//! W3C trace context across process boundaries: from an incoming request into
//! the outbox row it writes, from the row into the AMQP message the relay
//! publishes, and from the message into the worker's span.
//!
//! When traces are exported the OpenTelemetry context of `tracing` spans is
//! propagated with the configured propagators, so one trace shows create →
//! publish → consume. When they are not, the trace id alone still travels, so the
//! problem bodies and logs of the API and the worker share it.

use std::marker::PhantomData;

use lapin::types::{AMQPValue, FieldTable, ShortString};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{Status, TraceContextExt, TraceId};
use rand::Rng;
use serde_json::{Map, Value, json};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::{self, exporting_traces};

tokio::task_local! {
    static TRACE_ID: u128;
}

/// Runs `future` with `trace_id` as the current trace. A plain number, formatted
/// only when a message is written, so requests that write none pay nothing.
pub fn scope<F: Future>(trace_id: u128, future: F) -> tokio::task::futures::TaskLocalFuture<u128, F> {
    TRACE_ID.scope(trace_id, future)
}

/// Starts the span of an incoming request whose headers `header` reads,
/// continuing the caller's W3C trace, and returns it with its trace id (the
/// caller's, or a new one). `make_span` is given the trace id so the span can
/// carry it as a field from the start: the log layer formats a span's fields
/// when it is created and again on every `record` (JSON: parse and re-serialise),
/// and this runs on every redirect.
pub fn start_request<'h>(
    header: impl Fn(&str) -> Option<&'h str>,
    make_span: impl FnOnce(u128) -> Span,
) -> (Span, u128) {
    if !exporting_traces() {
        let trace_id = header("traceparent").and_then(trace_id_of).unwrap_or_else(new_trace_id);
        return (make_span(trace_id), trace_id);
    }
    let carrier = Lookup(header, PhantomData);
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    let remote = parent.span().span_context().trace_id();
    let trace_id = if remote == TraceId::INVALID { new_trace_id() } else { u128::from_be_bytes(remote.to_bytes()) };
    let span = make_span(trace_id);
    // Fails only when the span is filtered out of the exporter.
    let _ = span.set_parent(parent);
    // Start the exported span now, so a new trace gets the id the span's fields
    // (and the problem body) already name.
    telemetry::with_trace_id_for_new_trace(trace_id, || span.context());
    (span, trace_id)
}

fn new_trace_id() -> u128 {
    rand::rng().random::<u128>() | 1
}

/// Outbox headers for a message written now: the current span's context when
/// exporting, else a `traceparent` continuing the current trace with a new span
/// id. Empty outside any trace.
pub fn current_headers() -> Value {
    if exporting_traces() {
        let mut headers = Map::new();
        let context = Span::current().context();
        if context.span().span_context().is_valid() {
            opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(&context, &mut JsonHeaders(&mut headers))
            });
            return Value::Object(headers);
        }
    }
    TRACE_ID
        .try_with(|trace_id| {
            let span_id = rand::rng().random::<u64>() | 1;
            json!({ "traceparent": format!("00-{trace_id:032x}-{span_id:016x}-01") })
        })
        .unwrap_or_else(|_| json!({}))
}

/// Names an exported server span after the route its request matched, which is
/// known only after the span started. Set on the OpenTelemetry span directly,
/// not as `tracing` fields: the log layer would re-format the span's fields (for
/// JSON, parse and re-serialise them) on every record. Nothing when not exporting.
pub fn set_route(span: &Span, method: &str, route: &str) {
    if exporting_traces() {
        span.set_attribute("http.route", route.to_owned());
        span.context().span().update_name(format!("{method} {route}"));
    }
}

/// Records an exported server span's response status; 5xx marks it failed.
pub fn set_response_status(span: &Span, status: u16) {
    if exporting_traces() {
        span.set_attribute("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.set_status(Status::error(""));
        }
    }
}

/// Makes `span` continue the trace an outbox row's stored headers carry.
pub fn continue_stored(span: &Span, stored: &Value) -> Option<u128> {
    let empty = Map::new();
    continue_from(span, &StoredHeaders(stored.as_object().unwrap_or(&empty)))
}

/// Makes `span` continue the trace an AMQP message's headers carry.
pub fn continue_message(span: &Span, headers: Option<&FieldTable>) -> Option<u128> {
    let empty = FieldTable::default();
    continue_from(span, &AmqpHeaders(headers.unwrap_or(&empty)))
}

/// AMQP headers for publishing an outbox row: its stored headers, with the trace
/// context replaced by `span`'s when exporting, so the consumer's span is the
/// publish span's child.
pub fn message_headers(stored: &Value, span: &Span) -> FieldTable {
    let mut headers = FieldTable::default();
    if let Some(object) = stored.as_object() {
        for (key, value) in object {
            if let Some(text) = value.as_str() {
                headers.insert(key.as_str().into(), AMQPValue::LongString(text.into()));
            }
        }
    }
    if exporting_traces() {
        let context = span.context();
        if context.span().span_context().is_valid() {
            opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(&context, &mut AmqpHeadersMut(&mut headers))
            });
        }
    }
    headers
}

/// Sets `span`'s parent to the remote context in `carrier` when exporting, and
/// returns the trace id `span` belongs to, if any, also recorded as its `trace_id`
/// field (when it declares one) so every log line in it names the trace.
fn continue_from(span: &Span, carrier: &dyn Extractor) -> Option<u128> {
    let trace_id = exported_trace_id(span, carrier).or_else(|| carrier.get("traceparent").and_then(trace_id_of));
    if let Some(trace_id) = trace_id {
        span.record("trace_id", tracing::field::display(format_args!("{trace_id:032x}")));
    }
    trace_id
}

fn exported_trace_id(span: &Span, carrier: &dyn Extractor) -> Option<u128> {
    if !exporting_traces() {
        return None;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier));
    // Fails only when the span is filtered out of the exporter: it then has no
    // trace of its own, and the remote trace id is still worth reporting.
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    (trace_id != TraceId::INVALID).then(|| u128::from_be_bytes(trace_id.to_bytes()))
}

/// The trace id of a valid W3C `traceparent` value.
fn trace_id_of(traceparent: &str) -> Option<u128> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    let valid = trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    u128::from_str_radix(trace_id, 16).ok().filter(|id| valid && *id != 0)
}

/// Headers read through a function, for carriers this crate does not know (HTTP).
struct Lookup<'h, F>(F, PhantomData<&'h ()>);

impl<'h, F: Fn(&str) -> Option<&'h str>> Extractor for Lookup<'h, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }

    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}

struct StoredHeaders<'a>(&'a Map<String, Value>);

impl Extractor for StoredHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct JsonHeaders<'a>(&'a mut Map<String, Value>);

impl Injector for JsonHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}

struct AmqpHeaders<'a>(&'a FieldTable);

impl Extractor for AmqpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(&ShortString::from(key))? {
            AMQPValue::LongString(text) => std::str::from_utf8(text.as_bytes()).ok(),
            AMQPValue::ShortString(text) => Some(text.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(ShortString::as_str).collect()
    }
}

struct AmqpHeadersMut<'a>(&'a mut FieldTable);

impl Injector for AmqpHeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.into(), AMQPValue::LongString(value.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_from_valid_traceparents() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(0x4bf92f3577b34da6a3ce929d0e0e4736)
        );
        assert_eq!(trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(
            trace_id_of("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            None,
            "upper case is not W3C"
        );
        assert_eq!(trace_id_of("garbage"), None);
    }

    #[tokio::test]
    async fn without_export_the_trace_id_travels_in_a_new_traceparent() {
        let headers = scope(0x4bf92f3577b34da6a3ce929d0e0e4736, async { current_headers() }).await;
        let traceparent = headers["traceparent"].as_str().expect("traceparent");
        assert_eq!(trace_id_of(traceparent), Some(0x4bf92f3577b34da6a3ce929d0e0e4736));
        assert_eq!(current_headers(), json!({}), "outside a request there is no trace");

        let table = message_headers(&headers, &Span::none());
        let span = Span::none();
        assert_eq!(continue_message(&span, Some(&table)), Some(0x4bf92f3577b34da6a3ce929d0e0e4736));
        assert_eq!(continue_stored(&span, &headers), Some(0x4bf92f3577b34da6a3ce929d0e0e4736));
        assert_eq!(continue_message(&span, None), None);
    }
}
