//! The I/O edge: listeners, TLS handshakes, HTTP/1.1 connections and graceful shutdown.
//! The server is handed bound listeners and a shutdown future; it never binds by itself,
//! so tests run the real thing on `127.0.0.1:0`.

pub mod endpoints;
pub mod net;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Config, ConfigError, DirectoryConfig};
use crate::directory::{Cached, DirectoryBackend, EmbeddedDirectory, LdapDirectory};
use crate::ops::notify::{self, Notifier};
use crate::ops::signals::{Event, Signals};
use endpoints::{answers, ntlm, throttle};
pub use endpoints::{ConnInfo, State};
use net::listener::{self, Kind};
use net::reload::{self, Live};
use net::{drain, tls};
pub use tls::TlsError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}. Fix: free the port, pick another in the config, or grant CAP_NET_BIND_SERVICE for ports below 1024")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Loads the directory and derives the shared state.
pub fn build_state(config: Config) -> Result<State, StartError> {
    let directory = match &config.directory {
        DirectoryConfig::File { path } => {
            DirectoryBackend::Embedded(EmbeddedDirectory::load(path)?)
        }
        DirectoryConfig::Ldap(ldap) => {
            let (ttl, max) = (ldap.cache_ttl, ldap.cache_max_entries);
            let directory = LdapDirectory::new((**ldap).clone(), &config.source)?;
            DirectoryBackend::Ldap(Cached::with_staleness(
                directory,
                ttl,
                ldap.serve_stale,
                max,
            ))
        }
    };
    let server_id = stable_id(&config.org.exchange_org);
    let ntlm = ntlm::NtlmService::new(&config, &directory, tls::SniResolver::from_config)?;
    let throttle = Arc::new(throttle::AuthThrottle::new(&config.throttle));
    let profile_signer = match &config.mail.mobileconfig.signer {
        Some(paths) => Some(endpoints::profile_sign::ProfileSigner::load(paths).map_err(|e| {
            ConfigError::invalid(
                &config.source,
                "mail.mobileconfig",
                format!("cannot sign profiles: {e}"),
                "point cert/key at a PEM certificate chain and its RSA or P-256 key, or set sign = false",
            )
        })?),
        None => None,
    };
    let bearer = match &config.auth.bearer {
        Some(b) => Some(endpoints::bearer::BearerService::new(b).map_err(|e| {
            ConfigError::invalid(
                &config.source,
                "auth.bearer",
                e,
                "point ca_file/jwks_file at readable PEM/JSON files, or remove them",
            )
        })?),
        None => None,
    };
    Ok(State {
        profile_signer,
        bearer,
        config,
        directory,
        server_id,
        ntlm,
        throttle,
        answers: answers::AnswerCache::default(),
        pox_bodies: answers::ParsedBodies::default(),
    })
}

