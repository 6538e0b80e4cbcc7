//! Mozilla autoconfig (the `clientConfig` version 1.1 format Thunderbird, K-9/Thunderbird for
//! Android and many libraries read): request parsing and rendering. The request is the
//! anonymous `GET /mail/config-v1.1.xml?emailaddress=...` (also under
//! `/.well-known/autoconfig/`); the answer lists incoming servers (IMAP, POP3, or Exchange
//! with its EWS URL) and the SMTP server. No I/O.

use super::account::{AccountKind, ClientAccount, Login};
use super::xml::XmlWriter;
use crate::config::mail::{MailServer, Security};

/// The request paths, lower-case (matching is case-insensitive): Thunderbird's two and the
/// `/v1.1/` form some Android clients (Nine) ask.
pub const PATHS: [&str; 3] = [
    "/mail/config-v1.1.xml",
    "/.well-known/autoconfig/mail/config-v1.1.xml",
    "/v1.1/mail/config-v1.1.xml",
];

/// True for an autoconfig path (any case).
pub fn is_autoconfig_path(path: &str) -> bool {
    PATHS.iter().any(|p| p.eq_ignore_ascii_case(path))
}

/// The local part Evolution sends instead of the user's (`EVOLUTIONUSER@<domain>`, with the
/// real address only as an MD5 hash in `emailmd5`): a placeholder, not a person.
pub const EVOLUTION_PLACEHOLDER: &str = "EVOLUTIONUSER";

/// What a client asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoconfigRequest {
    /// The address, decoded and checked; `None` when the client sent none or a placeholder
    /// (the answer is then the domain's, with placeholders).
    pub email: Option<String>,
    /// The lower-case domain asked about (of the address, else of the `Host`).
    pub domain: String,
}

pub use super::account::AddressReject as AutoconfigReject;

/// Parses the query (`emailaddress`, case-insensitive, first wins) and, without an address,
/// the `Host` header: `autoconfig.<domain>[:port]`, or one of `accepted_domains` itself
/// (`https://<domain>/.well-known/autoconfig/...`, which Thunderbird for Android and K-9
/// ask without an address).
pub fn parse_request(
    query: Option<&str>,
    host: Option<&str>,
    accepted_domains: &[String],
) -> Result<AutoconfigRequest, AutoconfigReject> {
    if let Some(email) = super::account::query_address(query, "emailaddress")? {
        let domain = crate::config::mail::domain_of(&email);
        let placeholder = email
            .rsplit_once('@')
            .is_some_and(|(local, _)| local.eq_ignore_ascii_case(EVOLUTION_PLACEHOLDER));
        return Ok(AutoconfigRequest {
            email: (!placeholder).then_some(email),
            domain,
        });
    }
    let host = host.ok_or(AutoconfigReject::NoDomain)?;
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = match host.strip_prefix("autoconfig.") {
        Some(d) if crate::config::is_host_name(d) => d,
        _ if accepted_domains.contains(&host) => host.as_str(),
        _ => return Err(AutoconfigReject::NoDomain),
    };
    Ok(AutoconfigRequest {
        email: None,
        domain: domain.to_string(),
    })
}

/// Thunderbird's `socketType`.
fn socket_type(security: Security) -> &'static str {
    match security {
        Security::Tls => "SSL",
        Security::StartTls => "STARTTLS",
        Security::Plain => "plain",
    }
}

/// The `username` value: a concrete login or Thunderbird's placeholder for it.
fn username(login: &Login) -> String {
    match login {
        Login::Name(name) => name.clone(),
        Login::AddressPlaceholder => "%EMAILADDRESS%".into(),
        Login::LocalPartPlaceholder => "%EMAILLOCALPART%".into(),
    }
}

