//! The `[mail]` table: mailbox kinds (Exchange or Internet mail) per accepted domain, the
//! IMAP/POP3/SMTP servers of Internet-mail mailboxes, the tenant's settings for migrated
//! mailboxes, and what the anonymous autoconfig/mobileconfig endpoints may reveal.
//! Every key is optional; an absent table means "every mailbox is Exchange".

use std::collections::BTreeMap;
use std::path::Path;

/// How a mailbox that lives here is served to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailboxKind {
    /// Exchange settings (EXCH/EXPR/WEB, mapiHttp, EWS, ActiveSync).
    Exchange,
    /// Internet mail: IMAP and/or POP3 plus SMTP submission.
    Internet,
}

impl MailboxKind {
    /// From `exchange` or `internet` (case-insensitive; `imap` is accepted for internet).
    pub fn parse(text: &str) -> Option<MailboxKind> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("exchange") {
            Some(MailboxKind::Exchange)
        } else if text.eq_ignore_ascii_case("internet") || text.eq_ignore_ascii_case("imap") {
            Some(MailboxKind::Internet)
        } else {
            None
        }
    }

    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            MailboxKind::Exchange => "exchange",
            MailboxKind::Internet => "internet",
        }
    }
}

use serde::Deserialize;

use super::{is_host_name, resolve_against, ConfigError, Validator};

/// Serde mirror of `[mail]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    pub kind: Option<String>,
    #[serde(default)]
    pub reveal_mailboxes: bool,
    pub internet: Option<ServersSection>,
    #[serde(default)]
    pub domains: BTreeMap<String, DomainSection>,
    pub tenant: Option<ServersSection>,
    pub tenant_exchange_host: Option<String>,
    pub exchange: Option<ExchangeSection>,
    pub mobileconfig: Option<MobileconfigSection>,
}

/// Serde mirror of `[mail.exchange]`: the SMTP submission server autoconfig names next to
/// an Exchange account.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSection {
    pub smtp: Option<ServerSection>,
    pub authentication: Option<Vec<String>>,
}

/// Serde mirror of `[mail.domains."<domain>"]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSection {
    pub kind: Option<String>,
    pub imap: Option<ServerSection>,
    pub pop3: Option<ServerSection>,
    pub smtp: Option<ServerSection>,
    pub login: Option<String>,
    pub authentication: Option<Vec<String>>,
}

/// Serde mirror of a set of Internet-mail servers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServersSection {
    pub imap: Option<ServerSection>,
    pub pop3: Option<ServerSection>,
    pub smtp: Option<ServerSection>,
    pub login: Option<String>,
    pub authentication: Option<Vec<String>>,
}

/// Serde mirror of one server: `{ host = "...", port = 993, security = "tls" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub host: String,
    pub port: Option<u16>,
    pub security: Option<String>,
}

/// Serde mirror of `[mail.mobileconfig]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileconfigSection {
    pub sign: Option<bool>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub identifier: Option<String>,
    pub organization: Option<String>,
}

/// How a connection to a mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, POP3S 995, SMTP submission 465; RFC 8314).
    Tls,
    /// STARTTLS on the plain port (143, 110, 587).
    StartTls,
    /// No TLS at all (labs only).
    Plain,
}

impl Security {
    /// The configuration spelling.
    pub fn name(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::StartTls => "starttls",
            Security::Plain => "plain",
        }
    }
}

/// The login name the mail servers expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginForm {
    /// The whole primary SMTP address.
    Address,
    /// The part before `@`.
    LocalPart,
}

/// A SASL/login method, named as Thunderbird's autoconfig names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `password-cleartext`: LOGIN/PLAIN over TLS.
    PasswordCleartext,
    /// `password-encrypted`: CRAM-MD5 (Outlook's SPA checkbox).
    PasswordEncrypted,
    /// `OAuth2` (Exchange Online).
    OAuth2,
}

impl AuthMethod {
    /// The autoconfig `<authentication>` value.
    pub fn autoconfig_name(self) -> &'static str {
        match self {
            AuthMethod::PasswordCleartext => "password-cleartext",
            AuthMethod::PasswordEncrypted => "password-encrypted",
            AuthMethod::OAuth2 => "OAuth2",
        }
    }

    fn parse(text: &str) -> Option<AuthMethod> {
        let t = text.trim();
        [
            AuthMethod::PasswordCleartext,
            AuthMethod::PasswordEncrypted,
            AuthMethod::OAuth2,
        ]
        .into_iter()
        .find(|m| m.autoconfig_name().eq_ignore_ascii_case(t))
    }
}

