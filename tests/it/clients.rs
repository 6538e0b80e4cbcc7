//! Every mail client, every mailbox: the four kinds of address (Exchange alice, Internet-mail
//! ida, migrated bob, unknown nobody) through every format (POX, SOAP, V2, autoconfig,
//! mobileconfig) over real TLS and the port-80 listener, with the enumeration rule off and
//! on; Apple profiles parsed by Python's plistlib and verified by `openssl cms`.

use std::process::Command;

use roxmltree::{Document, Node};

use crate::harness::client::basic;
use crate::harness::daemon::{scrape, Daemon};
use crate::harness::python::{python_with, run_script};
use crate::harness::{mobilesync_request, outlook_request, set, Answer, TestServer, TlsClient};

const POX: &str = "/autodiscover/autodiscover.xml";
const AUTOCONFIG: &str = "/mail/config-v1.1.xml";
const WELL_KNOWN: &str = "/.well-known/autoconfig/mail/config-v1.1.xml";

/// Every kind of address, as a client would type it (ida by her alias).
const ADDRESSES: [&str; 4] = [
    "alice@contoso.com",
    "ida.imap@contoso.com",
    "bob@contoso.com",
    "nobody@contoso.com",
];

/// Per-mailbox answers in autoconfig, mobileconfig and V2.
pub(crate) fn reveal(t: &mut toml::Table) {
    set(t, &["mail", "reveal_mailboxes"], true.into());
    set(t, &["v2", "reveal_unknown_users"], true.into());
}

fn enc(address: &str) -> String {
    address.replace('@', "%40").replace('+', "%2B")
}

fn text_of<'a>(node: Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.has_tag_name(name))
        .and_then(|c| c.text())
}

/// (type, hostname, port, socketType, username, authentication) per server element.
fn autoconfig_servers(a: &Answer) -> Vec<(String, String, String, String, String, String)> {
    let text = a.text();
    let doc = Document::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    doc.descendants()
        .filter(|n| n.has_tag_name("incomingServer") || n.has_tag_name("outgoingServer"))
        .map(|n| {
            let t = |name| text_of(n, name).unwrap_or_default().to_string();
            (
                n.attribute("type").unwrap_or_default().to_string(),
                t("hostname"),
                t("port"),
                t("socketType"),
                t("username"),
                t("authentication"),
            )
        })
        .collect()
}

fn row(kind: &str, host: &str, port: &str, socket: &str, user: &str, auth: &str) -> Vec<String> {
    [kind, host, port, socket, user, auth]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The example's Exchange account in autoconfig for `user`: EWS, and Exchange's client
/// submission port on the EWS host (no `[mail.exchange]`).
fn exchange_rows(user: &str) -> Vec<Vec<String>> {
    vec![
        row("exchange", "mail.contoso.com", "443", "SSL", user, "NTLM"),
        row(
            "smtp",
            "mail.contoso.com",
            "587",
            "STARTTLS",
            user,
            "password-cleartext",
        ),
    ]
}

fn flat(rows: Vec<(String, String, String, String, String, String)>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|(a, b, c, d, e, f)| vec![a, b, c, d, e, f])
        .collect()
}

async fn pox(c: &mut TlsClient, user: &str, pw: &str, address: &str) -> String {
    let a = c
        .post_basic(POX, user, pw, &[], &outlook_request(address))
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    a.text()
}

