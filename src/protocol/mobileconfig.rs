//! Apple configuration profiles (`.mobileconfig`, an XML property list) for iOS, iPadOS and
//! macOS Mail: one `com.apple.mail.managed` payload (IMAP or POP with SMTP) or one
//! `com.apple.eas.account` payload (Exchange ActiveSync). Never a password: the device
//! asks the user when the profile is installed. Signing (CMS) happens at the edge. No I/O.

use uuid::Uuid;

use super::account::{AccountKind, ClientAccount, Login};
use super::xml::XmlWriter;
use crate::config::mail::{AuthMethod, Security};

/// The request path, lower-case (matching is case-insensitive).
pub const PATH: &str = "/mobileconfig";

/// True for the mobileconfig path (any case, trailing slash allowed).
pub fn is_mobileconfig_path(path: &str) -> bool {
    path.trim_end_matches('/').eq_ignore_ascii_case(PATH)
}

/// The media type Apple devices install from.
pub const CONTENT_TYPE: &str = "application/x-apple-aspen-config";

/// Names and identifiers of the profile (`[mail.mobileconfig]`, `[organization]`).
#[derive(Debug, Clone, Copy)]
pub struct ProfileMeta<'a> {
    /// Reverse-DNS prefix of every `PayloadIdentifier`.
    pub identifier: &'a str,
    pub organization: &'a str,
}

/// Why no profile can be made for this account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileError {
    /// A profile names one address; a domain answer without one cannot be a profile.
    NoAddress,
    /// Exchange without `[services.activesync]`: nothing an Apple device can use.
    NoActiveSync,
}

/// Stable UUIDs: the same account gets the same profile (so installing it again replaces
/// the old one instead of adding a second account).
fn payload_uuid(meta: &ProfileMeta<'_>, email: &str, what: &str) -> Uuid {
    let name = format!("{}|{}|{what}", meta.identifier, email.to_ascii_lowercase());
    Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes())
}

struct Plist(XmlWriter);

impl Plist {
    fn key(&mut self, key: &'static str) {
        self.0.leaf("key", key);
    }
    fn string(&mut self, key: &'static str, value: &str) {
        self.key(key);
        self.0.leaf("string", value);
    }
    fn integer(&mut self, key: &'static str, value: u64) {
        self.key(key);
        self.0.leaf("integer", &value.to_string());
    }
    fn boolean(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.0.empty(if value { "true" } else { "false" }, &[]);
    }
}

fn apple_auth(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::PasswordEncrypted => "EmailAuthCRAMMD5",
        // OAuth2 cannot be set by a profile; the password method is what Mail falls back to.
        AuthMethod::PasswordCleartext | AuthMethod::OAuth2 => "EmailAuthPassword",
    }
}

