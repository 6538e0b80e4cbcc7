//! What the probe sends and how it reads the answers (pure): POX and SOAP request bodies
//! (through the crate's one XML writer), and parsers for POX ([MS-OXDSCLI] §2.2.4), SOAP
//! GetUserSettings ([MS-OXWSADISC]) and AutodiscoverV2 JSON answers into one [`Answer`].

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Serialize;

use crate::protocol::ns;
use crate::protocol::xml::XmlWriter;

const SOAP_ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP_AUTODISCOVER: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";
const WS_ADDRESSING: &str = "http://www.w3.org/2005/08/addressing";
const GET_USER_SETTINGS_ACTION: &str =
    "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings";

/// The settings a SOAP probe asks for (the ones real clients read).
pub const SOAP_SETTINGS: [&str; 14] = [
    "UserDisplayName",
    "UserDN",
    "UserDeploymentId",
    "AutoDiscoverSMTPAddress",
    "UserMSOnline",
    "ExternalEwsUrl",
    "InternalEwsUrl",
    "EwsSupportedSchemas",
    "CasVersion",
    "MailboxDN",
    "InternalMailboxServer",
    "ExternalMailboxServer",
    "MapiHttpEnabled",
    "ExternalOABUrl",
];

/// An Outlook POX request for `email` ([MS-OXDSCLI] §4.1).
pub fn pox_request(email: &str) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open("Autodiscover", &[("xmlns", ns::OUTLOOK_REQUEST)]);
    w.open("Request", &[]);
    w.leaf("EMailAddress", email);
    w.leaf("AcceptableResponseSchema", ns::OUTLOOK_RESPONSE);
    w.close("Request");
    w.close("Autodiscover");
    w.finish()
}

/// A SOAP GetUserSettings request for `email`, addressed to `to` ([MS-OXWSADISC]).
pub fn soap_request(email: &str, to: &str) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open(
        "s:Envelope",
        &[
            ("xmlns:s", SOAP_ENVELOPE),
            ("xmlns:a", SOAP_AUTODISCOVER),
            ("xmlns:wsa", WS_ADDRESSING),
        ],
    );
    w.open("s:Header", &[]);
    w.leaf("a:RequestedServerVersion", "Exchange2013");
    w.leaf("wsa:Action", GET_USER_SETTINGS_ACTION);
    w.leaf("wsa:To", to);
    w.close("s:Header");
    w.open("s:Body", &[]);
    w.open("a:GetUserSettingsRequestMessage", &[]);
    w.open("a:Request", &[]);
    w.open("a:Users", &[]);
    w.open("a:User", &[]);
    w.leaf("a:Mailbox", email);
    w.close("a:User");
    w.close("a:Users");
    w.open("a:RequestedSettings", &[]);
    for setting in SOAP_SETTINGS {
        w.leaf("a:Setting", setting);
    }
    w.close("a:RequestedSettings");
    w.close("a:Request");
    w.close("a:GetUserSettingsRequestMessage");
    w.close("s:Body");
    w.close("s:Envelope");
    w.finish()
}

/// One top-level POX `Protocol` block, flattened: leaf paths below the block → text
/// (`MailStore/ExternalUrl`, `External/OWAUrl@AuthenticationMethod`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtocolBlock {
    #[serde(rename = "type")]
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

impl ProtocolBlock {
    /// A field by path.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.fields.get(path).map(String::as_str)
    }
}

/// The AutodiscoverV2 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct V2Answer {
    pub protocol: String,
    pub url: String,
}

/// Settings obtained from any flavour. Absent parts are omitted from JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_dn: Option<String>,
    /// AutoDiscoverSMTPAddress: the primary address the client should use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub microsoft_online: Option<bool>,
    /// The EWS URL a client would use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ews_url: Option<String>,
    /// MAPI over HTTP mail store URL (external first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapi_mailstore_url: Option<String>,
    /// POX `Protocol` blocks in document order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<ProtocolBlock>,
    /// SOAP user settings by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub user_settings: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v2: Option<V2Answer>,
}

