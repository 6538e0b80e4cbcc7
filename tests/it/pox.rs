//! POX Autodiscover over real TLS: settings, redirects, errors, authentication, limits.

use roxmltree::{Document, Node};

use crate::harness::{mobilesync_request, outlook_request, set, TestServer};

const BASE: &str = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
const OUTLOOK: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
const MOBILESYNC: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006";
const PATH: &str = "/autodiscover/autodiscover.xml";

fn child<'a>(node: Node<'a, 'a>, name: &str) -> Node<'a, 'a> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .unwrap_or_else(|| panic!("no <{name}> under <{}>", node.tag_name().name()))
}

fn text<'a>(node: Node<'a, 'a>, name: &str) -> &'a str {
    child(node, name).text().unwrap_or("")
}

fn elements<'a>(node: Node<'a, 'a>) -> Vec<Node<'a, 'a>> {
    node.children().filter(|n| n.is_element()).collect()
}

/// Asserts the POX envelope rules and returns the parsed document.
fn parse(body: &str) -> Document<'_> {
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
        "declaration first: {body}"
    );
    let doc = Document::parse(body).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "Autodiscover");
    assert_eq!(root.tag_name().namespace(), Some(BASE));
    doc
}

fn protocol_types<'a>(account: Node<'a, 'a>) -> Vec<String> {
    elements(account)
        .into_iter()
        .filter(|n| n.tag_name().name() == "Protocol")
        .map(|p| match p.attribute("Type") {
            Some(t) => t.to_string(),
            None => text(p, "Type").to_string(),
        })
        .collect()
}

fn error_code(body: &str) -> (Option<String>, String) {
    let doc = parse(body);
    let response = child(doc.root_element(), "Response");
    let error = child(response, "Error");
    assert!(
        error.attribute("Time").is_some_and(|t| t.len() == 16),
        "Time attribute"
    );
    assert!(
        error
            .attribute("Id")
            .is_some_and(|i| i.parse::<u32>().is_ok()),
        "Id attribute"
    );
    (
        response.tag_name().namespace().map(str::to_string),
        text(error, "ErrorCode").to_string(),
    )
}

#[tokio::test]
async fn local_mailbox_gets_exch_expr_web_settings() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("text/xml; charset=utf-8")
    );
    assert_eq!(a.header("x-soap-enabled").as_deref(), Some("True"));
    let body = a.text();
    let doc = parse(&body);
    let response = child(doc.root_element(), "Response");
    assert_eq!(response.tag_name().namespace(), Some(OUTLOOK));
    let names: Vec<&str> = elements(response)
        .iter()
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(names, ["User", "Account"]);
    let user = child(response, "User");
    // Escaped on the wire, intact after parsing.
    assert_eq!(text(user, "DisplayName"), "Alice <Example> & Co");
    assert!(body.contains("Alice &lt;Example&gt; &amp; Co"));
    assert_eq!(text(user, "AutoDiscoverSMTPAddress"), "alice@contoso.com");
    assert_eq!(
        text(user, "DeploymentId"),
        "2b7e1f0c-5a3d-4e8b-9c61-0d2f4a6b8c90"
    );
    assert!(text(user, "LegacyDN").starts_with("/o=Contoso/ou=Exchange Administrative Group"));
    let account = child(response, "Account");
    assert_eq!(text(account, "AccountType"), "email");
    assert_eq!(text(account, "Action"), "settings");
    assert_eq!(text(account, "MicrosoftOnline"), "False");
    assert_eq!(protocol_types(account), ["EXCH", "EXPR", "WEB"]);
    let protocols: Vec<Node> = elements(account)
        .into_iter()
        .filter(|n| n.tag_name().name() == "Protocol")
        .collect();
    let exch = protocols[0];
    assert_eq!(
        text(exch, "Server"),
        "9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64@contoso.com"
    );
    assert_eq!(text(exch, "ServerVersion"), "73C284EA");
    assert_eq!(
        text(exch, "EwsUrl"),
        "https://mail.contoso.com/EWS/Exchange.asmx"
    );
    assert_eq!(
        text(exch, "ASUrl"),
        "https://mail.contoso.com/EWS/Exchange.asmx"
    );
    assert!(text(exch, "MdbDN").ends_with("/cn=Microsoft Private MDB"));
    let expr = protocols[1];
    assert_eq!(text(expr, "Server"), "mail.contoso.com");
    assert_eq!(text(expr, "SSL"), "On");
    assert_eq!(text(expr, "AuthPackage"), "Ntlm");
    assert_eq!(
        text(expr, "EwsUrl"),
        "https://mail.contoso.com/EWS/Exchange.asmx"
    );
    let web = protocols[2];
    let owa = child(child(web, "External"), "OWAUrl");
    assert_eq!(owa.attribute("AuthenticationMethod"), Some("Fba"));
    // DavMail reads EwsUrl line by line: open and close tag on one line.
    assert!(body
        .lines()
        .any(|l| l.trim() == "<EwsUrl>https://mail.contoso.com/EWS/Exchange.asmx</EwsUrl>"));
}