/// Renders the unsigned profile for `account`.
pub fn render(
    account: &ClientAccount<'_>,
    meta: &ProfileMeta<'_>,
) -> Result<Vec<u8>, ProfileError> {
    let email = account.email.ok_or(ProfileError::NoAddress)?;
    let name = account.display_name.unwrap_or(email);
    let mut p = Plist(XmlWriter::new());
    p.0.open("plist", &[("version", "1.0")]);
    p.0.open("dict", &[]);
    p.key("PayloadContent");
    p.0.open("array", &[]);
    p.0.open("dict", &[]);
    let (payload_type, description) = match &account.kind {
        AccountKind::Internet { servers, login } => {
            let user = match login {
                Login::Name(n) => n.clone(),
                Login::AddressPlaceholder | Login::LocalPartPlaceholder => {
                    servers.login_name(email)
                }
            };
            let (kind, incoming) = match (&servers.imap, &servers.pop3) {
                (Some(imap), _) => ("EmailTypeIMAP", imap),
                (None, Some(pop3)) => ("EmailTypePOP", pop3),
                (None, None) => return Err(ProfileError::NoAddress),
            };
            let auth = apple_auth(servers.preferred_auth());
            p.string("EmailAccountDescription", email);
            p.string("EmailAccountName", name);
            p.string("EmailAccountType", kind);
            p.string("EmailAddress", email);
            p.string("IncomingMailServerAuthentication", auth);
            p.string("IncomingMailServerHostName", &incoming.host);
            p.integer("IncomingMailServerPortNumber", u64::from(incoming.port));
            // Mail's "Use SSL" is TLS from the first byte on 993/995 and STARTTLS otherwise.
            p.boolean(
                "IncomingMailServerUseSSL",
                incoming.security != Security::Plain,
            );
            p.string("IncomingMailServerUsername", &user);
            if let Some(smtp) = &servers.smtp {
                p.string("OutgoingMailServerAuthentication", auth);
                p.string("OutgoingMailServerHostName", &smtp.host);
                p.integer("OutgoingMailServerPortNumber", u64::from(smtp.port));
                p.boolean("OutgoingMailServerUseSSL", smtp.security != Security::Plain);
                p.string("OutgoingMailServerUsername", &user);
                p.boolean("OutgoingPasswordSameAsIncomingPassword", true);
            }
            ("com.apple.mail.managed", "Email account")
        }
        AccountKind::Exchange(ex) => {
            let url = ex
                .activesync_url
                .as_deref()
                .ok_or(ProfileError::NoActiveSync)?;
            let host = url
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.authority().map(|a| a.to_string()))
                .unwrap_or_else(|| ex.host.clone());
            let user = match &ex.login {
                Login::Name(n) => n.clone(),
                Login::AddressPlaceholder | Login::LocalPartPlaceholder => email.to_string(),
            };
            p.string("EmailAddress", email);
            p.string("Host", &host);
            p.boolean("SSL", url.starts_with("https://"));
            p.string("UserName", &user);
            p.string("PayloadDisplayName", "Exchange ActiveSync");
            ("com.apple.eas.account", "Exchange ActiveSync account")
        }
    };
    let account_uuid = payload_uuid(meta, email, payload_type).to_string();
    p.string("PayloadDescription", description);
    if payload_type == "com.apple.mail.managed" {
        p.string("PayloadDisplayName", email);
    }
    p.string(
        "PayloadIdentifier",
        &format!("{}.account.{account_uuid}", meta.identifier),
    );
    p.string("PayloadType", payload_type);
    p.string("PayloadUUID", &account_uuid);
    p.integer("PayloadVersion", 1);
    p.0.close("dict");
    p.0.close("array");
    let profile_uuid = payload_uuid(meta, email, "profile").to_string();
    p.string("PayloadDescription", &format!("Mail settings for {email}"));
    p.string(
        "PayloadDisplayName",
        &format!("{email} ({})", account.provider_name),
    );
    p.string(
        "PayloadIdentifier",
        &format!("{}.profile.{profile_uuid}", meta.identifier),
    );
    if !meta.organization.is_empty() {
        p.string("PayloadOrganization", meta.organization);
    }
    p.boolean("PayloadRemovalDisallowed", false);
    p.string("PayloadType", "Configuration");
    p.string("PayloadUUID", &profile_uuid);
    p.integer("PayloadVersion", 1);
    p.0.close("dict");
    p.0.close("plist");
    Ok(p.0.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mail::{sample_servers, LoginForm};
    use crate::protocol::account::ExchangeAccount;

    const META: ProfileMeta<'static> = ProfileMeta {
        identifier: "com.contoso.mail",
        organization: "Contoso",
    };

    /// key → value text of the first dict below `PayloadContent`.
    fn payload(text: &str) -> Vec<(String, String)> {
        let d = roxmltree::Document::parse(text).unwrap();
        let inner = d
            .descendants()
            .find(|n| n.has_tag_name("array"))
            .and_then(|a| a.children().find(|c| c.has_tag_name("dict")))
            .unwrap();
        let items: Vec<_> = inner.children().filter(|c| c.is_element()).collect();
        items
            .chunks(2)
            .map(|kv| {
                let value = match kv[1].tag_name().name() {
                    "true" | "false" => kv[1].tag_name().name().to_string(),
                    _ => kv[1].text().unwrap_or_default().to_string(),
                };
                (kv[0].text().unwrap().to_string(), value)
            })
            .collect()
    }

    fn get<'a>(items: &'a [(String, String)], key: &str) -> Option<&'a str> {
        items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_internet_mail_profile_has_imap_and_smtp_and_no_password() {
        let mut s = sample_servers();
        s.login = LoginForm::LocalPart;
        let account = ClientAccount {
            domain: "contoso.com",
            provider_name: "Contoso",
            email: Some("frank@contoso.com"),
            display_name: Some("Frank"),
            kind: AccountKind::Internet {
                servers: &s,
                login: Login::AddressPlaceholder,
            },
        };
        let text = String::from_utf8(render(&account, &META).unwrap()).unwrap();
        let items = payload(&text);
        assert_eq!(get(&items, "PayloadType"), Some("com.apple.mail.managed"));
        assert_eq!(get(&items, "EmailAccountType"), Some("EmailTypeIMAP"));
        assert_eq!(
            get(&items, "IncomingMailServerHostName"),
            Some("imap.contoso.com")
        );
        assert_eq!(get(&items, "IncomingMailServerPortNumber"), Some("993"));
        assert_eq!(get(&items, "IncomingMailServerUseSSL"), Some("true"));
        // The login form of the servers (local part) fills the username.
        assert_eq!(get(&items, "IncomingMailServerUsername"), Some("frank"));
        assert_eq!(get(&items, "OutgoingMailServerPortNumber"), Some("587"));
        assert_eq!(
            get(&items, "OutgoingPasswordSameAsIncomingPassword"),
            Some("true")
        );
        // Apple's password keys (IncomingPassword, OutgoingPassword, Password) never appear.
        assert!(
            !items
                .iter()
                .any(|(k, _)| k.ends_with("Password")
                    && k != "OutgoingPasswordSameAsIncomingPassword")
        );
        // Same account, same UUIDs: a re-installed profile replaces the old one.
        assert_eq!(render(&account, &META).unwrap(), text.as_bytes());
    }

    #[test]
    fn exchange_is_an_activesync_payload_and_needs_activesync() {
        let mut ex = ExchangeAccount {
            host: "mail.contoso.com".into(),
            port: 443,
            ews_url: "https://mail.contoso.com/EWS/Exchange.asmx".into(),
            owa_url: None,
            activesync_url: Some("https://mail.contoso.com/Microsoft-Server-ActiveSync".into()),
            auth: vec!["password-cleartext"],
            login: Login::Name("alice@contoso.com".into()),
            submission: crate::config::mail::ExchangeSubmission {
                smtp: crate::config::mail::MailServer {
                    host: "mail.contoso.com".into(),
                    port: 587,
                    security: Security::StartTls,
                },
                authentication: vec![AuthMethod::PasswordCleartext],
            },
        };
        let account = |ex: ExchangeAccount<'static>| ClientAccount {
            domain: "contoso.com",
            provider_name: "Contoso",
            email: Some("alice@contoso.com"),
            display_name: None,
            kind: AccountKind::Exchange(ex),
        };
        let text = String::from_utf8(render(&account(ex.clone()), &META).unwrap()).unwrap();
        let items = payload(&text);
        assert_eq!(get(&items, "PayloadType"), Some("com.apple.eas.account"));
        assert_eq!(get(&items, "Host"), Some("mail.contoso.com"));
        assert_eq!(get(&items, "SSL"), Some("true"));
        assert_eq!(get(&items, "UserName"), Some("alice@contoso.com"));
        ex.activesync_url = None;
        assert_eq!(render(&account(ex), &META), Err(ProfileError::NoActiveSync));
    }
}
