//! The embedded directory: a TOML file of users loaded into memory. The zero-setup default
//! and the directory of labs and unit tests.
//!
//! Passwords are stored as argon2 PHC strings (`password_hash`). Plaintext `password` is
//! accepted only when the file says `lab = true`. NTLM needs the NT hash (`nt_hash`, 32 hex
//! digits); in a lab file it is derived from the plaintext password when absent.

mod verify_cache;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{
    Directory, DirectoryError, Identity, Login, Lookup, MailboxKind, NtCredential, Recipient,
    RecipientType, Sid,
};
use crate::auth::ntlm::crypto::{self, NtHash};
use crate::config::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    lab: bool,
    netbios_domain: Option<String>,
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TypeValue {
    Name(String),
    Number(u64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    upn: Option<String>,
    sam_account_name: Option<String>,
    display_name: String,
    primary_smtp: String,
    #[serde(default)]
    proxy_addresses: Vec<String>,
    legacy_dn: Option<String>,
    mailbox_guid: Option<String>,
    recipient_type: TypeValue,
    #[serde(default)]
    remote_recipient_type: u64,
    target_address: Option<String>,
    password_hash: Option<String>,
    password: Option<String>,
    nt_hash: Option<String>,
    #[serde(default = "default_true")]
    enabled: bool,
    /// `exchange` or `internet`: overrides the accepted domain's default kind.
    mailbox_kind: Option<String>,
    /// The on-premises security identifier (`S-1-5-21-…`) Entra ID tokens carry as
    /// `onprem_sid`.
    sid: Option<String>,
}

fn default_true() -> bool {
    true
}

enum Secret {
    /// An argon2 PHC string.
    Hash(String),
    /// A lab password, compared in constant time.
    Plain(String),
    /// Only an NT hash (Basic is checked against it).
    Nt(NtHash),
    /// No password: the account cannot log in.
    None,
}

struct User {
    recipient: Recipient,
    /// `X500:` proxy addresses: earlier legacy DNs that still resolve to this user.
    x500: Vec<String>,
    upn: Option<String>,
    sam: Option<String>,
    secret: Secret,
    /// NT hash for NTLM (and Basic when there is no other secret).
    nt_hash: Option<NtHash>,
    sid: Option<Sid>,
}

/// The in-memory index of a directory file.
pub struct EmbeddedDirectory {
    users: Vec<User>,
    by_address: HashMap<String, usize>,
    by_legacy_dn: HashMap<String, usize>,
    by_upn: HashMap<String, usize>,
    by_sam: HashMap<String, usize>,
    by_sid: HashMap<Sid, usize>,
    netbios_domain: Option<String>,
    /// Verified against when the login is unknown, so that unknown users cost the same
    /// time as wrong passwords.
    dummy_hash: Arc<String>,
    /// Successful verifications (HMAC-keyed), so argon2 runs once per login and password.
    verified: verify_cache::VerifyCache,
    /// Password hashes computed at once. Each argon2 verification takes ~19 MiB for its
    /// duration; unbounded, a burst of parallel wrong passwords (or a cold cache at 9 am)
    /// would take memory without limit. Excess attempts wait their turn.
    hashing: tokio::sync::Semaphore,
}

/// Concurrent argon2 verifications: one per CPU, at least two.
fn hashing_slots() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
}

