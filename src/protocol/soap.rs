//! SOAP Autodiscover ([MS-OXWSADISC]: GetUserSettings, GetDomainSettings): parses SOAP 1.1
//! envelopes carrying `GetUserSettingsRequestMessage` / `GetDomainSettingsRequestMessage`,
//! picks the requested settings out of [`MailboxSettings`], and renders responses and SOAP
//! Faults. Never looks anything up: callers decide per user and pass the answers in.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::xml::XmlWriter;
use crate::config::ExchangeVersion;
use crate::settings::MailboxSettings;

/// SOAP 1.1 envelope namespace.
pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace (answered with a VersionMismatch fault).
pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
/// SOAP Autodiscover messages ([MS-OXWSADISC]; `http://`, never `https://`).
pub const AUTODISCOVER: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";
/// WS-Addressing.
pub const WSA: &str = "http://www.w3.org/2005/08/addressing";
/// XML Schema instance (`i:type`, `i:nil`).
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

const ACTION_BASE: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/";

/// Deepest element nesting accepted (real requests are 7 deep).
const MAX_DEPTH: usize = 32;
/// Most users in one GetUserSettings request (the EWS limit is 100).
pub const MAX_USERS: usize = 100;
/// Most domains in one GetDomainSettings request.
pub const MAX_DOMAINS: usize = 100;
/// Most setting names in one request (there are 62 valid ones).
pub const MAX_SETTINGS: usize = 256;

/// Every setting name of the documented SOAP list (docs "Setting (SOAP)"; the doc's stray
/// comma after `EcpVoicemailUrlFragment` removed). Names outside it are `InvalidSetting`.
pub const USER_SETTING_NAMES: [&str; 62] = [
    "UserDisplayName",
    "UserDN",
    "UserDeploymentId",
    "InternalMailboxServer",
    "InternalRpcClientServer",
    "InternalMailboxServerDN",
    "InternalEcpUrl",
    "InternalEcpVoicemailUrl",
    "InternalEcpEmailSubscriptionsUrl",
    "InternalEcpTextMessagingUrl",
    "InternalEcpDeliveryReportUrl",
    "InternalEcpRetentionPolicyTagsUrl",
    "InternalEcpPublishingUrl",
    "InternalEwsUrl",
    "InternalOABUrl",
    "InternalUMUrl",
    "InternalWebClientUrls",
    "MailboxDN",
    "PublicFolderServer",
    "ActiveDirectoryServer",
    "ExternalMailboxServer",
    "ExternalMailboxServerRequiresSSL",
    "ExternalMailboxServerAuthenticationMethods",
    "EcpVoicemailUrlFragment",
    "EcpEmailSubscriptionsUrlFragment",
    "EcpTextMessagingUrlFragment",
    "EcpDeliveryReportUrlFragment",
    "EcpRetentionPolicyTagsUrlFragment",
    "EcpPublishingUrlFragment",
    "ExternalEcpUrl",
    "ExternalEcpVoicemailUrl",
    "ExternalEcpEmailSubscriptionsUrl",
    "ExternalEcpTextMessagingUrl",
    "ExternalEcpDeliveryReportUrl",
    "ExternalEcpRetentionPolicyTagsUrl",
    "ExternalEcpPublishingUrl",
    "ExternalEwsUrl",
    "ExternalOABUrl",
    "ExternalUMUrl",
    "ExternalWebClientUrls",
    "CrossOrganizationSharingEnabled",
    "AlternateMailboxes",
    "CasVersion",
    "EwsSupportedSchemas",
    "InternalPop3Connections",
    "ExternalPop3Connections",
    "InternalImap4Connections",
    "ExternalImap4Connections",
    "InternalSmtpConnections",
    "ExternalSmtpConnections",
    "InternalServerExclusiveConnect",
    "ExternalServerExclusiveConnect",
    "ExchangeRpcUrl",
    "ShowGalAsDefaultView",
    "AutoDiscoverSMTPAddress",
    "InteropExternalEwsUrl",
    "ExternalEwsVersion",
    "InteropExternalEwsVersion",
    "MobileMailboxPolicyInterop",
    "GroupingInformation",
    "UserMSOnline",
    "MapiHttpEnabled",
];

