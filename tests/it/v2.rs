//! AutodiscoverV2 (`/autodiscover/autodiscover.json`) over real TLS: every protocol in both
//! URL forms, case variants, the hybrid redirect, errors, the RedirectCount cap and the
//! anti-enumeration rule.

use serde_json::{json, Value};

use crate::harness::{set, Answer, TestServer, TlsClient};

const JSON: &str = "application/json; charset=utf-8";

/// (protocol as a client may spell it, expected Url) for the example configuration.
const PROTOCOLS: [(&str, &str); 8] = [
    (
        "AutodiscoverV1",
        "https://autodiscover.contoso.com/autodiscover/autodiscover.xml",
    ),
    (
        "autodiscoverv1",
        "https://autodiscover.contoso.com/autodiscover/autodiscover.xml",
    ),
    ("Ews", "https://mail.contoso.com/EWS/Exchange.asmx"),
    ("EWS", "https://mail.contoso.com/EWS/Exchange.asmx"),
    (
        "ActiveSync",
        "https://mail.contoso.com/Microsoft-Server-ActiveSync",
    ),
    (
        "activesync",
        "https://mail.contoso.com/Microsoft-Server-ActiveSync",
    ),
    ("Rest", "https://mail.contoso.com/api"),
    ("REST", "https://mail.contoso.com/api"),
];

/// Both URL forms for one address and protocol (the query form URL-encodes the address).
fn urls(email: &str, protocol: &str) -> [String; 2] {
    [
        format!("/autodiscover/autodiscover.json/v1.0/{email}?Protocol={protocol}"),
        format!(
            "/autodiscover/autodiscover.json?Email={}&Protocol={protocol}&RedirectCount=1",
            email.replace('@', "%40").replace('+', "%2B")
        ),
    ]
}

async fn get(c: &mut TlsClient, path: &str) -> Answer {
    // No Authorization header anywhere: V2 is anonymous.
    c.send("GET", path, &[], b"").await
}

fn json_body(a: &Answer) -> Value {
    assert_eq!(
        a.header("content-type").as_deref(),
        Some(JSON),
        "{}",
        a.status
    );
    serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("{e}: {}", a.text()))
}

#[tokio::test]
async fn every_protocol_answers_in_both_url_forms_and_echoes_the_spelling() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (protocol, url) in PROTOCOLS {
        for path in urls("alice@contoso.com", protocol) {
            let a = get(&mut c, &path).await;
            assert_eq!(a.status, 200, "{path}: {}", a.text());
            assert_eq!(a.header("cache-control").as_deref(), Some("private"));
            assert_eq!(a.header("x-soap-enabled").as_deref(), Some("True"));
            assert_eq!(a.header("www-authenticate"), None);
            assert_eq!(
                json_body(&a),
                json!({"Protocol": protocol, "Url": url}),
                "{path}"
            );
            // Key order as Exchange sends it.
            assert!(a.text().starts_with("{\"Protocol\":"), "{}", a.text());
        }
    }
}

#[tokio::test]
async fn path_and_parameter_names_are_case_insensitive() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for path in [
        "/AutoDiscover/AutoDiscover.json/V1.0/alice@contoso.com?protocol=Ews",
        "/Autodiscover/Autodiscover.json/v1.0/alice%40contoso.com?PROTOCOL=Ews",
        "/autodiscover/autodiscover.json?email=alice%40contoso.com&protocol=Ews&redirectcount=2",
        "/AUTODISCOVER/AUTODISCOVER.JSON?EMAIL=ALICE@CONTOSO.COM&PROTOCOL=Ews",
    ] {
        let a = get(&mut c, path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        assert_eq!(
            json_body(&a)["Url"],
            "https://mail.contoso.com/EWS/Exchange.asmx",
            "{path}"
        );
    }
}

