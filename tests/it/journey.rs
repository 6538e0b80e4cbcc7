//! exchangelib 5.6.0's own SOAP autodiscovery walking the whole hybrid lab: `lab init`
//! into a temporary directory, both roles in-process on ephemeral ports, and the Python
//! driver (tests/interop/exchangelib_discovery.py) mapping every lab host and port to
//! those listeners inside its own process, trusting only the lab CA and authenticating
//! with NTLM (exchangelib prefers it when the 401 offers it) as the same identity on
//! both sides.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::SystemTime;

use autodiscoverd::lab::init::{init, paths};
use autodiscoverd::lab::up::{Binding, RunningLab};
use autodiscoverd::lab::LabSpec;
use serde_json::{json, Value};

use crate::harness::python::{python_with, run_script};

/// Runs exchangelib's discovery for each `email:password` against a fresh lab and
/// returns one record per case.
async fn discover_through_the_lab(python: PathBuf, cases: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let spec = LabSpec::default();
    init(dir.path(), &spec, SystemTime::now(), false).unwrap();
    let lab = RunningLab::start(dir.path(), Binding::Ephemeral)
        .await
        .unwrap();
    let ports = crate::lab::lab_ports(&lab);
    // The lab's own name map (what curl.conf and the probe use), as host:port → port.
    let map: serde_json::Map<String, Value> = spec
        .connect_map(ports)
        .into_iter()
        .map(|m| {
            assert_eq!(m.to_host, "127.0.0.1");
            (format!("{}:{}", m.host, m.port), json!(m.to_port))
        })
        .collect();
    let map = Value::Object(map).to_string();
    let ca = dir.path().join(paths::CA_CERT);
    let mut args: Vec<OsString> = vec!["--ca".into(), ca.into(), "--map".into(), map.into()];
    args.extend(cases.iter().map(Into::into));
    let out = run_script(
        python,
        "exchangelib_discovery.py",
        args,
        &dir.path().join("python-tmp"),
    )
    .await;
    lab.stop().await;
    assert!(
        !out.stdout.contains("-lab-pw") && !out.stderr.contains("-lab-pw"),
        "a password leaked into the driver's output"
    );
    eprintln!("exchangelib saw:\n{}", out.stdout);
    out.json_lines()
}

/// The HTTP exchanges exchangelib made, as compact lines:
/// `METHOD URL [auth] -> status [Location]` or `METHOD URL -> ErrorType`.
fn wire(record: &Value) -> Vec<String> {
    record["wire"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let auth = w["auth"]
                .as_str()
                .map(|a| format!(" [{a}]"))
                .unwrap_or_default();
            let outcome = match (w["status"].as_u64(), w["error"].as_str()) {
                (Some(status), _) => match w["location"].as_str() {
                    Some(location) => format!("{status} {location}"),
                    None => status.to_string(),
                },
                (None, Some(error)) => error.to_string(),
                (None, None) => "?".to_string(),
            };
            format!(
                "{} {}{auth} -> {outcome}",
                w["method"].as_str().unwrap(),
                w["url"].as_str().unwrap()
            )
        })
        .collect()
}

/// exchangelib's own "Step N: Trying autodiscover on URL with email ADDRESS" lines.
fn steps(record: &Value) -> Vec<String> {
    record["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.starts_with("Step "))
        .map(str::to_string)
        .collect()
}

fn ssl_error_detail<'a>(record: &'a Value, url: &str) -> &'a str {
    record["wire"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["url"] == url && w["error"] == "SSLError")
        .and_then(|w| w["detail"].as_str())
        .unwrap_or_else(|| panic!("no TLS failure recorded for {url}: {record:#}"))
}

const ONPREM_SVC: &str = "https://autodiscover.contoso.lab/autodiscover/autodiscover.svc";
const ROOT_SVC: &str = "https://contoso.lab/autodiscover/autodiscover.svc";
const TENANT_SVC: &str = "https://autodiscover-s.lab/autodiscover/autodiscover.svc";