/// Domain setting names (EWS Managed API `DomainSettingName`).
pub const DOMAIN_SETTING_NAMES: [&str; 2] = ["ExternalEwsUrl", "ExternalEwsVersion"];

/// A parsed SOAP Autodiscover request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapRequest {
    GetUserSettings(GetUserSettings),
    GetDomainSettings(GetDomainSettings),
}

/// `GetUserSettingsRequestMessage`: values are trimmed, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetUserSettings {
    pub mailboxes: Vec<String>,
    pub settings: Vec<String>,
    /// `a:RequestedServerVersion` (logged only; any value is accepted: the EWS Managed API gives up
    /// when a server rejects its value).
    pub requested_server_version: Option<String>,
}

/// `GetDomainSettingsRequestMessage`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetDomainSettings {
    pub domains: Vec<String>,
    pub settings: Vec<String>,
    pub requested_server_version: Option<String>,
}

impl SoapRequest {
    /// The operation name (`GetUserSettings`, `GetDomainSettings`).
    pub fn operation(&self) -> &'static str {
        match self {
            SoapRequest::GetUserSettings(_) => "GetUserSettings",
            SoapRequest::GetDomainSettings(_) => "GetDomainSettings",
        }
    }

    /// Why a well-formed request cannot be answered user by user: rendered as the
    /// request-level `ErrorCode=InvalidRequest`.
    pub fn request_error(&self) -> Option<&'static str> {
        let (items, max, settings) = match self {
            SoapRequest::GetUserSettings(r) => (r.mailboxes.len(), MAX_USERS, r.settings.len()),
            SoapRequest::GetDomainSettings(r) => (r.domains.len(), MAX_DOMAINS, r.settings.len()),
        };
        if items == 0 {
            Some("The request contains no users or domains.")
        } else if items > max {
            Some("The request contains too many users or domains (at most 100).")
        } else if settings == 0 {
            Some("The request contains no requested settings.")
        } else if settings > MAX_SETTINGS {
            Some("The request contains too many requested settings.")
        } else {
            None
        }
    }
}

/// Why an envelope was refused; answered with a SOAP Fault (HTTP 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapError {
    /// Not XML, a DOCTYPE, too deep, wrong root, no Body, empty Body.
    Malformed(String),
    /// The envelope is not SOAP 1.1.
    VersionMismatch,
    /// The Body holds an operation this server does not implement (the local name).
    UnknownOperation(String),
}

impl SoapError {
    /// The Fault to send.
    pub fn fault(&self) -> Fault {
        match self {
            SoapError::Malformed(_) => Fault {
                code: "s:Client",
                string: "The request is not a valid SOAP 1.1 Autodiscover envelope.",
            },
            SoapError::VersionMismatch => Fault {
                code: "s:VersionMismatch",
                string: "Only SOAP 1.1 envelopes are supported.",
            },
            SoapError::UnknownOperation(_) => Fault {
                code: "s:Client",
                string: "The operation is not supported. Supported operations are GetUserSettings and GetDomainSettings.",
            },
        }
    }

    /// Details for the log (never sent to the client).
    pub fn reason(&self) -> String {
        match self {
            SoapError::Malformed(r) => r.clone(),
            SoapError::VersionMismatch => "not a SOAP 1.1 envelope".into(),
            SoapError::UnknownOperation(op) => format!("unsupported operation `{op}`"),
        }
    }
}

/// A SOAP 1.1 Fault: `faultcode` and `faultstring`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub code: &'static str,
    pub string: &'static str,
}

