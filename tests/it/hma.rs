//! Hybrid Modern Authentication (`[auth.bearer]`): the Bearer challenge on every 401, Entra
//! ID tokens from the lab issuer (served here over TLS: discovery, JWKS, token endpoint)
//! checked by the real server, key refreshes, the throttle and the metrics; MSAL Python and
//! exchangelib as the clients.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::harness::daemon::{scrape, Daemon};
use crate::harness::issuer::{lab_issuer, start_issuer, RunningIssuer, ALICE_SID, EVE_SID, TENANT};
use crate::harness::python::{python_with, run_script};
use crate::harness::{outlook_request, set, TestPki, TestServer, TlsClient};

const ORIGIN: &str = "https://autodiscover.contoso.com";
const POX: &str = "/autodiscover/autodiscover.xml";
const SOAP: &str = "/autodiscover/autodiscover.svc";

fn exchange_challenge(authorization_uri: &str) -> String {
    format!(
        "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\", trusted_issuers=\"00000001-0000-0000-c000-000000000000@{TENANT}\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\", authorization_uri=\"{authorization_uri}\""
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `[auth.bearer]` pointing at `issuer`, trusting `ca_file`.
fn bearer_table(t: &mut toml::Table, issuer_base: &str, ca_file: &std::path::Path) {
    set(t, &["auth", "bearer", "tenant_id"], TENANT.into());
    set(t, &["auth", "bearer", "authority"], issuer_base.into());
    set(
        t,
        &["auth", "bearer", "ca_file"],
        ca_file.display().to_string().into(),
    );
}

/// A server with `[auth.bearer]` and NTLM, Negotiate and Basic on, and the issuer it trusts
/// (both certified by one test CA).
async fn server(
    extra: &dyn Fn(&mut toml::Table),
) -> (TestServer, RunningIssuer, tempfile::TempDir) {
    let pki = Arc::new(TestPki::new());
    let issuer = start_issuer(&pki, &[ORIGIN]).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(ca_dir.path());
    let base = issuer.base.clone();
    let tweak = move |t: &mut toml::Table| {
        bearer_table(t, &base, &ca);
        set(t, &["auth", "negotiate"], true.into());
        set(
            t,
            &["organization", "emulate_service_endpoints"],
            true.into(),
        );
        extra(t);
    };
    let server = TestServer::start_named_by(
        pki,
        &["autodiscover.contoso.com", "mail.contoso.com", "localhost"],
        &tweak,
    )
    .await;
    (server, issuer, ca_dir)
}

fn no_throttle(t: &mut toml::Table) {
    set(t, &["throttle", "enabled"], false.into());
}

fn token_for(upn: &str, sid: Option<&str>) -> String {
    let issuer = lab_issuer();
    issuer
        .mint(&issuer.user_claims(ORIGIN, upn, sid, now() - 10, 3600))
        .unwrap()
}

fn mint(claims: &Value) -> String {
    lab_issuer().mint(claims).unwrap()
}

fn alice_claims() -> Value {
    lab_issuer().user_claims(
        ORIGIN,
        "alice@contoso.com",
        Some(ALICE_SID),
        now() - 10,
        3600,
    )
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims.as_object_mut().unwrap().insert(name.into(), value);
    claims
}

async fn pox_with(
    c: &mut TlsClient,
    authorization: Option<&str>,
    address: &str,
) -> crate::harness::Answer {
    let mut headers = vec![("Content-Type", "text/xml"), ("X-AnchorMailbox", address)];
    if let Some(a) = authorization {
        headers.push(("Authorization", a));
    }
    c.send("POST", POX, &headers, outlook_request(address).as_bytes())
        .await
}

/// A POX request with this `Authorization` is answered 200 (the diagnostics otherwise).
async fn assert_signed_in(c: &mut TlsClient, authorization: &str, address: &str) {
    let a = pox_with(c, Some(authorization), address).await;
    assert_eq!(a.status, 200, "{:?}", a.header("x-ms-diagnostics"));
}

#[tokio::test]
async fn every_401_offers_exchanges_bearer_challenge_first() {
    let (s, _issuer, _ca) = server(&|_| {}).await;
    let expected = vec![
        exchange_challenge("https://login.windows.net/common/oauth2/authorize"),
        "Negotiate".to_string(),
        "NTLM".to_string(),
        "Basic realm=\"autodiscover.contoso.com\"".to_string(),
    ];
    let mut c = s.client().await;
    let a = pox_with(&mut c, None, "alice@contoso.com").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header_all("www-authenticate"), expected);
    let a = c
        .send("POST", SOAP, &[("Content-Type", "text/xml")], b"<x/>")
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header_all("www-authenticate"), expected);
    // The emulated service front door (EWS) of labs and test tenants.
    let mut m = TlsClient::connect(s.https, "mail.contoso.com", &s.pki).await;
    let a = m.send("POST", "/EWS/Exchange.asmx", &[], b"").await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header_all("www-authenticate").first(),
        Some(&exchange_challenge(
            "https://login.windows.net/common/oauth2/authorize"
        ))
    );
    // Outlook for iOS and Android asks with an empty Bearer: the challenge, never a 400.
    for probe in ["Bearer", "Bearer ", "bearer"] {
        let a = pox_with(&mut c, Some(probe), "alice@contoso.com").await;
        assert_eq!(a.status, 401, "{probe:?}");
        assert_eq!(a.header_all("www-authenticate"), expected, "{probe:?}");
        assert!(a.header("x-ms-diagnostics").is_none());
    }
    // A refused token: the same set, Bearer with error="invalid_token", and why.
    let a = pox_with(&mut c, Some("Bearer not.a.jwt"), "alice@contoso.com").await;
    assert_eq!(a.status, 401);
    let lines = a.header_all("www-authenticate");
    assert_eq!(
        lines.first().unwrap(),
        &format!(
            "{}, error=\"invalid_token\"",
            exchange_challenge("https://login.windows.net/common/oauth2/authorize")
        )
    );
    assert_eq!(lines.get(1..).unwrap(), expected.get(1..).unwrap());
    let diagnostics = a.header("x-ms-diagnostics").unwrap();
    assert!(
        diagnostics.starts_with("2000000;reason=\""),
        "{diagnostics}"
    );
}

