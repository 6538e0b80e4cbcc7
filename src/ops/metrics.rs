//! Prometheus metrics: a small in-house registry (label values are `&'static str`, so the
//! series count is bounded by the code, never by clients) and the text exposition format.
//! Other modules call the recording functions below; `ops::health` serves [`render`].
//!
//! One registry per process: the daemon is one process, and counters only ever grow, so
//! in-process tests that share it assert on differences, never on absolute values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Latency buckets in seconds: directory calls and requests are sub-millisecond (embedded)
/// to a few seconds (a slow LDAP server).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a counter map inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A family of counters (`u64`) or gauges (`i64`) with `N` labels.
struct Family<const N: usize, V> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    values: Mutex<BTreeMap<[&'static str; N], V>>,
}

/// Monotonic counters.
type Counter<const N: usize> = Family<N, u64>;
/// Values that go up and down.
type Gauge<const N: usize> = Family<N, i64>;

impl<const N: usize, V: Copy + Default + std::fmt::Display> Family<N, V> {
    const fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Family {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn render(&self, out: &mut String, kind: &str) {
        header(out, self.name, self.help, kind);
        for (values, v) in lock(&self.values).iter() {
            let _ = writeln!(
                out,
                "{}{} {v}",
                self.name,
                labels(&self.labels, values, None)
            );
        }
    }
}

impl<const N: usize> Counter<N> {
    fn inc(&self, values: [&'static str; N]) {
        *lock(&self.values).entry(values).or_insert(0) += 1;
    }
}

impl<const N: usize> Gauge<N> {
    fn add(&self, values: [&'static str; N], delta: i64) {
        *lock(&self.values).entry(values).or_insert(0) += delta;
    }
}

#[derive(Default)]
struct HistData {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A histogram family with `N` labels and [`LATENCY_BUCKETS`].
struct Histogram<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    values: Mutex<BTreeMap<[&'static str; N], HistData>>,
}

impl<const N: usize> Histogram<N> {
    const fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Histogram {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn observe(&self, values: [&'static str; N], seconds: f64) {
        let mut map = lock(&self.values);
        let h = map.entry(values).or_default();
        if h.buckets.is_empty() {
            h.buckets = vec![0; LATENCY_BUCKETS.len()];
        }
        for (bound, count) in LATENCY_BUCKETS.iter().zip(h.buckets.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        for (values, h) in lock(&self.values).iter() {
            for (bound, count) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
                let le = format!("{bound}");
                let _ = writeln!(
                    out,
                    "{}_bucket{} {count}",
                    self.name,
                    labels(&self.labels, values, Some(&le))
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                self.name,
                labels(&self.labels, values, Some("+Inf")),
                h.count
            );
            let l = labels(&self.labels, values, None);
            let _ = writeln!(out, "{}_sum{l} {}", self.name, h.sum);
            let _ = writeln!(out, "{}_count{l} {}", self.name, h.count);
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value for the text format (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(names: &[&str], values: &[&str], le: Option<&str>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Every metric of the process.
struct Metrics {
    requests: Counter<2>,
    request_duration: Histogram<1>,
    auth: Counter<2>,
    directory_duration: Histogram<1>,
    directory_errors: Counter<1>,
    cache: Counter<1>,
    connections: Counter<1>,
    active_connections: Gauge<1>,
    tls_failures: Counter<1>,
    proxy_rejected: Counter<1>,
    reloads: Counter<1>,
    throttled: Counter<1>,
    started: SystemTime,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    requests: Counter::new(
        "autodiscoverd_requests_total",
        "Requests by endpoint and outcome (settings, redirectAddr, error codes, unauthorized, ...).",
        ["endpoint", "outcome"],
    ),
    request_duration: Histogram::new(
        "autodiscoverd_request_duration_seconds",
        "Time from request head to response, by endpoint.",
        ["endpoint"],
    ),
    auth: Counter::new(
        "autodiscoverd_auth_total",
        "Authentication attempts by method (basic, ntlm, negotiate, other) and result.",
        ["method", "result"],
    ),
    directory_duration: Histogram::new(
        "autodiscoverd_directory_duration_seconds",
        "Directory call latency by operation.",
        ["op"],
    ),
    directory_errors: Counter::new(
        "autodiscoverd_directory_errors_total",
        "Directory calls that failed (unavailable or timed out), by operation.",
        ["op"],
    ),
    cache: Counter::new(
        "autodiscoverd_directory_cache_total",
        "Directory cache lookups by result (hit, miss); hit ratio = hit / (hit + miss).",
        ["result"],
    ),
    connections: Counter::new(
        "autodiscoverd_connections_total",
        "Accepted connections by listener kind.",
        ["listener"],
    ),
    active_connections: Gauge::new(
        "autodiscoverd_active_connections",
        "Open client connections by listener kind.",
        ["listener"],
    ),
    tls_failures: Counter::new(
        "autodiscoverd_tls_handshake_failures_total",
        "TLS handshakes that failed or timed out.",
        ["reason"],
    ),
    proxy_rejected: Counter::new(
        "autodiscoverd_proxy_protocol_rejected_total",
        "Connections refused on PROXY protocol listeners (untrusted peer, bad header, timeout).",
        ["reason"],
    ),
    reloads: Counter::new(
        "autodiscoverd_reloads_total",
        "Configuration reloads (SIGHUP) by result.",
        ["result"],
    ),
    throttled: Counter::new(
        "autodiscoverd_auth_throttled_total",
        "Authentication attempts slowed or refused by the failed-login throttle, by action (delayed, too_many_requests, refused).",
        ["action"],
    ),
    started: SystemTime::now(),
}
});

/// What the Autodiscover handler decided, attached to the response as an extension so the
/// listener can count it without knowing the handler's internals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOutcome {
    pub outcome: &'static str,
    /// A user was authenticated for this request.
    pub authenticated: bool,
}

/// A bounded endpoint name for a request path (metrics label and access-log field).
pub fn endpoint_label(path: &str) -> &'static str {
    match path.to_ascii_lowercase().as_str() {
        "/autodiscover/autodiscover.xml" => "autodiscover.xml",
        "/autodiscover/autodiscover.svc" => "autodiscover.svc",
        "/autodiscover/autodiscover.svc/wssecurity" => "autodiscover.svc",
        "/autodiscover/healthcheck.htm" => "healthcheck",
        p if p.starts_with("/autodiscover/autodiscover.json") => "autodiscover.json",
        p if p.starts_with("/autodiscover/") => "autodiscover.other",
        _ => "other",
    }
}

/// Counts one request on an Autodiscover listener.
pub fn request(endpoint: &'static str, outcome: &'static str, elapsed: Duration) {
    METRICS.requests.inc([endpoint, outcome]);
    METRICS
        .request_duration
        .observe([endpoint], elapsed.as_secs_f64());
}

/// Counts one authentication result (`method`: basic, ntlm, negotiate, other; `result`:
/// success, failure, continue, refused_insecure, unavailable).
pub fn auth(method: &'static str, result: &'static str) {
    METRICS.auth.inc([method, result]);
}

/// Records one directory call (`op`: find, verify_password, nt_credential, ...).
pub fn directory(op: &'static str, elapsed: Duration, failed: bool) {
    METRICS
        .directory_duration
        .observe([op], elapsed.as_secs_f64());
    if failed {
        METRICS.directory_errors.inc([op]);
    }
}

/// Times a directory call: `let t = DirectoryTimer::start("find"); ...; t.finish(&result)`.
pub struct DirectoryTimer {
    op: &'static str,
    started: Instant,
}

impl DirectoryTimer {
    /// Starts timing `op`.
    pub fn start(op: &'static str) -> DirectoryTimer {
        DirectoryTimer {
            op,
            started: Instant::now(),
        }
    }

    /// Records the call; an `Err` counts as a directory error.
    pub fn finish<T, E>(self, result: &Result<T, E>) {
        directory(self.op, self.started.elapsed(), result.is_err());
    }
}

/// A directory cache answered from memory (hook for the cache decorator).
pub fn cache_hit() {
    METRICS.cache.inc(["hit"]);
}

/// A directory cache had to ask the backend (hook for the cache decorator).
pub fn cache_miss() {
    METRICS.cache.inc(["miss"]);
}

/// A TLS handshake failed (`reason`: error, timeout).
pub fn tls_handshake_failure(reason: &'static str) {
    METRICS.tls_failures.inc([reason]);
}

/// A PROXY protocol connection was refused (`reason`: untrusted, malformed, timeout).
pub fn proxy_rejected(reason: &'static str) {
    METRICS.proxy_rejected.inc([reason]);
}

/// A SIGHUP reload finished (`ok` false: the old configuration keeps serving).
pub fn reload(ok: bool) {
    METRICS
        .reloads
        .inc([if ok { "success" } else { "failure" }]);
}

/// The failed-login throttle delayed or refused an attempt (`action`: delayed,
/// too_many_requests, refused).
pub fn throttled(action: &'static str) {
    METRICS.throttled.inc([action]);
}

/// Keeps `autodiscoverd_active_connections` up while alive.
pub struct ConnectionGuard(&'static str);

/// Counts an accepted connection; the gauge goes down when the guard is dropped.
pub fn connection_opened(listener: &'static str) -> ConnectionGuard {
    METRICS.connections.inc([listener]);
    METRICS.active_connections.add([listener], 1);
    ConnectionGuard(listener)
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        METRICS.active_connections.add([self.0], -1);
    }
}

/// The whole registry in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let m = &*METRICS;
    let mut out = String::with_capacity(4096);
    header(
        &mut out,
        "autodiscoverd_build_info",
        "Version of the running binary.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "autodiscoverd_build_info{{version=\"{}\"}} 1",
        escape(env!("CARGO_PKG_VERSION"))
    );
    header(
        &mut out,
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch.",
        "gauge",
    );
    let started = m
        .started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let _ = writeln!(out, "process_start_time_seconds {started}");
    m.requests.render(&mut out, "counter");
    m.request_duration.render(&mut out);
    m.auth.render(&mut out, "counter");
    m.directory_duration.render(&mut out);
    m.directory_errors.render(&mut out, "counter");
    m.cache.render(&mut out, "counter");
    m.connections.render(&mut out, "counter");
    m.active_connections.render(&mut out, "gauge");
    m.tls_failures.render(&mut out, "counter");
    m.proxy_rejected.render(&mut out, "counter");
    m.reloads.render(&mut out, "counter");
    m.throttled.render(&mut out, "counter");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one sample line `name{labels} value` in rendered text.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&["a", "b"], &["x\"y", "p\\q\nr"], Some("+Inf")),
            r#"{a="x\"y",b="p\\q\nr",le="+Inf"}"#
        );
        assert_eq!(labels(&[], &[], None), "");
    }

    #[test]
    fn histograms_are_cumulative_and_counted() {
        let h: Histogram<1> = Histogram::new("t_seconds", "test", ["op"]);
        h.observe(["x"], 0.0007);
        h.observe(["x"], 0.3);
        h.observe(["x"], 60.0);
        let mut out = String::new();
        h.render(&mut out);
        assert_eq!(
            sample(&out, r#"t_seconds_bucket{op="x",le="0.0005"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(&out, r#"t_seconds_bucket{op="x",le="0.001"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&out, r#"t_seconds_bucket{op="x",le="0.5"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&out, r#"t_seconds_bucket{op="x",le="10"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&out, r#"t_seconds_bucket{op="x",le="+Inf"}"#),
            Some(3.0)
        );
        assert_eq!(sample(&out, r#"t_seconds_count{op="x"}"#), Some(3.0));
        assert!(out.contains("# TYPE t_seconds histogram"));
    }

    #[test]
    fn recorded_events_show_up_in_the_exposition() {
        let before = render();
        let get = |text: &str, s: &str| sample(text, s).unwrap_or(0.0);
        request("autodiscover.xml", "settings", Duration::from_millis(3));
        auth("basic", "success");
        cache_hit();
        {
            let _g = connection_opened("https");
            let during = render();
            assert_eq!(
                get(
                    &during,
                    r#"autodiscoverd_active_connections{listener="https"}"#
                ),
                get(
                    &before,
                    r#"autodiscoverd_active_connections{listener="https"}"#
                ) + 1.0
            );
        }
        let after = render();
        for series in [
            r#"autodiscoverd_requests_total{endpoint="autodiscover.xml",outcome="settings"}"#,
            r#"autodiscoverd_auth_total{method="basic",result="success"}"#,
            r#"autodiscoverd_directory_cache_total{result="hit"}"#,
        ] {
            assert!(
                get(&after, series) >= get(&before, series) + 1.0,
                "{series}"
            );
        }
        assert!(after.contains("autodiscoverd_build_info{version=\""));
    }

    #[test]
    fn endpoints_are_a_closed_set() {
        assert_eq!(
            endpoint_label("/AutoDiscover/AutoDiscover.xml"),
            "autodiscover.xml"
        );
        assert_eq!(
            endpoint_label("/autodiscover/autodiscover.svc"),
            "autodiscover.svc"
        );
        assert_eq!(
            endpoint_label("/autodiscover/autodiscover.json/v1.0/a@b?Protocol=EWS"),
            "autodiscover.json"
        );
        assert_eq!(
            endpoint_label("/autodiscover/healthcheck.htm"),
            "healthcheck"
        );
        assert_eq!(endpoint_label("/autodiscover/x"), "autodiscover.other");
        assert_eq!(endpoint_label("/../../etc/passwd"), "other");
    }
}
