//! Span fields for JSON logs, written straight into the span's buffer as a JSON
//! object. tracing-subscriber's `JsonFields` collects them into a `BTreeMap` of
//! `serde_json::Value`s (a string each) and serialises that: seven allocations
//! and a sort for every span, and every request opens one. The JSON event
//! formatter parses these fields back when a line is written, as it does
//! tracing-subscriber's, so log lines are unchanged.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::Writer;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        writer.write_char('{')?;
        let mut members = Members { out: &mut writer, first: true, result: Ok(()) };
        fields.record(&mut members);
        members.result?;
        writer.write_char('}')
    }

    /// Appends before the closing brace. A field recorded again appears twice;
    /// the event formatter's parse keeps the later value, as a record should.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if current.fields.is_empty() {
            return self.format_fields(current.as_writer(), fields);
        }
        if !current.fields.ends_with('}') {
            return Err(fmt::Error);
        }
        let before = current.fields.len();
        current.fields.pop();
        let first = current.fields.ends_with('{');
        let mut writer = current.as_writer();
        let mut members = Members { out: &mut writer, first, result: Ok(()) };
        fields.record(&mut members);
        let appended = members.result.and_then(|()| writer.write_char('}'));
        if appended.is_err() {
            // A value that failed to format leaves the fields as they were,
            // still a JSON object.
            current.fields.truncate(before - 1);
            current.fields.push('}');
        }
        appended
    }
}

/// Writes each field as a `"name":value` member of the object being written.
struct Members<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<W: Write> Members<'_, W> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let separator = if std::mem::take(&mut self.first) { "" } else { "," };
        self.result = (|| {
            self.out.write_str(separator)?;
            write_string(self.out, |escaped| escaped.write_str(name))?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: Write> Visit for Members<'_, W> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json writes them as null too.
        // `{:?}` keeps a float a float (`1.0`, `1e19`), as serde_json writes it.
        self.member(field, |out| if value.is_finite() { write!(out, "{value:?}") } else { out.write_str("null") });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| write!(out, "{value}"));
    }

    // 128-bit integers go through `record_debug` (a string), as with
    // `JsonFields`: a JSON reader may hold no wider number than 64 bits.

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| write_string(out, |escaped| escaped.write_str(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| write_string(out, |escaped| write!(escaped, "{value:?}")));
    }
}

/// Writes a JSON string whose content `content` writes, escaped on the way.
fn write_string<W: Write>(out: &mut W, content: impl FnOnce(&mut Escaped<'_, W>) -> fmt::Result) -> fmt::Result {
    out.write_char('"')?;
    content(&mut Escaped(out))?;
    out.write_char('"')
}

/// Escapes what is written through it for the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = at + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Log lines written by a JSON fmt layer with these span fields.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(work: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .fmt_fields(JsonSpanFields)
            .with_writer(move || writer.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), work);
        let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
    }

    #[test]
    fn span_fields_of_every_kind_reach_the_line_as_json_values() {
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓";
        let lines = logged(|| {
            let span = tracing::info_span!(
                "request",
                text = awkward,
                r#type = "raw",
                signed = -3i64,
                unsigned = 7u64,
                wide = u128::MAX,
                ratio = 0.5f64,
                whole = 1.0f64,
                nan = f64::NAN,
                flag = true,
                shown = %format_args!("{:032x}", 0xabcu128),
                debugged = ?Some("x"),
            );
            span.in_scope(|| tracing::info!("inside"));
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0]["span"],
            json!({
                "name": "request",
                "text": awkward,
                "type": "raw",
                "signed": -3,
                "unsigned": 7,
                "wide": u128::MAX.to_string(),
                "ratio": 0.5,
                "whole": 1.0,
                "nan": null,
                "flag": true,
                "shown": "00000000000000000000000000000abc",
                "debugged": "Some(\"x\")",
            })
        );
    }

    #[test]
    fn fields_recorded_later_are_added_and_a_field_recorded_again_takes_its_new_value() {
        let lines = logged(|| {
            let span = tracing::info_span!("work", first = 1u64, later = tracing::field::Empty, again = "old");
            span.record("later", "set");
            span.record("again", "new");
            span.in_scope(|| tracing::info!("inside"));
            let empty = tracing::info_span!("empty", later = tracing::field::Empty);
            empty.record("later", 2u64);
            empty.in_scope(|| tracing::info!("inside empty"));
        });
        assert_eq!(lines[0]["span"], json!({"name": "work", "first": 1, "later": "set", "again": "new"}));
        assert_eq!(lines[1]["span"], json!({"name": "empty", "later": 2}));
    }
}
