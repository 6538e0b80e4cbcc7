//! Connections to the directory: TLS settings, failover across the configured URLs, and
//! pools of open connections reused across requests (one pool bound as the service
//! account for searches, one for verifying users' passwords by bind).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::asn1::{StructureTag, PL};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::mapping::RawEntry;
use crate::config::{BindPassword, ConfigError, LdapConfig, LdapUrl};
use crate::directory::DirectoryError;
use crate::ops::metrics;

/// How often a server known unreachable is tried again in the background.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Opens connections, trying the configured URLs in turn (the last one that worked first)
/// and skipping those known unreachable. A server becomes known unreachable when a
/// connection to it fails or an operation on it goes unanswered for `connect_timeout_ms`;
/// its pooled connections are then not reused, and a background probe (every 250 ms)
/// brings it back as soon as it answers. While every server is known unreachable,
/// [`Connector::all_down`] is true and callers fail at once (a circuit breaker).
#[derive(Clone)]
pub struct Connector {
    inner: Arc<Servers>,
}

struct Servers {
    urls: Vec<LdapUrl>,
    starttls: bool,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    preferred: AtomicUsize,
    reach: Vec<Reach>,
    probing: AtomicBool,
    /// These are the directory's servers, whose reachability the logs and the
    /// `autodiscoverd_ldap_unreachable` gauge report; false for a side link (the PDC
    /// emulator asked for bad-password counts), whose caller says what it needs to.
    reports: bool,
}

/// One server's reachability: known unreachable, and a count of how often it became so
/// (connections made before the last time are not reused).
#[derive(Default)]
struct Reach {
    down: AtomicBool,
    epoch: AtomicU64,
}

/// Which server a connection goes to, and its reachability epoch when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub index: usize,
    epoch: u64,
}