fn write_server(
    w: &mut XmlWriter,
    element: &'static str,
    kind: &'static str,
    server: &MailServer,
    user: &str,
    auth: &[&'static str],
) {
    w.open(element, &[("type", kind)]);
    w.leaf("hostname", &server.host);
    w.leaf("port", &server.port.to_string());
    w.leaf("socketType", socket_type(server.security));
    w.leaf("username", user);
    for a in auth {
        w.leaf("authentication", a);
    }
    w.close(element);
}

/// Renders the `clientConfig` document for one account.
pub fn render(account: &ClientAccount<'_>) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.open("clientConfig", &[("version", "1.1")]);
    w.open("emailProvider", &[("id", account.domain)]);
    w.leaf("domain", account.domain);
    w.leaf("displayName", account.provider_name);
    w.leaf("displayShortName", account.provider_name);
    match &account.kind {
        AccountKind::Internet { servers, login } => {
            let user = username(login);
            let auth: Vec<&'static str> = servers
                .authentication
                .iter()
                .map(|m| m.autoconfig_name())
                .collect();
            for (kind, server) in [("imap", &servers.imap), ("pop3", &servers.pop3)] {
                if let Some(server) = server {
                    write_server(&mut w, "incomingServer", kind, server, &user, &auth);
                }
            }
            if let Some(smtp) = &servers.smtp {
                write_server(&mut w, "outgoingServer", "smtp", smtp, &user, &auth);
            }
        }
        AccountKind::Exchange(ex) => {
            w.open("incomingServer", &[("type", "exchange")]);
            w.leaf("hostname", &ex.host);
            w.leaf("port", &ex.port.to_string());
            w.leaf("socketType", "SSL");
            w.leaf("username", &username(&ex.login));
            for a in &ex.auth {
                w.leaf("authentication", a);
            }
            if let Some(owa) = ex.owa_url {
                w.leaf("owaURL", owa);
            }
            w.leaf("ewsURL", &ex.ews_url);
            if let Some(eas) = &ex.activesync_url {
                w.leaf("easURL", eas);
            }
            w.leaf("useGlobalPreferredServer", "true");
            w.close("incomingServer");
            let auth: Vec<&'static str> = ex
                .submission
                .authentication
                .iter()
                .map(|m| m.autoconfig_name())
                .collect();
            let user = username(&ex.login);
            write_server(
                &mut w,
                "outgoingServer",
                "smtp",
                &ex.submission.smtp,
                &user,
                &auth,
            );
        }
    }
    w.close("emailProvider");
    w.close("clientConfig");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mail::sample_servers as servers;
    use crate::config::mail::{AuthMethod, ExchangeSubmission};
    use crate::protocol::account::ExchangeAccount;

    fn doc(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn the_address_comes_from_the_query_and_the_domain_from_it_or_the_host() {
        let accepted = ["contoso.com".to_string()];
        let parse = |q, h| parse_request(q, h, &accepted);
        let r = parse(Some("emailaddress=Frank%40Fabrikam.com"), None).unwrap();
        assert_eq!(r.email.as_deref(), Some("Frank@Fabrikam.com"));
        assert_eq!(r.domain, "fabrikam.com");
        let r = parse(
            Some("EmailAddress=a%2Bb@contoso.com&emailaddress=x@y.z"),
            None,
        )
        .unwrap();
        assert_eq!(r.email.as_deref(), Some("a+b@contoso.com"));
        let r = parse(None, Some("AUTOCONFIG.contoso.com:443")).unwrap();
        assert_eq!((r.email, r.domain.as_str()), (None, "contoso.com"));
        // An accepted domain as the host names itself (the .well-known URL); any other
        // host without an address names nothing.
        let r = parse(None, Some("Contoso.com.:443")).unwrap();
        assert_eq!((r.email, r.domain.as_str()), (None, "contoso.com"));
        for host in ["mail.contoso.com", "fabrikam.com", "127.0.0.1"] {
            assert_eq!(parse(None, Some(host)), Err(AutoconfigReject::NoDomain));
        }
        // An empty value is no address: the host names the domain.
        let r = parse(Some("emailaddress="), Some("autoconfig.contoso.com")).unwrap();
        assert_eq!((r.email, r.domain.as_str()), (None, "contoso.com"));
        // Evolution's placeholder is no address either; its domain is the one asked about.
        let r = parse(
            Some("emailaddress=EVOLUTIONUSER%40Fabrikam.com&emailmd5=0123"),
            None,
        )
        .unwrap();
        assert_eq!((r.email, r.domain.as_str()), (None, "fabrikam.com"));
    }

    #[test]
    fn hostile_addresses_are_refused() {
        for q in [
            "emailaddress=%3Cscript%3E@contoso.com",
            "emailaddress=a@contoso.com%0D%0ASet-Cookie:x",
            "emailaddress=a%ZZ@contoso.com",
            "emailaddress=%22a%22@contoso.com",
            "emailaddress=nodomain",
            "emailaddress=a@b@",
        ] {
            assert_eq!(
                parse_request(Some(q), Some("autoconfig.contoso.com"), &[]),
                Err(AutoconfigReject::InvalidAddress),
                "{q}"
            );
        }
        let long = format!("emailaddress={}@contoso.com", "a".repeat(400));
        assert_eq!(
            parse_request(Some(&long), None, &[]),
            Err(AutoconfigReject::InvalidAddress)
        );
    }

    #[test]
    fn internet_mail_lists_imap_and_smtp_with_placeholders() {
        let s = servers();
        let account = ClientAccount {
            domain: "contoso.com",
            provider_name: "Contoso",
            email: None,
            display_name: None,
            kind: AccountKind::Internet {
                servers: &s,
                login: Login::AddressPlaceholder,
            },
        };
        let text = doc(&render(&account));
        let d = roxmltree::Document::parse(&text).unwrap();
        let root = d.root_element();
        assert_eq!(root.tag_name().name(), "clientConfig");
        assert_eq!(root.attribute("version"), Some("1.1"));
        let incoming: Vec<_> = d
            .descendants()
            .filter(|n| n.has_tag_name("incomingServer"))
            .collect();
        assert_eq!(incoming.len(), 1);
        assert_eq!(incoming[0].attribute("type"), Some("imap"));
        let field = |n: roxmltree::Node, name: &str| {
            n.children()
                .find(|c| c.has_tag_name(name))
                .and_then(|c| c.text())
                .unwrap()
                .to_string()
        };
        assert_eq!(field(incoming[0], "hostname"), "imap.contoso.com");
        assert_eq!(field(incoming[0], "port"), "993");
        assert_eq!(field(incoming[0], "socketType"), "SSL");
        assert_eq!(field(incoming[0], "username"), "%EMAILADDRESS%");
        assert_eq!(field(incoming[0], "authentication"), "password-cleartext");
        let out = d
            .descendants()
            .find(|n| n.has_tag_name("outgoingServer"))
            .unwrap();
        assert_eq!(out.attribute("type"), Some("smtp"));
        assert_eq!(field(out, "socketType"), "STARTTLS");
        assert_eq!(field(out, "port"), "587");
    }

    #[test]
    fn exchange_answers_the_ews_url_with_type_exchange() {
        let account = ClientAccount {
            domain: "contoso.com",
            provider_name: "Contoso",
            email: Some("alice@contoso.com"),
            display_name: Some("Alice"),
            kind: AccountKind::Exchange(ExchangeAccount {
                host: "mail.contoso.com".into(),
                port: 443,
                ews_url: "https://mail.contoso.com/EWS/Exchange.asmx".into(),
                owa_url: Some("https://mail.contoso.com/owa/"),
                activesync_url: None,
                auth: vec!["NTLM", "password-cleartext"],
                login: Login::Name("alice@contoso.com".into()),
                submission: ExchangeSubmission {
                    smtp: MailServer {
                        host: "mail.contoso.com".into(),
                        port: 587,
                        security: Security::StartTls,
                    },
                    authentication: vec![AuthMethod::PasswordCleartext],
                },
            }),
        };
        let text = doc(&render(&account));
        assert!(text.contains("<incomingServer type=\"exchange\">"));
        assert!(text.contains("<ewsURL>https://mail.contoso.com/EWS/Exchange.asmx</ewsURL>"));
        assert!(text.contains("<owaURL>https://mail.contoso.com/owa/</owaURL>"));
        assert!(text.contains("<authentication>NTLM</authentication>"));
        // Every document names a submission server: Thunderbird refuses one without.
        let d = roxmltree::Document::parse(&text).unwrap();
        let out = d
            .descendants()
            .find(|n| n.has_tag_name("outgoingServer"))
            .unwrap();
        assert_eq!(out.attribute("type"), Some("smtp"));
        let field = |name: &str| {
            out.children()
                .find(|c| c.has_tag_name(name))
                .and_then(|c| c.text())
                .unwrap()
        };
        assert_eq!(
            [
                field("hostname"),
                field("port"),
                field("socketType"),
                field("username"),
                field("authentication")
            ],
            [
                "mail.contoso.com",
                "587",
                "STARTTLS",
                "alice@contoso.com",
                "password-cleartext"
            ]
        );
    }
}