/// The NTLM exchange exchangelib 5.6.0 makes with a server that offers NTLM: its own
/// unauthenticated auth-type probe, requests-ntlm's first unauthenticated try, then the
/// two NTLM legs (NEGOTIATE → 401 CHALLENGE, AUTHENTICATE → 200).
fn ntlm_exchange(url: &str) -> Vec<String> {
    vec![
        format!("POST {url} -> 401"),
        format!("POST {url} -> 401"),
        format!("POST {url} [NTLM] -> 401"),
        format!("POST {url} [NTLM] -> 200"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchangelib_completes_the_hybrid_journey_to_exchange_online_for_the_migrated_user() {
    let Some(python) = python_with(&["exchangelib"]) else {
        return;
    };
    let records = discover_through_the_lab(python, &["bob@contoso.lab:bob-lab-pw"]).await;
    let bob = &records[0];
    assert!(bob.get("error").is_none(), "{bob:#}");

    // exchangelib's own account of the journey: steps 1 and 2 for the vanity address,
    // RedirectAddress, then steps 1, 2 and 3 for the routing-domain address.
    let routing = "bob@contoso.mail.onmicrosoft.lab";
    assert_eq!(
        steps(bob),
        [
            format!("Step 1: Trying autodiscover on '{ROOT_SVC}' with email 'bob@contoso.lab'"),
            format!("Step 2: Trying autodiscover on '{ONPREM_SVC}' with email 'bob@contoso.lab'"),
            "Step 5: Checking response".to_string(),
            format!("Step 1: Trying autodiscover on 'https://contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.svc' with email '{routing}'"),
            format!("Step 2: Trying autodiscover on 'https://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.svc' with email '{routing}'"),
            format!("Step 3: Trying autodiscover on 'http://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.svc' with email '{routing}'"),
            "Step 5: Checking response".to_string(),
        ],
        "{bob:#}"
    );
    let log: Vec<&str> = bob["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        log.contains(&"Got a redirect address: bob@contoso.mail.onmicrosoft.lab"),
        "{log:#?}"
    );

    // What went over the wire. The bare routing domain has no address, so its step 1
    // sends nothing at all.
    let mut expected = vec![format!("POST {ROOT_SVC} -> SSLError")];
    expected.extend(ntlm_exchange(ONPREM_SVC));
    expected.extend([
        "POST https://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.svc -> SSLError".to_string(),
        format!("GET http://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.svc -> 302 {TENANT_SVC}"),
        // exchangelib validates the redirect target with an unauthenticated HEAD.
        format!("HEAD {TENANT_SVC} -> 401"),
        // The tenant, like Exchange Online, offers Basic only: one unauthenticated try,
        // then one Basic leg with the UPN.
        format!("POST {TENANT_SVC} -> 401"),
        format!("POST {TENANT_SVC} [Basic] -> 200"),
    ]);
    assert_eq!(wire(bob), expected, "{bob:#}");

    // Both TLS failures are certificate *name* mismatches (the lab CA is trusted): the
    // root domain presents someone else's certificate, and the tenant's autodiscover
    // name reaches the autodiscover-s endpoint, whose certificate does not carry it.
    for url in [
        ROOT_SVC,
        "https://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.svc",
    ] {
        let detail = ssl_error_detail(bob, url);
        assert!(detail.contains("Hostname mismatch"), "{url}: {detail}");
    }

    // The responses exchangelib checked: on-premises RedirectAddress, then the tenant's
    // settings for the routing-domain address.
    assert_eq!(
        bob["responses"],
        json!([
            {"email": "bob@contoso.lab", "error_code": null,
             "redirect_address": routing, "ews_url": null},
            {"email": routing, "error_code": null, "redirect_address": null,
             "ews_url": "https://outlook.lab/EWS/Exchange.asmx"},
        ]),
        "{bob:#}"
    );
    let attempts: Vec<(&str, bool)> = bob["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["url"].as_str().unwrap(), a["valid"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        attempts,
        [
            (ROOT_SVC, false),
            (ONPREM_SVC, true),
            (
                "https://contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.svc",
                false
            ),
            (
                "https://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.svc",
                false
            ),
            (TENANT_SVC, true),
        ]
    );

    // Where exchangelib ends: the tenant's (Exchange-Online-shaped) EWS URL, the newest
    // schema it knows, the vanity address as the account's primary address; NTLM
    // on-premises, Basic at the tenant.
    let result = &bob["result"];
    assert_eq!(result["ews_url"], "https://outlook.lab/EWS/Exchange.asmx");
    assert_eq!(result["api_version"], "Exchange2016");
    assert_eq!(result["primary_smtp_address"], "bob@contoso.lab");
    assert_eq!(bob["auth_types"], json!(["NTLM", "basic"]));
    let settings = &bob["user_settings"];
    assert_eq!(settings["user_ms_online"], "True");
    assert_eq!(settings["cas_version"], "15.20.8048.000");
    assert_eq!(settings["external_mailbox_server"], "outlook.lab");
    assert!(settings["user_dn"]
        .as_str()
        .unwrap()
        .starts_with("/o=ExchangeLabs/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchangelib_reaches_the_on_premises_ews_url_for_the_on_premises_user_through_the_lab() {
    let Some(python) = python_with(&["exchangelib"]) else {
        return;
    };
    let records = discover_through_the_lab(python, &["alice@contoso.lab:alice-lab-pw"]).await;
    let alice = &records[0];
    assert!(alice.get("error").is_none(), "{alice:#}");
    assert_eq!(
        steps(alice),
        [
            format!("Step 1: Trying autodiscover on '{ROOT_SVC}' with email 'alice@contoso.lab'"),
            format!("Step 2: Trying autodiscover on '{ONPREM_SVC}' with email 'alice@contoso.lab'"),
            "Step 5: Checking response".to_string(),
        ],
        "{alice:#}"
    );
    let mut expected = vec![format!("POST {ROOT_SVC} -> SSLError")];
    expected.extend(ntlm_exchange(ONPREM_SVC));
    assert_eq!(wire(alice), expected, "{alice:#}");
    assert!(ssl_error_detail(alice, ROOT_SVC).contains("Hostname mismatch"));
    // Nothing of the tenant was touched (the wire list above is exact).
    let result = &alice["result"];
    assert_eq!(
        result["ews_url"],
        "https://mail.contoso.lab/EWS/Exchange.asmx"
    );
    assert_eq!(result["api_version"], "Exchange2016");
    assert_eq!(result["primary_smtp_address"], "alice@contoso.lab");
    assert_eq!(alice["auth_types"], json!(["NTLM"]));
    assert_eq!(alice["user_settings"]["user_ms_online"], "False");
}
