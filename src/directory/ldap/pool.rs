//! Connections to the directory: TLS settings, failover across the configured URLs, and
//! pools of open connections reused across requests (one pool bound as the service
//! account for searches, one for verifying users' passwords by bind).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::asn1::{StructureTag, PL};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::mapping::RawEntry;
use crate::config::{BindPassword, ConfigError, LdapConfig, LdapUrl};
use crate::directory::DirectoryError;

/// Opens connections, trying the configured URLs in turn (the last one that worked first).
pub struct Connector {
    urls: Vec<LdapUrl>,
    starttls: bool,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    preferred: AtomicUsize,
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
            urls: cfg.urls.clone(),
            starttls: cfg.starttls,
            tls: Arc::new(tls),
            connect_timeout: cfg.connect_timeout,
            preferred: AtomicUsize::new(0),
        })
    }

    /// A new connection to the first URL that answers.
    pub async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let n = self.urls.len();
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = DirectoryError::Unavailable("no LDAP server URL configured".into());
        for i in 0..n {
            let index = (start + i) % n;
            let Some(url) = self.urls.get(index) else {
                continue;
            };
            match self.connect_one(url).await {
                Ok(ldap) => {
                    if index != start {
                        tracing::info!(url = %url.url, "LDAP failover: using this server");
                    }
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(ldap);
                }
                Err(e) => {
                    tracing::debug!(url = %url.url, error = %e, "LDAP connect failed");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn connect_one(&self, url: &LdapUrl) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_config(Arc::clone(&self.tls));
        if !url.ldaps && self.starttls {
            settings = settings.set_starttls(true);
        }
        let ms = self.connect_timeout.as_millis() as u64;
        let (conn, ldap) = tokio::time::timeout(
            self.connect_timeout,
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
    idle: Mutex<Vec<Ldap>>,
    permits: Semaphore,
    capacity: usize,
    service: Option<(String, BindPassword)>,
}

/// A checked-out connection; give it back with [`Pool::put`] when it is still healthy.
pub struct Conn<'a> {
    pub ldap: Ldap,
    /// It came from the pool (so a failure may only mean the server closed it meanwhile).
    pub reused: bool,
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
        while let Some(mut ldap) = self.pop() {
            if !ldap.is_closed() {
                return Ok(Conn {
                    ldap,
                    reused: true,
                    _permit: permit,
                });
            }
        }
        let mut ldap = connector.connect().await?;
        if let Some((dn, password)) = &self.service {
            let res = ldap
                .simple_bind(dn, password.expose())
                .await
                .map_err(|e| describe_error("service bind", e, 0))?;
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
            _permit: permit,
        })
    }

    fn pop(&self) -> Option<Ldap> {
        self.idle.lock().ok().and_then(|mut idle| idle.pop())
    }

    /// Returns a healthy connection for reuse.
    pub fn put(&self, conn: Conn<'_>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.capacity {
                idle.push(conn.ldap);
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