#[tokio::test]
async fn mapi_http_capability_gets_mapi_block_without_exch_and_expr() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[("X-MapiHttpCapability", "1")],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    let body = a.text();
    let doc = parse(&body);
    let account = child(child(doc.root_element(), "Response"), "Account");
    assert_eq!(protocol_types(account), ["mapiHttp", "WEB"]);
    let mapi = elements(account)
        .into_iter()
        .find(|n| n.attribute("Type") == Some("mapiHttp"))
        .unwrap();
    assert_eq!(mapi.attribute("Version"), Some("1"));
    assert_eq!(
        text(child(mapi, "MailStore"), "ExternalUrl"),
        "https://mail.contoso.com/mapi/emsmdb/?MailboxId=9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64@contoso.com"
    );
    assert_eq!(
        text(child(mapi, "AddressBook"), "ExternalUrl"),
        "https://mail.contoso.com/mapi/nspi/?MailboxId=9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64@contoso.com"
    );

    // An invalid capability value is ignored (MS-OXDSCLI §3.2.5.1).
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[("X-MapiHttpCapability", "yes")],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    let body = a.text();
    let doc = parse(&body);
    let account = child(child(doc.root_element(), "Response"), "Account");
    assert_eq!(protocol_types(account), ["EXCH", "EXPR", "WEB"]);
}

#[tokio::test]
async fn ex_http_info_gets_two_exhttp_blocks_internal_first() {
    let server = TestServer::start_with(&|t| {
        set(
            t,
            &["services", "outlook_anywhere", "internal_host"],
            "mail.corp.contoso.com".into(),
        );
    })
    .await;
    let mut c = server.client().await;
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[("X-ClientCanHandle", "Negotiate, ExHttpInfo")],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    let body = a.text();
    let doc = parse(&body);
    let account = child(child(doc.root_element(), "Response"), "Account");
    assert_eq!(
        protocol_types(account),
        ["EXCH", "EXPR", "WEB", "EXHTTP", "EXHTTP"]
    );
    let exhttp: Vec<Node> = elements(account)
        .into_iter()
        .filter(|p| p.tag_name().name() == "Protocol" && text(*p, "Type") == "EXHTTP")
        .collect();
    assert_eq!(text(exhttp[0], "Server"), "mail.corp.contoso.com");
    assert_eq!(text(exhttp[1], "Server"), "mail.contoso.com");
}

#[tokio::test]
async fn alias_address_answers_with_the_primary_address() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &outlook_request("SALES@contoso.com"),
        )
        .await;
    let body = a.text();
    let doc = parse(&body);
    let user = child(child(doc.root_element(), "Response"), "User");
    assert_eq!(
        text(user, "AutoDiscoverSMTPAddress"),
        "carol.jones@contoso.com"
    );
    assert_eq!(text(user, "DisplayName"), "Carol Jones (Sales)");
}

