//! The `[directory.ldap]` table: its serde mirror and its validation into [`LdapConfig`].
//! Reads the service-account password from its file or environment variable (never from
//! the configuration file itself); never opens a connection.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{resolve_against, ConfigError};

/// Serde mirror of `[directory.ldap]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapDirectorySection {
    pub urls: Vec<String>,
    #[serde(default)]
    pub starttls: bool,
    pub ca_file: Option<String>,
    pub bind_dn: String,
    pub bind_password_file: Option<String>,
    pub bind_password_env: Option<String>,
    pub base_dn: String,
    pub scope: Option<String>,
    pub filter: Option<String>,
    pub netbios_domain: Option<String>,
    pub pool_size: Option<usize>,
    pub connect_timeout_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub cache_ttl_secs: Option<u64>,
    pub cache_max_entries: Option<usize>,
    pub serve_stale_secs: Option<u64>,
    pub attributes: Option<LdapAttributesSection>,
    pub mailbox_kind: Option<MailboxKindSection>,
}

/// `directory.ldap.serve_stale_secs` when not set: four hours, a night's patching.
pub const DEFAULT_SERVE_STALE_SECS: u64 = 4 * 3600;
/// The longest staleness allowed: a week.
const MAX_SERVE_STALE_SECS: u64 = 7 * 24 * 3600;

/// Serde mirror of `[directory.ldap.mailbox_kind]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxKindSection {
    pub attribute: Option<String>,
    #[serde(default)]
    pub internet_groups: Vec<String>,
    #[serde(default)]
    pub internet_subtrees: Vec<String>,
    pub member_of_attribute: Option<String>,
}

/// Which directory entries are Internet-mail (IMAP/POP3/SMTP) mailboxes rather than the
/// accepted domain's default kind. The attribute wins when it holds `exchange` or
/// `internet`; otherwise membership of a listed group (`memberOf`) or an entry below a
/// listed subtree makes the mailbox Internet mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxKindRule {
    pub attribute: Option<String>,
    /// Group DNs, compared case-insensitively without spaces around `,` and `=`.
    pub internet_groups: Vec<String>,
    /// Subtree DNs (normalised like the groups); an entry at or below one matches.
    pub internet_subtrees: Vec<String>,
    /// The group-membership attribute (`memberOf`), read only when groups are listed.
    pub member_of_attribute: String,
}

impl MailboxKindRule {
    /// The attributes a lookup must ask for to apply the rule.
    pub fn attributes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.attribute.iter().cloned().collect();
        if !self.internet_groups.is_empty() {
            v.push(self.member_of_attribute.clone());
        }
        v
    }
}

/// A DN in one spelling for comparisons: lower-case, no spaces around `,`, `=` and `+`.
pub fn normalise_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let rdn: Vec<String> = part
            .split('+')
            .map(|ava| match ava.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                None => ava.trim().to_string(),
            })
            .collect();
        out.push_str(&rdn.join("+").to_lowercase());
    }
    out
}

/// Serde mirror of `[directory.ldap.attributes]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapAttributesSection {
    pub mail: Option<String>,
    pub proxy_addresses: Option<String>,
    pub user_principal_name: Option<String>,
    pub sam_account_name: Option<String>,
    pub legacy_exchange_dn: Option<String>,
    pub display_name: Option<String>,
    pub recipient_type_details: Option<String>,
    pub remote_recipient_type: Option<String>,
    pub target_address: Option<String>,
    pub mailbox_guid: Option<String>,
    pub user_account_control: Option<String>,
    pub home_mdb: Option<String>,
    pub nt_password: Option<String>,
    pub object_sid: Option<String>,
}

/// The service account's password. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct BindPassword(String);

impl BindPassword {
    /// Wraps a password (tests and the config loader).
    pub fn new(password: impl Into<String>) -> BindPassword {
        BindPassword(password.into())
    }

