//! Production operation, on the real binary: sd_notify, SIGHUP reload (certificates swap,
//! broken files refused), SIGTERM drain, metrics and health endpoints, the access log.

use std::time::Duration;

use rustix::process::Signal;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::harness::client::{basic, client_config};
use crate::harness::daemon::{http, scrape, Daemon};
use crate::harness::{outlook_request, repo_root, set, TlsClient};

const PATH: &str = "/autodiscover/autodiscover.xml";
const WAIT: Duration = Duration::from_secs(20);

/// The text of the first `Action` element (settings / redirectAddr) of a POX answer.
fn action(body: &str) -> String {
    let doc = roxmltree::Document::parse(body).expect("XML answer");
    doc.descendants()
        .find(|n| n.has_tag_name("Action") || n.has_tag_name("ErrorCode"))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_string()
}

fn leaf_der(pem_path: &std::path::Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem_path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

async fn settings_for_alice(c: &mut TlsClient) -> String {
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    assert_eq!(a.status, 200);
    action(&a.text())
}

#[test]
fn daemon_notifies_systemd_of_ready_reloading_and_stopping_and_exits_zero() {
    let mut d = Daemon::start(&|_| {});
    for kind in ["https", "redirect", "metrics"] {
        assert!(d.addrs.contains_key(kind), "{kind} in {:?}", d.addrs);
    }
    d.signal(Signal::HUP);
    let reloading = d.wait_notify("RELOADING=1", WAIT).expect("RELOADING=1");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC with RELOADING=1")
        .parse()
        .unwrap();
    assert!(usec > 0);
    let ready = d
        .wait_notify("READY=1", WAIT)
        .expect("READY=1 after reload");
    assert!(!ready.contains("FAILED"), "{ready}");
    d.signal(Signal::TERM);
    d.wait_notify("STOPPING=1", WAIT).expect("STOPPING=1");
    let status = d.wait_exit(WAIT).expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "log:\n{}", d.log_text());
}

#[tokio::test]
async fn sighup_swaps_the_certificate_for_new_connections_and_open_ones_keep_working() {
    let d = Daemon::start(&|_| {});
    let https = d.addr("https");
    let cert_path = d.dir.path().join("server.pem");
    let old_leaf = leaf_der(&cert_path);

    let mut open = TlsClient::connect(https, "autodiscover.contoso.com", &d.pki).await;
    assert_eq!(open.peer_certificates[0].as_ref(), old_leaf.as_slice());
    assert_eq!(settings_for_alice(&mut open).await, "settings");

    // Same paths, new key pair and certificate (what certbot's renewal does).
    d.pki.write_leaf(
        d.dir.path(),
        "server",
        &[
            "autodiscover.contoso.com",
            "localhost",
            "renewed.contoso.com",
        ],
    );
    let new_leaf = leaf_der(&cert_path);
    assert_ne!(old_leaf, new_leaf);
    d.signal(Signal::HUP);
    d.wait_notify("RELOADING=1", WAIT).expect("RELOADING=1");
    let ready = d.wait_notify("READY=1", WAIT).expect("READY=1");
    assert!(!ready.contains("FAILED"), "{ready}\n{}", d.log_text());

    let mut fresh = TlsClient::connect(https, "autodiscover.contoso.com", &d.pki).await;
    assert_eq!(
        fresh.peer_certificates[0].as_ref(),
        new_leaf.as_slice(),
        "a new connection sees the new certificate"
    );
    assert_eq!(settings_for_alice(&mut fresh).await, "settings");
    // The keep-alive connection opened before the reload still answers.
    assert_eq!(settings_for_alice(&mut open).await, "settings");
    assert_eq!(settings_for_alice(&mut open).await, "settings");
}