#[tokio::test]
async fn migrated_mailbox_gets_redirect_addr_to_target_address() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let a = c
        .post_basic(
            PATH,
            "bob@contoso.com",
            "bob-pw",
            &[],
            &outlook_request("bob@contoso.com"),
        )
        .await;
    assert_eq!(a.status, 200);
    let body = a.text();
    let doc = parse(&body);
    let response = child(doc.root_element(), "Response");
    assert_eq!(response.tag_name().namespace(), Some(OUTLOOK));
    let names: Vec<&str> = elements(response)
        .iter()
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(names, ["Account"], "no User element on a redirect");
    let account = child(response, "Account");
    assert_eq!(text(account, "Action"), "redirectAddr");
    assert_eq!(
        text(account, "RedirectAddr"),
        "bob@contoso.mail.onmicrosoft.com"
    );
}

#[tokio::test]
async fn legacy_dn_wins_over_the_email_address() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request>
        <EMailAddress>bob@contoso.com</EMailAddress>
        <LegacyDN>/o=Old/cn=alice</LegacyDN>
        <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
        </Request></Autodiscover>"#;
    let a = c
        .post_basic(PATH, "bob@contoso.com", "bob-pw", &[], body)
        .await;
    let text_body = a.text();
    let doc = parse(&text_body);
    let user = child(child(doc.root_element(), "Response"), "User");
    assert_eq!(text(user, "AutoDiscoverSMTPAddress"), "alice@contoso.com");
}

#[tokio::test]
async fn every_error_code_is_an_http_200_error_body() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let cases: Vec<(String, &str)> = vec![
        (outlook_request("nobody@contoso.com"), "500"),
        (outlook_request("partner@contoso.com"), "500"),
        (outlook_request("dave@contoso.com"), "501"),
        ("this is not xml".to_string(), "600"),
        (
            "<Autodiscover><Request></Request></Autodiscover>".to_string(),
            "600",
        ),
        (
            outlook_request("alice@contoso.com").replace(
                "outlook/responseschema/2006a",
                "nothing/responseschema/2006",
            ),
            "601",
        ),
        (outlook_request("frank@contoso.com"), "602"),
        (outlook_request("grace@contoso.com"), "602"),
    ];
    for (body, expected) in cases {
        let a = c
            .post_basic(PATH, "alice@contoso.com", "alice-pw", &[], &body)
            .await;
        assert_eq!(a.status, 200, "{expected}");
        assert_eq!(
            a.header("content-type").as_deref(),
            Some("text/xml; charset=utf-8")
        );
        let text_body = a.text();
        let (response_ns, code) = error_code(&text_body);
        assert_eq!(code, expected, "{text_body}");
        // Outlook errors keep Response in the base namespace (exchangelib reads errors there).
        assert_eq!(
            response_ns.as_deref(),
            Some(BASE),
            "Response must stay in the base namespace in an error"
        );
    }
}