#[tokio::test]
async fn tokens_sign_in_by_onprem_sid_then_upn_and_every_refusal_says_why() {
    // Many refusals for one user from one address: the throttle has its own test.
    let (s, issuer, _ca) = server(&no_throttle).await;
    let mut c = s.client().await;
    // alice: by her objectSid. The answer is her own settings, as with a password.
    let alice = format!("Bearer {}", token_for("alice@contoso.com", Some(ALICE_SID)));
    let a = pox_with(&mut c, Some(&alice), "alice@contoso.com").await;
    assert_eq!(a.status, 200, "{:?}", a.header("x-ms-diagnostics"));
    assert!(a
        .text()
        .contains("<AutoDiscoverSMTPAddress>alice@contoso.com</AutoDiscoverSMTPAddress>"));
    // Later requests reuse the keys: one download for the whole test so far.
    let a = pox_with(&mut c, Some(&alice), "alice@contoso.com").await;
    assert_eq!(a.status, 200);
    assert_eq!(issuer.service.key_fetches(), 1);
    // The SID names alice even when the token's upn is another (renamed) one.
    let renamed = format!(
        "Bearer {}",
        token_for("alice.old@contoso.com", Some(ALICE_SID))
    );
    assert_signed_in(&mut c, &renamed, "alice@contoso.com").await;
    // carol: no onprem_sid (or one no account has): her upn.
    let carol = format!("Bearer {}", token_for("carol@contoso.com", None));
    assert_signed_in(&mut c, &carol, "carol@contoso.com").await;
    let unknown_sid = format!(
        "Bearer {}",
        token_for("carol@contoso.com", Some("S-1-5-21-1-2-3-99999"))
    );
    assert_signed_in(&mut c, &unknown_sid, "carol@contoso.com").await;
    // SOAP autodiscover.svc takes the same tokens.
    let body = crate::soap::get_user_settings(&["alice@contoso.com"], &["ExternalEwsUrl"]);
    let a = c
        .send(
            "POST",
            SOAP,
            &[("Content-Type", "text/xml"), ("Authorization", &alice)],
            body.as_bytes(),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a
        .text()
        .contains("https://mail.contoso.com/EWS/Exchange.asmx"));

    let v2 = with(
        alice_claims(),
        "iss",
        json!(format!("https://login.microsoftonline.com/{TENANT}/v2.0")),
    );
    assert_signed_in(
        &mut c,
        &format!("Bearer {}", mint(&v2)),
        "alice@contoso.com",
    )
    .await;
    let refusals: Vec<(Value, &str)> = vec![
        (
            with(alice_claims(), "aud", json!("https://mail.contoso.com")),
            "2000003;",
        ),
        (
            with(
                alice_claims(),
                "aud",
                json!("00000002-0000-0ff1-ce00-000000000000"),
            ),
            "2000003;",
        ),
        (
            with(
                alice_claims(),
                "iss",
                json!("https://sts.windows.net/11111111-2222-4333-8444-555555555555/"),
            ),
            "2000002;",
        ),
        (with(alice_claims(), "exp", json!(now() - 600)), "2000008;"),
        (with(alice_claims(), "nbf", json!(now() + 600)), "2000009;"),
        (with(alice_claims(), "idtyp", json!("app")), "2000006;"),
        // eve is disabled on-premises: refused like a wrong password.
        (
            lab_issuer().user_claims(ORIGIN, "eve@contoso.com", Some(EVE_SID), now() - 10, 3600),
            "2000007;",
        ),
        (
            lab_issuer().user_claims(ORIGIN, "nobody@contoso.com", None, now() - 10, 3600),
            "2000007;",
        ),
    ];
    for (claims, code) in refusals {
        let a = pox_with(
            &mut c,
            Some(&format!("Bearer {}", mint(&claims))),
            "alice@contoso.com",
        )
        .await;
        assert_eq!(a.status, 401, "{claims}");
        let diagnostics = a.header("x-ms-diagnostics").unwrap_or_default();
        assert!(diagnostics.starts_with(code), "{claims}: {diagnostics}");
        assert!(a.header_all("www-authenticate")[0].ends_with("error=\"invalid_token\""));
    }
}

