use std::path::PathBuf;

use roxmltree::{Document, Node};

use super::*;
use crate::config::Config;
use crate::directory::{Recipient, RecipientType};
use crate::settings::mailbox_settings;

/// A GetUserSettings request (MS-OXWSADISC) with WS-Addressing headers, a padded mailbox
/// and a setting this server has no value for (ExternalUMUrl: a UserSettingError).
const GET_USER_SETTINGS_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
            xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover"
            xmlns:wsa="http://www.w3.org/2005/08/addressing">
  <s:Header>
    <a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion>
    <wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action>
    <wsa:To>https://autodiscover.contoso.com/autodiscover/autodiscover.svc</wsa:To>
  </s:Header>
  <s:Body>
    <a:GetUserSettingsRequestMessage>
      <a:Request>
        <a:Users><a:User><a:Mailbox> alice@contoso.com </a:Mailbox></a:User></a:Users>
        <a:RequestedSettings>
          <a:Setting>ExternalEwsUrl</a:Setting>
          <a:Setting>AutoDiscoverSMTPAddress</a:Setting>
          <a:Setting>EwsSupportedSchemas</a:Setting>
          <a:Setting>ExternalUMUrl</a:Setting>
        </a:RequestedSettings>
      </a:Request>
    </a:GetUserSettingsRequestMessage>
  </s:Body>
</s:Envelope>"#;

fn envelope(body: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover"><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

fn settings() -> (MailboxSettings, ServerVersion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/autodiscoverd.example.toml");
    let config = Config::load(&path).unwrap();
    let recipient = Recipient {
        display_name: "Alice <A&B>".into(),
        primary_smtp: "alice@contoso.com".into(),
        addresses: vec!["alice@contoso.com".into()],
        legacy_dn: Some(
            "/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=alice"
                .into(),
        ),
        mailbox_guid: None,
        recipient_type: RecipientType::UserMailbox,
        remote_recipient_type: 0,
        target_address: None,
        has_local_mailbox: true,
        enabled: true,
        mailbox_kind: None,
    };
    (
        mailbox_settings(&config.org, &config.services, &recipient),
        ServerVersion::from_build(config.services.exchange_version),
    )
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn elements<'a>(node: Node<'a, 'a>) -> Vec<Node<'a, 'a>> {
    node.children().filter(|n| n.is_element()).collect()
}

fn child<'a>(node: Node<'a, 'a>, name: &str) -> Node<'a, 'a> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .unwrap_or_else(|| panic!("no {name} under {}", node.tag_name().name()))
}

#[test]
fn the_documented_request_is_parsed_with_trimmed_values() {
    let r = parse_request(GET_USER_SETTINGS_REQUEST.as_bytes()).unwrap();
    assert_eq!(
        r,
        SoapRequest::GetUserSettings(GetUserSettings {
            mailboxes: names(&["alice@contoso.com"]),
            settings: names(&[
                "ExternalEwsUrl",
                "AutoDiscoverSMTPAddress",
                "EwsSupportedSchemas",
                "ExternalUMUrl"
            ]),
            requested_server_version: Some("Exchange2013".into()),
        })
    );
    assert_eq!(r.request_error(), None);
}

