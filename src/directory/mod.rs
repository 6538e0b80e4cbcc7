//! The directory: who exists, where their mailbox lives, and whether a password is right.
//! One trait, [`Directory`]; backends plug in behind [`DirectoryBackend`]. Never HTTP or XML.

pub mod cache;
pub mod embedded;
pub mod flight;
pub mod ldap;
pub mod recipient;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use crate::auth::bearer::Sid;
pub use crate::auth::throttle::DomainCount;
pub use crate::auth::{Identity, Login};
pub use cache::Cached;
pub use embedded::EmbeddedDirectory;
pub use ldap::LdapDirectory;
pub use recipient::{Lookup, MailboxKind, Recipient, RecipientType};

/// Why the directory could not answer (as opposed to answering "no such user").
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    /// The directory service cannot be reached or failed (→ Error 603).
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The directory did not answer within the configured time (→ Error 603).
    #[error("directory timed out after {0} ms")]
    Timeout(u64),
}

/// A source of recipients and password verification.
pub trait Directory: Send + Sync {
    /// Finds the recipient for an SMTP address (any proxy address) or a legacy DN.
    fn find(
        &self,
        lookup: &Lookup,
    ) -> impl Future<Output = Result<Option<Recipient>, DirectoryError>> + Send;

    /// Verifies a password. `Ok(None)` for unknown user, disabled account or wrong
    /// password alike: callers must not be able to tell them apart.
    fn verify_password(
        &self,
        login: &Login,
        password: &str,
    ) -> impl Future<Output = Result<Option<Identity>, DirectoryError>> + Send {
        async move {
            self.verify_password_guarded(login, password, &Unguarded)
                .await
        }
    }

    /// [`Directory::verify_password`] with a [`LoginGuard`] consulted between resolving the
    /// login to its [`Account`] and checking the password (which may count against the
    /// domain's lockout counter). A refused attempt is answered like a wrong password.
    fn verify_password_guarded(
        &self,
        login: &Login,
        password: &str,
        guard: &dyn LoginGuard,
    ) -> impl Future<Output = Result<Option<Identity>, DirectoryError>> + Send;

    /// The NT hash of an enabled account, for NTLM. `Ok(None)` when the user is unknown,
    /// disabled, or the backend holds no hash for it.
    fn nt_credential(
        &self,
        login: &Login,
    ) -> impl Future<Output = Result<Option<NtCredential>, DirectoryError>> + Send;

    /// Whether this backend can supply NT hashes at all (NTLM is useless without them).
    fn supports_nt_hashes(&self) -> bool;

    /// The account a login names (what failed logins count against, with its domain's
    /// lockout policy) and its identity when the entry is enabled: for credentials the
    /// domain checks itself and counts against the account (NTLM through winbind).
    /// Default: the login as typed, no lockout policy.
    fn resolve_account(
        &self,
        login: &Login,
    ) -> impl Future<Output = Result<(Account, Option<Identity>), DirectoryError>> + Send {
        async move {
            let account = Account {
                key: login.to_string().to_lowercase(),
                lockout: None,
                bad_passwords: None,
            };
            Ok((account, self.account_identity(login).await?))
        }
    }

    /// The identity of the enabled account a login names, for logins the domain has
    /// verified already (a Kerberos ticket, NTLM checked by winbind). `Ok(None)` when the
    /// login names no entry, more than one, or a disabled account.
    fn account_identity(
        &self,
        login: &Login,
    ) -> impl Future<Output = Result<Option<Identity>, DirectoryError>> + Send;

    /// The identity of the enabled account whose security identifier (`objectSid`) is
    /// `sid`: the `onprem_sid` of an Entra ID token for a synced user. `Ok(None)` when no
    /// entry, more than one, or a disabled account has it. Default: no SIDs are known.
    fn account_by_sid(
        &self,
        sid: &Sid,
    ) -> impl Future<Output = Result<Option<Identity>, DirectoryError>> + Send {
        let _ = sid;
        async { Ok(None) }
    }
}

