//! POX Autodiscover: the Outlook (2006a) and ActiveSync (mobilesync) request parser and
//! response renderers ([MS-OXDSCLI] §2.2.3, §2.2.4; [MS-ASCMD] §2.2.1.1).

use quick_xml::events::Event;
use quick_xml::NsReader;

use super::error_code::{ErrorCode, ErrorStamp};
use super::ns;
use super::xml::XmlWriter;
use super::ClientCaps;
use crate::settings::MailboxSettings;

/// Which response family a request wants (dispatch is on `AcceptableResponseSchema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `…/outlook/responseschema/2006a`
    Outlook,
    /// `…/mobilesync/responseschema/2006`
    MobileSync,
}

/// A parsed POX request. Values are trimmed (some clients wrap them across lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoxRequest {
    pub email: Option<String>,
    pub legacy_dn: Option<String>,
    pub flavour: Flavour,
}

/// Why a request cannot be answered with settings; carries the error flavour to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoxReject {
    pub code: ErrorCode,
    pub flavour: Flavour,
    /// For logs only (never sent to the client).
    pub reason: String,
}

const MAX_DEPTH: usize = 32;

#[derive(Default)]
struct Fields {
    email: Option<String>,
    legacy_dn: Option<String>,
    schema: Option<String>,
}

