//! A real OpenLDAP `slapd` on 127.0.0.1 with its own temporary data directory, loaded
//! with deploy/ldap (lab schema + lab.ldif). Listens on ldap:// (StartTLS-capable) and
//! ldaps:// with a certificate from a test CA. Killed on Drop.
//!
//! Without slapd: with `CI=true` the test fails; otherwise it is skipped loudly.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autodiscoverd::config::Config;
use autodiscoverd::directory::DirectoryBackend;

use super::{repo_root, set, TestPki, Tweak};

/// The lab's service account.
pub const SERVICE_DN: &str = "cn=svc-autodiscover,ou=Service,dc=contoso,dc=com";
/// The lab's base DN.
pub const BASE_DN: &str = "dc=contoso,dc=com";

/// A running slapd.
pub struct Slapd {
    pub port: u16,
    pub tls_port: u16,
    /// PEM of the CA that signed slapd's certificate (for `ca_file`).
    pub ca_file: PathBuf,
    dir: tempfile::TempDir,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

fn find(binary: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/local/sbin",
        "/usr/bin",
        "/usr/local/libexec",
    ]
    .iter()
    .map(|d| Path::new(d).join(binary))
    .find(|p| p.is_file())
}

fn schema_dir() -> Option<PathBuf> {
    [
        "/etc/ldap/schema",
        "/etc/openldap/schema",
        "/usr/local/etc/openldap/schema",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|d| d.join("core.schema").is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Reports a missing external component: fails the test under `CI=true`, otherwise
/// prints a loud skip notice (the caller then returns without testing anything).
pub fn missing(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} is required with CI=true: install it (bash .ci/run installs the packages the tests need)");
    }
    eprintln!(
        "\n*** SKIPPED: {what} is not installed; this test did not run (bash .ci/run installs what the tests need). ***\n"
    );
}

