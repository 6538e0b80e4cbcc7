//! The mail account a non-Autodiscover client (Thunderbird autoconfig, Apple profiles) is
//! told to create, independent of the format that carries it; and the address parameter
//! those anonymous requests carry.

use crate::config::mail::{
    ExchangeSubmission, InternetServers, MailServer, Security, EXCHANGE_SUBMISSION_PORT,
};
use crate::config::Config;
use crate::directory::{MailboxKind, Recipient};

/// Longest address accepted (RFC 5321 §4.5.3.1: 64 + 1 + 255).
const MAX_ADDRESS: usize = 320;

/// The login name of an account: concrete, or a placeholder the client fills in from the
/// address the user typed (autoconfig only; `%EMAILADDRESS%`, `%EMAILLOCALPART%`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Name(String),
    AddressPlaceholder,
    LocalPartPlaceholder,
}

/// An Exchange account (EWS for autoconfig, ActiveSync for profiles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeAccount<'a> {
    /// Host and port of the EWS URL.
    pub host: String,
    pub port: u16,
    pub ews_url: String,
    pub owa_url: Option<&'a str>,
    pub activesync_url: Option<String>,
    /// Autoconfig authentication names (`NTLM`, `password-cleartext`), preferred first.
    pub auth: Vec<&'static str>,
    pub login: Login,
    /// Where the account sends mail (autoconfig's `outgoingServer`, which every document
    /// needs).
    pub submission: ExchangeSubmission,
}

/// What kind of account to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKind<'a> {
    /// IMAP/POP3 and SMTP (an Internet-mail mailbox, or a migrated one at the tenant).
    Internet {
        servers: &'a InternetServers,
        login: Login,
    },
    Exchange(ExchangeAccount<'a>),
}

/// One account to configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccount<'a> {
    /// The lower-case domain the answer is for.
    pub domain: &'a str,
    /// The organisation's name (`organization.display_name`).
    pub provider_name: &'a str,
    /// The account's address; `None` for a domain answer without one.
    pub email: Option<&'a str>,
    /// The user's name, only in per-mailbox answers.
    pub display_name: Option<&'a str>,
    pub kind: AccountKind<'a>,
}

/// Why an address parameter, or an autoconfig request, cannot be answered (→ 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressReject {
    /// `emailaddress` is not one plausible address (markup, controls, overlong, broken
    /// escapes, several `@`-less parts).
    InvalidAddress,
    /// No address and no `autoconfig.<domain>` host name to take the domain from.
    NoDomain,
}

/// A plausible `local@domain`: within the length limit, no whitespace, controls or
/// characters that are markup or quoting in the documents it is written into, one `@`
/// before a host name. Refusing these outright (400) means no answer ever carries them.
pub fn is_clean_address(text: &str) -> bool {
    text.len() <= MAX_ADDRESS
        && !text.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\'' | '\\' | '&')
        })
        && text.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !local.contains('@') && crate::config::is_host_name(domain)
        })
}

/// The first `name=` parameter of `query` (name case-insensitive), percent-decoded and
/// checked with [`is_clean_address`]. `Ok(None)` when absent or empty.
pub fn query_address(query: Option<&str>, name: &str) -> Result<Option<String>, AddressReject> {
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(key) = super::v2::percent_decode(key, true) else {
            continue;
        };
        if !key.eq_ignore_ascii_case(name) {
            continue;
        }
        let value = super::v2::percent_decode(value, true).ok_or(AddressReject::InvalidAddress)?;
        let value = value.trim();
        // `emailaddress=` with nothing: the client has no address to give.
        if value.is_empty() {
            return Ok(None);
        }
        return if is_clean_address(value) {
            Ok(Some(value.to_string()))
        } else {
            Err(AddressReject::InvalidAddress)
        };
    }
    Ok(None)
}