#[tokio::test]
async fn migrated_mailbox_is_redirected_to_the_tenant_v2_endpoint() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (path, protocol, next) in [
        (
            "/autodiscover/autodiscover.json/v1.0/bob@contoso.com?Protocol=Ews".to_string(),
            "Ews",
            1,
        ),
        (
            "/autodiscover/autodiscover.json?Email=bob%40contoso.com&Protocol=activesync&RedirectCount=3"
                .to_string(),
            "activesync",
            4,
        ),
    ] {
        let a = get(&mut c, &path).await;
        assert_eq!(a.status, 302, "{path}: {}", a.text());
        assert_eq!(
            a.header("location"),
            Some(format!(
                "https://autodiscover-s.outlook.com/autodiscover/autodiscover.json?Email=bob%40contoso.mail.onmicrosoft.com&Protocol={protocol}&RedirectCount={next}"
            )),
            "{path}"
        );
        assert_eq!(a.header("x-soap-enabled").as_deref(), Some("True"));
    }
}

#[tokio::test]
async fn the_tenant_endpoint_comes_from_the_configuration() {
    let server = TestServer::start_with(&|t| {
        set(
            t,
            &["v2", "tenant_url"],
            "https://autodiscover-s.lab.example:8443".into(),
        )
    })
    .await;
    let mut c = server.client().await;
    let a = get(
        &mut c,
        "/autodiscover/autodiscover.json/v1.0/bob@contoso.com?Protocol=AutodiscoverV1",
    )
    .await;
    assert_eq!(a.status, 302);
    assert_eq!(
        a.header("location").as_deref(),
        Some("https://autodiscover-s.lab.example:8443/autodiscover/autodiscover.json?Email=bob%40contoso.mail.onmicrosoft.com&Protocol=AutodiscoverV1&RedirectCount=1")
    );
}

#[tokio::test]
async fn bad_or_missing_protocol_is_400_invalid_protocol() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (path, value) in [
        (
            "/autodiscover/autodiscover.json/v1.0/alice@contoso.com?Protocol=Substrate",
            "Substrate",
        ),
        (
            "/autodiscover/autodiscover.json?Email=alice%40contoso.com&Protocol=Ews2",
            "Ews2",
        ),
        ("/autodiscover/autodiscover.json/v1.0/alice@contoso.com", ""),
        // Checked before the address: unknown users get the same error.
        (
            "/autodiscover/autodiscover.json/v1.0/nobody@contoso.com?Protocol=Substrate",
            "Substrate",
        ),
    ] {
        let a = get(&mut c, path).await;
        assert_eq!(a.status, 400, "{path}");
        assert_eq!(
            json_body(&a),
            json!({
                "ErrorCode": "InvalidProtocol",
                "ErrorMessage": format!("The given protocol value '{value}' is invalid. Supported values are 'AutodiscoverV1,Ews,ActiveSync,Rest'")
            }),
            "{path}"
        );
    }
}

#[tokio::test]
async fn other_bad_requests_get_json_errors() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (path, status, code) in [
        ("/autodiscover/autodiscover.json?Protocol=Ews", 400, "InvalidUser"),
        (
            "/autodiscover/autodiscover.json?Protocol=Ews&Email=not-an-address",
            400,
            "InvalidUser",
        ),
        (
            "/autodiscover/autodiscover.json?Protocol=Ews&Email=alice%40contoso.com&RedirectCount=x",
            400,
            "InvalidRequest",
        ),
        (
            "/autodiscover/autodiscover.json?Protocol=Ews&Email=alice%40fabrikam.com",
            400,
            "InvalidDomain",
        ),
        (
            "/autodiscover/autodiscover.json/v2.0/alice@contoso.com?Protocol=Ews",
            404,
            "NotFound",
        ),
    ] {
        let a = get(&mut c, path).await;
        assert_eq!(a.status, status, "{path}: {}", a.text());
        assert_eq!(json_body(&a)["ErrorCode"], code, "{path}");
    }
    let a = c
        .send(
            "POST",
            "/autodiscover/autodiscover.json?Protocol=Ews&Email=alice%40contoso.com",
            &[],
            b"",
        )
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow").as_deref(), Some("OPTIONS, GET, HEAD"));
    let a = c
        .send(
            "HEAD",
            "/autodiscover/autodiscover.json/v1.0/alice@contoso.com?Protocol=Ews",
            &[],
            b"",
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type").as_deref(), Some(JSON));
    assert!(a.body.is_empty());
}

