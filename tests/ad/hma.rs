//! Hybrid Modern Authentication against Active Directory: an Entra ID token (from the lab
//! issuer's key, given to the daemon as a static key set) names a real AD user by the
//! `objectSid` Samba gave them, and falls back to the user principal name.

use crate::harness::issuer::{lab_issuer, TENANT};
use crate::harness::{outlook_request, set};
use crate::{client, daemon, element, Dc, PATH};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn a_token_names_its_ad_user_by_the_object_sid_samba_gave_them() {
    let Some(dc) = Dc::shared().await else { return };
    let shown = dc.samba_tool(&["user", "show", "alice", "--attributes=objectSid"]);
    let sid = shown
        .lines()
        .find_map(|l| l.strip_prefix("objectSid: "))
        .unwrap_or_else(|| panic!("no objectSid in: {shown}"))
        .trim()
        .to_string();
    assert!(sid.starts_with("S-1-5-21-"), "{sid}");
    let issuer = lab_issuer();
    let keys = tempfile::tempdir().unwrap();
    let jwks = keys.path().join("entra-keys.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    let d = daemon(&dc, &|t| {
        set(t, &["auth", "bearer", "tenant_id"], TENANT.into());
        set(
            t,
            &["auth", "bearer", "jwks_file"],
            jwks.display().to_string().into(),
        );
    });
    let ask = |token: String, address: &'static str| {
        let d = &d;
        async move {
            let auth = format!("Bearer {token}");
            let a = client(d)
                .await
                .send(
                    "POST",
                    PATH,
                    &[("Authorization", &auth), ("Content-Type", "text/xml")],
                    outlook_request(address).as_bytes(),
                )
                .await;
            (a.status.as_u16(), a.text(), a.header("x-ms-diagnostics"))
        }
    };
    let origin = "https://autodiscover.contoso.com";
    // A cloud-only UPN AD does not know: only the SID can name alice.
    let token = issuer
        .mint(&issuer.user_claims(
            origin,
            "alice.cloud@contoso.onmicrosoft.com",
            Some(&sid),
            now() - 10,
            3600,
        ))
        .unwrap();
    let (status, body, diagnostics) = ask(token, "alice@contoso.com").await;
    assert_eq!(status, 200, "{diagnostics:?}\n{}", d.log_text());
    assert_eq!(element(&body, "Action").as_deref(), Some("settings"));
    assert_eq!(
        element(&body, "AutoDiscoverSMTPAddress").as_deref(),
        Some("alice@contoso.com")
    );
    // The domain's SID with a RID no account has, and an unknown UPN: refused.
    let (domain, _) = sid.rsplit_once('-').unwrap();
    let token = issuer
        .mint(&issuer.user_claims(
            origin,
            "alice.cloud@contoso.onmicrosoft.com",
            Some(&format!("{domain}-999999")),
            now() - 10,
            3600,
        ))
        .unwrap();
    let (status, _, diagnostics) = ask(token, "alice@contoso.com").await;
    assert_eq!(status, 401);
    assert!(diagnostics.unwrap_or_default().starts_with("2000007;"));
    // No onprem_sid: bob by his userPrincipalName, redirected to Exchange Online.
    let token = issuer
        .mint(&issuer.user_claims(origin, "bob@contoso.com", None, now() - 10, 3600))
        .unwrap();
    let (status, body, diagnostics) = ask(token, "bob@contoso.com").await;
    assert_eq!(status, 200, "{diagnostics:?}");
    assert_eq!(element(&body, "Action").as_deref(), Some("redirectAddr"));
}
