//! The server's metrics in Prometheus' text format (`GET /metrics`): queries by protocol and
//! outcome with a latency histogram and the requests in flight, counted as they happen; the
//! datasets' and engine generations' state, read when scraped.

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Host;
use crate::dataset::Datasets;
use crate::dataset::status::DatasetState;

/// Which front a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Flight,
    Http,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flight => "flight",
            Self::Http => "http",
        })
    }
}

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every row was sent.
    Ok,
    /// It failed (bad SQL, or an error while running).
    Error,
    /// Refused: it would write on a read-only server.
    Refused,
    /// The client went away before the last row.
    Cancelled,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        })
    }
}

type Labels = Vec<(&'static str, String)>;
type HistogramMaker = fn() -> Histogram;

/// Counted as requests happen.
pub struct Metrics {
    queries: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, HistogramMaker>,
    in_flight: Family<Labels, Gauge>,
    unauthenticated: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            queries: Family::default(),
            // 0.5 ms to ~33 s.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 17))
            }),
            in_flight: Family::default(),
            unauthenticated: Family::default(),
        }
    }
}

/// Counts a request as in flight until dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Records a finished query; `latency` is `None` when it never started running.
    pub fn query_done(&self, protocol: Protocol, outcome: Outcome, latency: Option<Duration>) {
        self.queries
            .get_or_create(&vec![
                ("protocol", protocol.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
        if let Some(latency) = latency {
            self.latency
                .get_or_create(&vec![("protocol", protocol.to_string())])
                .observe(latency.as_secs_f64());
        }
    }

    /// Counts one request in flight until the returned guard drops.
    pub fn in_flight(&self, protocol: Protocol) -> InFlight {
        let gauge = self
            .in_flight
            .get_or_create(&vec![("protocol", protocol.to_string())])
            .clone();
        gauge.inc();
        InFlight(gauge)
    }

    /// Counts a request refused for a missing or wrong API key.
    pub fn unauthenticated(&self, protocol: Protocol) {
        self.unauthenticated
            .get_or_create(&vec![("protocol", protocol.to_string())])
            .inc();
    }

    /// Everything in Prometheus' (OpenMetrics) text format.
    pub async fn render(&self, host: &Host, datasets: &Datasets) -> String {
        let mut registry = Registry::with_prefix("accel");
        registry.register(
            "queries",
            "Statements received, by protocol and outcome",
            self.queries.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time from the start of a statement to its last row",
            self.latency.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Queries running or streaming, by protocol",
            self.in_flight.clone(),
        );
        registry.register(
            "unauthenticated_requests",
            "Requests refused for a missing or wrong API key",
            self.unauthenticated.clone(),
        );
        register_datasets(&mut registry, datasets).await;
        register_engines(&mut registry, host).await;
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &registry);
        text
    }
}

async fn register_datasets(registry: &mut Registry, datasets: &Datasets) {
    let loaded = Family::<Labels, Gauge>::default();
    let state = Family::<Labels, Gauge>::default();
    let rows = Family::<Labels, Gauge>::default();
    let refreshes = Family::<Labels, Counter>::default();
    let failures = Family::<Labels, Counter>::default();
    let duration = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for row in datasets.rows().await {
        let dataset = vec![("dataset", row.name.clone())];
        let status = &row.status;
        loaded.get_or_create(&dataset).set(i64::from(status.loaded));
        for each in [
            DatasetState::Initializing,
            DatasetState::Ready,
            DatasetState::Refreshing,
            DatasetState::Error,
            DatasetState::Disabled,
        ] {
            let mut labels = dataset.clone();
            labels.push(("state", each.to_string()));
            state
                .get_or_create(&labels)
                .set(i64::from(status.state == each));
        }
        if let Some(count) = status.rows {
            rows.get_or_create(&dataset)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        refreshes.get_or_create(&dataset).inc_by(status.refreshes);
        failures.get_or_create(&dataset).inc_by(status.failures);
        if let Some(last) = status.last_refresh_duration {
            duration.get_or_create(&dataset).set(last.as_secs_f64());
        }
    }
    registry.register(
        "dataset_loaded",
        "1 once the dataset has been served (loaded or opened from its file)",
        loaded,
    );
    registry.register("dataset_state", "1 for the state the dataset is in", state);
    registry.register(
        "dataset_rows",
        "Rows held after the last successful refresh",
        rows,
    );
    registry.register(
        "dataset_refreshes",
        "Successful refreshes since start-up",
        refreshes,
    );
    registry.register(
        "dataset_refresh_failures",
        "Failed refresh attempts since start-up",
        failures,
    );
    registry.register(
        "dataset_last_refresh_duration_seconds",
        "How long the last refresh took",
        duration,
    );
}

async fn register_engines(registry: &mut Registry, host: &Host) {
    let generations = Family::<Labels, Gauge>::default();
    for (engine, tables) in host.generations().await {
        let labels = vec![
            ("engine", engine.name().to_owned()),
            ("version", engine.version.to_string()),
            ("plugin_api", engine.api_version.clone()),
            ("state", engine.state().to_string()),
            ("origin", engine.origin.to_string()),
        ];
        generations
            .get_or_create(&labels)
            .set(i64::try_from(tables.len()).unwrap_or(i64::MAX));
    }
    registry.register(
        "engine_generation_tables",
        "Tables served by each engine generation (one series per generation)",
        generations,
    );
}
