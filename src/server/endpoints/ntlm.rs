//! The I/O side of NTLM and Negotiate: randomness, the clock, the directory lookup between
//! the acceptor's steps, the connection's state and the TLS channel bindings. The protocol
//! itself is in [`crate::auth::negotiate`] and [`crate::auth::ntlm`]. NTLMv2 responses are
//! checked against the directory's NT hash, or by the domain through winbind
//! ([`super::winbind`]); Negotiate tokens for Kerberos go to the GSS-API acceptor
//! (`super::kerberos`, with the `kerberos` feature).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;
use rustls::sign::CertifiedKey;

use super::throttle::{AccountGuard, AuthThrottle, Throttled};
use super::winbind::WinbindPool;
use super::ConnInfo;
use crate::auth::negotiate::{ConnAuth, Finish, Leg, Scheme};
use crate::auth::ntlm::{self, crypto, CbtPolicy, Legacy, Policy, ServerNames};
use crate::auth::spnego::{self, Mechanism};
use crate::auth::Offers;
use crate::config::{Config, TlsConfig};
use crate::directory::{Directory, DirectoryBackend, DirectoryError, Identity, Login, LoginGuard};

/// NTLM settings and the data derived from them at start.
pub struct NtlmService {
    /// NTLM is configured on and the directory can verify it.
    pub enabled: bool,
    pub advertise_negotiate: bool,
    pub persist_on_connection: bool,
    names: ServerNames,
    policy: Policy,
    /// Certificates by SNI, to compute `tls-server-end-point` channel bindings.
    certificates: Option<Box<dyn ServedCertificates>>,
    /// NTLMv2 responses go to the domain through these helpers (`[auth.winbind]`).
    winbind: Option<WinbindPool>,
    /// Kerberos inside Negotiate (`[auth.kerberos]`).
    #[cfg(feature = "kerberos")]
    kerberos: Option<super::kerberos::KerberosAcceptor>,
}

/// The certificate the TLS side serves for a host name, which is what a client's NTLM
/// channel binding names. The transport's SNI resolver implements it; this module needs
/// nothing else from the transport.
pub trait ServedCertificates: Send + Sync {
    /// The certificate served to a client that asked for `server_name`.
    fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey>;
}

/// The result of one `Authorization: NTLM|Negotiate` request.
#[derive(Debug)]
pub enum WindowsAuth {
    /// Serve the request as this user. A final SPNEGO token, if any, waits on the
    /// connection for [`NtlmService::take_final_header`].
    Authenticated(Identity),
    /// 401 with this `WWW-Authenticate` value (the handshake continues).
    Continue(String),
    /// 401 with the plain offers.
    Rejected,
    /// The directory failed.
    Unavailable(DirectoryError),
    /// The failed-login throttle refused the attempt (the handshake is reset).
    Throttled(Throttled),
    /// The domain could not be asked (winbind helper failed or timed out): 503.
    VerifierDown,
}