impl Fault {
    /// The server could not work (directory unreachable during authentication).
    pub const SERVER: Fault = Fault {
        code: "s:Server",
        string: "An internal server error occurred. The operation failed.",
    };
    /// A GET (or any request without an envelope) on the SOAP endpoint.
    pub const NOT_A_POST: Fault = Fault {
        code: "s:Client",
        string: "Send an HTTP POST with a SOAP 1.1 Autodiscover envelope.",
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Soap11,
    Soap12,
    Autodiscover,
    Wsa,
    Other,
}

fn ns_of(resolved: &ResolveResult<'_>) -> Ns {
    match resolved {
        ResolveResult::Bound(n) => match n.as_ref() {
            b if b == SOAP11.as_bytes() => Ns::Soap11,
            b if b == SOAP12.as_bytes() => Ns::Soap12,
            b if b == AUTODISCOVER.as_bytes() => Ns::Autodiscover,
            b if b == WSA.as_bytes() => Ns::Wsa,
            _ => Ns::Other,
        },
        _ => Ns::Other,
    }
}

/// Where a text value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Version,
    Mailbox,
    Domain,
    Setting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    User,
    Domain,
}

type Element = (Ns, Vec<u8>);

fn is(e: Option<&Element>, ns: Ns, name: &str) -> bool {
    e.is_some_and(|(n, l)| *n == ns && l.as_slice() == name.as_bytes())
}

/// The slot of the element at the end of `path` (all checks by namespace + local name).
fn slot_of(path: &[Element], op: Option<Operation>) -> Option<Slot> {
    let at = |i: usize| path.get(i);
    let a = Ns::Autodiscover;
    match path.len() {
        3 if is(at(1), Ns::Soap11, "Header") && is(at(2), a, "RequestedServerVersion") => {
            Some(Slot::Version)
        }
        6 if is(at(3), a, "Request")
            && is(at(4), a, "RequestedSettings")
            && is(at(5), a, "Setting") =>
        {
            Some(Slot::Setting)
        }
        6 if op == Some(Operation::Domain)
            && is(at(3), a, "Request")
            && is(at(4), a, "Domains")
            && is(at(5), a, "Domain") =>
        {
            Some(Slot::Domain)
        }
        7 if op == Some(Operation::User)
            && is(at(3), a, "Request")
            && is(at(4), a, "Users")
            && is(at(5), a, "User")
            && is(at(6), a, "Mailbox") =>
        {
            Some(Slot::Mailbox)
        }
        _ => None,
    }
}

#[derive(Default)]
struct Collected {
    version: Option<String>,
    mailboxes: Vec<String>,
    domains: Vec<String>,
    settings: Vec<String>,
}

impl Collected {
    fn store(&mut self, slot: Slot, value: String) {
        let value = value.trim().to_string();
        match slot {
            Slot::Version => self.version = Some(value),
            Slot::Mailbox => self.mailboxes.push(value),
            Slot::Domain => self.domains.push(value),
            Slot::Setting => self.settings.push(value),
        }
    }
}

