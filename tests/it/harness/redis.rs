//! A real `redis-server` on 127.0.0.1 with a private port and no persistence, for the
//! shared failed-login store ([throttle.shared]). Killed on Drop; it can be killed and
//! started again on the same port to play an outage.
//!
//! Without redis-server: with `CI=true` the test fails; otherwise it is skipped loudly.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::slapd::missing;

/// A running (or stopped) redis-server.
pub struct Redis {
    pub port: u16,
    /// A file holding a secret for `throttle.shared.secret_file`.
    pub secret_file: PathBuf,
    dir: tempfile::TempDir,
    binary: PathBuf,
    child: Option<Child>,
    /// TLS only (`--tls-port`): the CA that signed the server's certificate.
    pub tls_ca: Option<PathBuf>,
    tls_args: Vec<String>,
}

fn find(binary: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(binary))
        .find(|p| p.is_file())
}

impl Redis {
    /// Starts a server; `None` (test skipped) when redis-server is absent outside CI.
    pub fn start() -> Option<Redis> {
        Redis::start_with(None)
    }

    /// A server that speaks only TLS, with a certificate for `localhost` from `pki`.
    pub fn start_tls(pki: &super::TestPki) -> Option<Redis> {
        Redis::start_with(Some(pki))
    }

    fn start_with(pki: Option<&super::TestPki>) -> Option<Redis> {
        let Some(binary) = find("redis-server") else {
            missing("redis-server (Debian: redis-server)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let secret_file = dir.path().join("throttle-secret");
        std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef\n").expect("secret");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let (tls_ca, tls_args) = match pki {
            Some(pki) => {
                let (cert, key) = pki.write_leaf(dir.path(), "redis", &["localhost"]);
                let ca = pki.write_ca(dir.path());
                let path = |p: &Path| p.display().to_string();
                let args = vec![
                    "--tls-port".into(),
                    port.to_string(),
                    "--port".into(),
                    "0".into(),
                    "--tls-cert-file".into(),
                    path(&cert),
                    "--tls-key-file".into(),
                    path(&key),
                    "--tls-ca-cert-file".into(),
                    path(&ca),
                    "--tls-auth-clients".into(),
                    "no".into(),
                ];
                (Some(ca), args)
            }
            None => (None, vec!["--port".into(), port.to_string()]),
        };
        let mut redis = Redis {
            port,
            secret_file,
            dir,
            binary,
            child: None,
            tls_ca,
            tls_args,
        };
        redis.resume();
        Some(redis)
    }

    /// `redis://127.0.0.1:PORT/0`, or `rediss://localhost:PORT/0` for a TLS server.
    pub fn url(&self) -> String {
        match self.tls_ca {
            Some(_) => format!("rediss://localhost:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1"])
            .args(&self.tls_args)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.cli(&["PING"]) == "PONG"
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills the server (an outage; what it held is gone, as after a crash without
    /// persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `redis-cli` against the server and returns its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string());
        if let Some(ca) = &self.tls_ca {
            cmd.args(["--tls", "--sni", "localhost", "--cacert"])
                .arg(ca);
        }
        let out = cmd.args(args).output().expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Sets `[throttle.shared]` in a configuration table to this server.
    pub fn configure(&self, table: &mut toml::Table, instances: i64) {
        let shared = ["throttle", "shared"];
        let key = |k: &'static str| [shared[0], shared[1], k];
        super::set(table, &key("url"), self.url().into());
        super::set(
            table,
            &key("secret_file"),
            self.secret_file.display().to_string().into(),
        );
        super::set(table, &key("instances"), instances.into());
        if let Some(ca) = &self.tls_ca {
            super::set(table, &key("ca_file"), ca.display().to_string().into());
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