impl NtlmService {
    /// Derives the NTLM settings; warns when NTLM is on but the directory cannot verify it.
    /// `load_certificates` is called when channel bindings are to be checked.
    pub fn new<C, E>(
        config: &Config,
        directory: &DirectoryBackend,
        load_certificates: impl FnOnce(&TlsConfig) -> Result<C, E>,
    ) -> Result<NtlmService, crate::config::ConfigError>
    where
        C: ServedCertificates + 'static,
        E: std::fmt::Display,
    {
        let ntlm = &config.auth.ntlm;
        let mut enabled = ntlm.enabled;
        let winbind = config
            .auth
            .winbind
            .as_ref()
            .filter(|_| enabled)
            .map(WinbindPool::new);
        if enabled && winbind.is_none() && !directory.supports_nt_hashes() {
            tracing::warn!(
                "auth.ntlm is on but the directory backend holds no NT hashes, so NTLM cannot be verified; \
                 NTLM is NOT offered. Active Directory never returns NT hashes over LDAP: \
                 configure [auth.winbind] (the domain checks NTLM), use Basic (LDAP bind), \
                 or a directory with sambaNTPassword / the embedded file's nt_hash"
            );
            enabled = false;
        }
        if winbind.is_some() {
            tracing::info!("NTLM responses are checked by the domain through winbind (ntlm_auth)");
        }
        if enabled && ntlm.advertise_negotiate {
            tracing::info!(
                "advertising Negotiate: clients that try Kerberos first without a ticket (curl --anyauth) may not fall back to NTLM"
            );
        }
        if enabled && ntlm.allow_legacy {
            tracing::warn!(
                "auth.ntlm_allow_legacy is ON: NTLMv1 (crackable, DES of the NT hash) and ANONYMOUS \
                 NTLM logins are accepted. For legacy labs only; every such login is logged as a warning"
            );
        }
        let nb_domain = ntlm
            .domain
            .clone()
            .or_else(|| directory.netbios_domain())
            .unwrap_or_else(|| netbios_name(&config.org.exchange_org));
        let dns_domain = config
            .org
            .accepted_domains
            .first()
            .cloned()
            .unwrap_or_else(|| "localdomain".to_string());
        let names = ServerNames {
            nb_domain,
            nb_computer: "AUTODISCOVER".to_string(),
            dns_computer: format!("autodiscover.{dns_domain}"),
            dns_tree: dns_domain.clone(),
            dns_domain,
        };
        // The TLS acceptor loads the same files (and fails the start if it cannot); here a
        // failure (e.g. `check-config` before the self-signed certificate exists) only
        // means bindings sent by clients cannot be matched.
        #[cfg(feature = "kerberos")]
        let kerberos = match &config.auth.kerberos {
            Some(k) => {
                for spn in k.rc4_only() {
                    tracing::warn!(spn = %spn, "the keytab holds only RC4 (arcfour-hmac) keys for this service principal: set msDS-SupportedEncryptionTypes to AES (24) on its account and export the keytab again");
                }
                let acceptor = super::kerberos::KerberosAcceptor::new(k, directory.netbios_domain())
                    .map_err(|problem| {
                        crate::config::ConfigError::invalid(
                            &config.source,
                            "auth.kerberos.keytab",
                            problem,
                            "check the keytab with `klist -ket FILE`; it must hold the service principals' keys",
                        )
                    })?;
                tracing::info!(keytab = %k.keytab.display(), spns = ?k.service_principals, realms = ?k.realms, "Kerberos (Negotiate) on");
                Some(acceptor)
            }
            None => None,
        };
        #[cfg(feature = "kerberos")]
        let kerberos_on = kerberos.is_some();
        #[cfg(not(feature = "kerberos"))]
        let kerberos_on = false;
        let certificates = if (enabled || kerberos_on) && ntlm.channel_binding != CbtPolicy::Off {
            match load_certificates(&config.tls) {
                Ok(r) => Some(Box::new(r) as Box<dyn ServedCertificates>),
                Err(e) => {
                    tracing::warn!(error = %e, "NTLM channel bindings cannot be checked without the certificates");
                    None
                }
            }
        } else {
            None
        };
        Ok(NtlmService {
            enabled,
            // Kerberos is what domain-joined Outlook wants: offered whenever it is on.
            advertise_negotiate: (enabled && ntlm.advertise_negotiate) || kerberos_on,
            persist_on_connection: ntlm.persist_on_connection,
            names,
            policy: Policy {
                timestamp_window_secs: ntlm.timestamp_window_secs,
                channel_binding: ntlm.channel_binding,
                allow_legacy: ntlm.allow_legacy,
            },
            certificates,
            winbind,
            #[cfg(feature = "kerberos")]
            kerberos,
        })
    }

    /// Whether tokens of this scheme are accepted at all.
    pub fn accepts(&self, scheme: Scheme) -> bool {
        match scheme {
            Scheme::Ntlm => self.enabled,
            Scheme::Negotiate => self.enabled || self.kerberos_on(),
        }
    }

    #[cfg(feature = "kerberos")]
    fn kerberos_on(&self) -> bool {
        self.kerberos.is_some()
    }

    #[cfg(not(feature = "kerberos"))]
    fn kerberos_on(&self) -> bool {
        false
    }

    /// The helper pool, when NTLM is checked through winbind (tests look at its restarts).
    pub fn winbind(&self) -> Option<&WinbindPool> {
        self.winbind.as_ref()
    }

    /// The schemes a 401 offers.
    pub fn offers(&self, basic: bool) -> Offers {
        Offers {
            negotiate: self.advertise_negotiate,
            ntlm: self.enabled,
            basic,
        }
    }

    /// The identity a persisted, already authenticated connection carries.
    pub fn connection_identity(&self, conn: &ConnInfo) -> Option<Identity> {
        if !self.accepts(Scheme::Negotiate) || !self.persist_on_connection {
            return None;
        }
        conn.auth_if_used()
            .and_then(|auth| lock(auth).identity().cloned())
    }