/// One mail server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailServer {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// Where an Internet-mail (or migrated) mailbox reads and sends mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternetServers {
    pub imap: Option<MailServer>,
    pub pop3: Option<MailServer>,
    pub smtp: Option<MailServer>,
    pub login: LoginForm,
    /// Preferred first; never empty.
    pub authentication: Vec<AuthMethod>,
}

impl InternetServers {
    /// The login name of `address` in this form.
    pub fn login_name(&self, address: &str) -> String {
        match self.login {
            LoginForm::Address => address.to_string(),
            LoginForm::LocalPart => address
                .rsplit_once('@')
                .map(|(local, _)| local.to_string())
                .unwrap_or_else(|| address.to_string()),
        }
    }

    /// The preferred method (the first listed).
    pub fn preferred_auth(&self) -> AuthMethod {
        self.authentication
            .first()
            .copied()
            .unwrap_or(AuthMethod::PasswordCleartext)
    }
}

/// Exchange Online's client host (EWS, ActiveSync, IMAP).
pub const EXCHANGE_ONLINE_HOST: &str = "outlook.office365.com";

/// Exchange Online's IMAP/SMTP with OAuth2: the tenant settings when `[mail.tenant]` is
/// absent.
pub fn exchange_online_servers() -> InternetServers {
    InternetServers {
        imap: Some(MailServer {
            host: EXCHANGE_ONLINE_HOST.into(),
            port: 993,
            security: Security::Tls,
        }),
        pop3: None,
        smtp: Some(MailServer {
            host: "smtp.office365.com".into(),
            port: 587,
            security: Security::StartTls,
        }),
        login: LoginForm::Address,
        authentication: vec![AuthMethod::OAuth2],
    }
}

/// IMAPS on imap.contoso.com:993 and submission with STARTTLS on smtp.contoso.com:587,
/// the address as login, passwords over TLS: the servers unit tests render.
#[cfg(test)]
pub fn sample_servers() -> InternetServers {
    let server = |host: &str, port, security| {
        Some(MailServer {
            host: host.into(),
            port,
            security,
        })
    };
    InternetServers {
        imap: server("imap.contoso.com", 993, Security::Tls),
        pop3: None,
        smtp: server("smtp.contoso.com", 587, Security::StartTls),
        login: LoginForm::Address,
        authentication: vec![AuthMethod::PasswordCleartext],
    }
}

/// Where the mail clients that read autoconfig send mail from an Exchange mailbox: every
/// autoconfig document needs an `outgoingServer` (Thunderbird refuses one without), and
/// EWS carries no submission server of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSubmission {
    pub smtp: MailServer,
    /// Preferred first; never empty.
    pub authentication: Vec<AuthMethod>,
}

/// The port Exchange's "Client Frontend" receive connector listens on for authenticated
/// submission (RFC 6409 §3.1), with STARTTLS.
pub const EXCHANGE_SUBMISSION_PORT: u16 = 587;

/// `.mobileconfig` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileconfigConfig {
    /// PEM certificate chain and key that sign profiles; `None`: profiles are unsigned.
    pub signer: Option<super::CertPaths>,
    /// Reverse-DNS prefix of payload identifiers.
    pub identifier: String,
    /// `PayloadOrganization`.
    pub organization: String,
}

