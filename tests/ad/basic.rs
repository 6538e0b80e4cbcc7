//! Basic authentication verified by the domain controller (LDAP simple bind over LDAPS),
//! the hybrid decision from AD's Exchange attributes, every login spelling AD accepts,
//! accounts AD refuses, and a DC outage.

use std::time::{Duration, Instant};

use crate::dc::ALICE_PASSWORD;
use crate::{ask, assert_alice_and_bob, daemon, element, Dc};

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn alice_gets_settings_and_bob_gets_redirect_addr() {
    let Some(dc) = Dc::shared().await else { return };
    let d = daemon(&dc, &|_| {});
    assert_alice_and_bob(&d).await;
    // msExchMailboxGuid as AD stores it (.NET byte order), read over LDAPS.
    let (_, body) = ask(&d, "alice", ALICE_PASSWORD, "alice@contoso.com").await;
    assert!(
        body.contains("9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64@contoso.com"),
        "{body}"
    );
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn every_login_spelling_ad_accepts_logs_in() {
    let Some(dc) = Dc::shared().await else { return };
    // An account whose explicit UPN differs from sAMAccountName@dnsdomain: AD accepts both
    // (the second is its implicit UPN), and the down-level and bare names.
    let dn = dc.create_user("dora", "Dora-Pass!123");
    dc.modify(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: userPrincipalName\nuserPrincipalName: dora.explorer@contoso.com\n"
    ));
    let d = daemon(&dc, &|_| {});
    for login in [
        "alice@contoso.com",
        "ALICE@CONTOSO.COM",
        "CONTOSO\\alice",
        "contoso\\Alice",
        "contoso.com\\alice",
        "alice",
    ] {
        let (status, body) = ask(&d, login, ALICE_PASSWORD, "alice@contoso.com").await;
        assert_eq!(status, 200, "{login}: {body}\n{}", d.log_text());
        assert_eq!(
            element(&body, "Action").as_deref(),
            Some("settings"),
            "{login}"
        );
    }
    for login in [
        "dora.explorer@contoso.com",
        "dora@contoso.com",
        "CONTOSO\\dora",
        "dora",
    ] {
        let (status, body) = ask(&d, login, "Dora-Pass!123", "dora@contoso.com").await;
        assert_eq!(status, 200, "{login}: {body}\n{}", d.log_text());
        assert_eq!(
            element(&body, "Action").as_deref(),
            Some("settings"),
            "{login}"
        );
    }
    // Names AD would not accept for this domain.
    for login in ["FABRIKAM\\alice", "alice@fabrikam.com", "dora@fabrikam.com"] {
        let (status, _) = ask(&d, login, ALICE_PASSWORD, "alice@contoso.com").await;
        assert_eq!(status, 401, "{login}");
    }
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn disabled_expired_and_locked_accounts_are_refused() {
    let Some(dc) = Dc::shared().await else { return };
    const PW: &str = "Right-Pass!123";
    let disabled = dc.create_user("dis", PW);
    dc.samba_tool(&["user", "disable", "dis"]);
    let expired = dc.create_user("exp", PW);
    // accountExpires in 2012 (100 ns intervals since 1601).
    dc.modify(&format!(
        "dn: {expired}\nchangetype: modify\nreplace: accountExpires\naccountExpires: 129000000000000000\n"
    ));
    let locked = dc.create_user("lck", PW);
    // Five wrong passwords at the DC itself lock it (the lab's threshold is 5).
    for _ in 0..5 {
        assert!(!dc.ldap_bind_works("CONTOSO\\lck", "wrong"));
    }
    assert!(dc.number(&locked, "lockoutTime") > 0, "lck is not locked");
    assert!(!dc.ldap_bind_works("CONTOSO\\lck", PW), "locked");
    let d = daemon(&dc, &|_| {});
    for (user, dn) in [("dis", &disabled), ("exp", &expired), ("lck", &locked)] {
        for login in [format!("{user}@contoso.com"), format!("CONTOSO\\{user}")] {
            let (status, body) = ask(&d, &login, PW, &format!("{user}@contoso.com")).await;
            assert_eq!(status, 401, "{login} ({dn}): {body}");
        }
    }
    // A live account next to them works (the refusals are the accounts', not an outage).
    let (status, _) = ask(&d, "alice", ALICE_PASSWORD, "alice@contoso.com").await;
    assert_eq!(status, 200);
    assert!(!d.log_text().contains(PW), "a password in the log");
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn dc_outage_gets_error_603_in_time_and_recovers_without_restart() {
    let Some(dc) = Dc::exclusive().await else {
        return;
    };
    let d = daemon(&dc, &|t| {
        crate::harness::set(t, &["directory", "ldap", "timeout_ms"], 4000.into());
        crate::harness::set(t, &["directory", "ldap", "connect_timeout_ms"], 2000.into());
    });
    let (status, _) = ask(&d, "alice", ALICE_PASSWORD, "alice@contoso.com").await;
    assert_eq!(status, 200, "{}", d.log_text());
    dc.stop();
    let started = Instant::now();
    let (status, body) = ask(&d, "alice", ALICE_PASSWORD, "alice@contoso.com").await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        element(&body, "ErrorCode").as_deref(),
        Some("603"),
        "{body}"
    );
    assert!(took < Duration::from_secs(5), "603 after {took:?}");
    eprintln!("DC down: Error 603 after {} ms", took.as_millis());
    dc.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ask(&d, "alice", ALICE_PASSWORD, "alice@contoso.com").await;
        if status == 200 && element(&body, "Action").as_deref() == Some("settings") {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {status} {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let recovered = d.wait_event(Duration::from_secs(10), |e| {
        e["message"] == "LDAP directory reachable again"
    });
    assert!(recovered.is_some(), "{}", d.log_text());
}