impl EmbeddedDirectory {
    /// Reads and validates a directory file.
    pub fn load(path: &Path) -> Result<EmbeddedDirectory, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        EmbeddedDirectory::from_toml(path, &text)
    }

    /// Validates directory text as if read from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<EmbeddedDirectory, ConfigError> {
        let file: DirectoryFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut dir = EmbeddedDirectory {
            users: Vec::new(),
            by_address: HashMap::new(),
            by_legacy_dn: HashMap::new(),
            by_upn: HashMap::new(),
            by_sam: HashMap::new(),
            by_sid: HashMap::new(),
            netbios_domain: file.netbios_domain.map(|d| d.to_ascii_lowercase()),
            dummy_hash: Arc::new(dummy_hash()),
            verified: verify_cache::VerifyCache::new(verify_cache::TTL, verify_cache::MAX_ENTRIES),
            hashing: tokio::sync::Semaphore::new(hashing_slots()),
        };
        for (i, entry) in file.user.into_iter().enumerate() {
            let user = build_user(path, i, entry, file.lab)?;
            dir.index(path, i, user)?;
        }
        Ok(dir)
    }

    fn index(&mut self, path: &Path, i: usize, user: User) -> Result<(), ConfigError> {
        let slot = self.users.len();
        let dup = |key: &str, what: &str| {
            ConfigError::invalid(
                path,
                format!("user[{i}].{key}"),
                format!("`{what}` is already used by another user"),
                "every address, UPN, sAMAccountName, SID and legacy DN must be unique",
            )
        };
        for address in &user.recipient.addresses {
            if self.by_address.insert(address.clone(), slot).is_some() {
                return Err(dup("proxy_addresses", address));
            }
        }
        for dn in user.recipient.legacy_dn.iter().chain(user.x500.iter()) {
            if self
                .by_legacy_dn
                .insert(dn.to_ascii_lowercase(), slot)
                .is_some()
            {
                return Err(dup("legacy_dn", dn));
            }
        }
        if let Some(upn) = &user.upn {
            if self.by_upn.insert(upn.to_ascii_lowercase(), slot).is_some() {
                return Err(dup("upn", upn));
            }
        }
        if let Some(sam) = &user.sam {
            if self.by_sam.insert(sam.to_ascii_lowercase(), slot).is_some() {
                return Err(dup("sam_account_name", sam));
            }
        }
        if let Some(sid) = &user.sid {
            if self.by_sid.insert(sid.clone(), slot).is_some() {
                return Err(dup("sid", &sid.to_string()));
            }
        }
        self.users.push(user);
        Ok(())
    }

    /// The NetBIOS domain of `DOMAIN\\user` logins, upper case.
    pub fn netbios_domain(&self) -> Option<String> {
        self.netbios_domain.as_deref().map(str::to_ascii_uppercase)
    }

    /// Number of users in the file.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The password check itself (the trait adds the guard).
    /// A verification made recently with these exact credentials, while the user still
    /// exists and is enabled. Looked up for unknown users too (always a miss), so both
    /// paths do the same work.
    pub fn cached(&self, login: &Login, password: &str) -> Option<Identity> {
        let hit = self.verified.get(login, password, Instant::now())?;
        let user = self.user_for_login(login)?;
        user.recipient.enabled.then_some(hit)
    }

    async fn check_password(
        &self,
        login: &Login,
        password: &str,
    ) -> Result<Option<Identity>, DirectoryError> {
        let user = self.user_for_login(login);
        if password.is_empty() {
            return Ok(None);
        }
        if let Some(hit) = self.cached(login, password) {
            return Ok(Some(hit));
        }
        // Copied only on a miss (a hit needs neither).
        let (secret, identity) = match user {
            Some(u) if u.recipient.enabled => (
                match (&u.secret, &u.nt_hash) {
                    (Secret::Hash(h), _) => Secret::Hash(h.clone()),
                    (Secret::Plain(p), _) => Secret::Plain(p.clone()),
                    (Secret::Nt(h), _) | (Secret::None, Some(h)) => Secret::Nt(*h),
                    (Secret::None, None) => Secret::None,
                },
                Some(identity_of(u)),
            ),
            // Unknown or disabled: spend the same work on the dummy hash.
            _ => (Secret::None, None),
        };
        let dummy = Arc::clone(&self.dummy_hash);
        let owned = password.to_string();
        let _slot = self.hashing.acquire().await.map_err(|e| {
            DirectoryError::Unavailable(format!("password check queue closed: {e}"))
        })?;
        let ok = tokio::task::spawn_blocking(move || verify_secret(&secret, &dummy, &owned))
            .await
            .map_err(|e| DirectoryError::Unavailable(format!("password check task failed: {e}")))?;
        let verified = if ok { identity } else { None };
        if let Some(id) = &verified {
            self.verified
                .insert(login, password, id.clone(), Instant::now());
        }
        Ok(verified)
    }

    fn user_for_login(&self, login: &Login) -> Option<&User> {
        let slot = match login {
            Login::UserPrincipalName(upn) => self.by_upn.get(&upn.to_ascii_lowercase()),
            Login::SamAccountName(sam) => self.by_sam.get(&sam.to_ascii_lowercase()),
            Login::DownLevel { domain, user } => {
                let domain = domain.to_ascii_lowercase();
                let slot = self.by_sam.get(&user.to_ascii_lowercase())?;
                let u = self.users.get(*slot)?;
                // NetBIOS name, or the DNS domain of the user's UPN (`contoso.com\alice`).
                let upn_domain = u
                    .upn
                    .as_deref()
                    .and_then(|upn| upn.rsplit_once('@'))
                    .map(|(_, d)| d.to_ascii_lowercase());
                let matches = self.netbios_domain.as_deref() == Some(domain.as_str())
                    || upn_domain.as_deref() == Some(domain.as_str());
                matches.then_some(slot)
            }
        }?;
        self.users.get(*slot)
    }
}