/// Whom a non-Autodiscover answer (autoconfig, Apple profile) describes.
#[derive(Debug, Clone, Copy)]
pub enum AccountFor<'a> {
    /// The domain's default answer: a mailbox of the domain's default kind, with the
    /// address as the client gave it (placeholders where the format has them).
    Domain,
    /// A mailbox here served as Exchange.
    Exchange(&'a Recipient),
    /// A mailbox here served as Internet mail.
    Internet(&'a Recipient),
    /// A mailbox in Exchange Online.
    Migrated(&'a Recipient),
}

/// Which client the account is for: migrated mailboxes get the tenant's IMAP/SMTP in
/// autoconfig and its ActiveSync in Apple profiles (Mail on iOS speaks EAS to Exchange
/// Online; OAuth2 IMAP cannot be configured by a profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountClient {
    Autoconfig,
    Profile,
}

/// The account to configure for an address of `domain` (lower-case). `None` when the
/// mailbox is Internet mail and no servers are configured for its domain.
pub fn client_account<'a>(
    config: &'a Config,
    domain: &'a str,
    email: Option<&'a str>,
    whom: AccountFor<'a>,
    client: AccountClient,
) -> Option<ClientAccount<'a>> {
    let mail = &config.mail;
    let exchange = |login: Login| {
        let ews = &config.services.ews.external;
        let (host, port) = host_port(ews);
        let mut auth = Vec::new();
        if config.auth.ntlm.enabled {
            auth.push("NTLM");
        }
        if config.auth.basic {
            auth.push("password-cleartext");
        }
        AccountKind::Exchange(ExchangeAccount {
            host,
            port,
            ews_url: ews.clone(),
            owa_url: config
                .services
                .owa
                .as_ref()
                .map(|o| o.urls.external.as_str()),
            activesync_url: config
                .services
                .activesync
                .as_ref()
                .map(|e| e.external.clone()),
            auth,
            login,
            submission: config.exchange_submission(),
        })
    };
    let internet = |of: &str, login: Login| {
        mail.servers_for(&crate::config::mail::domain_of(of))
            .map(|servers| AccountKind::Internet { servers, login })
    };
    let (kind, email, display_name) = match whom {
        AccountFor::Domain => {
            let kind = match mail.kind_of_domain(domain) {
                MailboxKind::Exchange => exchange(Login::AddressPlaceholder),
                MailboxKind::Internet => {
                    let servers = mail.servers_for(domain)?;
                    let login = match servers.login {
                        crate::config::mail::LoginForm::Address => Login::AddressPlaceholder,
                        crate::config::mail::LoginForm::LocalPart => Login::LocalPartPlaceholder,
                    };
                    AccountKind::Internet { servers, login }
                }
            };
            (kind, email, None)
        }
        AccountFor::Exchange(r) => (
            exchange(Login::Name(r.primary_smtp.clone())),
            Some(r.primary_smtp.as_str()),
            Some(r.display_name.as_str()),
        ),
        AccountFor::Internet(r) => {
            let servers = mail.servers_for(&crate::config::mail::domain_of(&r.primary_smtp))?;
            let login = Login::Name(servers.login_name(&r.primary_smtp));
            (
                internet(&r.primary_smtp, login)?,
                Some(r.primary_smtp.as_str()),
                Some(r.display_name.as_str()),
            )
        }
        AccountFor::Migrated(r) => {
            let login = Login::Name(mail.tenant.login_name(&r.primary_smtp));
            let kind = match client {
                AccountClient::Autoconfig => AccountKind::Internet {
                    servers: &mail.tenant,
                    login,
                },
                AccountClient::Profile => AccountKind::Exchange(ExchangeAccount {
                    host: mail.tenant_exchange_host.clone(),
                    port: 443,
                    ews_url: format!("https://{}/EWS/Exchange.asmx", mail.tenant_exchange_host),
                    owa_url: None,
                    activesync_url: Some(format!(
                        "https://{}/Microsoft-Server-ActiveSync",
                        mail.tenant_exchange_host
                    )),
                    auth: vec!["OAuth2"],
                    login,
                    submission: ExchangeSubmission {
                        smtp: mail.tenant.smtp.clone().unwrap_or_else(|| MailServer {
                            host: mail.tenant_exchange_host.clone(),
                            port: EXCHANGE_SUBMISSION_PORT,
                            security: Security::StartTls,
                        }),
                        authentication: mail.tenant.authentication.clone(),
                    },
                }),
            };
            (
                kind,
                Some(r.primary_smtp.as_str()),
                Some(r.display_name.as_str()),
            )
        }
    };
    Some(ClientAccount {
        domain,
        provider_name: &config.org.display_name,
        email,
        display_name,
        kind,
    })
}

