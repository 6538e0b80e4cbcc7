//! The I/O side of NTLM and Negotiate: randomness, the clock, the directory lookup between
//! the acceptor's steps, the connection's state and the TLS channel bindings. The protocol
//! itself is in [`crate::auth::negotiate`] and [`crate::auth::ntlm`].

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;
use rustls::sign::CertifiedKey;

use super::throttle::{AuthThrottle, Throttled};
use super::ConnInfo;
use crate::auth::negotiate::{ConnAuth, Finish, Leg, Scheme};
use crate::auth::ntlm::{self, crypto, CbtPolicy, Legacy, Policy, ServerNames};
use crate::auth::Offers;
use crate::config::{Config, TlsConfig};
use crate::directory::{Directory, DirectoryBackend, DirectoryError, Identity};

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
}

impl NtlmService {
    /// Derives the NTLM settings; warns when NTLM is on but the directory cannot verify it.
    /// `load_certificates` is called when channel bindings are to be checked.
    pub fn new<C, E>(
        config: &Config,
        directory: &DirectoryBackend,
        load_certificates: impl FnOnce(&TlsConfig) -> Result<C, E>,
    ) -> NtlmService
    where
        C: ServedCertificates + 'static,
        E: std::fmt::Display,
    {
        let ntlm = &config.auth.ntlm;
        let mut enabled = ntlm.enabled;
        if enabled && !directory.supports_nt_hashes() {
            tracing::warn!(
                "auth.ntlm is on but the directory backend holds no NT hashes, so NTLM cannot be verified; \
                 NTLM and Negotiate are NOT offered. Active Directory never returns NT hashes over LDAP: \
                 use Basic (LDAP bind), or a directory with sambaNTPassword / the embedded file's nt_hash"
            );
            enabled = false;
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
        let certificates = if enabled && ntlm.channel_binding != CbtPolicy::Off {
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
        NtlmService {
            enabled,
            advertise_negotiate: enabled && ntlm.advertise_negotiate,
            persist_on_connection: ntlm.persist_on_connection,
            names,
            policy: Policy {
                timestamp_window_secs: ntlm.timestamp_window_secs,
                channel_binding: ntlm.channel_binding,
                allow_legacy: ntlm.allow_legacy,
            },
            certificates,
        }
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
        if !self.enabled || !self.persist_on_connection {
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
        if let Err(t) = throttle.admit(client, &account).await {
            let _ = lock(conn.auth()).finish(None, &self.policy, None);
            return WindowsAuth::Throttled(t);
        }
        let credential = match &login {
            Some(login) => directory.nt_credential(login).await,
            None => Ok(None),
        };
        let credential = match credential {
            Ok(c) => c,
            Err(e) => {
                let _ = lock(conn.auth()).finish(None, &self.policy, None);
                return WindowsAuth::Unavailable(e);
            }
        };
        let expected_cbt = self.expected_channel_binding(conn);
        let finish = lock(conn.auth()).finish(
            credential.as_ref().map(|c| &c.nt_hash),
            &self.policy,
            expected_cbt.as_ref(),
        );
        let (final_header, legacy, identity) = match (finish, credential) {
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
                Some(credential),
            ) => (final_header, legacy, credential.identity),
            (Finish::Rejected(reason), _) => {
                throttle.failed(client, &account);
                tracing::info!(target: "auth", client = %conn.peer, scheme = scheme.name(), %user, %domain, reason, "NTLM authentication failed");
                return WindowsAuth::Rejected;
            }
            (Finish::Authenticated { .. }, None) => {
                throttle.failed(client, &account);
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
        throttle.succeeded(client, &account);
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

    /// The `WWW-Authenticate` value to add to the answer of the request that just completed
    /// a SPNEGO handshake on this connection (taken once).
    pub fn take_final_header(&self, conn: &ConnInfo) -> Option<String> {
        if !self.enabled {
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
        let certs = self.certificates.as_ref()?;
        let key = certs.pick(conn.sni.as_deref());
        let leaf = key.cert.first()?;
        Some(crypto::channel_binding_hash(&tls_server_end_point(
            leaf.as_ref(),
        )))
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
