use super::*;

const OUTLOOK: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>alice@contoso.com</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#;

fn body(inner: &str, ns: &str) -> String {
    format!("<Autodiscover xmlns=\"{ns}\"><Request>{inner}</Request></Autodiscover>")
}

#[test]
fn outlook_request_is_parsed() {
    let r = parse_request(OUTLOOK.as_bytes()).unwrap();
    assert_eq!(r.email.as_deref(), Some("alice@contoso.com"));
    assert_eq!(r.legacy_dn, None);
    assert_eq!(r.flavour, Flavour::Outlook);
}

#[test]
fn mobilesync_request_is_parsed_without_declaration() {
    let b = body(
        "<EMailAddress>bob@contoso.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema>",
        ns::MOBILESYNC_REQUEST,
    );
    let r = parse_request(b.as_bytes()).unwrap();
    assert_eq!(r.flavour, Flavour::MobileSync);
    assert_eq!(r.email.as_deref(), Some("bob@contoso.com"));
}

#[test]
fn whitespace_around_values_is_trimmed_and_bom_is_skipped() {
    let b = format!(
        "\u{FEFF}{}",
        body(
            "<EMailAddress>\n  alice@contoso.com\n</EMailAddress><AcceptableResponseSchema>\n http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\n</AcceptableResponseSchema>",
            ns::OUTLOOK_REQUEST
        )
    );
    let r = parse_request(b.as_bytes()).unwrap();
    assert_eq!(r.email.as_deref(), Some("alice@contoso.com"));
}

#[test]
fn legacy_dn_is_kept_beside_the_address() {
    let b = body(
        "<EMailAddress>alice@contoso.com</EMailAddress><LegacyDN>/o=Contoso/cn=alice</LegacyDN><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>",
        ns::OUTLOOK_REQUEST,
    );
    let r = parse_request(b.as_bytes()).unwrap();
    assert_eq!(r.legacy_dn.as_deref(), Some("/o=Contoso/cn=alice"));
}

#[test]
fn escaped_text_is_unescaped() {
    let b = body(
        "<EMailAddress>a&amp;b@contoso.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>",
        ns::OUTLOOK_REQUEST,
    );
    assert_eq!(
        parse_request(b.as_bytes()).unwrap().email.as_deref(),
        Some("a&b@contoso.com")
    );
}

fn code_of(b: &[u8]) -> ErrorCode {
    parse_request(b).unwrap_err().code
}

#[test]
fn malformed_requests_are_600() {
    assert_eq!(code_of(b""), ErrorCode::InvalidRequest);
    assert_eq!(code_of(b"not xml"), ErrorCode::InvalidRequest);
    assert_eq!(
        code_of(b"<Autodiscover><Request>"),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code_of(b"<Other><Request/></Other>"),
        ErrorCode::InvalidRequest
    );
    assert_eq!(code_of(b"<Autodiscover/>"), ErrorCode::InvalidRequest);
    assert_eq!(
        code_of(b"<Autodiscover></Autodiscover>"),
        ErrorCode::InvalidRequest
    );
    let no_address = body(
        "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>",
        ns::OUTLOOK_REQUEST,
    );
    assert_eq!(code_of(no_address.as_bytes()), ErrorCode::InvalidRequest);
    let no_schema = body("<EMailAddress>a@b.c</EMailAddress>", ns::OUTLOOK_REQUEST);
    assert_eq!(code_of(no_schema.as_bytes()), ErrorCode::InvalidRequest);
}

#[test]
fn doctype_and_entities_are_refused() {
    let b = br#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>"#;
    assert_eq!(code_of(b), ErrorCode::InvalidRequest);
    let undefined = body("<EMailAddress>&x;</EMailAddress>", ns::OUTLOOK_REQUEST);
    assert_eq!(code_of(undefined.as_bytes()), ErrorCode::InvalidRequest);
}

#[test]
fn unknown_schema_is_601_in_the_request_flavour() {
    let b = body(
        "<EMailAddress>a@b.c</EMailAddress><AcceptableResponseSchema>urn:nothing</AcceptableResponseSchema>",
        ns::MOBILESYNC_REQUEST,
    );
    let err = parse_request(b.as_bytes()).unwrap_err();
    assert_eq!(err.code, ErrorCode::ProviderUnavailable);
    assert_eq!(err.flavour, Flavour::MobileSync);
}

