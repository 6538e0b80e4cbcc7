//! NTLM against Active Directory: autodiscoverd handles the NTLMSSP messages, MIC and
//! channel binding itself and hands the NTLMv2 response to the domain through winbind
//! (Samba's real `ntlm_auth --helper-protocol=ntlm-server-1`, talking to the lab DC's
//! winbindd). Real clients: curl --ntlm, requests-ntlm and pyspnego.

use std::process::Command;

use crate::dc::{ALICE_PASSWORD, BOB_PASSWORD};
use crate::harness::daemon::Daemon;
use crate::harness::{outlook_request, set};
use crate::{daemon, element, Dc, PATH};

/// NTLM on, checked through winbind; Basic off so that only NTLM can log in.
pub(crate) fn with_winbind(table: &mut toml::Table) {
    set(table, &["auth", "basic"], false.into());
    set(table, &["auth", "ntlm"], true.into());
    set(table, &["auth", "negotiate"], true.into());
    set(table, &["auth", "winbind", "helpers"], 2.into());
    set(table, &["auth", "winbind", "timeout_ms"], 5000.into());
}

/// `curl --ntlm -u USER:PASSWORD`: (status, body).
pub(crate) fn curl_ntlm(d: &Daemon, user: &str, password: &str, address: &str) -> (u16, String) {
    curl_ntlm_from(d, "127.0.0.1", user, password, address)
}

