//! One parser of the Prometheus text exposition format (version 0.0.4), for every
//! test that reads a `/metrics` page. Strict: a line that is not a comment, a blank
//! or a well-formed sample fails the parse, so reading a page also checks it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One sample: a metric name, its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{} {}", self.name, Labels(&self.labels), self.value)
    }
}

struct Labels<'a>(&'a BTreeMap<String, String>);

impl fmt::Display for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        write!(f, "{{{}}}", pairs.join(","))
    }
}

/// A parsed `/metrics` page.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
    /// The page as served, for failure messages.
    text: String,
}

impl Metrics {
    /// Parses a page; the error names the first line that is not Prometheus text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut samples = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (sample, rest) = series(line).map_err(|e| format!("line {}: {e}: {line:?}", number + 1))?;
            let mut fields = rest.split_ascii_whitespace();
            let value = fields.next().ok_or_else(|| format!("line {}: no value: {line:?}", number + 1))?;
            let value = number_value(value).ok_or_else(|| format!("line {}: bad value: {line:?}", number + 1))?;
            // An optional timestamp (milliseconds), then nothing.
            if let Some(timestamp) = fields.next()
                && timestamp.parse::<i64>().is_err()
            {
                return Err(format!("line {}: bad timestamp: {line:?}", number + 1));
            }
            if fields.next().is_some() {
                return Err(format!("line {}: trailing text: {line:?}", number + 1));
            }
            samples.push(Sample { value, ..sample });
        }
        Ok(Self { samples, text: text.to_owned() })
    }

    /// GETs `url` and parses the page; the error says what went wrong.
    pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<Self, String> {
        let response = client.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
        if status != 200 {
            return Err(format!("{url}: {status}: {text}"));
        }
        Self::parse(&text)
    }

    /// GETs and parses `url`, or panics.
    pub async fn get(client: &reqwest::Client, url: &str) -> Self {
        Self::fetch(client, url).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The value of one series, written as on the page: `name` or
    /// `name{label="value",…}`, labels in any order, all of them given.
    pub fn value(&self, series_text: &str) -> Option<f64> {
        let (wanted, rest) = series(series_text).unwrap_or_else(|e| panic!("{e}: {series_text:?}"));
        assert!(rest.trim().is_empty(), "a series, not a sample: {series_text:?}");
        self.samples.iter().find(|s| s.name == wanted.name && s.labels == wanted.labels).map(|s| s.value)
    }

    /// Every sample of `name`.
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The sum of every series of `name` (0 when there is none).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples(name).map(|s| s.value).sum()
    }

    /// The values of `name` by the value of its label `label`.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        self.samples(name).filter_map(|s| Some((s.labels.get(label)?.clone(), s.value))).collect()
    }

    /// The sample names on the page (a histogram's `_bucket`, `_sum` and `_count`).
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// The page as served.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A metric name and its labels at the start of `text`; returns the rest.
fn series(text: &str) -> Result<(Sample, &str), String> {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(text.len());
    let name = &text[..end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("no metric name".to_owned());
    }
    let mut rest = &text[end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = rest.split_once('=').ok_or("a label without `=`")?;
            let label = label.trim();
            if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad label name {label:?}"));
            }
            let (value, after) = quoted(after.trim_start())?;
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            rest = after.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err("text after the series".to_owned());
    }
    Ok((Sample { name: name.to_owned(), labels, value: f64::NAN }, rest))
}

/// A double-quoted label value with `\\`, `\"` and `\n` escapes; returns the rest.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let mut chars = text.strip_prefix('"').ok_or("a label value without quotes")?.char_indices();
    let mut value = String::new();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[at + 2..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                other => return Err(format!("bad escape {other:?}")),
            },
            c => value.push(c),
        }
    }
    Err("an unterminated label value".to_owned())
}

fn number_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP offndat_links_created_total Links created.
# TYPE offndat_links_created_total counter
offndat_links_created_total{language="en",theme="none"} 3
offndat_links_created_total{theme="none",language="pl"} 0

offndat_outbox_published_total 12 1700000000000
http_request_duration_seconds_bucket{route="/{phrase}",le="+Inf"} 7
http_request_duration_seconds_sum{route="/{phrase}"} 0.25
odd_total{path="a \"quoted\" \\ back\nslash, and } brace"} -Inf
gauge NaN
"#;

    #[test]
    fn a_page_parses_into_its_samples() {
        let page = Metrics::parse(PAGE).expect("parses");
        assert_eq!(page.value(r#"offndat_links_created_total{language="en",theme="none"}"#), Some(3.0));
        assert_eq!(page.value(r#"offndat_links_created_total{language="pl",theme="none"}"#), Some(0.0), "any order");
        assert_eq!(page.value(r#"offndat_links_created_total{language="en"}"#), None, "every label given");
        assert_eq!(page.value("offndat_outbox_published_total"), Some(12.0), "a timestamp after the value");
        assert_eq!(page.value(r#"http_request_duration_seconds_bucket{le="+Inf",route="/{phrase}"}"#), Some(7.0));
        assert_eq!(
            page.value(r#"odd_total{path="a \"quoted\" \\ back\nslash, and } brace"}"#),
            Some(f64::NEG_INFINITY)
        );
        assert!(page.value("gauge").expect("gauge").is_nan());
        assert_eq!(page.sum("offndat_links_created_total"), 3.0);
        assert_eq!(page.sum("absent_total"), 0.0);
        assert_eq!(
            page.by_label("offndat_links_created_total", "language"),
            BTreeMap::from([("en".to_owned(), 3.0), ("pl".to_owned(), 0.0)])
        );
        assert_eq!(
            page.names().into_iter().collect::<Vec<_>>(),
            [
                "gauge",
                "http_request_duration_seconds_bucket",
                "http_request_duration_seconds_sum",
                "odd_total",
                "offndat_links_created_total",
                "offndat_outbox_published_total",
            ]
        );
        let odd = page.samples("odd_total").next().expect("odd");
        assert_eq!(odd.labels["path"], "a \"quoted\" \\ back\nslash, and } brace");
    }

    #[test]
    fn what_is_not_prometheus_text_is_refused_with_its_line() {
        for (page, problem) in [
            ("ok 1\nbroken{a=\"b\" 2", "line 2"),
            ("name{a=b} 1", "without quotes"),
            ("name{a=\"b\"} one", "bad value"),
            ("name 1 2 3", "trailing text"),
            ("name 1 soon", "bad timestamp"),
            ("name", "no value"),
            ("{a=\"b\"} 1", "no metric name"),
            ("name{a=\"b\",a=\"c\"} 1", "twice"),
            ("name{a=\"\\t\"} 1", "bad escape"),
            ("<html>", "no metric name"),
        ] {
            let error = Metrics::parse(page).expect_err(page);
            assert!(error.contains(problem), "{page:?}: {error}");
        }
    }
}
