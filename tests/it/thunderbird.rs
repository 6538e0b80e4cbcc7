//! Thunderbird, proven with its own code: the account-setup modules of Debian's
//! `thunderbird` package (readFromXML, FetchConfig, FetchHTTP, ExchangeAutoDiscover,
//! FindConfig, AccountConfig, InputSanitizer, JXON) run under Node against the real server
//! (tests/thunderbird/run.mjs; stand-ins only for DNS, sockets' name resolution, OAuth2
//! prompts, port probing and Gecko's globals). Which version ran is printed and recorded in
//! docs/clients.md.

use serde_json::{json, Value};

use crate::clients::reveal;
use crate::harness::thunderbird::{run_thunderbird, thunderbird_modules};
use crate::harness::{set, TestServer, Tweak};

const NAMES: [&str; 4] = [
    "autodiscover.contoso.com",
    "autoconfig.contoso.com",
    "contoso.com",
    "localhost",
];

/// Every name Thunderbird tries for contoso.com, on this server's listeners.
fn contoso(server: &TestServer) -> Value {
    let https = server.https.port();
    let http = server.redirect.unwrap().port();
    json!({
        "autoconfig.contoso.com:443": https,
        "contoso.com:443": https,
        "autodiscover.contoso.com:443": https,
        "autoconfig.contoso.com:80": http,
        "contoso.com:80": http,
        "autodiscover.contoso.com:80": http,
    })
}

fn ok(line: &Value) -> &Value {
    assert_eq!(line["ok"], true, "{line}");
    &line["config"]
}

/// (type, hostname, port, socketType, auth, username) of one server of an AccountConfig.
fn mail_server(s: &Value) -> [String; 6] {
    ["type", "hostname", "port", "socketType", "auth", "username"].map(|k| match &s[k] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    })
}

fn row(fields: [&str; 6]) -> [String; 6] {
    fields.map(str::to_string)
}

