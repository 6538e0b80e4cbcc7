//! The LDAP directory backend (Active Directory, OpenLDAP): recipient lookups by the
//! service account, Basic passwords verified by binding as the user on a separate
//! connection, NT hashes from a configured attribute for NTLM.
//!
//! Every value placed in a filter goes through [`escape::filter_value`]; every directory
//! call is bounded by `timeout_ms`; reachability changes are logged once per change.

pub mod escape;
pub mod mapping;
mod pool;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ldap3::{Scope, SearchOptions, SearchResult};

use self::mapping::RawEntry;
use self::pool::{describe_error, raw_entry, Pool};
/// Also used by `autodiscoverd scp` (crate::scp), which writes to the same directory.
pub use self::pool::{describe_result, tls_required, Connector};
use super::{
    Account, Directory, DirectoryError, DomainCount, Identity, LockoutPolicy, Login, LoginGuard,
    Lookup, NtCredential, Recipient,
};
use crate::config::{ConfigError, LdapAttributes, LdapConfig, LdapScope};
use crate::ops::metrics;

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
    /// `lookup_attrs` and the domain's bad-password attributes: what a login is resolved
    /// with, so that the count is read in the same search when the configured servers are
    /// the ones to ask for it.
    login_attrs: Vec<String>,
    nt_attrs: Vec<String>,
    /// Lockout policy per domain (its naming context, lower-case), read when first needed
    /// and again after [`POLICY_TTL`].
    policies: Mutex<HashMap<String, (Instant, Option<LockoutPolicy>)>>,
    /// The PDC emulator per domain (its naming context, lower-case): the link to it, or
    /// `None` when it is one of the configured servers or cannot be named; read again after
    /// [`POLICY_TTL`].
    pdcs: Mutex<HashMap<String, PdcEntry>>,
    config_file: PathBuf,
}

/// Connections to a domain's PDC emulator, which holds the domain's authoritative count of
/// bad passwords (other DCs forward failed logons to it; `badPwdCount` is not replicated).
struct PdcLink {
    host: String,
    connector: Connector,
    pool: Pool,
    /// The first failure is a warning, the later ones are not.
    warned: std::sync::atomic::AtomicBool,
}

/// When the PDC emulator was looked up, and the link to it.
type PdcEntry = (Instant, Option<Arc<PdcLink>>);

/// Now as a Windows FILETIME (100 ns intervals since 1601-01-01), as AD stores times.
fn filetime_now() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(unix.as_nanos() / 100).unwrap_or(i64::MAX) + 116_444_736_000_000_000
}

/// How long a domain's lockout policy is used before it is read again.
const POLICY_TTL: Duration = Duration::from_secs(15 * 60);