/// Parses a POX request body. Malformed XML, a DTD, a wrong root, no `Request` or no
/// address → 600; an unknown response schema → 601.
pub fn parse_request(body: &[u8]) -> Result<PoxRequest, PoxReject> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().trim_text(true);
    // The request namespace guesses the error flavour until the schema is known.
    let mut flavour = Flavour::Outlook;
    let reject = |code, flavour, reason: String| PoxReject {
        code,
        flavour,
        reason,
    };
    // The open elements, as the little the parser needs to know of them (no copies).
    let mut path: Vec<Tag> = Vec::with_capacity(8);
    let mut fields = Fields::default();
    let mut saw_root = false;
    let mut saw_request = false;
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(|e| {
            reject(
                ErrorCode::InvalidRequest,
                flavour,
                format!("malformed XML: {e}"),
            )
        })?;
        match event {
            Event::Start(start) => {
                let local = start.local_name();
                let local = local.as_ref();
                if path.is_empty() {
                    if local != b"Autodiscover" || saw_root {
                        return Err(reject(
                            ErrorCode::InvalidRequest,
                            flavour,
                            "root element is not Autodiscover".into(),
                        ));
                    }
                    saw_root = true;
                    if let quick_xml::name::ResolveResult::Bound(n) = resolved {
                        if n.as_ref() == ns::MOBILESYNC_REQUEST.as_bytes() {
                            flavour = Flavour::MobileSync;
                        }
                    }
                } else if path.len() == 1 && local == b"Request" {
                    saw_request = true;
                }
                path.push(Tag::of(local));
                if path.len() > MAX_DEPTH {
                    return Err(reject(
                        ErrorCode::InvalidRequest,
                        flavour,
                        "nesting too deep".into(),
                    ));
                }
            }
            Event::Empty(start) => {
                if path.is_empty() {
                    return Err(reject(
                        ErrorCode::InvalidRequest,
                        flavour,
                        "empty root element".into(),
                    ));
                }
                if path.len() == 1 && start.local_name().as_ref() == b"Request" {
                    saw_request = true;
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(text) => {
                let value = text.unescape().map_err(|e| {
                    reject(ErrorCode::InvalidRequest, flavour, format!("bad text: {e}"))
                })?;
                store(&mut fields, &path, &value);
            }
            Event::CData(data) => {
                let value = std::str::from_utf8(data.as_ref())
                    .map_err(|_| {
                        reject(
                            ErrorCode::InvalidRequest,
                            flavour,
                            "CDATA is not UTF-8".into(),
                        )
                    })?
                    .to_string();
                store(&mut fields, &path, &value);
            }
            Event::DocType(_) => {
                // No DTDs: nothing legitimate needs one, and entity tricks start there.
                return Err(reject(
                    ErrorCode::InvalidRequest,
                    flavour,
                    "DOCTYPE is not allowed".into(),
                ));
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !saw_root || !path.is_empty() {
        return Err(reject(
            ErrorCode::InvalidRequest,
            flavour,
            "no complete Autodiscover element".into(),
        ));
    }
    if !saw_request {
        return Err(reject(
            ErrorCode::InvalidRequest,
            flavour,
            "no Request element".into(),
        ));
    }
    let schema = fields
        .schema
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let flavour = if schema.eq_ignore_ascii_case(ns::OUTLOOK_RESPONSE) {
        Flavour::Outlook
    } else if schema.eq_ignore_ascii_case(ns::MOBILESYNC_RESPONSE) {
        Flavour::MobileSync
    } else if schema.is_empty() {
        return Err(reject(
            ErrorCode::InvalidRequest,
            flavour,
            "no AcceptableResponseSchema".into(),
        ));
    } else {
        return Err(reject(
            ErrorCode::ProviderUnavailable,
            flavour,
            format!("unsupported response schema `{schema}`"),
        ));
    };
    let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let email = clean(fields.email);
    let legacy_dn = clean(fields.legacy_dn);
    if email.is_none() && legacy_dn.is_none() {
        return Err(reject(
            ErrorCode::InvalidRequest,
            flavour,
            "no EMailAddress or LegacyDN".into(),
        ));
    }
    Ok(PoxRequest {
        email,
        legacy_dn,
        flavour,
    })
}

/// An open element by its local name: only these matter below the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Request,
    EMailAddress,
    LegacyDn,
    AcceptableResponseSchema,
    Other,
}

impl Tag {
    fn of(local: &[u8]) -> Tag {
        match local {
            b"Request" => Tag::Request,
            b"EMailAddress" => Tag::EMailAddress,
            b"LegacyDN" => Tag::LegacyDn,
            b"AcceptableResponseSchema" => Tag::AcceptableResponseSchema,
            _ => Tag::Other,
        }
    }
}

fn store(fields: &mut Fields, path: &[Tag], value: &str) {
    let [_, Tag::Request, field] = path else {
        return;
    };
    let slot = match field {
        Tag::EMailAddress => &mut fields.email,
        Tag::LegacyDn => &mut fields.legacy_dn,
        Tag::AcceptableResponseSchema => &mut fields.schema,
        Tag::Request | Tag::Other => return,
    };
    slot.get_or_insert_with(String::new).push_str(value);
}

fn on_off(value: bool) -> &'static str {
    if value {
        "On"
    } else {
        "Off"
    }
}

fn true_false(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// The AuthPackage to advertise: `Negotiate` only to clients that can handle it
/// ([MS-OXDSCLI] §2.2.4.1.1.2.6).
fn auth_package(configured: &str, caps: ClientCaps) -> &str {
    if configured == "Negotiate" && !caps.negotiate {
        "Ntlm"
    } else {
        configured
    }
}

/// Renders `Action=settings` for the Outlook schema: EXCH + EXPR + WEB, or mapiHttp + WEB
/// when the client sent `X-MapiHttpCapability` and MAPI/HTTP is enabled ([MS-OXDSCLI] §3.2.5.1);
/// EXHTTP for Outlook (one block) or `ExHttpInfo` (two blocks, internal first; rule 11).
pub fn render_outlook_settings(s: &MailboxSettings, caps: ClientCaps) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open("Autodiscover", &[("xmlns", ns::RESPONSE_BASE)]);
    w.open("Response", &[("xmlns", ns::OUTLOOK_RESPONSE)]);
    w.open("User", &[]);
    w.leaf("DisplayName", &s.display_name);
    w.leaf("LegacyDN", &s.legacy_dn);
    w.leaf("AutoDiscoverSMTPAddress", &s.smtp_address);
    w.leaf("DeploymentId", &s.deployment_id.to_string());
    w.close("User");
    w.open("Account", &[]);
    w.leaf("AccountType", "email");
    w.leaf("Action", "settings");
    w.leaf("MicrosoftOnline", true_false(s.microsoft_online));
    if s.microsoft_online {
        w.leaf("ConsumerMailbox", "False");
    }
    match (&s.mapi, caps.mapi_http) {
        (Some(mapi), true) => {
            w.open("Protocol", &[("Type", "mapiHttp"), ("Version", "1")]);
            // Exchange Online publishes only external MAPI URLs.
            let internal = !s.microsoft_online;
            w.open("MailStore", &[]);
            if internal {
                w.leaf("InternalUrl", &mapi.mail_store.internal);
            }
            w.leaf("ExternalUrl", &mapi.mail_store.external);
            w.close("MailStore");
            w.open("AddressBook", &[]);
            if internal {
                w.leaf("InternalUrl", &mapi.address_book.internal);
            }
            w.leaf("ExternalUrl", &mapi.address_book.external);
            w.close("AddressBook");
            w.close("Protocol");
        }
        _ => {
            write_exch(&mut w, s);
            write_expr(&mut w, s, caps);
        }
    }
    write_web(&mut w, s);
    if caps.ex_http_info {
        write_exhttp(&mut w, s, caps, false);
        write_exhttp(&mut w, s, caps, true);
    } else if caps.outlook || (s.microsoft_online && caps.mapi_http && s.mapi.is_some()) {
        // Exchange Online adds the external EXHTTP block to MAPI answers.
        write_exhttp(&mut w, s, caps, true);
    }
    w.close("Account");
    w.close("Response");
    w.close("Autodiscover");
    w.finish()
}

fn write_exch(w: &mut XmlWriter, s: &MailboxSettings) {
    w.open("Protocol", &[]);
    w.leaf("Type", "EXCH");
    w.leaf("Server", &s.mailbox_server);
    w.leaf("ServerDN", &s.mailbox_server_dn);
    w.leaf("ServerVersion", &s.server_version);
    w.leaf("MdbDN", &s.mdb_dn);
    w.leaf("PublicFolderServer", &s.public_folder_server);
    if let Some(ad) = &s.ad_server {
        w.leaf("AD", ad);
    }
    if s.microsoft_online {
        w.leaf("AuthPackage", "Anonymous");
    }
    w.leaf("ASUrl", &s.ews.internal);
    w.leaf("EwsUrl", &s.ews.internal);
    w.leaf("EmwsUrl", &s.ews.internal);
    if let Some(ecp) = &s.ecp {
        w.leaf("EcpUrl", &ecp.internal);
    }
    w.leaf("OOFUrl", &s.ews.internal);
    if let Some(oab) = &s.oab {
        w.leaf("OABUrl", &oab.internal);
    }
    w.leaf("ServerExclusiveConnect", "off");
    if s.ttl_hours != 1 {
        w.leaf("TTL", &s.ttl_hours.to_string());
    }
    w.close("Protocol");
}

fn write_expr(w: &mut XmlWriter, s: &MailboxSettings, caps: ClientCaps) {
    let oa = &s.outlook_anywhere;
    w.open("Protocol", &[]);
    w.leaf("Type", "EXPR");
    w.leaf("Server", &oa.external_host);
    w.leaf("SSL", on_off(oa.ssl));
    w.leaf("AuthPackage", auth_package(&oa.auth_package, caps));
    w.leaf("ASUrl", &s.ews.external);
    w.leaf("EwsUrl", &s.ews.external);
    w.leaf("EmwsUrl", &s.ews.external);
    if let Some(ecp) = &s.ecp {
        w.leaf("EcpUrl", &ecp.external);
    }
    w.leaf("OOFUrl", &s.ews.external);
    if let Some(oab) = &s.oab {
        w.leaf("OABUrl", &oab.external);
    }
    w.leaf("ServerExclusiveConnect", "On");
    if let Some(cpn) = &oa.cert_principal_name {
        w.leaf("CertPrincipalName", cpn);
    }
    if s.ttl_hours != 1 {
        w.leaf("TTL", &s.ttl_hours.to_string());
    }
    w.close("Protocol");
}

fn write_web(w: &mut XmlWriter, s: &MailboxSettings) {
    w.open("Protocol", &[]);
    w.leaf("Type", "WEB");
    for (section, external) in [("Internal", false), ("External", true)] {
        // Exchange Online has no internal namespace.
        if s.microsoft_online && !external {
            continue;
        }
        w.open(section, &[]);
        if let Some(owa) = &s.owa {
            let (url, auth) = if external {
                (&owa.urls.external, &owa.external_auth)
            } else {
                (&owa.urls.internal, &owa.internal_auth)
            };
            // Always with AuthenticationMethod: Thunderbird needs the attribute (rule 13).
            w.leaf_with("OWAUrl", &[("AuthenticationMethod", auth)], url);
        }
        w.open("Protocol", &[]);
        w.leaf("Type", if external { "EXPR" } else { "EXCH" });
        w.leaf(
            "ASUrl",
            if external {
                &s.ews.external
            } else {
                &s.ews.internal
            },
        );
        w.close("Protocol");
        w.close(section);
    }
    w.close("Protocol");
}

fn write_exhttp(w: &mut XmlWriter, s: &MailboxSettings, caps: ClientCaps, external: bool) {
    let oa = &s.outlook_anywhere;
    let pick = |e: &crate::config::Endpoint| {
        if external {
            e.external.clone()
        } else {
            e.internal.clone()
        }
    };
    w.open("Protocol", &[]);
    w.leaf("Type", "EXHTTP");
    w.leaf(
        "Server",
        if external {
            &oa.external_host
        } else {
            &oa.internal_host
        },
    );
    w.leaf("SSL", on_off(oa.ssl));
    w.leaf("AuthPackage", auth_package(&oa.auth_package, caps));
    w.leaf("ASUrl", &pick(&s.ews));
    w.leaf("EwsUrl", &pick(&s.ews));
    w.leaf("OOFUrl", &pick(&s.ews));
    if let Some(oab) = &s.oab {
        w.leaf("OABUrl", &pick(oab));
    }
    w.leaf("ServerExclusiveConnect", "On");
    if let Some(cpn) = &oa.cert_principal_name {
        w.leaf("CertPrincipalName", cpn);
    }
    w.close("Protocol");
}

/// Renders `Action=redirectAddr` ([MS-OXDSCLI] §2.2.4.1.1.2.8, example §4.2): no `User` element.
pub fn render_outlook_redirect_addr(target: &str) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open("Autodiscover", &[("xmlns", ns::RESPONSE_BASE)]);
    w.open("Response", &[("xmlns", ns::OUTLOOK_RESPONSE)]);
    w.open("Account", &[]);
    w.leaf("Action", "redirectAddr");
    w.leaf("RedirectAddr", target);
    w.close("Account");
    w.close("Response");
    w.close("Autodiscover");
    w.finish()
}

