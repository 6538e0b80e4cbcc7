//! SOAP Autodiscover (`/autodiscover/autodiscover.svc`) over real TLS, and exchangelib's own
//! discovery against it.

use roxmltree::{Document, Node};

use crate::harness::client::basic;
use crate::harness::python::{python_with, run_script};
use crate::harness::{set, TestServer};

const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const ANS: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";
const WSA: &str = "http://www.w3.org/2005/08/addressing";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const PATH: &str = "/autodiscover/autodiscover.svc";
const SCHEMAS: &str = "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2016";

/// A GetUserSettings envelope as exchangelib 5 builds it (prefixes s/a/wsa/t/xsi).
pub(crate) fn get_user_settings(users: &[&str], settings: &[&str]) -> String {
    let users: String = users
        .iter()
        .map(|u| format!("<a:User><a:Mailbox>{u}</a:Mailbox></a:User>"))
        .collect();
    let settings: String = settings
        .iter()
        .map(|s| format!("<a:Setting>{s}</a:Setting>"))
        .collect();
    format!(
        r#"<?xml version='1.0' encoding='utf-8'?>
<s:Envelope xmlns:a="{ANS}" xmlns:s="{SOAP}" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:wsa="{WSA}" xmlns:xsi="{XSI}"><s:Header><a:RequestedServerVersion>Exchange2016</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action><wsa:To>https://autodiscover.contoso.com/autodiscover/autodiscover.svc</wsa:To></s:Header><s:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users>{users}</a:Users><a:RequestedSettings>{settings}</a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></s:Body></s:Envelope>"#
    )
}

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

fn names(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n.tag_name().name().to_string())
        .collect()
}

/// Checks the envelope, header and namespaces; returns the `Response` element.
fn response<'a>(doc: &'a Document<'a>, operation: &str) -> Node<'a, 'a> {
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "Envelope");
    assert_eq!(root.tag_name().namespace(), Some(SOAP));
    assert_eq!(names(&elements(root)), vec!["Header", "Body"]);
    let header = child(root, "Header");
    let action = child(header, "Action");
    assert_eq!(action.tag_name().namespace(), Some(WSA));
    assert_eq!(action.attribute((SOAP, "mustUnderstand")), Some("1"));
    assert_eq!(
        action.text(),
        Some(
            format!(
                "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/{operation}Response"
            )
            .as_str()
        )
    );
    let info = child(header, "ServerVersionInfo");
    assert_eq!(info.tag_name().namespace(), Some(ANS));
    assert_eq!(
        names(&elements(info)),
        vec![
            "MajorVersion",
            "MinorVersion",
            "MajorBuildNumber",
            "MinorBuildNumber",
            "Version"
        ]
    );
    assert!(elements(info)
        .iter()
        .all(|n| n.tag_name().namespace() == Some(ANS)));
    assert_eq!(text(info, "MajorVersion"), "15");
    assert_eq!(text(info, "MinorVersion"), "2");
    assert_eq!(text(info, "MajorBuildNumber"), "1258");
    assert_eq!(text(info, "MinorBuildNumber"), "12");
    assert_eq!(text(info, "Version"), "Exchange2015");
    let message = child(child(root, "Body"), &format!("{operation}ResponseMessage"));
    assert_eq!(message.tag_name().namespace(), Some(ANS));
    let response = child(message, "Response");
    assert_eq!(response.tag_name().namespace(), Some(ANS));
    response
}

fn parse_ok(a: &crate::harness::Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("text/xml; charset=utf-8")
    );
    assert_eq!(a.header("x-soap-enabled").as_deref(), Some("True"));
    let body = a.text();
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
        "{body}"
    );
    body
}

fn user_responses<'a>(response: Node<'a, 'a>) -> Vec<Node<'a, 'a>> {
    assert_eq!(text(response, "ErrorCode"), "NoError");
    elements(child(response, "UserResponses"))
}

