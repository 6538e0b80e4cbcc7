//! The LDAP directory backend (Active Directory, OpenLDAP): recipient lookups by the
//! service account, Basic passwords verified by binding as the user on a separate
//! connection, NT hashes from a configured attribute for NTLM.
//!
//! Every value placed in a filter goes through [`escape::filter_value`]; every directory
//! call is bounded by `timeout_ms`; reachability changes are logged once per change.

pub mod escape;
pub mod mapping;
mod pool;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

use ldap3::{Scope, SearchOptions, SearchResult};

use self::mapping::RawEntry;
use self::pool::{describe_error, describe_result, raw_entry, Connector, Pool};
use super::{Directory, DirectoryError, Identity, Login, Lookup, NtCredential, Recipient};
use crate::config::{ConfigError, LdapAttributes, LdapConfig, LdapScope};

/// Longest address or login sent to the directory (RFC 5321 paths are at most 256).
const MAX_VALUE_LEN: usize = 512;

/// The LDAP backend.
pub struct LdapDirectory {
    cfg: LdapConfig,
    connector: Connector,
    /// Connections bound as the service account: searches only.
    service: Pool,
    /// Connections used only to bind as users (their identity changes with each check).
    binds: Pool,
    health: Health,
    lookup_attrs: Vec<String>,
    nt_attrs: Vec<String>,
}