#[tokio::test]
async fn the_upn_fallback_can_be_turned_off() {
    let (s, _issuer, _ca) =
        server(&|t| set(t, &["auth", "bearer", "upn_fallback"], false.into())).await;
    let mut c = s.client().await;
    let carol = format!("Bearer {}", token_for("carol@contoso.com", None));
    let a = pox_with(&mut c, Some(&carol), "carol@contoso.com").await;
    assert_eq!(a.status, 401);
    assert!(a
        .header("x-ms-diagnostics")
        .unwrap()
        .starts_with("2000007;"));
    let alice = format!("Bearer {}", token_for("alice@contoso.com", Some(ALICE_SID)));
    assert_signed_in(&mut c, &alice, "alice@contoso.com").await;
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_keys_once_however_many_tokens_name_it() {
    let (s, issuer, _ca) = server(&no_throttle).await;
    let mut c = s.client().await;
    let alice = format!("Bearer {}", token_for("alice@contoso.com", Some(ALICE_SID)));
    assert_signed_in(&mut c, &alice, "alice@contoso.com").await;
    assert_eq!(issuer.service.key_fetches(), 1);
    // Tokens under a key the tenant does not publish (a forger's, or one rolled out later).
    let forger = autodiscoverd::lab::issuer::LabIssuer::generate(TENANT, "rolled-key").unwrap();
    let forged = format!(
        "Bearer {}",
        forger
            .mint(&forger.user_claims(ORIGIN, "alice@contoso.com", Some(ALICE_SID), now(), 3600))
            .unwrap()
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let https = s.https;
        let pki = Arc::clone(&s.pki);
        let forged = forged.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = TlsClient::connect(https, "autodiscover.contoso.com", &pki).await;
            let a = pox_with(&mut c, Some(&forged), "alice@contoso.com").await;
            (
                a.status.as_u16(),
                a.header("x-ms-diagnostics").unwrap_or_default(),
            )
        }));
    }
    for t in tasks {
        let (status, diagnostics) = t.await.unwrap();
        assert_eq!(status, 401);
        assert!(diagnostics.contains("rolled-key"), "{diagnostics}");
    }
    // One refresh for the unknown kid, then none for five minutes.
    assert_eq!(issuer.service.key_fetches(), 2);
    let a = pox_with(&mut c, Some(&forged), "alice@contoso.com").await;
    assert_eq!(a.status, 401);
    assert_eq!(issuer.service.key_fetches(), 2);
    // The known key still works.
    assert_signed_in(&mut c, &alice, "alice@contoso.com").await;
}