    /// The password, for the bind request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BindPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BindPassword(<redacted>)")
    }
}

/// LDAP search scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapScope {
    Base,
    OneLevel,
    Subtree,
}

/// One server URL: `ldap://host:port` or `ldaps://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    /// The URL as written (scheme, host and port only).
    pub url: String,
    /// `ldaps://` (TLS from the first byte).
    pub ldaps: bool,
    /// The host is 127.0.0.0/8, ::1 or `localhost`.
    pub loopback: bool,
}

/// Attribute names read from the directory (Active Directory / Exchange defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapAttributes {
    pub mail: String,
    pub proxy_addresses: String,
    pub user_principal_name: String,
    pub sam_account_name: String,
    pub legacy_exchange_dn: String,
    pub display_name: String,
    pub recipient_type_details: String,
    pub remote_recipient_type: String,
    pub target_address: String,
    pub mailbox_guid: String,
    pub user_account_control: String,
    pub home_mdb: String,
    /// The binary security identifier (`objectSid`) that HMA tokens name (`onprem_sid`).
    pub object_sid: String,
    /// Hex NT hash attribute (Samba's `sambaNTPassword`); `None`: no NTLM from LDAP.
    pub nt_password: Option<String>,
}

impl Default for LdapAttributes {
    fn default() -> Self {
        LdapAttributes {
            mail: "mail".into(),
            proxy_addresses: "proxyAddresses".into(),
            user_principal_name: "userPrincipalName".into(),
            sam_account_name: "sAMAccountName".into(),
            legacy_exchange_dn: "legacyExchangeDN".into(),
            display_name: "displayName".into(),
            recipient_type_details: "msExchRecipientTypeDetails".into(),
            remote_recipient_type: "msExchRemoteRecipientType".into(),
            target_address: "targetAddress".into(),
            mailbox_guid: "msExchMailboxGuid".into(),
            user_account_control: "userAccountControl".into(),
            home_mdb: "homeMDB".into(),
            object_sid: "objectSid".into(),
            nt_password: None,
        }
    }
}

impl LdapAttributes {
    /// Every attribute a lookup requests.
    pub fn all(&self) -> Vec<String> {
        let mut v = vec![
            self.mail.clone(),
            self.proxy_addresses.clone(),
            self.user_principal_name.clone(),
            self.sam_account_name.clone(),
            self.legacy_exchange_dn.clone(),
            self.display_name.clone(),
            self.recipient_type_details.clone(),
            self.remote_recipient_type.clone(),
            self.target_address.clone(),
            self.mailbox_guid.clone(),
            self.user_account_control.clone(),
            self.home_mdb.clone(),
        ];
        v.dedup();
        v
    }
}

/// The placeholder of [`LdapConfig::filter`] that receives the generated match.
pub const FILTER_PLACEHOLDER: &str = "{match}";

/// Default object filter: users and contacts in Active Directory.
pub const DEFAULT_FILTER: &str = "(&(objectCategory=person){match})";

/// The validated `[directory.ldap]` table.
#[derive(Debug, Clone)]
pub struct LdapConfig {
    pub urls: Vec<LdapUrl>,
    pub starttls: bool,
    /// PEM file of the CA(s) that sign the directory's certificate; `None`: system roots.
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    pub bind_password: BindPassword,
    pub base_dn: String,
    pub scope: LdapScope,
    /// Filter template with one `{match}`.
    pub filter: String,
    /// Lower-case NetBIOS domain name for `DOMAIN\user` logins.
    pub netbios_domain: Option<String>,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    /// Upper bound of one directory call (connect, bind and search included).
    pub timeout: Duration,
    /// 0 disables the cache.
    pub cache_ttl: Duration,
    pub cache_max_entries: usize,
    /// How long past its TTL a cached lookup or verified login still answers while the
    /// directory cannot be asked; 0: never.
    pub serve_stale: Duration,
    pub attributes: LdapAttributes,
    /// Per-mailbox kind (`[directory.ldap.mailbox_kind]`); empty: every mailbox has its
    /// domain's kind.
    pub mailbox_kind: MailboxKindRule,
}

