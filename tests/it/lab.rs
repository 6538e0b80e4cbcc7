//! The hybrid lab end to end: `lab init` into a temporary directory, both roles running
//! in-process on ephemeral loopback ports, and the real `autodiscoverd probe` binary
//! walking the journey with `--connect-to` mappings and the lab CA.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use autodiscoverd::lab::init::{init, paths};
use autodiscoverd::lab::up::{Binding, RunningLab};
use autodiscoverd::lab::{Breakage, ConnectTo, LabSpec, Ports};
use serde_json::Value;

struct Lab {
    dir: tempfile::TempDir,
    running: RunningLab,
    spec: LabSpec,
}

impl Lab {
    async fn start(breakage: Option<Breakage>) -> Lab {
        Lab::start_at(breakage, SystemTime::now()).await
    }

    /// A lab whose certificates were issued as if `issued` were now.
    async fn start_at(breakage: Option<Breakage>, issued: SystemTime) -> Lab {
        Lab::start_edited(breakage, issued, |_| {}).await
    }

    /// A lab whose files `edit` changes between `lab init` and `lab up`.
    async fn start_edited(
        breakage: Option<Breakage>,
        issued: SystemTime,
        edit: impl FnOnce(&Path),
    ) -> Lab {
        Lab::start_spec(
            LabSpec {
                breakage,
                ..LabSpec::default()
            },
            issued,
            edit,
        )
        .await
    }

    /// A lab of `spec`.
    async fn start_spec(spec: LabSpec, issued: SystemTime, edit: impl FnOnce(&Path)) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &spec, issued, false).unwrap();
        edit(dir.path());
        let running = RunningLab::start(dir.path(), Binding::Ephemeral)
            .await
            .unwrap();
        Lab { dir, running, spec }
    }

    fn ports(&self) -> Ports {
        lab_ports(&self.running)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join(paths::CA_CERT)
    }

    /// Runs the probe binary; returns the exit code, stdout and the command line used.
    async fn probe(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        self.probe_with_map(self.spec.connect_map(self.ports()), args, env)
            .await
    }

    /// Runs the probe binary with this name map instead of the lab's.
    async fn probe_with_map(
        &self,
        map: Vec<ConnectTo>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (i32, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_autodiscoverd"));
        cmd.arg("probe").arg("--no-dns").arg("--timeout").arg("5");
        cmd.arg("--ca-file").arg(self.ca());
        for mapping in map {
            cmd.arg("--connect-to").arg(mapping.to_string());
        }
        cmd.args(args);
        cmd.env_remove("AUTODISCOVERD_PROBE_PASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stdout.contains("lab-pw") && !stderr.contains("lab-pw"),
            "the password leaked into the output"
        );
        (out.status.code().unwrap_or(-1), stdout)
    }

    async fn probe_json(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, stdout) = self.probe(&all, env).await;
        let json: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("probe JSON does not parse ({e}):\n{stdout}"));
        (code, json)
    }

    /// The probe in the lab's DNS mode (`--dns-server`, the ports-only `dns.conf` for the
    /// ephemeral ports) for a lab user by alias, with the user's password; JSON.
    async fn probe_dns_mode(&self, alias: &str) -> (i32, Value) {
        let conf = self.dir.path().join("dns-ephemeral.conf");
        let ca = self.ca().display().to_string();
        let text = autodiscoverd::lab::files::dns_mode_config(&self.spec, self.ports(), &ca);
        std::fs::write(&conf, text).unwrap();
        let dns = self.running.dns.expect("the lab serves DNS").to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
            .args(["probe", "--json", "--timeout", "5", "--dns-server", &dns])
            .arg("--map")
            .arg(&conf)
            .args([
                "--password",
                &format!("{alias}-lab-pw"),
                &format!("{alias}@contoso.lab"),
            ])
            .output()
            .unwrap();
        let report = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code().unwrap_or(-1), report)
    }

    fn password_file(&self, password: &str) -> PathBuf {
        let path = self.dir.path().join("probe-password");
        std::fs::write(&path, format!("{password}\n")).unwrap();
        path
    }
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The ports a running lab bound; a listener the lab does not run (a fault) gets a port
/// nothing listens on.
pub fn lab_ports(running: &RunningLab) -> Ports {
    let port =
        |bound: &[std::net::SocketAddr]| bound.first().map_or_else(closed_port, |a| a.port());
    Ports {
        onprem_https: port(&running.onprem.https),
        tenant_https: port(&running.tenant.https),
        tenant_http: port(&running.tenant.redirect),
        onprem_http: port(&running.onprem.redirect),
        dns: running.dns.map_or_else(closed_port, |a| a.port()),
    }
}

fn attempts(report: &Value) -> &Vec<Value> {
    report["attempts"].as_array().expect("attempts")
}

/// The steps of an attempt as (kind, status) pairs.
fn kinds(attempt: &Value) -> Vec<(String, String)> {
    attempt["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has(attempt: &Value, kind: &str, status: &str) -> bool {
    kinds(attempt).iter().any(|(k, s)| k == kind && s == status)
}

/// Titles of every authentication step.
fn auth_titles(report: &Value) -> Vec<String> {
    attempts(report)
        .iter()
        .flat_map(|a| a["steps"].as_array().unwrap().iter())
        .filter(|s| s["kind"] == "authentication")
        .map(|s| s["title"].as_str().unwrap().to_string())
        .collect()
}

fn protocol<'a>(settings: &'a Value, kind: &str) -> &'a Value {
    settings["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} block in {settings:#}"))
}