impl Connector {
    /// Builds the TLS client configuration (CA file or the system roots).
    pub fn new(cfg: &LdapConfig, config_file: &std::path::Path) -> Result<Connector, ConfigError> {
        let needs_tls = cfg.starttls || cfg.urls.iter().any(|u| u.ldaps);
        let mut roots = rustls::RootCertStore::empty();
        match &cfg.ca_file {
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let bad = |problem: String| {
                    ConfigError::invalid(
                        config_file,
                        "directory.ldap.ca_file",
                        problem,
                        "give a PEM file with the CA certificate(s) that issued the directory servers' certificates",
                    )
                };
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| bad(format!("cannot read `{}`: {e}", path.display())))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("`{}` is not PEM: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(bad(format!("`{}` holds no certificate", path.display())));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| bad(format!("unusable certificate: {e}")))?;
                }
            }
            None if needs_tls => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    tracing::warn!("no system CA certificates found; set directory.ldap.ca_file or LDAPS/StartTLS will fail");
                }
            }
            None => {}
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                ConfigError::invalid(
                    config_file,
                    "directory.ldap",
                    format!("TLS setup failed: {e}"),
                    "report this as a bug",
                )
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector {
            inner: Arc::new(Servers {
                reach: cfg.urls.iter().map(|_| Reach::default()).collect(),
                urls: cfg.urls.clone(),
                starttls: cfg.starttls,
                tls: Arc::new(tls),
                connect_timeout: cfg.connect_timeout,
                preferred: AtomicUsize::new(0),
                probing: AtomicBool::new(false),
                reports: true,
            }),
        })
    }

    /// A connector to servers besides the directory's own (the PDC emulator): the same
    /// failover, fast failures and probe, but its reachability is neither logged as the
    /// directory's nor counted in the directory's gauge.
    pub fn side_link(
        cfg: &LdapConfig,
        config_file: &std::path::Path,
    ) -> Result<Connector, ConfigError> {
        let mut connector = Connector::new(cfg, config_file)?;
        if let Some(servers) = Arc::get_mut(&mut connector.inner) {
            servers.reports = false;
        }
        Ok(connector)
    }

    /// A new connection to the first URL that answers.
    pub async fn connect(&self) -> Result<Ldap, DirectoryError> {
        self.connect_tracked().await.map(|(ldap, _)| ldap)
    }

    /// [`Connector::connect`] with the server it reached. Servers known unreachable are
    /// skipped; when all are, the answer is at once.
    pub async fn connect_tracked(&self) -> Result<(Ldap, Slot), DirectoryError> {
        let servers = &*self.inner;
        let n = servers.urls.len();
        let start = servers.preferred.load(Ordering::Relaxed);
        let mut last = DirectoryError::Unavailable(if n == 0 {
            "no LDAP server URL configured".into()
        } else {
            unreachable_message()
        });
        for i in 0..n {
            let index = (start + i) % n;
            let (Some(url), Some(reach)) = (servers.urls.get(index), servers.reach.get(index))
            else {
                continue;
            };
            if reach.down.load(Ordering::Acquire) {
                continue;
            }
            let epoch = reach.epoch.load(Ordering::Acquire);
            metrics::ldap_operation("connect");
            match self.connect_one(url).await {
                Ok(ldap) => {
                    if index != start {
                        tracing::info!(url = %url.url, "LDAP failover: using this server");
                    }
                    servers.preferred.store(index, Ordering::Relaxed);
                    return Ok((ldap, Slot { index, epoch }));
                }
                Err(e) => {
                    tracing::debug!(url = %url.url, error = %e, "LDAP connect failed");
                    self.mark_down(index, &e);
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn connect_one(&self, url: &LdapUrl) -> Result<Ldap, DirectoryError> {
        let servers = &*self.inner;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(servers.connect_timeout)
            .set_config(Arc::clone(&servers.tls));
        if !url.ldaps && servers.starttls {
            settings = settings.set_starttls(true);
        }
        let ms = servers.connect_timeout.as_millis() as u64;
        let (conn, ldap) = tokio::time::timeout(
            servers.connect_timeout,
            LdapConnAsync::with_settings(settings, &url.url),
        )
        .await
        .map_err(|_| DirectoryError::Timeout(ms))?
        .map_err(|e| describe_error(&url.url, e, ms))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        Ok(ldap)
    }

    /// How long a server may leave an operation unanswered before it counts as not
    /// answering: `connect_timeout_ms`.
    pub fn answer_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    /// True while every configured server is known unreachable.
    pub fn all_down(&self) -> bool {
        let reach = &self.inner.reach;
        !reach.is_empty() && reach.iter().all(|r| r.down.load(Ordering::Acquire))
    }

    /// A connection made to `slot` may still be used: its server has not been found
    /// unreachable since.
    pub fn is_current(&self, slot: Slot) -> bool {
        self.inner.reach.get(slot.index).is_some_and(|r| {
            !r.down.load(Ordering::Acquire) && r.epoch.load(Ordering::Acquire) == slot.epoch
        })
    }

    /// The server of `slot` did not answer: skip it and drop its connections until the
    /// probe finds it answering again.
    pub fn abandon(&self, slot: Slot, why: &DirectoryError) {
        self.mark_down(slot.index, why);
    }

    fn mark_down(&self, index: usize, why: &DirectoryError) {
        let servers = &*self.inner;
        let (Some(reach), Some(url)) = (servers.reach.get(index), servers.urls.get(index)) else {
            return;
        };
        if reach.down.swap(true, Ordering::AcqRel) {
            return;
        }
        reach.epoch.fetch_add(1, Ordering::AcqRel);
        if !servers.reports {
            tracing::debug!(url = %url.url, error = %why, "LDAP side link not answering (probed every 250 ms)");
        } else if self.all_down() {
            metrics::ldap_unreachable(true);
            tracing::warn!(url = %url.url, error = %why, "LDAP server not answering, and no other configured server is: directory calls fail at once until one answers (probed every 250 ms)");
        } else {
            tracing::warn!(url = %url.url, error = %why, "LDAP server not answering: using the next configured server (probed every 250 ms)");
        }
        self.probe_in_background();
    }

    /// Starts the background probe of the servers known unreachable (one at a time).
    fn probe_in_background(&self) {
        if self.inner.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.probing.store(false, Ordering::Release);
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                // The directory was replaced (a reload) or dropped: nobody needs the probe.
                let Some(inner) = weak.upgrade() else { return };
                let connector = Connector { inner };
                if connector.probe_round().await {
                    connector.inner.probing.store(false, Ordering::Release);
                    // A server found unreachable while the probe was ending restarts it.
                    if connector
                        .inner
                        .reach
                        .iter()
                        .any(|r| r.down.load(Ordering::Acquire))
                    {
                        connector.probe_in_background();
                    }
                    return;
                }
            }
        });
    }

    /// Tries each server known unreachable once; true when none is left.
    async fn probe_round(&self) -> bool {
        let servers = &*self.inner;
        let mut all_back = true;
        for (index, (url, reach)) in servers.urls.iter().zip(&servers.reach).enumerate() {
            if !reach.down.load(Ordering::Acquire) {
                continue;
            }
            if self.answers(url).await {
                let was_all_down = self.all_down();
                reach.down.store(false, Ordering::Release);
                if was_all_down && servers.reports {
                    metrics::ldap_unreachable(false);
                    servers.preferred.store(index, Ordering::Relaxed);
                }
                if servers.reports {
                    tracing::info!(url = %url.url, "LDAP server answers again");
                }
            } else {
                all_back = false;
            }
        }
        all_back
    }

    /// The server accepts a connection and answers a read of its root DSE (RFC 4512
    /// §5.1) within the connect timeout: a stopped process accepts TCP but answers nothing.
    async fn answers(&self, url: &LdapUrl) -> bool {
        let deadline = self.inner.connect_timeout;
        let attempt = async {
            let mut ldap = self.connect_one(url).await.ok()?;
            let no_attributes = ["1.1"];
            let found = ldap
                .search("", ldap3::Scope::Base, "(objectClass=*)", no_attributes)
                .await
                .ok()
                .map(|r| r.1.rc == 0);
            let _ = ldap.unbind().await;
            found
        };
        matches!(
            tokio::time::timeout(deadline, attempt).await,
            Ok(Some(true))
        )
    }
}