fn dummy_hash() -> String {
    // Random salt per process: the dummy must cost what a real hash costs, nothing more.
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(b"no such user; this hash only equalises timing", &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

fn build_user(path: &Path, i: usize, e: UserEntry, lab: bool) -> Result<User, ConfigError> {
    let key = |k: &str| format!("user[{i}].{k}");
    let bad =
        |k: &str, problem: String, fix: &str| ConfigError::invalid(path, key(k), problem, fix);

    let primary = e.primary_smtp.trim().to_string();
    if !is_smtp_address(&primary) {
        return Err(bad(
            "primary_smtp",
            format!("`{primary}` is not an SMTP address"),
            "write it as local@domain",
        ));
    }
    let mut addresses = vec![primary.to_ascii_lowercase()];
    let mut legacy_aliases = Vec::new();
    for proxy in &e.proxy_addresses {
        let proxy = proxy.trim();
        let (prefix, value) = match proxy.split_once(':') {
            Some((p, v)) if !p.contains('@') => (p, v),
            _ => ("smtp", proxy),
        };
        if prefix.eq_ignore_ascii_case("smtp") {
            if !is_smtp_address(value) {
                return Err(bad(
                    "proxy_addresses",
                    format!("`{proxy}` is not an SMTP address"),
                    "write smtp:local@domain (or X500:/o=... for legacy DNs)",
                ));
            }
            let v = value.to_ascii_lowercase();
            if !addresses.contains(&v) {
                addresses.push(v);
            }
        } else if prefix.eq_ignore_ascii_case("x500") {
            legacy_aliases.push(value.to_string());
        }
    }
    let recipient_type = match &e.recipient_type {
        TypeValue::Number(n) => RecipientType::from_value(*n),
        TypeValue::Name(n) => RecipientType::parse(n).ok_or_else(|| {
            bad(
                "recipient_type",
                format!("unknown recipient type `{n}`"),
                "use a msExchRecipientTypeDetails name such as UserMailbox or RemoteUserMailbox, or its number",
            )
        })?,
    };
    let mailbox_guid = match &e.mailbox_guid {
        Some(g) => Some(Uuid::parse_str(g.trim()).map_err(|_| {
            bad(
                "mailbox_guid",
                format!("`{g}` is not a GUID"),
                "use the mailbox's msExchMailboxGuid as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
            )
        })?),
        None => None,
    };
    let target_address = match &e.target_address {
        Some(t) => {
            let t = t.trim();
            let stripped = match t.split_once(':') {
                Some((p, v)) if p.eq_ignore_ascii_case("smtp") => v,
                _ => t,
            };
            if !is_smtp_address(stripped) {
                return Err(bad(
                    "target_address",
                    format!("`{t}` is not an SMTP address"),
                    "write it as SMTP:user@tenant.mail.onmicrosoft.com",
                ));
            }
            Some(stripped.to_string())
        }
        None => None,
    };
    let secret = match (&e.password_hash, &e.password) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "password",
                "both `password` and `password_hash` are set".into(),
                "keep only password_hash",
            ))
        }
        (Some(h), None) => {
            PasswordHash::new(h).map_err(|err| {
                bad(
                    "password_hash",
                    format!("not a PHC password hash ({err})"),
                    "generate one with `autodiscoverd hash-password`",
                )
            })?;
            Secret::Hash(h.clone())
        }
        (None, Some(p)) if lab => Secret::Plain(p.clone()),
        (None, Some(_)) => {
            return Err(bad(
                "password",
                "plaintext passwords are only allowed in a lab directory".into(),
                "replace it with password_hash = \"...\" from `autodiscoverd hash-password`, or set lab = true at the top of the file for a lab",
            ))
        }
        (None, None) => Secret::None,
    };
    let nt_hash = match (&e.nt_hash, &e.password) {
        (Some(h), plain) => {
            let parsed = parse_hex16(h.trim()).ok_or_else(|| {
                bad(
                    "nt_hash",
                    "not 32 hexadecimal digits".into(),
                    "print it with `autodiscoverd hash-password --nt`",
                )
            })?;
            if let (Some(p), true) = (plain, lab) {
                if !crypto::ct_eq(&crypto::nt_hash(p), &parsed) {
                    return Err(bad(
                        "nt_hash",
                        "does not match `password`".into(),
                        "remove nt_hash (it is derived from password in a lab file) or fix it",
                    ));
                }
            }
            Some(parsed)
        }
        (None, Some(p)) if lab => Some(crypto::nt_hash(p)),
        (None, _) => None,
    };
    let upn = e.upn.map(|u| u.trim().to_string());
    if let Some(u) = &upn {
        if Login::parse(u).is_none_or(|l| !matches!(l, Login::UserPrincipalName(_))) {
            return Err(bad(
                "upn",
                format!("`{u}` is not a user principal name"),
                "write it as user@domain",
            ));
        }
    }
    let sam = e.sam_account_name.map(|s| s.trim().to_string());
    if let Some(s) = &sam {
        if s.is_empty() || s.contains(['\\', '@', '/']) {
            return Err(bad(
                "sam_account_name",
                format!("`{s}` is not a sAMAccountName"),
                "use the pre-Windows 2000 logon name, e.g. alice",
            ));
        }
    }
    let mailbox_kind = match &e.mailbox_kind {
        Some(k) => Some(MailboxKind::parse(k).ok_or_else(|| {
            bad(
                "mailbox_kind",
                format!("unknown mailbox kind `{k}`"),
                "use \"exchange\" or \"internet\" (IMAP/POP3 and SMTP), or leave it out for the domain's default",
            )
        })?),
        None => None,
    };
    let sid = match &e.sid {
        Some(text) => Some(Sid::parse(text).ok_or_else(|| {
            bad(
                "sid",
                format!("`{text}` is not a security identifier"),
                "write the account's objectSid in its string form, e.g. \"S-1-5-21-3623811015-3361044348-30300820-1013\"",
            )
        })?),
        None => None,
    };
    let has_local_mailbox = recipient_type.is_local_mailbox();
    Ok(User {
        recipient: Recipient {
            display_name: e.display_name,
            primary_smtp: primary,
            addresses,
            legacy_dn: e.legacy_dn.map(|d| d.trim().to_string()),
            mailbox_guid,
            recipient_type,
            remote_recipient_type: e.remote_recipient_type,
            target_address,
            has_local_mailbox,
            enabled: e.enabled,
            mailbox_kind,
        },
        x500: legacy_aliases,
        upn,
        sam,
        secret,
        nt_hash,
        sid,
    })
}

