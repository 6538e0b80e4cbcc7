//! Negotiate with Kerberos against the lab DC's KDC: real tickets from `kinit`, real clients
//! (curl --negotiate, pyspnego over python-gssapi), the keytab the lab exported for
//! `HTTP/autodiscover.contoso.com`. No password reaches autodiscoverd.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;

use crate::dc::{ALICE_PASSWORD, BOB_PASSWORD};
use crate::harness::daemon::Daemon;
use crate::harness::{outlook_request, set};
use crate::{client, daemon, element, Dc, PATH};

const SPN: &str = "HTTP/autodiscover.contoso.com";

/// Whether this build can accept Kerberos; outside CI a build without it skips, loudly.
fn kerberos_build() -> bool {
    if cfg!(feature = "kerberos") {
        return true;
    }
    let reason = "autodiscoverd was built without the `kerberos` feature (bash tests/ad/run.sh --features kerberos)";
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{reason}");
    }
    eprintln!("\n*** SKIPPED: this Kerberos test did not run: {reason}. ***\n");
    false
}

/// `[auth.kerberos]` with `keytab`, Basic and NTLM off: only a ticket can log in.
fn with_kerberos(table: &mut toml::Table, keytab: &Path, extra: &[(&str, toml::Value)]) {
    set(table, &["auth", "basic"], false.into());
    set(
        table,
        &["auth", "kerberos", "keytab"],
        keytab.display().to_string().into(),
    );
    set(
        table,
        &["auth", "kerberos", "service_principals"],
        toml::Value::Array(vec![SPN.into()]),
    );
    for (key, value) in extra {
        set(table, &["auth", "kerberos", key], value.clone());
    }
}

/// A credential cache with a TGT for `user`, obtained with `kinit` (password on stdin).
struct Ticket {
    _dir: tempfile::TempDir,
    ccache: PathBuf,
    krb5_conf: PathBuf,
}

impl Ticket {
    fn kinit(dc: &Dc, user: &str, password: &str) -> Ticket {
        let dir = tempfile::tempdir().unwrap();
        let ccache = dir.path().join("ccache");
        let mut child = Command::new("kinit")
            .arg(user)
            .env("KRB5_CONFIG", dc.krb5_conf())
            .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kinit (krb5-user)");
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kinit {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ticket {
            _dir: dir,
            ccache,
            krb5_conf: dc.krb5_conf(),
        }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KRB5_CONFIG", self.krb5_conf.display().to_string()),
            ("KRB5CCNAME", format!("FILE:{}", self.ccache.display())),
        ]
    }

    fn env(&self, cmd: &mut Command) {
        cmd.envs(self.vars());
    }
}

/// What curl saw.
struct Curl {
    status: u16,
    /// Response headers of every leg.
    headers: String,
    body: String,
    /// curl's trace (`-v`), with the Authorization header it sent.
    trace: String,
}