/// A login resolved to its directory account: what failed logins are counted against,
/// whichever spelling of the login was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Stable and spelling-independent: the entry's DN, lower-case.
    pub key: String,
    /// The lockout policy of the account's domain, when the directory told it.
    pub lockout: Option<LockoutPolicy>,
    /// The domain's own count of the account's recent bad passwords, read just before a
    /// password check that reaches the domain (Active Directory's `badPwdCount` at the PDC
    /// emulator), when the directory can tell it.
    pub bad_passwords: Option<DomainCount>,
}

/// A domain's account lockout policy (`lockoutThreshold` and `lockOutObservationWindow` of
/// the domain object; MS-ADA2, MS-SAMR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Bad passwords that lock the account; 0: accounts are never locked.
    pub threshold: u32,
    /// How long after the last bad password the domain forgets the count.
    pub observation_window: Duration,
    /// How long a locked account stays locked (`lockoutDuration`); `None`: until an
    /// administrator unlocks it, or not told.
    pub lockout_duration: Option<Duration>,
}

/// What a [`LoginGuard`] returns: its counts may live in a store shared by several
/// servers, so asking it is a round trip.
pub type GuardFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Asked by a backend before it checks a password of a resolved account.
pub trait LoginGuard: Send + Sync {
    /// false: do not check the password (the answer is "wrong password").
    fn admit<'a>(&'a self, account: &'a Account) -> GuardFuture<'a, bool>;
    /// The outcome of an admitted check: right, wrong, or `None` (not checked: the
    /// directory failed).
    fn settle<'a>(&'a self, account: &'a Account, outcome: Option<bool>) -> GuardFuture<'a, ()>;
    /// This request's password was not checked: an identical check in progress for another
    /// request found it wrong, and that one was admitted and settled (nothing more to count).
    fn shared_outcome(&self) {}
}

/// A guard that admits everything (callers without a throttle).
pub struct Unguarded;

impl LoginGuard for Unguarded {
    fn admit<'a>(&'a self, _: &'a Account) -> GuardFuture<'a, bool> {
        Box::pin(std::future::ready(true))
    }
    fn settle<'a>(&'a self, _: &'a Account, _: Option<bool>) -> GuardFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Runs a password check of `account` under `guard`.
pub async fn guarded(
    account: &Account,
    guard: &dyn LoginGuard,
    check: impl Future<Output = Result<Option<Identity>, DirectoryError>>,
) -> Result<Option<Identity>, DirectoryError> {
    if !guard.admit(account).await {
        return Ok(None);
    }
    let result = check.await;
    guard
        .settle(account, result.as_ref().ok().map(Option::is_some))
        .await;
    result
}

tokio::task_local! {
    /// Set when a directory answer of this request came from a stale cache entry.
    static SERVED_STALE: std::cell::Cell<bool>;
}

/// Runs `request` and tells whether any directory answer it got came from a cache entry
/// past its TTL because the directory could not be asked (for the access log).
pub async fn noting_stale<F: Future>(request: F) -> (F::Output, bool) {
    SERVED_STALE
        .scope(std::cell::Cell::new(false), async {
            let output = request.await;
            let stale = SERVED_STALE.try_with(std::cell::Cell::get).unwrap_or(false);
            (output, stale)
        })
        .await
}

/// Notes a stale answer for the request being served (nothing outside [`noting_stale`]).
fn note_stale() {
    let _ = SERVED_STALE.try_with(|stale| stale.set(true));
}

/// What NTLM needs to verify a user: the NT hash (MD4 of the UTF-16LE password) and the
/// identity it belongs to.
#[derive(Clone, PartialEq, Eq)]
pub struct NtCredential {
    pub nt_hash: [u8; 16],
    /// The account name as the directory spells it (sAMAccountName), for NTOWFv2.
    pub account: String,
    pub identity: Identity,
}

impl std::fmt::Debug for NtCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtCredential")
            .field("nt_hash", &"<redacted>")
            .field("account", &self.account)
            .field("identity", &self.identity)
            .finish()
    }
}

/// The configured backend.
// One value per process, held in the shared State: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum DirectoryBackend {
    /// The embedded TOML directory.
    Embedded(EmbeddedDirectory),
    /// An LDAP directory behind the lookup/verification cache.
    Ldap(Cached<LdapDirectory>),
}