fn failing_step(report: &Value) -> (&Value, &Value) {
    let number = report["verdict"]["failing_step"]
        .as_str()
        .expect("failing step");
    for a in attempts(report) {
        for s in a["steps"].as_array().unwrap() {
            if s["number"] == number {
                return (a, s);
            }
        }
    }
    panic!("step {number} not in the report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrated_user_walks_the_seed_scenario_to_exchange_online_settings() {
    let lab = Lab::start(None).await;
    let pw = lab.password_file("bob-lab-pw");
    let (code, report) = lab
        .probe_json(
            &["--password-file", pw.to_str().unwrap(), "bob@contoso.lab"],
            &[],
        )
        .await;
    assert_eq!(code, 0, "{report:#}");
    let a = attempts(&report);
    let route: Vec<(&str, &str, &str)> = a
        .iter()
        .map(|a| {
            (
                a["method"].as_str().unwrap(),
                a["address"].as_str().unwrap(),
                a["url"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        route,
        vec![
            (
                "root_domain",
                "bob@contoso.lab",
                "https://contoso.lab/autodiscover/autodiscover.xml"
            ),
            (
                "autodiscover_prefix",
                "bob@contoso.lab",
                "https://autodiscover.contoso.lab/autodiscover/autodiscover.xml"
            ),
            (
                "root_domain",
                "bob@contoso.mail.onmicrosoft.lab",
                "https://contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.xml"
            ),
            (
                "autodiscover_prefix",
                "bob@contoso.mail.onmicrosoft.lab",
                "https://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.xml"
            ),
            (
                "http_redirect",
                "bob@contoso.mail.onmicrosoft.lab",
                "http://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.xml"
            ),
            (
                "redirected",
                "bob@contoso.mail.onmicrosoft.lab",
                "https://autodiscover-s.lab/autodiscover/autodiscover.xml"
            ),
        ]
    );

    // 1: the root domain presents someone else's certificate; no credentials are sent.
    assert!(has(&a[0], "certificate_name", "fail"), "{:#}", a[0]);
    assert!(has(&a[0], "certificate_chain", "pass"));
    assert!(!kinds(&a[0]).iter().any(|(k, _)| k == "authentication"));
    let cert = a[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "certificate")
        .unwrap();
    assert_eq!(cert["certificate"]["dns_names"][0], "www.webhosting.lab");
    assert!(cert["certificate"]["issuer"]
        .as_str()
        .unwrap()
        .contains("autodiscoverd lab CA"));

    // 2: on-premises authenticates and answers redirectAddr to the routing domain.
    assert_eq!(
        kinds(&a[1]),
        [
            ("dns", "pass"),
            ("tcp", "pass"),
            ("tls_handshake", "pass"),
            ("certificate", "info"),
            ("certificate_name", "pass"),
            ("certificate_chain", "pass"),
            ("certificate_dates", "pass"),
            ("client_certificate", "info"),
            ("request", "pass"),
            ("authentication", "pass"),
            ("response", "info"),
            ("redirect", "pass"),
        ]
        .map(|(k, s)| (k.to_string(), s.to_string()))
    );
    assert_eq!(a[1]["outcome"]["result"], "redirect_addr");
    assert_eq!(
        a[1]["outcome"]["address"],
        "bob@contoso.mail.onmicrosoft.lab"
    );

    // 3: the bare routing domain does not resolve.
    assert_eq!(kinds(&a[2]), [("dns".to_string(), "fail".to_string())]);
    // 4: the tenant's autodiscover name has no TLS endpoint of its own.
    assert!(has(&a[3], "certificate_name", "fail"), "{:#}", a[3]);
    assert!(!kinds(&a[3]).iter().any(|(k, _)| k == "authentication"));
    // 5: the port-80 redirect to autodiscover-s.
    assert!(has(&a[4], "request", "pass"));
    assert!(has(&a[4], "redirect", "pass"));
    assert_eq!(a[4]["outcome"]["result"], "redirect_url");
    assert_eq!(
        a[4]["outcome"]["url"],
        "https://autodiscover-s.lab/autodiscover/autodiscover.xml"
    );
    // 6: Exchange Online settings, authenticating the on-premises identity.
    assert!(has(&a[5], "authentication", "pass"));
    assert_eq!(a[5]["outcome"]["result"], "settings");

    assert_eq!(report["verdict"]["success"], true);
    assert_eq!(
        report["addresses"],
        serde_json::json!(["bob@contoso.lab", "bob@contoso.mail.onmicrosoft.lab"])
    );
    assert_eq!(report["url_redirects"], 1);
    let obtained = &report["obtained"];
    assert_eq!(
        obtained["url"],
        "https://autodiscover-s.lab/autodiscover/autodiscover.xml"
    );
    let s = &obtained["settings"];
    assert_eq!(s["microsoft_online"], true);
    assert_eq!(
        s["smtp_address"], "bob@contoso.lab",
        "the primary vanity address"
    );
    let legacy_dn = s["legacy_dn"].as_str().unwrap();
    assert_eq!(
        legacy_dn,
        "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=1c2d3e4f5a6b4c7d8e9f0a1b2c3d4e5f-bob"
    );
    let kinds: Vec<&str> = s["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["mapiHttp", "WEB", "EXHTTP"]);
    let mapi = &protocol(s, "mapiHttp")["fields"];
    assert_eq!(
        mapi["MailStore/ExternalUrl"],
        "https://outlook.lab/mapi/emsmdb/?MailboxId=1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f@contoso.lab"
    );
    assert!(
        mapi.get("MailStore/InternalUrl").is_none(),
        "EXO publishes external URLs only"
    );
    let exhttp = &protocol(s, "EXHTTP")["fields"];
    assert_eq!(exhttp["Server"], "outlook.lab");
    assert_eq!(exhttp["AuthPackage"], "Basic");
    let web = &protocol(s, "WEB")["fields"];
    assert!(
        web.get("Internal/OWAUrl").is_none(),
        "EXO has no internal namespace"
    );
    assert_eq!(
        web["External/OWAUrl@AuthenticationMethod"],
        "LiveIdFba, OAuth"
    );
    assert_eq!(s["ews_url"], "https://outlook.lab/EWS/Exchange.asmx");

    // The same journey as readable text.
    let (code, text) = lab
        .probe(
            &["--password-file", pw.to_str().unwrap(), "bob@contoso.lab"],
            &[],
        )
        .await;
    assert_eq!(code, 0);
    assert!(
        text.contains("[FAIL] 1.5   certificate name mismatch"),
        "{text}"
    );
    assert!(text.contains("Action=redirectAddr"), "{text}");
    assert!(
        text.contains("contoso.mail.onmicrosoft.lab not resolved"),
        "{text}"
    );
    assert!(
        text.contains("HTTP 302 to https://autodiscover-s.lab/autodiscover/autodiscover.xml"),
        "{text}"
    );
    assert!(
        text.contains("Verdict: PASS settings obtained for bob@contoso.mail.onmicrosoft.lab"),
        "{text}"
    );
    assert!(
        text.contains("Microsoft Online:       True (Exchange Online)"),
        "{text}"
    );
    lab.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_online_answer_without_mapi_carries_an_exchangelabs_exch_block() {
    let lab = Lab::start(None).await;
    let (code, report) = lab
        .probe_json(
            &["--no-mapi", "--auth", "basic", "bob@contoso.lab"],
            &[("AUTODISCOVERD_PROBE_PASSWORD", "bob-lab-pw")],
        )
        .await;
    assert_eq!(code, 0, "{report:#}");
    let titles = auth_titles(&report);
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert!(titles.iter().all(|t| t.contains("(Basic)")), "{titles:?}");
    let s = &report["obtained"]["settings"];
    let exch = &protocol(s, "EXCH")["fields"];
    assert_eq!(
        exch["Server"],
        "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f@contoso.lab"
    );
    assert!(exch["ServerDN"]
        .as_str()
        .unwrap()
        .starts_with("/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn=1c2d3e4f"));
    assert_eq!(exch["ServerVersion"], "73D49F70", "15.20.8048");
    assert_eq!(exch["AuthPackage"], "Anonymous");
    assert_eq!(exch["PublicFolderServer"], "outlook.lab");
    assert_eq!(exch["EwsUrl"], "https://outlook.lab/EWS/Exchange.asmx");
    assert!(s["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["type"] != "mapiHttp"));
    lab.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_premises_user_gets_settings_on_the_first_authenticated_post() {
    let lab = Lab::start(None).await;
    let (code, report) = lab
        .probe_json(
            &[
                "--user",
                "CONTOSO\\alice",
                "--password",
                "alice-lab-pw",
                "alice@contoso.lab",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 0, "{report:#}");
    // The server offers NTLM and Basic; the probe prefers NTLM, as Outlook does.
    assert_eq!(
        auth_titles(&report),
        ["POST /autodiscover/autodiscover.xml as CONTOSO\\alice (NTLM): HTTP 200"]
    );
    let a = attempts(&report);
    assert_eq!(a.len(), 2, "{report:#}");
    assert!(has(&a[0], "certificate_name", "fail"));
    assert_eq!(a[1]["method"], "autodiscover_prefix");
    let auth: Vec<&Value> = a[1]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "authentication")
        .collect();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0]["status"], "pass");
    assert!(has(&a[1], "response", "pass"));
    let obtained = &report["obtained"];
    assert_eq!(obtained["address"], "alice@contoso.lab");
    assert_eq!(
        obtained["url"],
        "https://autodiscover.contoso.lab/autodiscover/autodiscover.xml"
    );
    assert_eq!(obtained["settings"]["microsoft_online"], false);
    assert_eq!(
        obtained["settings"]["ews_url"],
        "https://mail.contoso.lab/EWS/Exchange.asmx"
    );
    assert_eq!(report["url_redirects"], 0);
    lab.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_named_as_the_failing_step() {
    let lab = Lab::start(None).await;
    let (code, report) = lab
        .probe_json(&["--password", "not-the-password", "bob@contoso.lab"], &[])
        .await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"]["success"], false);
    assert_eq!(report["verdict"]["failing_kind"], "authentication");
    let (attempt, step) = failing_step(&report);
    assert_eq!(
        attempt["url"],
        "https://autodiscover.contoso.lab/autodiscover/autodiscover.xml"
    );
    assert!(
        step["title"].as_str().unwrap().contains("rejected"),
        "{step:#}"
    );
    assert!(report.get("obtained").is_none());
    lab.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_named_as_the_failing_step() {
    let lab = Lab::start(Some(Breakage::ExpiredCertificate)).await;
    let (code, report) = lab
        .probe_json(&["--password", "bob-lab-pw", "bob@contoso.lab"], &[])
        .await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"]["failing_kind"], "certificate_dates");
    let (attempt, step) = failing_step(&report);
    assert_eq!(attempt["method"], "autodiscover_prefix");
    assert!(
        step["title"].as_str().unwrap().contains("expired"),
        "{step:#}"
    );
    // Name and chain are fine; only the dates fail, and no credentials went out.
    assert!(has(attempt, "certificate_name", "pass"));
    assert!(has(attempt, "certificate_chain", "pass"));
    assert!(!kinds(attempt).iter().any(|(k, _)| k == "authentication"));
    // rustls itself refused the certificate in the handshake; the probe only watched.
    let handshake = attempt["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "tls_handshake")
        .expect("a handshake step");
    assert!(
        handshake["title"]
            .as_str()
            .unwrap()
            .contains("stopped at the server's certificate"),
        "{handshake:#}"
    );
    assert!(
        handshake["details"][0]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("expired"),
        "{handshake:#}"
    );
    lab.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_loop_between_the_two_sides_is_named_as_the_failing_step() {
    let lab = Lab::start(Some(Breakage::RedirectLoop)).await;
    let (code, report) = lab
        .probe_json(&["--password", "bob-lab-pw", "bob@contoso.lab"], &[])
        .await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"]["failing_kind"], "redirect");
    let (attempt, step) = failing_step(&report);
    assert_eq!(
        attempt["url"],
        "https://autodiscover-s.lab/autodiscover/autodiscover.xml"
    );
    assert!(
        step["title"].as_str().unwrap().contains("redirect loop"),
        "{step:#}"
    );
    assert!(step["details"][0]
        .as_str()
        .unwrap()
        .contains("bob@contoso.lab -> bob@contoso.mail.onmicrosoft.lab -> bob@contoso.lab"));
    // The journey stops at the loop: nothing is tried after it.
    assert_eq!(attempts(&report).last().unwrap()["url"], attempt["url"]);
    lab.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_without_credentials_says_so() {
    let lab = Lab::start(None).await;
    let (code, report) = lab.probe_json(&["alice@contoso.lab"], &[]).await;
    assert_eq!(code, 1);
    let (_, step) = failing_step(&report);
    assert_eq!(step["kind"], "authentication");
    assert!(
        step["title"].as_str().unwrap().contains("no credentials"),
        "{step:#}"
    );
    lab.running.stop().await;
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
}

fn check_config(path: &Path) {
    let out = binary()
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lab_init_writes_a_lab_whose_configs_check_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let out = binary()
        .args(["lab", "init", "--base-port", "28443"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("127.0.0.1:28443  on-premises HTTPS"),
        "{stdout}"
    );
    assert!(stdout.contains("bob@contoso.lab"), "{stdout}");
    check_config(&dir.join(paths::ONPREM_CONFIG));
    check_config(&dir.join(paths::TENANT_CONFIG));
    let curl = std::fs::read_to_string(dir.join(paths::CURL_CONFIG)).unwrap();
    assert!(
        curl.contains("connect-to = \"autodiscover-s.lab:443:127.0.0.1:28444\""),
        "{curl}"
    );
    assert!(
        curl.contains(&format!("cacert = \"{}", dir.display())),
        "{curl}"
    );
    let hosts = std::fs::read_to_string(dir.join(paths::HOSTS)).unwrap();
    assert!(hosts.contains(
        "127.0.0.1 autodiscover-s.lab outlook.lab autodiscover.contoso.mail.onmicrosoft.lab"
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(paths::CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the CA key is private");
    }

    let again = binary().args(["lab", "init"]).arg(&dir).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("--force"), "{stderr}");
    let forced = binary()
        .args(["lab", "init", "--force", "--break", "redirect-loop"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(forced.status.success());
    assert!(String::from_utf8_lossy(&forced.stdout).contains("BROKEN ON PURPOSE"));
}

#[test]
fn lab_up_on_a_missing_lab_explains_how_to_create_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = binary()
        .args(["lab", "up"])
        .arg(tmp.path().join("nothing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("autodiscoverd lab init"), "{stderr}");
}

/// The tenant role's raw POX, read with an independent XML parser (roxmltree).
#[tokio::test]
async fn tenant_role_renders_exchange_online_shaped_pox() {
    use crate::harness::{outlook_request, set, TestServer};
    let server = TestServer::start_with(&|t| {
        set(t, &["organization", "microsoft_online"], true.into());
        set(t, &["organization", "exchange_org"], "ExchangeLabs".into());
    })
    .await;
    let mut client = server.client().await;
    let answer = client
        .post_basic(
            "/autodiscover/autodiscover.xml",
            "alice@contoso.com",
            "alice-pw",
            &[("X-MapiHttpCapability", "1")],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    assert_eq!(answer.status, 200);
    let body = answer.text();
    let doc = roxmltree::Document::parse(&body).unwrap();
    let el = |node: roxmltree::Node<'_, '_>, name: &str| -> Vec<String> {
        node.descendants()
            .filter(|n| n.is_element() && n.tag_name().name() == name)
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    };
    let root = doc.root_element();
    assert_eq!(el(root, "MicrosoftOnline"), ["True"]);
    assert_eq!(el(root, "ConsumerMailbox"), ["False"]);
    let account = root
        .descendants()
        .find(|n| n.tag_name().name() == "Account")
        .unwrap();
    let types: Vec<String> = account
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "Protocol")
        .map(|p| {
            p.attribute("Type").map(str::to_string).unwrap_or_else(|| {
                p.children()
                    .find(|c| c.tag_name().name() == "Type")
                    .and_then(|c| c.text())
                    .unwrap_or("")
                    .to_string()
            })
        })
        .collect();
    assert_eq!(types, ["mapiHttp", "WEB", "EXHTTP"], "{body}");
    assert!(
        el(root, "InternalUrl").is_empty(),
        "external MAPI URLs only: {body}"
    );
    assert_eq!(el(root, "ExternalUrl").len(), 2);
    assert!(
        el(root, "Internal").is_empty(),
        "no internal WEB namespace: {body}"
    );
    assert!(
        el(root, "LegacyDN")[0].starts_with("/o=Contoso/"),
        "the directory's own DN is kept"
    );
    server.stop().await;
}

/// Whether curl can run; with CI=true a missing curl fails the test instead.
fn curl_or_skip() -> bool {
    match Command::new("curl").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("curl is required in CI (install the curl package)")
        }
        _ => {
            eprintln!("SKIPPED: curl is not installed; the curl.conf interop test did not run");
            false
        }
    }
}

/// The lab's curl.conf is real curl syntax, and real curl (OpenSSL or whatever it is
/// built with) trusts the lab CA, follows the name map and rejects the root domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_curl_walks_the_lab_with_its_curl_conf() {
    if !curl_or_skip() {
        return;
    }
    let lab = Lab::start(None).await;
    let conf = lab.dir.path().join("curl-ephemeral.conf");
    std::fs::write(
        &conf,
        autodiscoverd::lab::files::curl_config(
            &lab.spec,
            lab.ports(),
            &lab.ca().display().to_string(),
        ),
    )
    .unwrap();
    let request = lab.dir.path().join("request.xml");
    std::fs::write(&request, crate::harness::outlook_request("bob@contoso.lab")).unwrap();
    let curl = |args: Vec<String>| {
        let conf = conf.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new("curl")
                    .arg("-K")
                    .arg(&conf)
                    .args(["-s", "--max-time", "10"])
                    .args(&args)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };

    let out = curl(vec![
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code} %{redirect_url}".into(),
        "http://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.xml".into(),
    ])
    .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "302 https://autodiscover-s.lab/autodiscover/autodiscover.xml"
    );

    let out = curl(vec![
        "-u".into(),
        "bob@contoso.lab:bob-lab-pw".into(),
        "-H".into(),
        "Content-Type: text/xml".into(),
        "--data-binary".into(),
        format!("@{}", request.display()),
        "https://autodiscover.contoso.lab/autodiscover/autodiscover.xml".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc = roxmltree::Document::parse(&body).unwrap();
    let target = doc
        .descendants()
        .find(|n| n.tag_name().name() == "RedirectAddr")
        .and_then(|n| n.text());
    assert_eq!(target, Some("bob@contoso.mail.onmicrosoft.lab"), "{body}");

    // The root domain's certificate names another host: curl refuses it (51 or 60).
    let out = curl(vec![
        "https://contoso.lab/autodiscover/autodiscover.xml".into()
    ])
    .await;
    assert!(
        matches!(out.status.code(), Some(51 | 60)),
        "curl exit {:?}",
        out.status.code()
    );
    lab.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_probe_follows_redirect_address_and_the_svc_redirect_to_exchange_online() {
    let lab = Lab::start(None).await;
    let (code, report) = lab
        .probe_json(
            &[
                "--protocol",
                "soap",
                "--password",
                "bob-lab-pw",
                "bob@contoso.lab",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 0, "{report:#}");
    let a = attempts(&report);
    assert_eq!(a.len(), 6, "{report:#}");
    assert_eq!(a[1]["outcome"]["result"], "redirect_addr");
    assert_eq!(
        a[1]["outcome"]["address"],
        "bob@contoso.mail.onmicrosoft.lab"
    );
    assert_eq!(
        a[4]["url"],
        "http://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.svc"
    );
    assert_eq!(
        a[4]["outcome"]["url"],
        "https://autodiscover-s.lab/autodiscover/autodiscover.svc"
    );
    let settings = &report["obtained"]["settings"];
    assert_eq!(settings["microsoft_online"], true);
    assert_eq!(settings["user_settings"]["UserMSOnline"], "True");
    assert_eq!(
        settings["user_settings"]["ExternalEwsUrl"],
        "https://outlook.lab/EWS/Exchange.asmx"
    );
    assert_eq!(settings["smtp_address"], "bob@contoso.lab");
    assert!(settings["legacy_dn"]
        .as_str()
        .unwrap()
        .starts_with("/o=ExchangeLabs/"));
    lab.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_probe_follows_the_anonymous_302_to_the_tenant() {
    let lab = Lab::start(None).await;
    let (code, report) = lab
        .probe_json(&["--protocol", "v2", "bob@contoso.lab"], &[])
        .await;
    assert_eq!(code, 0, "{report:#}");
    let a = attempts(&report);
    assert_eq!(a.len(), 3, "{report:#}");
    assert!(has(&a[0], "certificate_name", "fail"));
    assert_eq!(a[1]["outcome"]["result"], "redirect_url");
    assert_eq!(
        a[1]["outcome"]["url"],
        "https://autodiscover-s.lab/autodiscover/autodiscover.json?Email=bob%40contoso.mail.onmicrosoft.lab&Protocol=Ews&RedirectCount=1"
    );
    assert!(a
        .iter()
        .all(|a| !kinds(a).iter().any(|(k, _)| k == "authentication")));
    let v2 = &report["obtained"]["settings"]["v2"];
    assert_eq!(v2["protocol"], "Ews");
    assert_eq!(v2["url"], "https://outlook.lab/EWS/Exchange.asmx");
    lab.running.stop().await;
}

/// The lab's Internet-mail mailbox (ida): POX answers AccountType email with IMAP/SMTP,
/// and `probe --protocol autoconfig|mobileconfig` reads the same servers anonymously from
/// autoconfig.<domain> and autodiscover.<domain>/mobileconfig.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ida_is_internet_mail_in_pox_autoconfig_and_mobileconfig() {
    let lab = Lab::start(None).await;
    let (code, report) = lab
        .probe_json(
            &["ida@contoso.lab"],
            &[("AUTODISCOVERD_PROBE_PASSWORD", "ida-lab-pw")],
        )
        .await;
    assert_eq!(code, 0, "{report:#}");
    let blocks = |report: &Value| -> Vec<String> {
        report["obtained"]["settings"]["protocols"]
            .as_array()
            .unwrap_or_else(|| panic!("{report:#}"))
            .iter()
            .map(|p| p["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(blocks(&report), vec!["IMAP", "SMTP"], "{report:#}");
    let imap = &report["obtained"]["settings"]["protocols"][0]["fields"];
    assert_eq!(imap["Server"], "imap.contoso.lab");
    assert_eq!(imap["Port"], "993");
    for protocol in ["autoconfig", "mobileconfig"] {
        let (code, report) = lab
            .probe_json(&["--protocol", protocol, "ida@contoso.lab"], &[])
            .await;
        assert_eq!(code, 0, "{protocol}: {report:#}");
        let a = attempts(&report);
        assert!(a
            .iter()
            .all(|a| !kinds(a).iter().any(|(k, _)| k == "authentication")));
        assert_eq!(
            blocks(&report),
            vec!["IMAP", "SMTP"],
            "{protocol}: {report:#}"
        );
        let imap = &report["obtained"]["settings"]["protocols"][0]["fields"];
        assert_eq!(imap["Server"], "imap.contoso.lab", "{protocol}");
    }
    // bob is migrated: autoconfig gives the tenant's IMAP with OAuth2.
    let (code, report) = lab
        .probe_json(&["--protocol", "autoconfig", "bob@contoso.lab"], &[])
        .await;
    assert_eq!(code, 0, "{report:#}");
    let imap = &report["obtained"]["settings"]["protocols"][0]["fields"];
    assert_eq!(imap["Server"], "outlook.office365.com", "{report:#}");
    assert_eq!(imap["Authentication"], "OAuth2");
    lab.running.stop().await;
}

/// On-premises takes NTLM and DOMAIN\user; the tenant, like Exchange Online, offers Basic
/// only and takes the UPN only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_on_premises_and_upn_only_basic_at_the_exchange_online_tenant() {
    let lab = Lab::start(None).await;
    let (code, report) = lab
        .probe_json(&["--password", "bob-lab-pw", "bob@contoso.lab"], &[])
        .await;
    assert_eq!(code, 0, "{report:#}");
    let titles = auth_titles(&report);
    assert_eq!(titles.len(), 2, "on-premises and tenant: {titles:?}");
    assert!(titles[0].contains("(NTLM): HTTP 200"), "{titles:?}");
    assert!(titles[1].contains("(Basic): HTTP 200"), "{titles:?}");
    let offers: Vec<String> = attempts(&report)
        .iter()
        .filter(|a| {
            a["url"]
                .as_str()
                .unwrap()
                .starts_with("https://autodiscover-s.lab")
        })
        .flat_map(|a| a["steps"].as_array().unwrap().iter())
        .filter(|s| s["kind"] == "request")
        .map(|s| s["title"].as_str().unwrap().to_string())
        .collect();
    assert!(offers[0].ends_with("server offers Basic"), "{offers:?}");

    // NTLM forced: on-premises accepts it, the tenant does not offer it.
    let (code, report) = lab
        .probe_json(
            &[
                "--auth",
                "ntlm",
                "--password",
                "bob-lab-pw",
                "bob@contoso.lab",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 1, "{report:#}");
    let (attempt, step) = failing_step(&report);
    assert_eq!(
        attempt["url"],
        "https://autodiscover-s.lab/autodiscover/autodiscover.xml"
    );
    assert!(
        step["title"]
            .as_str()
            .unwrap()
            .contains("--auth ntlm, but the server offers Basic"),
        "{step:#}"
    );

    // A down-level login works on-premises (NTLM) and is refused by the tenant.
    let (code, report) = lab
        .probe_json(
            &[
                "--user",
                "CONTOSO\\bob",
                "--password",
                "bob-lab-pw",
                "bob@contoso.lab",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 1, "{report:#}");
    let titles = auth_titles(&report);
    assert!(
        titles[0].contains("as CONTOSO\\bob (NTLM): HTTP 200"),
        "{titles:?}"
    );
    let (_, step) = failing_step(&report);
    assert!(
        step["title"]
            .as_str()
            .unwrap()
            .contains("rejected (Basic answered 401 after 1 leg)"),
        "{step:#}"
    );
    let advice = report["verdict"]["advice"][0].as_str().unwrap();
    assert!(advice.contains("accepted the same credentials"), "{advice}");
    assert!(advice.contains("UPN"), "{advice}");

    let (code, report) = lab
        .probe_json(
            &[
                "--auth",
                "ntlm",
                "--user",
                "CONTOSO\\bob",
                "--password",
                "wrong",
                "bob@contoso.lab",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 1);
    let (_, step) = failing_step(&report);
    assert!(
        step["title"]
            .as_str()
            .unwrap()
            .contains("rejected (NTLM answered 401 after 2 legs)"),
        "{step:#}"
    );
    lab.running.stop().await;
}

/// A fault the table below puts into a lab: a `--break`, or a service that is down or a
/// name that does not resolve (made in the name map the probe gets).
#[derive(Debug, Clone, Copy)]
enum Fault {
    Break(Breakage),
    /// The wrong password for the migrated user.
    WrongPassword,
    /// `autodiscover.<routing domain>` does not resolve (no port-80 redirector name).
    RedirectorUnresolvable,
    /// The whole tenant is down (HTTPS and the port-80 redirector) while on-premises runs.
    TenantDown,
    /// The tenant's HTTPS endpoint is down while its port-80 redirector answers.
    TenantHttpsDown,
}

/// What the verdict must say about a fault.
struct Expected {
    kind: &'static str,
    /// The failing step's attempt URL.
    url: &'static str,
    /// Words of the verdict's summary (the failing step's title).
    words: &'static str,
    /// Words of the first advice line.
    advice: &'static str,
}

const ONPREM_AD: &str = "https://autodiscover.contoso.lab/autodiscover/autodiscover.xml";
const TENANT_AD: &str = "https://autodiscover-s.lab/autodiscover/autodiscover.xml";
const REDIRECTOR: &str =
    "http://autodiscover.contoso.mail.onmicrosoft.lab/autodiscover/autodiscover.xml";

fn expectations(fault: Fault) -> Expected {
    let e = |kind, url, words, advice| Expected {
        kind,
        url,
        words,
        advice,
    };
    match fault {
        Fault::Break(b) => match b {
            Breakage::ExpiredCertificate => e("certificate_dates", ONPREM_AD, "certificate expired 30 days ago", "renew the certificate on autodiscover.contoso.lab"),
            Breakage::RedirectLoop => e("redirect", TENANT_AD, "redirect loop: redirectAddr bob@contoso.lab was already tried", "each side says the mailbox is on the other side"),
            Breakage::MissingAutodiscoverName => e("dns", ONPREM_AD, "autodiscover.contoso.lab not resolved", "--map DIR/curl.conf"),
            Breakage::TenantRedirectorDown => e("tcp", REDIRECTOR, "TCP connect to autodiscover.contoso.mail.onmicrosoft.lab:80 failed", "port-80 listener"),
            Breakage::MissingRoutingAddress => e("response", TENANT_AD, "Autodiscover error 500", "the tenant mailbox lacks the routing address; add smtp:bob@contoso.mail.onmicrosoft.lab"),
            Breakage::TenantPasswordDiffers => e("authentication", TENANT_AD, "credentials for bob@contoso.lab rejected (Basic answered 401 after 1 leg)", "password hash sync"),
            Breakage::MissingTargetAddress => e("response", ONPREM_AD, "Autodiscover error 602", "RemoteRoutingAddress"),
            Breakage::UntrustedChain => e("certificate_chain", ONPREM_AD, "chain ends at the self-signed `CN=untrusted self-signed CA", "does not lead to a trusted root"),
            Breakage::MissingIntermediate => e("certificate_chain", ONPREM_AD, "the server did not send the intermediate certificate `CN=autodiscoverd lab issuing CA (contoso.lab)", "install the intermediate certificate"),
        },
        Fault::WrongPassword => e("authentication", ONPREM_AD, "credentials for bob@contoso.lab rejected", "check the password"),
        Fault::RedirectorUnresolvable => e("dns", REDIRECTOR, "autodiscover.contoso.mail.onmicrosoft.lab not resolved", "--map DIR/curl.conf"),
        Fault::TenantDown => e("tcp", REDIRECTOR, "TCP connect to autodiscover.contoso.mail.onmicrosoft.lab:80 failed", "port-80 listener"),
        Fault::TenantHttpsDown => e("tcp", TENANT_AD, "TCP connect to autodiscover-s.lab:443 failed", "nothing accepts connections on autodiscover-s.lab"),
    }
}

/// Lab, fault, probe: the verdict names the step where the fault is, in words an
/// administrator can act on, for every `--break` and for the faults that used to be
/// blamed on the root domain's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verdict_names_the_real_fault_for_every_break_and_outage() {
    let mut faults: Vec<Fault> = Breakage::ALL.into_iter().map(Fault::Break).collect();
    faults.extend([
        Fault::WrongPassword,
        Fault::RedirectorUnresolvable,
        Fault::TenantDown,
        Fault::TenantHttpsDown,
    ]);
    let mut failures = Vec::new();
    for fault in faults {
        let breakage = match fault {
            Fault::Break(b) => Some(b),
            _ => None,
        };
        let lab = Lab::start(breakage).await;
        let mut ports = lab.ports();
        match fault {
            Fault::TenantDown => {
                ports.tenant_https = closed_port();
                ports.tenant_http = closed_port();
            }
            Fault::TenantHttpsDown => ports.tenant_https = closed_port(),
            _ => {}
        }
        let mut map = lab.spec.connect_map(ports);
        if matches!(fault, Fault::RedirectorUnresolvable) {
            let redirector = lab.spec.tenant_redirect_host();
            map.retain(|m| m.host != redirector);
        }
        let password = match fault {
            Fault::WrongPassword => "not-the-password",
            _ => "bob-lab-pw",
        };
        let (code, stdout) = lab
            .probe_with_map(
                map,
                &["--json", "--password", password, "bob@contoso.lab"],
                &[],
            )
            .await;
        lab.running.stop().await;
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let want = expectations(fault);
        let verdict = &report["verdict"];
        let found = (|| {
            if code != 1 {
                return Err(format!("exit {code}"));
            }
            if verdict["failing_kind"] != want.kind {
                return Err(format!(
                    "failing kind {} instead of {}",
                    verdict["failing_kind"], want.kind
                ));
            }
            let (attempt, _) = failing_step(&report);
            if attempt["url"] != want.url {
                return Err(format!(
                    "failing attempt {} instead of {}",
                    attempt["url"], want.url
                ));
            }
            let summary = verdict["summary"].as_str().unwrap_or("");
            if !summary.contains(want.words) {
                return Err(format!("summary `{summary}` lacks `{}`", want.words));
            }
            let advice = verdict["advice"][0].as_str().unwrap_or("");
            if !advice.contains(want.advice) {
                return Err(format!("advice `{advice}` lacks `{}`", want.advice));
            }
            // Every candidate of the last address is accounted for in one line.
            let lines = verdict["candidates"].as_array().map_or(0, Vec::len);
            if lines < 2 {
                return Err(format!("{lines} candidate lines"));
            }
            Ok(())
        })();
        if let Err(e) = found {
            failures.push(format!("{fault:?}: {e}\n{:#}", report["verdict"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `-v` shows the HTTP exchanges without credentials; `--report` writes the hand-on
/// report (verdict first, timed steps, the same evidence) as Markdown and as HTML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_evidence_and_the_hand_on_report() {
    let lab = Lab::start(Some(Breakage::TenantPasswordDiffers)).await;
    let md = lab.dir.path().join("probe-report.md");
    let html = lab.dir.path().join("probe-report.html");
    let (code, text) = lab
        .probe(
            &[
                "-v",
                "--report",
                md.to_str().unwrap(),
                "--password",
                "bob-lab-pw",
                "bob@contoso.lab",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 1, "{text}");
    for evidence in [
        "> POST /autodiscover/autodiscover.xml without Authorization",
        "> |     <EMailAddress>bob@contoso.lab</EMailAddress>",
        "< HTTP 401",
        "< WWW-Authenticate: NTLM",
        "< WWW-Authenticate: Basic realm=\"autodiscover-s.lab\"",
        "> POST /autodiscover/autodiscover.xml with Authorization: NTLM (credentials not shown)",
        "> POST /autodiscover/autodiscover.xml with Authorization: Basic (credentials not shown)",
        "< content-type: text/xml",
        "< |       <RedirectAddr>bob@contoso.mail.onmicrosoft.lab</RedirectAddr>",
        "chain[0]: CN=autodiscover.contoso.lab",
        "certificate name matches autodiscover.contoso.lab (SAN autodiscover.contoso.lab)",
    ] {
        assert!(text.contains(evidence), "`{evidence}` missing:\n{text}");
    }
    // Basic credentials are base64 of user:password; neither form may appear.
    assert!(
        !text.contains("Ym9iQGNvbnRvc28ubGFiOmJvYi1sYWItcHc"),
        "{text}"
    );
    let report = std::fs::read_to_string(&md).unwrap();
    let verdict = report.find("## Verdict: FAIL").expect("verdict heading");
    let steps = report.find("## Steps").expect("steps heading");
    assert!(verdict < steps, "{report}");
    assert!(report.contains("password hash sync"), "{report}");
    assert!(
        report.contains("- **FAIL** 6.10 credentials for bob@contoso.lab rejected"),
        "{report}"
    );
    assert!(report.contains("< WWW-Authenticate: Basic"), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("- **PASS** 1.1 ") && l.contains(" ms (")),
        "steps carry their time: {report}"
    );
    assert!(!report.contains("lab-pw"));

    let (code, json) = lab
        .probe_json(
            &[
                "--report",
                html.to_str().unwrap(),
                "--password",
                "bob-lab-pw",
                "bob@contoso.lab",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 1);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(
        page.contains("<h2>Verdict: <span class=\"FAIL\">FAIL</span></h2>"),
        "{page}"
    );
    assert!(page.contains("password hash sync"), "{page}");
    // The JSON keeps its shape and gains the timings and the verdict's lines.
    assert!(
        json["attempts"][0]["steps"][0]["at_ms"].is_u64(),
        "{json:#}"
    );
    assert!(json["attempts"][0]["started_ms"].is_u64());
    assert!(json["verdict"]["candidates"].as_array().unwrap().len() >= 2);
    assert_eq!(json["verdict"]["failing_kind"], "authentication");

    let bad = lab.dir.path().join("report.txt");
    let (code, _) = lab
        .probe(&["--report", bad.to_str().unwrap(), "bob@contoso.lab"], &[])
        .await;
    assert_eq!(code, 1);
    lab.running.stop().await;
}

/// The lab's DNS mode: `lab up` answers the lab's names from its zone files
/// (hickory-server), and the probe asks it (`--dns-server`) with a ports-only map: CNAME
/// chains show, the bare routing domain has no address, and with the autodiscover name
/// missing the SRV record leads to the on-premises server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_mode_resolves_cnames_and_srv_from_the_labs_own_zones() {
    for breakage in [None, Some(Breakage::MissingAutodiscoverName)] {
        let lab = Lab::start(breakage).await;
        let (code, report) = lab.probe_dns_mode("alice").await;
        let steps = |n: usize| attempts(&report)[n]["steps"].as_array().unwrap().clone();
        assert_eq!(code, 0, "{breakage:?}: {report:#}");
        match breakage {
            None => {
                let dns_step = &steps(1)[0];
                assert_eq!(
                    dns_step["title"],
                    "autodiscover.contoso.lab resolves (A/AAAA)"
                );
                let details: Vec<&str> = dns_step["details"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_str().unwrap())
                    .collect();
                assert!(
                    details.contains(&"CNAME autodiscover.contoso.lab. -> mail.contoso.lab."),
                    "{details:?}"
                );
                assert!(details.contains(&"A    127.0.0.1"), "{details:?}");
                assert_eq!(
                    report["obtained"]["url"],
                    "https://autodiscover.contoso.lab/autodiscover/autodiscover.xml"
                );
            }
            Some(_) => {
                let title = steps(1)[0]["title"].as_str().unwrap().to_string();
                assert!(title.contains("autodiscover.contoso.lab does not resolve (A/AAAA): no such name (NXDOMAIN)"), "{title}");
                let srv = attempts(&report)
                    .iter()
                    .find(|a| a["method"] == "srv")
                    .unwrap();
                let lookup = &srv["steps"][0];
                assert_eq!(lookup["status"], "pass", "{srv:#}");
                assert!(
                    lookup["details"][0]
                        .as_str()
                        .unwrap()
                        .contains("0 0 443 mail.contoso.lab"),
                    "{lookup:#}"
                );
                assert_eq!(
                    report["obtained"]["url"],
                    "https://mail.contoso.lab/autodiscover/autodiscover.xml"
                );
            }
        }
        lab.running.stop().await;
    }
    // The migrated user: the bare routing domain has no address, its autodiscover name is
    // a CNAME to the tenant, and the journey still ends in Exchange Online.
    let lab = Lab::start(None).await;
    let (code, report) = lab.probe_dns_mode("bob").await;
    assert_eq!(code, 0, "{report:#}");
    let a = attempts(&report);
    assert!(
        a[2]["steps"][0]["title"]
            .as_str()
            .unwrap()
            .contains("contoso.mail.onmicrosoft.lab does not resolve"),
        "{:#}",
        a[2]
    );
    assert!(a[3]["steps"][0]["details"].as_array().unwrap().iter().any(|d| d == "CNAME autodiscover.contoso.mail.onmicrosoft.lab. -> autodiscover-s.lab."), "{:#}", a[3]);
    assert_eq!(report["obtained"]["settings"]["microsoft_online"], true);
    lab.running.stop().await;
}

/// `--check-urls`: after settings, each service URL they name gets TLS and an
/// unauthenticated GET. The lab serves Autodiscover only, so the URLs answer 404, and
/// the probe says so for each (the journey itself still succeeds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_urls_tries_every_service_url_and_names_those_that_do_not_answer() {
    let args = [
        "--check-urls",
        "--password",
        "alice-lab-pw",
        "alice@contoso.lab",
    ];
    // The lab's servers answer the service URLs like an Exchange front end: every one
    // asks for credentials, so every check passes.
    let lab = Lab::start(None).await;
    let (code, report) = lab.probe_json(&args, &[]).await;
    assert_eq!(code, 0, "{report:#}");
    let checks = report["service_checks"].as_array().expect("service checks");
    let urls: Vec<&str> = checks.iter().map(|c| c["url"].as_str().unwrap()).collect();
    assert!(
        urls.contains(&"https://mail.contoso.lab/EWS/Exchange.asmx"),
        "{urls:?}"
    );
    assert!(
        urls.iter()
            .any(|u| u.starts_with("https://mail.contoso.lab/mapi/emsmdb/")),
        "{urls:?}"
    );
    let journey = attempts(&report).len() as u64;
    for (i, c) in checks.iter().enumerate() {
        assert_eq!(c["method"], "service_url");
        assert_eq!(
            c["number"].as_u64().unwrap(),
            journey + 1 + i as u64,
            "numbered after the journey"
        );
        assert!(has(c, "certificate_name", "pass"), "{c:#}");
        assert!(has(c, "certificate_chain", "pass"), "{c:#}");
        assert_eq!(c["outcome"]["result"], "service_answers", "{c:#}");
        let last = c["steps"].as_array().unwrap().last().unwrap();
        assert_eq!(last["status"], "pass", "{c:#}");
        let title = last["title"].as_str().unwrap();
        assert!(
            title.contains("HTTP 401: the service asks for credentials (")
                && title.contains("Basic"),
            "{last:#}"
        );
    }
    assert_eq!(report["verdict"]["success"], true);
    assert!(
        report["verdict"]["advice"].as_array().is_none_or(|a| a
            .iter()
            .all(|a| !a.as_str().unwrap().contains("does not work"))),
        "{report:#}"
    );
    lab.running.stop().await;

    // Switched off on the on-premises side, the same URLs find nothing published there:
    // each check fails and the advice names each URL.
    let lab = Lab::start_edited(None, SystemTime::now(), |dir| {
        let config = dir.join("onprem/autodiscoverd.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains("emulate_service_endpoints = true"));
        std::fs::write(
            &config,
            text.replace(
                "emulate_service_endpoints = true",
                "emulate_service_endpoints = false",
            ),
        )
        .unwrap();
    })
    .await;
    let (code, report) = lab.probe_json(&args, &[]).await;
    assert_eq!(code, 0, "{report:#}");
    let checks = report["service_checks"].as_array().expect("service checks");
    assert!(!checks.is_empty());
    for c in checks {
        let last = c["steps"].as_array().unwrap().last().unwrap();
        assert_eq!(last["status"], "fail", "{c:#}");
        assert!(
            last["title"]
                .as_str()
                .unwrap()
                .contains("HTTP 404: nothing is published at this URL"),
            "{last:#}"
        );
    }
    let advice: Vec<&str> = report["verdict"]["advice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(advice.len(), checks.len(), "{advice:?}");
    assert!(
        advice[0].starts_with(
            "https://mail.contoso.lab/EWS/Exchange.asmx (from the settings) does not work"
        ),
        "{advice:?}"
    );
    assert_eq!(report["verdict"]["success"], true);

    let (_, text) = lab.probe(&args, &[]).await;
    assert!(
        text.contains("service URL check for alice@contoso.lab"),
        "{text}"
    );
    assert!(
        text.contains("EWS: GET /EWS/Exchange.asmx (no credentials): HTTP 404"),
        "{text}"
    );
    lab.running.stop().await;
}

/// The request modes: the mobilesync schema an ActiveSync phone sends (through the
/// hybrid redirect to the tenant's ActiveSync URL, which `--check-urls` then tries), and
/// an Outlook request by legacy DN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mobilesync_and_legacy_dn_request_modes() {
    let lab = Lab::start(None).await;
    let (code, report) = lab
        .probe_json(
            &[
                "--protocol",
                "mobilesync",
                "--check-urls",
                "--password",
                "bob-lab-pw",
                "bob@contoso.lab",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["protocol"], "mobilesync");
    assert_eq!(
        attempts(&report)[1]["outcome"]["address"],
        "bob@contoso.mail.onmicrosoft.lab"
    );
    let settings = &report["obtained"]["settings"];
    assert_eq!(
        settings["user_settings"]["MobileSyncUrl"],
        "https://outlook.lab/Microsoft-Server-ActiveSync"
    );
    assert_eq!(
        report["service_checks"][0]["url"],
        "https://outlook.lab/Microsoft-Server-ActiveSync"
    );
    assert!(report["service_checks"][0]["steps"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["title"]
        .as_str()
        .unwrap()
        .starts_with("ActiveSync: GET /Microsoft-Server-ActiveSync"));

    let dn = autodiscoverd::lab::files::onprem_legacy_dn(&lab.spec, &autodiscoverd::lab::USERS[0]);
    let (code, text) = lab
        .probe(
            &[
                "-v",
                "--legacy-dn",
                &dn,
                "--password",
                "alice-lab-pw",
                "alice@contoso.lab",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("> |     <LegacyDN>{dn}</LegacyDN>")),
        "{text}"
    );
    assert!(
        !text.contains("<EMailAddress>alice@contoso.lab</EMailAddress>"),
        "{text}"
    );
    assert!(
        text.contains("Verdict: PASS settings obtained for alice@contoso.lab"),
        "{text}"
    );
    assert!(
        text.contains(&format!("< |       <LegacyDN>{dn}</LegacyDN>")),
        "{text}"
    );
    lab.running.stop().await;
}

/// A certificate within 30 days of its end still works, and the probe warns about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_about_to_expire_is_a_warning() {
    // Lab certificates last 397 days: issued 380 days ago, they have 16 or 17 days left.
    let issued = SystemTime::now() - std::time::Duration::from_secs(380 * 86_400);
    let lab = Lab::start_at(None, issued).await;
    let (code, report) = lab
        .probe_json(&["--password", "alice-lab-pw", "alice@contoso.lab"], &[])
        .await;
    assert_eq!(code, 0, "{report:#}");
    let a = &attempts(&report)[1];
    assert!(has(a, "certificate_dates", "warn"), "{a:#}");
    let step = a["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "certificate_dates")
        .unwrap();
    let title = step["title"].as_str().unwrap();
    assert!(title.starts_with("certificate expires in 1"), "{title}");
    assert!(title.ends_with("renew it soon"), "{title}");
    lab.running.stop().await;
}

/// A DNS server that never answers (a lab name asked of DNS that drops the query): the
/// probe waits once, not for every name, and advises the lab's name map.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_that_does_not_answer_costs_one_wait_and_the_advice_is_the_name_map() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    // TCP on the same port accepts nothing either (the kernel queues, nobody answers).
    let _tcp = std::net::TcpListener::bind(addr).unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
        .args(["probe", "--json", "--timeout", "1", "--dns-server"])
        .arg(addr.to_string())
        .args(["--password", "x", "alice@contoso.lab"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let titles: Vec<String> = attempts(&report)
        .iter()
        .map(|a| a["steps"][0]["title"].as_str().unwrap().to_string())
        .collect();
    assert!(titles[0].contains("DNS timed out"), "{titles:#?}");
    assert!(
        titles[1..].iter().all(|t| t.contains("not asked again")),
        "{titles:#?}"
    );
    assert!(took < std::time::Duration::from_secs(8), "{took:?}");
    let advice = report["verdict"]["advice"][0].as_str().unwrap();
    assert!(advice.contains("--map DIR/curl.conf --no-dns"), "{advice}");
    drop(udp);
}

#[tokio::test]
async fn an_hma_lab_issues_tokens_that_the_on_premises_side_accepts() {
    let lab = Lab::start_spec(
        LabSpec {
            hma: true,
            ..LabSpec::default()
        },
        SystemTime::now(),
        |_| {},
    )
    .await;
    let issuer = lab.running.issuer.expect("an --hma lab runs its issuer");
    let tenant = lab.spec.tenant_id();
    // A token the way a client gets one: the password grant at the lab's token endpoint.
    let token_url = format!(
        "https://localhost:{}/{tenant}/oauth2/v2.0/token",
        issuer.port()
    );
    let ca = lab.ca();
    // curl runs beside the runtime that serves the issuer.
    let post = |scope: &'static str| {
        let (ca, url) = (ca.clone(), token_url.clone());
        tokio::task::spawn_blocking(move || {
            let out = Command::new("curl")
                .args(["-s", "--max-time", "20", "--cacert"])
                .arg(ca)
                .args([
                    "-d",
                    "grant_type=password",
                    "-d",
                    "username=alice@contoso.lab",
                    "-d",
                    "password=alice-lab-pw",
                    "-d",
                    scope,
                    &url,
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let text = post("scope=https://autodiscover.contoso.lab/.default offline_access")
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let token = answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    // An origin that is not registered: Entra's AADSTS500011.
    let text = post("scope=https://mail.contoso.lab/.default")
        .await
        .unwrap();
    assert!(text.contains("AADSTS500011"), "{text}");
    // The probe sees the Bearer challenge and signs in with the token.
    let file = lab.dir.path().join("token");
    std::fs::write(&file, token).unwrap();
    let (code, report) = lab
        .probe_json(
            &["--bearer", &file.display().to_string(), "alice@contoso.lab"],
            &[],
        )
        .await;
    let titles: Vec<String> = attempts(&report)
        .iter()
        .flat_map(|a| a["steps"].as_array().unwrap().iter())
        .map(|s| format!("{} {}", s["status"], s["title"]))
        .collect();
    assert_eq!(code, 0, "{titles:#?}");
    assert!(
        titles
            .iter()
            .any(|t| t.contains("modern authentication (HMA) offered") && t.contains(&tenant)),
        "{titles:#?}"
    );
    assert!(
        titles
            .iter()
            .any(|t| t.contains("the --bearer token (Bearer)")),
        "{titles:#?}"
    );
}