/// Parses a SOAP Autodiscover request body (namespace-aware; no DOCTYPE; bounded depth).
pub fn parse_request(body: &[u8]) -> Result<SoapRequest, SoapError> {
    let malformed = |r: &str| SoapError::Malformed(r.to_string());
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().trim_text(false);
    let mut path: Vec<Element> = Vec::new();
    let mut op: Option<Operation> = None;
    let mut saw_root = false;
    let mut saw_body = false;
    let mut current: Option<(Slot, usize, String)> = None;
    let mut got = Collected::default();
    loop {
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| SoapError::Malformed(format!("malformed XML: {e}")))?;
        let ns = ns_of(&resolved);
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let is_empty = matches!(event, Event::Empty(_));
                let local = start.local_name().as_ref().to_vec();
                match path.len() {
                    0 => {
                        if saw_root {
                            return Err(malformed("more than one root element"));
                        }
                        saw_root = true;
                        if local != b"Envelope" {
                            return Err(malformed("root element is not Envelope"));
                        }
                        // SOAP 1.1 §4.4: an envelope in another namespace is a version mismatch.
                        if ns != Ns::Soap11 {
                            return Err(SoapError::VersionMismatch);
                        }
                        if is_empty {
                            return Err(malformed("empty Envelope"));
                        }
                    }
                    1 if ns == Ns::Soap11 && local == b"Body" => {
                        if saw_body {
                            return Err(malformed("more than one Body"));
                        }
                        saw_body = true;
                    }
                    2 if is(path.get(1), Ns::Soap11, "Body") => {
                        if op.is_some() {
                            return Err(malformed("more than one operation in Body"));
                        }
                        op = match (ns, local.as_slice()) {
                            (Ns::Autodiscover, b"GetUserSettingsRequestMessage") => {
                                Some(Operation::User)
                            }
                            (Ns::Autodiscover, b"GetDomainSettingsRequestMessage") => {
                                Some(Operation::Domain)
                            }
                            _ => {
                                return Err(SoapError::UnknownOperation(
                                    String::from_utf8_lossy(&local).into_owned(),
                                ))
                            }
                        };
                    }
                    _ => {}
                }
                path.push((ns, local));
                if path.len() > MAX_DEPTH {
                    return Err(malformed("nesting too deep"));
                }
                // Markup nested inside a value element is skipped; its text still counts.
                let slot = if current.is_none() {
                    slot_of(&path, op)
                } else {
                    None
                };
                if is_empty {
                    if let Some(slot) = slot {
                        got.store(slot, String::new());
                    }
                    path.pop();
                } else if let Some(slot) = slot {
                    current = Some((slot, path.len(), String::new()));
                }
            }
            Event::End(_) => {
                if current
                    .as_ref()
                    .is_some_and(|(_, depth, _)| *depth == path.len())
                {
                    if let Some((slot, _, value)) = current.take() {
                        got.store(slot, value);
                    }
                }
                path.pop();
            }
            Event::Text(text) => {
                if let Some((_, _, value)) = current.as_mut() {
                    let t = text
                        .unescape()
                        .map_err(|e| SoapError::Malformed(format!("bad text: {e}")))?;
                    value.push_str(&t);
                }
            }
            Event::CData(data) => {
                if let Some((_, _, value)) = current.as_mut() {
                    let t = std::str::from_utf8(data.as_ref())
                        .map_err(|_| malformed("CDATA is not UTF-8"))?;
                    value.push_str(t);
                }
            }
            Event::DocType(_) => {
                // No DTDs: nothing legitimate needs one, and entity tricks start there.
                return Err(malformed("DOCTYPE is not allowed"));
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !saw_root || !path.is_empty() {
        return Err(malformed("no complete Envelope"));
    }
    if !saw_body {
        return Err(malformed("no Body"));
    }
    match op {
        Some(Operation::User) => Ok(SoapRequest::GetUserSettings(GetUserSettings {
            mailboxes: got.mailboxes,
            settings: got.settings,
            requested_server_version: got.version,
        })),
        Some(Operation::Domain) => Ok(SoapRequest::GetDomainSettings(GetDomainSettings {
            domains: got.domains,
            settings: got.settings,
            requested_server_version: got.version,
        })),
        None => Err(malformed("empty Body")),
    }
}

/// The `ServerVersionInfo` header values and the schema list derived from the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
    pub major_build: u32,
    pub minor_build: u32,
    /// `h:Version` (Exchange 2016/2019 say `Exchange2015`).
    pub version: &'static str,
    /// `EwsSupportedSchemas` (no `V20xx_` tokens: exchangelib sorts the list as strings).
    pub ews_supported_schemas: &'static str,
}

const SCHEMAS_2016: &str = "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2016";
const SCHEMAS_2013: &str = "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1";
const SCHEMAS_2010: &str =
    "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2";

impl ServerVersion {
    /// From the configured Exchange build (`services.exchange_version`).
    pub fn from_build(v: ExchangeVersion) -> ServerVersion {
        let (version, schemas) = match (v.major, v.minor) {
            (m, _) if m > 15 => ("Exchange2015", SCHEMAS_2016),
            (15, n) if n >= 1 => ("Exchange2015", SCHEMAS_2016),
            (15, _) => ("Exchange2013_SP1", SCHEMAS_2013),
            (14, n) if n >= 2 => ("Exchange2010_SP2", SCHEMAS_2010),
            (14, 1) => ("Exchange2010_SP1", SCHEMAS_2010),
            (14, _) => ("Exchange2010", SCHEMAS_2010),
            _ => ("Exchange2007_SP1", "Exchange2007, Exchange2007_SP1"),
        };
        ServerVersion {
            major: v.major,
            minor: v.minor,
            major_build: v.build,
            minor_build: v.revision,
            version,
            ews_supported_schemas: schemas,
        }
    }
}