// The LDAP futures are kilobytes (ldap3's request state); boxed, they cost an allocation
// per directory round trip and keep every request's future small, which is moved and
// copied on each request whichever backend answers it.
impl Directory for DirectoryBackend {
    async fn find(&self, lookup: &Lookup) -> Result<Option<Recipient>, DirectoryError> {
        let timer = crate::ops::metrics::DirectoryTimer::start("find");
        let result = match self {
            DirectoryBackend::Embedded(d) => d.find(lookup).await,
            DirectoryBackend::Ldap(d) => Box::pin(d.find(lookup)).await,
        };
        timer.finish(&result);
        result
    }

    async fn verify_password_guarded(
        &self,
        login: &Login,
        password: &str,
        guard: &dyn LoginGuard,
    ) -> Result<Option<Identity>, DirectoryError> {
        let timer = crate::ops::metrics::DirectoryTimer::start("verify_password");
        let result = match self {
            DirectoryBackend::Embedded(d) => {
                d.verify_password_guarded(login, password, guard).await
            }
            DirectoryBackend::Ldap(d) => {
                Box::pin(d.verify_password_guarded(login, password, guard)).await
            }
        };
        timer.finish(&result);
        result
    }

    async fn nt_credential(&self, login: &Login) -> Result<Option<NtCredential>, DirectoryError> {
        let timer = crate::ops::metrics::DirectoryTimer::start("nt_credential");
        let result = match self {
            DirectoryBackend::Embedded(d) => d.nt_credential(login).await,
            DirectoryBackend::Ldap(d) => Box::pin(d.nt_credential(login)).await,
        };
        timer.finish(&result);
        result
    }

    fn supports_nt_hashes(&self) -> bool {
        match self {
            DirectoryBackend::Embedded(d) => d.supports_nt_hashes(),
            DirectoryBackend::Ldap(d) => d.supports_nt_hashes(),
        }
    }

    async fn resolve_account(
        &self,
        login: &Login,
    ) -> Result<(Account, Option<Identity>), DirectoryError> {
        let timer = crate::ops::metrics::DirectoryTimer::start("resolve_account");
        let result = match self {
            DirectoryBackend::Embedded(d) => d.resolve_account(login).await,
            DirectoryBackend::Ldap(d) => Box::pin(d.resolve_account(login)).await,
        };
        timer.finish(&result);
        result
    }

    async fn account_by_sid(&self, sid: &Sid) -> Result<Option<Identity>, DirectoryError> {
        let timer = crate::ops::metrics::DirectoryTimer::start("account_by_sid");
        let result = match self {
            DirectoryBackend::Embedded(d) => d.account_by_sid(sid).await,
            DirectoryBackend::Ldap(d) => Box::pin(d.account_by_sid(sid)).await,
        };
        timer.finish(&result);
        result
    }

    async fn account_identity(&self, login: &Login) -> Result<Option<Identity>, DirectoryError> {
        let timer = crate::ops::metrics::DirectoryTimer::start("account_identity");
        let result = match self {
            DirectoryBackend::Embedded(d) => d.account_identity(login).await,
            DirectoryBackend::Ldap(d) => Box::pin(d.account_identity(login)).await,
        };
        timer.finish(&result);
        result
    }
}

impl DirectoryBackend {
    /// A successful verification remembered for these exact credentials, found without
    /// asking the directory or any guard; `None` on a miss.
    pub fn cached_verification(&self, login: &Login, password: &str) -> Option<Identity> {
        if password.is_empty() {
            return None;
        }
        match self {
            DirectoryBackend::Embedded(d) => d.cached(login, password),
            DirectoryBackend::Ldap(d) => d.cached_verification(login, password),
        }
    }

    /// Opens the directory's connections before the first requests need them.
    pub async fn warm(&self) {
        if let DirectoryBackend::Ldap(d) = self {
            d.inner().warm().await;
        }
    }

    /// The NetBIOS domain the directory knows its users by (`CONTOSO`), if it says.
    pub fn netbios_domain(&self) -> Option<String> {
        match self {
            DirectoryBackend::Embedded(d) => d.netbios_domain(),
            DirectoryBackend::Ldap(d) => d.inner().netbios_domain(),
        }
    }
}
