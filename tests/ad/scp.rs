//! Domain-joined Outlook's first step (MS-OXDISCO §3.1.5.1), for real: the test adds a
//! serviceConnectionPoint with the Autodiscover URL keyword under the configuration
//! partition of the Samba AD DC, and `autodiscoverd probe --scp ldaps://…` finds it, binds
//! as the user, and walks the URL it publishes to the daemon, which answers from the same
//! AD.

use std::process::Command;

use serde_json::Value;

use crate::dc::ALICE_PASSWORD;
use crate::{daemon, Dc};

const SCP_DN: &str = "CN=EX01-Autodiscover,CN=Services,CN=Configuration,DC=contoso,DC=com";

fn probe(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
        .arg("probe")
        .args(["--json", "--no-dns", "--timeout", "10"])
        .args(args)
        .output()
        .expect("run the probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(ALICE_PASSWORD), "the password leaked");
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn probe_scp_finds_the_autodiscover_url_published_in_active_directory() {
    let Some(dc) = Dc::exclusive().await else {
        return;
    };
    let d = daemon(&dc, &|_| {});
    let port = d.addr("https").port();
    let url = format!("https://autodiscover.contoso.com:{port}/autodiscover/autodiscover.xml");
    dc.modify(&format!(
        "dn: {SCP_DN}\nchangetype: add\nobjectClass: serviceConnectionPoint\n\
         keywords: 77378F46-2C66-4aa9-A6A6-3E7A48B19596\nkeywords: Site=Default-First-Site-Name\n\
         serviceBindingInformation: {url}\n"
    ));
    // The DC's CA (LDAPS) and the daemon's test CA (HTTPS).
    let ca = d.dir.path().join("trusted.pem");
    let dc_ca = std::fs::read_to_string(dc.ca_pem()).unwrap();
    std::fs::write(&ca, format!("{dc_ca}\n{}", d.pki.ca_pem())).unwrap();
    let resolve = format!("autodiscover.contoso.com:{port}:127.0.0.1");
    let base = [
        "--scp",
        "ldaps://127.0.0.1:636",
        "--ca-file",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "--user",
        "alice@contoso.com",
    ];

    let mut args = base.to_vec();
    args.extend(["--password", ALICE_PASSWORD, "alice@contoso.com"]);
    let (code, report) = probe(&args);
    let attempts = report["attempts"].as_array().unwrap();
    let lookup = &attempts[0];
    assert_eq!(lookup["method"], "scp", "{report:#}");
    let found = lookup["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(found["status"], "pass", "{lookup:#}");
    assert_eq!(found["title"], "1 Autodiscover SCP URL(s)");
    assert_eq!(found["details"][0], format!("{url} ({SCP_DN})"));
    assert_eq!(
        found["details"][1],
        "  serves AD sites: Default-First-Site-Name"
    );
    assert_eq!(code, 0, "{report:#}");
    // The SCP URL is the first one tried, and it answers with alice's settings.
    assert_eq!(attempts[1]["method"], "scp");
    assert_eq!(report["obtained"]["url"], url.as_str());
    assert_eq!(
        report["obtained"]["settings"]["smtp_address"],
        "alice@contoso.com"
    );
    assert_eq!(attempts.len(), 2, "no DNS candidate was needed: {report:#}");

    // A wrong password: the DC refuses the bind, and the verdict names that step.
    let mut args = base.to_vec();
    args.extend(["--password", "not-the-password", "alice@contoso.com"]);
    let (code, report) = probe(&args);
    assert_eq!(code, 1);
    assert_eq!(report["verdict"]["failing_kind"], "scp", "{report:#}");
    assert!(
        report["verdict"]["summary"]
            .as_str()
            .unwrap()
            .contains("bind as alice@contoso.com refused: rc 49"),
        "{report:#}"
    );
    dc.modify(&format!("dn: {SCP_DN}\nchangetype: delete\n"));
}
