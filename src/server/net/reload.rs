//! Hot reload: the configuration-derived state lives in one [`Generation`] behind a
//! `watch` channel. SIGHUP builds a complete new generation (config, certificates, directory)
//! off the runtime threads and swaps it in one step; a failure logs why (file, key, fix) and
//! changes nothing. Each connection keeps the generation it was accepted with.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::ops::{logging, metrics};
use crate::server::endpoints::State;
use crate::server::{build_state, build_tls, StartError};

/// Everything derived from one reading of the configuration.
pub struct Generation {
    pub state: Arc<State>,
    pub tls: Arc<rustls::ServerConfig>,
}

/// The current generation plus process-wide lifecycle flags.
pub struct Live {
    current: watch::Sender<Arc<Generation>>,
    draining: AtomicBool,
}

impl Live {
    /// Starts with `state` and the TLS configuration `tls`.
    pub fn new(state: Arc<State>, tls: Arc<rustls::ServerConfig>) -> Arc<Live> {
        let (current, _) = watch::channel(Arc::new(Generation { state, tls }));
        Arc::new(Live {
            current,
            draining: AtomicBool::new(false),
        })
    }

    /// The generation new connections use.
    pub fn current(&self) -> Arc<Generation> {
        Arc::clone(&self.current.borrow())
    }

    /// Replaces the generation for new connections; open ones keep theirs.
    pub fn replace(&self, next: Generation) {
        self.current.send_replace(Arc::new(next));
    }

    /// Marks the start of shutdown (`/readyz` answers 503 from now on).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Settings a reload cannot apply because sockets are bound once at start.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let redirect = |c: &Config| -> Vec<SocketAddr> {
        c.redirect
            .as_ref()
            .map(|r| r.listen.clone())
            .unwrap_or_default()
    };
    let mut keys = Vec::new();
    let mut check = |key: &'static str, changed: bool| {
        if changed {
            keys.push(key);
        }
    };
    check("server.listen", old.server.listen != new.server.listen);
    check(
        "server.max_connections",
        old.server.max_connections != new.server.max_connections,
    );
    check("redirect.listen", redirect(old) != redirect(new));
    check(
        "proxy.plain_listen",
        old.proxy.plain_listen != new.proxy.plain_listen,
    );
    check(
        "proxy.proxy_protocol_https_listen",
        old.proxy.proxy_protocol_https_listen != new.proxy.proxy_protocol_https_listen,
    );
    check(
        "proxy.proxy_protocol_plain_listen",
        old.proxy.proxy_protocol_plain_listen != new.proxy.proxy_protocol_plain_listen,
    );
    check("metrics.listen", old.metrics != new.metrics);
    keys
}

/// Re-reads the configuration file the current generation came from, its certificates and
/// its directory, and swaps them in. Returns false (and keeps serving the old generation)
/// when anything is wrong.
pub async fn reload(live: &Live) -> bool {
    let old = live.current();
    let path = old.state.config.source.clone();
    let file = path.clone();
    // Failure counts outlive reloads: an attacker must not get a fresh budget from SIGHUP.
    let throttle = Arc::clone(&old.state.throttle);
    let built = tokio::task::spawn_blocking(move || -> Result<Generation, StartError> {
        let config = Config::load(&file)?;
        let tls = build_tls(&config)?;
        let mut state = build_state(config)?;
        state.throttle = throttle;
        let state = Arc::new(state);
        Ok(Generation { state, tls })
    })
    .await;
    let next = match built {
        Ok(Ok(next)) => next,
        Ok(Err(e)) => {
            metrics::reload(false);
            tracing::error!(config = %path.display(), error = %e, "reload refused; the previous configuration, certificates and directory keep serving");
            return false;
        }
        Err(e) => {
            metrics::reload(false);
            tracing::error!(config = %path.display(), error = %e, "reload failed; the previous configuration keeps serving");
            return false;
        }
    };
    let pending = restart_needed(&old.state.config, &next.state.config);
    if !pending.is_empty() {
        tracing::warn!(
            keys = %pending.join(", "),
            "listener settings changed; they take effect only after a restart (systemctl restart autodiscoverd); everything else was reloaded"
        );
    }
    logging::set_format(next.state.config.log.format);
    let warming = Arc::clone(&next.state);
    tokio::spawn(async move { warming.directory.warm().await });
    next.state.throttle.configure(&next.state.config.throttle);
    live.replace(next);
    metrics::reload(true);
    tracing::info!(config = %path.display(), "reloaded configuration, certificates and directory; open connections finish on the previous ones");
    true
}