/// `curl --negotiate -u :` (no user, no password: the ticket cache) to `host`, resolved to
/// the daemon.
fn curl_negotiate(d: &Daemon, ticket: &Ticket, host: &str, address: &str) -> Curl {
    let dir = tempfile::tempdir().unwrap();
    let ca = d.pki.write_ca(dir.path());
    let port = d.addr("https").port();
    let headers = dir.path().join("headers");
    let mut cmd = Command::new("curl");
    ticket.env(&mut cmd);
    let out = cmd
        .args(["-sS", "-v", "--negotiate", "-u", ":", "--cacert"])
        .arg(&ca)
        .args(if host == "autodiscover.contoso.com" {
            vec![]
        } else {
            vec!["-k"]
        })
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(["-H", "Content-Type: text/xml", "--data-binary"])
        .arg(outlook_request(address))
        .arg("-D")
        .arg(&headers)
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://{host}:{port}{PATH}"))
        .output()
        .expect("curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", "0"));
    Curl {
        status: code.trim().parse().unwrap_or(0),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: body.to_string(),
        trace: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The token of the `Authorization: Negotiate` header curl sent.
fn sent_token(trace: &str) -> String {
    trace
        .lines()
        .find_map(|l| l.strip_prefix("> Authorization: Negotiate "))
        .expect("curl sent a Negotiate token")
        .trim()
        .to_string()
}

/// The final `WWW-Authenticate: Negotiate` token of the 200 (the AP-REP inside SPNEGO).
fn final_token(headers: &str) -> Option<Vec<u8>> {
    let last = headers.rsplit("HTTP/1.1 ").next()?;
    last.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let value = value.trim().strip_prefix("Negotiate ")?;
        name.eq_ignore_ascii_case("www-authenticate").then(|| {
            base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
        })?
    })
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn kinit_and_curl_negotiate_get_settings_and_redirect_without_a_password() {
    let Some(dc) = Dc::shared().await else { return };
    if !kerberos_build() {
        return;
    }
    let d = daemon(&dc, &|t| with_kerberos(t, &dc.http_keytab(), &[]));
    // The 401 offers Negotiate (Basic and NTLM are off here).
    assert_eq!(crate::offers(&d).await, vec!["Negotiate"]);

    let alice = Ticket::kinit(&dc, "alice", ALICE_PASSWORD);
    let r = curl_negotiate(&d, &alice, "autodiscover.contoso.com", "alice@contoso.com");
    assert_eq!(r.status, 200, "{}\n{}\n{}", r.trace, r.body, d.log_text());
    assert_eq!(element(&r.body, "Action").as_deref(), Some("settings"));
    assert!(
        r.body
            .contains("9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64@contoso.com"),
        "{}",
        r.body
    );
    // curl's token is SPNEGO (1.3.6.1.5.5.2) around a Kerberos AP-REQ, no password anywhere.
    let token = base64::engine::general_purpose::STANDARD
        .decode(sent_token(&r.trace))
        .unwrap();
    assert_eq!(&token[..2], &[0x60, 0x82]);
    assert!(!r.trace.contains(ALICE_PASSWORD));
    // Mutual authentication: the 200 carries SPNEGO accept-completed with the AP-REP.
    let answer = final_token(&r.headers).expect("a final Negotiate token in the 200");
    assert_eq!(answer[0], 0xa1, "NegTokenResp");
    assert!(
        answer
            .windows(5)
            .any(|w| w == [0xa0, 0x03, 0x0a, 0x01, 0x00]),
        "negState accept-completed"
    );
    assert!(
        answer.windows(2).any(|w| w == [0x6f, 0x81])
            || answer.windows(2).any(|w| w == [0x6f, 0x82]),
        "an AP-REP ([APPLICATION 15]) inside"
    );
    // The access line is written by the log thread a moment after the answer.
    d.wait_event(Duration::from_secs(5), |e| {
        e["target"] == "access" && e["status"] == 200
    });
    let users: Vec<String> = d
        .access_events()
        .iter()
        .filter(|e| e["status"] == 200)
        .map(|e| e["user"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(users, vec!["alice@contoso.com"]);
    crate::print_latencies(
        &d,
        "Kerberos (GSS-API acceptance, first LDAP lookup included)",
    );

    let bob = Ticket::kinit(&dc, "bob", BOB_PASSWORD);
    let r = curl_negotiate(&d, &bob, "autodiscover.contoso.com", "bob@contoso.com");
    assert_eq!(r.status, 200, "{}\n{}", r.trace, d.log_text());
    assert_eq!(element(&r.body, "Action").as_deref(), Some("redirectAddr"));
    assert_eq!(
        element(&r.body, "RedirectAddr").as_deref(),
        Some("bob@contoso.mail.onmicrosoft.com")
    );
}

/// alice logs in with a ticket from `kinit` and curl --negotiate, no password sent.
pub(crate) async fn assert_kerberos_login(dc: &Dc, d: &Daemon) {
    if !kerberos_build() {
        return;
    }
    let alice = Ticket::kinit(dc, "alice", ALICE_PASSWORD);
    let r = curl_negotiate(d, &alice, "autodiscover.contoso.com", "alice@contoso.com");
    assert_eq!(r.status, 200, "{}\n{}", r.trace, d.log_text());
    assert_eq!(element(&r.body, "Action").as_deref(), Some("settings"));
    assert!(final_token(&r.headers).is_some(), "{}", r.headers);
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn a_token_replayed_on_a_new_connection_is_refused() {
    let Some(dc) = Dc::shared().await else { return };
    if !kerberos_build() {
        return;
    }
    let d = daemon(&dc, &|t| with_kerberos(t, &dc.http_keytab(), &[]));
    let alice = Ticket::kinit(&dc, "alice", ALICE_PASSWORD);
    let r = curl_negotiate(&d, &alice, "autodiscover.contoso.com", "alice@contoso.com");
    assert_eq!(r.status, 200, "{}", d.log_text());
    let header = format!("Negotiate {}", sent_token(&r.trace));
    // The same AP-REQ again (an eavesdropper behind TLS termination would have it): MIT's
    // replay cache refuses the authenticator.
    let mut c = client(&d).await;
    let again = c
        .send(
            "POST",
            PATH,
            &[("Authorization", header.as_str())],
            outlook_request("alice@contoso.com").as_bytes(),
        )
        .await;
    assert_eq!(again.status, 401, "{}", again.text());
    let refusal = d.wait_event(Duration::from_secs(5), |e| {
        e["message"] == "Kerberos authentication failed"
    });
    let reason = refusal.map(|e| e["reason"].to_string()).unwrap_or_default();
    assert!(
        reason.to_ascii_lowercase().contains("replay"),
        "{reason}\n{}",
        d.log_text()
    );
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn tickets_for_other_services_or_realms_and_broken_tokens_are_refused() {
    let Some(dc) = Dc::shared().await else { return };
    if !kerberos_build() {
        return;
    }
    // A second SPN on another account, and a keytab that holds both services' keys while
    // the configuration accepts only HTTP/autodiscover.contoso.com.
    let other = "HTTP/other.contoso.com";
    dc.create_user("svc-other", "Other-Pass!123");
    dc.samba_tool(&["spn", "add", other, "svc-other"]);
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("both.keytab");
    std::fs::copy(dc.http_keytab(), &both).unwrap();
    dc.samba_tool(&[
        "domain",
        "exportkeytab",
        both.to_str().unwrap(),
        &format!("--principal={other}"),
    ]);
    std::fs::set_permissions(&both, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let d = daemon(&dc, &|t| with_kerberos(t, &both, &[]));
    let alice = Ticket::kinit(&dc, "alice", ALICE_PASSWORD);
    // GSS-API accepts the ticket (the key is in the keytab); the SPN list refuses it.
    let r = curl_negotiate(&d, &alice, "other.contoso.com", "alice@contoso.com");
    assert_eq!(r.status, 401, "{}\n{}", r.body, d.log_text());
    // The refusal is logged after the 401 is on its way: wait for it rather than race it.
    assert!(
        d.wait_event(Duration::from_secs(5), |e| e["reason"]
            .as_str()
            .is_some_and(
                |r| r.contains("not in auth.kerberos.service_principals")
            ))
        .is_some(),
        "{}",
        d.log_text()
    );
    // The accepted SPN still works with the same keytab.
    let r = curl_negotiate(&d, &alice, "autodiscover.contoso.com", "alice@contoso.com");
    assert_eq!(r.status, 200, "{}", d.log_text());
    let good = sent_token(&r.trace);
    drop(d);

    // A ticket for a service whose key this server lacks: GSS-API refuses it.
    let d = daemon(&dc, &|t| with_kerberos(t, &dc.http_keytab(), &[]));
    let r = curl_negotiate(&d, &alice, "other.contoso.com", "alice@contoso.com");
    assert_eq!(r.status, 401, "{}", d.log_text());
    drop(d);

    // A realm this server does not accept users from (a trusted forest's realm would be
    // listed in auth.kerberos.realms): the ticket is valid, the user is refused.
    let d = daemon(&dc, &|t| {
        with_kerberos(
            t,
            &dc.http_keytab(),
            &[("realms", toml::Value::Array(vec!["FABRIKAM.COM".into()]))],
        )
    });
    let r = curl_negotiate(&d, &alice, "autodiscover.contoso.com", "alice@contoso.com");
    assert_eq!(r.status, 401, "{}", d.log_text());
    assert!(
        d.wait_event(Duration::from_secs(5), |e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("is not accepted")))
            .is_some(),
        "{}",
        d.log_text()
    );
    drop(d);

    // Tampered, malformed and oversized tokens: 401, and the server keeps serving.
    let d = daemon(&dc, &|t| with_kerberos(t, &dc.http_keytab(), &[]));
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut tampered = b64.decode(&good).unwrap();
    let n = tampered.len();
    tampered[n - 20] ^= 0x55; // inside the authenticator's ciphertext
    let krb5_oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
    ];
    let mut truncated_krb5 = vec![0x60, 0x30];
    truncated_krb5.extend(krb5_oid);
    truncated_krb5.extend([0x01, 0x00, 0x6e, 0x82, 0xff, 0xff]);
    let mut garbage_krb5 = vec![0x60, 0x0f];
    garbage_krb5.extend(krb5_oid);
    garbage_krb5.extend([0x01, 0x00, 0x00, 0x00]);
    let mut huge = vec![0x60, 0x83, 0x00, 0xc0, 0x0b];
    huge.extend(krb5_oid);
    huge.extend(vec![0x41; 0xc000]);
    let cases: Vec<(&str, String)> = vec![
        ("tampered", b64.encode(&tampered)),
        ("truncated", b64.encode(&truncated_krb5)),
        ("garbage", b64.encode(&garbage_krb5)),
        ("oversized", b64.encode(&huge)),
        ("not base64", "!!!!".to_string()),
    ];
    for (what, token) in cases {
        let mut c = client(&d).await;
        let header = format!("Negotiate {token}");
        let a = c
            .try_send(
                "POST",
                PATH,
                &[("Authorization", header.as_str())],
                outlook_request("alice@contoso.com").as_bytes(),
            )
            .await;
        // An oversized header may also be refused by the HTTP layer (431) or close the
        // connection; never a 200 and never a crash.
        match a {
            Ok(a) => assert!(
                a.status == 401 || (what == "oversized" && a.status == 431),
                "{what}: {}",
                a.status
            ),
            Err(e) => assert_eq!(what, "oversized", "{e}"),
        }
    }
    let r = curl_negotiate(&d, &alice, "autodiscover.contoso.com", "alice@contoso.com");
    assert_eq!(r.status, 200, "still serving: {}", d.log_text());
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn pyspnego_with_kerberos_logs_in() {
    let Some(dc) = Dc::shared().await else { return };
    if !kerberos_build() {
        return;
    }
    let Some(python) = crate::harness::python::python_with(&["spnego", "gssapi", "krb5"]) else {
        return;
    };
    let d = daemon(&dc, &|t| with_kerberos(t, &dc.http_keytab(), &[]));
    let alice = Ticket::kinit(&dc, "alice", ALICE_PASSWORD);
    // SPNEGO (Negotiate) and a raw Kerberos token under the Negotiate scheme; the
    // ticket cache only, no user name or password given to the client.
    for mode in ["spnego-negotiate", "spnego-kerberos"] {
        let v = crate::interop_client(
            &python,
            &d,
            mode,
            &["--user", "", "--password", "", "--no-cbt"],
            &alice.vars(),
        );
        assert_eq!(v["status"], 200, "{mode}: {v}\n{}", d.log_text());
        // pyspnego processed the final token (mutual authentication) and is complete.
        assert_eq!(v["complete"], true, "{mode}: {v}");
        assert_eq!(
            element(v["body"].as_str().unwrap(), "Action").as_deref(),
            Some("settings")
        );
    }
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn a_kerberos_user_keeps_their_settings_while_the_dc_hangs() {
    let Some(dc) = Dc::exclusive().await else {
        return;
    };
    if !kerberos_build() {
        return;
    }
    let d = daemon(&dc, &|t| {
        with_kerberos(t, &dc.http_keytab(), &[]);
        set(t, &["directory", "ldap", "cache_ttl_secs"], 1.into());
        set(t, &["directory", "ldap", "connect_timeout_ms"], 1000.into());
        set(t, &["directory", "ldap", "timeout_ms"], 2000.into());
    });
    let ticket = Ticket::kinit(&dc, "alice@CONTOSO.COM", ALICE_PASSWORD);
    // The first request puts the service ticket in the cache: the KDC is not needed again.
    let first = curl_negotiate(&d, &ticket, "autodiscover.contoso.com", "alice@contoso.com");
    assert_eq!(first.status, 200, "{}", first.trace);
    assert_eq!(element(&first.body, "Action").as_deref(), Some("settings"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    dc.pause();
    let during = curl_negotiate(&d, &ticket, "autodiscover.contoso.com", "alice@contoso.com");
    dc.resume();
    assert_eq!(during.status, 200, "{}\n{}", during.trace, d.log_text());
    assert_eq!(
        element(&during.body, "Action").as_deref(),
        Some("settings"),
        "{}",
        during.body
    );
    let stale = d
        .access_events()
        .iter()
        .filter(|e| e["stale"] == true && e["status"] == 200)
        .count();
    assert_eq!(stale, 1, "{}", d.log_text());
}
