//! TLS: PEM loading (rustls-pki-types `PemObject`; rustls-pemfile is archived), the SNI
//! certificate resolver, and the self-signed first-start certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertPaths, TlsConfig};
use crate::server::endpoints::ntlm::ServedCertificates;

/// Why the TLS setup failed; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: {problem}. Fix: {fix}")]
    File {
        file: PathBuf,
        problem: String,
        fix: &'static str,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(file: &Path, problem: impl Into<String>, fix: &'static str) -> TlsError {
    TlsError::File {
        file: file.to_path_buf(),
        problem: problem.into(),
        fix,
    }
}

/// Loads a PEM certificate chain and private key into a signing key.
pub fn load_certified_key(paths: &CertPaths) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.cert)
        .map_err(|e| {
            file_error(
                &paths.cert,
                format!("cannot read certificates ({e})"),
                "point tls.cert at a readable PEM certificate chain",
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            file_error(
                &paths.cert,
                format!("bad PEM ({e})"),
                "the file must hold PEM CERTIFICATE blocks, leaf first",
            )
        })?;
    if chain.is_empty() {
        return Err(file_error(
            &paths.cert,
            "no CERTIFICATE block",
            "the file must hold PEM CERTIFICATE blocks, leaf first",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|e| {
        file_error(
            &paths.key,
            format!("cannot read the private key ({e})"),
            "point tls.key at a PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;
    let signer = any_supported_type(&key).map_err(|e| {
        file_error(
            &paths.key,
            format!("unsupported private key ({e})"),
            "use an RSA, ECDSA or Ed25519 key",
        )
    })?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        file_error(
            &paths.key,
            format!("the key does not belong to {} ({e})", paths.cert.display()),
            "pair each certificate with its own key",
        )
    })?;
    Ok(Arc::new(certified))
}

/// Picks a certificate by SNI host name: exact name, then `*.parent`, then the default.
#[derive(Debug)]
pub struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// Builds the resolver from configuration, loading every certificate.
    pub fn from_config(tls: &TlsConfig) -> Result<SniResolver, TlsError> {
        let default = load_certified_key(&tls.default)?;
        let mut by_name = HashMap::new();
        for (host, paths) in &tls.sni {
            by_name.insert(host.clone(), load_certified_key(paths)?);
        }
        Ok(SniResolver { by_name, default })
    }

    /// The certificate served for `server_name` (also used for NTLM channel bindings).
    pub fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name.map(|n| n.to_ascii_lowercase()) else {
            return Arc::clone(&self.default);
        };
        if let Some(key) = self.by_name.get(&name) {
            return Arc::clone(key);
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(key) = self.by_name.get(&format!("*.{parent}")) {
                return Arc::clone(key);
            }
        }
        Arc::clone(&self.default)
    }
}

impl ServedCertificates for SniResolver {
    fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        SniResolver::pick(self, server_name)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// A rustls server configuration: ring provider, HTTP/1.1 and HTTP/1.0 only (NTLM is bound
/// to the connection, so no HTTP/2 multiplexing). A client that offers ALPN without either
/// gets rustls's `no_application_protocol` alert (RFC 7301 §3.2).
pub fn server_config(resolver: Arc<SniResolver>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(Arc::new(config))
}

/// Creates a self-signed certificate at `paths` when `tls.self_signed_if_missing` is on and
/// the certificate file does not exist. Returns true when it created one.
pub fn ensure_self_signed(tls: &TlsConfig) -> Result<bool, TlsError> {
    let paths = &tls.default;
    if !tls.self_signed_if_missing || paths.cert.exists() {
        return Ok(false);
    }
    let generated =
        rcgen::generate_simple_self_signed(tls.self_signed_names.clone()).map_err(|e| {
            file_error(
                &paths.cert,
                format!("cannot generate a self-signed certificate ({e})"),
                "set tls.self_signed_names to valid DNS names",
            )
        })?;
    for file in [&paths.cert, &paths.key] {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                file_error(
                    file,
                    format!("cannot create its directory ({e})"),
                    "create the directory or fix its permissions",
                )
            })?;
        }
    }
    write_private(&paths.key, generated.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&paths.cert, generated.cert.pem()).map_err(|e| {
        file_error(
            &paths.cert,
            format!("cannot write ({e})"),
            "make the directory writable for the service user",
        )
    })?;
    Ok(true)
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        file_error(
            path,
            format!("cannot write ({e})"),
            "make the directory writable for the service user",
        )
    })?;
    file.write_all(contents).map_err(|e| {
        file_error(
            path,
            format!("cannot write ({e})"),
            "check free space and permissions",
        )
    })
}
