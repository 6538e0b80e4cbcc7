//! The real `autodiscoverd` binary as a child process, for what only a process can show:
//! signals (SIGHUP reload, SIGTERM drain), exit codes, sd_notify and log output.
//!
//! Ports: every listener binds 127.0.0.1:0, and the test learns the chosen ports from the
//! daemon's own `READY=1` / `STATUS=` notification on a private NOTIFY_SOCKET (no port
//! guessing, no log scraping for readiness).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{repo_root, set, TestPki, Tweak};

/// A running daemon; dropping it kills the process.
pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
    pub pki: Arc<TestPki>,
    pub config_path: PathBuf,
    /// Listener kind (`https`, `plain`, `https_proxy`, `plain_proxy`, `redirect`,
    /// `metrics`) → bound addresses.
    pub addrs: BTreeMap<String, Vec<SocketAddr>>,
    notify: UnixDatagram,
    log: Arc<Mutex<Vec<String>>>,
}

/// The example configuration made hermetic: test certificates, the lab directory, every
/// listener on 127.0.0.1:0, metrics on, JSON logs.
pub fn config_table(dir: &std::path::Path, pki: &TestPki) -> toml::Table {
    let (cert, key) = pki.write_leaf(dir, "server", &["autodiscover.contoso.com", "localhost"]);
    let example = std::fs::read_to_string(repo_root().join("config/autodiscoverd.example.toml"))
        .expect("example config");
    let mut t: toml::Table = toml::from_str(&example).expect("example parses");
    let any = || toml::Value::Array(vec!["127.0.0.1:0".into()]);
    set(&mut t, &["server", "listen"], any());
    set(&mut t, &["tls", "cert"], cert.display().to_string().into());
    set(&mut t, &["tls", "key"], key.display().to_string().into());
    set(&mut t, &["tls", "self_signed_if_missing"], false.into());
    let lab = repo_root().join("tests/fixtures/directory/lab.toml");
    set(
        &mut t,
        &["directory", "file", "path"],
        lab.display().to_string().into(),
    );
    set(&mut t, &["redirect", "listen"], any());
    set(&mut t, &["metrics", "listen"], "127.0.0.1:0".into());
    set(&mut t, &["log", "format"], "json".into());
    t
}

impl Daemon {
    /// Starts the daemon with the hermetic example configuration plus `tweak`, and waits for
    /// `READY=1`.
    pub fn start(tweak: Tweak<'_>) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Arc::new(TestPki::new());
        let mut table = config_table(dir.path(), &pki);
        tweak(&mut table);
        let config_path = dir.path().join("autodiscoverd.toml");
        std::fs::write(&config_path, toml::to_string(&table).expect("toml")).expect("write");
        Daemon::start_file(dir, pki, config_path)
    }

    /// Starts the daemon with the configuration file at `config_path` as it is (the test
    /// prepared what it names), and waits for `READY=1`. `dir` holds the notify socket.
    pub fn start_file(dir: tempfile::TempDir, pki: Arc<TestPki>, config_path: PathBuf) -> Daemon {
        let socket_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&socket_path).expect("notify socket");
        let mut child = Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("RUST_LOG", "info")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn autodiscoverd");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        let mut d = Daemon {
            child,
            dir,
            pki,
            config_path,
            addrs: BTreeMap::new(),
            notify,
            log,
        };
        let ready = d
            .wait_notify("READY=1", Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no READY=1; log:\n{}", d.log_text()));
        d.addrs = parse_status(&ready);
        d
    }

    /// The first address of a listener kind.
    pub fn addr(&self, kind: &str) -> SocketAddr {
        *self
            .addrs
            .get(kind)
            .and_then(|a| a.first())
            .unwrap_or_else(|| panic!("no {kind} listener in {:?}", self.addrs))
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("kill");
    }

    /// The next notification that starts with `prefix` (earlier ones are skipped).
    pub fn wait_notify(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.notify
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let n = self.notify.recv(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with(prefix) {
                return Some(text);
            }
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Every stderr line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The log as one string (for assertion messages).
    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// JSON log events (non-JSON lines are skipped).
    pub fn log_events(&self) -> Vec<serde_json::Value> {
        self.log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until a JSON log event satisfies `pred`, and returns it.
    pub fn wait_event(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.log_events().into_iter().find(|e| pred(e)) {
                return Some(e);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Access-log events (`target` = `access`).
    pub fn access_events(&self) -> Vec<serde_json::Value> {
        self.log_events()
            .into_iter()
            .filter(|e| e["target"] == "access")
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `READY=1\nSTATUS=serving; https=a,b; metrics=c` → {https: [a, b], metrics: [c]}.
fn parse_status(text: &str) -> BTreeMap<String, Vec<SocketAddr>> {
    let status = text
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .expect("STATUS= in READY notification");
    status
        .split("; ")
        .filter_map(|part| part.split_once('='))
        .map(|(kind, addrs)| {
            let list = addrs.split(',').filter_map(|a| a.parse().ok()).collect();
            (kind.to_string(), list)
        })
        .collect()
}

/// Parses Prometheus text into `series → value` (series = name plus its label block).
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample line without value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line}");
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        assert!(
            out.insert(series.to_string(), value).is_none(),
            "duplicate series {series}"
        );
    }
    out
}

/// Sends one HTTP/1.1 request over an already connected stream (plain TCP, TLS, or a TCP
/// stream that has just carried a PROXY header) and reads the whole answer.
pub async fn send_over<S>(
    stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<super::Answer, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::{BodyExt, Full};
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "autodiscover.contoso.com");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(Full::new(bytes::Bytes::copy_from_slice(body)))
        .expect("request");
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(super::Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// One plain-HTTP request on a new connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> super::Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    send_over(tcp, method, path, headers, body)
        .await
        .expect("request")
}

/// Scrapes `/metrics` and parses it.
pub async fn scrape(metrics: SocketAddr) -> BTreeMap<String, f64> {
    let answer = http(metrics, "GET", "/metrics", &[], b"").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_prometheus(&answer.text())
}
