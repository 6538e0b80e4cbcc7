//! The TLS handshake and the certificate checks (name, chain, dates, client certificate)
//! that decide whether credentials may be sent.

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::plan::{self, Validity};
use super::report::{Attempt, Status, StepKind};
use super::{tls, Prober};

/// Certificates closer to their end than this get a warning.
const EXPIRY_WARNING_DAYS: i64 = 30;

impl Prober<'_> {
    /// TLS handshake plus the certificate steps. `None` when the server cannot be trusted.
    pub(super) async fn tls(
        &self,
        a: &mut Attempt,
        host: &str,
        tcp: TcpStream,
    ) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
        let roots = self.roots.as_ref().ok().map(|(roots, _)| roots);
        let (config, observed) = match tls::client_config(roots) {
            Ok(c) => c,
            Err(e) => {
                a.step(
                    StepKind::TlsHandshake,
                    Status::Fail,
                    format!("TLS setup failed: {e}"),
                );
                return None;
            }
        };
        let Ok(name) = ServerName::try_from(host.to_string()) else {
            a.step(
                StepKind::TlsHandshake,
                Status::Fail,
                format!("`{host}` is not a valid TLS server name"),
            );
            return None;
        };
        let connector = TlsConnector::from(config);
        // `None` when rustls refused the certificate: the checks below then say why.
        let mut refusal = None;
        let stream =
            match tokio::time::timeout(self.options.timeout, connector.connect(name, tcp)).await {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(e)) => match tls::certificate_refusal(&e) {
                    Some(why) => {
                        a.step(
                            StepKind::TlsHandshake,
                            Status::Info,
                            format!(
                                "TLS handshake with SNI {host} stopped at the server's certificate"
                            ),
                        )
                        .detail(format!("rustls: {why}"));
                        refusal = Some(why);
                        None
                    }
                    None => {
                        a.step(
                            StepKind::TlsHandshake,
                            Status::Fail,
                            format!("TLS handshake with {host} failed: {e}"),
                        )
                        .detail("nothing that speaks TLS answered there (or it refused us)");
                        return None;
                    }
                },
                Err(_) => {
                    a.step(
                        StepKind::TlsHandshake,
                        Status::Fail,
                        format!("TLS handshake with {host} timed out"),
                    );
                    return None;
                }
            };
        if let Some(stream) = &stream {
            let conn = stream.get_ref().1;
            let version = conn
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("TLS");
            let suite = conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("?");
            a.step(
                StepKind::TlsHandshake,
                Status::Pass,
                format!("TLS handshake with SNI {host}: {version}, {suite}"),
            );
        }
        let chain = observed.chain();
        let described = match tls::describe(&chain) {
            Ok(d) => d,
            Err(e) => {
                a.step(StepKind::Certificate, Status::Fail, e);
                return None;
            }
        };
        {
            let info = &described.info;
            let s = a.step(
                StepKind::Certificate,
                Status::Info,
                format!("certificate for {}", info.dns_names.join(", ")),
            );
            s.detail(format!("subject: {}", info.subject));
            s.detail(format!(
                "SAN:     {}",
                info.dns_names
                    .iter()
                    .chain(info.ip_addresses.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            s.detail(format!("issuer:  {}", info.issuer));
            s.detail(format!(
                "valid:   {} to {}",
                info.not_before, info.not_after
            ));
            for line in tls::chain_lines(&chain) {
                s.detail(line);
            }
            s.certificate = Some(info.clone());
        }
        let mut trusted = true;
        match tls::check_name(&chain, host) {
            Ok(()) => {
                let how = match tls::matching_name(&described.info.dns_names, host) {
                    Some((name, true)) => format!(" (wildcard {name})"),
                    Some((name, false)) => format!(" (SAN {name})"),
                    None => String::new(),
                };
                a.step(
                    StepKind::CertificateName,
                    Status::Pass,
                    format!("certificate name matches {host}{how}"),
                );
            }
            Err(e) => {
                trusted = false;
                a.step(
                    StepKind::CertificateName,
                    Status::Fail,
                    format!("certificate name mismatch: {e}"),
                )
                .detail(format!(
                    "no SAN entry or wildcard covers {host}; the certificate names {}",
                    described.info.dns_names.join(", ")
                ));
            }
        }
        match &self.roots {
            Err(e) => {
                trusted = false;
                a.step(
                    StepKind::CertificateChain,
                    Status::Fail,
                    format!("chain not checked: {e}"),
                );
            }
            Ok((roots, label)) => {
                let at = plan::chain_check_time(
                    self.now_unix,
                    described.not_before,
                    described.not_after,
                );
                match tls::check_chain(&chain, roots, host, &described.info.dns_names, at) {
                    Ok(()) => {
                        a.step(
                            StepKind::CertificateChain,
                            Status::Pass,
                            format!("chain trusted (anchors: {label})"),
                        );
                    }
                    Err(e) => {
                        trusted = false;
                        a.step(
                            StepKind::CertificateChain,
                            Status::Fail,
                            format!("chain not trusted: {e}"),
                        )
                        .detail(format!("anchors: {label}"));
                    }
                }
            }
        }
        match plan::validity(self.now_unix, described.not_before, described.not_after) {
            Validity::Valid { days_left } if days_left < EXPIRY_WARNING_DAYS => {
                a.step(
                    StepKind::CertificateDates,
                    Status::Warn,
                    format!(
                        "certificate expires in {days_left} days ({}): renew it soon",
                        described.info.not_after
                    ),
                );
            }
            Validity::Valid { days_left } => {
                a.step(
                    StepKind::CertificateDates,
                    Status::Pass,
                    format!("certificate dates valid ({days_left} days left)"),
                );
            }
            Validity::Expired { days_ago } => {
                trusted = false;
                a.step(
                    StepKind::CertificateDates,
                    Status::Fail,
                    format!(
                        "certificate expired {days_ago} days ago ({})",
                        described.info.not_after
                    ),
                );
            }
            Validity::NotYetValid { days_until } => {
                trusted = false;
                a.step(
                    StepKind::CertificateDates,
                    Status::Fail,
                    format!(
                        "certificate not valid yet (for {days_until} more days, from {})",
                        described.info.not_before
                    ),
                );
            }
        }
        if observed.client_cert_requested() {
            a.step(
                StepKind::ClientCertificate,
                Status::Info,
                "the server requested a client certificate; the probe sent none",
            );
        } else {
            a.step(
                StepKind::ClientCertificate,
                Status::Info,
                "no client certificate requested",
            );
        }
        if trusted && stream.is_none() {
            // rustls refused what the checks above accept (a revoked certificate, an
            // algorithm it does not support): its word stands.
            trusted = false;
            a.step(
                StepKind::CertificateChain,
                Status::Fail,
                "rustls refused the certificate although name, chain and dates pass",
            )
            .detail(format!("rustls: {}", refusal.unwrap_or_default()));
        }
        if !trusted {
            a.fail("certificate not trusted; credentials not sent");
            return None;
        }
        stream
    }
}