/// The value of one user setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    /// `i:type="StringSetting"`.
    Text(String),
    /// `i:type="WebClientUrlCollectionSetting"`: (AuthenticationMethods, Url) pairs.
    WebClientUrls(Vec<(String, String)>),
}

/// Per-setting error codes ([MS-OXWSADISC]; docs "ErrorCode (SOAP)").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingErrorCode {
    /// The name is not on the documented list.
    InvalidSetting,
    /// A valid name this server has no value for.
    SettingIsNotAvailable,
}

impl SettingErrorCode {
    fn as_str(self) -> &'static str {
        match self {
            SettingErrorCode::InvalidSetting => "InvalidSetting",
            SettingErrorCode::SettingIsNotAvailable => "SettingIsNotAvailable",
        }
    }
}

/// The answer for one requested user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAnswer {
    /// `NoError`: the requested settings we have, and an error for each one we do not.
    Settings {
        settings: Vec<(String, SettingValue)>,
        errors: Vec<(SettingErrorCode, String)>,
    },
    /// `RedirectAddress` with `RedirectTarget` (migrated mailbox; [MS-OXWSADISC] RedirectAddress).
    RedirectAddress(String),
    /// `InvalidUser`: `Invalid user '<address>'.` (the address as requested).
    InvalidUser(String),
    /// `InternalServerError` (directory unreachable, broken directory object).
    InternalServerError,
}

impl UserAnswer {
    /// A short label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            UserAnswer::Settings { .. } => "settings",
            UserAnswer::RedirectAddress(_) => "redirectAddr",
            UserAnswer::InvalidUser(_) => "invalid_user",
            UserAnswer::InternalServerError => "internal_server_error",
        }
    }
}

fn true_false(v: bool) -> &'static str {
    if v {
        "True"
    } else {
        "False"
    }
}

/// The value of a documented setting for this mailbox, `None` when we have none.
fn user_setting_value(name: &str, s: &MailboxSettings, sv: &ServerVersion) -> Option<SettingValue> {
    let text = |v: &str| Some(SettingValue::Text(v.to_string()));
    let oa = &s.outlook_anywhere;
    match name {
        "UserDisplayName" => text(&s.display_name),
        "UserDN" => text(&s.legacy_dn),
        "UserDeploymentId" => text(&s.deployment_id.to_string()),
        // Exchange 2013+: the "mailbox server" is <MailboxGuid>@<domain>
        // ([MS-OXDSCLI] §2.2.4.1.1.2.6).
        "InternalMailboxServer" | "InternalRpcClientServer" => text(&s.mailbox_server),
        "InternalMailboxServerDN" => text(&s.mailbox_server_dn),
        "MailboxDN" => text(&s.mdb_dn),
        "PublicFolderServer" => text(&s.public_folder_server),
        "ActiveDirectoryServer" => s.ad_server.as_deref().and_then(text),
        "InternalEwsUrl" => text(&s.ews.internal),
        "ExternalEwsUrl" => text(&s.ews.external),
        "InternalOABUrl" => s.oab.as_ref().and_then(|e| text(&e.internal)),
        "ExternalOABUrl" => s.oab.as_ref().and_then(|e| text(&e.external)),
        "InternalEcpUrl" => s.ecp.as_ref().and_then(|e| text(&e.internal)),
        "ExternalEcpUrl" => s.ecp.as_ref().and_then(|e| text(&e.external)),
        "InternalWebClientUrls" => s.owa.as_ref().map(|o| {
            SettingValue::WebClientUrls(vec![(o.internal_auth.clone(), o.urls.internal.clone())])
        }),
        "ExternalWebClientUrls" => s.owa.as_ref().map(|o| {
            SettingValue::WebClientUrls(vec![(o.external_auth.clone(), o.urls.external.clone())])
        }),
        "ExternalMailboxServer" => text(&oa.external_host),
        "ExternalMailboxServerRequiresSSL" => text(true_false(oa.ssl)),
        "ExternalMailboxServerAuthenticationMethods" => text(&oa.auth_package),
        // Same values as the POX EXCH (off) and EXPR (On) blocks.
        "InternalServerExclusiveConnect" => text("Off"),
        "ExternalServerExclusiveConnect" => text("On"),
        "CasVersion" | "ExternalEwsVersion" => text(&s.cas_version),
        "EwsSupportedSchemas" => text(sv.ews_supported_schemas),
        "AutoDiscoverSMTPAddress" => text(&s.smtp_address),
        "UserMSOnline" => text(true_false(s.microsoft_online)),
        "MapiHttpEnabled" => text(true_false(s.mapi.is_some())),
        _ => None,
    }
}

