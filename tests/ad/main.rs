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
mod bench;
mod example;
mod hma;
mod kerberos;
mod lockout;
mod ntlm;
mod outage;
mod pool;
mod scp;

use harness::daemon::Daemon;
use harness::{set, Answer, TlsClient};

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
    Daemon::start(&|t| {
        use_dc(t, dc);
        tweak(t);
    })
}

/// A new TLS connection to the daemon's Autodiscover listener.
pub async fn client(d: &Daemon) -> TlsClient {
    TlsClient::connect(d.addr("https"), "autodiscover.contoso.com", &d.pki).await
}

/// One Outlook POX request for `address` with Basic credentials and `headers`, on a new
/// connection.
pub async fn post(
    d: &Daemon,
    user: &str,
    password: &str,
    address: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let body = harness::outlook_request(address);
    client(d)
        .await
        .post_basic(PATH, user, password, headers, &body)
        .await
}

/// [`post`] without extra headers: (status, body).
pub async fn ask(d: &Daemon, user: &str, password: &str, address: &str) -> (u16, String) {
    let a = post(d, user, password, address, &[]).await;
    (a.status.as_u16(), a.text())
}

/// The lab's two mailboxes through `d`: alice (UPN) gets her settings, `CONTOSO\bob` the
/// redirect to his Exchange Online address.
pub async fn assert_alice_and_bob(d: &Daemon) {
    let (status, body) = ask(
        d,
        "alice@contoso.com",
        dc::ALICE_PASSWORD,
        "alice@contoso.com",
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", d.log_text());
    assert_eq!(
        element(&body, "Action").as_deref(),
        Some("settings"),
        "{body}"
    );
    assert_eq!(
        element(&body, "AutoDiscoverSMTPAddress").as_deref(),
        Some("alice@contoso.com")
    );
    let (status, body) = ask(d, "CONTOSO\\bob", dc::BOB_PASSWORD, "bob@contoso.com").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        element(&body, "Action").as_deref(),
        Some("redirectAddr"),
        "{body}"
    );
    assert_eq!(
        element(&body, "RedirectAddr").as_deref(),
        Some("bob@contoso.mail.onmicrosoft.com")
    );
}

/// The text of the first element called `name` in a POX answer.
pub fn element(body: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(body).ok()?;
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .map(|n| n.text().unwrap_or("").to_string())
}

/// The `WWW-Authenticate` offers of a 401 to an unauthenticated POX request.
pub async fn offers(d: &Daemon) -> Vec<String> {
    let body = harness::outlook_request("alice@contoso.com");
    let a = client(d)
        .await
        .send("POST", PATH, &[], body.as_bytes())
        .await;
    assert_eq!(a.status, 401, "{}", a.text());
    a.header_all("www-authenticate")
}

/// Runs tests/interop/ntlm_client.py in `mode` against `d` as autodiscover.contoso.com
/// (its `args` after the connection's, `env` added) and returns the JSON it printed.
pub fn interop_client(
    python: &std::path::Path,
    d: &Daemon,
    mode: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = d.pki.write_ca(dir.path());
    let out = std::process::Command::new(python)
        .arg(repo_root().join("tests/interop/ntlm_client.py"))
        .args([
            "--mode",
            mode,
            "--host",
            "autodiscover.contoso.com",
            "--port",
        ])
        .arg(d.addr("https").port().to_string())
        .arg("--cafile")
        .arg(&ca)
        .arg("--body")
        .arg(harness::outlook_request("alice@contoso.com"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run the interop client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "{mode}: {stdout}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            d.log_text()
        )
    })
}

/// Prints the server-side latency of each authenticated answer so far (access log), as a
/// measurement in `--nocapture` runs.
pub fn print_latencies(d: &Daemon, what: &str) {
    let latencies: Vec<u64> = d
        .access_events()
        .iter()
        .filter(|e| e["status"] == 200)
        .filter_map(|e| e["latency_us"].as_u64())
        .collect();
    eprintln!("measured: {what}: server latency per authenticated request (us): {latencies:?}");
}