/// The validated `[mail]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// The kind of local mailboxes in domains without their own `kind`.
    pub default_kind: MailboxKind,
    /// Lower-case domain → kind.
    pub domain_kinds: BTreeMap<String, MailboxKind>,
    /// `[mail.internet]`: the servers of Internet-mail mailboxes of any domain.
    pub internet: Option<InternetServers>,
    /// Lower-case domain → its servers (`[mail.internet]` with the domain's keys over it).
    pub domain_servers: BTreeMap<String, InternetServers>,
    /// Where migrated mailboxes read mail outside Exchange protocols (autoconfig).
    pub tenant: InternetServers,
    /// Exchange Online's EWS/ActiveSync host (Apple profiles of migrated mailboxes).
    pub tenant_exchange_host: String,
    /// `[mail.exchange]`: the SMTP server autoconfig gives Exchange accounts; `None`: the
    /// default (`Config::exchange_submission`).
    pub exchange_submission: Option<ExchangeSubmission>,
    /// Autoconfig and mobileconfig answer per mailbox (revealing kinds, existence and
    /// migration) instead of the domain's default answer for every address.
    pub reveal_mailboxes: bool,
    pub mobileconfig: MobileconfigConfig,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            default_kind: MailboxKind::Exchange,
            domain_kinds: BTreeMap::new(),
            internet: None,
            domain_servers: BTreeMap::new(),
            tenant: exchange_online_servers(),
            tenant_exchange_host: EXCHANGE_ONLINE_HOST.into(),
            exchange_submission: None,
            reveal_mailboxes: false,
            mobileconfig: MobileconfigConfig {
                signer: None,
                identifier: "autodiscoverd".into(),
                organization: String::new(),
            },
        }
    }
}

impl MailConfig {
    /// The default kind of local mailboxes of `domain` (any case).
    pub fn kind_of_domain(&self, domain: &str) -> MailboxKind {
        self.domain_kinds
            .get(&domain.to_ascii_lowercase())
            .copied()
            .unwrap_or(self.default_kind)
    }

    /// The Internet-mail servers for an address of `domain`, `None` when none are set.
    pub fn servers_for(&self, domain: &str) -> Option<&InternetServers> {
        self.domain_servers
            .get(&domain.to_ascii_lowercase())
            .or(self.internet.as_ref())
    }
}

impl super::Config {
    /// The SMTP submission server of Exchange accounts: `[mail.exchange]`, else the
    /// tenant's SMTP when this process answers as Exchange Online, else the EWS host on 587
    /// with STARTTLS and a password: what Exchange's "Client Frontend" receive connector
    /// offers on every Exchange 2013+ mailbox server, on a name clients already reach.
    pub fn exchange_submission(&self) -> ExchangeSubmission {
        if let Some(configured) = &self.mail.exchange_submission {
            return configured.clone();
        }
        let tenant = &self.mail.tenant;
        match (&tenant.smtp, self.org.microsoft_online) {
            (Some(smtp), true) => ExchangeSubmission {
                smtp: smtp.clone(),
                authentication: tenant.authentication.clone(),
            },
            _ => ExchangeSubmission {
                smtp: MailServer {
                    host: self
                        .services
                        .ews
                        .external
                        .parse::<http::Uri>()
                        .ok()
                        .and_then(|u| u.host().map(str::to_string))
                        .unwrap_or_default(),
                    port: EXCHANGE_SUBMISSION_PORT,
                    security: Security::StartTls,
                },
                authentication: vec![AuthMethod::PasswordCleartext],
            },
        }
    }
}

/// The domain of an address, lower-case (`""` without `@`).
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