/// Removes repeated names, keeping the first (a name is answered once).
fn unique(requested: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for name in requested {
        if !out.contains(&name.as_str()) {
            out.push(name);
        }
    }
    out
}

/// The `NoError` answer for a local mailbox: only the requested settings (exchangelib
/// fails on a name it did not ask for),
/// in request order; unknown names → `InvalidSetting`, valid ones we lack →
/// `SettingIsNotAvailable`.
pub fn user_settings(requested: &[String], s: &MailboxSettings, sv: &ServerVersion) -> UserAnswer {
    let mut settings = Vec::new();
    let mut errors = Vec::new();
    for name in unique(requested) {
        if !USER_SETTING_NAMES.contains(&name) {
            errors.push((SettingErrorCode::InvalidSetting, name.to_string()));
        } else if let Some(value) = user_setting_value(name, s, sv) {
            settings.push((name.to_string(), value));
        } else {
            errors.push((SettingErrorCode::SettingIsNotAvailable, name.to_string()));
        }
    }
    UserAnswer::Settings { settings, errors }
}

/// The answer for one requested domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainAnswer {
    /// `NoError` with `DomainStringSetting`s.
    Settings {
        settings: Vec<(String, String)>,
        errors: Vec<(SettingErrorCode, String)>,
    },
    /// `InvalidDomain`: not an accepted domain here.
    InvalidDomain(String),
}

/// The `NoError` answer for an accepted domain.
pub fn domain_settings(
    requested: &[String],
    ews_external: &str,
    cas_version: &str,
) -> DomainAnswer {
    let mut settings = Vec::new();
    let mut errors = Vec::new();
    for name in unique(requested) {
        match name {
            "ExternalEwsUrl" => settings.push((name.to_string(), ews_external.to_string())),
            "ExternalEwsVersion" => settings.push((name.to_string(), cas_version.to_string())),
            _ => errors.push((SettingErrorCode::InvalidSetting, name.to_string())),
        }
    }
    DomainAnswer::Settings { settings, errors }
}

/// Envelope, header (`a:Action` + `h:ServerVersionInfo`) and an open `s:Body`.
fn open_envelope(w: &mut XmlWriter, operation: &str, sv: &ServerVersion) {
    w.open("s:Envelope", &[("xmlns:s", SOAP11), ("xmlns:a", WSA)]);
    w.open("s:Header", &[]);
    w.leaf_with(
        "a:Action",
        &[("s:mustUnderstand", "1")],
        &format!("{ACTION_BASE}{operation}Response"),
    );
    w.open(
        "h:ServerVersionInfo",
        &[("xmlns:h", AUTODISCOVER), ("xmlns:i", XSI)],
    );
    w.leaf("h:MajorVersion", &sv.major.to_string());
    w.leaf("h:MinorVersion", &sv.minor.to_string());
    w.leaf("h:MajorBuildNumber", &sv.major_build.to_string());
    w.leaf("h:MinorBuildNumber", &sv.minor_build.to_string());
    w.leaf("h:Version", sv.version);
    w.close("h:ServerVersionInfo");
    w.close("s:Header");
    w.open("s:Body", &[]);
}