fn write_error_element(w: &mut XmlWriter, code: ErrorCode, stamp: ErrorStamp) {
    w.open(
        "Error",
        &[
            ("Time", &stamp.time_text()),
            ("Id", &stamp.server_id.to_string()),
        ],
    );
    w.leaf("ErrorCode", &code.code().to_string());
    w.leaf("Message", code.message());
    w.empty("DebugData", &[]);
    w.close("Error");
}

/// Renders an `<Error>` answer ([MS-OXDSCLI] §2.2.4.1.1.3). Outlook errors keep `Response` in the
/// base namespace (rule 2). For mobilesync, 600/601 use `Response/Error` and the others
/// `Response/Action/Error/Status` = 2 ([MS-ASCMD] §4.2).
pub fn render_error(
    flavour: Flavour,
    code: ErrorCode,
    stamp: ErrorStamp,
    email: Option<&str>,
) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open("Autodiscover", &[("xmlns", ns::RESPONSE_BASE)]);
    match flavour {
        Flavour::Outlook => {
            w.open("Response", &[]);
            write_error_element(&mut w, code, stamp);
        }
        Flavour::MobileSync => {
            w.open("Response", &[("xmlns", ns::MOBILESYNC_RESPONSE)]);
            if matches!(
                code,
                ErrorCode::InvalidRequest | ErrorCode::ProviderUnavailable
            ) {
                write_error_element(&mut w, code, stamp);
            } else {
                w.leaf("Culture", "en:us");
                if let Some(email) = email {
                    w.open("User", &[]);
                    w.leaf("EMailAddress", email);
                    w.close("User");
                }
                w.open("Action", &[]);
                w.open("Error", &[]);
                w.leaf("Status", "2");
                w.leaf("Message", code.message());
                w.leaf("DebugData", &code.code().to_string());
                w.close("Error");
                w.close("Action");
            }
        }
    }
    w.close("Response");
    w.close("Autodiscover");
    w.finish()
}