impl Settings {
    /// The first POX protocol block of a type (`EXCH`, `mapiHttp`, …).
    pub fn protocol(&self, kind: &str) -> Option<&ProtocolBlock> {
        self.protocols
            .iter()
            .find(|p| p.kind.eq_ignore_ascii_case(kind))
    }
}

/// A parsed Autodiscover answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Settings(Box<Settings>),
    /// Restart discovery for this address.
    RedirectAddr(String),
    /// Repeat the request at this URL.
    RedirectUrl(String),
    /// An Autodiscover error (POX code 500–603, SOAP error code, V2 error).
    Error {
        code: String,
        message: String,
    },
}

/// A minimal element tree: local names, attributes, concatenated text.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn path(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, name| node.child(name))
    }

    fn text_at(&self, path: &[&str]) -> Option<String> {
        self.path(path)
            .map(|n| n.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

const MAX_DEPTH: usize = 64;

fn local(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match name.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => name.into_owned(),
    }
}

fn element(start: &quick_xml::events::BytesStart<'_>) -> Result<Node, String> {
    let mut node = Node {
        name: local(start.name().as_ref()),
        ..Node::default()
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = attr
            .unescape_value()
            .map_err(|e| format!("bad attribute value: {e}"))?;
        node.attrs.push((local(key.as_bytes()), value.into_owned()));
    }
    Ok(node)
}

fn parse_tree(body: &[u8]) -> Result<Node, String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("XML nested too deep".into());
                }
                stack.push(element(&start)?);
            }
            Event::Empty(start) => {
                let node = element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(text) => {
                let value = text.unescape().map_err(|e| format!("bad text: {e}"))?;
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&value);
                }
            }
            Event::CData(data) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&String::from_utf8_lossy(data.as_ref()));
                }
            }
            Event::DocType(_) => return Err("the answer contains a DOCTYPE".into()),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no XML element in the answer".into())
}

fn flatten(node: &Node, prefix: &str, out: &mut BTreeMap<String, String>) {
    for (k, v) in &node.attrs {
        if !prefix.is_empty() {
            out.insert(format!("{prefix}@{k}"), v.clone());
        }
    }
    if node.children.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.to_string(), node.text.trim().to_string());
        }
        return;
    }
    for child in &node.children {
        let path = if prefix.is_empty() {
            child.name.clone()
        } else {
            format!("{prefix}/{}", child.name)
        };
        flatten(child, &path, out);
    }
}