/// The error of a call made while every configured server is known unreachable.
pub fn unreachable_message() -> String {
    "no configured LDAP server answers (each is tried again every 250 ms)".into()
}

/// Maps an ldap3 error to the directory's error (never contains a password: ldap3 errors
/// carry I/O, TLS and result-code text only).
pub fn describe_error(url: &str, e: LdapError, timeout_ms: u64) -> DirectoryError {
    match e {
        LdapError::Timeout { .. } => DirectoryError::Timeout(timeout_ms),
        other => DirectoryError::Unavailable(format!("{url}: {other}")),
    }
}

/// The directory refuses simple binds without TLS (Active Directory's "LDAP server signing
/// requirements" / `ldapServerIntegrity`, Samba's default): rc 8 strongerAuthRequired
/// (RFC 4511 §4.1.9) or 13 confidentialityRequired (RFC 4513 §5.1.3). The message says
/// what to configure; no password is in it (ldap3 results carry the server's text only).
pub fn tls_required(res: &LdapResult) -> Option<DirectoryError> {
    matches!(res.rc, 8 | 13).then(|| {
        DirectoryError::Unavailable(format!(
            "the directory requires TLS for simple binds ({}): use an ldaps:// URL (port 636, \
             or 3269 for the global catalog) or set directory.ldap.starttls = true",
            describe_result(res)
        ))
    })
}

/// `rc 49 (invalidCredentials): text` for logs.
pub fn describe_result(res: &LdapResult) -> String {
    let name = match res.rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        10 => "referral",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        _ => "other",
    };
    if res.text.is_empty() {
        format!("rc {} ({name})", res.rc)
    } else {
        format!("rc {} ({name}): {}", res.rc, res.text)
    }
}

/// A bounded set of open connections. The service pool binds each new connection as the
/// service account; the user-bind pool leaves them for password checks.
pub struct Pool {
    idle: Mutex<Vec<(Ldap, Slot)>>,
    permits: Semaphore,
    capacity: usize,
    service: Option<(String, BindPassword)>,
}