#[test]
fn prefixes_do_not_matter_but_namespaces_do() {
    // Default namespace on the message, other prefixes elsewhere: same request.
    let body = r#"<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>
      <GetUserSettingsRequestMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover">
        <Request><Users><User><Mailbox>a@contoso.com</Mailbox></User><User><Mailbox>b@contoso.com</Mailbox></User></Users>
        <RequestedSettings><Setting>UserDN</Setting></RequestedSettings></Request>
      </GetUserSettingsRequestMessage></env:Body></env:Envelope>"#;
    let SoapRequest::GetUserSettings(r) = parse_request(body.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(r.mailboxes, names(&["a@contoso.com", "b@contoso.com"]));
    assert_eq!(r.settings, names(&["UserDN"]));
    // The right local names in a foreign namespace are not our elements.
    let body = envelope(
        r#"<a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><x:Mailbox xmlns:x="urn:x">a@contoso.com</x:Mailbox></a:User></a:Users></a:Request></a:GetUserSettingsRequestMessage>"#,
    );
    let r = parse_request(body.as_bytes()).unwrap();
    assert_eq!(
        r.request_error(),
        Some("The request contains no users or domains.")
    );
    // The operation itself in the https:// namespace of the doc samples is unknown (rule 1).
    let body = envelope(
        r#"<b:GetUserSettingsRequestMessage xmlns:b="https://schemas.microsoft.com/exchange/2010/Autodiscover"/>"#,
    );
    assert_eq!(
        parse_request(body.as_bytes()),
        Err(SoapError::UnknownOperation(
            "GetUserSettingsRequestMessage".into()
        ))
    );
}

#[test]
fn domain_settings_requests_are_parsed() {
    let body = envelope(
        "<a:GetDomainSettingsRequestMessage><a:Request><a:Domains><a:Domain>contoso.com</a:Domain></a:Domains><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting></a:RequestedSettings></a:Request></a:GetDomainSettingsRequestMessage>",
    );
    assert_eq!(
        parse_request(body.as_bytes()).unwrap(),
        SoapRequest::GetDomainSettings(GetDomainSettings {
            domains: names(&["contoso.com"]),
            settings: names(&["ExternalEwsUrl"]),
            requested_server_version: None,
        })
    );
}

#[test]
fn malformed_envelopes_are_refused_with_the_right_error() {
    let deep = format!("{}{}", "<a:X>".repeat(40), "</a:X>".repeat(40));
    let cases: Vec<(String, &str)> = vec![
        ("not xml at all".into(), "malformed"),
        ("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>".into(), "malformed"),
        (
            "<!DOCTYPE s [<!ENTITY x \"y\">]><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"/>".into(),
            "malformed",
        ),
        ("<Autodiscover/>".into(), "malformed"),
        (
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body/></s:Envelope>".into(),
            "version",
        ),
        ("<Envelope><Body/></Envelope>".into(), "version"),
        (envelope(""), "malformed"),
        ("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header/></s:Envelope>".into(), "malformed"),
        (envelope("<a:GetFederationInformationRequestMessage/>"), "operation"),
        (envelope(&format!("<a:GetUserSettingsRequestMessage>{deep}</a:GetUserSettingsRequestMessage>")), "malformed"),
        (
            envelope("<a:GetUserSettingsRequestMessage/><a:GetDomainSettingsRequestMessage/>"),
            "malformed",
        ),
    ];
    for (body, kind) in cases {
        let err = parse_request(body.as_bytes()).unwrap_err();
        let ok = match kind {
            "malformed" => matches!(err, SoapError::Malformed(_)),
            "version" => err == SoapError::VersionMismatch,
            _ => matches!(err, SoapError::UnknownOperation(_)),
        };
        assert!(ok, "{body}: {err:?}");
        let fault = err.fault();
        assert!(fault.code.starts_with("s:"));
    }
}

#[test]
fn too_many_users_is_an_invalid_request() {
    let users = "<a:User><a:Mailbox>a@contoso.com</a:Mailbox></a:User>".repeat(MAX_USERS + 1);
    let body = envelope(&format!(
        "<a:GetUserSettingsRequestMessage><a:Request><a:Users>{users}</a:Users><a:RequestedSettings><a:Setting>UserDN</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage>"
    ));
    let r = parse_request(body.as_bytes()).unwrap();
    assert!(r.request_error().unwrap().contains("too many"));
}

#[test]
fn ews_supported_schemas_is_the_rule_15_string() {
    let (_, sv) = settings();
    assert_eq!(
        sv.ews_supported_schemas,
        "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2016"
    );
    assert_eq!(
        (sv.major, sv.minor, sv.major_build, sv.minor_build),
        (15, 2, 1258, 12)
    );
    assert_eq!(sv.version, "Exchange2015");
}

#[test]
fn only_requested_settings_are_returned_and_the_rest_are_errors() {
    let (s, sv) = settings();
    let requested = names(&[
        "ExternalEwsUrl",
        "ExternalUMUrl",
        "NoSuchSetting",
        "ExternalEwsUrl",
        "UserDisplayName",
        "ExternalWebClientUrls",
    ]);
    let answer = user_settings(&requested, &s, &sv);
    let UserAnswer::Settings { settings, errors } = &answer else {
        panic!()
    };
    let got: Vec<&str> = settings.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        got,
        vec!["ExternalEwsUrl", "UserDisplayName", "ExternalWebClientUrls"]
    );
    assert_eq!(
        errors,
        &vec![
            (
                SettingErrorCode::SettingIsNotAvailable,
                "ExternalUMUrl".to_string()
            ),
            (
                SettingErrorCode::InvalidSetting,
                "NoSuchSetting".to_string()
            ),
        ]
    );
    let xml = String::from_utf8(render_user_settings(&sv, &[answer], None)).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"));
    let doc = Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().namespace(), Some(SOAP11));
    let header = child(root, "Header");
    let action = child(header, "Action");
    assert_eq!(action.tag_name().namespace(), Some(WSA));
    assert_eq!(action.attribute((SOAP11, "mustUnderstand")), Some("1"));
    assert_eq!(
        action.text(),
        Some("http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse")
    );
    let info = child(header, "ServerVersionInfo");
    assert_eq!(info.tag_name().namespace(), Some(AUTODISCOVER));
    let message = child(child(root, "Body"), "GetUserSettingsResponseMessage");
    assert_eq!(message.tag_name().namespace(), Some(AUTODISCOVER));
    let response = child(message, "Response");
    let user = child(child(response, "UserResponses"), "UserResponse");
    let order: Vec<&str> = elements(user).iter().map(|n| n.tag_name().name()).collect();
    assert_eq!(
        order,
        vec![
            "ErrorCode",
            "ErrorMessage",
            "RedirectTarget",
            "UserSettingErrors",
            "UserSettings"
        ]
    );
    assert_eq!(
        child(user, "RedirectTarget").attribute((XSI, "nil")),
        Some("true")
    );
    let values: Vec<(String, Option<String>, Option<String>)> =
        elements(child(user, "UserSettings"))
            .into_iter()
            .map(|n| {
                (
                    n.attribute((XSI, "type")).unwrap().to_string(),
                    child(n, "Name").text().map(str::to_string),
                    n.children()
                        .find(|c| c.tag_name().name() == "Value")
                        .and_then(|v| v.text().map(str::to_string)),
                )
            })
            .collect();
    assert_eq!(
        values,
        vec![
            (
                "StringSetting".into(),
                Some("ExternalEwsUrl".into()),
                Some("https://mail.contoso.com/EWS/Exchange.asmx".into())
            ),
            (
                "StringSetting".into(),
                Some("UserDisplayName".into()),
                Some("Alice <A&B>".into())
            ),
            (
                "WebClientUrlCollectionSetting".into(),
                Some("ExternalWebClientUrls".into()),
                None
            ),
        ]
    );
    let web = elements(child(user, "UserSettings"))[2];
    let url = child(child(web, "WebClientUrls"), "WebClientUrl");
    assert_eq!(child(url, "AuthenticationMethods").text(), Some("Fba"));
    assert_eq!(
        child(url, "Url").text(),
        Some("https://mail.contoso.com/owa/")
    );
    let errors = elements(child(user, "UserSettingErrors"));
    assert_eq!(
        child(errors[0], "ErrorCode").text(),
        Some("SettingIsNotAvailable")
    );
    assert_eq!(
        child(errors[0], "ErrorMessage").text(),
        Some("User setting 'ExternalUMUrl' is not available.")
    );
    assert_eq!(
        child(errors[1], "SettingName").text(),
        Some("NoSuchSetting")
    );
}