impl LdapDirectory {
    /// Prepares the backend; connects lazily on first use (a directory that is down at
    /// start-up is an outage, answered with Error 603, not a start failure).
    pub fn new(cfg: LdapConfig, config_file: &Path) -> Result<LdapDirectory, ConfigError> {
        let connector = Connector::new(&cfg, config_file)?;
        let mut lookup_attrs = cfg.attributes.all();
        lookup_attrs.extend(cfg.mailbox_kind.attributes());
        let mut nt_attrs = lookup_attrs.clone();
        if let Some(nt) = &cfg.attributes.nt_password {
            nt_attrs.push(nt.clone());
        }
        Ok(LdapDirectory {
            service: Pool::new(
                cfg.pool_size,
                Some((cfg.bind_dn.clone(), cfg.bind_password.clone())),
            ),
            binds: Pool::new(cfg.pool_size, None),
            connector,
            health: Health::default(),
            lookup_attrs,
            nt_attrs,
            cfg,
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &LdapConfig {
        &self.cfg
    }

    /// `directory.ldap.netbios_domain`, upper-case (`CONTOSO`), for the NTLM challenge.
    pub fn netbios_domain(&self) -> Option<String> {
        self.cfg
            .netbios_domain
            .as_deref()
            .map(str::to_ascii_uppercase)
    }

    /// Connects and binds as the service account once (for `check-config`).
    pub async fn probe(&self) -> Result<(), DirectoryError> {
        self.bounded(async {
            let conn = self.service.get(&self.connector).await?;
            self.service.put(conn);
            Ok(())
        })
        .await
    }

    /// Runs one directory call within `timeout_ms` and records reachability.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        let ms = self.cfg.timeout.as_millis() as u64;
        let result = match tokio::time::timeout(self.cfg.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(DirectoryError::Timeout(ms)),
        };
        match (&result, self.health.observe(result.is_ok())) {
            (Err(e), Some(Transition::Down)) => tracing::warn!(
                error = %e,
                "LDAP directory unavailable; answering Error 603 until it is reachable again"
            ),
            (_, Some(Transition::Recovered)) => {
                tracing::info!("LDAP directory reachable again")
            }
            (_, Some(Transition::FirstContact)) => tracing::info!("LDAP directory reachable"),
            _ => {}
        }
        result
    }

    /// Searches with the service account; at most two entries are asked for (one is the
    /// answer, two is ambiguity). A pooled connection that fails is replaced once.
    async fn search(
        &self,
        clause: &str,
        attrs: &[String],
    ) -> Result<Vec<RawEntry>, DirectoryError> {
        let filter = self.cfg.filter_for(clause);
        let scope = match self.cfg.scope {
            LdapScope::Base => Scope::Base,
            LdapScope::OneLevel => Scope::OneLevel,
            LdapScope::Subtree => Scope::Subtree,
        };
        let ms = self.cfg.timeout.as_millis() as u64;
        let time_limit = i32::try_from(self.cfg.timeout.as_secs().max(1)).unwrap_or(i32::MAX);
        for attempt in 0..2 {
            let mut conn = self.service.get(&self.connector).await?;
            let result = conn
                .ldap
                .with_search_options(SearchOptions::new().sizelimit(2).timelimit(time_limit))
                .search(&self.cfg.base_dn, scope, &filter, attrs)
                .await;
            let retry = conn.reused && attempt == 0;
            match result {
                Ok(SearchResult(entries, res)) if res.rc == 0 || res.rc == 4 => {
                    self.service.put(conn);
                    return Ok(entries
                        .into_iter()
                        .filter_map(|e| {
                            let parsed = raw_entry(e.0);
                            if parsed.is_none() {
                                tracing::warn!("ignored a malformed LDAP search result entry");
                            }
                            parsed
                        })
                        .collect());
                }
                Ok(SearchResult(_, res)) if res.rc == 32 => {
                    self.service.put(conn);
                    return Err(DirectoryError::Unavailable(format!(
                        "the search base `{}` does not exist ({}); check directory.ldap.base_dn",
                        self.cfg.base_dn,
                        describe_result(&res)
                    )));
                }
                Ok(SearchResult(_, res)) => {
                    if retry {
                        continue;
                    }
                    return Err(DirectoryError::Unavailable(format!(
                        "search failed: {}",
                        describe_result(&res)
                    )));
                }
                Err(e) => {
                    if retry {
                        continue;
                    }
                    return Err(describe_error("search", e, ms));
                }
            }
        }
        Err(DirectoryError::Unavailable("search failed twice".into()))
    }

    /// Binds as `dn` with `password` on a user-bind connection: `Ok(true)` only for a
    /// successful bind. The caller has refused empty passwords already.
    async fn user_bind(&self, dn: &str, password: &str) -> Result<bool, DirectoryError> {
        let ms = self.cfg.timeout.as_millis() as u64;
        for attempt in 0..2 {
            let mut conn = self.binds.get(&self.connector).await?;
            let retry = conn.reused && attempt == 0;
            match conn.ldap.simple_bind(dn, password).await {
                Ok(res) => {
                    let ok = match res.rc {
                        0 => true,
                        // Wrong password, locked, expired, disabled (AD), unknown DN.
                        19 | 32 | 34 | 48 | 49 | 50 | 53 => false,
                        _ if retry => continue,
                        _ => {
                            return Err(DirectoryError::Unavailable(format!(
                                "user bind failed: {}",
                                describe_result(&res)
                            )))
                        }
                    };
                    self.binds.put(conn);
                    return Ok(ok);
                }
                Err(_) if retry => continue,
                Err(e) => return Err(describe_error("bind", e, ms)),
            }
        }
        Err(DirectoryError::Unavailable("bind failed twice".into()))
    }

    /// The one enabled entry a login names (domain checked for `DOMAIN\user`).
    async fn resolve_login(
        &self,
        login: &Login,
        attrs: &[String],
    ) -> Result<Option<RawEntry>, DirectoryError> {
        if !plausible(&login.to_string()) {
            return Ok(None);
        }
        let mut entries = self
            .search(&login_clause(&self.cfg.attributes, login), attrs)
            .await?;
        if entries.len() != 1 {
            if entries.len() > 1 {
                tracing::warn!(login = %login, "login matches more than one directory entry; refused");
            }
            return Ok(None);
        }
        let Some(entry) = entries.pop() else {
            return Ok(None);
        };
        let names = &self.cfg.attributes;
        if mapping::is_disabled(&entry, names) {
            return Ok(None);
        }
        if let Login::DownLevel { domain, .. } = login {
            if !mapping::down_level_domain_matches(
                &entry,
                names,
                domain,
                self.cfg.netbios_domain.as_deref(),
            ) {
                return Ok(None);
            }
        }
        Ok(Some(entry))
    }
}

/// Values no directory entry can hold are not sent at all: empty, overlong, or with
/// control characters (slapd's string matching stops at an escaped NUL, so
/// `alice@contoso.com\0` would otherwise find alice).
fn plausible(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_VALUE_LEN && !value.chars().any(char::is_control)
}

/// `(|(mail=A)(proxyAddresses=smtp:A)(proxyAddresses=SMTP:A)(userPrincipalName=A))`, A escaped.
/// Both prefix cases are asked for so that servers with case-exact matching still find
/// primary and secondary addresses.
pub fn address_clause(a: &LdapAttributes, address: &str) -> String {
    let v = escape::filter_value(address);
    format!(
        "(|({mail}={v})({proxy}=smtp:{v})({proxy}=SMTP:{v})({upn}={v}))",
        mail = a.mail,
        proxy = a.proxy_addresses,
        upn = a.user_principal_name,
    )
}

/// `(|(legacyExchangeDN=D)(proxyAddresses=x500:D)(proxyAddresses=X500:D))`, D escaped.
pub fn legacy_dn_clause(a: &LdapAttributes, dn: &str) -> String {
    let v = escape::filter_value(dn);
    format!(
        "(|({ldn}={v})({proxy}=x500:{v})({proxy}=X500:{v}))",
        ldn = a.legacy_exchange_dn,
        proxy = a.proxy_addresses,
    )
}

/// `(userPrincipalName=U)` or `(sAMAccountName=S)`, escaped.
pub fn login_clause(a: &LdapAttributes, login: &Login) -> String {
    match login {
        Login::UserPrincipalName(upn) => {
            format!("({}={})", a.user_principal_name, escape::filter_value(upn))
        }
        Login::SamAccountName(user) | Login::DownLevel { user, .. } => {
            format!("({}={})", a.sam_account_name, escape::filter_value(user))
        }
    }
}

impl Directory for LdapDirectory {
    async fn find(&self, lookup: &Lookup) -> Result<Option<Recipient>, DirectoryError> {
        let (clause, address) = match lookup {
            Lookup::Address(a) => (
                address_clause(&self.cfg.attributes, a.trim()),
                Some(a.trim()),
            ),
            Lookup::LegacyDn(dn) => (legacy_dn_clause(&self.cfg.attributes, dn.trim()), None),
        };
        let value = match lookup {
            Lookup::Address(v) | Lookup::LegacyDn(v) => v.trim(),
        };
        if !plausible(value) {
            return Ok(None);
        }
        let names = &self.cfg.attributes;
        let entries = self
            .bounded(self.search(&clause, &self.lookup_attrs))
            .await?;
        let mut recipients: Vec<Recipient> = entries
            .iter()
            .filter_map(|e| {
                let mut r = mapping::recipient(e, names)?;
                r.mailbox_kind = mapping::mailbox_kind(e, &self.cfg.mailbox_kind);
                Some(r)
            })
            .collect();
        if recipients.len() > 1 {
            // Prefer the entry that has the address itself over one whose UPN matched.
            if let Some(a) = address {
                recipients.retain(|r| r.has_address(a));
            }
            if recipients.len() != 1 {
                tracing::warn!(lookup = ?lookup, "lookup matches more than one directory entry; answering as not found");
                return Ok(None);
            }
        }
        Ok(recipients.pop())
    }

    async fn verify_password(
        &self,
        login: &Login,
        password: &str,
    ) -> Result<Option<Identity>, DirectoryError> {
        // An empty simple bind is an anonymous bind (RFC 4513 §5.1.2): never try it.
        if password.is_empty() {
            return Ok(None);
        }
        self.bounded(async {
            let Some(entry) = self.resolve_login(login, &self.lookup_attrs).await? else {
                // Unknown or disabled: spend the same bind round trip on a DN that cannot
                // exist, so that response timing does not tell which logins are real.
                let dummy = format!("cn=autodiscoverd-no-such-user,{}", self.cfg.base_dn);
                self.user_bind(&dummy, password).await?;
                return Ok(None);
            };
            if !self.user_bind(&entry.dn, password).await? {
                return Ok(None);
            }
            Ok(Some(mapping::identity(&entry, &self.cfg.attributes, login)))
        })
        .await
    }

    async fn nt_credential(&self, login: &Login) -> Result<Option<NtCredential>, DirectoryError> {
        let Some(attribute) = &self.cfg.attributes.nt_password else {
            return Ok(None);
        };
        let Some(entry) = self
            .bounded(self.resolve_login(login, &self.nt_attrs))
            .await?
        else {
            return Ok(None);
        };
        let Some(nt_hash) = mapping::nt_hash(&entry, attribute) else {
            return Ok(None);
        };
        let names = &self.cfg.attributes;
        let account = entry
            .text(&names.sam_account_name)
            .map(str::to_string)
            .unwrap_or_else(|| match login {
                Login::UserPrincipalName(upn) => upn
                    .rsplit_once('@')
                    .map(|(u, _)| u.to_string())
                    .unwrap_or_else(|| upn.clone()),
                Login::DownLevel { user, .. } | Login::SamAccountName(user) => user.clone(),
            });
        Ok(Some(NtCredential {
            nt_hash,
            account,
            identity: mapping::identity(&entry, names, login),
        }))
    }

    fn supports_nt_hashes(&self) -> bool {
        self.cfg.attributes.nt_password.is_some()
    }
}

/// A change in the directory's reachability worth one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The first successful call after start.
    FirstContact,
    /// It was reachable (or never tried) and a call failed.
    Down,
    /// It was down and a call succeeded.
    Recovered,
}

/// Reachability as seen by the last call: unknown, up or down.
#[derive(Debug, Default)]
pub struct Health(AtomicU8);

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

impl Health {
    /// Records the outcome of a call; `Some` when the state changed.
    pub fn observe(&self, reachable: bool) -> Option<Transition> {
        let new = if reachable { UP } else { DOWN };
        match (self.0.swap(new, Ordering::AcqRel), new) {
            (UNKNOWN, UP) => Some(Transition::FirstContact),
            (UNKNOWN | UP, DOWN) => Some(Transition::Down),
            (DOWN, UP) => Some(Transition::Recovered),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachability_is_logged_once_per_change() {
        let h = Health::default();
        assert_eq!(h.observe(true), Some(Transition::FirstContact));
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(false), Some(Transition::Down));
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(true), Some(Transition::Recovered));
        assert_eq!(h.observe(true), None);
        let never_up = Health::default();
        assert_eq!(never_up.observe(false), Some(Transition::Down));
    }