/// A checked-out connection; give it back with [`Pool::put`] when it is still healthy.
pub struct Conn<'a> {
    pub ldap: Ldap,
    /// It came from the pool (so a failure may only mean the server closed it meanwhile).
    pub reused: bool,
    /// The server it goes to.
    pub slot: Slot,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    /// A pool of at most `capacity` connections; `service` binds new ones.
    pub fn new(capacity: usize, service: Option<(String, BindPassword)>) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(capacity),
            capacity,
            service,
        }
    }

    /// An idle connection, or a new one (bound as the service account for that pool).
    pub async fn get(&self, connector: &Connector) -> Result<Conn<'_>, DirectoryError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DirectoryError::Unavailable("LDAP pool closed".into()))?;
        while let Some((mut ldap, slot)) = self.pop() {
            // Connections to a server found unreachable since are not reused.
            if !ldap.is_closed() && connector.is_current(slot) {
                return Ok(Conn {
                    ldap,
                    reused: true,
                    slot,
                    _permit: permit,
                });
            }
        }
        let (mut ldap, slot) = connector.connect_tracked().await?;
        if let Some((dn, password)) = &self.service {
            let answer = connector.answer_timeout();
            let res =
                match tokio::time::timeout(answer, ldap.simple_bind(dn, password.expose())).await {
                    Ok(res) => res.map_err(|e| describe_error("service bind", e, 0))?,
                    Err(_) => {
                        let e = DirectoryError::Timeout(answer.as_millis() as u64);
                        connector.abandon(slot, &e);
                        return Err(e);
                    }
                };
            if let Some(e) = tls_required(&res) {
                return Err(e);
            }
            if res.rc != 0 {
                return Err(DirectoryError::Unavailable(format!(
                    "the service account bind was refused: {}; check directory.ldap.bind_dn and its password",
                    describe_result(&res)
                )));
            }
        }
        Ok(Conn {
            ldap,
            reused: false,
            slot,
            _permit: permit,
        })
    }

    fn pop(&self) -> Option<(Ldap, Slot)> {
        self.idle.lock().ok().and_then(|mut idle| idle.pop())
    }

    /// Returns a healthy connection for reuse.
    pub fn put(&self, conn: Conn<'_>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.capacity {
                idle.push((conn.ldap, conn.slot));
            }
        }
    }
}

/// Converts one SearchResultEntry (RFC 4511 §4.5.2) into a [`RawEntry`] without panicking
/// on malformed input (`None`).
pub fn raw_entry(tag: StructureTag) -> Option<RawEntry> {
    let PL::C(parts) = tag.payload else {
        return None;
    };
    let mut parts = parts.into_iter();
    let PL::P(dn) = parts.next()?.payload else {
        return None;
    };
    let mut entry = RawEntry::new(String::from_utf8(dn).ok()?);
    let PL::C(attributes) = parts.next()?.payload else {
        return None;
    };
    for attribute in attributes {
        let PL::C(pair) = attribute.payload else {
            return None;
        };
        let mut pair = pair.into_iter();
        let PL::P(name) = pair.next()?.payload else {
            return None;
        };
        let PL::C(values) = pair.next()?.payload else {
            return None;
        };
        let values = values
            .into_iter()
            .filter_map(|v| match v.payload {
                PL::P(bytes) => Some(bytes),
                PL::C(_) => None,
            })
            .collect();
        entry.push(String::from_utf8(name).ok()?, values);
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: text.into(),
            refs: Vec::new(),
            ctrls: Vec::new(),
        }
    }

    #[test]
    fn a_server_demanding_tls_is_told_to_use_ldaps_or_starttls() {
        for rc in [8, 13] {
            let e = tls_required(&result(rc, "BindSimple: Transport encryption required."))
                .expect("recognised")
                .to_string();
            assert!(
                e.contains("ldaps://") && e.contains("starttls = true") && e.contains("Transport"),
                "{e}"
            );
        }
        assert!(tls_required(&result(49, "")).is_none());
        assert!(tls_required(&result(0, "")).is_none());
        assert_eq!(
            describe_result(&result(8, "")),
            "rc 8 (strongerAuthRequired)"
        );
    }
}