/// (i:type, Name, Value) of every UserSetting.
fn settings_of(user: Node) -> Vec<(String, String, String)> {
    elements(child(user, "UserSettings"))
        .into_iter()
        .map(|s| {
            assert_eq!(s.tag_name().name(), "UserSetting");
            (
                s.attribute((XSI, "type")).unwrap_or("").to_string(),
                text(s, "Name").to_string(),
                s.children()
                    .find(|c| c.tag_name().name() == "Value")
                    .and_then(|v| v.text())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn setting_errors_of(user: Node) -> Vec<(String, String)> {
    elements(child(user, "UserSettingErrors"))
        .into_iter()
        .map(|e| {
            (
                text(e, "ErrorCode").to_string(),
                text(e, "SettingName").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn local_mailbox_gets_only_the_requested_settings() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = get_user_settings(
        &["alice@contoso.com"],
        &[
            "ExternalEwsUrl",
            "AutoDiscoverSMTPAddress",
            "EwsSupportedSchemas",
            "ExternalUMUrl",
            "UserDisplayName",
            "InternalWebClientUrls",
            "CasVersion",
            "NotASetting",
        ],
    );
    let a = c
        .post_basic(PATH, "alice@contoso.com", "alice-pw", &[], &body)
        .await;
    let xml = parse_ok(&a);
    let doc = Document::parse(&xml).unwrap();
    let response = response(&doc, "GetUserSettings");
    assert_eq!(
        names(&elements(response)),
        vec!["ErrorCode", "ErrorMessage", "UserResponses"]
    );
    let users = user_responses(response);
    assert_eq!(users.len(), 1);
    let user = users[0];
    assert_eq!(
        names(&elements(user)),
        vec![
            "ErrorCode",
            "ErrorMessage",
            "RedirectTarget",
            "UserSettingErrors",
            "UserSettings"
        ]
    );
    assert_eq!(text(user, "ErrorCode"), "NoError");
    assert_eq!(text(user, "ErrorMessage"), "No error.");
    assert_eq!(
        child(user, "RedirectTarget").attribute((XSI, "nil")),
        Some("true")
    );
    let settings = settings_of(user);
    let s = |t: &str, n: &str, v: &str| (t.to_string(), n.to_string(), v.to_string());
    assert_eq!(
        settings,
        vec![
            s(
                "StringSetting",
                "ExternalEwsUrl",
                "https://mail.contoso.com/EWS/Exchange.asmx"
            ),
            s(
                "StringSetting",
                "AutoDiscoverSMTPAddress",
                "alice@contoso.com"
            ),
            s("StringSetting", "EwsSupportedSchemas", SCHEMAS),
            s("StringSetting", "UserDisplayName", "Alice <Example> & Co"),
            s("WebClientUrlCollectionSetting", "InternalWebClientUrls", ""),
            s("StringSetting", "CasVersion", "15.02.1258.012"),
        ]
    );
    let web = elements(child(user, "UserSettings"))[4];
    let url = child(child(web, "WebClientUrls"), "WebClientUrl");
    assert_eq!(text(url, "AuthenticationMethods"), "Basic, Fba");
    assert_eq!(text(url, "Url"), "https://mail.contoso.com/owa/");
    assert_eq!(
        setting_errors_of(user),
        vec![
            (
                "SettingIsNotAvailable".to_string(),
                "ExternalUMUrl".to_string()
            ),
            ("InvalidSetting".to_string(), "NotASetting".to_string()),
        ]
    );
}

#[tokio::test]
async fn migrated_mailbox_gets_redirect_address_to_the_target() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = get_user_settings(&["bob@contoso.com"], &["ExternalEwsUrl"]);
    let a = c
        .post_basic(PATH, "bob@contoso.com", "bob-pw", &[], &body)
        .await;
    let xml = parse_ok(&a);
    let doc = Document::parse(&xml).unwrap();
    let user = user_responses(response(&doc, "GetUserSettings"))[0];
    assert_eq!(text(user, "ErrorCode"), "RedirectAddress");
    assert_eq!(text(user, "ErrorMessage"), "Redirection address.");
    assert_eq!(
        text(user, "RedirectTarget"),
        "bob@contoso.mail.onmicrosoft.com"
    );
    assert!(elements(child(user, "UserSettings")).is_empty());
    assert!(elements(child(user, "UserSettingErrors")).is_empty());
}

#[tokio::test]
async fn several_users_are_answered_in_order_with_the_pox_decision() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = get_user_settings(
        &[
            "alice@contoso.com",
            "SALES@contoso.com",
            "bob@contoso.com",
            "nobody@contoso.com",
            "dave@contoso.com",
            "frank@contoso.com",
            "partner@contoso.com",
        ],
        &["AutoDiscoverSMTPAddress"],
    );
    let a = c
        .post_basic(PATH, "alice@contoso.com", "alice-pw", &[], &body)
        .await;
    let xml = parse_ok(&a);
    let doc = Document::parse(&xml).unwrap();
    let users = user_responses(response(&doc, "GetUserSettings"));
    let codes: Vec<&str> = users.iter().map(|u| text(*u, "ErrorCode")).collect();
    assert_eq!(
        codes,
        vec![
            "NoError",
            "NoError",
            "RedirectAddress",
            "InvalidUser",
            "InvalidUser",
            "InternalServerError",
            "InvalidUser"
        ]
    );
    // The alias resolves to the primary address (AutoDiscoverSMTPAddress, [MS-OXDSCLI]
    // §2.2.4.1.1.1).
    assert_eq!(settings_of(users[1])[0].2, "carol.jones@contoso.com");
    assert_eq!(
        text(users[3], "ErrorMessage"),
        "Invalid user 'nobody@contoso.com'."
    );
}

#[tokio::test]
async fn lookup_policy_self_hides_other_users() {
    let server =
        TestServer::start_with(&|t| set(t, &["auth", "lookup_policy"], "self".into())).await;
    let mut c = server.client().await;
    let body = get_user_settings(
        &["bob@contoso.com", "alice@contoso.com"],
        &["ExternalEwsUrl"],
    );
    let a = c
        .post_basic(PATH, "alice@contoso.com", "alice-pw", &[], &body)
        .await;
    let xml = parse_ok(&a);
    let doc = Document::parse(&xml).unwrap();
    let users = user_responses(response(&doc, "GetUserSettings"));
    assert_eq!(text(users[0], "ErrorCode"), "InvalidUser");
    assert_eq!(text(users[1], "ErrorCode"), "NoError");
}

#[tokio::test]
async fn paths_are_case_insensitive_and_wssecurity_is_an_alias() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = get_user_settings(&["alice@contoso.com"], &["ExternalEwsUrl"]);
    for path in [
        "/Autodiscover/Autodiscover.svc",
        "/AutoDiscover/AutoDiscover.svc",
        "/autodiscover/autodiscover.svc/wssecurity",
        "/Autodiscover/Autodiscover.svc/WSSecurity",
    ] {
        let a = c
            .post_basic(path, "alice@contoso.com", "alice-pw", &[], &body)
            .await;
        let xml = parse_ok(&a);
        let doc = Document::parse(&xml).unwrap();
        let user = user_responses(response(&doc, "GetUserSettings"))[0];
        assert_eq!(text(user, "ErrorCode"), "NoError", "{path}");
    }
}

#[tokio::test]
async fn unauthenticated_probes_get_401_challenges_with_soap_enabled() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = get_user_settings(&["DUMMY@example.com"], &["AutoDiscoverSMTPAddress"]);
    let wrong = basic("alice@contoso.com", "wrong");
    for (method, auth, payload) in [
        ("POST", None, body.as_bytes()),
        ("GET", None, &b""[..]),
        ("HEAD", None, &b""[..]),
        ("POST", Some(wrong.as_str()), body.as_bytes()),
    ] {
        let mut headers = vec![("Content-Type", "text/xml; charset=utf-8")];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        // exchangelib sniffs the auth type with exactly this header on its probe.
        headers.push(("X-AnchorMailbox", "DUMMY@example.com"));
        let a = c.send(method, PATH, &headers, payload).await;
        assert_eq!(a.status, 401, "{method}");
        assert_eq!(
            a.header_all("www-authenticate"),
            vec![
                "NTLM".to_string(),
                "Basic realm=\"autodiscover.contoso.com\"".to_string()
            ]
        );
        assert_eq!(a.header("x-soap-enabled").as_deref(), Some("True"));
        assert!(a.body.is_empty());
        assert_ne!(a.header("connection").as_deref(), Some("close"));
    }
    // The connection survived every 401 (keep-alive: NTLM authenticates the connection, MS-NTHT).
    let a = c
        .send(
            "HEAD",
            PATH,
            &[("Authorization", &basic("alice@contoso.com", "alice-pw"))],
            b"",
        )
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn malformed_soap_gets_a_soap_fault_with_http_500() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let auth = basic("alice@contoso.com", "alice-pw");
    let cases: [(&str, &[u8], &str); 5] = [
        ("POST", b"this is not xml", "s:Client"),
        (
            "POST",
            b"<!DOCTYPE x [<!ENTITY a \"b\">]><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body/></s:Envelope>",
            "s:Client",
        ),
        (
            "POST",
            b"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body/></s:Envelope>",
            "s:VersionMismatch",
        ),
        (
            "POST",
            b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><a:GetFederationInformationRequestMessage xmlns:a=\"http://schemas.microsoft.com/exchange/2010/Autodiscover\"/></s:Body></s:Envelope>",
            "s:Client",
        ),
        ("GET", b"", "s:Client"),
    ];
    for (method, body, code) in cases {
        let a = c
            .send(
                method,
                PATH,
                &[("Authorization", &auth), ("Content-Type", "text/xml")],
                body,
            )
            .await;
        assert_eq!(a.status, 500, "{}", String::from_utf8_lossy(body));
        assert_eq!(
            a.header("content-type").as_deref(),
            Some("text/xml; charset=utf-8")
        );
        assert_eq!(a.header("x-soap-enabled").as_deref(), Some("True"));
        let xml = a.text();
        let doc = Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().namespace(), Some(SOAP));
        let fault = child(child(root, "Body"), "Fault");
        assert_eq!(fault.tag_name().namespace(), Some(SOAP));
        assert_eq!(text(fault, "faultcode"), code);
        assert!(!text(fault, "faultstring").is_empty());
    }
}

#[tokio::test]
async fn an_empty_user_list_is_a_request_level_invalid_request() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = get_user_settings(&[], &["ExternalEwsUrl"]);
    let a = c
        .post_basic(PATH, "alice@contoso.com", "alice-pw", &[], &body)
        .await;
    let xml = parse_ok(&a);
    let doc = Document::parse(&xml).unwrap();
    let response = response(&doc, "GetUserSettings");
    assert_eq!(text(response, "ErrorCode"), "InvalidRequest");
    assert!(elements(child(response, "UserResponses")).is_empty());
}

#[tokio::test]
async fn get_domain_settings_answers_accepted_domains_only() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:a="{ANS}" xmlns:wsa="{WSA}" xmlns:soap="{SOAP}">
  <soap:Header><a:RequestedServerVersion>Exchange2010</a:RequestedServerVersion></soap:Header>
  <soap:Body>
    <a:GetDomainSettingsRequestMessage>
      <a:Request>
        <a:Domains><a:Domain>contoso.com</a:Domain><a:Domain>fabrikam.com</a:Domain></a:Domains>
        <a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>ExternalEwsVersion</a:Setting></a:RequestedSettings>
      </a:Request>
    </a:GetDomainSettingsRequestMessage>
  </soap:Body>
</soap:Envelope>"#
    );
    let a = c
        .post_basic(PATH, "alice@contoso.com", "alice-pw", &[], &body)
        .await;
    let xml = parse_ok(&a);
    let doc = Document::parse(&xml).unwrap();
    let response = response(&doc, "GetDomainSettings");
    assert_eq!(text(response, "ErrorCode"), "NoError");
    let domains = elements(child(response, "DomainResponses"));
    assert_eq!(domains.len(), 2);
    assert_eq!(
        names(&elements(domains[0])),
        vec![
            "ErrorCode",
            "ErrorMessage",
            "DomainSettingErrors",
            "DomainSettings",
            "RedirectTarget"
        ]
    );
    let settings: Vec<(String, String, String)> = elements(child(domains[0], "DomainSettings"))
        .into_iter()
        .map(|s| {
            (
                s.attribute((XSI, "type")).unwrap_or("").to_string(),
                text(s, "Name").to_string(),
                text(s, "Value").to_string(),
            )
        })
        .collect();
    assert_eq!(
        settings,
        vec![
            (
                "DomainStringSetting".to_string(),
                "ExternalEwsUrl".to_string(),
                "https://mail.contoso.com/EWS/Exchange.asmx".to_string()
            ),
            (
                "DomainStringSetting".to_string(),
                "ExternalEwsVersion".to_string(),
                "15.02.1258.012".to_string()
            ),
        ]
    );
    assert_eq!(text(domains[1], "ErrorCode"), "InvalidDomain");
}