/// (method, url, status) of each request Thunderbird made.
fn wire(line: &Value) -> Vec<(String, String, String)> {
    line["wire"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["url"].as_str().unwrap().to_string(),
                r.get("status")
                    .map(|s| s.to_string())
                    .or_else(|| r.get("result").map(|s| s.to_string()))
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Thunderbird's code against a server of the example configuration changed by `tweak`;
/// `None` when it cannot run here (see `thunderbird_modules`).
async fn run_against(tweak: Tweak<'_>, cases: &[Value]) -> Option<Vec<Value>> {
    let tb = thunderbird_modules()?;
    let server = TestServer::start_named(&NAMES, tweak).await;
    Some(run_thunderbird(&tb, &[&server], contoso(&server), json!({}), cases).await)
}

#[tokio::test]
async fn thunderbird_reads_the_exchange_domain_answer_for_every_address() {
    let addresses = ["alice@contoso.com", "ida@contoso.com", "bob@contoso.com"];
    let cases: Vec<Value> = addresses.iter().map(|a| json!({ "isp": a })).collect();
    let Some(lines) = run_against(&|_| {}, &cases).await else {
        return;
    };
    for (address, line) in addresses.iter().zip(&lines) {
        let config = ok(line);
        assert_eq!(config["subSource"], "xml-from-isp-https", "{address}");
        assert_eq!(
            mail_server(&config["incoming"]),
            row([
                "exchange",
                "mail.contoso.com",
                "443",
                "SSL",
                "NTLM",
                "%EMAILADDRESS%"
            ]),
            "{address}"
        );
        assert_eq!(
            config["incoming"]["exchangeURL"],
            "https://mail.contoso.com/EWS/Exchange.asmx"
        );
        assert_eq!(
            config["incoming"]["owaURL"],
            "https://mail.contoso.com/owa/"
        );
        assert_eq!(
            config["incoming"]["easURL"],
            "https://mail.contoso.com/Microsoft-Server-ActiveSync"
        );
        assert_eq!(
            mail_server(&config["outgoing"]),
            row([
                "smtp",
                "mail.contoso.com",
                "587",
                "STARTTLS",
                "passwordCleartext",
                "%EMAILADDRESS%"
            ]),
            "{address}"
        );
        assert_eq!(config["complete"], true);
        // The first URL Thunderbird asks answers.
        assert_eq!(
            wire(line).first(),
            Some(&(
                "GET".to_string(),
                format!(
                    "https://autoconfig.contoso.com/mail/config-v1.1.xml?emailaddress={}",
                    address.replace('@', "%40")
                ),
                "200".to_string()
            ))
        );
    }
}

/// The control: the same answer without its `outgoingServer` (what autodiscoverd sent
/// before) is refused by Thunderbird's reader with the error users saw.
#[tokio::test]
async fn thunderbird_refuses_an_exchange_answer_without_an_smtp_server() {
    let Some(tb) = thunderbird_modules() else {
        return;
    };
    let server = TestServer::start_named(&NAMES, &|_| {}).await;
    let answer = server
        .client()
        .await
        .send(
            "GET",
            "/mail/config-v1.1.xml?emailaddress=alice%40contoso.com",
            &[],
            b"",
        )
        .await
        .text();
    let (before, rest) = answer.split_once("<outgoingServer").unwrap();
    let (_, after) = rest.split_once("</outgoingServer>").unwrap();
    let without = format!("{before}{after}");
    let cases = [json!({ "text": answer }), json!({ "text": without })];
    let lines = run_thunderbird(&tb, &[&server], json!({}), json!({}), &cases).await;
    assert_eq!(ok(&lines[0])["incoming"]["type"], "exchange");
    assert_eq!(lines[1]["ok"], false, "{}", lines[1]);
    assert_eq!(
        lines[1]["error"]["message"],
        "Need proper <outgoingServer> in XML file"
    );
}

#[tokio::test]
async fn thunderbird_reads_per_mailbox_answers_when_revealing() {
    let cases = [
        json!({"isp": "alice@contoso.com"}),
        json!({"isp": "ida.imap@contoso.com"}),
        json!({"isp": "bob@contoso.com"}),
        json!({"isp": "nobody@contoso.com"}),
    ];
    let Some(lines) = run_against(&reveal, &cases).await else {
        return;
    };
    // (incoming, outgoing) as Thunderbird set them up. Migrated bob: Exchange Online's IMAP
    // and SMTP with OAuth2, which Thunderbird accepts because its own OAuth2 provider list
    // knows those hosts.
    let expected = [
        [
            [
                "exchange",
                "mail.contoso.com",
                "443",
                "SSL",
                "NTLM",
                "alice@contoso.com",
            ],
            [
                "smtp",
                "mail.contoso.com",
                "587",
                "STARTTLS",
                "passwordCleartext",
                "alice@contoso.com",
            ],
        ],
        [
            [
                "imap",
                "imap.contoso.com",
                "993",
                "SSL",
                "passwordCleartext",
                "ida@contoso.com",
            ],
            [
                "smtp",
                "smtp.contoso.com",
                "587",
                "STARTTLS",
                "passwordCleartext",
                "ida@contoso.com",
            ],
        ],
        [
            [
                "imap",
                "outlook.office365.com",
                "993",
                "SSL",
                "OAuth2",
                "bob@contoso.com",
            ],
            [
                "smtp",
                "smtp.office365.com",
                "587",
                "STARTTLS",
                "OAuth2",
                "bob@contoso.com",
            ],
        ],
    ];
    for (line, [incoming, outgoing]) in lines.iter().zip(expected) {
        let config = ok(line);
        assert_eq!(mail_server(&config["incoming"]), row(incoming), "{line}");
        assert_eq!(mail_server(&config["outgoing"]), row(outgoing), "{line}");
    }
    // An unknown address: 404 on every autoconfig URL, so Thunderbird has no configuration.
    assert_eq!(lines[3]["ok"], false, "{}", lines[3]);
    let statuses: Vec<_> = wire(&lines[3]).into_iter().map(|w| w.2).collect();
    assert_eq!(statuses, ["404", "404", "404", "404"], "{}", lines[3]);
}

/// The on-premises server and an Exchange-Online-like tenant for bob's RedirectAddr (with
/// the directory holding bob's tenant mailbox, kept alive beside them).
async fn organisation_and_tenant() -> (TestServer, TestServer, tempfile::TempDir) {
    let on_premises = TestServer::start_named(&NAMES, &|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let directory = dir.path().join("tenant-directory.toml");
    std::fs::write(
        &directory,
        r#"lab = true
netbios_domain = "CONTOSO"

[[user]]
upn = "bob@contoso.com"
sam_account_name = "bob"
display_name = "Bob Migrated"
primary_smtp = "bob@contoso.mail.onmicrosoft.com"
mailbox_guid = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
recipient_type = "UserMailbox"
password = "bob-pw"
"#,
    )
    .unwrap();
    let tenant = TestServer::start_named_by(
        on_premises.pki.clone(),
        &[
            "autodiscover.contoso.mail.onmicrosoft.com",
            "contoso.mail.onmicrosoft.com",
        ],
        &|t| {
            set(
                t,
                &["organization", "accepted_domains"],
                vec![toml::Value::from("contoso.mail.onmicrosoft.com")].into(),
            );
            set(t, &["organization", "microsoft_online"], true.into());
            set(t, &["organization", "exchange_org"], "ExchangeLabs".into());
            set(
                t,
                &["directory", "file", "path"],
                directory.display().to_string().into(),
            );
            for key in ["internal", "external"] {
                set(
                    t,
                    &["services", "ews", key],
                    "https://outlook.office365.com/EWS/Exchange.asmx".into(),
                );
            }
        },
    )
    .await;
    (on_premises, tenant, dir)
}

#[tokio::test]
async fn thunderbird_exchange_autodiscover_asks_every_way_at_once_and_follows_redirect_addr() {
    let Some(tb) = thunderbird_modules() else {
        return;
    };
    let (server, tenant, _directory) = organisation_and_tenant().await;
    let mut map = contoso(&server);
    map["autodiscover.contoso.mail.onmicrosoft.com:443"] = tenant.https.port().into();
    let srv = json!({"_autodiscover._tcp.contoso.com": [
        {"host": "autodiscover.contoso.com", "port": 443, "prio": 0, "weight": 0}
    ]});
    let cases = [
        json!({"exchange": "alice@contoso.com", "password": "alice-pw"}),
        json!({"exchange": "bob@contoso.com", "password": "bob-pw"}),
        json!({"exchange": "alice@contoso.com", "password": "wrong"}),
    ];
    let lines = run_thunderbird(&tb, &[&server], map, srv, &cases).await;

    let alice = ok(&lines[0]);
    assert_eq!(alice["subSource"], "exchange-from-url1-guess");
    assert_eq!(alice["incoming"]["type"], "exchange");
    assert_eq!(
        alice["incoming"]["exchangeURL"],
        "https://mail.contoso.com/EWS/Exchange.asmx"
    );
    assert_eq!(alice["incoming"]["owaURL"], "https://mail.contoso.com/owa/");
    assert_eq!(alice["incoming"]["hostname"], "mail.contoso.com");
    // The three URLs and the SRV target, in parallel; POX with Outlook's exact Content-Type
    // and Basic up front on HTTPS, nothing on plain HTTP (the 302 is followed as a GET).
    let requests = lines[0]["wire"].as_array().unwrap();
    let post = |url: &str| {
        requests
            .iter()
            .filter(|r| r["method"] == "POST" && r["url"] == url)
            .collect::<Vec<_>>()
    };
    let url1 = post("https://autodiscover.contoso.com/autodiscover/autodiscover.xml");
    // url1 itself and the SRV record's host, which is the same URL (that second request
    // may be stopped once url1 has answered).
    assert_eq!(url1.len(), 2, "{}", lines[0]);
    assert_eq!(url1[0]["status"], 200);
    for r in &url1 {
        assert_eq!(r["contentType"], "text/xml; charset=utf-8");
        assert_eq!(r["authorization"], "Basic alice@contoso.com");
    }
    let url2 = post("https://contoso.com/autodiscover/autodiscover.xml");
    assert_eq!(url2.len(), 1, "{}", lines[0]);
    assert_eq!(url2[0]["authorization"], "Basic alice@contoso.com");
    // Plain HTTP without credentials (its answer may come after url1's won; the test below
    // follows it alone).
    let url3 = post("http://autodiscover.contoso.com/autodiscover/autodiscover.xml");
    assert_eq!(url3.len(), 1, "{}", lines[0]);
    assert_eq!(url3[0]["authorization"], Value::Null);

    // Bob: RedirectAddr to the tenant, followed with his original address as the login.
    let bob = ok(&lines[1]);
    assert_eq!(
        bob["incoming"]["exchangeURL"],
        "https://outlook.office365.com/EWS/Exchange.asmx"
    );
    let tenant_posts: Vec<_> = lines[1]["wire"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["url"]
                == "https://autodiscover.contoso.mail.onmicrosoft.com/autodiscover/autodiscover.xml"
        })
        .collect();
    assert_eq!(tenant_posts.len(), 1, "{}", lines[1]);
    assert_eq!(tenant_posts[0]["authorization"], "Basic bob@contoso.com");
    assert_eq!(tenant_posts[0]["status"], 200);

    // A wrong password: 401 everywhere, and no configuration.
    assert_eq!(lines[2]["ok"], false, "{}", lines[2]);
    assert!(wire(&lines[2]).iter().any(|w| w.2 == "401"), "{}", lines[2]);
}

#[tokio::test]
async fn thunderbirds_account_hub_takes_autoconfig_and_adds_ews_from_autodiscover() {
    let cases = [json!({"find": "alice@contoso.com", "password": "alice-pw"})];
    let Some(lines) = run_against(&|_| {}, &cases).await else {
        return;
    };
    let config = ok(&lines[0]);
    // Autoconfig wins (it comes first), with the placeholders filled in; ewsifyConfig adds
    // Thunderbird's native EWS account as an alternative.
    assert_eq!(config["subSource"], "xml-from-isp-https");
    assert_eq!(config["incoming"]["type"], "exchange");
    assert_eq!(config["incoming"]["username"], "alice@contoso.com");
    assert_eq!(config["outgoing"]["username"], "alice@contoso.com");
    assert_eq!(config["outgoing"]["hostname"], "mail.contoso.com");
    let ews: Vec<_> = config["incomingAlternatives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["type"] == "ews")
        .collect();
    assert_eq!(ews.len(), 1, "{config}");
    assert_eq!(
        ews[0]["exchangeURL"],
        "https://mail.contoso.com/EWS/Exchange.asmx"
    );
    // Exchange Autodiscover ran beside it (POX with Basic), though autoconfig's answer won.
    assert!(
        lines[0]["wire"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "POST"
                && r["status"] == 200
                && r["authorization"] == "Basic alice@contoso.com"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn thunderbirds_reader_accepts_what_android_nine_and_evolution_are_given() {
    let cases = [
        // Thunderbird for Android / K-9: the root domain's .well-known URL, no address.
        json!({"xml": "https://contoso.com/.well-known/autoconfig/mail/config-v1.1.xml"}),
        // Nine: the /v1.1/ path.
        json!({"xml": "https://autoconfig.contoso.com/v1.1/mail/config-v1.1.xml?emailaddress=alice%40contoso.com"}),
        // Evolution: its placeholder address.
        json!({"xml": "https://autoconfig.contoso.com/mail/config-v1.1.xml?emailaddress=EVOLUTIONUSER%40contoso.com&emailmd5=8f1bd3c8b4d0e0e2b5d9bb1e0f1d6c9a"}),
    ];
    let Some(lines) = run_against(&reveal, &cases).await else {
        return;
    };
    for (line, user) in lines
        .iter()
        .zip(["%EMAILADDRESS%", "alice@contoso.com", "%EMAILADDRESS%"])
    {
        let config = ok(line);
        assert_eq!(config["incoming"]["type"], "exchange", "{line}");
        assert_eq!(config["incoming"]["username"], user, "{line}");
        assert_eq!(config["outgoing"]["port"], 587, "{line}");
    }
}

#[tokio::test]
async fn thunderbird_follows_the_port_80_redirect_and_only_then_sends_credentials() {
    let Some(tb) = thunderbird_modules() else {
        return;
    };
    // Only the plain-HTTP name answers, and its 302 points at another HTTPS host of the
    // same domain: Thunderbird's third URL is the only way in.
    let server = TestServer::start_named(&["autodiscover-ssl.contoso.com"], &|t| {
        set(
            t,
            &["redirect", "target"],
            "https://autodiscover-ssl.contoso.com".into(),
        )
    })
    .await;
    let map = json!({
        "autodiscover.contoso.com:80": server.redirect.unwrap().port(),
        "autodiscover-ssl.contoso.com:443": server.https.port(),
    });
    let cases = [json!({"exchange": "alice@contoso.com", "password": "alice-pw"})];
    let lines = run_thunderbird(&tb, &[&server], map, json!({}), &cases).await;
    let config = ok(&lines[0]);
    assert_eq!(config["subSource"], "exchange-from-url3-guess");
    assert_eq!(
        config["incoming"]["exchangeURL"],
        "https://mail.contoso.com/EWS/Exchange.asmx"
    );
    let target = "https://autodiscover-ssl.contoso.com/autodiscover/autodiscover.xml";
    let requests: Vec<_> = lines[0]["wire"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap(),
                r["url"].as_str().unwrap(),
                r["authorization"].as_str(),
                r.get("status").map(|s| s.to_string()),
            )
        })
        .filter(|r| r.1.contains("autodiscover.xml"))
        .collect();
    let http = "http://autodiscover.contoso.com/autodiscover/autodiscover.xml";
    // POST over HTTP without credentials; the 302 turned into a GET (XMLHttpRequest drops
    // body and method), which fails; then Thunderbird repeats the POST at the HTTPS URL with
    // Basic, because that host is in the same domain.
    assert!(
        requests.contains(&("POST", http, None, Some("302".into()))),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.0 == "GET" && r.1 == target && r.2.is_none()),
        "{requests:?}"
    );
    assert!(
        requests.contains(&(
            "POST",
            target,
            Some("Basic alice@contoso.com"),
            Some("200".into())
        )),
        "{requests:?}"
    );
}
