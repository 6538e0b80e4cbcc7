//! The directory: who exists, where their mailbox lives, and whether a password is right.
//! One trait, [`Directory`]; backends plug in behind [`DirectoryBackend`]. Never HTTP or XML.

pub mod embedded;
pub mod recipient;

use std::future::Future;

pub use embedded::EmbeddedDirectory;
pub use recipient::{Identity, Login, Lookup, Recipient, RecipientType};

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
}

/// The configured backend.
pub enum DirectoryBackend {
    /// The embedded TOML directory.
    Embedded(EmbeddedDirectory),
}

impl Directory for DirectoryBackend {
    async fn find(&self, lookup: &Lookup) -> Result<Option<Recipient>, DirectoryError> {
        match self {
            DirectoryBackend::Embedded(d) => d.find(lookup).await,
        }
    }

    async fn verify_password(
        &self,
        login: &Login,
        password: &str,
    ) -> Result<Option<Identity>, DirectoryError> {
        match self {
            DirectoryBackend::Embedded(d) => d.verify_password(login, password).await,
        }
    }
}