/// Host and port of an https URL (443 when it names none).
fn host_port(url: &str) -> (String, u16) {
    match url.parse::<http::Uri>() {
        Ok(u) => (
            u.host().unwrap_or_default().to_string(),
            u.port_u16().unwrap_or(443),
        ),
        Err(_) => (String::new(), 443),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::mail::AuthMethod;

    #[test]
    fn clean_addresses_pass_and_markup_does_not() {
        assert!(is_clean_address("alice@contoso.com"));
        assert!(is_clean_address("a.b+tag@sub.contoso.com"));
        for bad in [
            "",
            "alice",
            "@contoso.com",
            "alice@",
            "a@b@contoso.com",
            "<a>@contoso.com",
            "a@contoso.com\r\nX: y",
            "a b@contoso.com",
            "a@contoso..com",
            "a&amp;@contoso.com",
        ] {
            assert!(!is_clean_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn exchange_accounts_send_through_the_ews_host_unless_configured() {
        let (path, text) = crate::config::tests::example();
        let mut config = Config::from_toml(&path, &text).unwrap();
        // Default: Exchange's client submission port on the host clients already reach.
        let default = config.exchange_submission();
        assert_eq!(
            default.smtp,
            MailServer {
                host: "mail.contoso.com".into(),
                port: 587,
                security: Security::StartTls
            }
        );
        assert_eq!(default.authentication, vec![AuthMethod::PasswordCleartext]);
        // As Exchange Online: the tenant's SMTP (smtp.office365.com:587 STARTTLS, OAuth2).
        config.org.microsoft_online = true;
        let online = config.exchange_submission();
        assert_eq!(Some(&online.smtp), config.mail.tenant.smtp.as_ref());
        assert_eq!(online.smtp.host, "smtp.office365.com");
        assert_eq!(online.authentication, vec![AuthMethod::OAuth2]);
        // Configured: wins over both.
        let configured = ExchangeSubmission {
            smtp: MailServer {
                host: "relay.contoso.com".into(),
                port: 465,
                security: Security::Tls,
            },
            authentication: vec![AuthMethod::PasswordEncrypted],
        };
        config.mail.exchange_submission = Some(configured.clone());
        assert_eq!(config.exchange_submission(), configured);
        let account = client_account(
            &config,
            "contoso.com",
            None,
            AccountFor::Domain,
            AccountClient::Autoconfig,
        )
        .unwrap();
        let AccountKind::Exchange(ex) = account.kind else {
            panic!("the example's domain is Exchange")
        };
        assert_eq!(ex.submission, configured);
    }

    #[test]
    fn query_addresses_are_decoded_and_the_first_one_wins() {
        assert_eq!(
            query_address(Some("x=1&EMAIL=bob%40contoso.com&email=z@z.z"), "email"),
            Ok(Some("bob@contoso.com".into()))
        );
        assert_eq!(query_address(Some("x=1"), "email"), Ok(None));
        assert_eq!(query_address(None, "email"), Ok(None));
        assert_eq!(
            query_address(Some("email=%E0%80"), "email"),
            Err(AddressReject::InvalidAddress)
        );
    }
}