#[test]
fn every_documented_setting_is_answered_or_reported_as_not_available() {
    let (s, sv) = settings();
    let requested: Vec<String> = USER_SETTING_NAMES.iter().map(|n| n.to_string()).collect();
    let UserAnswer::Settings { settings, errors } = user_settings(&requested, &s, &sv) else {
        panic!()
    };
    assert_eq!(settings.len() + errors.len(), USER_SETTING_NAMES.len());
    assert!(errors
        .iter()
        .all(|(code, _)| *code == SettingErrorCode::SettingIsNotAvailable));
    let value = |name: &str| {
        settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let text = |v: &str| SettingValue::Text(v.to_string());
    assert_eq!(value("CasVersion"), text("15.02.1258.012"));
    assert_eq!(value("UserMSOnline"), text("False"));
    assert_eq!(value("MapiHttpEnabled"), text("True"));
    assert_eq!(value("ExternalMailboxServer"), text("mail.contoso.com"));
    assert_eq!(value("ExternalMailboxServerRequiresSSL"), text("True"));
    assert_eq!(
        value("ExternalMailboxServerAuthenticationMethods"),
        text("Ntlm")
    );
    assert_eq!(
        value("ActiveDirectoryServer"),
        text("dc01.corp.contoso.com")
    );
    assert_eq!(
        value("UserDeploymentId"),
        text("2b7e1f0c-5a3d-4e8b-9c61-0d2f4a6b8c90")
    );
    assert_eq!(value("AutoDiscoverSMTPAddress"), text("alice@contoso.com"));
    assert!(
        matches!(value("InternalMailboxServer"), SettingValue::Text(t) if t.ends_with("@contoso.com"))
    );
    assert!(
        matches!(value("MailboxDN"), SettingValue::Text(t) if t.ends_with("/cn=Microsoft Private MDB"))
    );
}

#[test]
fn redirect_invalid_user_and_server_error_answers_have_the_documented_shape() {
    let (_, sv) = settings();
    let answers = [
        UserAnswer::RedirectAddress("bob@contoso.mail.onmicrosoft.com".into()),
        UserAnswer::InvalidUser("nobody@contoso.com".into()),
        UserAnswer::InternalServerError,
    ];
    let xml = String::from_utf8(render_user_settings(&sv, &answers, None)).unwrap();
    let doc = Document::parse(&xml).unwrap();
    let users: Vec<Node> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "UserResponse")
        .collect();
    let code = |n: Node| child(n, "ErrorCode").text().unwrap_or("").to_string();
    assert_eq!(code(users[0]), "RedirectAddress");
    assert_eq!(
        child(users[0], "ErrorMessage").text(),
        Some("Redirection address.")
    );
    assert_eq!(
        child(users[0], "RedirectTarget").text(),
        Some("bob@contoso.mail.onmicrosoft.com")
    );
    assert!(elements(child(users[0], "UserSettings")).is_empty());
    assert_eq!(code(users[1]), "InvalidUser");
    assert_eq!(
        child(users[1], "ErrorMessage").text(),
        Some("Invalid user 'nobody@contoso.com'.")
    );
    assert_eq!(code(users[2]), "InternalServerError");
}