fn protocol_block(node: &Node) -> ProtocolBlock {
    let kind = node
        .attr("Type")
        .map(str::to_string)
        .or_else(|| node.text_at(&["Type"]))
        .unwrap_or_default();
    let mut fields = BTreeMap::new();
    for child in node.children.iter().filter(|c| c.name != "Type") {
        flatten(child, &child.name, &mut fields);
    }
    if let Some(v) = node.attr("Version") {
        fields.insert("@Version".into(), v.to_string());
    }
    ProtocolBlock { kind, fields }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Reads a POX answer.
pub fn parse_pox(body: &[u8]) -> Result<Answer, String> {
    let root = parse_tree(body)?;
    if root.name != "Autodiscover" {
        return Err(format!(
            "the root element is `{}`, not Autodiscover",
            root.name
        ));
    }
    let response = root
        .child("Response")
        .ok_or("no Response element in the answer")?;
    if let Some(error) = response
        .child("Error")
        .or_else(|| response.path(&["Action", "Error"]))
    {
        return Ok(Answer::Error {
            code: error
                .text_at(&["ErrorCode"])
                .or_else(|| error.text_at(&["Status"]))
                .unwrap_or_else(|| "?".into()),
            message: error.text_at(&["Message"]).unwrap_or_default(),
        });
    }
    let account = response
        .child("Account")
        .ok_or("no Account element in the answer (is it an Outlook-schema answer?)")?;
    let action = account.text_at(&["Action"]).unwrap_or_default();
    let redirect_addr = account.text_at(&["RedirectAddr"]);
    let redirect_url = account
        .text_at(&["RedirectUrl"])
        .or_else(|| account.text_at(&["RedirectURL"]));
    match (action.as_str(), redirect_addr, redirect_url) {
        ("redirectAddr", Some(addr), _) => return Ok(Answer::RedirectAddr(addr)),
        ("redirectUrl", _, Some(url)) => return Ok(Answer::RedirectUrl(url)),
        ("redirectAddr", None, _) => {
            return Err("Action is redirectAddr but RedirectAddr is missing".into())
        }
        ("redirectUrl", _, None) => {
            return Err("Action is redirectUrl but RedirectUrl is missing".into())
        }
        ("settings", _, _) => {}
        (other, _, _) => {
            return Err(format!(
                "unknown Action `{other}` (case-sensitive: settings, redirectAddr, redirectUrl)"
            ))
        }
    }
    let mut s = Settings {
        display_name: response.text_at(&["User", "DisplayName"]),
        legacy_dn: response.text_at(&["User", "LegacyDN"]),
        smtp_address: response.text_at(&["User", "AutoDiscoverSMTPAddress"]),
        deployment_id: response.text_at(&["User", "DeploymentId"]),
        microsoft_online: account
            .text_at(&["MicrosoftOnline"])
            .and_then(|t| parse_bool(&t)),
        protocols: account.children("Protocol").map(protocol_block).collect(),
        ..Settings::default()
    };
    let pick = |kind: &str, field: &str| {
        s.protocol(kind)
            .and_then(|p| p.get(field))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let ews_url = pick("EXPR", "EwsUrl")
        .or_else(|| pick("EXHTTP", "EwsUrl"))
        .or_else(|| pick("WEB", "External/Protocol/ASUrl"))
        .or_else(|| pick("EXCH", "EwsUrl"));
    let mapi = pick("mapiHttp", "MailStore/ExternalUrl")
        .or_else(|| pick("mapiHttp", "MailStore/InternalUrl"));
    s.ews_url = ews_url;
    s.mapi_mailstore_url = mapi;
    Ok(Answer::Settings(Box::new(s)))
}

/// Reads a SOAP GetUserSettings answer (the first user).
pub fn parse_soap(body: &[u8]) -> Result<Answer, String> {
    let root = parse_tree(body)?;
    if root.name != "Envelope" {
        return Err(format!(
            "the root element is `{}`, not a SOAP Envelope",
            root.name
        ));
    }
    let body = root.child("Body").ok_or("no SOAP Body")?;
    if let Some(fault) = body.child("Fault") {
        return Ok(Answer::Error {
            code: fault
                .text_at(&["faultcode"])
                .unwrap_or_else(|| "SOAP Fault".into()),
            message: fault.text_at(&["faultstring"]).unwrap_or_default(),
        });
    }
    let response = body
        .path(&["GetUserSettingsResponseMessage", "Response"])
        .ok_or("no GetUserSettingsResponseMessage/Response")?;
    let code = response.text_at(&["ErrorCode"]).unwrap_or_default();
    if !code.is_empty() && code != "NoError" {
        return Ok(Answer::Error {
            code,
            message: response.text_at(&["ErrorMessage"]).unwrap_or_default(),
        });
    }
    let user = response
        .path(&["UserResponses", "UserResponse"])
        .ok_or("no UserResponse")?;
    let code = user.text_at(&["ErrorCode"]).unwrap_or_default();
    let target = user.text_at(&["RedirectTarget"]);
    match (code.as_str(), target) {
        ("RedirectAddress", Some(t)) => return Ok(Answer::RedirectAddr(t)),
        ("RedirectUrl", Some(t)) => return Ok(Answer::RedirectUrl(t)),
        ("NoError" | "", _) => {}
        (other, _) => {
            return Ok(Answer::Error {
                code: other.to_string(),
                message: user.text_at(&["ErrorMessage"]).unwrap_or_default(),
            })
        }
    }
    let mut settings = BTreeMap::new();
    if let Some(list) = user.child("UserSettings") {
        for setting in list.children("UserSetting") {
            let Some(name) = setting.text_at(&["Name"]) else {
                continue;
            };
            let value = setting.text_at(&["Value"]).unwrap_or_else(|| {
                // Collection settings (WebClientUrls, …): list their URLs.
                let mut leaves = BTreeMap::new();
                flatten(setting, "", &mut leaves);
                leaves
                    .into_iter()
                    .filter(|(k, _)| k.ends_with("Url"))
                    .map(|(_, v)| v)
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            settings.insert(name, value);
        }
    }
    let s = Settings {
        display_name: settings.get("UserDisplayName").cloned(),
        legacy_dn: settings.get("UserDN").cloned(),
        smtp_address: settings.get("AutoDiscoverSMTPAddress").cloned(),
        deployment_id: settings.get("UserDeploymentId").cloned(),
        microsoft_online: settings.get("UserMSOnline").and_then(|v| parse_bool(v)),
        ews_url: settings
            .get("ExternalEwsUrl")
            .or_else(|| settings.get("InternalEwsUrl"))
            .cloned(),
        user_settings: settings,
        ..Settings::default()
    };
    Ok(Answer::Settings(Box::new(s)))
}

/// Reads an AutodiscoverV2 JSON answer.
pub fn parse_v2(body: &[u8]) -> Result<Answer, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_string);
    if let Some(url) = field("Url") {
        let protocol = field("Protocol").unwrap_or_default();
        let ews = protocol.eq_ignore_ascii_case("ews").then(|| url.clone());
        return Ok(Answer::Settings(Box::new(Settings {
            ews_url: ews,
            v2: Some(V2Answer { protocol, url }),
            ..Settings::default()
        })));
    }
    if let Some(code) = field("ErrorCode") {
        return Ok(Answer::Error {
            code,
            message: field("ErrorMessage").unwrap_or_default(),
        });
    }
    Err("JSON without Url or ErrorCode".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXO_MAPI: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <User>
      <DisplayName>Alice Example</DisplayName>
      <LegacyDN>/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=7a41c0d2e9b84f6c9e13a5b7c2d0e4f1-alice</LegacyDN>
      <AutoDiscoverSMTPAddress>alice@contoso.com</AutoDiscoverSMTPAddress>
      <DeploymentId>5e0d8c3a-1b7f-4a92-b6e4-3c8a0f1d2e75</DeploymentId>
    </User>
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
      <MicrosoftOnline>True</MicrosoftOnline>
      <Protocol Type="mapiHttp" Version="1">
        <MailStore>
          <ExternalUrl>https://outlook.office365.com/mapi/emsmdb/?MailboxId=9d0b7c2e@contoso.com</ExternalUrl>
        </MailStore>
      </Protocol>
      <Protocol>
        <Type>WEB</Type>
        <External>
          <OWAUrl AuthenticationMethod="LiveIdFba, OAuth">https://outlook.office365.com/owa/</OWAUrl>
          <Protocol><Type>EXPR</Type><ASUrl>https://outlook.office365.com/EWS/Exchange.asmx</ASUrl></Protocol>
        </External>
      </Protocol>
      <Protocol>
        <Type>EXHTTP</Type>
        <Server>outlook.office365.com</Server>
        <EwsUrl>https://outlook.office365.com/EWS/Exchange.asmx</EwsUrl>
      </Protocol>
    </Account>
  </Response>
</Autodiscover>"#;

    #[test]
    fn pox_requests_carry_the_address_and_the_outlook_schema() {
        let body = String::from_utf8(pox_request("a&b@contoso.com")).unwrap();
        assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"));
        assert!(body.contains("<EMailAddress>a&amp;b@contoso.com</EMailAddress>"));
        assert!(body.contains(ns::OUTLOOK_RESPONSE));
        // Our own server parses it.
        let parsed = crate::protocol::pox::parse_request(body.as_bytes()).unwrap();
        assert_eq!(parsed.email.as_deref(), Some("a&b@contoso.com"));
    }

    #[test]
    fn soap_requests_ask_for_every_listed_setting() {
        let body = String::from_utf8(soap_request(
            "alice@contoso.com",
            "https://h/autodiscover/autodiscover.svc",
        ))
        .unwrap();
        assert!(body.contains("<a:Mailbox>alice@contoso.com</a:Mailbox>"));
        assert!(body.contains("<wsa:To>https://h/autodiscover/autodiscover.svc</wsa:To>"));
        for s in SOAP_SETTINGS {
            assert!(body.contains(&format!("<a:Setting>{s}</a:Setting>")), "{s}");
        }
    }

    #[test]
    fn exchange_online_settings_are_read_from_pox() {
        let Answer::Settings(s) = parse_pox(EXO_MAPI.as_bytes()).unwrap() else {
            panic!("not settings");
        };
        assert_eq!(s.microsoft_online, Some(true));
        assert_eq!(s.smtp_address.as_deref(), Some("alice@contoso.com"));
        assert!(s
            .legacy_dn
            .as_deref()
            .unwrap()
            .starts_with("/o=ExchangeLabs/"));
        assert_eq!(
            s.mapi_mailstore_url.as_deref(),
            Some("https://outlook.office365.com/mapi/emsmdb/?MailboxId=9d0b7c2e@contoso.com")
        );
        assert_eq!(
            s.ews_url.as_deref(),
            Some("https://outlook.office365.com/EWS/Exchange.asmx")
        );
        let web = s.protocol("WEB").unwrap();
        assert_eq!(
            web.get("External/OWAUrl@AuthenticationMethod"),
            Some("LiveIdFba, OAuth")
        );
        assert_eq!(s.protocol("mapiHttp").unwrap().get("@Version"), Some("1"));
    }

    #[test]
    fn pox_redirects_and_errors_are_recognised() {
        let redirect = r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><Account><Action>redirectAddr</Action><RedirectAddr>alice@contoso.mail.onmicrosoft.com</RedirectAddr></Account></Response></Autodiscover>"#;
        assert_eq!(
            parse_pox(redirect.as_bytes()).unwrap(),
            Answer::RedirectAddr("alice@contoso.mail.onmicrosoft.com".into())
        );
        let url = r#"<Autodiscover><Response><Account><Action>redirectUrl</Action><RedirectURL>https://x/autodiscover/autodiscover.xml</RedirectURL></Account></Response></Autodiscover>"#;
        assert_eq!(
            parse_pox(url.as_bytes()).unwrap(),
            Answer::RedirectUrl("https://x/autodiscover/autodiscover.xml".into())
        );
        let error = r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response><Error Time="14:07:31.5120448" Id="3195628811"><ErrorCode>500</ErrorCode><Message>The email address can't be found.</Message><DebugData /></Error></Response></Autodiscover>"#;
        assert_eq!(
            parse_pox(error.as_bytes()).unwrap(),
            Answer::Error {
                code: "500".into(),
                message: "The email address can't be found.".into()
            }
        );
    }

    #[test]
    fn bad_pox_answers_are_explained_not_panicked_on() {
        for body in [
            "",
            "<html><body>It works!</body></html>",
            "<Autodiscover><Response><Account><Action>Settings</Action></Account></Response></Autodiscover>",
            "<!DOCTYPE x [<!ENTITY a 'b'>]><Autodiscover/>",
            "<Autodiscover><Response>",
        ] {
            assert!(parse_pox(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn soap_settings_redirects_and_errors_are_read() {
        let settings = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing">
  <s:Body>
    <GetUserSettingsResponseMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover">
      <Response xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
        <ErrorCode>NoError</ErrorCode>
        <ErrorMessage />
        <UserResponses>
          <UserResponse>
            <ErrorCode>NoError</ErrorCode>
            <ErrorMessage>No error.</ErrorMessage>
            <RedirectTarget i:nil="true" />
            <UserSettingErrors />
            <UserSettings>
              <UserSetting i:type="StringSetting"><Name>ExternalEwsUrl</Name><Value>https://mail.contoso.com/EWS/Exchange.asmx</Value></UserSetting>
              <UserSetting i:type="StringSetting"><Name>AutoDiscoverSMTPAddress</Name><Value>alice@contoso.com</Value></UserSetting>
              <UserSetting i:type="StringSetting"><Name>UserMSOnline</Name><Value>False</Value></UserSetting>
              <UserSetting i:type="WebClientUrlCollectionSetting"><Name>ExternalWebClientUrls</Name><WebClientUrls><WebClientUrl><AuthenticationMethods>Fba</AuthenticationMethods><Url>https://mail.contoso.com/owa/</Url></WebClientUrl></WebClientUrls></UserSetting>
            </UserSettings>
          </UserResponse>
        </UserResponses>
      </Response>
    </GetUserSettingsResponseMessage>
  </s:Body>
</s:Envelope>"#;
        let Answer::Settings(s) = parse_soap(settings.as_bytes()).unwrap() else {
            panic!("not settings");
        };
        assert_eq!(
            s.ews_url.as_deref(),
            Some("https://mail.contoso.com/EWS/Exchange.asmx")
        );
        assert_eq!(s.smtp_address.as_deref(), Some("alice@contoso.com"));
        assert_eq!(s.microsoft_online, Some(false));
        assert_eq!(
            s.user_settings
                .get("ExternalWebClientUrls")
                .map(String::as_str),
            Some("https://mail.contoso.com/owa/")
        );
        let redirect = settings.replace(
            "<ErrorCode>NoError</ErrorCode>\n            <ErrorMessage>No error.</ErrorMessage>\n            <RedirectTarget i:nil=\"true\" />",
            "<ErrorCode>RedirectAddress</ErrorCode><ErrorMessage>Redirection address.</ErrorMessage><RedirectTarget>alice@contoso.mail.onmicrosoft.com</RedirectTarget>",
        );
        assert_eq!(
            parse_soap(redirect.as_bytes()).unwrap(),
            Answer::RedirectAddr("alice@contoso.mail.onmicrosoft.com".into())
        );
        let invalid = settings.replace(
            "<ErrorCode>NoError</ErrorCode>\n            <ErrorMessage>No error.</ErrorMessage>",
            "<ErrorCode>InvalidUser</ErrorCode><ErrorMessage>Invalid user 'bob@contoso.com'.</ErrorMessage>",
        );
        assert!(matches!(
            parse_soap(invalid.as_bytes()).unwrap(),
            Answer::Error { code, .. } if code == "InvalidUser"
        ));
    }

    #[test]
    fn v2_answers_and_errors_are_read() {
        let Answer::Settings(s) =
            parse_v2(br#"{"Protocol":"Ews","Url":"https://mail.contoso.com/EWS/Exchange.asmx"}"#)
                .unwrap()
        else {
            panic!("not settings");
        };
        assert_eq!(
            s.ews_url.as_deref(),
            Some("https://mail.contoso.com/EWS/Exchange.asmx")
        );
        assert_eq!(
            parse_v2(br#"{"ErrorCode":"InvalidProtocol","ErrorMessage":"bad"}"#).unwrap(),
            Answer::Error {
                code: "InvalidProtocol".into(),
                message: "bad".into()
            }
        );
        assert!(parse_v2(b"<html/>").is_err());
    }
}