#[tokio::test]
async fn redirect_count_is_capped() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // Over the cap: refused for everyone, before any lookup.
    for email in ["alice", "bob", "nobody"] {
        let a = get(
            &mut c,
            &format!("/autodiscover/autodiscover.json?Email={email}%40contoso.com&Protocol=Ews&RedirectCount=11"),
        )
        .await;
        assert_eq!(a.status, 400, "{email}");
        assert_eq!(json_body(&a)["ErrorCode"], "TooManyRedirects");
    }
    // At the cap: a local mailbox is still answered, a redirect would exceed it.
    let a = get(
        &mut c,
        "/autodiscover/autodiscover.json?Email=alice%40contoso.com&Protocol=Ews&RedirectCount=10",
    )
    .await;
    assert_eq!(a.status, 200);
    let a = get(
        &mut c,
        "/autodiscover/autodiscover.json?Email=bob%40contoso.com&Protocol=Ews&RedirectCount=10",
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(json_body(&a)["ErrorCode"], "TooManyRedirects");
    let a = get(
        &mut c,
        "/autodiscover/autodiscover.json?Email=bob%40contoso.com&Protocol=Ews&RedirectCount=9",
    )
    .await;
    assert_eq!(a.status, 302);
    assert!(a.header("location").unwrap().ends_with("&RedirectCount=10"));
}

/// Status, body and every header but `Date`.
fn observable(a: &Answer) -> (u16, Vec<(String, String)>, String) {
    let mut headers: Vec<(String, String)> = a
        .headers
        .iter()
        .filter(|(k, _)| *k != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    headers.sort();
    (a.status.as_u16(), headers, a.text())
}

#[tokio::test]
async fn unknown_addresses_look_exactly_like_a_local_mailbox_of_the_domain() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // The domain-level answer: what a local mailbox of contoso.com gets. Unknown users,
    // contacts, mail users without a target and broken objects must be indistinguishable
    // from it, for every protocol and both URL forms.
    for (protocol, _) in PROTOCOLS {
        for (i, reference) in urls("alice@contoso.com", protocol).iter().enumerate() {
            let expected = observable(&get(&mut c, reference).await);
            assert_eq!(expected.0, 200);
            for other in [
                "nobody@contoso.com",
                "partner@contoso.com",
                "dave@contoso.com",
                "frank@contoso.com",
                "x.y+z@CONTOSO.COM",
            ] {
                let path = &urls(other, protocol)[i];
                let got = observable(&get(&mut c, path).await);
                assert_eq!(got, expected, "{path} differs from {reference}");
            }
        }
    }
}

#[tokio::test]
async fn reveal_unknown_users_gives_an_honest_404() {
    let server =
        TestServer::start_with(&|t| set(t, &["v2", "reveal_unknown_users"], true.into())).await;
    let mut c = server.client().await;
    let a = get(
        &mut c,
        "/autodiscover/autodiscover.json/v1.0/nobody@contoso.com?Protocol=Ews",
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(json_body(&a)["ErrorCode"], "InvalidUser");
    let a = get(
        &mut c,
        "/autodiscover/autodiscover.json/v1.0/alice@contoso.com?Protocol=Ews",
    )
    .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn curl_gets_the_same_answer_as_any_http_client() {
    // A second, independent HTTP client: curl over TLS with the test CA, resolving the
    // autodiscover name to the test listener.
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but curl is missing"
        );
        eprintln!("SKIPPED curl V2 check: curl is not installed");
        return;
    }
    let server = TestServer::start().await;
    let ca = server.pki.write_ca(server.dir.path());
    let port = server.https.port();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-i", "--cacert"])
            .arg(ca)
            .arg("--resolve")
            .arg(format!("autodiscover.contoso.com:{port}:127.0.0.1"))
            .arg(format!(
                "https://autodiscover.contoso.com:{port}/autodiscover/autodiscover.json/v1.0/alice@contoso.com?Protocol=Ews"
            ))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json; charset=utf-8"),
        "{head}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"Protocol": "Ews", "Url": "https://mail.contoso.com/EWS/Exchange.asmx"})
    );
}