#[tokio::test]
async fn every_autodiscover_response_says_soap_is_enabled() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (method, path) in [
        // The EWS Managed API's unauthenticated probe for `X-SOAP-Enabled`.
        ("GET", "/autodiscover/autodiscover.xml"),
        ("POST", "/autodiscover/autodiscover.xml"),
        ("OPTIONS", "/autodiscover/autodiscover.svc"),
        ("PUT", "/autodiscover/autodiscover.svc"),
        (
            "GET",
            "/autodiscover/autodiscover.json?Protocol=Ews&Email=alice@contoso.com",
        ),
        (
            "GET",
            "/autodiscover/autodiscover.json?Protocol=Nope&Email=alice@contoso.com",
        ),
        ("GET", "/autodiscover/healthcheck.htm"),
        ("GET", "/Autodiscover/whatever"),
    ] {
        let a = c.send(method, path, &[], b"").await;
        assert_eq!(
            a.header("x-soap-enabled").as_deref(),
            Some("True"),
            "{method} {path} -> {}",
            a.status
        );
    }
    let a = c.send("GET", "/owa/", &[], b"").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.header("x-soap-enabled"), None);
}

#[tokio::test]
async fn exchangelib_discovers_a_local_mailbox_and_receives_the_hybrid_redirect() {
    let Some(python) = python_with(&["exchangelib"]) else {
        return;
    };
    let server = TestServer::start().await;
    let ca = server.pki.write_ca(server.dir.path());
    let port = server.https.port().to_string();
    let out = run_script(
        python,
        "exchangelib_discovery.py",
        vec![
            "--port".into(),
            port.into(),
            "--ca".into(),
            ca.into(),
            "alice@contoso.com:alice-pw".into(),
            "bob@contoso.com:bob-pw".into(),
        ],
        &server.path("python-tmp"),
    )
    .await;
    let stdout = &out.stdout;
    let records = out.json_lines();
    assert_eq!(records.len(), 2, "{stdout}");
    eprintln!("exchangelib saw:\n{stdout}");

    // alice: step 1 (https://contoso.com) has no DNS entry, step 2 reaches us, and
    // exchangelib ends at the configured EWS URL with the newest schema we list.
    let alice = &records[0];
    assert!(alice.get("error").is_none(), "{alice:#}");
    let result = &alice["result"];
    assert_eq!(
        result["ews_url"], "https://mail.contoso.com/EWS/Exchange.asmx",
        "{alice:#}"
    );
    assert_eq!(result["api_version"], "Exchange2016", "{alice:#}");
    assert_eq!(result["primary_smtp_address"], "alice@contoso.com");
    // The 401 offers NTLM before Basic and exchangelib prefers NTLM (requests-ntlm), so
    // this is also an NTLM interop run.
    assert_eq!(
        alice["auth_types"],
        serde_json::json!(["NTLM"]),
        "{alice:#}"
    );
    let attempts = alice["attempts"].as_array().unwrap();
    let last = attempts.last().unwrap();
    assert_eq!(
        last["url"],
        "https://autodiscover.contoso.com/autodiscover/autodiscover.svc"
    );
    assert_eq!(last["valid"], true);

    // bob: our server answers RedirectAddress; exchangelib restarts discovery for the
    // tenant address, which nothing serves in this test, so it fails *for that address*.
    let bob = &records[1];
    let responses = bob["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 1, "{bob:#}");
    assert_eq!(responses[0]["email"], "bob@contoso.com");
    assert_eq!(
        responses[0]["redirect_address"],
        "bob@contoso.mail.onmicrosoft.com"
    );
    assert_eq!(bob["error"]["type"], "AutoDiscoverFailed", "{bob:#}");
    assert!(
        bob["error"]["message"]
            .as_str()
            .unwrap()
            .contains("for email bob@contoso.mail.onmicrosoft.com"),
        "{bob:#}"
    );
    // It followed the redirect: the tenant candidates were tried after ours.
    let urls: Vec<&str> = bob["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["url"].as_str().unwrap())
        .collect();
    assert!(
        urls.contains(
            &"https://autodiscover.contoso.mail.onmicrosoft.com/autodiscover/autodiscover.svc"
        ),
        "{urls:?}"
    );
}
