//! Trust anchors for the outgoing TLS connections of the probe and of the server (the
//! Entra ID signing keys of `[auth.bearer]`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// Trust anchors: the certificates of `ca_file` (replacing the system store, like curl's
/// `--cacert`) or the system store. Returns the store and a description for reports.
pub fn load_roots(ca_file: Option<&Path>) -> Result<(Arc<RootCertStore>, String), String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: cannot read CA certificates ({e})", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: bad PEM ({e})", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "{}: no usable CA certificate in the file",
                    path.display()
                ));
            }
            Ok((Arc::new(roots), format!("{} ({added} CA)", path.display())))
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            Ok((Arc::new(roots), format!("system trust store ({added} CAs)")))
        }
    }
}