#[tokio::test]
async fn a_broken_config_or_certificate_on_reload_is_refused_and_service_continues() {
    let d = Daemon::start(&|_| {});
    let https = d.addr("https");
    let metrics = d.addr("metrics");
    let before = scrape(metrics).await;
    let good = std::fs::read_to_string(&d.config_path).unwrap();

    // 1. A config error.
    std::fs::write(
        &d.config_path,
        good.replace(
            "exchange_version = \"15.2.1258.12\"",
            "exchange_version = \"fifteen\"",
        ),
    )
    .unwrap();
    d.signal(Signal::HUP);
    let ready = d
        .wait_notify("READY=1", WAIT)
        .expect("READY=1 after refused reload");
    assert!(ready.contains("last reload FAILED"), "{ready}");
    let refused = d
        .wait_event(WAIT, |e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("reload refused"))
        })
        .unwrap_or_else(|| panic!("no refusal logged:\n{}", d.log_text()));
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("autodiscoverd.toml"), "{error}");
    assert!(error.contains("services.exchange_version"), "{error}");
    assert!(error.contains("Fix:"), "{error}");
    assert_eq!(refused["level"], "ERROR");
    let mut c = TlsClient::connect(https, "autodiscover.contoso.com", &d.pki).await;
    assert_eq!(settings_for_alice(&mut c).await, "settings");

    // 2. A certificate file that is not PEM: refused, the old certificate keeps serving.
    std::fs::write(&d.config_path, &good).unwrap();
    let cert_path = d.dir.path().join("server.pem");
    let old_leaf = leaf_der(&cert_path);
    std::fs::write(&cert_path, "this is not a certificate\n").unwrap();
    d.signal(Signal::HUP);
    let ready = d.wait_notify("READY=1", WAIT).expect("READY=1");
    assert!(ready.contains("last reload FAILED"), "{ready}");
    assert!(
        d.wait_event(WAIT, |e| e["error"]
            .as_str()
            .is_some_and(|m| m.contains("server.pem")))
            .is_some(),
        "the refusal names the certificate file:\n{}",
        d.log_text()
    );
    let mut c = TlsClient::connect(https, "autodiscover.contoso.com", &d.pki).await;
    assert_eq!(c.peer_certificates[0].as_ref(), old_leaf.as_slice());
    assert_eq!(settings_for_alice(&mut c).await, "settings");

    let after = scrape(metrics).await;
    let failures = r#"autodiscoverd_reloads_total{result="failure"}"#;
    assert_eq!(
        after.get(failures).copied().unwrap_or(0.0) - before.get(failures).copied().unwrap_or(0.0),
        2.0
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let mut d = Daemon::start(&|t| set(t, &["server", "shutdown_grace_secs"], 15.into()));
    let https = d.addr("https");
    let tcp = tokio::net::TcpStream::connect(https).await.unwrap();
    let connector = TlsConnector::from(client_config(&d.pki));
    let name = ServerName::try_from("autodiscover.contoso.com").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();

    // Headers and half of the body, then SIGTERM while the server waits for the rest.
    let body = outlook_request("alice@contoso.com");
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: autodiscover.contoso.com\r\nAuthorization: {}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        basic("alice@contoso.com", "alice-pw"),
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(first).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.signal(Signal::TERM);
    d.wait_notify("STOPPING=1", WAIT).expect("STOPPING=1");

    // Listeners are closed at once: a new client is refused.
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(https).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener still accepts after SIGTERM");
    assert!(
        d.wait_exit(Duration::from_millis(300)).is_none(),
        "exited with a request in flight"
    );

    tls.write_all(rest).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut answer))
        .await
        .expect("the answer arrives")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let xml = &answer[answer.find("<?xml").expect("XML body")..];
    assert_eq!(action(xml), "settings");

    let status = d.wait_exit(WAIT).expect("exits after draining");
    assert_eq!(status.code(), Some(0), "log:\n{}", d.log_text());
}

