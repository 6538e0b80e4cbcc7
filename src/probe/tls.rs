//! The probe's TLS side. rustls decides, with its WebPKI verifier and the probe's trust
//! anchors, whether the server's certificate is trusted; a certificate it refuses ends the
//! handshake, so no credentials can ever travel over an untrusted connection. The probe only
//! watches: it keeps the chain the server presented (also when rustls refuses it) so that
//! name, chain and dates can be reported one by one, as an administrator needs them, and
//! notes whether the server asked for a client certificate. Certificate details are read
//! with x509-parser.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use time::OffsetDateTime;

use super::report::CertificateInfo;

/// What the handshake revealed.
#[derive(Debug, Default)]
pub struct Observed {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    client_cert_requested: AtomicBool,
}

impl Observed {
    /// The server's certificate chain, leaf first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        match self.chain.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether the server sent a CertificateRequest.
    pub fn client_cert_requested(&self) -> bool {
        self.client_cert_requested.load(Ordering::Relaxed)
    }
}

/// Keeps what the server presented and hands every decision to rustls's WebPKI verifier.
#[derive(Debug)]
struct Recorder {
    /// `None` when the probe has no trust anchors: every certificate is then refused.
    verifier: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    observed: Arc<Observed>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        match self.observed.chain.lock() {
            Ok(mut c) => *c = chain,
            Err(poisoned) => *poisoned.into_inner() = chain,
        }
        match &self.verifier {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ResolvesClientCert for Recorder {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.observed
            .client_cert_requested
            .store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        // True so that rustls asks `resolve` when the server requests a certificate.
        true
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration for one connection and the facts it will record. Certificates
/// are verified against `roots`; without trust anchors every certificate is refused.
pub fn client_config(
    roots: Option<&Arc<RootCertStore>>,
) -> Result<(Arc<rustls::ClientConfig>, Arc<Observed>), rustls::Error> {
    let observed = Arc::new(Observed::default());
    let verifier = match roots {
        Some(roots) if !roots.is_empty() => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), provider())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?,
        ),
        _ => None,
    };
    let recorder = Arc::new(Recorder {
        verifier,
        provider: provider(),
        observed: Arc::clone(&observed),
    });
    // The custom verifier is rustls's hook for watching the chain; the decision inside it
    // is WebPkiServerVerifier's, unchanged (see `Recorder::verify_server_cert`).
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_client_cert_resolver(recorder);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), observed))
}

/// rustls's reason when a handshake error is its refusal of the server's certificate (as
/// opposed to no TLS at all, a refused protocol version or a broken connection).
pub fn certificate_refusal(e: &std::io::Error) -> Option<String> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    match inner {
        rustls::Error::InvalidCertificate(_) => Some(inner.to_string()),
        _ => None,
    }
}

/// Trust anchors: the `--ca-file` (replacing the system store, like curl's `--cacert`) or
/// the system store.
pub use crate::ops::trust::load_roots;

/// A certificate's details and dates (Unix seconds).
pub struct Described {
    pub info: CertificateInfo,
    pub not_before: i64,
    pub not_after: i64,
}

/// RFC 3339 UTC text of a Unix time.
pub fn rfc3339(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// Reads subject, issuer, names and dates of the leaf.
pub fn describe(chain: &[CertificateDer<'_>]) -> Result<Described, String> {
    let leaf = chain.first().ok_or("the server sent no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes)
                            .map(|b| std::net::IpAddr::from(b).to_string())
                            .ok(),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .map(|b| std::net::IpAddr::from(b).to_string())
                            .ok(),
                        _ => None,
                    };
                    ip_addresses.extend(ip);
                }
                _ => {}
            }
        }
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    Ok(Described {
        info: CertificateInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            dns_names,
            ip_addresses,
            not_before: rfc3339(not_before),
            not_after: rfc3339(not_after),
            serial: cert.raw_serial_as_string(),
            chain_length: chain.len(),
        },
        not_before,
        not_after,
    })
}

/// Is the leaf valid for `host` (RFC 6125 as webpki applies it)?
pub fn check_name(chain: &[CertificateDer<'_>], host: &str) -> Result<(), String> {
    let leaf = chain.first().ok_or("the server sent no certificate")?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| format!("`{host}` is not a valid server name"))?;
    let ee = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("the certificate cannot be parsed ({e:?})"))?;
    ee.verify_is_valid_for_subject_name(&name)
        .map_err(|_| format!("the certificate is not valid for {host}"))
}

