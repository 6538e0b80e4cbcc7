//! Prometheus metrics: a small in-house registry (label values are `&'static str`, so the
//! series count is bounded by the code, never by clients) and the text exposition format.
//! Other modules call the recording functions below; `server::endpoints::health` serves [`render`].
//!
//! One registry per process: the daemon is one process, and counters only ever grow, so
//! in-process tests that share it assert on differences, never on absolute values.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Latency buckets in seconds: directory calls and requests are sub-millisecond (embedded)
/// to a few seconds (a slow LDAP server).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BUCKETS: usize = LATENCY_BUCKETS.len();

/// Series slots per family. Label values are `&'static str` from the code, so a family has
/// tens of series; a family that somehow fills its table goes on in a locked overflow list.
const SLOTS: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a series list inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The series of one family: an open-addressing table of write-once slots, each holding
/// the label values and the series' atomic value(s). Recording a known series is a hash of
/// the label values, one atomic load per probe and atomic adds: no lock, so the worker
/// threads never wait for each other (they used to take one mutex per metric call).
struct Series<const N: usize, V> {
    slots: Box<[Slot<N, V>]>,
    overflow: Mutex<Vec<([&'static str; N], V)>>,
}

impl<const N: usize, V: Default> Series<N, V> {
    fn new() -> Self {
        Series {
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
            overflow: Mutex::new(Vec::new()),
        }
    }

    /// Applies `f` to the value of the series `values` (created at zero when new).
    fn with(&self, values: [&'static str; N], f: impl FnOnce(&V)) {
        let start = slot_of(&values);
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots.get((start + i) % self.slots.len()) else {
                break;
            };
            // Another thread may claim an empty slot for other labels first: then probe on.
            let (labels, value) = slot.get_or_init(|| (values, V::default()));
            if labels == &values {
                f(value);
                return;
            }
        }
        let mut overflow = lock(&self.overflow);
        match overflow.iter().position(|(labels, _)| labels == &values) {
            Some(i) => {
                if let Some((_, value)) = overflow.get(i) {
                    f(value);
                }
            }
            None => {
                let value = V::default();
                f(&value);
                overflow.push((values, value));
            }
        }
    }

    /// Every series, sorted by label values, mapped through `f`.
    fn snapshot<T>(&self, f: impl Fn(&V) -> T) -> Vec<([&'static str; N], T)> {
        let mut all: Vec<_> = self
            .slots
            .iter()
            .filter_map(OnceLock::get)
            .map(|(labels, v)| (*labels, f(v)))
            .collect();
        all.extend(lock(&self.overflow).iter().map(|(l, v)| (*l, f(v))));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// One series: its label values and value(s), set once.
type Slot<const N: usize, V> = OnceLock<([&'static str; N], V)>;

/// FNV-1a over the label values (a short, fixed set: no flooding concern).
fn slot_of<const N: usize>(values: &[&'static str; N]) -> usize {
    // By value, but only each label's length and first and last eight bytes: label values
    // are short code literals that differ there, and a shared slot only costs a probe (a
    // hit compares the whole labels). Hashing every byte was a measurable part of a request.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        let bytes = v.as_bytes();
        let head = bytes.get(..8.min(bytes.len())).unwrap_or_default();
        let tail = bytes
            .get(bytes.len().saturating_sub(8)..)
            .unwrap_or_default();
        for word in [word_of(head), word_of(tail), bytes.len() as u64] {
            h = (h ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
    }
    (h % SLOTS as u64) as usize
}

fn word_of(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    for (w, b) in word.iter_mut().zip(bytes) {
        *w = *b;
    }
    u64::from_le_bytes(word)
}

/// A family of counters (`u64`) or gauges (`i64`) with `N` labels.
struct Family<const N: usize, V> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    values: Series<N, V>,
}

/// Monotonic counters.
type Counter<const N: usize> = Family<N, AtomicU64>;
/// Values that go up and down.
type Gauge<const N: usize> = Family<N, AtomicI64>;

/// Reads an atomic counter or gauge for rendering.
trait Load {
    type Out: std::fmt::Display;
    fn load(&self) -> Self::Out;
}

impl Load for AtomicU64 {
    type Out = u64;
    fn load(&self) -> u64 {
        AtomicU64::load(self, Ordering::Relaxed)
    }
}

impl Load for AtomicI64 {
    type Out = i64;
    fn load(&self) -> i64 {
        AtomicI64::load(self, Ordering::Relaxed)
    }
}

impl<const N: usize, V: Default + Load> Family<N, V> {
    fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Family {
            name,
            help,
            labels,
            values: Series::new(),
        }
    }

    fn render(&self, out: &mut String, kind: &str) {
        header(out, self.name, self.help, kind);
        for (values, v) in self.values.snapshot(Load::load) {
            let _ = writeln!(
                out,
                "{}{} {v}",
                self.name,
                labels(&self.labels, &values, None)
            );
        }
    }
}

impl<const N: usize> Counter<N> {
    fn inc(&self, values: [&'static str; N]) {
        self.values.with(values, |v| {
            v.fetch_add(1, Ordering::Relaxed);
        });
    }
}

impl<const N: usize> Gauge<N> {
    fn add(&self, values: [&'static str; N], delta: i64) {
        self.values.with(values, |v| {
            v.fetch_add(delta, Ordering::Relaxed);
        });
    }
}

/// One histogram series: per-bucket counts (not cumulative; summed when rendered), the
/// count and the sum in nanoseconds.
#[derive(Default)]
struct HistData {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl HistData {
    fn observe(&self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            if let Some(bucket) = self.buckets.get(i) {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Saturating float-to-int conversion: negative or NaN count as zero.
        self.sum_nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative bucket counts, the sum in seconds and the count.
    fn read(&self) -> ([u64; BUCKETS], f64, u64) {
        let mut cumulative = [0u64; BUCKETS];
        let mut total = 0;
        for (out, b) in cumulative.iter_mut().zip(&self.buckets) {
            total += b.load(Ordering::Relaxed);
            *out = total;
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (cumulative, sum, self.count.load(Ordering::Relaxed))
    }
}

/// A histogram family with `N` labels and [`LATENCY_BUCKETS`].
struct Histogram<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    values: Series<N, HistData>,
}

impl<const N: usize> Histogram<N> {
    fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Histogram {
            name,
            help,
            labels,
            values: Series::new(),
        }
    }

    fn observe(&self, values: [&'static str; N], seconds: f64) {
        self.values.with(values, |h| h.observe(seconds));
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        for (values, (buckets, sum, count)) in self.values.snapshot(HistData::read) {
            for (bound, count) in LATENCY_BUCKETS.iter().zip(&buckets) {
                let le = format!("{bound}");
                let _ = writeln!(
                    out,
                    "{}_bucket{} {count}",
                    self.name,
                    labels(&self.labels, &values, Some(&le))
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                self.name,
                labels(&self.labels, &values, Some("+Inf")),
                count
            );
            let l = labels(&self.labels, &values, None);
            let _ = writeln!(out, "{}_sum{l} {sum}", self.name);
            let _ = writeln!(out, "{}_count{l} {count}", self.name);
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
    directory_shared: Counter<1>,
    directory_stale: Counter<1>,
    ldap_operations: Counter<1>,
    ldap_unreachable: Gauge<0>,
    ldap_fast_failures: Counter<0>,
    connections: Counter<1>,
    active_connections: Gauge<1>,
    tls_failures: Counter<1>,
    proxy_rejected: Counter<1>,
    reloads: Counter<1>,
    throttled: Counter<1>,
    bearer_tokens: Counter<1>,
    bearer_key_fetches: Counter<1>,
    throttle_store_up: Gauge<0>,
    throttle_store_errors: Counter<1>,
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
        "Authentication attempts by method (basic, ntlm, negotiate, bearer, other) and result.",
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
    directory_shared: Counter::new(
        "autodiscoverd_directory_shared_total",
        "Directory calls not made because an identical one was in progress (its answer was shared), by operation (find, verify_password).",
        ["op"],
    ),
    directory_stale: Counter::new(
        "autodiscoverd_directory_stale_total",
        "Answers given from a cache entry past its TTL (within directory.ldap.serve_stale_secs) because the directory could not be asked, by operation.",
        ["op"],
    ),
    ldap_operations: Counter::new(
        "autodiscoverd_ldap_operations_total",
        "LDAP operations sent to the directory servers, by kind (search, user_bind, connect).",
        ["op"],
    ),
    ldap_unreachable: Gauge::new(
        "autodiscoverd_ldap_unreachable",
        "1 while every configured LDAP server is known unreachable (calls fail at once; a background probe watches for the first to answer), else 0.",
        [],
    ),
    ldap_fast_failures: Counter::new(
        "autodiscoverd_ldap_fast_failures_total",
        "Directory calls answered as unavailable at once because every configured LDAP server was known unreachable.",
        [],
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
    bearer_tokens: Counter::new(
        "autodiscoverd_bearer_tokens_total",
        "Entra ID access tokens presented ([auth.bearer]), by outcome (accepted, or why refused: malformed, algorithm, unknown_key, keys_unavailable, signature, issuer, audience, claims, lifetime, app_only, no_user, unknown_account).",
        ["outcome"],
    ),
    bearer_key_fetches: Counter::new(
        "autodiscoverd_bearer_key_fetches_total",
        "Fetches of the tenant's signing keys from the authority, by result (success, failure).",
        ["result"],
    ),
    throttled: Counter::new(
        "autodiscoverd_auth_throttled_total",
        "Authentication attempts slowed or refused by the failed-login throttle, by action (delayed, too_many_requests, refused, lockout, repeated_wrong_password).",
        ["action"],
    ),
    throttle_store_up: Gauge::new(
        "autodiscoverd_throttle_store_up",
        "1 while the shared throttle store ([throttle.shared]) answers, 0 while failed logins are counted locally; absent without a store.",
        [],
    ),
    throttle_store_errors: Counter::new(
        "autodiscoverd_throttle_store_errors_total",
        "Calls to the shared throttle store that failed or timed out, by operation.",
        ["op"],
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

/// Counts one request on an Autodiscover listener.
pub fn request(endpoint: &'static str, outcome: &'static str, elapsed: Duration) {
    METRICS.requests.inc([endpoint, outcome]);
    METRICS
        .request_duration
        .observe([endpoint], elapsed.as_secs_f64());
}

/// Counts one authentication result (`method`: basic, ntlm, negotiate, bearer, other; `result`:
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

/// A directory call was not made: an identical one in progress answered it too.
pub fn directory_shared(op: &'static str) {
    METRICS.directory_shared.inc([op]);
}

/// A directory answer came from a stale cache entry.
pub fn directory_stale(op: &'static str) {
    METRICS.directory_stale.inc([op]);
}

/// One LDAP operation was sent (`op`: search, user_bind, connect).
pub fn ldap_operation(op: &'static str) {
    METRICS.ldap_operations.inc([op]);
}

/// Every configured LDAP server is known unreachable (`true`) or one answers again.
pub fn ldap_unreachable(down: bool) {
    static STATE: AtomicI64 = AtomicI64::new(0);
    set_flag(&STATE, &METRICS.ldap_unreachable, down);
}

/// Sets a 0/1 gauge whose last value `state` holds (moved only on a change, so that
/// concurrent callers cannot leave it at 2 or -1).
fn set_flag(state: &AtomicI64, gauge: &Gauge<0>, on: bool) {
    let new = i64::from(on);
    let old = state.swap(new, Ordering::Relaxed);
    if new != old {
        gauge.add([], new - old);
    }
}

/// A directory call failed at once: every server was known unreachable.
pub fn ldap_fast_failure() {
    METRICS.ldap_fast_failures.inc([]);
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

/// One Entra ID access token checked (`outcome`: accepted or a refusal label).
pub fn bearer_token(outcome: &'static str) {
    METRICS.bearer_tokens.inc([outcome]);
}

/// One fetch of the tenant's signing keys.
pub fn bearer_key_fetch(ok: bool) {
    METRICS
        .bearer_key_fetches
        .inc([if ok { "success" } else { "failure" }]);
}

/// The failed-login throttle delayed or refused an attempt (`action`: delayed,
/// too_many_requests, refused).
pub fn throttled(action: &'static str) {
    METRICS.throttled.inc([action]);
}

/// Keeps `autodiscoverd_active_connections` up while alive.
/// The shared throttle store answers (`true`) or not: the gauge shows the last state.
pub fn throttle_store_up(up: bool) {
    static STATE: AtomicI64 = AtomicI64::new(0);
    set_flag(&STATE, &METRICS.throttle_store_up, up);
}

/// A call to the shared throttle store failed.
pub fn throttle_store_error(op: &'static str) {
    METRICS.throttle_store_errors.inc([op]);
}

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
    m.directory_shared.render(&mut out, "counter");
    m.directory_stale.render(&mut out, "counter");
    m.ldap_operations.render(&mut out, "counter");
    m.ldap_unreachable.render(&mut out, "gauge");
    m.ldap_fast_failures.render(&mut out, "counter");
    m.connections.render(&mut out, "counter");
    m.active_connections.render(&mut out, "gauge");
    m.tls_failures.render(&mut out, "counter");
    m.proxy_rejected.render(&mut out, "counter");
    m.reloads.render(&mut out, "counter");
    m.throttled.render(&mut out, "counter");
    m.bearer_tokens.render(&mut out, "counter");
    m.bearer_key_fetches.render(&mut out, "counter");
    m.throttle_store_up.render(&mut out, "gauge");
    m.throttle_store_errors.render(&mut out, "counter");
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
    fn concurrent_updates_are_all_counted() {
        let c: Counter<2> = Counter::new("t_total", "test", ["a", "b"]);
        let h: Histogram<1> = Histogram::new("t_seconds", "test", ["op"]);
        let labels = [["x", "1"], ["x", "2"], ["y", "1"], ["z", "9"]];
        std::thread::scope(|s| {
            for t in 0..4 {
                let (c, h) = (&c, &h);
                s.spawn(move || {
                    for i in 0..10_000 {
                        c.inc(labels[(t + i) % labels.len()]);
                        h.observe(["find"], 0.002);
                    }
                });
            }
        });
        let mut out = String::new();
        c.render(&mut out, "counter");
        for l in labels {
            let series = format!("t_total{{a=\"{}\",b=\"{}\"}}", l[0], l[1]);
            assert_eq!(sample(&out, &series), Some(10_000.0), "{series}\n{out}");
        }
        let mut out = String::new();
        h.render(&mut out);
        assert_eq!(
            sample(&out, r#"t_seconds_count{op="find"}"#),
            Some(40_000.0)
        );
        assert_eq!(
            sample(&out, r#"t_seconds_bucket{op="find",le="0.0025"}"#),
            Some(40_000.0)
        );
        assert_eq!(
            sample(&out, r#"t_seconds_bucket{op="find",le="0.001"}"#),
            Some(0.0)
        );
        let sum = sample(&out, r#"t_seconds_sum{op="find"}"#).unwrap();
        assert!((sum - 80.0).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn more_series_than_slots_are_kept_and_rendered_in_order() {
        let c: Counter<1> = Counter::new("t_total", "test", ["k"]);
        // Leaked: label values are `&'static str` by design.
        let names: Vec<&'static str> = (0..SLOTS + 40)
            .map(|i| &*Box::leak(format!("s{i:04}").into_boxed_str()))
            .collect();
        for (i, n) in names.iter().enumerate() {
            for _ in 0..=i % 3 {
                c.inc([n]);
            }
        }
        let mut out = String::new();
        c.render(&mut out, "counter");
        let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines.len(), names.len());
        for (i, (n, line)) in names.iter().zip(&lines).enumerate() {
            assert_eq!(*line, format!("t_total{{k=\"{n}\"}} {}", i % 3 + 1));
        }
    }
}
