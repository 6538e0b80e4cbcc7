//! The I/O edge: listeners, TLS handshakes, HTTP/1.1 connections and graceful shutdown.
//! The server is handed bound listeners and a shutdown future; it never binds by itself,
//! so tests run the real thing on `127.0.0.1:0`.

pub mod handlers;
pub mod ntlm;
pub mod proxy;
pub mod redirect80;
pub mod respond;
pub mod soap_v2;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, ConfigError, DirectoryConfig, RedirectConfig};
use crate::directory::{DirectoryBackend, EmbeddedDirectory};
pub use tls::TlsError;

/// Everything a request handler needs, shared by all connections.
pub struct State {
    pub config: Config,
    pub directory: DirectoryBackend,
    /// `Id` attribute of POX Error elements: a stable number for this server.
    pub server_id: u32,
    /// NTLM/Negotiate settings derived at start.
    pub ntlm: ntlm::NtlmService,
}

/// Facts about one client connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The host name the client asked for in the TLS handshake.
    pub sni: Option<String>,
    /// NTLM handshake state and the identity authenticated on this connection.
    pub auth: Arc<std::sync::Mutex<crate::auth::ConnAuth>>,
}

impl ConnInfo {
    /// A connection with no authentication state yet.
    pub fn new(peer: SocketAddr, sni: Option<String>) -> ConnInfo {
        ConnInfo {
            peer,
            sni,
            auth: Arc::default(),
        }
    }
}

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
}

/// Loads the directory and derives the shared state.
pub fn build_state(config: Config) -> Result<State, StartError> {
    let directory = match &config.directory {
        DirectoryConfig::File { path } => {
            DirectoryBackend::Embedded(EmbeddedDirectory::load(path)?)
        }
    };
    let server_id = stable_id(&config.org.exchange_org);
    let ntlm = ntlm::NtlmService::new(&config, &directory);
    Ok(State {
        config,
        directory,
        server_id,
        ntlm,
    })
}

/// FNV-1a: a stable 32-bit number from a name.
fn stable_id(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Builds the TLS acceptor (creating the self-signed certificate first if allowed).
pub fn build_tls(config: &Config) -> Result<TlsAcceptor, StartError> {
    if tls::ensure_self_signed(&config.tls)? {
        tracing::warn!(
            cert = %config.tls.default.cert.display(),
            key = %config.tls.default.key.display(),
            names = ?config.tls.self_signed_names,
            "created a self-signed certificate; clients will not trust it (set tls.cert/tls.key to a real certificate for production)"
        );
    }
    let resolver = Arc::new(tls::SniResolver::from_config(&config.tls)?);
    Ok(TlsAcceptor::from(tls::server_config(resolver)?))
}

/// Bound sockets for every configured listener.
pub struct Listeners {
    pub https: Vec<TcpListener>,
    pub redirect: Vec<TcpListener>,
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
    Ok(Listeners {
        https: bind_all(&config.server.listen).await?,
        redirect: bind_all(&redirect_addrs).await?,
    })
}

/// How long in-flight requests may take to finish after shutdown starts.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Serves until `shutdown` completes, then drains open connections.
pub async fn run(
    listeners: Listeners,
    state: Arc<State>,
    acceptor: TlsAcceptor,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let limit = Arc::new(Semaphore::new(state.config.server.max_connections));
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners.https {
        tasks.spawn(https_accept_loop(
            listener,
            Arc::clone(&state),
            acceptor.clone(),
            Arc::clone(&graceful),
            Arc::clone(&limit),
        ));
    }
    if let Some(redirect) = &state.config.redirect {
        let redirect = Arc::new(redirect.clone());
        for listener in listeners.redirect {
            tasks.spawn(redirect_accept_loop(
                listener,
                Arc::clone(&state),
                Arc::clone(&redirect),
                Arc::clone(&graceful),
                Arc::clone(&limit),
            ));
        }
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections; draining open ones");
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    match Arc::try_unwrap(graceful) {
        Ok(graceful) => {
            if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("drain deadline passed; closing remaining connections");
            }
        }
        Err(_) => tracing::warn!("connections still referenced; not waiting for them"),
    }
}

fn http1_builder(state: &State) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.server.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    builder
}

async fn https_accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    acceptor: TlsAcceptor,
    graceful: Arc<GracefulShutdown>,
    limit: Arc<Semaphore>,
) {
    loop {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        let graceful = Arc::clone(&graceful);
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = tokio::time::timeout(
                state.config.server.tls_handshake_timeout,
                acceptor.accept(stream),
            )
            .await;
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(client = %peer, "TLS handshake timed out");
                    return;
                }
            };
            let sni = tls.get_ref().1.server_name().map(str::to_string);
            let conn_info = Arc::new(ConnInfo::new(peer, sni));
            let service_state = Arc::clone(&state);
            let service = service_fn(move |req| {
                let state = Arc::clone(&service_state);
                let conn = Arc::clone(&conn_info);
                async move { Ok::<_, Infallible>(handlers::handle(req, state, conn).await) }
            });
            let conn = http1_builder(&state).serve_connection(TokioIo::new(tls), service);
            if let Err(e) = graceful.watch(conn).await {
                tracing::debug!(client = %peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn redirect_accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    redirect: Arc<RedirectConfig>,
    graceful: Arc<GracefulShutdown>,
    limit: Arc<Semaphore>,
) {
    loop {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let redirect = Arc::clone(&redirect);
        let graceful = Arc::clone(&graceful);
        let builder = http1_builder(&state);
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let response = redirect80::handle(&req, &redirect);
                tracing::info!(target: "access", client = %peer, method = %req.method(), path = %req.uri().path(), status = response.status().as_u16(), "redirect listener");
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = graceful.watch(conn).await {
                tracing::debug!(client = %peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Loads everything from `config`, binds, and serves until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let acceptor = build_tls(&config)?;
    let listeners = bind(&config).await?;
    for l in &listeners.https {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(%addr, "listening (https, Autodiscover)");
        }
    }
    for l in &listeners.redirect {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(%addr, "listening (http, redirect responder)");
        }
    }
    let state = Arc::new(build_state(config)?);
    run(listeners, state, acceptor, shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