/// Lower-case hex of an NT hash (the `nt_hash` value format).
pub fn hex16(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses exactly 32 hex digits (either case, as Samba writes upper case).
pub fn parse_hex16(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        let pair = text.get(i * 2..i * 2 + 2)?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A plausible `local@domain` address without whitespace or control characters.
pub fn is_smtp_address(text: &str) -> bool {
    match text.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && domain.contains('.')
                && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

fn verify_secret(secret: &Secret, dummy: &str, password: &str) -> bool {
    match secret {
        Secret::Hash(h) => verify_phc(h, password),
        Secret::Plain(p) => bool::from(p.as_bytes().ct_eq(password.as_bytes())),
        Secret::Nt(h) => {
            // Same work as a real hash, so that this path is not a timing oracle.
            verify_phc(dummy, password);
            crypto::ct_eq(&crypto::nt_hash(password), h)
        }
        Secret::None => {
            verify_phc(dummy, password);
            false
        }
    }
}

fn verify_phc(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        // argon2 compares the derived hash in constant time.
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

fn identity_of(u: &User) -> Identity {
    Identity {
        user_principal_name: u
            .upn
            .clone()
            .unwrap_or_else(|| u.recipient.primary_smtp.clone()),
        addresses: u.recipient.addresses.clone(),
    }
}

/// Hashes a password for the directory file (`autodiscoverd hash-password`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

impl Directory for EmbeddedDirectory {
    /// The account is the user entry (its primary address), whatever spelling of the login
    /// named it; a login naming no user counts under its name without domain.
    async fn verify_password_guarded(
        &self,
        login: &Login,
        password: &str,
        guard: &dyn super::LoginGuard,
    ) -> Result<Option<Identity>, DirectoryError> {
        let key = match self.user_for_login(login) {
            Some(u) => format!("user:{}", u.recipient.primary_smtp.to_ascii_lowercase()),
            None => format!("unresolved:{}", login.user().to_lowercase()),
        };
        // A verification cached for these exact credentials is answered without the guard:
        // nothing can count against the account (as the LDAP backend's cache does).
        if !password.is_empty() {
            if let Some(hit) = self.cached(login, password) {
                return Ok(Some(hit));
            }
        }
        let account = super::Account {
            key,
            lockout: None,
            bad_passwords: None,
        };
        super::guarded(&account, guard, self.check_password(login, password)).await
    }

    async fn find(&self, lookup: &Lookup) -> Result<Option<Recipient>, DirectoryError> {
        let slot = match lookup {
            Lookup::Address(a) => self.by_address.get(&a.trim().to_ascii_lowercase()),
            Lookup::LegacyDn(dn) => self.by_legacy_dn.get(&dn.trim().to_ascii_lowercase()),
        };
        Ok(slot
            .and_then(|s| self.users.get(*s))
            .map(|u| u.recipient.clone()))
    }

    async fn nt_credential(&self, login: &Login) -> Result<Option<NtCredential>, DirectoryError> {
        let Some(user) = self.user_for_login(login) else {
            return Ok(None);
        };
        let Some(nt_hash) = user.nt_hash.filter(|_| user.recipient.enabled) else {
            return Ok(None);
        };
        Ok(Some(NtCredential {
            nt_hash,
            account: user
                .sam
                .clone()
                .or_else(|| user.upn.clone())
                .unwrap_or_else(|| user.recipient.primary_smtp.clone()),
            identity: identity_of(user),
        }))
    }

    fn supports_nt_hashes(&self) -> bool {
        true
    }

    async fn account_identity(&self, login: &Login) -> Result<Option<Identity>, DirectoryError> {
        Ok(self
            .user_for_login(login)
            .filter(|u| u.recipient.enabled)
            .map(identity_of))
    }

    async fn account_by_sid(&self, sid: &Sid) -> Result<Option<Identity>, DirectoryError> {
        Ok(self
            .by_sid
            .get(sid)
            .and_then(|slot| self.users.get(*slot))
            .filter(|u| u.recipient.enabled)
            .map(identity_of))
    }
}

#[cfg(test)]
mod nt_hash_tests {
    use super::*;

    fn dir(text: &str) -> Result<EmbeddedDirectory, ConfigError> {
        EmbeddedDirectory::from_toml(Path::new("test.toml"), text)
    }

    fn user(extra: &str) -> String {
        format!(
            "netbios_domain = \"CONTOSO\"\n{extra}\n[[user]]\nupn = \"alice@contoso.com\"\n\
             sam_account_name = \"alice\"\ndisplay_name = \"A\"\nprimary_smtp = \"alice@contoso.com\"\n\
             recipient_type = \"UserMailbox\"\n"
        )
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_example_directory_carries_the_nt_hashes_of_its_demo_passwords() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/directory.example.toml");
        let d = EmbeddedDirectory::load(&path).unwrap();
        assert!(d.supports_nt_hashes());
        for (sam, password) in [
            ("alice", "Alice-Demo-2026!"),
            ("bob", "Bob-Demo-2026!"),
            ("carol", "Carol-Demo-2026!"),
            ("dave", "Dave-Demo-2026!"),
        ] {
            let c = block(d.nt_credential(&Login::SamAccountName(sam.into())))
                .unwrap()
                .unwrap_or_else(|| panic!("{sam} has no NT hash"));
            assert_eq!(c.nt_hash, crypto::nt_hash(password), "{sam}");
            assert_eq!(c.account, sam);
        }
        // eve is disabled: no credential at all.
        assert!(block(d.nt_credential(&Login::SamAccountName("eve".into())))
            .unwrap()
            .is_none());
    }

    #[test]
    fn accounts_are_found_by_sid_unless_disabled_and_sids_are_validated() {
        let sid = "S-1-5-21-1-2-3-1104";
        let d = dir(&(user("") + &format!("sid = \"{sid}\"\n"))).unwrap();
        let found = block(d.account_by_sid(&Sid::parse(sid).unwrap())).unwrap();
        assert_eq!(found.unwrap().user_principal_name, "alice@contoso.com");
        let unknown = Sid::parse("S-1-5-21-1-2-3-1105").unwrap();
        assert!(block(d.account_by_sid(&unknown)).unwrap().is_none());
        let disabled = dir(&(user("") + &format!("sid = \"{sid}\"\nenabled = false\n"))).unwrap();
        assert!(block(disabled.account_by_sid(&Sid::parse(sid).unwrap()))
            .unwrap()
            .is_none());
        let bad = dir(&(user("") + "sid = \"S-1-5-banana\"\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(bad.contains("user[0].sid"), "{bad}");
    }

    #[test]
    fn lab_passwords_derive_the_nt_hash_and_logins_resolve() {
        let d = dir(&(user("lab = true") + "password = \"alice-pw\"\n")).unwrap();
        for login in [
            Login::SamAccountName("ALICE".into()),
            Login::UserPrincipalName("alice@contoso.com".into()),
            Login::DownLevel {
                domain: "contoso".into(),
                user: "alice".into(),
            },
        ] {
            let c = block(d.nt_credential(&login)).unwrap().unwrap();
            assert_eq!(c.nt_hash, crypto::nt_hash("alice-pw"));
            assert_eq!(c.identity.user_principal_name, "alice@contoso.com");
        }
        let other_domain = Login::DownLevel {
            domain: "FABRIKAM".into(),
            user: "alice".into(),
        };
        assert!(block(d.nt_credential(&other_domain)).unwrap().is_none());
    }

    #[test]
    fn a_user_with_only_an_nt_hash_can_use_basic() {
        let h = hex16(&crypto::nt_hash("s3cret"));
        let d = dir(&(user("") + &format!("nt_hash = \"{}\"\n", h.to_uppercase()))).unwrap();
        let login = Login::SamAccountName("alice".into());
        assert!(block(d.verify_password(&login, "s3cret"))
            .unwrap()
            .is_some());
        assert!(block(d.verify_password(&login, "wrong")).unwrap().is_none());
    }

    #[test]
    fn bad_or_contradicting_nt_hashes_are_config_errors() {
        let e = dir(&(user("") + "nt_hash = \"abc\"\n")).err().unwrap();
        assert!(e.to_string().contains("nt_hash"), "{e}");
        let wrong = hex16(&crypto::nt_hash("other"));
        let e = dir(&(user("lab = true") + &format!("password = \"pw\"\nnt_hash = \"{wrong}\"\n")))
            .err()
            .unwrap();
        assert!(e.to_string().contains("does not match"), "{e}");
        assert_eq!(parse_hex16("zz"), None);
        assert_eq!(parse_hex16(&"0".repeat(32)), Some([0; 16]));
    }
}
