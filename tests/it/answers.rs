//! Rendered POX answers are cached per configuration generation (`src/server/endpoints/answers.rs`):
//! a reload, other client capabilities or another mailbox never get a stale or foreign
//! document. On the real binary (SIGHUP).

use std::time::Duration;

use rustix::process::Signal;

use crate::harness::daemon::Daemon;
use crate::harness::{outlook_request, TlsClient};

const PATH: &str = "/autodiscover/autodiscover.xml";
const WAIT: Duration = Duration::from_secs(20);
const ALICE: (&str, &str, &str) = ("alice@contoso.com", "alice-pw", "alice@contoso.com");
/// A shared mailbox (another recipient) asking for its own primary address.
const CAROL: (&str, &str, &str) = ("carol@contoso.com", "carol-pw", "carol.jones@contoso.com");

/// The Types of the `Protocol` elements and every `EwsUrl` of a settings answer.
async fn settings(
    c: &mut TlsClient,
    (user, password, address): (&str, &str, &str),
    extra: &[(&str, &str)],
) -> (Vec<String>, Vec<String>, String) {
    let a = c
        .post_basic(PATH, user, password, extra, &outlook_request(address))
        .await;
    assert_eq!(a.status, 200);
    let text = a.text();
    let doc = roxmltree::Document::parse(&text).expect("XML answer");
    let texts = |tag: &str| -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name(tag))
            .filter_map(|n| n.text().map(str::to_string))
            .collect()
    };
    let types = doc
        .descendants()
        .filter(|n| n.has_tag_name("Protocol"))
        .filter_map(|n| {
            n.attribute("Type").map(str::to_string).or_else(|| {
                n.children()
                    .find(|c| c.has_tag_name("Type"))?
                    .text()
                    .map(str::to_string)
            })
        })
        .collect();
    let smtp = texts("AutoDiscoverSMTPAddress").concat();
    (types, texts("EwsUrl"), smtp)
}

#[tokio::test]
async fn cached_answers_follow_caps_users_and_a_configuration_reload() {
    let d = Daemon::start(&|_| {});
    let https = d.addr("https");
    let mut c = TlsClient::connect(https, "autodiscover.contoso.com", &d.pki).await;

    // Same user, other capabilities: each request gets the document for its own caps,
    // also when asked again (served from the cache).
    let mapi = [("X-MapiHttpCapability", "1")];
    for _ in 0..2 {
        let (plain, ews, _) = settings(&mut c, ALICE, &[]).await;
        assert!(!plain.iter().any(|t| t == "mapiHttp"), "{plain:?}");
        assert!(plain.iter().any(|t| t == "EXCH"), "{plain:?}");
        assert!(
            ews.iter()
                .all(|u| u == "https://mail.contoso.com/EWS/Exchange.asmx"),
            "{ews:?}"
        );
        let (with_mapi, _, _) = settings(&mut c, ALICE, &mapi).await;
        assert!(with_mapi.iter().any(|t| t == "mapiHttp"), "{with_mapi:?}");
    }
    // Another mailbox with the same caps gets its own document.
    let (_, _, smtp) = settings(&mut c, CAROL, &[]).await;
    let (_, _, alice) = settings(&mut c, ALICE, &[]).await;
    assert_eq!(alice, "alice@contoso.com");
    assert_eq!(smtp, "carol.jones@contoso.com");

    // A reload with another EWS URL: the next connection gets the new document at once
    // (well within the cache's lifetime), not the cached one.
    let good = std::fs::read_to_string(&d.config_path).unwrap();
    let moved = good.replace(
        "https://mail.contoso.com/EWS/Exchange.asmx",
        "https://ews.contoso.com/EWS/Exchange.asmx",
    );
    assert_ne!(good, moved, "the EWS URL is in the test configuration");
    std::fs::write(&d.config_path, moved).unwrap();
    d.signal(Signal::HUP);
    d.wait_event(WAIT, |e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("reloaded configuration"))
    })
    .unwrap_or_else(|| panic!("no reload logged:\n{}", d.log_text()));
    let mut c = TlsClient::connect(https, "autodiscover.contoso.com", &d.pki).await;
    let (_, ews, _) = settings(&mut c, ALICE, &[]).await;
    assert!(!ews.is_empty());
    assert!(
        ews.iter()
            .all(|u| u == "https://ews.contoso.com/EWS/Exchange.asmx"),
        "{ews:?}"
    );
}
