//! What operators are promised is what the binaries export: every metric named in
//! docs/operations.md, in the Grafana dashboard and in the alert rules is on the
//! real binaries' `/metrics` from the start, before anything happened.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use offndat_test_support::Metrics;

use crate::helpers::eventually;
use crate::system::System;

fn repository_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Names of this service's metrics (`offndat_*`, `http_request*`) in `text`;
/// `offndat_api::…` log targets and `offndat_x=debug` filters are not metrics.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["offndat_", "http_request"] {
        for (at, _) in text.match_indices(prefix) {
            let preceded = text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let name: String =
                text[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            let rest = &text[at + name.len()..];
            if !preceded && !rest.starts_with("::") && !rest.starts_with('=') {
                names.insert(name);
            }
        }
    }
    names
}

/// Whether `name` (a sample name, or a histogram's base name) is on the page.
fn is_exported(exported: &BTreeSet<String>, name: &str) -> bool {
    exported.contains(name) || exported.contains(&format!("{name}_bucket"))
}

/// The PromQL of every panel of the dashboard and every alert rule.
fn queries() -> Vec<(String, String)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&repository_file("deploy/grafana/offndat-dashboard.json")).expect("dashboard JSON");
    let mut queries = Vec::new();
    let mut stack = vec![dashboard];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                    queries.push(("dashboard".to_owned(), expr.clone()));
                }
                stack.extend(map.into_iter().map(|(_, v)| v));
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    // The rules' `expr:` values, one line or a `|` block of indented lines.
    let alerts = repository_file("deploy/compose/alerts.yml");
    let mut lines = alerts.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((indent, expr)) = line.split_once("expr:") else { continue };
        let mut expr = expr.trim().to_owned();
        if expr == "|" {
            expr.clear();
            while let Some(next) = lines.peek() {
                if next.len() - next.trim_start().len() <= indent.len() && !next.trim().is_empty() {
                    break;
                }
                expr.push_str(next.trim());
                expr.push(' ');
                lines.next();
            }
        }
        queries.push(("alerts.yml".to_owned(), expr));
    }
    queries
}

/// Metrics of others that the rules also read: Prometheus' own `up` and
/// RabbitMQ's queue depth.
fn is_foreign(query: &str) -> bool {
    query.contains("up{") || query.contains("rabbitmq_")
}

#[tokio::test]
async fn every_metric_in_the_docs_dashboard_and_alerts_is_exported_from_the_start() {
    let system = System::new().await;
    let api = system.start_api().await;
    let worker = system.start_worker().await;
    let api_page = system.api_metrics().await;
    let worker_page = eventually(Duration::from_secs(30), "the worker serves /metrics", || async {
        Metrics::fetch(&system.client, &system.worker_url("/metrics")).await
    })
    .await;
    let exported: BTreeSet<String> = api_page.names().into_iter().chain(worker_page.names()).collect();

    let operations = repository_file("docs/operations.md");
    // The metrics and alerts tables of docs/operations.md.
    let documented =
        metric_names(&operations.lines().filter(|line| line.starts_with('|')).collect::<Vec<_>>().join("\n"));
    assert!(documented.len() >= 15, "the docs' metrics table was found: {documented:?}");
    let missing: Vec<_> = documented.iter().filter(|name| !is_exported(&exported, name)).collect();
    assert!(missing.is_empty(), "documented but not exported at start: {missing:?}\n{api_page}\n{worker_page}");

    let queries = queries();
    assert!(queries.len() >= 20, "the dashboard and alert queries were found: {queries:?}");
    for (source, query) in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty() || is_foreign(query), "{source}: `{query}` names none of the service's metrics");
        for name in &names {
            assert!(is_exported(&exported, name), "{source}: `{query}` reads `{name}`, which neither binary exports");
            let base = ["_bucket", "_count", "_sum"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
            assert!(documented.contains(base), "{source}: `{name}` is not in docs/operations.md");
        }
    }

    system.stop(worker).await;
    system.stop(api).await;
}

#[test]
fn metric_names_skip_log_targets_and_filters() {
    let names = metric_names(
        "`offndat_api::request_context=debug` warn,offndat_infrastructure=debug \
         rate(offndat_outbox_published_total[5m]) http_request_duration_seconds_bucket{le}",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["http_request_duration_seconds_bucket", "offndat_outbox_published_total"]
    );
}