impl LdapConfig {
    /// The filter for `clause` (an already escaped, parenthesised match).
    pub fn filter_for(&self, clause: &str) -> String {
        self.filter.replacen(FILTER_PLACEHOLDER, clause, 1)
    }
}

/// Validates `[directory.ldap]` of `file`.
pub fn validate(file: &Path, raw: LdapDirectorySection) -> Result<LdapConfig, ConfigError> {
    let bad = |key: &str, problem: String, fix: &str| {
        ConfigError::invalid(file, format!("directory.ldap.{key}"), problem, fix)
    };
    if raw.urls.is_empty() {
        return Err(bad(
            "urls",
            "no server URL".into(),
            "list at least one, e.g. [\"ldaps://dc01.corp.contoso.com\"]",
        ));
    }
    let mut urls = Vec::new();
    for u in &raw.urls {
        let url = parse_url(u).ok_or_else(|| {
            bad(
                "urls",
                format!("`{u}` is not an ldap:// or ldaps:// URL with a host"),
                "write ldaps://host[:port] or ldap://host[:port] (no path, no query)",
            )
        })?;
        if !url.ldaps && !raw.starttls && !url.loopback {
            return Err(bad(
                "urls",
                format!("`{u}` would send the service account's and users' passwords in clear text"),
                "use ldaps://, or set starttls = true; plain ldap:// is accepted only for loopback lab servers",
            ));
        }
        urls.push(url);
    }
    let ca_file = match &raw.ca_file {
        Some(p) => {
            let path = resolve_against(file, Path::new(p));
            if !path.is_file() {
                return Err(bad(
                    "ca_file",
                    format!("`{}` does not exist or is not a file", path.display()),
                    "point it at the PEM certificate of the CA that issued the directory's certificate, or remove it to use the system roots",
                ));
            }
            Some(path)
        }
        None => None,
    };
    if raw.bind_dn.trim().is_empty() {
        return Err(bad(
            "bind_dn",
            "empty".into(),
            "give the service account's DN, e.g. \"CN=svc-autodiscover,OU=Service,DC=contoso,DC=com\"",
        ));
    }
    let bind_password = match (&raw.bind_password_file, &raw.bind_password_env) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "bind_password_file",
                "both bind_password_file and bind_password_env are set".into(),
                "keep one of them",
            ))
        }
        (None, None) => {
            return Err(bad(
                "bind_password_file",
                "no password source for the service account".into(),
                "set bind_password_file = \"/etc/autodiscoverd/ldap-password\" (mode 0640) or bind_password_env = \"AUTODISCOVERD_LDAP_PASSWORD\"",
            ))
        }
        (Some(p), None) => {
            let path = resolve_against(file, Path::new(p));
            let text = std::fs::read_to_string(&path).map_err(|e| {
                bad(
                    "bind_password_file",
                    format!("cannot read `{}`: {e}", path.display()),
                    "create the file with the password on one line, readable by the service user only",
                )
            })?;
            warn_if_world_readable(&path);
            let pw = text.trim_end_matches(['\r', '\n']).to_string();
            if pw.is_empty() {
                return Err(bad(
                    "bind_password_file",
                    format!("`{}` is empty", path.display()),
                    "write the service account's password into it (an empty password is an anonymous bind)",
                ));
            }
            BindPassword(pw)
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(pw) if !pw.is_empty() => BindPassword(pw),
            _ => {
                return Err(bad(
                    "bind_password_env",
                    format!("environment variable `{var}` is not set or empty"),
                    "export it in the service environment (e.g. systemd EnvironmentFile=), or use bind_password_file",
                ))
            }
        },
    };
    // An empty base is the whole forest, which only a global catalog (3268/3269) holds.
    let global_catalog = urls
        .iter()
        .all(|u| u.url.ends_with(":3268") || u.url.ends_with(":3269"));
    if raw.base_dn.trim().is_empty() && !global_catalog {
        return Err(bad(
            "base_dn",
            "empty".into(),
            "give the search base, e.g. \"DC=contoso,DC=com\" (an empty base, the whole forest, needs global catalog URLs: ldaps://gc.contoso.com:3269)",
        ));
    }
    let scope = match raw.scope.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("sub") | Some("subtree") => LdapScope::Subtree,
        Some("one") | Some("onelevel") => LdapScope::OneLevel,
        Some("base") => LdapScope::Base,
        Some(other) => {
            return Err(bad(
                "scope",
                format!("unknown scope `{other}`"),
                "use \"sub\" (default), \"one\" or \"base\"",
            ))
        }
    };
    let filter = raw.filter.unwrap_or_else(|| DEFAULT_FILTER.to_string());
    check_filter(&filter).map_err(|problem| {
        bad(
            "filter",
            problem,
            "write an LDAP filter containing {match} once, e.g. \"(&(objectCategory=person){match})\"",
        )
    })?;
    let netbios_domain = match raw.netbios_domain {
        Some(d) => {
            let d = d.trim().to_ascii_lowercase();
            if d.is_empty() || d.contains(['\\', '@', '.', ' ']) {
                return Err(bad(
                    "netbios_domain",
                    format!("`{d}` is not a NetBIOS domain name"),
                    "use the pre-Windows 2000 domain name, e.g. \"CONTOSO\"",
                ));
            }
            Some(d)
        }
        None => None,
    };
    let pool_size = raw.pool_size.unwrap_or(8);
    if pool_size == 0 || pool_size > 256 {
        return Err(bad(
            "pool_size",
            format!("{pool_size} connections"),
            "use 1 to 256 (default 8)",
        ));
    }
    let connect_ms = raw.connect_timeout_ms.unwrap_or(3000);
    let timeout_ms = raw.timeout_ms.unwrap_or(5000);
    if connect_ms == 0 || timeout_ms == 0 {
        return Err(bad(
            if connect_ms == 0 {
                "connect_timeout_ms"
            } else {
                "timeout_ms"
            },
            "a timeout of 0".into(),
            "use a positive number of milliseconds",
        ));
    }
    if connect_ms > timeout_ms {
        return Err(bad(
            "connect_timeout_ms",
            format!("{connect_ms} ms is longer than timeout_ms ({timeout_ms} ms)"),
            "timeout_ms bounds a whole directory call, connect included; make it the larger one",
        ));
    }
    let cache_max_entries = raw.cache_max_entries.unwrap_or(10_000);
    if cache_max_entries == 0 {
        return Err(bad(
            "cache_max_entries",
            "0 entries".into(),
            "use a positive number (default 10000); set cache_ttl_secs = 0 to disable the cache",
        ));
    }
    let cache_ttl_secs = raw.cache_ttl_secs.unwrap_or(60);
    if cache_ttl_secs > 3600 {
        return Err(bad(
            "cache_ttl_secs",
            format!("{cache_ttl_secs} seconds"),
            "use at most 3600: a disabled account or changed password must stop working soon",
        ));
    }
    let serve_stale_secs = raw.serve_stale_secs.unwrap_or(DEFAULT_SERVE_STALE_SECS);
    if serve_stale_secs > MAX_SERVE_STALE_SECS {
        return Err(bad(
            "serve_stale_secs",
            format!("{serve_stale_secs} seconds"),
            "use at most 604800 (a week; default 14400, 0 turns it off): an account disabled during an outage keeps its answer that long",
        ));
    }
    if serve_stale_secs > 0 && cache_ttl_secs == 0 {
        tracing::debug!("directory.ldap.serve_stale_secs has no effect with cache_ttl_secs = 0");
    }
    let attributes = attributes(raw.attributes.unwrap_or_default()).map_err(|(key, value)| {
        bad(
            &format!("attributes.{key}"),
            format!("`{value}` is not an attribute name"),
            "use an LDAP attribute name (letters, digits and '-', starting with a letter)",
        )
    })?;
    let mailbox_kind = mailbox_kind_rule(raw.mailbox_kind.unwrap_or_default())
        .map_err(|(key, value, fix)| bad(&format!("mailbox_kind.{key}"), value, fix))?;
    Ok(LdapConfig {
        mailbox_kind,
        urls,
        starttls: raw.starttls,
        ca_file,
        bind_dn: raw.bind_dn.trim().to_string(),
        bind_password,
        base_dn: raw.base_dn.trim().to_string(),
        scope,
        filter,
        netbios_domain,
        pool_size,
        connect_timeout: Duration::from_millis(connect_ms),
        timeout: Duration::from_millis(timeout_ms),
        cache_ttl: Duration::from_secs(cache_ttl_secs),
        cache_max_entries,
        serve_stale: Duration::from_secs(serve_stale_secs),
        attributes,
    })
}