/// Renders the mobilesync `Action/Settings` answer ([MS-ASCMD] §2.2.3.168.1, examples §4.2).
pub fn render_mobilesync_settings(
    display_name: &str,
    email: &str,
    activesync_url: &str,
) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open("Autodiscover", &[("xmlns", ns::RESPONSE_BASE)]);
    w.open("Response", &[("xmlns", ns::MOBILESYNC_RESPONSE)]);
    w.leaf("Culture", "en:us");
    w.open("User", &[]);
    w.leaf("DisplayName", display_name);
    w.leaf("EMailAddress", email);
    w.close("User");
    w.open("Action", &[]);
    w.open("Settings", &[]);
    w.open("Server", &[]);
    w.leaf("Type", "MobileSync");
    w.leaf("Url", activesync_url);
    w.leaf("Name", activesync_url);
    w.close("Server");
    w.close("Settings");
    w.close("Action");
    w.close("Response");
    w.close("Autodiscover");
    w.finish()
}

/// Renders the mobilesync `Action/Redirect` answer for a migrated mailbox.
pub fn render_mobilesync_redirect(email: &str, target: &str) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open("Autodiscover", &[("xmlns", ns::RESPONSE_BASE)]);
    w.open("Response", &[("xmlns", ns::MOBILESYNC_RESPONSE)]);
    w.leaf("Culture", "en:us");
    w.open("User", &[]);
    w.leaf("EMailAddress", email);
    w.close("User");
    w.open("Action", &[]);
    w.leaf("Redirect", target);
    w.close("Action");
    w.close("Response");
    w.close("Autodiscover");
    w.finish()
}

#[cfg(test)]
mod tests;