    #[test]
    fn clauses_escape_the_value_and_use_the_configured_names() {
        let a = LdapAttributes::default();
        assert_eq!(
            address_clause(&a, "x*)(mail=*"),
            "(|(mail=x\\2a\\29\\28mail=\\2a)(proxyAddresses=smtp:x\\2a\\29\\28mail=\\2a)(proxyAddresses=SMTP:x\\2a\\29\\28mail=\\2a)(userPrincipalName=x\\2a\\29\\28mail=\\2a))"
        );
        assert_eq!(
            legacy_dn_clause(&a, "/o=Contoso/cn=a"),
            "(|(legacyExchangeDN=/o=Contoso/cn=a)(proxyAddresses=x500:/o=Contoso/cn=a)(proxyAddresses=X500:/o=Contoso/cn=a))"
        );
        let down_level = Login::DownLevel {
            domain: "CONTOSO".into(),
            user: "al\\*".into(),
        };
        assert_eq!(login_clause(&a, &down_level), "(sAMAccountName=al\\5c\\2a)");
        let custom = LdapAttributes {
            user_principal_name: "uid".into(),
            ..LdapAttributes::default()
        };
        assert_eq!(
            login_clause(&custom, &Login::UserPrincipalName("a@b.c".into())),
            "(uid=a@b.c)"
        );
        // Every generated filter parses as exactly one filter.
        for clause in [
            address_clause(&a, "(\\0*)"),
            login_clause(&a, &Login::SamAccountName("\0".into())),
        ] {
            assert!(ldap3::parse_filter(&clause).is_ok(), "{clause}");
        }
    }
}
