//! Configuration errors: every message names the file, the key and how to fix it.

use std::path::PathBuf;

/// Why a configuration (or the embedded directory it points to) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{file}: cannot read the file: {source}. Fix: check the path and that the service user may read it.")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong value type (serde's message names the key).
    #[error("{file}: {message}\nFix: correct the key shown above; every accepted key is documented in config/autodiscoverd.example.toml.")]
    Parse { file: PathBuf, message: String },
    /// A value that parsed but cannot work.
    #[error("{file}: key `{key}`: {problem}. Fix: {fix}")]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
        fix: String,
    },
}

impl ConfigError {
    /// Builds an [`ConfigError::Invalid`] from borrowed parts.
    pub fn invalid(
        file: &std::path::Path,
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            file: file.to_path_buf(),
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The configuration key this error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}