/// [`curl_ntlm`] as seen from `source` (the example trusts the loopback proxy's
/// X-Forwarded-For).
pub(crate) fn curl_ntlm_from(
    d: &Daemon,
    source: &str,
    user: &str,
    password: &str,
    address: &str,
) -> (u16, String) {
    let dir = tempfile::tempdir().unwrap();
    let ca = d.pki.write_ca(dir.path());
    let port = d.addr("https").port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--ntlm", "-u"])
        .arg(format!("{user}:{password}"))
        .arg("--cacert")
        .arg(&ca)
        .arg("--resolve")
        .arg(format!("autodiscover.contoso.com:{port}:127.0.0.1"))
        .args(["-H", "Content-Type: text/xml", "-H"])
        .arg(format!("X-Forwarded-For: {source}"))
        .arg("--data-binary")
        .arg(outlook_request(address))
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://autodiscover.contoso.com:{port}{PATH}"))
        .output()
        .expect("curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The pids of the daemon's `ntlm_auth` helpers (children of its process).
fn helper_pids(d: &Daemon) -> Vec<i32> {
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", d.pid()))
        .unwrap_or_default();
    let mut out = Vec::new();
    for pid in children
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "ntlm_auth" {
            out.push(pid);
        }
    }
    // Helpers may be children of any of the daemon's threads.
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", d.pid())) {
        for task in tasks.flatten() {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for pid in list
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "ntlm_auth" && !out.contains(&pid) {
                    out.push(pid);
                }
            }
        }
    }
    out
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn curl_ntlm_is_verified_by_the_domain_through_winbind() {
    let Some(dc) = Dc::shared().await else { return };
    let d = daemon(&dc, &with_winbind);
    // With winbind, the LDAP backend against AD offers NTLM and Negotiate again.
    let offers = crate::offers(&d).await;
    assert!(offers.contains(&"NTLM".to_string()), "{offers:?}");
    assert!(offers.contains(&"Negotiate".to_string()), "{offers:?}");

    for login in ["CONTOSO\\alice", "alice@contoso.com", "alice"] {
        let (status, body) = curl_ntlm(&d, login, ALICE_PASSWORD, "alice@contoso.com");
        assert_eq!(status, 200, "{login}: {body}\n{}", d.log_text());
        assert_eq!(
            element(&body, "Action").as_deref(),
            Some("settings"),
            "{login}"
        );
    }
    let (status, body) = curl_ntlm(&d, "CONTOSO\\bob", BOB_PASSWORD, "bob@contoso.com");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        element(&body, "RedirectAddr").as_deref(),
        Some("bob@contoso.mail.onmicrosoft.com")
    );
    crate::print_latencies(&d, "NTLM through winbind (helper start on the first)");
    // A wrong password for an account of its own: the domain's bad-password count of an
    // account is shared by every test, and alice's must stay low for the others.
    dc.create_user("wes", "Wes-Pass!123");
    let (status, _) = curl_ntlm(&d, "CONTOSO\\wes", "Wrong-Pass!1", "wes@contoso.com");
    assert_eq!(status, 401);
    assert!(
        d.wait_event(std::time::Duration::from_secs(5), |e| e["reason"]
            == "bad_credentials")
            .is_some(),
        "{}",
        d.log_text()
    );
    // The helpers are long-lived: a handful of logins did not start one per request.
    let helpers = helper_pids(&d);
    assert!(!helpers.is_empty() && helpers.len() <= 2, "{helpers:?}");
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn pyspnego_and_requests_ntlm_are_verified_through_winbind() {
    let Some(dc) = Dc::shared().await else { return };
    let Some(python) = crate::harness::python::python_with(&["spnego", "requests_ntlm"]) else {
        return;
    };
    let d = daemon(&dc, &with_winbind);
    let run = |mode: &str, user: &str, password: &str| {
        // No Kerberos ticket here: pyspnego's Negotiate falls back to its NTLM.
        let no_ticket = [("KRB5CCNAME", "FILE:/nonexistent/ccache".to_string())];
        crate::interop_client(
            &python,
            &d,
            mode,
            &["--user", user, "--password", password],
            &no_ticket,
        )
    };
    // pyspnego sends a MIC and (over TLS) a channel binding; both are checked here with the
    // session key the domain returned, and pyspnego checks our final mechListMIC.
    // Wrong passwords go to an account of its own (alice's domain count is every test's).
    dc.create_user("pip", "Pip-Pass!123");
    for mode in ["spnego-negotiate", "spnego-ntlm", "requests-ntlm"] {
        let v = run(mode, "CONTOSO\\alice", ALICE_PASSWORD);
        assert_eq!(v["status"], 200, "{mode}: {v}\n{}", d.log_text());
        assert_eq!(v["complete"], true, "{mode}: {v}");
        let v = run(mode, "CONTOSO\\pip", &format!("Wrong-Pass-{mode}"));
        assert_eq!(v["status"], 401, "{mode}: {v}");
    }
    let v = run("spnego-negotiate", "alice@contoso.com", ALICE_PASSWORD);
    assert_eq!(v["status"], 200, "UPN: {v}\n{}", d.log_text());
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn a_killed_helper_is_replaced_and_other_logins_go_on() {
    let Some(dc) = Dc::shared().await else { return };
    let d = daemon(&dc, &with_winbind);
    let (status, _) = curl_ntlm(&d, "CONTOSO\\alice", ALICE_PASSWORD, "alice@contoso.com");
    assert_eq!(status, 200, "{}", d.log_text());
    let before = helper_pids(&d);
    assert!(!before.is_empty());
    for pid in &before {
        let pid = rustix::process::Pid::from_raw(*pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    }
    // A helper found dead is replaced at once, so no login fails for it.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _) = curl_ntlm(&d, "CONTOSO\\alice", ALICE_PASSWORD, "alice@contoso.com");
        statuses.push(status);
    }
    assert_eq!(statuses, vec![200; 4], "{}", d.log_text());
    assert!(
        d.wait_event(std::time::Duration::from_secs(5), |e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("had exited")))
            .is_some(),
        "{}",
        d.log_text()
    );
    let after = helper_pids(&d);
    assert!(!after.is_empty() && after.iter().all(|p| !before.contains(p)));
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn a_hanging_helper_fails_one_login_with_503_in_time_and_is_replaced() {
    let Some(dc) = Dc::shared().await else { return };
    let d = daemon(&dc, &|t| {
        with_winbind(t);
        set(t, &["auth", "winbind", "helpers"], 1.into());
        set(t, &["auth", "winbind", "timeout_ms"], 1500.into());
    });
    let (status, _) = curl_ntlm(&d, "CONTOSO\\alice", ALICE_PASSWORD, "alice@contoso.com");
    assert_eq!(status, 200, "{}", d.log_text());
    let hung = helper_pids(&d);
    assert_eq!(hung.len(), 1, "{hung:?}");
    // The real ntlm_auth, frozen: it reads nothing and answers nothing.
    let pid = rustix::process::Pid::from_raw(hung[0]).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let started = std::time::Instant::now();
    let (status, _) = curl_ntlm(&d, "CONTOSO\\alice", ALICE_PASSWORD, "alice@contoso.com");
    let waited = started.elapsed();
    assert_eq!(status, 503, "{}", d.log_text());
    assert!(
        waited < std::time::Duration::from_millis(1500 + 3000),
        "answered after {waited:?} with a 1.5 s helper timeout"
    );
    assert!(
        d.wait_event(std::time::Duration::from_secs(5), |e| e["message"]
            == "winbind NTLM helper failed")
            .is_some(),
        "{}",
        d.log_text()
    );
    // The frozen helper is not trusted again: it is killed, and the next login gets a new
    // one and the domain's answer.
    let (status, _) = curl_ntlm(&d, "CONTOSO\\alice", ALICE_PASSWORD, "alice@contoso.com");
    assert_eq!(status, 200, "{}", d.log_text());
    let after = helper_pids(&d);
    assert!(!after.is_empty() && !after.contains(&hung[0]), "{after:?}");
    // Killed and reaped (SIGKILL ends a stopped process too).
    let gone = (0..50).any(|_| {
        let alive = std::path::Path::new(&format!("/proc/{}", hung[0])).exists();
        if alive {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        !alive
    });
    if !gone {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
    }
    assert!(gone, "the frozen helper {} is still there", hung[0]);
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn wrong_ntlm_passwords_in_every_spelling_never_lock_the_ad_account() {
    let Some(dc) = Dc::shared().await else { return };
    const PW: &str = "Nora-Pass!123";
    let dn = dc.create_user("nora", PW);
    let d = daemon(&dc, &with_winbind);
    let mut statuses = Vec::new();
    for round in 0..4 {
        for login in ["nora@contoso.com", "CONTOSO\\nora", "nora"] {
            let wrong = format!("Guess-{round}!");
            let (status, _) = curl_ntlm_from(&d, "198.51.100.9", login, &wrong, "nora@contoso.com");
            statuses.push(status);
        }
    }
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // The domain checked the NTLM response (and counted it) only while this server's share
    // of the lockout threshold lasted: the same per-account count as Basic logins.
    assert_eq!(dc.number(&dn, "badPwdCount"), 3, "{}", d.log_text());
    assert_eq!(dc.number(&dn, "lockoutTime"), 0, "the account is locked");
    assert!(
        dc.ldap_bind_works("CONTOSO\\nora", PW),
        "the owner cannot log on"
    );
}