/// A password file others can read is a finding worth a line at every start.
fn warn_if_world_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o004 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "directory.ldap.bind_password_file is world-readable; chmod 0640 and chown root:autodiscoverd"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn parse_url(text: &str) -> Option<LdapUrl> {
    let url = url::Url::parse(text.trim()).ok()?;
    let ldaps = match url.scheme() {
        "ldaps" => true,
        "ldap" => false,
        _ => return None,
    };
    if (url.path() != "" && url.path() != "/") || url.query().is_some() || url.fragment().is_some()
    {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let loopback = match url.host()? {
        // ldap: is not a "special" scheme, so IPv4 literals arrive as opaque host text.
        url::Host::Domain(d) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => IpAddr::V4(ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(ip).is_loopback(),
    };
    let host = url.host_str()?;
    let url_text = match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    Some(LdapUrl {
        url: url_text,
        ldaps,
        loopback,
    })
}

fn check_filter(template: &str) -> Result<(), String> {
    if template.matches(FILTER_PLACEHOLDER).count() != 1 {
        return Err(format!(
            "`{template}` must contain {FILTER_PLACEHOLDER} exactly once"
        ));
    }
    let sample = template.replacen(FILTER_PLACEHOLDER, "(mail=x)", 1);
    ldap3::parse_filter(&sample)
        .map(|_| ())
        .map_err(|_| format!("`{template}` is not a valid LDAP filter"))
}

fn attributes(raw: LdapAttributesSection) -> Result<LdapAttributes, (&'static str, String)> {
    let d = LdapAttributes::default();
    let pick = |key: &'static str, v: Option<String>, default: String| match v {
        Some(v) if is_attribute_name(v.trim()) => Ok(v.trim().to_string()),
        Some(v) => Err((key, v)),
        None => Ok(default),
    };
    Ok(LdapAttributes {
        mail: pick("mail", raw.mail, d.mail)?,
        proxy_addresses: pick("proxy_addresses", raw.proxy_addresses, d.proxy_addresses)?,
        user_principal_name: pick(
            "user_principal_name",
            raw.user_principal_name,
            d.user_principal_name,
        )?,
        sam_account_name: pick("sam_account_name", raw.sam_account_name, d.sam_account_name)?,
        legacy_exchange_dn: pick(
            "legacy_exchange_dn",
            raw.legacy_exchange_dn,
            d.legacy_exchange_dn,
        )?,
        display_name: pick("display_name", raw.display_name, d.display_name)?,
        recipient_type_details: pick(
            "recipient_type_details",
            raw.recipient_type_details,
            d.recipient_type_details,
        )?,
        remote_recipient_type: pick(
            "remote_recipient_type",
            raw.remote_recipient_type,
            d.remote_recipient_type,
        )?,
        target_address: pick("target_address", raw.target_address, d.target_address)?,
        mailbox_guid: pick("mailbox_guid", raw.mailbox_guid, d.mailbox_guid)?,
        user_account_control: pick(
            "user_account_control",
            raw.user_account_control,
            d.user_account_control,
        )?,
        home_mdb: pick("home_mdb", raw.home_mdb, d.home_mdb)?,
        object_sid: pick("object_sid", raw.object_sid, d.object_sid)?,
        nt_password: match raw.nt_password {
            Some(v) if is_attribute_name(v.trim()) => Some(v.trim().to_string()),
            Some(v) => return Err(("nt_password", v)),
            None => None,
        },
    })
}

fn mailbox_kind_rule(
    raw: MailboxKindSection,
) -> Result<MailboxKindRule, (&'static str, String, &'static str)> {
    const NAME_FIX: &str =
        "use an LDAP attribute name (letters, digits and '-', starting with a letter)";
    let attribute = match raw.attribute {
        Some(a) if is_attribute_name(a.trim()) => Some(a.trim().to_string()),
        Some(a) => {
            return Err((
                "attribute",
                format!("`{a}` is not an attribute name"),
                NAME_FIX,
            ))
        }
        None => None,
    };
    let member_of_attribute = match raw.member_of_attribute {
        Some(a) if is_attribute_name(a.trim()) => a.trim().to_string(),
        Some(a) => {
            return Err((
                "member_of_attribute",
                format!("`{a}` is not an attribute name"),
                NAME_FIX,
            ))
        }
        None => "memberOf".to_string(),
    };
    let dns = |key: &'static str, list: Vec<String>| {
        list.into_iter()
            .map(|dn| {
                if dn.contains('=') {
                    Ok(normalise_dn(&dn))
                } else {
                    Err((
                        key,
                        format!("`{dn}` is not a DN"),
                        "write full DNs such as \"CN=IMAP Users,OU=Groups,DC=contoso,DC=com\"",
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(MailboxKindRule {
        attribute,
        internet_groups: dns("internet_groups", raw.internet_groups)?,
        internet_subtrees: dns("internet_subtrees", raw.internet_subtrees)?,
        member_of_attribute,
    })
}

/// An attribute name as it may appear in a filter without escaping (RFC 4512 `descr`).
fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_scheme_host_and_port_and_know_loopback() {
        let u = parse_url("ldaps://dc01.corp.contoso.com:3269/").unwrap();
        assert_eq!(u.url, "ldaps://dc01.corp.contoso.com:3269");
        assert!(u.ldaps && !u.loopback);
        assert!(parse_url("ldap://127.0.0.1:3389").unwrap().loopback);
        assert!(parse_url("ldap://[::1]:3389").unwrap().loopback);
        assert!(parse_url("ldap://localhost").unwrap().loopback);
        assert!(parse_url("http://dc01").is_none());
        assert!(parse_url("ldap://dc01/dc=contoso?mail").is_none());
        assert!(parse_url("ldap://user:pw@dc01").is_none());
        assert!(parse_url("dc01.contoso.com").is_none());
    }

    #[test]
    fn filter_templates_need_one_placeholder_and_valid_syntax() {
        assert!(check_filter(DEFAULT_FILTER).is_ok());
        assert!(check_filter("{match}").is_ok());
        assert!(check_filter("(objectClass=person)").is_err());
        assert!(check_filter("(&{match}{match})").is_err());
        assert!(check_filter("(&(objectClass=person){match}").is_err());
    }

    #[test]
    fn attribute_names_are_plain_descriptors() {
        assert!(is_attribute_name("msExchMailboxGuid"));
        assert!(is_attribute_name("x-custom-1"));
        assert!(!is_attribute_name("mail)(uid=*"));
        assert!(!is_attribute_name("1mail"));
        assert!(!is_attribute_name(""));
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let p = BindPassword::new("hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}

#[cfg(test)]
#[path = "ldap_tests.rs"]
mod loader_tests;
