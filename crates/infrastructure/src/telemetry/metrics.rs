//! The Prometheus recorder both binaries serve at `/metrics`.

/// Histogram buckets, in seconds, for every metric named `*_seconds`: from a
/// cached redirect (100 µs) to a slow batch (10 s). Buckets (rather than the exporter's default summaries)
/// can be aggregated across replicas.
const SECONDS_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide Prometheus recorder's handle; `render()` it to serve `/metrics`.
///
/// The recorder is installed on the first call and shared afterwards, so the API,
/// the worker and tests running several apps in one process can all call this. If
/// another recorder was installed first, metrics recorded through the `metrics`
/// macros go there and this handle renders an empty registry (logged once).
pub fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    use std::sync::OnceLock;

    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            // Only fails for an empty bucket list, which the constant is not.
            let builder = match builder.set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
            {
                Ok(with_buckets) => with_buckets,
                Err(_) => PrometheusBuilder::new(),
            };
            match builder.install_recorder() {
                Ok(handle) => {
                    spawn_upkeep(handle.clone());
                    handle
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cannot install the Prometheus recorder; /metrics will be empty");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Histogram samples pile up between scrapes; upkeep folds them in even when
/// nobody scrapes. A plain thread, so the handle works with or without a runtime.
fn spawn_upkeep(handle: metrics_exporter_prometheus::PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".to_owned()).spawn(move || {
        loop {
            // Often enough that samples queued under heavy load stay few.
            std::thread::sleep(std::time::Duration::from_secs(1));
            handle.run_upkeep();
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(error = %error, "cannot start the metrics upkeep thread; /metrics renders still fold samples in");
    }
}