#[tokio::test]
async fn pox_and_soap_describe_each_kind_of_mailbox() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // Ida (asked for by her alias) is Internet mail: AccountType email, IMAP then SMTP.
    let body = pox(&mut c, "ida", "ida-pw", "ida.imap@contoso.com").await;
    let doc = Document::parse(&body).unwrap();
    let account = doc
        .descendants()
        .find(|n| n.has_tag_name("Account"))
        .unwrap();
    assert_eq!(text_of(account, "AccountType"), Some("email"));
    assert_eq!(text_of(account, "Action"), Some("settings"));
    let protocols: Vec<_> = account
        .children()
        .filter(|n| n.has_tag_name("Protocol"))
        .map(|p| {
            [
                "Type",
                "Server",
                "Port",
                "LoginName",
                "SSL",
                "Encryption",
                "AuthRequired",
            ]
            .iter()
            .map(|k| text_of(p, k).unwrap_or_default().to_string())
            .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        protocols,
        vec![
            vec![
                "IMAP",
                "imap.contoso.com",
                "993",
                "ida@contoso.com",
                "on",
                "SSL",
                "on"
            ],
            vec![
                "SMTP",
                "smtp.contoso.com",
                "587",
                "ida@contoso.com",
                "on",
                "TLS",
                "on"
            ],
        ]
    );
    assert!(body.contains("<AutoDiscoverSMTPAddress>ida@contoso.com</AutoDiscoverSMTPAddress>"));
    assert!(!body.contains("EXCH"), "{body}");
    // The others keep their answers: Exchange settings, redirectAddr, Error 500.
    let alice = pox(&mut c, "ida", "ida-pw", "alice@contoso.com").await;
    assert!(alice.contains("<AccountType>email</AccountType>"));
    assert!(alice.contains("<Type>EXCH</Type>"), "{alice}");
    let bob = pox(&mut c, "ida", "ida-pw", "bob@contoso.com").await;
    assert!(bob.contains("<RedirectAddr>bob@contoso.mail.onmicrosoft.com</RedirectAddr>"));
    let nobody = pox(&mut c, "ida", "ida-pw", "nobody@contoso.com").await;
    assert!(nobody.contains("<ErrorCode>500</ErrorCode>"), "{nobody}");
    // ActiveSync does not serve an IMAP mailbox: Error 501 in the mobilesync shape.
    let eas = c
        .post_basic(
            POX,
            "ida",
            "ida-pw",
            &[],
            &mobilesync_request("ida@contoso.com"),
        )
        .await;
    assert!(eas.text().contains("<Status>2</Status>"), "{}", eas.text());
    assert!(!eas.text().contains("MobileSync"), "{}", eas.text());

    // SOAP: Ida's POP/IMAP/SMTP connection settings; no EWS for her.
    let envelope = crate::soap::get_user_settings(
        &["ida.imap@contoso.com"],
        &[
            "UserDisplayName",
            "ExternalImap4Connections",
            "ExternalSmtpConnections",
            "ExternalPop3Connections",
            "ExternalEwsUrl",
        ],
    );
    let a = c
        .post_basic(
            "/autodiscover/autodiscover.svc",
            "ida",
            "ida-pw",
            &[],
            &envelope,
        )
        .await;
    let text = a.text();
    assert_eq!(a.status, 200, "{text}");
    let doc = Document::parse(&text).unwrap();
    let settings: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("UserSetting"))
        .map(|s| {
            let name = text_of(s, "Name").unwrap().to_string();
            let value = match s
                .descendants()
                .find(|n| n.has_tag_name("ProtocolConnection"))
            {
                Some(pc) => format!(
                    "{}:{}:{}",
                    text_of(pc, "Hostname").unwrap(),
                    text_of(pc, "Port").unwrap(),
                    text_of(pc, "EncryptionMethod").unwrap_or_default()
                ),
                None => text_of(s, "Value").unwrap().to_string(),
            };
            (name, value)
        })
        .collect();
    assert_eq!(
        settings,
        vec![
            ("UserDisplayName".into(), "Ida Dovecot".into()),
            (
                "ExternalImap4Connections".into(),
                "imap.contoso.com:993:SSL".into()
            ),
            (
                "ExternalSmtpConnections".into(),
                "smtp.contoso.com:587:TLS".into()
            ),
        ]
    );
    assert!(text.contains("ProtocolConnectionCollectionSetting"));
    let unavailable: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("UserSettingError"))
        .map(|e| text_of(e, "SettingName").unwrap().to_string())
        .collect();
    assert_eq!(
        unavailable,
        vec!["ExternalPop3Connections", "ExternalEwsUrl"]
    );
}

#[tokio::test]
async fn v2_sends_ida_only_to_autodiscover_v1_and_only_says_so_when_revealing() {
    for revealing in [false, true] {
        let server = if revealing {
            TestServer::start_with(&reveal).await
        } else {
            TestServer::start().await
        };
        let mut c = server.client().await;
        for protocol in ["Ews", "AutodiscoverV1", "ActiveSync"] {
            let path = |who: &str| {
                format!("/autodiscover/autodiscover.json/v1.0/{who}?Protocol={protocol}")
            };
            let alice = c.send("GET", &path("alice@contoso.com"), &[], b"").await;
            let ida = c.send("GET", &path("ida@contoso.com"), &[], b"").await;
            if !revealing || protocol == "AutodiscoverV1" {
                assert_eq!((ida.status, ida.body.clone()), (alice.status, alice.body));
            } else {
                assert_eq!(ida.status, 404, "{protocol}: {}", ida.text());
            }
        }
    }
}

