//! Per-app request counters and latency histograms, lock-free on the request path
//! except for a read lock to find the app's entry.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde_json::json;

use crate::codes::ErrorCode;

const BUCKETS: usize = 80;
/// Upper bound of the first bucket, in microseconds; each next bucket is 25 % wider.
const FIRST_BOUND_US: f64 = 100.0;
const GROWTH: f64 = 1.25;

fn bucket_bound_us(i: usize) -> f64 {
    FIRST_BOUND_US * GROWTH.powi(i as i32)
}

fn bucket_index(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    if us <= FIRST_BOUND_US {
        return 0;
    }
    let i = ((us / FIRST_BOUND_US).ln() / GROWTH.ln()).ceil() as usize;
    i.min(BUCKETS - 1)
}

struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }

    fn record(&self, d: Duration) {
        self.counts[bucket_index(d)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn snapshot(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.counts[i].load(Relaxed))
    }

    /// Upper bound (ms) of the bucket holding the q-quantile; None when empty.
    fn quantile_ms(snap: &[u64; BUCKETS], q: f64) -> Option<f64> {
        let total: u64 = snap.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in snap.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some((bucket_bound_us(i) / 1000.0 * 100.0).round() / 100.0);
            }
        }
        None
    }
}

/// Counters for one app.
pub(crate) struct AppMetrics {
    requests: AtomicU64,
    /// 1xx..5xx; anything else (499) counts as 4xx.
    classes: [AtomicU64; 5],
    in_flight: AtomicI64,
    /// Nanoseconds after `Metrics::epoch` + 1; 0 means never.
    last_request_ns: AtomicU64,
    bytes: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    latency: Histogram,
}

impl AppMetrics {
    fn new() -> Self {
        AppMetrics {
            requests: AtomicU64::new(0),
            classes: std::array::from_fn(|_| AtomicU64::new(0)),
            in_flight: AtomicI64::new(0),
            last_request_ns: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            latency: Histogram::new(),
        }
    }
}

/// Router metrics: Prometheus text, per-app JSON summaries, and the last request time
/// the dyno manager uses to idle apps.
pub struct Metrics {
    epoch: Instant,
    apps: RwLock<HashMap<String, Arc<AppMetrics>>>,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            epoch: Instant::now(),
            apps: RwLock::new(HashMap::new()),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub(crate) fn app(&self, app_id: &str) -> Arc<AppMetrics> {
        if let Some(m) = self.apps.read().get(app_id) {
            return m.clone();
        }
        self.apps
            .write()
            .entry(app_id.to_string())
            .or_insert_with(|| Arc::new(AppMetrics::new()))
            .clone()
    }

    /// Called when a request for the app arrives.
    pub(crate) fn begin(&self, app: &AppMetrics) {
        self.begin_at(app, Instant::now());
    }

    /// [`Metrics::begin`] for a request that arrived at `at`.
    pub(crate) fn begin_at(&self, app: &AppMetrics, at: Instant) {
        app.in_flight.fetch_add(1, Relaxed);
        let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64 + 1;
        app.last_request_ns.store(ns, Relaxed);
    }

