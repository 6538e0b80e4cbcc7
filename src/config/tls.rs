//! `[tls]`: the default certificate, the per-SNI certificates and the self-signed first
//! start.

use std::path::{Path, PathBuf};

use super::{file, is_host_name, resolve_against, ConfigError, Organization, Validator};

/// PEM certificate chain and private key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Certificates: a default one and optional per-SNI-host-name ones.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub default: CertPaths,
    pub self_signed_if_missing: bool,
    /// Names for a generated self-signed certificate.
    pub self_signed_names: Vec<String>,
    /// Lower-case host name (or `*.domain`) → certificate.
    pub sni: Vec<(String, CertPaths)>,
}

impl Validator<'_> {
    pub(super) fn tls(
        &self,
        raw: file::TlsSection,
        org: &Organization,
    ) -> Result<TlsConfig, ConfigError> {
        let default = CertPaths {
            cert: resolve_against(self.file, Path::new(&raw.cert)),
            key: resolve_against(self.file, Path::new(&raw.key)),
        };
        let mut sni = Vec::new();
        for (i, entry) in raw.sni.into_iter().enumerate() {
            let host = entry.host.trim().to_ascii_lowercase();
            if !is_host_name(host.trim_start_matches("*.")) {
                return Err(self.invalid(
                    &format!("tls.sni[{i}].host"),
                    format!("`{}` is not a host name", entry.host),
                    "use a DNS name such as \"autodiscover.fabrikam.com\" or \"*.fabrikam.com\"",
                ));
            }
            sni.push((
                host,
                CertPaths {
                    cert: resolve_against(self.file, Path::new(&entry.cert)),
                    key: resolve_against(self.file, Path::new(&entry.key)),
                },
            ));
        }
        let mut names = raw.self_signed_names;
        if names.is_empty() {
            // Thunderbird asks autoconfig.<domain> (docs/clients.md).
            names = org
                .accepted_domains
                .iter()
                .flat_map(|d| [format!("autodiscover.{d}"), format!("autoconfig.{d}")])
                .collect();
            names.push("localhost".into());
        }
        Ok(TlsConfig {
            default,
            self_signed_if_missing: raw.self_signed_if_missing,
            self_signed_names: names,
            sni,
        })
    }
}