/// A plain-HTTP GET with exactly one `Host` header.
async fn plain_get(addr: std::net::SocketAddr, path: &str, host: &str) -> Answer {
    use http_body_util::{BodyExt, Empty};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .uri(path)
        .header("Host", host)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let (parts, body) = sender.send_request(request).await.unwrap().into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// An anonymous `GET path?emailaddress=<address>` (autoconfig paths and /mobileconfig).
async fn autoconfig(c: &mut TlsClient, path: &str, address: &str) -> Answer {
    c.send(
        "GET",
        &format!("{path}?emailaddress={}", enc(address)),
        &[],
        b"",
    )
    .await
}

#[tokio::test]
async fn autoconfig_gives_every_address_the_domain_answer_unless_revealing() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let domain = autoconfig(&mut c, AUTOCONFIG, "alice@contoso.com").await;
    assert_eq!(domain.status, 200, "{}", domain.text());
    assert_eq!(
        domain.header("content-type").as_deref(),
        Some("application/xml; charset=utf-8")
    );
    assert_eq!(
        flat(autoconfig_servers(&domain)),
        exchange_rows("%EMAILADDRESS%")
    );
    assert!(domain
        .text()
        .contains("<ewsURL>https://mail.contoso.com/EWS/Exchange.asmx</ewsURL>"));
    // Byte for byte the same for every kind, on both paths, and on the port-80 listener.
    let port80 = server.redirect.unwrap();
    for address in ADDRESSES {
        for path in [AUTOCONFIG, WELL_KNOWN] {
            let a = autoconfig(&mut c, path, address).await;
            assert_eq!(
                (a.status.as_u16(), &a.body),
                (200, &domain.body),
                "{address} {path}"
            );
        }
        let plain = plain_get(
            port80,
            &format!("{AUTOCONFIG}?emailaddress={}", enc(address)),
            "autoconfig.contoso.com",
        )
        .await;
        assert_eq!(
            (plain.status.as_u16(), &plain.body),
            (200, &domain.body),
            "{address}"
        );
    }
    // Without an address, the domain comes from the autoconfig host name.
    let hostonly = plain_get(port80, AUTOCONFIG, "autoconfig.contoso.com:80").await;
    assert_eq!(
        (hostonly.status.as_u16(), &hostonly.body),
        (200, &domain.body)
    );
    // Domains that are not ours are not served.
    let other = autoconfig(&mut c, AUTOCONFIG, "x@fabrikam.com").await;
    assert_eq!(other.status, 404);

    // A domain whose mailboxes are Internet mail by default answers IMAP/SMTP.
    let internet = TestServer::start_with(&|t| set(t, &["mail", "kind"], "internet".into())).await;
    let mut c = internet.client().await;
    let a = autoconfig(&mut c, AUTOCONFIG, "alice@contoso.com").await;
    assert_eq!(
        flat(autoconfig_servers(&a)),
        vec![
            row(
                "imap",
                "imap.contoso.com",
                "993",
                "SSL",
                "%EMAILADDRESS%",
                "password-cleartext"
            ),
            row(
                "smtp",
                "smtp.contoso.com",
                "587",
                "STARTTLS",
                "%EMAILADDRESS%",
                "password-cleartext"
            ),
        ]
    );
}

#[tokio::test]
async fn revealing_autoconfig_answers_per_mailbox_through_the_decision() {
    let server = TestServer::start_with(&reveal).await;
    let mut c = server.client().await;
    let alice = autoconfig(&mut c, AUTOCONFIG, "alice@contoso.com").await;
    assert_eq!(
        flat(autoconfig_servers(&alice)),
        exchange_rows("alice@contoso.com")
    );
    let ida = autoconfig(&mut c, WELL_KNOWN, "ida.imap@contoso.com").await;
    assert_eq!(
        flat(autoconfig_servers(&ida)),
        vec![
            row(
                "imap",
                "imap.contoso.com",
                "993",
                "SSL",
                "ida@contoso.com",
                "password-cleartext"
            ),
            row(
                "smtp",
                "smtp.contoso.com",
                "587",
                "STARTTLS",
                "ida@contoso.com",
                "password-cleartext"
            ),
        ]
    );
    let bob = autoconfig(&mut c, AUTOCONFIG, "bob@contoso.com").await;
    assert_eq!(
        flat(autoconfig_servers(&bob)),
        vec![
            row(
                "imap",
                "outlook.office365.com",
                "993",
                "SSL",
                "bob@contoso.com",
                "OAuth2"
            ),
            row(
                "smtp",
                "smtp.office365.com",
                "587",
                "STARTTLS",
                "bob@contoso.com",
                "OAuth2"
            ),
        ]
    );
    for unknown in [
        "nobody@contoso.com",
        "partner@contoso.com",
        "dave@contoso.com",
    ] {
        assert_eq!(
            autoconfig(&mut c, AUTOCONFIG, unknown).await.status,
            404,
            "{unknown}"
        );
    }
}