impl LdapDirectory {
    /// Prepares the backend; connects lazily on first use (a directory that is down at
    /// start-up is an outage, answered with Error 603, not a start failure).
    pub fn new(cfg: LdapConfig, config_file: &Path) -> Result<LdapDirectory, ConfigError> {
        let connector = Connector::new(&cfg, config_file)?;
        let mut lookup_attrs = cfg.attributes.all();
        lookup_attrs.extend(cfg.mailbox_kind.attributes());
        let mut login_attrs = lookup_attrs.clone();
        login_attrs.extend(mapping::BAD_PASSWORD_ATTRIBUTES.map(String::from));
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
            login_attrs,
            nt_attrs,
            policies: Mutex::new(HashMap::new()),
            pdcs: Mutex::new(HashMap::new()),
            config_file: config_file.to_path_buf(),
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

    /// Opens both pools' connections at once, before the first requests need them (a fresh
    /// process would otherwise open them one by one during its first logins). Whatever
    /// fails is left to the requests (and to the connector's probe).
    pub async fn warm(&self) {
        for pool in [&self.service, &self.binds] {
            let opening = (0..self.cfg.pool_size)
                .map(|_| tokio::time::timeout(self.cfg.timeout, pool.get(&self.connector)));
            for conn in futures_util::future::join_all(opening).await {
                if let Ok(Ok(conn)) = conn {
                    pool.put(conn);
                }
            }
        }
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

    /// The lockout policy of the domain `base_dn` is in (for `check-config`).
    pub async fn base_lockout_policy(&self) -> Option<LockoutPolicy> {
        self.lockout_policy(&self.cfg.base_dn).await
    }

    /// Runs one directory call within `timeout_ms` and records reachability.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        let ms = self.cfg.timeout.as_millis() as u64;
        if self.connector.all_down() {
            // The circuit is open: answer at once; the connector's probe closes it.
            metrics::ldap_fast_failure();
            return Err(DirectoryError::Unavailable(pool::unreachable_message()));
        }
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

    /// Waits for the answer to one operation on a connection to `slot`'s server, at most
    /// `connect_timeout_ms`: a server that leaves it unanswered longer is abandoned for the
    /// next configured one (and its pooled connections with it). `None`: no answer.
    async fn answered<T>(
        &self,
        connector: &Connector,
        slot: pool::Slot,
        operation: impl Future<Output = T>,
    ) -> Option<T> {
        let limit = connector.answer_timeout();
        match tokio::time::timeout(limit, operation).await {
            Ok(answer) => Some(answer),
            Err(_) => {
                connector.abandon(slot, &DirectoryError::Timeout(limit.as_millis() as u64));
                None
            }
        }
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
        let mut entries = self
            .search_at(&self.cfg.base_dn, scope, &filter, attrs)
            .await?;
        for entry in &mut entries {
            self.complete_ranges(entry).await?;
        }
        Ok(entries)
    }

    /// Reads the rest of every attribute the server sent only a range of
    /// (`proxyAddresses;range=0-1499`: Active Directory returns at most MaxValRange values
    /// per attribute and request), so that no address is silently missing; an attribute
    /// that cannot be completed fails the lookup loudly (Error 603 and a warning).
    async fn complete_ranges(&self, entry: &mut RawEntry) -> Result<(), DirectoryError> {
        // 1000 ranges of AD's default 1500 values: far beyond any real recipient.
        for _ in 0..1000 {
            let Some((attribute, next)) = entry.take_incomplete_range() else {
                return Ok(());
            };
            let wanted = [format!("{attribute};range={next}-*")];
            let part = self
                .search_at(&entry.dn, Scope::Base, "(objectClass=*)", &wanted)
                .await?;
            let range = part
                .into_iter()
                .next()
                .and_then(|p| p.range_of(&attribute, next));
            let Some((name, values)) = range else {
                let problem = format!(
                    "`{}` has more values of {attribute} than one answer holds and the \
                     directory did not return values {next} and on; refusing an incomplete entry",
                    entry.dn
                );
                tracing::warn!("{problem}");
                return Err(DirectoryError::Unavailable(problem));
            };
            entry.push(name, values);
        }
        let problem = format!("`{}`: too many ranged values; refused", entry.dn);
        tracing::warn!("{problem}");
        Err(DirectoryError::Unavailable(problem))
    }

    /// One search with the service account (see [`LdapDirectory::search`]).
    async fn search_at(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<RawEntry>, DirectoryError> {
        self.search_on(&self.service, &self.connector, base, scope, filter, attrs)
            .await
    }

    /// [`LdapDirectory::search_at`] on the connections of `pool`.
    async fn search_on(
        &self,
        pool: &Pool,
        connector: &Connector,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<RawEntry>, DirectoryError> {
        let ms = self.cfg.timeout.as_millis() as u64;
        let time_limit = i32::try_from(self.cfg.timeout.as_secs().max(1)).unwrap_or(i32::MAX);
        for attempt in 0..2 {
            let mut conn = pool.get(connector).await?;
            metrics::ldap_operation("search");
            let search = conn
                .ldap
                .with_search_options(SearchOptions::new().sizelimit(2).timelimit(time_limit))
                .search(base, scope, filter, attrs);
            let Some(result) = self.answered(connector, conn.slot, search).await else {
                // Not answering: the next attempt goes to the next server, if one answers.
                if attempt == 0 {
                    continue;
                }
                return Err(DirectoryError::Timeout(ms));
            };
            let retry = conn.reused && attempt == 0;
            match result {
                Ok(SearchResult(entries, res)) if res.rc == 0 || res.rc == 4 => {
                    pool.put(conn);
                    return Ok(entries
                        .into_iter()
                        .filter_map(|e| {
                            if e.is_ref() {
                                // A continuation reference (RFC 4511 §4.5.3): entries in
                                // another domain of the forest. Not chased (it would need
                                // credentials for another DC); the global catalog answers
                                // for the whole forest (docs/active-directory.md).
                                tracing::debug!("LDAP search continuation reference not followed; use the global catalog for a multi-domain forest");
                                return None;
                            }
                            if e.is_intermediate() {
                                return None;
                            }
                            let parsed = raw_entry(e.0);
                            if parsed.is_none() {
                                tracing::warn!("ignored a malformed LDAP search result entry");
                            }
                            parsed
                        })
                        .collect());
                }
                Ok(SearchResult(_, res)) if res.rc == 32 => {
                    pool.put(conn);
                    return Err(DirectoryError::Unavailable(format!(
                        "the search base `{}` does not exist ({}); check directory.ldap.base_dn",
                        base,
                        describe_result(&res)
                    )));
                }
                Ok(SearchResult(_, res)) if res.rc == 10 => {
                    pool.put(conn);
                    return Err(DirectoryError::Unavailable(format!(
                        "the directory server referred the search for `{base}` elsewhere ({}): \
                         it does not hold that naming context; point directory.ldap.urls at a \
                         domain controller of that domain, or at a global catalog \
                         (ldaps://gc.example:3269) for a multi-domain forest",
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
            metrics::ldap_operation("user_bind");
            let bind = conn.ldap.simple_bind(dn, password);
            // A bind the server did not answer may still have reached it (the lockout guard
            // keeps it counted); it is not sent again.
            let Some(result) = self.answered(&self.connector, conn.slot, bind).await else {
                return Err(DirectoryError::Timeout(ms));
            };
            match result {
                Ok(res) => {
                    if let Some(e) = tls_required(&res) {
                        return Err(e);
                    }
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

    /// The lockout policy of the domain `dn` lives in, from the domain object (its naming
    /// context); `None` when the entry is not in a domain or the values are not readable
    /// (then only `throttle.lockout_threshold` protects the account).
    async fn lockout_policy(&self, dn: &str) -> Option<LockoutPolicy> {
        let domain = mapping::domain_naming_context(dn)?;
        let key = domain.to_ascii_lowercase();
        if let Some((at, policy)) = self.policies.lock().ok()?.get(&key) {
            if at.elapsed() < POLICY_TTL {
                return *policy;
            }
        }
        let attrs = [
            "lockoutThreshold",
            "lockOutObservationWindow",
            "lockoutDuration",
        ]
        .map(String::from);
        let policy = match self
            .search_at(&domain, Scope::Base, "(objectClass=*)", &attrs)
            .await
        {
            Ok(entries) => entries.first().and_then(mapping::lockout_policy),
            Err(e) => {
                tracing::warn!(domain = %domain, error = %e, "could not read the domain's lockout policy");
                return None;
            }
        };
        if let Ok(mut map) = self.policies.lock() {
            let first = map.insert(key, (Instant::now(), policy)).is_none();
            if first && policy.is_none() {
                tracing::warn!(domain = %domain, "the domain object shows no lockoutThreshold to the service account; failed logins are limited by [throttle] only (set throttle.lockout_threshold)");
            }
        }
        policy
    }

    /// The link to the PDC emulator of the domain `dn` lives in, unless it is one of the
    /// configured servers (they are asked then) or the domain does not name it: the domain
    /// object's `fSMORoleOwner` is the `NTDS Settings` object of the role owner, whose parent,
    /// the server object, has its `dNSHostName` (MS-ADTS, FSMO roles).
    async fn pdc(&self, dn: &str) -> Option<Arc<PdcLink>> {
        let domain = mapping::domain_naming_context(dn)?;
        let key = domain.to_ascii_lowercase();
        if let Some((at, link)) = self.pdcs.lock().ok()?.get(&key) {
            if at.elapsed() < POLICY_TTL {
                return link.clone();
            }
        }
        let link = self.find_pdc(&domain).await;
        if let Ok(mut map) = self.pdcs.lock() {
            map.insert(key, (Instant::now(), link.clone()));
        }
        link
    }

    async fn find_pdc(&self, domain: &str) -> Option<Arc<PdcLink>> {
        let any = "(objectClass=*)";
        let owner = self
            .search_at(domain, Scope::Base, any, &["fSMORoleOwner".to_string()])
            .await
            .ok()?
            .first()?
            .text("fSMORoleOwner")?
            .to_string();
        let server = mapping::parent_dn(&owner)?.to_string();
        let host = self
            .search_at(&server, Scope::Base, any, &["dNSHostName".to_string()])
            .await
            .ok()?
            .first()?
            .text("dNSHostName")?
            .to_ascii_lowercase();
        let first = self.cfg.urls.first()?;
        let url = url::Url::parse(&first.url).ok()?;
        let configured = self.cfg.urls.iter().any(|u| {
            url::Url::parse(&u.url)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.eq_ignore_ascii_case(&host)))
                .unwrap_or(false)
        });
        if configured {
            return None;
        }
        // The PDC emulator is reached as the first configured server is: same scheme, port,
        // TLS settings and service account.
        let mut cfg = self.cfg.clone();
        cfg.urls = vec![crate::config::LdapUrl {
            url: format!("{}://{host}:{}", url.scheme(), url.port_or_known_default()?),
            ldaps: first.ldaps,
            loopback: false,
        }];
        let connector = Connector::side_link(&cfg, &self.config_file).ok()?;
        tracing::info!(%domain, pdc = %host, "bad-password counts are read at the domain's PDC emulator");
        Some(Arc::new(PdcLink {
            host,
            connector,
            pool: Pool::new(
                2,
                Some((self.cfg.bind_dn.clone(), self.cfg.bind_password.clone())),
            ),
            warned: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// The domain's own count of the account `entry`'s recent bad passwords, read at the PDC
    /// emulator just before a password check that reaches the domain; when the PDC emulator
    /// is one of the configured servers, or cannot be reached, the values `entry` was just
    /// read with from them. `None` without a lockout policy, or when it cannot be read: the
    /// ledger alone guards then.
    async fn bad_passwords(
        &self,
        entry: &RawEntry,
        policy: Option<LockoutPolicy>,
    ) -> Option<DomainCount> {
        let dn = entry.dn.as_str();
        let policy = policy.filter(|p| p.threshold > 0)?;
        let attrs = mapping::BAD_PASSWORD_ATTRIBUTES.map(String::from);
        let any = "(objectClass=*)";
        let mut entries = None;
        // While the PDC emulator does not answer, its connector fails at once (and probes
        // it in the background): the values the configured servers just gave are used.
        if let Some(link) = self.pdc(dn).await {
            match self
                .search_on(&link.pool, &link.connector, dn, Scope::Base, any, &attrs)
                .await
            {
                Ok(found) => entries = Some(found),
                Err(e) => {
                    if link.warned.swap(true, Ordering::Relaxed) {
                        tracing::debug!(pdc = %link.host, error = %e, "the PDC emulator still cannot be asked");
                    } else {
                        tracing::warn!(pdc = %link.host, error = %e, "the PDC emulator cannot be asked for bad-password counts; using the configured servers' counts until it answers");
                    }
                }
            }
        }
        let count = match &entries {
            Some(found) => mapping::bad_passwords(found.first()?, &policy, filetime_now()),
            None => mapping::bad_passwords(entry, &policy, filetime_now()),
        };
        if count.is_none() {
            tracing::debug!(account = %dn, "badPwdCount is not readable by the service account");
        }
        count
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
        if let Login::UserPrincipalName(upn) = login {
            // An explicit UPN wins over another account's implicit one.
            let names = &self.cfg.attributes;
            let best = entries
                .iter()
                .map(|e| mapping::upn_match(e, names, upn))
                .max()
                .unwrap_or(mapping::UpnMatch::No);
            entries.retain(|e| {
                best != mapping::UpnMatch::No && mapping::upn_match(e, names, upn) == best
            });
        }
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

/// `(userPrincipalName=U)` or `(sAMAccountName=S)`, escaped. A `name@domain` login also asks
/// for `(sAMAccountName=name)`: AD accepts `sAMAccountName@<DNS domain>` as an implicit UPN
/// (the caller keeps only entries of that domain, [`mapping::upn_match`]).
pub fn login_clause(a: &LdapAttributes, login: &Login) -> String {
    match login {
        Login::UserPrincipalName(upn) => match upn.rsplit_once('@') {
            Some((user, domain)) if !user.is_empty() && !domain.is_empty() => format!(
                "(|({}={})({}={}))",
                a.user_principal_name,
                escape::filter_value(upn),
                a.sam_account_name,
                escape::filter_value(user)
            ),
            _ => format!("({}={})", a.user_principal_name, escape::filter_value(upn)),
        },
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

    /// The guard sees the account's DN and its domain's lockout policy. Should the call
    /// time out between admission and outcome, the attempt stays counted (the bind may
    /// have reached the domain controller).
    async fn verify_password_guarded(
        &self,
        login: &Login,
        password: &str,
        guard: &dyn LoginGuard,
    ) -> Result<Option<Identity>, DirectoryError> {
        // An empty simple bind is an anonymous bind (RFC 4513 §5.1.2): never try it.
        if password.is_empty() {
            return Ok(None);
        }
        self.bounded(async {
            let Some(entry) = self.resolve_login(login, &self.login_attrs).await? else {
                // Unknown or disabled: spend the same bind round trip on a DN that cannot
                // exist, so that response timing does not tell which logins are real, and
                // let the guard count it as it counts a real account (keyed by the name
                // without its domain, as every spelling of a real account is one), so that
                // when refusals start does not tell either.
                let dummy = match self.cfg.base_dn.as_str() {
                    "" => "cn=autodiscoverd-no-such-user".to_string(),
                    base => format!("cn=autodiscoverd-no-such-user,{base}"),
                };
                let account = Account {
                    key: format!("unresolved:{}", login.user().to_lowercase()),
                    lockout: self.lockout_policy(&dummy).await,
                    bad_passwords: None,
                };
                if !guard.admit(&account).await {
                    return Ok(None);
                }
                let bound = self.user_bind(&dummy, password).await;
                guard
                    .settle(&account, bound.as_ref().ok().map(|_| false))
                    .await;
                bound?;
                return Ok(None);
            };
            let lockout = self.lockout_policy(&entry.dn).await;
            let account = Account {
                key: entry.dn.to_lowercase(),
                lockout,
                bad_passwords: self.bad_passwords(&entry, lockout).await,
            };
            if !guard.admit(&account).await {
                return Ok(None);
            }
            let bound = self.user_bind(&entry.dn, password).await;
            guard.settle(&account, bound.as_ref().ok().copied()).await;
            if !bound? {
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
            .unwrap_or_else(|| login.user().to_string());
        Ok(Some(NtCredential {
            nt_hash,
            account,
            identity: mapping::identity(&entry, names, login),
        }))
    }

    fn supports_nt_hashes(&self) -> bool {
        self.cfg.attributes.nt_password.is_some()
    }

    /// Keyed as [`Directory::verify_password_guarded`] keys it, so that Basic and NTLM
    /// failures of one account share one count.
    async fn resolve_account(
        &self,
        login: &Login,
    ) -> Result<(Account, Option<Identity>), DirectoryError> {
        self.bounded(async {
            match self.resolve_login(login, &self.login_attrs).await? {
                Some(entry) => {
                    let lockout = self.lockout_policy(&entry.dn).await;
                    let account = Account {
                        key: entry.dn.to_lowercase(),
                        lockout,
                        bad_passwords: self.bad_passwords(&entry, lockout).await,
                    };
                    let identity = mapping::identity(&entry, &self.cfg.attributes, login);
                    Ok((account, Some(identity)))
                }
                None => {
                    let account = Account {
                        key: format!("unresolved:{}", login.user().to_lowercase()),
                        lockout: self.lockout_policy(&self.cfg.base_dn).await,
                        bad_passwords: None,
                    };
                    Ok((account, None))
                }
            }
        })
        .await
    }

    async fn account_identity(&self, login: &Login) -> Result<Option<Identity>, DirectoryError> {
        let entry = self
            .bounded(self.resolve_login(login, &self.lookup_attrs))
            .await?;
        Ok(entry.map(|e| mapping::identity(&e, &self.cfg.attributes, login)))
    }

    /// `(objectSid=\01\05…)`: the binary SID, every byte escaped.
    async fn account_by_sid(&self, sid: &super::Sid) -> Result<Option<Identity>, DirectoryError> {
        let names = &self.cfg.attributes;
        let clause = sid_clause(names, sid);
        let mut entries = self
            .bounded(self.search(&clause, &self.lookup_attrs))
            .await?;
        if entries.len() > 1 {
            tracing::warn!(sid = %sid, "a SID matches more than one directory entry; refused");
            return Ok(None);
        }
        let Some(entry) = entries.pop() else {
            return Ok(None);
        };
        if mapping::is_disabled(&entry, names) {
            return Ok(None);
        }
        // The entry's own UPN or address names it; the SID is the fallback of last resort.
        let login = Login::SamAccountName(sid.to_string());
        Ok(Some(mapping::identity(&entry, names, &login)))
    }
}

/// `(objectSid=\XX…)` for a SID in its binary form (MS-DTYP §2.4.2.2).
pub fn sid_clause(a: &LdapAttributes, sid: &super::Sid) -> String {
    format!(
        "({}={})",
        a.object_sid,
        escape::filter_bytes(&sid.to_bytes())
    )
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
    fn sid_clauses_carry_the_binary_sid_escaped() {
        let sid = super::super::Sid::parse("S-1-5-21-1-2-3-1104").unwrap();
        assert_eq!(
            sid_clause(&LdapAttributes::default(), &sid),
            "(objectSid=\\01\\05\\00\\00\\00\\00\\00\\05\\15\\00\\00\\00\\01\\00\\00\\00\\02\\00\\00\\00\\03\\00\\00\\00\\50\\04\\00\\00)"
        );
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
            "(|(uid=a@b.c)(sAMAccountName=a))"
        );
        assert_eq!(
            login_clause(&a, &Login::UserPrincipalName("a*@b".into())),
            "(|(userPrincipalName=a\\2a@b)(sAMAccountName=a\\2a))"
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