    /// Handles one `Authorization: NTLM|Negotiate <token>` request.
    pub async fn authenticate(
        &self,
        scheme: Scheme,
        token: &[u8],
        directory: &DirectoryBackend,
        conn: &ConnInfo,
        (throttle, client): (&AuthThrottle, IpAddr),
    ) -> WindowsAuth {
        #[cfg(feature = "kerberos")]
        if let (Scheme::Negotiate, Some(krb)) = (scheme, &self.kerberos) {
            let pending = lock(conn.auth()).kerberos_pending();
            if spnego::route(token, pending) == Mechanism::Kerberos {
                return self.kerberos(krb, token, directory, conn).await;
            }
        }
        if !self.enabled {
            let reason = if spnego::route(token, false) == Mechanism::Kerberos {
                "kerberos_not_configured"
            } else {
                "ntlm_not_available"
            };
            tracing::info!(target: "auth", client = %conn.peer, scheme = scheme.name(), reason, "Negotiate token refused");
            return WindowsAuth::Rejected;
        }
        let mut challenge = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut challenge);
        let leg = lock(conn.auth()).step(
            scheme,
            token,
            &self.names,
            &self.policy,
            challenge,
            filetime_now(),
        );
        let (login, user, domain) = match leg {
            Leg::Continue(header) => return WindowsAuth::Continue(header),
            Leg::Rejected(reason) => {
                tracing::info!(target: "auth", client = %conn.peer, scheme = scheme.name(), reason, "NTLM handshake refused");
                return WindowsAuth::Rejected;
            }
            Leg::NeedCredential {
                login,
                user,
                domain,
            } => (login, user, domain),
        };
        // The user and domain are known from here on: the throttle's account is the login
        // as the client typed it.
        let account = login
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| format!("{domain}\\{user}"));
        // As for Basic: the delay this address earned is waited out only by a failure, so
        // that right answers from a busy NAT address are not slowed.
        let admitted = match throttle.admit_deferred(client, &account, None).await {
            Ok(admitted) => admitted,
            Err(t) => {
                let _ = lock(conn.auth()).finish(None, &self.policy, None);
                return WindowsAuth::Throttled(t);
            }
        };
        let verdict = match &self.winbind {
            Some(pool) => {
                let guard = throttle.guard(client);
                let verdict = self
                    .by_domain(pool, login.as_ref(), directory, conn, &guard)
                    .await;
                if let Some(retry_after) = guard.refused() {
                    return WindowsAuth::Throttled(Throttled::Refused { retry_after });
                }
                verdict
            }
            None => self.by_nt_hash(login.as_ref(), directory, conn).await,
        };
        let (finish, identity) = match verdict {
            Ok(v) => v,
            Err(other) => return other,
        };
        let (final_header, legacy, identity) = match (finish, identity) {
            (
                Finish::Authenticated {
                    final_header,
                    legacy: Some(Legacy::Anonymous),
                    ..
                },
                _,
            ) => (final_header, Some(Legacy::Anonymous), anonymous_identity()),
            (
                Finish::Authenticated {
                    final_header,
                    legacy,
                    ..
                },
                Some(identity),
            ) => (final_header, legacy, identity),
            (Finish::Rejected(reason), _) => {
                throttle.failed(client, &account, Some(&admitted)).await;
                throttle.wait(client, admitted.on_failure).await;
                tracing::info!(target: "auth", client = %conn.peer, scheme = scheme.name(), %user, %domain, reason, "NTLM authentication failed");
                return WindowsAuth::Rejected;
            }
            (Finish::Authenticated { .. }, None) => {
                throttle.failed(client, &account, Some(&admitted)).await;
                throttle.wait(client, admitted.on_failure).await;
                tracing::info!(target: "auth", client = %conn.peer, scheme = scheme.name(), %user, %domain, "NTLM login without an enabled directory entry");
                return WindowsAuth::Rejected;
            }
        };
        {
            let mut auth = lock(conn.auth());
            if self.persist_on_connection {
                auth.set_identity(identity.clone());
            }
            auth.set_final_header(final_header);
        }
        throttle.succeeded(client, &account, Some(&admitted)).await;
        match legacy {
            Some(kind) => {
                tracing::warn!(target: "auth", client = %conn.peer, scheme = scheme.name(), %user, %domain, kind = kind.label(), "LEGACY NTLM login accepted (auth.ntlm_allow_legacy)");
            }
            None => {
                tracing::debug!(target: "auth", client = %conn.peer, scheme = scheme.name(), %user, %domain, "NTLM authenticated");
            }
        }
        WindowsAuth::Authenticated(identity)
    }

    /// Verifies the outstanding AUTHENTICATE against the directory's NT hash.
    async fn by_nt_hash(
        &self,
        login: Option<&Login>,
        directory: &DirectoryBackend,
        conn: &ConnInfo,
    ) -> Result<(Finish, Option<Identity>), WindowsAuth> {
        let credential = match login {
            Some(login) => directory.nt_credential(login).await,
            None => Ok(None),
        };
        let credential = match credential {
            Ok(c) => c,
            Err(e) => {
                let _ = lock(conn.auth()).finish(None, &self.policy, None);
                return Err(WindowsAuth::Unavailable(e));
            }
        };
        let expected_cbt = self.expected_channel_binding(conn);
        let finish = lock(conn.auth()).finish(
            credential.as_ref().map(|c| &c.nt_hash),
            &self.policy,
            expected_cbt.as_ref(),
        );
        Ok((finish, credential.map(|c| c.identity)))
    }

    /// Has the domain check the outstanding AUTHENTICATE (winbind), then the MIC and
    /// channel binding are checked here with the session key it returned. The domain counts
    /// a wrong response against the account's lockout, so the login is first resolved to
    /// its directory account and the lockout guard consulted, as for Basic.
    async fn by_domain(
        &self,
        pool: &WinbindPool,
        login: Option<&Login>,
        directory: &DirectoryBackend,
        conn: &ConnInfo,
        guard: &AccountGuard<'_>,
    ) -> Result<(Finish, Option<Identity>), WindowsAuth> {
        let refuse = |label| {
            let _ = lock(conn.auth()).finish_by_domain(None, &self.policy, None);
            Ok((Finish::Rejected(label), None))
        };
        let check = lock(conn.auth()).domain_check();
        let (Some(check), Some(login)) = (check, login) else {
            // Legacy or anonymous messages, or a name that cannot be a login.
            return refuse("not_for_the_domain");
        };
        let (account, identity) = match directory.resolve_account(login).await {
            Ok(resolved) => resolved,
            Err(e) => {
                let _ = lock(conn.auth()).finish_by_domain(None, &self.policy, None);
                return Err(WindowsAuth::Unavailable(e));
            }
        };
        if !guard.admit(&account).await {
            return refuse("lockout_guard");
        }
        let session_key = match pool.verify(&check).await {
            Ok(key) => key,
            Err(_) => {
                // Logged by the pool. Not settled: the domain may have counted it.
                let _ = lock(conn.auth()).finish_by_domain(None, &self.policy, None);
                return Err(WindowsAuth::VerifierDown);
            }
        };
        guard.settle(&account, Some(session_key.is_some())).await;
        let expected_cbt = self.expected_channel_binding(conn);
        let finish = lock(conn.auth()).finish_by_domain(
            session_key.as_ref(),
            &self.policy,
            expected_cbt.as_ref(),
        );
        Ok((finish, identity))
    }

    /// One Kerberos token through the GSS-API acceptor.
    #[cfg(feature = "kerberos")]
    async fn kerberos(
        &self,
        krb: &super::kerberos::KerberosAcceptor,
        token: &[u8],
        directory: &DirectoryBackend,
        conn: &ConnInfo,
    ) -> WindowsAuth {
        use super::kerberos::KerberosStep;
        use base64::Engine;
        let b64 = |t: &[u8]| base64::engine::general_purpose::STANDARD.encode(t);
        let pending = lock(conn.auth()).take_kerberos();
        let binding = self.channel_binding_data(conn);
        match krb.accept(pending, token.to_vec(), binding).await {
            KerberosStep::Continue(answer, context) => {
                lock(conn.auth()).keep_kerberos(context);
                WindowsAuth::Continue(format!("Negotiate {}", b64(&answer)))
            }
            KerberosStep::Rejected(reason) => {
                tracing::info!(target: "auth", client = %conn.peer, scheme = "Negotiate", mechanism = "kerberos", %reason, "Kerberos authentication failed");
                WindowsAuth::Rejected
            }
            KerberosStep::Accepted {
                login,
                principal,
                token,
            } => match directory.account_identity(&login).await {
                Ok(Some(identity)) => {
                    let mut auth = lock(conn.auth());
                    if self.persist_on_connection {
                        auth.set_identity(identity.clone());
                    }
                    auth.set_final_header(token.map(|t| format!("Negotiate {}", b64(&t))));
                    tracing::debug!(target: "auth", client = %conn.peer, mechanism = "kerberos", %principal, "Kerberos authenticated");
                    WindowsAuth::Authenticated(identity)
                }
                Ok(None) => {
                    tracing::info!(target: "auth", client = %conn.peer, mechanism = "kerberos", %principal, login = %login, "Kerberos principal has no enabled directory entry");
                    WindowsAuth::Rejected
                }
                Err(e) => WindowsAuth::Unavailable(e),
            },
        }
    }

    /// The `WWW-Authenticate` value to add to the answer of the request that just completed
    /// a SPNEGO handshake on this connection (taken once).
    pub fn take_final_header(&self, conn: &ConnInfo) -> Option<String> {
        if !self.accepts(Scheme::Negotiate) {
            return None;
        }
        conn.auth_if_used()
            .and_then(|auth| lock(auth).take_final_header())
    }

    /// Forgets a persisted identity (the client presented other credentials).
    pub fn forget(&self, conn: &ConnInfo) {
        if let Some(auth) = conn.auth_if_used() {
            lock(auth).clear_identity();
        }
    }

    fn expected_channel_binding(&self, conn: &ConnInfo) -> Option<[u8; 16]> {
        self.channel_binding_data(conn)
            .map(|data| crypto::channel_binding_hash(&data))
    }

    /// RFC 5929 `tls-server-end-point` data of the certificate this connection was served.
    fn channel_binding_data(&self, conn: &ConnInfo) -> Option<Vec<u8>> {
        let certs = self.certificates.as_ref()?;
        let key = certs.pick(conn.sni.as_deref());
        let leaf = key.cert.first()?;
        Some(tls_server_end_point(leaf.as_ref()))
    }
}