#[tokio::test]
async fn hostile_email_addresses_get_400_or_the_domain_answer_and_are_never_reflected() {
    for setup in [false, true] {
        let server = if setup {
            TestServer::start_with(&reveal).await
        } else {
            TestServer::start().await
        };
        let mut c = server.client().await;
        let long = format!("{}%40contoso.com", "a".repeat(5000));
        let hostile = [
            "%3Cscript%3Ealert(1)%3C/script%3E%40contoso.com",
            "alice%40contoso.com%0D%0ASet-Cookie:%20x=1",
            "alice%40contoso.com%3Cx%3E",
            "%22alice%22%40contoso.com",
            "alice%2540contoso.com",
            "alice%40contoso.com%00",
            "alice%ZZ%40contoso.com",
            "%E0%80%AF%40contoso.com",
            long.as_str(),
            "",
        ];
        for value in hostile {
            for path in [AUTOCONFIG, "/mobileconfig"] {
                let a = c
                    .send("GET", &format!("{path}?emailaddress={value}"), &[], b"")
                    .await;
                let body = a.text().to_lowercase();
                assert!(
                    matches!(a.status.as_u16(), 400 | 404) || a.status == 200,
                    "{path} {value}: {}",
                    a.status
                );
                assert!(
                    a.status != 200 || !setup,
                    "{path} {value}: revealing answered 200"
                );
                for needle in ["<script", "set-cookie", "<x>", "alert("] {
                    assert!(!body.contains(needle), "{path} {value} reflected: {body}");
                }
                assert!(a.header("set-cookie").is_none());
            }
        }
    }
}

/// Profile fields read back by Python's plistlib (a real plist parser).
fn plistlib(profile: &[u8]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.mobileconfig");
    std::fs::write(&path, profile).unwrap();
    let script = "import json,plistlib,sys\n\
                  p=plistlib.load(open(sys.argv[1],'rb'))\n\
                  print(json.dumps(p, default=str))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3 (needed for plistlib)");
    assert!(
        out.status.success(),
        "plistlib refused the profile: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(profile)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn profile(c: &mut TlsClient, address: &str) -> Answer {
    autoconfig(c, "/mobileconfig", address).await
}

#[tokio::test]
async fn mobileconfig_profiles_carry_the_account_for_each_kind_and_no_password() {
    // Default: every address gets the domain's kind (Exchange → ActiveSync).
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for address in ADDRESSES {
        let a = profile(&mut c, address).await;
        assert_eq!(a.status, 200, "{address}: {}", a.text());
        assert_eq!(
            a.header("content-type").as_deref(),
            Some("application/x-apple-aspen-config")
        );
        let p = plistlib(&a.body);
        assert_eq!(p["PayloadType"], "Configuration");
        let account = &p["PayloadContent"][0];
        assert_eq!(account["PayloadType"], "com.apple.eas.account", "{address}");
        assert_eq!(account["Host"], "mail.contoso.com");
        assert_eq!(account["EmailAddress"], address);
    }
    // Revealing: the decision picks the payload.
    let server = TestServer::start_with(&reveal).await;
    let mut c = server.client().await;
    let ida = plistlib(&profile(&mut c, "ida.imap@contoso.com").await.body);
    let account = &ida["PayloadContent"][0];
    assert_eq!(account["PayloadType"], "com.apple.mail.managed");
    assert_eq!(account["EmailAccountType"], "EmailTypeIMAP");
    assert_eq!(account["EmailAddress"], "ida@contoso.com");
    assert_eq!(account["IncomingMailServerHostName"], "imap.contoso.com");
    assert_eq!(account["IncomingMailServerPortNumber"], 993);
    assert_eq!(account["IncomingMailServerUseSSL"], true);
    assert_eq!(account["OutgoingMailServerHostName"], "smtp.contoso.com");
    assert_eq!(account["OutgoingMailServerPortNumber"], 587);
    assert_eq!(account["IncomingMailServerUsername"], "ida@contoso.com");
    let keys: Vec<&String> = account.as_object().unwrap().keys().collect();
    for forbidden in ["IncomingPassword", "OutgoingPassword", "Password"] {
        assert!(!keys.iter().any(|k| *k == forbidden), "{keys:?}");
    }
    let bob = plistlib(&profile(&mut c, "bob@contoso.com").await.body);
    assert_eq!(bob["PayloadContent"][0]["Host"], "outlook.office365.com");
    assert_eq!(bob["PayloadContent"][0]["UserName"], "bob@contoso.com");
    let alice = plistlib(&profile(&mut c, "alice@contoso.com").await.body);
    assert_eq!(alice["PayloadContent"][0]["Host"], "mail.contoso.com");
    assert_eq!(profile(&mut c, "nobody@contoso.com").await.status, 404);
    // The form POST gives the same profile as the GET.
    let form = c
        .send(
            "POST",
            "/mobileconfig",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"emailaddress=ida.imap%40contoso.com",
        )
        .await;
    assert_eq!(form.status, 200);
    assert_eq!(
        form.body,
        profile(&mut c, "ida.imap@contoso.com").await.body
    );
    let xml = c
        .send(
            "POST",
            "/mobileconfig",
            &[("Content-Type", "text/xml")],
            b"emailaddress=ida%40contoso.com",
        )
        .await;
    assert_eq!(xml.status, 415);
}