#[test]
fn an_invalid_request_has_the_request_level_error_code() {
    let (_, sv) = settings();
    let xml = String::from_utf8(render_user_settings(
        &sv,
        &[],
        Some("The request contains no users or domains."),
    ))
    .unwrap();
    let doc = Document::parse(&xml).unwrap();
    let response = doc
        .descendants()
        .find(|n| n.tag_name().name() == "Response")
        .unwrap();
    assert_eq!(child(response, "ErrorCode").text(), Some("InvalidRequest"));
    assert!(elements(child(response, "UserResponses")).is_empty());
}

#[test]
fn domain_settings_answer_only_the_two_domain_settings() {
    let (_, sv) = settings();
    let answers = [
        domain_settings(
            &names(&["ExternalEwsUrl", "ExternalEwsVersion", "UserDN"]),
            "https://mail.contoso.com/EWS/Exchange.asmx",
            "15.02.1258.012",
        ),
        DomainAnswer::InvalidDomain("fabrikam.com".into()),
    ];
    let xml = String::from_utf8(render_domain_settings(&sv, &answers, None)).unwrap();
    let doc = Document::parse(&xml).unwrap();
    let responses: Vec<Node> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "DomainResponse")
        .collect();
    let order: Vec<&str> = elements(responses[0])
        .iter()
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(
        order,
        vec![
            "ErrorCode",
            "ErrorMessage",
            "DomainSettingErrors",
            "DomainSettings",
            "RedirectTarget"
        ]
    );
    let settings = elements(child(responses[0], "DomainSettings"));
    assert_eq!(settings.len(), 2);
    assert_eq!(
        settings[0].attribute((XSI, "type")),
        Some("DomainStringSetting")
    );
    assert_eq!(
        child(
            child(responses[0], "DomainSettingErrors"),
            "DomainSettingError"
        )
        .children()
        .find(|n| n.tag_name().name() == "ErrorCode")
        .and_then(|n| n.text()),
        Some("InvalidSetting")
    );
    assert_eq!(
        child(responses[1], "ErrorCode").text(),
        Some("InvalidDomain")
    );
}

#[test]
fn faults_are_soap_11_faults() {
    let xml = String::from_utf8(render_fault(SoapError::VersionMismatch.fault())).unwrap();
    let doc = Document::parse(&xml).unwrap();
    let fault = child(child(doc.root_element(), "Body"), "Fault");
    assert_eq!(fault.tag_name().namespace(), Some(SOAP11));
    assert_eq!(child(fault, "faultcode").text(), Some("s:VersionMismatch"));
    assert_eq!(child(fault, "faultcode").tag_name().namespace(), None);
    assert!(child(fault, "faultstring").text().is_some());
}

mod properties {
    use proptest::prelude::*;

    use super::super::parse_request;
    use super::GET_USER_SETTINGS_REQUEST;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn soap_parser_answers_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_request(&data);
        }

        #[test]
        fn soap_parser_survives_mutations_of_a_real_request(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut data = GET_USER_SETTINGS_REQUEST.as_bytes().to_vec();
            for (at, byte) in edits {
                let i = at.index(data.len());
                data[i] = byte;
            }
            data.truncate(cut.index(data.len() + 1));
            let _ = parse_request(&data);
        }
    }
}