fn close_envelope(w: &mut XmlWriter) {
    w.close("s:Body");
    w.close("s:Envelope");
}

/// `Response/ErrorCode` + `ErrorMessage` (request level).
fn request_status(w: &mut XmlWriter, request_error: Option<&str>) {
    match request_error {
        None => {
            w.leaf("ErrorCode", "NoError");
            w.empty("ErrorMessage", &[]);
        }
        Some(message) => {
            w.leaf("ErrorCode", "InvalidRequest");
            w.leaf("ErrorMessage", message);
        }
    }
}

fn setting_errors(
    w: &mut XmlWriter,
    list: &'static str,
    item: &'static str,
    what: &str,
    errors: &[(SettingErrorCode, String)],
) {
    if errors.is_empty() {
        w.empty(list, &[]);
        return;
    }
    w.open(list, &[]);
    for (code, name) in errors {
        let message = match code {
            SettingErrorCode::InvalidSetting => format!("{what} setting '{name}' is invalid."),
            SettingErrorCode::SettingIsNotAvailable => {
                format!("{what} setting '{name}' is not available.")
            }
        };
        w.open(item, &[]);
        w.leaf("ErrorCode", code.as_str());
        w.leaf("ErrorMessage", &message);
        w.leaf("SettingName", name);
        w.close(item);
    }
    w.close(list);
}

fn user_response(w: &mut XmlWriter, answer: &UserAnswer) {
    w.open("UserResponse", &[]);
    match answer {
        UserAnswer::Settings { settings, errors } => {
            w.leaf("ErrorCode", "NoError");
            w.leaf("ErrorMessage", "No error.");
            w.empty("RedirectTarget", &[("i:nil", "true")]);
            setting_errors(w, "UserSettingErrors", "UserSettingError", "User", errors);
            if settings.is_empty() {
                w.empty("UserSettings", &[]);
            } else {
                w.open("UserSettings", &[]);
                for (name, value) in settings {
                    match value {
                        SettingValue::Text(text) => {
                            w.open("UserSetting", &[("i:type", "StringSetting")]);
                            w.leaf("Name", name);
                            w.leaf("Value", text);
                        }
                        SettingValue::WebClientUrls(urls) => {
                            w.open(
                                "UserSetting",
                                &[("i:type", "WebClientUrlCollectionSetting")],
                            );
                            w.leaf("Name", name);
                            w.open("WebClientUrls", &[]);
                            for (auth, url) in urls {
                                w.open("WebClientUrl", &[]);
                                w.leaf("AuthenticationMethods", auth);
                                w.leaf("Url", url);
                                w.close("WebClientUrl");
                            }
                            w.close("WebClientUrls");
                        }
                    }
                    w.close("UserSetting");
                }
                w.close("UserSettings");
            }
        }
        UserAnswer::RedirectAddress(target) => {
            w.leaf("ErrorCode", "RedirectAddress");
            w.leaf("ErrorMessage", "Redirection address.");
            w.leaf("RedirectTarget", target);
            w.empty("UserSettingErrors", &[]);
            w.empty("UserSettings", &[]);
        }
        UserAnswer::InvalidUser(address) => {
            w.leaf("ErrorCode", "InvalidUser");
            // Exchange's text; exchangelib's live test asserts the prefix.
            w.leaf("ErrorMessage", &format!("Invalid user '{address}'."));
            w.empty("RedirectTarget", &[("i:nil", "true")]);
            w.empty("UserSettingErrors", &[]);
            w.empty("UserSettings", &[]);
        }
        UserAnswer::InternalServerError => {
            w.leaf("ErrorCode", "InternalServerError");
            w.leaf(
                "ErrorMessage",
                "An internal server error occurred. The operation failed.",
            );
            w.empty("RedirectTarget", &[("i:nil", "true")]);
            w.empty("UserSettingErrors", &[]);
            w.empty("UserSettings", &[]);
        }
    }
    w.close("UserResponse");
}