#[tokio::test]
async fn an_unreachable_issuer_refuses_tokens_with_a_reason_and_other_schemes_still_work() {
    let pki = Arc::new(TestPki::new());
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(ca_dir.path());
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("https://localhost:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let tweak = move |t: &mut toml::Table| bearer_table(t, &base, &ca);
    let s =
        TestServer::start_named_by(pki, &["autodiscover.contoso.com", "localhost"], &tweak).await;
    let mut c = s.client().await;
    let alice = format!("Bearer {}", token_for("alice@contoso.com", Some(ALICE_SID)));
    let a = pox_with(&mut c, Some(&alice), "alice@contoso.com").await;
    assert_eq!(a.status, 401);
    assert!(a
        .header("x-ms-diagnostics")
        .unwrap()
        .starts_with("2000010;"));
    let a = c
        .post_basic(
            POX,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn refused_tokens_are_throttled_per_source_and_counted_by_outcome() {
    let pki = TestPki::new();
    let issuer = start_issuer(&pki, &[ORIGIN]).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(ca_dir.path());
    let base = issuer.base.clone();
    let d = Daemon::start(&move |t| bearer_table(t, &base, &ca));
    let metrics = d.addr("metrics");
    let before = scrape(metrics).await;
    let mut c = TlsClient::connect(d.addr("https"), "autodiscover.contoso.com", &d.pki).await;
    let carol = format!("Bearer {}", token_for("carol@contoso.com", None));
    assert_signed_in(&mut c, &carol, "carol@contoso.com").await;
    // Five expired tokens for alice from this address ...
    let expired = format!(
        "Bearer {}",
        mint(&with(alice_claims(), "exp", json!(now() - 600)))
    );
    for _ in 0..5 {
        let a = pox_with(&mut c, Some(&expired), "alice@contoso.com").await;
        assert_eq!(a.status, 401);
        assert!(a.header("retry-after").is_none());
    }
    // ... and even her good token from here is refused for a while, without being checked.
    let alice = format!("Bearer {}", token_for("alice@contoso.com", Some(ALICE_SID)));
    let a = pox_with(&mut c, Some(&alice), "alice@contoso.com").await;
    assert_eq!(a.status, 401);
    assert!(a.header("retry-after").is_some());
    let after = scrape(metrics).await;
    let delta = |series: &str| {
        after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
    };
    assert_eq!(
        delta(r#"autodiscoverd_bearer_tokens_total{outcome="accepted"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"autodiscoverd_bearer_tokens_total{outcome="lifetime"}"#),
        5.0
    );
    assert_eq!(
        delta(r#"autodiscoverd_bearer_key_fetches_total{result="success"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"autodiscoverd_auth_total{method="bearer",result="success"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"autodiscoverd_auth_total{method="bearer",result="failure"}"#),
        6.0
    );
    // The log names the token's user and oid, never the token.
    let log = d.log_text();
    assert!(log.contains("bearer token accepted"), "{log}");
    let token = carol.trim_start_matches("Bearer ");
    assert!(!log.contains(token.split('.').nth(2).unwrap()));
}

#[tokio::test]
async fn msal_gets_a_token_the_way_outlook_does_and_exchangelib_discovers_with_it() {
    let Some(python) = python_with(&["msal", "exchangelib", "requests"]) else {
        return;
    };
    let pki = Arc::new(TestPki::new());
    // The issuer also serves Exchange's authorization_uri path, as Entra does.
    let issuer = start_issuer(&pki, &[ORIGIN]).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(ca_dir.path());
    let (base, ca_path) = (issuer.base.clone(), ca.clone());
    let tweak = move |t: &mut toml::Table| {
        bearer_table(t, &base, &ca_path);
        set(
            t,
            &["auth", "bearer", "authorization_uri"],
            "https://login.lab.test/common/oauth2/authorize".into(),
        );
    };
    let s = TestServer::start_named_by(
        Arc::clone(&pki),
        &["autodiscover.contoso.com", "localhost"],
        &tweak,
    )
    .await;
    let out = run_script(
        python,
        "hma_outlook.py",
        vec![
            "--ca".into(),
            ca.into_os_string(),
            "--port".into(),
            s.https.port().to_string().into(),
            "--issuer-port".into(),
            issuer.port.to_string().into(),
            "alice@contoso.com:alice-cloud-pw".into(),
            "carol@contoso.com:wrong-password".into(),
        ],
        &s.dir.path().join("py"),
    )
    .await;
    let lines = out.json_lines();
    let alice = &lines[0];
    assert_eq!(
        alice["challenge"]["authorization_uri"],
        "https://login.lab.test/common/oauth2/authorize"
    );
    assert_eq!(alice["challenge"]["tenant"], TENANT);
    assert_eq!(alice["token"]["audience"], ORIGIN, "{alice}");
    assert_eq!(alice["pox"]["status"], 200, "{alice}");
    assert_eq!(
        alice["pox"]["ews_url"],
        "https://mail.contoso.com/EWS/Exchange.asmx"
    );
    assert_eq!(alice["refreshed"]["status"], 200, "{alice}");
    assert_eq!(
        alice["exchangelib"]["ews_url"], "https://mail.contoso.com/EWS/Exchange.asmx",
        "{alice}\n{}",
        out.stderr
    );
    assert!(
        alice["exchangelib"]["wire_auth"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "Bearer"),
        "{alice}"
    );
    // A wrong password never reaches the server: Entra (the issuer) refuses it.
    let carol = &lines[1];
    assert!(
        carol["token"]["error"]
            .as_str()
            .unwrap()
            .contains("AADSTS50126"),
        "{carol}"
    );
}

/// Runs `autodiscoverd probe --json` against `s` with these arguments.
async fn probe(s: &TestServer, ca: &std::path::Path, args: &[&str]) -> (i32, Value) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_autodiscoverd"));
    cmd.args([
        "probe",
        "--json",
        "--no-dns",
        "--timeout",
        "5",
        "--protocol",
        "pox",
    ])
    .arg("--ca-file")
    .arg(ca)
    .arg("--connect-to")
    .arg(format!(
        "autodiscover.contoso.com:443:127.0.0.1:{}",
        s.https.port()
    ))
    .args(args)
    .env_remove("AUTODISCOVERD_PROBE_PASSWORD")
    .env_remove("AUTODISCOVERD_PROBE_BEARER");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (out.status.code().unwrap_or(-1), json)
}

/// Every step title of a report, with its status.
fn titles(report: &Value) -> Vec<(String, String)> {
    report["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["steps"].as_array().unwrap().iter())
        .map(|s| {
            (
                s["status"].as_str().unwrap().to_string(),
                s["title"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_probe_checks_the_bearer_challenge_and_presents_a_token() {
    let (s, _issuer, ca_dir) = server(&|_| {}).await;
    let ca = ca_dir.path().join("ca.pem");
    let token_file = ca_dir.path().join("token");
    std::fs::write(
        &token_file,
        format!("{}\n", token_for("alice@contoso.com", Some(ALICE_SID))),
    )
    .unwrap();
    let token_arg = token_file.display().to_string();
    let (code, report) = probe(&s, &ca, &["--bearer", &token_arg, "alice@contoso.com"]).await;
    let steps = titles(&report);
    assert_eq!(code, 0, "{steps:#?}");
    assert!(
        steps.iter().any(|(status, title)| status == "pass"
            && title.contains("modern authentication (HMA) offered")
            && title.contains(TENANT)),
        "{steps:#?}"
    );
    assert!(
        steps.iter().any(
            |(status, title)| status == "pass" && title.contains("the --bearer token (Bearer)")
        ),
        "{steps:#?}"
    );
    // The token never appears in the report.
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(!report.to_string().contains(token.trim()));
    // A token the server refuses: the attempt fails on authentication.
    let forger = autodiscoverd::lab::issuer::LabIssuer::generate(TENANT, "lab-key-1").unwrap();
    std::fs::write(
        &token_file,
        forger
            .mint(&forger.user_claims(ORIGIN, "alice@contoso.com", None, now(), 3600))
            .unwrap(),
    )
    .unwrap();
    let (code, report) = probe(&s, &ca, &["--bearer", &token_arg, "alice@contoso.com"]).await;
    assert_ne!(code, 0);
    assert!(
        titles(&report)
            .iter()
            .any(|(status, title)| status == "fail" && title.contains("rejected (Bearer")),
        "{:#?}",
        titles(&report)
    );
}
