//! Active Directory for real: autodiscoverd against a Samba AD domain controller built by
//! tests/ad/samba-ad-lab.sh. Run with `bash tests/ad/run.sh` (private namespaces; root).
//! In plain `cargo test` runs these tests are listed as ignored: they never pass without
//! having run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// The integration tests' harness (daemon, TLS client, test CA), shared, not copied.
#[allow(dead_code, unused_imports)]
#[path = "../it/harness/mod.rs"]
mod harness;

#[allow(dead_code)]
mod dc;

mod basic;
mod behaviours;
mod example;
mod lockout;

use std::sync::Arc;

use harness::daemon::{config_table, Daemon};
use harness::{set, TestPki, TlsClient};

pub use dc::Dc;
pub use harness::repo_root;

/// The POX endpoint.
pub const PATH: &str = "/autodiscover/autodiscover.xml";

/// Points a configuration table at the lab DC over LDAPS with the service account, Basic
/// only (NTLM needs hashes AD does not give out over LDAP).
pub fn use_dc(table: &mut toml::Table, dc: &Dc) {
    table.remove("directory");
    set(table, &["directory", "backend"], "ldap".into());
    let urls = toml::Value::Array(vec!["ldaps://127.0.0.1:636".into()]);
    for (key, value) in [
        ("urls", urls),
        ("ca_file", dc.ca_pem().display().to_string().into()),
        ("bind_dn", dc::SERVICE_DN.into()),
        (
            "bind_password_file",
            dc.svc_password_file().display().to_string().into(),
        ),
        ("base_dn", dc::BASE_DN.into()),
        ("netbios_domain", "CONTOSO".into()),
        ("cache_ttl_secs", 0.into()),
    ] {
        set(table, &["directory", "ldap", key], value);
    }
    set(table, &["auth", "ntlm"], false.into());
}

/// The daemon against the lab DC, with `tweak` applied last.
pub fn daemon(dc: &Dc, tweak: &dyn Fn(&mut toml::Table)) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Arc::new(TestPki::new());
    let mut table = config_table(dir.path(), &pki);
    use_dc(&mut table, dc);
    tweak(&mut table);
    let path = dir.path().join("autodiscoverd.toml");
    std::fs::write(&path, toml::to_string(&table).expect("toml")).expect("write config");
    Daemon::start_file(dir, pki, path)
}

/// A new TLS connection to the daemon's Autodiscover listener.
pub async fn client(d: &Daemon) -> TlsClient {
    TlsClient::connect(d.addr("https"), "autodiscover.contoso.com", &d.pki).await
}

/// One Outlook POX request with Basic credentials on a new connection: (status, body).
pub async fn ask(d: &Daemon, user: &str, password: &str, address: &str) -> (u16, String) {
    let mut c = client(d).await;
    let a = c
        .post_basic(
            PATH,
            user,
            password,
            &[],
            &harness::outlook_request(address),
        )
        .await;
    (a.status.as_u16(), a.text())
}

/// The text of the first element called `name` in a POX answer.
pub fn element(body: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(body).ok()?;
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .map(|n| n.text().unwrap_or("").to_string())
}