/// Renders `GetUserSettingsResponseMessage` ([MS-OXWSADISC]; docs "GetUserSettings
/// operation (SOAP)"). With `request_error`, the
/// request-level ErrorCode is `InvalidRequest` and `UserResponses` is empty.
pub fn render_user_settings(
    sv: &ServerVersion,
    answers: &[UserAnswer],
    request_error: Option<&str>,
) -> Vec<u8> {
    let mut w = XmlWriter::new();
    open_envelope(&mut w, "GetUserSettings", sv);
    w.open("GetUserSettingsResponseMessage", &[("xmlns", AUTODISCOVER)]);
    w.open("Response", &[("xmlns:i", XSI)]);
    request_status(&mut w, request_error);
    if request_error.is_some() || answers.is_empty() {
        w.empty("UserResponses", &[]);
    } else {
        w.open("UserResponses", &[]);
        for answer in answers {
            user_response(&mut w, answer);
        }
        w.close("UserResponses");
    }
    w.close("Response");
    w.close("GetUserSettingsResponseMessage");
    close_envelope(&mut w);
    w.finish()
}

/// Renders `GetDomainSettingsResponseMessage` (docs "GetDomainSettings operation (SOAP)":
/// DomainResponse children ErrorCode, ErrorMessage, DomainSettingErrors, DomainSettings,
/// RedirectTarget).
pub fn render_domain_settings(
    sv: &ServerVersion,
    answers: &[DomainAnswer],
    request_error: Option<&str>,
) -> Vec<u8> {
    let mut w = XmlWriter::new();
    open_envelope(&mut w, "GetDomainSettings", sv);
    w.open(
        "GetDomainSettingsResponseMessage",
        &[("xmlns", AUTODISCOVER)],
    );
    w.open("Response", &[("xmlns:i", XSI)]);
    request_status(&mut w, request_error);
    if request_error.is_some() || answers.is_empty() {
        w.empty("DomainResponses", &[]);
    } else {
        w.open("DomainResponses", &[]);
        for answer in answers {
            w.open("DomainResponse", &[]);
            match answer {
                DomainAnswer::Settings { settings, errors } => {
                    w.leaf("ErrorCode", "NoError");
                    w.leaf("ErrorMessage", "No error.");
                    setting_errors(
                        &mut w,
                        "DomainSettingErrors",
                        "DomainSettingError",
                        "Domain",
                        errors,
                    );
                    if settings.is_empty() {
                        w.empty("DomainSettings", &[]);
                    } else {
                        w.open("DomainSettings", &[]);
                        for (name, value) in settings {
                            w.open("DomainSetting", &[("i:type", "DomainStringSetting")]);
                            w.leaf("Name", name);
                            w.leaf("Value", value);
                            w.close("DomainSetting");
                        }
                        w.close("DomainSettings");
                    }
                }
                DomainAnswer::InvalidDomain(domain) => {
                    w.leaf("ErrorCode", "InvalidDomain");
                    w.leaf("ErrorMessage", &format!("Invalid domain '{domain}'."));
                    w.empty("DomainSettingErrors", &[]);
                    w.empty("DomainSettings", &[]);
                }
            }
            w.empty("RedirectTarget", &[("i:nil", "true")]);
            w.close("DomainResponse");
        }
        w.close("DomainResponses");
    }
    w.close("Response");
    w.close("GetDomainSettingsResponseMessage");
    close_envelope(&mut w);
    w.finish()
}

/// Renders a SOAP 1.1 Fault (sent with HTTP 500).
pub fn render_fault(fault: Fault) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open("s:Envelope", &[("xmlns:s", SOAP11)]);
    w.open("s:Body", &[]);
    w.open("s:Fault", &[]);
    w.leaf("faultcode", fault.code);
    w.leaf_with("faultstring", &[("xml:lang", "en-US")], fault.string);
    w.close("s:Fault");
    w.close("s:Body");
    w.close("s:Envelope");
    w.finish()
}

#[cfg(test)]
mod tests;