    /// Called once when the request is over (response sent, failed or abandoned).
    pub(crate) fn end(
        &self,
        app: &AppMetrics,
        status: u16,
        code: Option<ErrorCode>,
        took: Duration,
        bytes: u64,
    ) {
        app.in_flight.fetch_sub(1, Relaxed);
        app.requests.fetch_add(1, Relaxed);
        let class = ((status / 100).clamp(1, 5) - 1) as usize;
        app.classes[class].fetch_add(1, Relaxed);
        app.bytes.fetch_add(bytes, Relaxed);
        app.latency.record(took);
        if let Some(code) = code {
            *app.errors.lock().entry(code.as_str()).or_insert(0) += 1;
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    /// Client connections currently open.
    pub fn connections_open(&self) -> i64 {
        self.connections_open.load(Relaxed)
    }

    /// When the router last received a request for the app.
    pub fn last_request(&self, app_id: &str) -> Option<Instant> {
        let ns = self.apps.read().get(app_id)?.last_request_ns.load(Relaxed);
        if ns == 0 {
            return None;
        }
        Some(self.epoch + Duration::from_nanos(ns - 1))
    }

    /// `{"requests", "status": {"2xx": n, ...}, "errors": {"H12": n}, "p50_ms", "p95_ms",
    /// "p99_ms", "in_flight", "bytes", "last_request_at"}`; zeros for an unknown app.
    pub fn app_summary(&self, app_id: &str) -> serde_json::Value {
        let Some(app) = self.apps.read().get(app_id).cloned() else {
            return json!({
                "requests": 0, "status": {}, "errors": {}, "p50_ms": null, "p95_ms": null,
                "p99_ms": null, "in_flight": 0, "bytes": 0, "last_request_at": null,
            });
        };
        let snap = app.latency.snapshot();
        let mut status = serde_json::Map::new();
        for (i, c) in app.classes.iter().enumerate() {
            status.insert(format!("{}xx", i + 1), json!(c.load(Relaxed)));
        }
        let errors: serde_json::Map<String, serde_json::Value> = app
            .errors
            .lock()
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let last_request_at = self.last_request(app_id).map(|at| {
            let ago = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
            (chrono::Utc::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
        json!({
            "requests": app.requests.load(Relaxed),
            "status": status,
            "errors": errors,
            "p50_ms": Histogram::quantile_ms(&snap, 0.50),
            "p95_ms": Histogram::quantile_ms(&snap, 0.95),
            "p99_ms": Histogram::quantile_ms(&snap, 0.99),
            "in_flight": app.in_flight.load(Relaxed).max(0),
            "bytes": app.bytes.load(Relaxed),
            "last_request_at": last_request_at,
        })
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus_text(&self) -> String {
        const LE_SECONDS: [f64; 13] = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ];
        let mut apps: Vec<(String, Arc<AppMetrics>)> = self
            .apps
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        apps.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP hoist_router_connections_open Client connections open."
        );
        let _ = writeln!(out, "# TYPE hoist_router_connections_open gauge");
        let _ = writeln!(
            out,
            "hoist_router_connections_open {}",
            self.connections_open()
        );
        let _ = writeln!(
            out,
            "# HELP hoist_router_connections_total Client connections accepted."
        );
        let _ = writeln!(out, "# TYPE hoist_router_connections_total counter");
        let _ = writeln!(
            out,
            "hoist_router_connections_total {}",
            self.connections_total.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hoist_router_requests_total Requests by app and status class."
        );
        let _ = writeln!(out, "# TYPE hoist_router_requests_total counter");
        for (id, m) in &apps {
            for (i, c) in m.classes.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "hoist_router_requests_total{{app=\"{}\",class=\"{}xx\"}} {}",
                    escape(id),
                    i + 1,
                    c.load(Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hoist_router_errors_total Router error codes by app."
        );
        let _ = writeln!(out, "# TYPE hoist_router_errors_total counter");
        for (id, m) in &apps {
            for (code, n) in m.errors.lock().iter() {
                let _ = writeln!(
                    out,
                    "hoist_router_errors_total{{app=\"{}\",code=\"{code}\"}} {n}",
                    escape(id)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hoist_router_in_flight Requests in flight by app."
        );
        let _ = writeln!(out, "# TYPE hoist_router_in_flight gauge");
        for (id, m) in &apps {
            let _ = writeln!(
                out,
                "hoist_router_in_flight{{app=\"{}\"}} {}",
                escape(id),
                m.in_flight.load(Relaxed).max(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hoist_router_request_duration_seconds Time from request to end of response."
        );
        let _ = writeln!(
            out,
            "# TYPE hoist_router_request_duration_seconds histogram"
        );
        for (id, m) in &apps {
            let snap = m.latency.snapshot();
            let total: u64 = snap.iter().sum();
            for le in LE_SECONDS {
                // Fine buckets whose upper bound fits under `le`.
                let n: u64 = snap
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bucket_bound_us(*i) <= le * 1e6)
                    .map(|(_, c)| c)
                    .sum();
                let _ = writeln!(
                    out,
                    "hoist_router_request_duration_seconds_bucket{{app=\"{}\",le=\"{le}\"}} {n}",
                    escape(id)
                );
            }
            let _ = writeln!(
                out,
                "hoist_router_request_duration_seconds_bucket{{app=\"{}\",le=\"+Inf\"}} {total}",
                escape(id)
            );
            let _ = writeln!(
                out,
                "hoist_router_request_duration_seconds_sum{{app=\"{}\"}} {}",
                escape(id),
                m.latency.sum_us.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "hoist_router_request_duration_seconds_count{{app=\"{}\"}} {total}",
                escape(id)
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_minutes() {
        assert_eq!(bucket_index(Duration::from_micros(50)), 0);
        let mut prev = 0;
        for ms in [1, 2, 5, 10, 100, 1000, 30_000] {
            let i = bucket_index(Duration::from_millis(ms));
            assert!(i >= prev);
            assert!(bucket_bound_us(i) >= (ms * 1000) as f64);
            prev = i;
        }
    }

    #[test]
    fn summary_and_prometheus() {
        let m = Metrics::default();
        assert!(m.last_request("a").is_none());
        let app = m.app("a");
        for ms in 1..=100 {
            m.begin(&app);
            m.end(&app, 200, None, Duration::from_millis(ms), 10);
        }
        m.begin(&app);
        m.end(&app, 503, Some(ErrorCode::H12), Duration::from_secs(30), 0);
        let s = m.app_summary("a");
        assert_eq!(s["requests"], 101);
        assert_eq!(s["status"]["2xx"], 100);
        assert_eq!(s["status"]["5xx"], 1);
        assert_eq!(s["errors"]["H12"], 1);
        let p50 = s["p50_ms"].as_f64().unwrap();
        assert!((50.0..70.0).contains(&p50), "{p50}");
        assert!(s["p99_ms"].as_f64().unwrap() >= 99.0);
        assert!(m.last_request("a").is_some());
        let text = m.prometheus_text();
        assert!(text.contains("hoist_router_requests_total{app=\"a\",class=\"2xx\"} 100"));
        assert!(text.contains("hoist_router_errors_total{app=\"a\",code=\"H12\"} 1"));
        assert!(text.contains("hoist_router_request_duration_seconds_count{app=\"a\"} 101"));
    }
}