/// Who an anonymous NTLM login (allowed by `auth.ntlm_allow_legacy`) is: no addresses, so
/// `lookup_policy = "self"` shows it nothing, while `"any"` lets it discover any address.
pub fn anonymous_identity() -> Identity {
    Identity {
        user_principal_name: "anonymous".to_string(),
        addresses: Vec::new(),
    }
}

fn lock(m: &Mutex<ConnAuth>) -> MutexGuard<'_, ConnAuth> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Now as a FILETIME.
fn filetime_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    ntlm::filetime_from_unix(d.as_secs(), d.subsec_nanos())
}

/// A NetBIOS-style name from an organisation name: letters and digits, upper case, ≤ 15.
fn netbios_name(org: &str) -> String {
    let name: String = org
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(15)
        .collect::<String>()
        .to_ascii_uppercase();
    if name.is_empty() {
        "AUTODISCOVER".to_string()
    } else {
        name
    }
}

/// RFC 5929 `tls-server-end-point` application data for a certificate: the prefix and the
/// hash of the certificate with its signature's hash function, SHA-256 for MD5/SHA-1.
pub fn tls_server_end_point(cert_der: &[u8]) -> Vec<u8> {
    let algorithm = match signature_hash(cert_der) {
        SigHash::Sha384 => &ring::digest::SHA384,
        SigHash::Sha512 => &ring::digest::SHA512,
        SigHash::Sha256 => &ring::digest::SHA256,
    };
    let mut out = b"tls-server-end-point:".to_vec();
    out.extend_from_slice(ring::digest::digest(algorithm, cert_der).as_ref());
    out
}

