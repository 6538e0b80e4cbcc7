//! The directory: who exists, where their mailbox lives, and whether a password is right.
//! One trait, [`Directory`]; backends plug in behind [`DirectoryBackend`]. Never HTTP or XML.

pub mod cache;
pub mod embedded;
pub mod ldap;
pub mod recipient;

use std::future::Future;

pub use cache::Cached;
pub use embedded::EmbeddedDirectory;
pub use ldap::LdapDirectory;
pub use recipient::{Identity, Login, Lookup, MailboxKind, Recipient, RecipientType};

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
    ) -> impl Future<Output = Result<Option<Identity>, DirectoryError>> + Send;

    /// The NT hash of an enabled account, for NTLM. `Ok(None)` when the user is unknown,
    /// disabled, or the backend holds no hash for it.
    fn nt_credential(
        &self,
        login: &Login,
    ) -> impl Future<Output = Result<Option<NtCredential>, DirectoryError>> + Send;

    /// Whether this backend can supply NT hashes at all (NTLM is useless without them).
    fn supports_nt_hashes(&self) -> bool;
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

    async fn verify_password(
        &self,
        login: &Login,
        password: &str,
    ) -> Result<Option<Identity>, DirectoryError> {
        let timer = crate::ops::metrics::DirectoryTimer::start("verify_password");
        let result = match self {
            DirectoryBackend::Embedded(d) => d.verify_password(login, password).await,
            DirectoryBackend::Ldap(d) => Box::pin(d.verify_password(login, password)).await,
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
}

impl DirectoryBackend {
    /// The NetBIOS domain the directory knows its users by (`CONTOSO`), if it says.
    pub fn netbios_domain(&self) -> Option<String> {
        match self {
            DirectoryBackend::Embedded(d) => d.netbios_domain(),
            DirectoryBackend::Ldap(d) => d.inner().netbios_domain(),
        }
    }
}
