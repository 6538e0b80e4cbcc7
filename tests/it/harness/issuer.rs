//! The lab's Entra-like token issuer ([`autodiscoverd::lab::issuer`]) served over TLS by
//! the test, with a certificate from the test CA for `localhost` and `login.lab.test`.

use std::sync::{Arc, LazyLock};

use autodiscoverd::lab::issuer::{IssuerService, LabAccount, LabIssuer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TestPki;

/// The tenant of every HMA test.
pub const TENANT: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
/// The `kid` of the issuer's key.
pub const KID: &str = "lab-key-1";

/// alice's and bob's `objectSid` in tests/fixtures/directory/lab.toml.
pub const ALICE_SID: &str = "S-1-5-21-3623811015-3361044348-30300820-1103";
pub const EVE_SID: &str = "S-1-5-21-3623811015-3361044348-30300820-1107";

/// One RSA key per test binary (generation takes a moment).
static KEY_PEM: LazyLock<String> = LazyLock::new(|| {
    LabIssuer::generate(TENANT, KID)
        .expect("issuer key")
        .private_key_pem()
        .to_string()
});

/// The test binary's issuer key (same key for every test).
pub fn lab_issuer() -> LabIssuer {
    LabIssuer::from_pem(TENANT, KID, &KEY_PEM).expect("issuer from pem")
}

/// A running issuer; dropping it stops serving.
pub struct RunningIssuer {
    /// `https://localhost:<port>`
    pub base: String,
    pub port: u16,
    pub service: Arc<IssuerService>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The accounts of the lab directory the issuer knows (alice synced with her SID, carol
/// cloud-side without one, eve disabled on-premises).
pub fn accounts() -> Vec<LabAccount> {
    vec![
        LabAccount {
            upn: "alice@contoso.com".into(),
            password: "alice-cloud-pw".into(),
            onprem_sid: Some(ALICE_SID.into()),
        },
        LabAccount {
            upn: "carol@contoso.com".into(),
            password: "carol-cloud-pw".into(),
            onprem_sid: None,
        },
        LabAccount {
            upn: "eve@contoso.com".into(),
            password: "eve-cloud-pw".into(),
            onprem_sid: Some(EVE_SID.into()),
        },
    ]
}

/// Serves the issuer for `resources` (the origins registered as SPNs).
pub async fn start_issuer(pki: &TestPki, resources: &[&str]) -> RunningIssuer {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pki.write_leaf(dir.path(), "issuer", &["localhost", "login.lab.test"]);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("cert")
        .collect::<Result<_, _>>()
        .expect("pem");
    let key = PrivateKeyDer::from_pem_file(&key).expect("key");
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("issuer tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind issuer");
    let port = listener.local_addr().expect("addr").port();
    let base = format!("https://localhost:{port}");
    let service = Arc::new(IssuerService::new(
        lab_issuer(),
        &base,
        accounts(),
        resources.iter().map(|r| r.to_string()).collect(),
    ));
    let task = tokio::spawn(autodiscoverd::lab::issuer::serve(
        listener,
        Arc::new(tls),
        Arc::clone(&service),
    ));
    RunningIssuer {
        base,
        port,
        service,
        task,
    }
}