#[tokio::test]
async fn missing_wrong_and_unknown_credentials_get_identical_401s() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let none = c
        .send(
            "POST",
            PATH,
            &[("Content-Type", "text/xml")],
            outlook_request("alice@contoso.com").as_bytes(),
        )
        .await;
    let wrong = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "nope",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    let unknown = c
        .post_basic(
            PATH,
            "mallory@contoso.com",
            "nope",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    let disabled = c
        .post_basic(
            PATH,
            "eve@contoso.com",
            "eve-pw",
            &[],
            &outlook_request("eve@contoso.com"),
        )
        .await;
    let empty = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    for a in [&none, &wrong, &unknown, &disabled, &empty] {
        assert_eq!(a.status, 401);
        assert_eq!(
            a.header_all("www-authenticate"),
            ["NTLM", "Basic realm=\"autodiscover.contoso.com\""]
        );
        assert_eq!(a.header("x-soap-enabled").as_deref(), Some("True"));
        assert_eq!(a.header("content-length").as_deref(), Some("0"));
        assert!(
            a.header("connection").is_none(),
            "401 must keep the connection alive"
        );
        assert!(a.body.is_empty());
    }
    let strip = |a: &crate::harness::Answer| {
        let mut h = a.headers.clone();
        h.remove("date");
        format!("{:?}", h)
    };
    assert_eq!(strip(&wrong), strip(&unknown));
    assert_eq!(strip(&wrong), strip(&disabled));
    // The same connection still works after the 401s.
    let ok = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn down_level_and_sam_logins_are_accepted() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for login in [
        "CONTOSO\\alice",
        "contoso\\ALICE",
        "contoso.com\\alice",
        "alice",
        "ALICE@CONTOSO.COM",
    ] {
        let a = c
            .post_basic(
                PATH,
                login,
                "alice-pw",
                &[],
                &outlook_request("alice@contoso.com"),
            )
            .await;
        assert_eq!(a.status, 200, "{login}");
    }
    let a = c
        .post_basic(
            PATH,
            "FABRIKAM\\alice",
            "alice-pw",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    assert_eq!(a.status, 401, "wrong NetBIOS domain");
}

#[tokio::test]
async fn get_without_credentials_is_401_and_authenticated_get_is_600() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let a = c
        .send("GET", "/Autodiscover/Autodiscover.xml", &[], b"")
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header("x-soap-enabled").as_deref(), Some("True"));
    let auth = crate::harness::client::basic("alice@contoso.com", "alice-pw");
    let a = c
        .send(
            "GET",
            "/autodiscover/autodiscover.xml",
            &[("Authorization", &auth)],
            b"",
        )
        .await;
    assert_eq!(a.status, 200);
    let body = a.text();
    assert_eq!(error_code(&body).1, "600");
}

#[tokio::test]
async fn mobilesync_gets_settings_redirect_and_action_errors() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &mobilesync_request("alice.example@contoso.com"),
        )
        .await;
    let body = a.text();
    let doc = parse(&body);
    let response = child(doc.root_element(), "Response");
    assert_eq!(response.tag_name().namespace(), Some(MOBILESYNC));
    assert_eq!(text(response, "Culture"), "en:us");
    assert_eq!(
        text(child(response, "User"), "EMailAddress"),
        "alice@contoso.com"
    );
    let server_el = child(child(child(response, "Action"), "Settings"), "Server");
    assert_eq!(text(server_el, "Type"), "MobileSync");
    assert_eq!(
        text(server_el, "Url"),
        "https://mail.contoso.com/Microsoft-Server-ActiveSync"
    );
    assert_eq!(
        text(server_el, "Name"),
        "https://mail.contoso.com/Microsoft-Server-ActiveSync"
    );

    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &mobilesync_request("bob@contoso.com"),
        )
        .await;
    let body = a.text();
    let doc = parse(&body);
    let action = child(child(doc.root_element(), "Response"), "Action");
    assert_eq!(text(action, "Redirect"), "bob@contoso.mail.onmicrosoft.com");

    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &mobilesync_request("nobody@contoso.com"),
        )
        .await;
    let body = a.text();
    let doc = parse(&body);
    let error = child(
        child(child(doc.root_element(), "Response"), "Action"),
        "Error",
    );
    assert_eq!(text(error, "Status"), "2");
}

#[tokio::test]
async fn oversized_bodies_get_413_and_garbage_gets_600() {
    let server =
        TestServer::start_with(&|t| set(t, &["server", "max_body_bytes"], 2048.into())).await;
    let mut c = server.client().await;
    let big = format!("<Autodiscover>{}</Autodiscover>", "x".repeat(4096));
    let a = c
        .post_basic(PATH, "alice@contoso.com", "alice-pw", &[], &big)
        .await;
    assert_eq!(a.status, 413);
    let mut c = server.client().await;
    let garbage: Vec<u8> = (0..1500u32).map(|i| (i * 7919 % 251) as u8).collect();
    let auth = crate::harness::client::basic("alice@contoso.com", "alice-pw");
    let a = c
        .send("POST", PATH, &[("Authorization", &auth)], &garbage)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(error_code(&a.text()).1, "600");
}

