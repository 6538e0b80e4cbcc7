//! Basic authentication verified by the domain controller (LDAP simple bind over LDAPS),
//! and the hybrid decision from AD's Exchange attributes.

use crate::dc::{ALICE_PASSWORD, BOB_PASSWORD};
use crate::{ask, daemon, element, Dc};

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn alice_gets_settings_and_bob_gets_redirect_addr() {
    let Some(dc) = Dc::shared().await else { return };
    let d = daemon(&dc, &|_| {});
    let (status, body) = ask(&d, "alice@contoso.com", ALICE_PASSWORD, "alice@contoso.com").await;
    assert_eq!(status, 200, "{body}\n{}", d.log_text());
    assert_eq!(
        element(&body, "Action").as_deref(),
        Some("settings"),
        "{body}"
    );
    assert_eq!(
        element(&body, "AutoDiscoverSMTPAddress").as_deref(),
        Some("alice@contoso.com")
    );
    // msExchMailboxGuid as AD stores it (.NET byte order), read over LDAPS.
    assert!(
        body.contains("9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64@contoso.com"),
        "{body}"
    );
    let (status, body) = ask(&d, "CONTOSO\\bob", BOB_PASSWORD, "bob@contoso.com").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        element(&body, "Action").as_deref(),
        Some("redirectAddr"),
        "{body}"
    );
    assert_eq!(
        element(&body, "RedirectAddr").as_deref(),
        Some("bob@contoso.mail.onmicrosoft.com")
    );
}