#[tokio::test]
async fn metrics_counters_move_as_requests_are_made() {
    let d = Daemon::start(&|_| {});
    let https = d.addr("https");
    let metrics = d.addr("metrics");
    let healthz = http(metrics, "GET", "/healthz", &[], b"").await;
    assert_eq!(healthz.status, 200);
    let readyz = http(metrics, "GET", "/readyz", &[], b"").await;
    assert_eq!(readyz.status, 200, "{}", readyz.text());
    assert_eq!(http(metrics, "GET", "/nope", &[], b"").await.status, 404);

    let before = scrape(metrics).await;
    let mut c = TlsClient::connect(https, "autodiscover.contoso.com", &d.pki).await;
    let anonymous = c
        .send(
            "POST",
            PATH,
            &[("Content-Type", "text/xml")],
            outlook_request("alice@contoso.com").as_bytes(),
        )
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(settings_for_alice(&mut c).await, "settings");
    let bob = c
        .post_basic(
            PATH,
            "bob@contoso.com",
            "bob-pw",
            &[],
            &outlook_request("bob@contoso.com"),
        )
        .await;
    assert_eq!(action(&bob.text()), "redirectAddr");
    let wrong = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "not-the-password",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let health = c
        .send("GET", "/autodiscover/healthcheck.htm", &[], b"")
        .await;
    assert_eq!(health.status, 200);
    assert_eq!(health.text(), "200 OK");
    let after = scrape(metrics).await;

    let delta = |series: &str| {
        after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
    };
    let xml = |outcome: &str| {
        format!(
            r#"autodiscoverd_requests_total{{endpoint="autodiscover.xml",outcome="{outcome}"}}"#
        )
    };
    assert_eq!(delta(&xml("unauthorized")), 2.0);
    assert_eq!(delta(&xml("settings")), 1.0);
    assert_eq!(delta(&xml("redirectAddr")), 1.0);
    assert_eq!(
        delta(r#"autodiscoverd_requests_total{endpoint="healthcheck",outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"autodiscoverd_auth_total{method="basic",result="success"}"#),
        2.0
    );
    assert_eq!(
        delta(r#"autodiscoverd_auth_total{method="basic",result="failure"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"autodiscoverd_connections_total{listener="https"}"#),
        1.0
    );
    assert_eq!(
        after[r#"autodiscoverd_active_connections{listener="https"}"#],
        1.0
    );
    assert!(delta(r#"autodiscoverd_directory_duration_seconds_count{op="find"}"#) >= 2.0);
    assert_eq!(
        delta(r#"autodiscoverd_directory_duration_seconds_count{op="verify_password"}"#),
        3.0
    );
    assert_eq!(
        delta(r#"autodiscoverd_request_duration_seconds_count{endpoint="autodiscover.xml"}"#),
        4.0
    );

    // A failed TLS handshake is counted too.
    let mut raw = tokio::net::TcpStream::connect(https).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut sink)).await;
    let last = scrape(metrics).await;
    assert_eq!(
        last.get(r#"autodiscoverd_tls_handshake_failures_total{reason="error"}"#)
            .copied()
            .unwrap_or(0.0)
            - after
                .get(r#"autodiscoverd_tls_handshake_failures_total{reason="error"}"#)
                .copied()
                .unwrap_or(0.0),
        1.0
    );
}

#[tokio::test]
async fn access_log_lines_carry_client_user_endpoint_outcome_and_latency_but_no_secret() {
    let d = Daemon::start(&|_| {});
    let mut c = TlsClient::connect(d.addr("https"), "autodiscover.contoso.com", &d.pki).await;
    assert_eq!(settings_for_alice(&mut c).await, "settings");
    let event = d
        .wait_event(WAIT, |e| {
            e["target"] == "access" && e["user"] == "alice@contoso.com"
        })
        .unwrap_or_else(|| panic!("no access line:\n{}", d.log_text()));
    assert_eq!(event["client"], "127.0.0.1");
    assert_eq!(event["endpoint"], "autodiscover.xml");
    assert_eq!(event["outcome"], "settings");
    assert_eq!(event["status"], 200);
    assert!(event["latency_us"].as_u64().is_some(), "{event}");
    let log = d.log_text();
    assert!(!log.contains("alice-pw"), "password in the log");
    assert!(
        !log.contains(&basic("alice@contoso.com", "alice-pw")[6..]),
        "credentials in the log"
    );
}

#[test]
fn log_format_can_be_logfmt() {
    let d = Daemon::start(&|t| set(t, &["log", "format"], "logfmt".into()));
    let line = d
        .log_lines()
        .into_iter()
        .find(|l| l.contains("msg=listening"))
        .unwrap_or_else(|| panic!("no logfmt line:\n{}", d.log_text()));
    assert!(line.starts_with("ts="), "{line}");
    assert!(line.contains(" level=info "), "{line}");
    assert!(line.contains(" listeners=\"https=127.0.0.1:"), "{line}");
}

#[test]
fn packaged_config_parses_and_documents_the_same_keys_as_the_example() {
    use autodiscoverd::config::Config;
    fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in t {
            let path = format!("{prefix}{k}");
            match v {
                toml::Value::Table(inner) => keys(inner, &format!("{path}."), out),
                _ => out.push(path),
            }
        }
    }
    let read = |p: &str| std::fs::read_to_string(repo_root().join(p)).unwrap();
    let packaged = read("deploy/debian/autodiscoverd.toml");
    let config = Config::from_toml(
        std::path::Path::new("/etc/autodiscoverd/autodiscoverd.toml"),
        &packaged,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.listen, vec!["0.0.0.0:443".parse().unwrap()]);
    assert!(config
        .tls
        .default
        .cert
        .starts_with("/var/lib/autodiscoverd"));
    assert_eq!(
        config.metrics.unwrap().listen,
        "127.0.0.1:9187".parse().unwrap()
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    keys(&toml::from_str(&packaged).unwrap(), "", &mut a);
    keys(
        &toml::from_str(&read("config/autodiscoverd.example.toml")).unwrap(),
        "",
        &mut b,
    );
    assert_eq!(
        a, b,
        "deploy/debian/autodiscoverd.toml and the example config differ in keys: run deploy/debian/make-config"
    );
}