impl Validator<'_> {
    pub(super) fn mail(
        &self,
        raw: MailSection,
        accepted_domains: &[String],
        tls_default: &super::CertPaths,
    ) -> Result<MailConfig, ConfigError> {
        let kind = |key: &str, text: &Option<String>| match text {
            None => Ok(None),
            Some(t) => MailboxKind::parse(t).map(Some).ok_or_else(|| {
                self.invalid(
                    key,
                    format!("unknown mailbox kind `{t}`"),
                    "use \"exchange\" or \"internet\" (IMAP/POP3 and SMTP)",
                )
            }),
        };
        let default_kind = kind("mail.kind", &raw.kind)?.unwrap_or(MailboxKind::Exchange);
        let internet = match &raw.internet {
            Some(s) => Some(self.servers("mail.internet", s, None)?),
            None => None,
        };
        let mut domain_kinds = BTreeMap::new();
        let mut domain_servers = BTreeMap::new();
        for (domain, section) in raw.domains {
            let key = format!("mail.domains.\"{domain}\"");
            let lower = domain.trim().to_ascii_lowercase();
            if !accepted_domains.contains(&lower) {
                return Err(self.invalid(
                    &key,
                    format!("`{domain}` is not an accepted domain"),
                    "list it in organization.accepted_domains, or remove this table",
                ));
            }
            if let Some(k) = kind(&format!("{key}.kind"), &section.kind)? {
                domain_kinds.insert(lower.clone(), k);
            }
            let s = ServersSection {
                imap: section.imap,
                pop3: section.pop3,
                smtp: section.smtp,
                login: section.login,
                authentication: section.authentication,
            };
            if s.imap.is_some()
                || s.pop3.is_some()
                || s.smtp.is_some()
                || s.login.is_some()
                || s.authentication.is_some()
            {
                domain_servers.insert(lower, self.servers(&key, &s, internet.as_ref())?);
            }
        }
        // Every domain whose mailboxes are Internet mail by default needs servers.
        for domain in accepted_domains {
            let k = domain_kinds.get(domain).copied().unwrap_or(default_kind);
            if k == MailboxKind::Internet
                && !domain_servers.contains_key(domain)
                && internet.is_none()
            {
                return Err(self.invalid(
                    "mail.internet",
                    format!("mailboxes of `{domain}` are Internet mail but no servers are configured"),
                    "add [mail.internet] with imap = { host = \"imap.example.com\" } and smtp = { host = \"smtp.example.com\" }",
                ));
            }
        }
        let tenant = match &raw.tenant {
            Some(s) => self.servers("mail.tenant", s, Some(&exchange_online_servers()))?,
            None => exchange_online_servers(),
        };
        let mobileconfig = self.mobileconfig(raw.mobileconfig.unwrap_or_default(), tls_default)?;
        let tenant_exchange_host = match &raw.tenant_exchange_host {
            Some(h) => self.host("mail.tenant_exchange_host", h)?,
            None => EXCHANGE_ONLINE_HOST.into(),
        };
        let exchange_submission = match &raw.exchange {
            None => None,
            Some(section) => Some(self.exchange_submission(section)?),
        };
        Ok(MailConfig {
            tenant_exchange_host,
            exchange_submission,
            default_kind,
            domain_kinds,
            internet,
            domain_servers,
            tenant,
            reveal_mailboxes: raw.reveal_mailboxes,
            mobileconfig,
        })
    }

    /// Validates a set of servers; keys it does not set come from `base`.
    fn servers(
        &self,
        key: &str,
        raw: &ServersSection,
        base: Option<&InternetServers>,
    ) -> Result<InternetServers, ConfigError> {
        let imap = self.mail_server(&format!("{key}.imap"), &raw.imap, 993, 143)?;
        let pop3 = self.mail_server(&format!("{key}.pop3"), &raw.pop3, 995, 110)?;
        let smtp = self.mail_server(&format!("{key}.smtp"), &raw.smtp, 465, 587)?;
        let login = match raw.login.as_deref().map(str::trim) {
            None => base.map(|b| b.login).unwrap_or(LoginForm::Address),
            Some("address") => LoginForm::Address,
            Some("local_part") => LoginForm::LocalPart,
            Some(other) => {
                return Err(self.invalid(
                    &format!("{key}.login"),
                    format!("unknown login form `{other}`"),
                    "use \"address\" (alice@contoso.com) or \"local_part\" (alice)",
                ))
            }
        };
        let authentication = match &raw.authentication {
            None => base
                .map(|b| b.authentication.clone())
                .unwrap_or_else(|| vec![AuthMethod::PasswordCleartext]),
            Some(list) => self.auth_methods(&format!("{key}.authentication"), list)?,
        };
        let servers = InternetServers {
            imap: imap.or_else(|| base.and_then(|b| b.imap.clone())),
            pop3: pop3.or_else(|| base.and_then(|b| b.pop3.clone())),
            smtp: smtp.or_else(|| base.and_then(|b| b.smtp.clone())),
            login,
            authentication,
        };
        if servers.smtp.is_none() || (servers.imap.is_none() && servers.pop3.is_none()) {
            return Err(self.invalid(
                key,
                "needs an SMTP server and an IMAP or POP3 server",
                "set smtp = { host = \"...\" } and imap = { host = \"...\" } (or pop3)",
            ));
        }
        Ok(servers)
    }

    /// Validates `[mail.exchange]`.
    fn exchange_submission(
        &self,
        raw: &ExchangeSection,
    ) -> Result<ExchangeSubmission, ConfigError> {
        let smtp = self
            .mail_server("mail.exchange.smtp", &raw.smtp, 465, EXCHANGE_SUBMISSION_PORT)?
            .ok_or_else(|| {
                self.invalid(
                    "mail.exchange.smtp",
                    "the table has no SMTP server",
                    "set smtp = { host = \"mail.contoso.com\", port = 587, security = \"starttls\" }, or remove [mail.exchange] for that default",
                )
            })?;
        let authentication = match &raw.authentication {
            None => vec![AuthMethod::PasswordCleartext],
            Some(list) => self.auth_methods("mail.exchange.authentication", list)?,
        };
        Ok(ExchangeSubmission {
            smtp,
            authentication,
        })
    }

    /// A non-empty list of autoconfig authentication names.
    fn auth_methods(&self, key: &str, list: &[String]) -> Result<Vec<AuthMethod>, ConfigError> {
        let mut out = Vec::new();
        for m in list {
            out.push(AuthMethod::parse(m).ok_or_else(|| {
                self.invalid(
                    key,
                    format!("unknown method `{m}`"),
                    "use \"password-cleartext\", \"password-encrypted\" or \"OAuth2\"",
                )
            })?);
        }
        if out.is_empty() {
            return Err(self.invalid(
                key,
                "an empty list",
                "list at least one method, e.g. [\"password-cleartext\"]",
            ));
        }
        Ok(out)
    }

    fn mail_server(
        &self,
        key: &str,
        raw: &Option<ServerSection>,
        tls_port: u16,
        starttls_port: u16,
    ) -> Result<Option<MailServer>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let host = raw.host.trim().to_ascii_lowercase();
        if !is_host_name(&host) {
            return Err(self.invalid(
                &format!("{key}.host"),
                format!("`{}` is not a host name", raw.host),
                "use a DNS name such as \"imap.contoso.com\" (no scheme, no port)",
            ));
        }
        let security =
            match raw.security.as_deref().map(str::trim) {
                None | Some("tls") => Security::Tls,
                Some("starttls") => Security::StartTls,
                Some("plain") => Security::Plain,
                Some(other) => return Err(self.invalid(
                    &format!("{key}.security"),
                    format!("unknown security `{other}`"),
                    "use \"tls\" (implicit TLS, RFC 8314), \"starttls\" or \"plain\" (labs only)",
                )),
            };
        let port = match raw.port {
            Some(0) => {
                return Err(self.invalid(
                    &format!("{key}.port"),
                    "port 0",
                    "use the server's port, e.g. 993 for IMAPS",
                ))
            }
            Some(p) => p,
            None if security == Security::Tls => tls_port,
            None => starttls_port,
        };
        Ok(Some(MailServer {
            host,
            port,
            security,
        }))
    }

    fn mobileconfig(
        &self,
        raw: MobileconfigSection,
        tls_default: &super::CertPaths,
    ) -> Result<MobileconfigConfig, ConfigError> {
        let signer = match (raw.sign.unwrap_or(false), &raw.cert, &raw.key) {
            (false, None, None) => None,
            (_, Some(cert), Some(key)) => Some(super::CertPaths {
                cert: resolve_against(self.file, Path::new(cert)),
                key: resolve_against(self.file, Path::new(key)),
            }),
            (true, None, None) => Some(tls_default.clone()),
            _ => {
                return Err(self.invalid(
                    "mail.mobileconfig.cert",
                    "only one of `cert` and `key` is set",
                    "set both (a signing certificate and its key), or neither to sign with tls.cert/tls.key when sign = true",
                ))
            }
        };
        let identifier = raw
            .identifier
            .map(|i| i.trim().to_string())
            .unwrap_or_else(|| "autodiscoverd".into());
        if identifier.is_empty()
            || !identifier
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        {
            return Err(self.invalid(
                "mail.mobileconfig.identifier",
                format!("`{identifier}` is not a reverse-DNS identifier"),
                "use letters, digits, '.' and '-', e.g. \"com.contoso.mail\"",
            ));
        }
        Ok(MobileconfigConfig {
            signer,
            identifier,
            organization: raw.organization.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::example;
    use crate::config::Config;

    fn with_mail(mail: &str) -> Result<Config, ConfigError> {
        let (path, text) = example();
        let mut table: toml::Table = toml::from_str(&text).unwrap();
        table.remove("mail");
        let extra: toml::Table = toml::from_str(mail).unwrap();
        table.extend(extra);
        Config::from_toml(&path, &toml::to_string(&table).unwrap())
    }

    #[test]
    fn the_example_serves_exchange_and_has_internet_servers() {
        let (path, text) = example();
        let c = Config::from_toml(&path, &text).unwrap();
        assert_eq!(c.mail.kind_of_domain("CONTOSO.com"), MailboxKind::Exchange);
        let s = c.mail.servers_for("contoso.com").unwrap();
        assert_eq!(s.imap.as_ref().unwrap().port, 993);
        assert_eq!(s.smtp.as_ref().unwrap().security, Security::StartTls);
        assert!(!c.mail.reveal_mailboxes);
        assert_eq!(c.mail.tenant, exchange_online_servers());
        assert_eq!(c.mail.mobileconfig.signer, None);
    }

    #[test]
    fn without_the_table_every_mailbox_is_exchange() {
        let c = with_mail("").unwrap();
        assert_eq!(c.mail, MailConfig::default());
    }

    #[test]
    fn domains_override_kind_and_servers_and_ports_follow_security() {
        let c = with_mail(
            r#"
            [mail]
            kind = "internet"
            [mail.internet]
            imap = { host = "imap.contoso.com", security = "starttls" }
            smtp = { host = "smtp.contoso.com" }
            login = "local_part"
            [mail.domains."contoso.com"]
            kind = "exchange"
            pop3 = { host = "POP.contoso.com" }
            authentication = ["password-encrypted", "password-cleartext"]
            "#,
        )
        .unwrap();
        assert_eq!(c.mail.kind_of_domain("contoso.com"), MailboxKind::Exchange);
        assert_eq!(
            c.mail.kind_of_domain("other.example"),
            MailboxKind::Internet
        );
        let base = c.mail.servers_for("other.example").unwrap();
        assert_eq!(base.imap.as_ref().unwrap().port, 143);
        assert_eq!(base.smtp.as_ref().unwrap().port, 465);
        assert_eq!(base.login_name("grace@contoso.com"), "grace");
        let own = c.mail.servers_for("Contoso.com").unwrap();
        assert_eq!(own.pop3.as_ref().unwrap().host, "pop.contoso.com");
        assert_eq!(own.pop3.as_ref().unwrap().port, 995);
        // Inherited from [mail.internet].
        assert_eq!(own.imap, base.imap);
        assert_eq!(own.login, LoginForm::LocalPart);
        assert_eq!(own.preferred_auth(), AuthMethod::PasswordEncrypted);
    }

    #[test]
    fn the_exchange_submission_server_is_optional_and_validated() {
        let c = with_mail("").unwrap();
        assert_eq!(c.mail.exchange_submission, None);
        let c = with_mail(
            "[mail.exchange]\nsmtp = { host = \"SMTP.contoso.com\", security = \"starttls\" }\nauthentication = [\"password-encrypted\", \"password-cleartext\"]",
        )
        .unwrap();
        assert_eq!(
            c.mail.exchange_submission,
            Some(ExchangeSubmission {
                smtp: MailServer {
                    host: "smtp.contoso.com".into(),
                    port: 587,
                    security: Security::StartTls,
                },
                authentication: vec![AuthMethod::PasswordEncrypted, AuthMethod::PasswordCleartext],
            })
        );
        // Implicit TLS defaults to 465, and the method to a password over TLS.
        let c = with_mail("[mail.exchange]\nsmtp = { host = \"smtp.contoso.com\" }").unwrap();
        let s = c.mail.exchange_submission.unwrap();
        assert_eq!((s.smtp.port, s.smtp.security), (465, Security::Tls));
        assert_eq!(s.authentication, vec![AuthMethod::PasswordCleartext]);
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        for (mail, key) in [
            ("[mail]\nkind = \"imap4\"", "mail.kind"),
            ("[mail]\nkind = \"internet\"", "mail.internet"),
            (
                "[mail.internet]\nimap = { host = \"imap.contoso.com\" }",
                "mail.internet",
            ),
            (
                "[mail.internet]\nimap = { host = \"imap/x\" }\nsmtp = { host = \"s.c\" }",
                "mail.internet.imap.host",
            ),
            (
                "[mail.internet]\nimap = { host = \"i.c\", security = \"ssl3\" }\nsmtp = { host = \"s.c\" }",
                "mail.internet.imap.security",
            ),
            (
                "[mail.internet]\nimap = { host = \"i.c\" }\nsmtp = { host = \"s.c\" }\nauthentication = [\"kerberos\"]",
                "mail.internet.authentication",
            ),
            (
                "[mail.domains.\"fabrikam.com\"]\nkind = \"internet\"",
                "mail.domains.\"fabrikam.com\"",
            ),
            (
                "[mail.mobileconfig]\ncert = \"c.pem\"",
                "mail.mobileconfig.cert",
            ),
            ("[mail.exchange]\nauthentication = []", "mail.exchange.smtp"),
            (
                "[mail.exchange]\nsmtp = { host = \"s.c\" }\nauthentication = []",
                "mail.exchange.authentication",
            ),
            (
                "[mail.exchange]\nsmtp = { host = \"s.c\", port = 0 }",
                "mail.exchange.smtp.port",
            ),
            (
                "[mail.mobileconfig]\nidentifier = \"com contoso\"",
                "mail.mobileconfig.identifier",
            ),
        ] {
            let e = with_mail(mail).unwrap_err();
            assert_eq!(e.key(), Some(key), "{mail}: {e}");
            assert!(e.to_string().contains("Fix:"), "{e}");
        }
        let e = with_mail("[mail]\nunknown = 1").unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
    }

    #[test]
    fn signing_defaults_to_the_tls_certificate() {
        let c = with_mail("[mail.mobileconfig]\nsign = true").unwrap();
        assert_eq!(c.mail.mobileconfig.signer.as_ref(), Some(&c.tls.default));
    }
}

#[cfg(test)]
mod ldap_rule_tests {
    use std::path::PathBuf;

    use crate::config::{normalise_dn, Config, DirectoryConfig};

    fn ldap_example() -> (PathBuf, toml::Table) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("config/autodiscoverd.ldap-example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        (path, toml::from_str(&text).unwrap())
    }

    fn load(rule: &str) -> Result<Config, crate::config::ConfigError> {
        let (path, mut table) = ldap_example();
        let ldap = table["directory"]["ldap"].as_table().cloned().unwrap();
        let mut ldap = ldap;
        ldap.insert(
            "mailbox_kind".into(),
            toml::from_str::<toml::Table>(rule).unwrap().into(),
        );
        table["directory"]
            .as_table_mut()
            .unwrap()
            .insert("ldap".into(), ldap.into());
        Config::from_toml(&path, &toml::to_string(&table).unwrap())
    }

    #[test]
    fn the_ldap_example_reads_the_kind_from_employee_type() {
        let c = load("attribute = \"employeeType\"").unwrap();
        let DirectoryConfig::Ldap(l) = &c.directory else {
            panic!("not ldap")
        };
        assert_eq!(l.mailbox_kind.attribute.as_deref(), Some("employeeType"));
        assert_eq!(
            l.mailbox_kind.attributes(),
            vec!["employeeType".to_string()]
        );
    }

    #[test]
    fn groups_and_subtrees_are_normalised_and_ask_for_member_of() {
        let c = load(
            "internet_groups = [\"CN=IMAP Users, OU=Groups,DC=contoso,DC=com\"]\n\
             internet_subtrees = [\"OU=Dovecot,DC=contoso,DC=com\"]",
        )
        .unwrap();
        let DirectoryConfig::Ldap(l) = &c.directory else {
            panic!("not ldap")
        };
        let rule = &l.mailbox_kind;
        assert_eq!(
            rule.internet_groups,
            vec![normalise_dn("cn=imap users,ou=groups,dc=contoso,dc=com")]
        );
        assert_eq!(rule.attributes(), vec!["memberOf".to_string()]);
        assert_eq!(rule.internet_subtrees, vec!["ou=dovecot,dc=contoso,dc=com"]);
    }

    #[test]
    fn bad_rules_name_the_key() {
        for (rule, key) in [
            (
                "attribute = \"employee type\"",
                "directory.ldap.mailbox_kind.attribute",
            ),
            (
                "internet_groups = [\"IMAP Users\"]",
                "directory.ldap.mailbox_kind.internet_groups",
            ),
            (
                "member_of_attribute = \"memberOf)(x\"",
                "directory.ldap.mailbox_kind.member_of_attribute",
            ),
        ] {
            let e = load(rule).unwrap_err();
            assert_eq!(e.key(), Some(key), "{e}");
        }
        assert!(load("unknown = 1").is_err());
    }
}
