//! Test harness: a real server in-process on 127.0.0.1:0 with certificates from a test CA,
//! and a real HTTP/1.1 client over TLS.

pub mod client;
pub mod daemon;
pub mod haproxy;
pub mod issuer;
pub mod pki;
pub mod python;
pub mod redis;
pub mod slapd;
pub mod thunderbird;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use autodiscoverd::config::Config;
use autodiscoverd::server;
use tokio::sync::oneshot;

pub use client::{Answer, TlsClient};
pub use pki::TestPki;
pub use slapd::Slapd;

/// The repository root (for config/ and tests/fixtures/).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running server; dropping it shuts the server down.
pub struct TestServer {
    pub https: SocketAddr,
    pub redirect: Option<SocketAddr>,
    pub pki: Arc<TestPki>,
    pub dir: tempfile::TempDir,
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Adjusts the example configuration before the server starts.
pub type Tweak<'a> = &'a dyn Fn(&mut toml::Table);

/// Sets `section.key = value` in a TOML table, creating the section when needed.
pub fn set(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut t = table;
    for p in parents {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("table");
    }
    t.insert(last.to_string(), value);
}

impl TestServer {
    /// The example configuration with the test directory (lab passwords) and test certificates.
    pub async fn start() -> TestServer {
        TestServer::start_with(&|_| {}).await
    }

    /// Like [`TestServer::start`], with configuration changes applied last.
    pub async fn start_with(tweak: Tweak<'_>) -> TestServer {
        TestServer::start_named(
            &[
                "autodiscover.contoso.com",
                "autoconfig.contoso.com",
                "localhost",
            ],
            tweak,
        )
        .await
    }

    /// Like [`TestServer::start_with`], with a certificate for these names.
    pub async fn start_named(names: &[&str], tweak: Tweak<'_>) -> TestServer {
        TestServer::start_named_by(Arc::new(TestPki::new()), names, tweak).await
    }

    /// Like [`TestServer::start_named`], with a certificate from this CA (servers that
    /// one client must trust alike).
    pub async fn start_named_by(pki: Arc<TestPki>, names: &[&str], tweak: Tweak<'_>) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = pki.write_leaf(dir.path(), "server", names);
        let example =
            std::fs::read_to_string(repo_root().join("config/autodiscoverd.example.toml"))
                .expect("example config");
        let mut table: toml::Table = toml::from_str(&example).expect("example parses");
        set(
            &mut table,
            &["server", "listen"],
            toml::Value::Array(vec!["127.0.0.1:0".into()]),
        );
        set(
            &mut table,
            &["tls", "cert"],
            cert.display().to_string().into(),
        );
        set(
            &mut table,
            &["tls", "key"],
            key.display().to_string().into(),
        );
        set(&mut table, &["tls", "self_signed_if_missing"], false.into());
        set(
            &mut table,
            &["directory", "file", "path"],
            repo_root()
                .join("tests/fixtures/directory/lab.toml")
                .display()
                .to_string()
                .into(),
        );
        set(
            &mut table,
            &["redirect", "listen"],
            toml::Value::Array(vec!["127.0.0.1:0".into()]),
        );
        set(&mut table, &["metrics", "listen"], "127.0.0.1:0".into());
        tweak(&mut table);
        let text = toml::to_string(&table).expect("serialise config");
        let path = dir.path().join("autodiscoverd.toml");
        std::fs::write(&path, &text).expect("write config");
        let config = Config::load(&path).expect("test config is valid");
        TestServer::start_config(config, dir, pki).await
    }

    /// Starts a server from a finished configuration.
    pub async fn start_config(
        config: Config,
        dir: tempfile::TempDir,
        pki: Arc<TestPki>,
    ) -> TestServer {
        let tls = server::build_tls(&config).expect("tls");
        let listeners = server::bind(&config).await.expect("bind");
        let https = listeners.https[0].local_addr().expect("addr");
        let redirect = listeners
            .redirect
            .first()
            .map(|l| l.local_addr().expect("addr"));
        let state = Arc::new(server::build_state(config.clone()).expect("state"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listeners, state, tls, async {
            let _ = rx.await;
        }));
        TestServer {
            https,
            redirect,
            pki,
            dir,
            config,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A TLS client that trusts the test CA and sends `autodiscover.contoso.com` as SNI.
    pub async fn client(&self) -> TlsClient {
        TlsClient::connect(self.https, "autodiscover.contoso.com", &self.pki).await
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Path inside the server's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads a fixture file.
pub fn fixture(relative: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures").join(relative)).expect("fixture")
}

/// An Outlook POX request body for `address`.
pub fn outlook_request(address: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#
    )
}

/// A mobilesync POX request body for `address`.
pub fn mobilesync_request(address: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#
    )
}
