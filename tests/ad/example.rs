//! config/autodiscoverd.ad-example.toml serves the lab domain unchanged when the lab's
//! directory sits next to it as `ad-lab/`.

use std::process::Command;
use std::sync::Arc;

use crate::harness::daemon::Daemon;
use crate::harness::{repo_root, TestPki};
use crate::{ask, assert_alice_and_bob, Dc};

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn the_ad_example_configuration_serves_the_lab_domain_unchanged() {
    let Some(dc) = Dc::shared().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let shipped = repo_root().join("config/autodiscoverd.ad-example.toml");
    let config = config_dir.join("autodiscoverd.ad-example.toml");
    std::fs::copy(&shipped, &config).unwrap();
    dc.link_as_ad_lab(&config_dir);
    // The certificate the example names (../certs/autodiscover.pem) from the test CA, so
    // that the client can verify it; the example itself is byte for byte the shipped one.
    let pki = Arc::new(TestPki::new());
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    pki.write_leaf(
        &certs,
        "autodiscover",
        &["autodiscover.contoso.com", "localhost"],
    );
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(&shipped).unwrap()
    );

    let check = Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.status.success(), "{said}");
    assert!(said.contains("ldaps://127.0.0.1:636"), "{said}");
    // The domain's policy as read by the service account, and this server's share of it.
    assert!(
        said.contains("threshold 5 (the domain, observation window 30 min)")
            && said.contains("refused after 3 failures"),
        "{said}"
    );

    assert!(
        said.contains("kerberos:") && said.contains("HTTP/autodiscover.contoso.com"),
        "{said}"
    );
    assert!(said.contains("ntlm checked by:    the domain"), "{said}");

    let d = Daemon::start_file(dir, pki, config);
    assert_eq!(d.addr("https").port(), 8443);
    assert_alice_and_bob(&d).await;
    // Kerberos with the lab's keytab and NTLM through the lab's winbind, as shipped.
    crate::kerberos::assert_kerberos_login(&dc, &d).await;
    let (status, body) = crate::ntlm::curl_ntlm(
        &d,
        "CONTOSO\\alice",
        crate::dc::ALICE_PASSWORD,
        "alice@contoso.com",
    );
    assert_eq!(status, 200, "{body}\n{}", d.log_text());
    // A wrong password for an account of its own (alice's domain count is every test's).
    dc.create_user("exa", "Exa-Pass!123");
    let (status, _) = ask(&d, "exa", "wrong", "exa@contoso.com").await;
    assert_eq!(status, 401);
    let secret = std::fs::read_to_string(dc.svc_password_file()).unwrap();
    assert!(!d.log_text().contains(secret.trim()));
}