#[tokio::test]
async fn self_lookup_policy_hides_other_users() {
    let server =
        TestServer::start_with(&|t| set(t, &["auth", "lookup_policy"], "self".into())).await;
    let mut c = server.client().await;
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &outlook_request("carol.jones@contoso.com"),
        )
        .await;
    assert_eq!(error_code(&a.text()).1, "500");
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "alice-pw",
            &[],
            &outlook_request("alice.example@contoso.com"),
        )
        .await;
    assert!(a.text().contains("<Action>settings</Action>"));
}

#[tokio::test]
async fn shipped_example_directory_authenticates_with_argon2_hashes() {
    let root = crate::harness::repo_root();
    let server = TestServer::start_with(&|t| {
        set(
            t,
            &["directory", "file", "path"],
            root.join("config/directory.example.toml")
                .display()
                .to_string()
                .into(),
        );
    })
    .await;
    let mut c = server.client().await;
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "Alice-Demo-2026!",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.text().contains("<Action>settings</Action>"));
    let a = c
        .post_basic(
            PATH,
            "alice@contoso.com",
            "Alice-Demo-2026?",
            &[],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn other_paths_are_404_and_options_lists_methods() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(c.send("GET", "/", &[], b"").await.status, 404);
    assert_eq!(c.send("GET", "/owa/", &[], b"").await.status, 404);
    let a = c
        .send("OPTIONS", "/autodiscover/autodiscover.xml", &[], b"")
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("allow").as_deref(),
        Some("OPTIONS, GET, POST, HEAD")
    );
}

/// `organization.emulate_service_endpoints`: the service paths answer like an Exchange
/// front end (401 with the server's schemes; 501 once authenticated); off by default (404).
#[tokio::test]
async fn service_front_doors_are_emulated_only_when_configured() {
    let paths = [
        "/EWS/Exchange.asmx",
        "/OAB/0d4e7f31-2c2a-4b9f-a6a1-3f1c3b1f8a42/oab.xml",
        "/mapi/emsmdb/?MailboxId=alice@contoso.com",
        "/Microsoft-Server-ActiveSync",
    ];
    let plain = TestServer::start().await;
    let mut c = plain.client().await;
    for path in paths {
        assert_eq!(c.send("GET", path, &[], b"").await.status, 404, "{path}");
    }

    let server = TestServer::start_with(&|t| {
        set(
            t,
            &["organization", "emulate_service_endpoints"],
            true.into(),
        )
    })
    .await;
    let mut c = server.client().await;
    for path in paths {
        let a = c.send("GET", path, &[], b"").await;
        assert_eq!(a.status, 401, "{path}");
        let offers = a.header_all("www-authenticate");
        assert!(
            offers.iter().any(|o| o.starts_with("Basic")),
            "{path}: {offers:?}"
        );
        assert!(
            offers.iter().any(|o| o == "NTLM" || o == "Negotiate"),
            "{path}: {offers:?}"
        );
    }
    let auth = crate::harness::client::basic("alice@contoso.com", "alice-pw");
    let a = c
        .send(
            "POST",
            "/EWS/Exchange.asmx",
            &[("Authorization", auth.as_str())],
            b"<x/>",
        )
        .await;
    assert_eq!(a.status, 501, "{}", a.text());
    assert!(a.text().contains("front door only"), "{}", a.text());
    let wrong = crate::harness::client::basic("alice@contoso.com", "wrong");
    let a = c
        .send(
            "GET",
            "/EWS/Exchange.asmx",
            &[("Authorization", wrong.as_str())],
            b"",
        )
        .await;
    assert_eq!(a.status, 401);
    // Other paths stay unpublished.
    assert_eq!(c.send("GET", "/owa/", &[], b"").await.status, 404);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server =
        TestServer::start_with(&|t| set(t, &["server", "header_read_timeout_secs"], 1.into()))
            .await;
    let tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(crate::harness::client::client_config(&server.pki));
    let name = rustls_pki_types::ServerName::try_from("autodiscover.contoso.com").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "server kept a half-sent request open");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