enum SigHash {
    Sha256,
    Sha384,
    Sha512,
}

fn signature_hash(cert_der: &[u8]) -> SigHash {
    use crate::auth::der::{single, DerReader};
    let oid = (|| {
        let cert = single(cert_der, 0x30).ok()?;
        let mut r = DerReader::new(cert.value);
        let _tbs = r.expect(0x30).ok()?;
        let alg = r.expect(0x30).ok()?;
        let mut a = DerReader::new(alg.value);
        Some(a.expect(0x06).ok()?.value)
    })();
    match oid {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        Some([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c])
        | Some([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]) => SigHash::Sha384,
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        Some([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d])
        | Some([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04]) => SigHash::Sha512,
        _ => SigHash::Sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netbios_names_are_cut_and_upper_cased() {
        assert_eq!(netbios_name("Contoso"), "CONTOSO");
        assert_eq!(
            netbios_name("Contoso Ltd. International"),
            "CONTOSOLTDINTER"
        );
        assert_eq!(netbios_name("..."), "AUTODISCOVER");
    }

    #[test]
    fn channel_binding_hash_follows_the_certificate_signature_hash() {
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let params = || rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        let c256 = params().self_signed(&p256).unwrap();
        let c384 = params().self_signed(&p384).unwrap();
        let a = tls_server_end_point(c256.der());
        let b = tls_server_end_point(c384.der());
        assert_eq!(a.len(), 21 + 32);
        assert_eq!(b.len(), 21 + 48);
        assert_eq!(
            &a[21..],
            ring::digest::digest(&ring::digest::SHA256, c256.der()).as_ref()
        );
        // Garbage falls back to SHA-256 instead of failing.
        assert_eq!(tls_server_end_point(b"junk").len(), 21 + 32);
    }
}