/// FNV-1a: a stable 32-bit number from a name.
fn stable_id(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Builds the TLS server configuration (creating the self-signed certificate first if
/// allowed).
pub fn build_tls(config: &Config) -> Result<Arc<rustls::ServerConfig>, StartError> {
    if tls::ensure_self_signed(&config.tls)? {
        tracing::warn!(
            cert = %config.tls.default.cert.display(),
            key = %config.tls.default.key.display(),
            names = ?config.tls.self_signed_names,
            "created a self-signed certificate; clients will not trust it (set tls.cert/tls.key to a real certificate for production)"
        );
    }
    let resolver = Arc::new(tls::SniResolver::from_config(&config.tls)?);
    Ok(tls::server_config(resolver)?)
}

/// Bound sockets for every configured listener.
pub struct Listeners {
    pub https: Vec<TcpListener>,
    pub redirect: Vec<TcpListener>,
    /// Plain HTTP behind a TLS-terminating proxy (`proxy.plain_listen`).
    pub plain: Vec<TcpListener>,
    /// PROXY header, then TLS (`proxy.proxy_protocol_https_listen`).
    pub https_proxy: Vec<TcpListener>,
    /// PROXY header, then plain HTTP (`proxy.proxy_protocol_plain_listen`).
    pub plain_proxy: Vec<TcpListener>,
    /// `/metrics`, `/healthz`, `/readyz` (`metrics.listen`).
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    fn into_kinds(self) -> Vec<(Kind, TcpListener)> {
        let mut all = Vec::new();
        let groups = [
            (Kind::Https, self.https),
            (Kind::Redirect, self.redirect),
            (Kind::Plain, self.plain),
            (Kind::HttpsProxy, self.https_proxy),
            (Kind::PlainProxy, self.plain_proxy),
            (Kind::Metrics, self.metrics.into_iter().collect()),
        ];
        for (kind, list) in groups {
            all.extend(list.into_iter().map(|l| (kind, l)));
        }
        all
    }

    /// `https=127.0.0.1:8443; redirect=...; metrics=...`: the bound addresses (ports chosen
    /// by the kernel included), for logs and the systemd `STATUS=` line.
    pub fn describe(&self) -> String {
        let groups: [(Kind, Vec<&TcpListener>); 6] = [
            (Kind::Https, self.https.iter().collect()),
            (Kind::Redirect, self.redirect.iter().collect()),
            (Kind::Plain, self.plain.iter().collect()),
            (Kind::HttpsProxy, self.https_proxy.iter().collect()),
            (Kind::PlainProxy, self.plain_proxy.iter().collect()),
            (Kind::Metrics, self.metrics.iter().collect()),
        ];
        groups
            .iter()
            .filter(|(_, list)| !list.is_empty())
            .map(|(kind, list)| {
                let addrs: Vec<String> = list
                    .iter()
                    .filter_map(|l| l.local_addr().ok())
                    .map(|a| a.to_string())
                    .collect();
                format!("{}={}", kind.label(), addrs.join(","))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Binds every listener named in the configuration.
pub async fn bind(config: &Config) -> Result<Listeners, StartError> {
    async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, StartError> {
        let mut out = Vec::new();
        for addr in addrs {
            out.push(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind {
                        addr: *addr,
                        source,
                    })?,
            );
        }
        Ok(out)
    }
    let redirect_addrs = config
        .redirect
        .as_ref()
        .map(|r| r.listen.clone())
        .unwrap_or_default();
    let metrics_addrs: Vec<SocketAddr> = config.metrics.iter().map(|m| m.listen).collect();
    Ok(Listeners {
        https: bind_all(&config.server.listen).await?,
        redirect: bind_all(&redirect_addrs).await?,
        plain: bind_all(&config.proxy.plain_listen).await?,
        https_proxy: bind_all(&config.proxy.proxy_protocol_https_listen).await?,
        plain_proxy: bind_all(&config.proxy.proxy_protocol_plain_listen).await?,
        metrics: bind_all(&metrics_addrs).await?.pop(),
    })
}

/// Serves until `shutdown` completes, then drains open connections.
pub async fn run(
    listeners: Listeners,
    state: Arc<State>,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    run_live(listeners, Live::new(state, tls), shutdown).await;
}

/// Serves the current generation of `live` until `shutdown` completes: then stops
/// accepting (listeners close), lets in-flight requests finish within
/// `server.shutdown_grace_secs`, and returns.
pub async fn run_live(listeners: Listeners, live: Arc<Live>, shutdown: impl Future<Output = ()>) {
    let drain = Arc::new(drain::Drain::default());
    let max_connections = live.current().state.config.server.max_connections;
    let limit = Arc::new(Semaphore::new(max_connections));
    // Scrapes get their own small budget so a connection flood cannot blind monitoring.
    let ops_limit = Arc::new(Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    let mut ops_tasks = tokio::task::JoinSet::new();
    for (kind, l) in listeners.into_kinds() {
        if kind == Kind::Metrics {
            ops_tasks.spawn(listener::accept_loop(
                kind,
                l,
                Arc::clone(&live),
                None,
                Arc::clone(&ops_limit),
            ));
        } else {
            tasks.spawn(listener::accept_loop(
                kind,
                l,
                Arc::clone(&live),
                Some(Arc::clone(&drain)),
                Arc::clone(&limit),
            ));
        }
    }
    shutdown.await;
    live.set_draining();
    let grace = live.current().state.config.server.shutdown_grace;
    tracing::info!(
        open = drain.open(),
        grace_secs = grace.as_secs(),
        "shutting down: listeners closed; finishing in-flight requests"
    );
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // Only connection tasks hold watches now; the accept loops are gone.
    if drain.drain(grace).await {
        tracing::info!("all connections finished");
    } else {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "shutdown grace period passed; closing the remaining connections"
        );
    }
    ops_tasks.abort_all();
    while ops_tasks.join_next().await.is_some() {}
}

fn http1_builder(state: &State) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.server.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024)
        // A complete head over this is refused too (431), not only one that overflows the
        // read buffer.
        .max_header_size(64 * 1024);
    builder
}

/// Loads everything from `config`, binds, announces readiness to systemd, then serves:
/// SIGHUP reloads, SIGTERM/SIGINT drains and returns.
pub async fn serve(config: Config) -> Result<(), StartError> {
    crate::ops::logging::set_format(config.log.format);
    let notifier = Notifier::from_env();
    let mut signals = Signals::install().map_err(StartError::Signals)?;
    let tls = build_tls(&config)?;
    let listeners = bind(&config).await?;
    let bound = listeners.describe();
    tracing::info!(listeners = %bound, "listening");
    listener::warn_about_proxy_settings(&config);
    let state = Arc::new(build_state(config)?);
    let warming = Arc::clone(&state);
    tokio::spawn(async move { warming.directory.warm().await });
    let live = Live::new(state, tls);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run_live(listeners, Arc::clone(&live), async {
        let _ = stopped.await;
    }));
    let notifier = notifier.map(Arc::new);
    if let Some(interval) = notify::watchdog_interval() {
        let n = notifier.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tick.tick().await;
                notify::watchdog(n.as_deref());
            }
        });
    }
    let status = format!("serving; {bound}");
    notify::ready(notifier.as_deref(), &status);
    while signals.next().await == Event::Reload {
        tracing::info!("SIGHUP: reloading");
        notify::reloading(notifier.as_deref());
        let ok = reload::reload(&live).await;
        let note = if ok {
            status.clone()
        } else {
            format!("{status}; last reload FAILED (see the log)")
        };
        notify::ready(notifier.as_deref(), &note);
    }
    notify::stopping(notifier.as_deref());
    let _ = stop.send(());
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}
