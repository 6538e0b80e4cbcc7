//! `autodiscoverd lab up DIR`: both roles of a lab in one process and one tokio runtime.
//! Each role is an ordinary server (its own configuration, directory, certificates and
//! listeners, exactly what `serve --config` would run); they share only the shutdown
//! signal. One process is simpler to start and stop than two, and a role that fails to
//! start stops the whole lab with that role's error.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::init::paths;
use crate::config::Config;
use crate::server::{self, StartError};

/// Why a lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(
        "{path} does not exist. Fix: create the lab first with `autodiscoverd lab init {dir}`"
    )]
    Missing { path: PathBuf, dir: String },
    #[error("lab DNS: {0}")]
    Dns(#[from] super::dns::DnsError),
    #[error("lab token issuer: {0}")]
    Issuer(String),
    #[error("{role} role: {source}")]
    Start {
        role: &'static str,
        #[source]
        source: StartError,
    },
}

/// The two roles of a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    OnPremises,
    Tenant,
}

impl Role {
    /// For logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Role::OnPremises => "on-premises",
            Role::Tenant => "tenant",
        }
    }

    fn config_path(self) -> &'static str {
        match self {
            Role::OnPremises => paths::ONPREM_CONFIG,
            Role::Tenant => paths::TENANT_CONFIG,
        }
    }
}

/// Where each role listens once bound.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub https: Vec<SocketAddr>,
    pub redirect: Vec<SocketAddr>,
}

/// A lab serving in the background of the current runtime.
pub struct RunningLab {
    pub onprem: Bound,
    pub tenant: Bound,
    /// Where the lab's DNS answers (UDP and TCP), for labs that have `dns/zones.toml`.
    pub dns: Option<SocketAddr>,
    /// Where the token issuer answers (HTTPS), for `--hma` labs.
    pub issuer: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// How to bind the lab's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The addresses written in the configurations.
    AsConfigured,
    /// `127.0.0.1:0` for every listener (tests read the bound ports from [`RunningLab`]).
    Ephemeral,
}

/// Loads a role's configuration from a lab directory.
pub fn load(dir: &Path, role: Role) -> Result<Config, UpError> {
    let path = dir.join(role.config_path());
    if !path.exists() {
        return Err(UpError::Missing {
            path,
            dir: dir.display().to_string(),
        });
    }
    Config::load(&path).map_err(|e| UpError::Start {
        role: role.name(),
        source: StartError::Config(e),
    })
}

impl RunningLab {
    /// Loads, binds and starts both roles.
    pub async fn start(dir: &Path, binding: Binding) -> Result<RunningLab, UpError> {
        let (stop, _) = watch::channel(false);
        let mut lab = RunningLab {
            onprem: Bound::default(),
            tenant: Bound::default(),
            dns: None,
            issuer: None,
            stop,
            tasks: JoinSet::new(),
        };
        lab.start_issuer(dir, binding).await?;
        for role in [Role::OnPremises, Role::Tenant] {
            let mut config = load(dir, role)?;
            if let (Some(issuer), Some(bearer)) = (lab.issuer, &mut config.auth.bearer) {
                // Ephemeral ports: the keys and the challenge follow the bound port.
                bearer.authority = format!("https://localhost:{}", issuer.port());
                bearer.authorization_uri = format!(
                    "https://localhost:{}/common/oauth2/authorize",
                    issuer.port()
                );
            }
            if binding == Binding::Ephemeral {
                let any = SocketAddr::from(([127, 0, 0, 1], 0));
                config.server.listen = vec![any];
                if let Some(redirect) = &mut config.redirect {
                    redirect.listen = vec![any];
                }
            }
            let bound = lab
                .start_role(role, config)
                .await
                .map_err(|source| UpError::Start {
                    role: role.name(),
                    source,
                })?;
            match role {
                Role::OnPremises => lab.onprem = bound,
                Role::Tenant => lab.tenant = bound,
            }
        }
        if let Some((listen, catalog)) = super::dns::load(dir)? {
            let addr = match binding {
                Binding::AsConfigured => listen,
                Binding::Ephemeral => SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let server = super::dns::LabDns::bind(addr, catalog).await?;
            tracing::info!(addr = %server.addr, "listening (dns, lab zones)");
            lab.dns = Some(server.addr);
            let mut stop = lab.stop.subscribe();
            lab.tasks.spawn(server.serve_until(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }));
        }
        Ok(lab)
    }

    /// The token issuer of an `--hma` lab (`issuer/issuer.toml`), if the lab has one.
    async fn start_issuer(&mut self, dir: &Path, binding: Binding) -> Result<(), UpError> {
        let path = dir.join(paths::ISSUER_CONFIG);
        if !path.exists() {
            return Ok(());
        }
        let issuer = super::issuer::LabIssuerConfig::load(&path).map_err(UpError::Issuer)?;
        let addr = match binding {
            Binding::AsConfigured => issuer.listen,
            Binding::Ephemeral => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| UpError::Issuer(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| UpError::Issuer(e.to_string()))?;
        tracing::info!(addr = %bound, "listening (https, lab token issuer)");
        self.issuer = Some(bound);
        let mut stop = self.stop.subscribe();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = issuer.serve(listener) => {}
                _ = stop.wait_for(|stopped| *stopped) => {}
            }
        });
        Ok(())
    }

    async fn start_role(&mut self, role: Role, config: Config) -> Result<Bound, StartError> {
        let tls = server::build_tls(&config)?;
        let listeners = server::bind(&config).await?;
        let bound = Bound {
            https: listeners
                .https
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .collect(),
            redirect: listeners
                .redirect
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .collect(),
        };
        let state = Arc::new(server::build_state(config)?);
        for addr in &bound.https {
            tracing::info!(role = role.name(), %addr, "listening (https, Autodiscover)");
        }
        for addr in &bound.redirect {
            tracing::info!(role = role.name(), %addr, "listening (http, redirect responder)");
        }
        let mut stop = self.stop.subscribe();
        self.tasks
            .spawn(server::run(listeners, state, tls, async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }));
        Ok(bound)
    }

    /// Serves until `shutdown` completes (or a role stops by itself), then drains both.
    pub async fn serve_until(mut self, shutdown: impl Future<Output = ()>) {
        tokio::select! {
            _ = shutdown => {}
            _ = self.tasks.join_next() => {
                tracing::warn!("a lab role stopped; stopping the other");
            }
        }
        self.stop().await;
    }

    /// Stops both roles and waits for them to drain.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Runs the lab in `dir` with its configured ports until `shutdown` completes.
pub async fn run(dir: &Path, shutdown: impl Future<Output = ()>) -> Result<(), UpError> {
    let lab = RunningLab::start(dir, Binding::AsConfigured).await?;
    lab.serve_until(shutdown).await;
    Ok(())
}