#[test]
fn deep_nesting_is_refused() {
    let mut b = String::from("<Autodiscover><Request>");
    for _ in 0..100 {
        b.push_str("<x>");
    }
    assert_eq!(code_of(b.as_bytes()), ErrorCode::InvalidRequest);
}

#[test]
fn redirect_addr_has_no_user_element() {
    let doc = String::from_utf8(render_outlook_redirect_addr(
        "alice@contoso.mail.onmicrosoft.com",
    ))
    .unwrap();
    assert!(doc.contains("<Action>redirectAddr</Action>"));
    assert!(!doc.contains("<User>"));
}

#[test]
fn outlook_error_response_stays_in_the_base_namespace() {
    let stamp = ErrorStamp {
        nanos_since_midnight: 0,
        server_id: 7,
    };
    let doc = String::from_utf8(render_error(
        Flavour::Outlook,
        ErrorCode::AddressNotFound,
        stamp,
        None,
    ))
    .unwrap();
    assert!(doc.contains("  <Response>\n"));
    assert!(doc.contains("<ErrorCode>500</ErrorCode>"));
    assert!(doc.contains("Time=\"00:00:00.0000000\" Id=\"7\""));
}

#[test]
fn internet_mail_settings_carry_imap_pop3_and_smtp_blocks_as_outlook_reads_them() {
    use crate::config::mail::{AuthMethod, InternetServers, LoginForm, MailServer, Security};
    let server = |host: &str, port, security| {
        Some(MailServer {
            host: host.into(),
            port,
            security,
        })
    };
    let servers = InternetServers {
        imap: server("imap.fabrikam.com", 993, Security::Tls),
        pop3: server("pop.fabrikam.com", 110, Security::Plain),
        smtp: server("smtp.fabrikam.com", 587, Security::StartTls),
        login: LoginForm::Address,
        authentication: vec![AuthMethod::PasswordEncrypted],
    };
    let body = render_outlook_internet_settings(
        "Frank <F>",
        "frank@fabrikam.com",
        &servers,
        "frank@fabrikam.com",
    );
    let text = String::from_utf8(body).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let account = doc
        .descendants()
        .find(|n| n.has_tag_name("Account"))
        .unwrap();
    let child = |n: roxmltree::Node, name: &str| {
        n.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .map(str::to_string)
    };
    assert_eq!(child(account, "AccountType").as_deref(), Some("email"));
    assert_eq!(child(account, "Action").as_deref(), Some("settings"));
    let protocols: Vec<_> = account
        .children()
        .filter(|c| c.has_tag_name("Protocol"))
        .collect();
    let summary: Vec<_> = protocols
        .iter()
        .map(|p| {
            (
                child(*p, "Type").unwrap(),
                child(*p, "Server").unwrap(),
                child(*p, "Port").unwrap(),
                child(*p, "SSL").unwrap(),
                child(*p, "Encryption").unwrap(),
                child(*p, "SPA").unwrap(),
            )
        })
        .collect();
    let row = |t: &str, s: &str, p: &str, ssl: &str, enc: &str| {
        (
            t.into(),
            s.into(),
            p.into(),
            ssl.into(),
            enc.into(),
            "on".to_string(),
        )
    };
    assert_eq!(
        summary,
        vec![
            row("IMAP", "imap.fabrikam.com", "993", "on", "SSL"),
            row("POP3", "pop.fabrikam.com", "110", "off", "None"),
            row("SMTP", "smtp.fabrikam.com", "587", "on", "TLS"),
        ]
    );
    for p in &protocols {
        assert_eq!(
            child(*p, "LoginName").as_deref(),
            Some("frank@fabrikam.com")
        );
        assert_eq!(child(*p, "AuthRequired").as_deref(), Some("on"));
    }
    let smtp = protocols.last().unwrap();
    assert_eq!(child(*smtp, "UsePOPAuth").as_deref(), Some("on"));
    assert_eq!(child(*smtp, "SMTPLast").as_deref(), Some("off"));
    assert_eq!(child(protocols[0], "UsePOPAuth"), None);
    // The display name is escaped, never markup.
    assert!(text.contains("<DisplayName>Frank &lt;F&gt;</DisplayName>"));
}