fn chain_error(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "not issued by a trusted CA (unknown issuer)".into()
        }
        rustls::Error::InvalidCertificate(C::BadSignature) => "bad signature in the chain".into(),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "a CA certificate of the chain has expired".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "a CA certificate of the chain is not valid yet".into()
        }
        rustls::Error::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => {
            "the certificate is not meant for TLS servers (extended key usage)".into()
        }
        other => other.to_string(),
    }
}

/// Is the chain trusted by `roots`? Validated at `at_unix` (see
/// [`super::plan::chain_check_time`]) and for a name the leaf carries, so that a wrong
/// name or date is reported by its own step and not here.
pub fn check_chain(
    chain: &[CertificateDer<'_>],
    roots: &Arc<RootCertStore>,
    host: &str,
    names: &[String],
    at_unix: i64,
) -> Result<(), String> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or("the server sent no certificate")?;
    if roots.is_empty() {
        return Err("no trust anchors (the system store is empty); pass --ca-file".into());
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), provider())
        .build()
        .map_err(|e| format!("cannot build the verifier: {e}"))?;
    let name_text = if check_name(chain, host).is_ok() {
        host.to_string()
    } else {
        names.first().cloned().unwrap_or_else(|| host.to_string())
    };
    let name = ServerName::try_from(name_text)
        .map_err(|_| format!("`{host}` is not a valid server name"))?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(at_unix).unwrap_or(0)));
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], at)
        .map(|_| ())
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                unknown_issuer(chain)
            }
            other => chain_error(&other),
        })
}

/// Subject and issuer of a certificate, as text.
fn names_of(cert: &CertificateDer<'_>) -> Option<(String, String)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some((parsed.subject().to_string(), parsed.issuer().to_string()))
}

/// Why no trusted root was reached: the chain ends at a self-signed CA nobody trusts, or
/// its last certificate's issuer was not sent (a missing intermediate).
fn unknown_issuer(chain: &[CertificateDer<'_>]) -> String {
    let Some((subject, issuer)) = chain.last().and_then(names_of) else {
        return "not issued by a trusted CA (unknown issuer)".into();
    };
    if subject == issuer {
        format!("not issued by a trusted CA: the chain ends at the self-signed `{subject}`, which is not a trusted root")
    } else {
        format!("incomplete chain: the server did not send the intermediate certificate `{issuer}` (and it is not a trusted root)")
    }
}

/// One line per certificate the server sent: subject, issuer and dates.
pub fn chain_lines(chain: &[CertificateDer<'_>]) -> Vec<String> {
    chain
        .iter()
        .enumerate()
        .map(
            |(i, cert)| match x509_parser::parse_x509_certificate(cert.as_ref()) {
                Ok((_, c)) => format!(
                    "chain[{i}]: {} (issued by {}; {} to {})",
                    c.subject(),
                    c.issuer(),
                    rfc3339(c.validity().not_before.timestamp()),
                    rfc3339(c.validity().not_after.timestamp())
                ),
                Err(e) => format!("chain[{i}]: unparseable ({e})"),
            },
        )
        .collect()
}

/// Which of the certificate's DNS names covers `host`: the exact name or a wildcard
/// (RFC 6125 §6.4.3: `*` stands for the whole left-most label only).
pub fn matching_name<'n>(dns_names: &'n [String], host: &str) -> Option<(&'n str, bool)> {
    let host = host.trim_end_matches('.');
    if let Some(exact) = dns_names.iter().find(|n| n.eq_ignore_ascii_case(host)) {
        return Some((exact, false));
    }
    let (_, parent) = host.split_once('.')?;
    dns_names
        .iter()
        .find(|n| {
            n.strip_prefix("*.")
                .is_some_and(|rest| rest.eq_ignore_ascii_case(parent))
        })
        .map(|n| (n.as_str(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_certificate_counts_as_a_certificate_refusal() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        let reason = certificate_refusal(&refused).expect("a certificate refusal");
        assert!(reason.to_ascii_lowercase().contains("expired"), "{reason}");
        let other_tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion),
        );
        assert_eq!(certificate_refusal(&other_tls), None);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(certificate_refusal(&reset), None);
    }

    #[test]
    fn without_trust_anchors_every_certificate_is_refused() {
        let (_, observed) = client_config(None).expect("a client configuration");
        assert!(observed.chain().is_empty());
        let recorder = Recorder {
            verifier: None,
            provider: provider(),
            observed: Arc::clone(&observed),
        };
        let leaf = CertificateDer::from(vec![0x30, 0x00]);
        let name = ServerName::try_from("autodiscover.contoso.com").unwrap();
        let verdict = recorder.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now());
        assert!(matches!(
            verdict,
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ));
        assert_eq!(
            observed.chain(),
            vec![leaf],
            "the chain is recorded all the same"
        );
    }
}