impl Slapd {
    /// Starts a lab directory; `None` (test skipped) when slapd is absent outside CI.
    pub fn start() -> Option<Slapd> {
        let (Some(slapd), Some(slapadd), Some(schema)) =
            (find("slapd"), find("slapadd"), schema_dir())
        else {
            missing("OpenLDAP slapd (Debian package slapd)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = TestPki::new();
        let (cert, key) = pki.write_leaf(dir.path(), "slapd", &["localhost"]);
        let ca_file = pki.write_ca(dir.path());
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let lab = repo_root().join("deploy/ldap");
        let template = std::fs::read_to_string(lab.join("slapd.conf.in")).expect("slapd.conf.in");
        let conf_text = template
            .replace("@DIR@", &dir.path().display().to_string())
            .replace("@SCHEMA_DIR@", &schema.display().to_string())
            .replace("@LAB_DIR@", &lab.display().to_string())
            .replace("@CERT@", &cert.display().to_string())
            .replace("@KEY@", &key.display().to_string());
        let conf = dir.path().join("slapd.conf");
        std::fs::write(&conf, conf_text).expect("write slapd.conf");
        let out = Command::new(&slapadd)
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(lab.join("lab.ldif"))
            .output()
            .expect("run slapadd");
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = dir.path().join("slapd.log");
        let mut s = Slapd {
            port: 0,
            tls_port: 0,
            ca_file,
            conf,
            log,
            dir,
            child: None,
        };
        // A port picked here can be taken before slapd binds it: try a few pairs.
        for _ in 0..5 {
            s.port = free_port();
            s.tls_port = free_port();
            if s.spawn(&slapd) {
                return Some(s);
            }
        }
        panic!("slapd did not start; log:\n{}", s.log_text());
    }

    fn spawn(&mut self, slapd: &Path) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.port, self.tls_port
        );
        // -d 256 (stats): stay in the foreground and log every operation to stderr.
        let mut child = Command::new(slapd)
            .args(["-d", "256", "-h", &urls, "-f"])
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn slapd");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            let up = |port: u16| {
                TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], port)),
                    Duration::from_millis(200),
                )
                .is_ok()
            };
            if up(self.port) && up(self.tls_port) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// `ldap://127.0.0.1:PORT` (plain; loopback lab).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldap://localhost:PORT` (for StartTLS: the certificate names localhost).
    pub fn starttls_url(&self) -> String {
        format!("ldap://localhost:{}", self.port)
    }

    /// `ldaps://localhost:PORT`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://localhost:{}", self.tls_port)
    }

    /// Stops slapd (SIGKILL; the mdb database survives it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts slapd again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        let slapd = find("slapd").expect("slapd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn(&slapd) {
            assert!(
                Instant::now() < deadline,
                "slapd did not restart:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything slapd logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The DNs of every BIND request slapd has seen (lower-case, as logged), in order.
    pub fn bind_dns(&self) -> Vec<String> {
        self.log_text()
            .lines()
            // The request line says `method=`; a success adds a second line (`mech=`).
            .filter(|l| l.contains(" method="))
            .filter_map(|l| l.split_once(" BIND dn=\"").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split_once('"').map(|(dn, _)| dn.to_ascii_lowercase()))
            .collect()
    }

    /// The filters of every search slapd has seen, in order.
    pub fn search_filters(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter_map(|l| l.split_once(" filter=\"").map(|(_, rest)| rest))
            .filter_map(|rest| rest.rsplit_once('"').map(|(f, _)| f.to_string()))
            .collect()
    }

    /// The temporary directory (config, data, log, certificates).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Slapd {
    /// Switches a server configuration to this directory: plain ldap:// on loopback, the
    /// lab service account, 2 s timeouts, NT hashes from sambaNTPassword.
    pub fn configure(&self, table: &mut toml::Table) {
        let s = |v: &str| toml::Value::String(v.to_string());
        set(table, &["directory", "backend"], s("ldap"));
        set(
            table,
            &["directory", "ldap", "urls"],
            toml::Value::Array(vec![s(&self.url())]),
        );
        set(table, &["directory", "ldap", "bind_dn"], s(SERVICE_DN));
        set(
            table,
            &["directory", "ldap", "bind_password_file"],
            s(&repo_root()
                .join("deploy/ldap/lab-bind-password")
                .display()
                .to_string()),
        );
        set(table, &["directory", "ldap", "base_dn"], s(BASE_DN));
        set(
            table,
            &["directory", "ldap", "filter"],
            s("(&(objectClass=inetOrgPerson){match})"),
        );
        set(
            table,
            &["directory", "ldap", "netbios_domain"],
            s("CONTOSO"),
        );
        set(table, &["directory", "ldap", "timeout_ms"], 2000.into());
        set(
            table,
            &["directory", "ldap", "connect_timeout_ms"],
            1000.into(),
        );
        set(
            table,
            &["directory", "ldap", "attributes", "nt_password"],
            s("sambaNTPassword"),
        );
        set(
            table,
            &["directory", "ldap", "mailbox_kind", "attribute"],
            s("employeeType"),
        );
    }

    /// A directory backend for this slapd (built the way the server builds it), with the
    /// cache TTL given and `tweak` applied to the configuration last.
    pub fn directory(&self, cache_ttl_secs: i64, tweak: Tweak<'_>) -> DirectoryBackend {
        let config = example_config(self.path(), &|t| {
            self.configure(t);
            set(
                t,
                &["directory", "ldap", "cache_ttl_secs"],
                cache_ttl_secs.into(),
            );
            tweak(t);
        });
        autodiscoverd::server::build_state(config)
            .expect("ldap directory")
            .directory
    }
}

/// The shipped example configuration with `tweak` applied, written to `dir` and loaded.
pub fn example_config(dir: &Path, tweak: Tweak<'_>) -> Config {
    let text = std::fs::read_to_string(repo_root().join("config/autodiscoverd.example.toml"))
        .expect("example config");
    let mut table: toml::Table = toml::from_str(&text).expect("example parses");
    set(
        &mut table,
        &["directory", "file", "path"],
        repo_root()
            .join("tests/fixtures/directory/lab.toml")
            .display()
            .to_string()
            .into(),
    );
    tweak(&mut table);
    let path = dir.join(format!("autodiscoverd-{}.toml", free_port()));
    std::fs::write(&path, toml::to_string(&table).expect("toml")).expect("write config");
    Config::load(&path).expect("valid config")
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
