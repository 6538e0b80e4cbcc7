//! Active Directory behaviours a client of a real DC meets: simple binds refused without
//! TLS, StartTLS, attributes with more values than one answer holds (MaxValRange), the
//! global catalog, and a service account with nothing but read rights.

use std::time::Duration;

use crate::dc::{ALICE_PASSWORD, BOB_PASSWORD, SERVICE_DN};
use crate::harness::set;
use crate::{ask, assert_alice_and_bob, daemon, element, Dc};

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn a_dc_requiring_tls_for_simple_binds_is_named_in_the_error_and_starttls_works() {
    let Some(dc) = Dc::shared().await else { return };
    let password = std::fs::read_to_string(dc.svc_password_file()).unwrap();
    let password = password.trim();
    // Plain LDAP on 389 (accepted by the configuration for a loopback lab host): the DC
    // refuses the simple bind (rc 8 strongerAuthRequired).
    let plain = daemon(&dc, &|t| {
        set(
            t,
            &["directory", "ldap", "urls"],
            toml::Value::Array(vec!["ldap://127.0.0.1:389".into()]),
        );
    });
    let (status, body) = ask(&plain, "alice", ALICE_PASSWORD, "alice@contoso.com").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        element(&body, "ErrorCode").as_deref(),
        Some("603"),
        "{body}"
    );
    let event = plain
        .wait_event(Duration::from_secs(10), |e| {
            e.to_string().contains("requires TLS for simple binds")
        })
        .unwrap_or_else(|| panic!("no TLS advice logged:\n{}", plain.log_text()));
    let advice = event.to_string();
    assert!(
        advice.contains("ldaps://") && advice.contains("starttls = true"),
        "{advice}"
    );
    let log = plain.log_text();
    assert!(
        !log.contains(password),
        "the service account's password is in the log"
    );
    assert!(
        !log.contains(ALICE_PASSWORD),
        "a user's password is in the log"
    );
    // The same port with StartTLS and the lab CA works.
    let starttls = daemon(&dc, &|t| {
        set(
            t,
            &["directory", "ldap", "urls"],
            toml::Value::Array(vec!["ldap://127.0.0.1:389".into()]),
        );
        set(t, &["directory", "ldap", "starttls"], true.into());
    });
    let (status, body) = ask(&starttls, "alice", ALICE_PASSWORD, "alice@contoso.com").await;
    assert_eq!(
        element(&body, "Action").as_deref(),
        Some("settings"),
        "{status} {body}"
    );
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn a_mailbox_with_more_addresses_than_max_val_range_is_read_completely() {
    let Some(dc) = Dc::shared().await else { return };
    const PW: &str = "Max-Pass!123";
    let dn = dc.create_user("maxi", PW);
    // 1700 secondary addresses: more than AD's MaxValRange (1500, the lab's query policy).
    let mut ldif = format!("dn: {dn}\nchangetype: modify\nadd: proxyAddresses\n");
    for i in 0..1700 {
        ldif.push_str(&format!("proxyAddresses: smtp:maxi.{i}@contoso.com\n"));
    }
    dc.modify(&ldif);
    assert_eq!(dc.attribute(&dn, "proxyAddresses").len(), 1701);
    // lookup_policy = "self": maxi may only discover her own addresses, so the last ones
    // are answered only if every value was read.
    let d = daemon(&dc, &|t| set(t, &["auth", "lookup_policy"], "self".into()));
    for address in [
        "maxi.1699@contoso.com",
        "maxi.1500@contoso.com",
        "maxi.0@contoso.com",
    ] {
        let (status, body) = ask(&d, "maxi", PW, address).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            element(&body, "Action").as_deref(),
            Some("settings"),
            "{address}: {body}"
        );
        assert_eq!(
            element(&body, "AutoDiscoverSMTPAddress").as_deref(),
            Some("maxi@contoso.com")
        );
    }
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn the_global_catalog_answers_for_the_forest() {
    let Some(dc) = Dc::shared().await else { return };
    // ldaps to the global catalog (3269), searching the whole forest (empty base DN).
    let d = daemon(&dc, &|t| {
        set(
            t,
            &["directory", "ldap", "urls"],
            toml::Value::Array(vec!["ldaps://127.0.0.1:3269".into()]),
        );
        set(t, &["directory", "ldap", "base_dn"], "".into());
        set(t, &["throttle", "lockout_threshold"], 5.into());
    });
    assert_alice_and_bob(&d).await;
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn the_service_account_is_an_ordinary_domain_user() {
    let Some(dc) = Dc::shared().await else { return };
    // Everything above ran with this account: it is in no group but Domain Users (its
    // primary group, not listed in memberOf), and holds no delegated rights.
    assert!(dc.attribute(SERVICE_DN, "memberOf").is_empty());
    assert_eq!(dc.number(SERVICE_DN, "primaryGroupID"), 513, "Domain Users");
    assert_eq!(dc.number(SERVICE_DN, "adminCount"), 0);
    let d = daemon(&dc, &|_| {});
    let (status, body) = ask(&d, "bob", BOB_PASSWORD, "alice@contoso.com").await;
    assert_eq!(status, 200);
    assert_eq!(
        element(&body, "Action").as_deref(),
        Some("settings"),
        "{body}"
    );
}