fn openssl() -> Option<&'static str> {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is required under CI=true"
        );
        eprintln!("SKIPPED: openssl not installed (needed to verify CMS signatures)");
        return None;
    }
    Some("openssl")
}

#[tokio::test]
async fn signed_profiles_verify_with_openssl_against_the_test_ca() {
    let Some(openssl) = openssl() else { return };
    let server = TestServer::start_with(&|t| {
        reveal(t);
        set(t, &["mail", "mobileconfig", "sign"], true.into());
    })
    .await;
    let mut c = server.client().await;
    let signed = profile(&mut c, "ida@contoso.com").await;
    assert_eq!(signed.status, 200, "{}", signed.text());
    let dir = tempfile::tempdir().unwrap();
    let der = dir.path().join("signed.mobileconfig");
    let out_path = dir.path().join("content.plist");
    std::fs::write(&der, &signed.body).unwrap();
    let ca = server.pki.write_ca(dir.path());
    let verify = Command::new(openssl)
        .args(["cms", "-verify", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-CAfile")
        .arg(&ca)
        .args(["-purpose", "any", "-out"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "openssl cms -verify failed: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let content = std::fs::read(&out_path).unwrap();
    let p = plistlib(&content);
    assert_eq!(p["PayloadContent"][0]["EmailAddress"], "ida@contoso.com");
    // A different CA does not verify it.
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    let stranger = crate::harness::TestPki::new().write_ca(&dir.path().join("x"));
    let refused = Command::new(openssl)
        .args(["cms", "-verify", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-CAfile")
        .arg(&stranger)
        .args(["-purpose", "any", "-out", "/dev/null"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// Runs openssl with `args`, asserting success; returns stdout.
fn run_openssl(openssl: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = Command::new(openssl).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn profiles_signed_with_an_rsa_key_verify_too() {
    let Some(openssl) = openssl() else { return };
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = (keys.path().join("rsa.pem"), keys.path().join("rsa.key"));
    let os = |s: &str| std::ffi::OsString::from(s);
    run_openssl(
        openssl,
        &[
            &os("req"),
            &os("-x509"),
            &os("-newkey"),
            &os("rsa:2048"),
            &os("-nodes"),
            &os("-days"),
            &os("2"),
            &os("-subj"),
            &os("/CN=Contoso Profile Signing"),
            &os("-keyout"),
            key.as_os_str(),
            &os("-out"),
            cert.as_os_str(),
        ],
    );
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let server = TestServer::start_with(&|t| {
        set(t, &["mail", "mobileconfig", "cert"], c.clone().into());
        set(t, &["mail", "mobileconfig", "key"], k.clone().into());
    })
    .await;
    let mut client = server.client().await;
    let signed = profile(&mut client, "alice@contoso.com").await;
    assert_eq!(signed.status, 200);
    let der = keys.path().join("signed.der");
    std::fs::write(&der, &signed.body).unwrap();
    let content = run_openssl(
        openssl,
        &[
            &os("cms"),
            &os("-verify"),
            &os("-inform"),
            &os("DER"),
            &os("-in"),
            der.as_os_str(),
            &os("-CAfile"),
            cert.as_os_str(),
            &os("-purpose"),
            &os("any"),
        ],
    );
    let p = plistlib(&content);
    assert_eq!(
        p["PayloadContent"][0]["PayloadType"],
        "com.apple.eas.account"
    );
}

#[tokio::test]
async fn the_new_endpoints_are_counted_and_logged() {
    let d = Daemon::start(&reveal);
    let https = d.addr("https");
    let metrics = d.addr("metrics");
    let before = scrape(metrics).await;
    let mut c = TlsClient::connect(https, "autodiscover.contoso.com", &d.pki).await;
    assert_eq!(
        autoconfig(&mut c, AUTOCONFIG, "ida@contoso.com")
            .await
            .status,
        200
    );
    assert_eq!(
        autoconfig(&mut c, AUTOCONFIG, "nobody@contoso.com")
            .await
            .status,
        404
    );
    assert_eq!(profile(&mut c, "bob@contoso.com").await.status, 200);
    assert_eq!(
        c.send("GET", "/mobileconfig?emailaddress=%3C", &[], b"")
            .await
            .status,
        400
    );
    let after = scrape(metrics).await;
    let delta = |endpoint: &str, outcome: &str| {
        let series =
            format!(r#"autodiscoverd_requests_total{{endpoint="{endpoint}",outcome="{outcome}"}}"#);
        after.get(&series).copied().unwrap_or(0.0) - before.get(&series).copied().unwrap_or(0.0)
    };
    assert_eq!(delta("autoconfig", "internet_mail"), 1.0);
    assert_eq!(delta("autoconfig", "not_served"), 1.0);
    assert_eq!(delta("mobileconfig", "migrated"), 1.0);
    assert_eq!(delta("mobileconfig", "invalid_address"), 1.0);
    // The log is written by its own task: wait for the line.
    let is_autoconfig = |e: &serde_json::Value| {
        e["target"] == "access"
            && (e["fields"]["endpoint"] == "autoconfig" || e["endpoint"] == "autoconfig")
    };
    let line = d
        .wait_event(std::time::Duration::from_secs(10), is_autoconfig)
        .unwrap_or_else(|| panic!("no autoconfig access line in {:?}", d.access_events()));
    let text = line.to_string();
    assert!(text.contains("internet_mail"), "{text}");
    // The access log never carries the address's query string.
    assert!(!text.contains("ida@contoso.com"), "{text}");
}

#[tokio::test]
async fn revealing_lookups_of_unknown_addresses_are_throttled_per_source() {
    let server = TestServer::start_with(&|t| {
        reveal(t);
        set(t, &["throttle", "source_delay_after"], 3.into());
        set(t, &["throttle", "source_block_after"], 5.into());
        set(t, &["throttle", "max_delay_ms"], 50.into());
    })
    .await;
    let mut c = server.client().await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let a = autoconfig(&mut c, AUTOCONFIG, &format!("guess{i}@contoso.com")).await;
        statuses.push(a.status.as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[0], 404);
}

/// Runs tests/interop/myl_discovery.py; one JSON record per case.
async fn myl(
    server: &TestServer,
    map: serde_json::Value,
    extra: Vec<String>,
) -> Vec<serde_json::Value> {
    let python = python_with(&["myldiscovery"]).expect("checked by the caller");
    let ca = server.pki.write_ca(server.dir.path());
    let mut args: Vec<std::ffi::OsString> = vec![
        "--ca".into(),
        ca.into(),
        "--map".into(),
        map.to_string().into(),
    ];
    args.extend(extra.into_iter().map(Into::into));
    let out = run_script(python, "myl_discovery.py", args, &server.path("python-tmp")).await;
    eprintln!("myl-discovery saw:\n{}", out.stdout);
    out.json_lines()
}

#[tokio::test]
async fn myl_discovery_finds_imap_and_smtp_through_autoconfig_and_autodiscover() {
    if python_with(&["myldiscovery"]).is_none() {
        return;
    }
    // The domain's kind is Internet mail here, so the domain answer myl reads (it sends no
    // address: its mailconf URL is fixed per domain) lists IMAP and SMTP.
    let server = TestServer::start_with(&|t| set(t, &["mail", "kind"], "internet".into())).await;
    let https = server.https.port();
    let port80 = server.redirect.unwrap().port();
    for (txt, map) in [
        (
            "https://autoconfig.contoso.com/mail/config-v1.1.xml",
            serde_json::json!({"autoconfig.contoso.com:443": https}),
        ),
        (
            "http://autoconfig.contoso.com/mail/config-v1.1.xml",
            serde_json::json!({"autoconfig.contoso.com:80": port80}),
        ),
    ] {
        let records = myl(
            &server,
            map,
            vec![
                "--txt".into(),
                txt.into(),
                "--autoconfig".into(),
                "ida@contoso.com".into(),
            ],
        )
        .await;
        let result = &records[0]["result"];
        assert_eq!(
            result,
            &serde_json::json!({
                "imap": {"server": "imap.contoso.com", "port": 993, "starttls": false, "ssl": true},
                "smtp": {"server": "smtp.contoso.com", "port": 587, "starttls": true, "ssl": false},
            }),
            "{txt}: {:#}",
            records[0]
        );
    }

    // Autodiscover: exchangelib's SOAP discovery (inside myl) finds alice's EWS server
    // through this server, and myl probes that server's IMAP/SMTP ports (two listeners
    // stand in for them on the test network).
    let server = TestServer::start().await;
    let imap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let map = serde_json::json!({
        "autodiscover.contoso.com:443": server.https.port(),
        "mail.contoso.com:993": imap.local_addr().unwrap().port(),
        "mail.contoso.com:587": smtp.local_addr().unwrap().port(),
    });
    let records = myl(
        &server,
        map,
        vec!["--exchange".into(), "alice@contoso.com:alice-pw".into()],
    )
    .await;
    let result = &records[0]["result"];
    assert_eq!(
        result["imap"]["server"], "mail.contoso.com",
        "{:#}",
        records[0]
    );
    assert_eq!(result["imap"]["port"], 993);
    assert_eq!(result["smtp"]["port"], 587);
}

#[tokio::test]
async fn an_ldap_directory_marks_internet_mail_mailboxes_for_every_format() {
    let Some(slapd) = crate::harness::Slapd::start() else {
        return;
    };
    let server = TestServer::start_with(&|t| {
        slapd.configure(t);
        reveal(t);
    })
    .await;
    let mut c = server.client().await;
    // POX with a password checked by an LDAP bind; the kind from employeeType.
    let body = pox(&mut c, "ida", "ida-pw", "ida.imap@contoso.com").await;
    assert!(body.contains("<Type>IMAP</Type>"), "{body}");
    assert!(
        body.contains("<LoginName>ida@contoso.com</LoginName>"),
        "{body}"
    );
    let alice = pox(&mut c, "ida", "ida-pw", "alice@contoso.com").await;
    assert!(alice.contains("<Type>EXCH</Type>"), "{alice}");
    let ida = autoconfig(&mut c, AUTOCONFIG, "ida@contoso.com").await;
    assert_eq!(autoconfig_servers(&ida)[0].0, "imap");
    let bob = autoconfig(&mut c, AUTOCONFIG, "bob@contoso.com").await;
    assert_eq!(autoconfig_servers(&bob)[0].1, "outlook.office365.com");
    let p = plistlib(&profile(&mut c, "ida@contoso.com").await.body);
    assert_eq!(p["PayloadContent"][0]["EmailAccountType"], "EmailTypeIMAP");
    // Directory outage: per-mailbox answers cannot be given (503), and come back with it.
    drop(c);
    let mut slapd = slapd;
    slapd.stop();
    let mut c = server.client().await;
    assert_eq!(
        autoconfig(&mut c, AUTOCONFIG, "carol.unknown@contoso.com")
            .await
            .status,
        503
    );
    slapd.restart();
    let back = autoconfig(&mut c, AUTOCONFIG, "ida@contoso.com").await;
    assert_eq!(back.status, 200, "{}", back.text());
}

/// What real clients send, exactly: Thunderbird for Android and K-9 (the root domain's
/// .well-known URL without an address), Nine (`/v1.1/`), Evolution (a placeholder address,
/// which must not count as a failed lookup), Outlook (`text/xml; charset=utf-8` and Basic
/// up front).
#[tokio::test]
async fn the_requests_real_clients_send_get_the_answers_they_expect() {
    let server = TestServer::start_named(
        &[
            "autodiscover.contoso.com",
            "autoconfig.contoso.com",
            "contoso.com",
            "autoconfig.fabrikam.com",
            "fabrikam.com",
        ],
        &|t| {
            reveal(t);
            set(t, &["throttle", "source_delay_after"], 3.into());
            set(t, &["throttle", "source_block_after"], 5.into());
            set(t, &["throttle", "max_delay_ms"], 50.into());
        },
    )
    .await;
    let connect = |host: &'static str| TlsClient::connect(server.https, host, &server.pki);
    let mut autoconfig_host = connect("autoconfig.contoso.com").await;
    let domain = autoconfig_host.send("GET", AUTOCONFIG, &[], b"").await;
    assert_eq!(domain.status, 200, "{}", domain.text());
    assert!(domain.text().contains("%EMAILADDRESS%"));

    // Thunderbird for Android, K-9: GET https://contoso.com/.well-known/..., no address.
    let mut root = connect("contoso.com").await;
    let android = root.send("GET", WELL_KNOWN, &[], b"").await;
    assert_eq!(
        (android.status.as_u16(), &android.body),
        (200, &domain.body)
    );
    // ... and over plain HTTP on the port-80 listener.
    let plain = plain_get(server.redirect.unwrap(), WELL_KNOWN, "contoso.com").await;
    assert_eq!((plain.status.as_u16(), &plain.body), (200, &domain.body));
    // A host that is no accepted domain names nothing (400); an autoconfig. host of a
    // domain that is not ours is not served (404).
    let other = connect("fabrikam.com")
        .await
        .send("GET", WELL_KNOWN, &[], b"")
        .await;
    assert_eq!(other.status, 400, "{}", other.text());
    let other = connect("autoconfig.fabrikam.com")
        .await
        .send("GET", AUTOCONFIG, &[], b"")
        .await;
    assert_eq!(other.status, 404, "{}", other.text());

    // Nine: /v1.1/mail/config-v1.1.xml is the same answer as /mail/config-v1.1.xml.
    for address in ["alice@contoso.com", "ida@contoso.com"] {
        let nine = autoconfig(&mut autoconfig_host, "/v1.1/mail/config-v1.1.xml", address).await;
        let thunderbird = autoconfig(&mut autoconfig_host, AUTOCONFIG, address).await;
        assert_eq!(nine.status, 200, "{address}");
        assert_eq!(nine.body, thunderbird.body, "{address}");
    }

    // Evolution: emailaddress=EVOLUTIONUSER@<domain>&emailmd5=<hash>. The domain answer,
    // every time: more requests than the throttle allows failures, and the next unknown
    // address is still a plain 404, not a 429.
    for _ in 0..8 {
        let evolution = autoconfig_host
            .send(
                "GET",
                &format!(
                    "{AUTOCONFIG}?emailaddress=EVOLUTIONUSER%40contoso.com&emailmd5=5d41402abc4b2a76b9719d911017c592"
                ),
                &[],
                b"",
            )
            .await;
        assert_eq!(
            (evolution.status.as_u16(), &evolution.body),
            (200, &domain.body)
        );
    }
    let nobody = autoconfig(&mut autoconfig_host, AUTOCONFIG, "nobody@contoso.com").await;
    assert_eq!(nobody.status, 404);

    // Outlook and Thunderbird's Exchange Autodiscover: exactly these header values.
    let mut c = server.client().await;
    let pox = c
        .send(
            "POST",
            POX,
            &[
                ("Content-Type", "text/xml; charset=utf-8"),
                ("Authorization", &basic("alice@contoso.com", "alice-pw")),
            ],
            outlook_request("alice@contoso.com").as_bytes(),
        )
        .await;
    assert_eq!(pox.status, 200, "{}", pox.text());
    assert!(pox.text().contains("<Type>EXCH</Type>"), "{}", pox.text());
}

/// The rules iOS and macOS enforce when a profile is installed: every PayloadUUID distinct
/// within the profile and the same on every download (so a second install replaces the
/// first), integers where Apple documents integers, and no password key anywhere.
#[tokio::test]
async fn apple_profiles_keep_the_rules_ios_enforces() {
    let server = TestServer::start_with(&reveal).await;
    let mut c = server.client().await;
    let mut seen = std::collections::BTreeSet::new();
    for address in ["alice@contoso.com", "ida@contoso.com", "bob@contoso.com"] {
        let first = plistlib(&profile(&mut c, address).await.body);
        let again = plistlib(&profile(&mut c, address).await.body);
        let uuids = payload_uuids(&first);
        assert_eq!(uuids.len(), 2, "{address}: {first}");
        assert_ne!(uuids[0], uuids[1], "{address}");
        assert_eq!(
            uuids,
            payload_uuids(&again),
            "{address}: stable across fetches"
        );
        for uuid in &uuids {
            assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{uuid}");
            assert!(seen.insert(uuid.clone()), "{address}: {uuid} reused");
        }
        assert_eq!(first["PayloadVersion"], 1);
        assert_eq!(first["PayloadType"], "Configuration");
        let payload = &first["PayloadContent"][0];
        assert_eq!(payload["PayloadVersion"], 1, "{address}");
        for key in [
            "IncomingMailServerPortNumber",
            "OutgoingMailServerPortNumber",
        ] {
            if let Some(port) = payload.get(key) {
                assert!(port.is_u64(), "{address}: {key} is {port}");
            }
        }
        assert_no_password(&first, address);
    }
}

fn payload_uuids(profile: &serde_json::Value) -> Vec<String> {
    let mut out = vec![profile["PayloadUUID"].as_str().unwrap().to_string()];
    for payload in profile["PayloadContent"].as_array().unwrap() {
        out.push(payload["PayloadUUID"].as_str().unwrap().to_string());
    }
    out
}

/// No `Password`, `IncomingPassword`, `OutgoingPassword` ... at any depth.
fn assert_no_password(value: &serde_json::Value, address: &str) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                assert!(
                    !key.contains("Password") || key == "OutgoingPasswordSameAsIncomingPassword",
                    "{address}: {key}"
                );
                assert_no_password(inner, address);
            }
        }
        serde_json::Value::Array(items) => {
            for inner in items {
                assert_no_password(inner, address);
            }
        }
        _ => {}
    }
}
