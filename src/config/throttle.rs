//! The `[throttle]` table: failed-authentication throttling (see [`crate::auth::throttle`]).
//! Every key is optional; an absent table means "on, with the defaults".

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::cidr::Cidr;
use super::{resolve_against, ConfigError, Validator};
pub use crate::auth::throttle::ThrottleConfig;

/// Serde mirror of `[throttle]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSection {
    pub enabled: Option<bool>,
    pub window_secs: Option<u64>,
    pub source_delay_after: Option<u32>,
    pub source_block_after: Option<u32>,
    pub pair_block_after: Option<u32>,
    pub account_delay_after: Option<u32>,
    pub max_delay_ms: Option<u64>,
    pub account_max_delay_ms: Option<u64>,
    pub max_entries: Option<usize>,
    pub lockout_margin: Option<u32>,
    pub lockout_threshold: Option<u32>,
    pub familiar_days: Option<u32>,
    pub ipv6_prefix: Option<u8>,
    pub trusted_sources: Option<Vec<String>>,
    pub shared: Option<SharedSection>,
}

/// Serde mirror of `[throttle.shared]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedSection {
    pub url: Option<String>,
    pub ca_file: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub secret_file: Option<String>,
    pub instances: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub key_prefix: Option<String>,
}

/// Validated throttle settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// false: every attempt is checked at once and nothing is counted.
    pub enabled: bool,
    pub limits: ThrottleConfig,
    pub lockout: LockoutSettings,
    /// How long an address stays familiar to an account after a successful login from it
    /// (it keeps the reserve of the account's lockout budget); zero: never.
    pub familiar: Duration,
    /// IPv6 sources are counted by this many leading bits (a host holds a whole /64).
    pub ipv6_prefix: u8,
    /// Sources never blocked or delayed as a whole (a partner's known egress); their
    /// failures still count against each account and its lockout budget.
    pub trusted_sources: Vec<Cidr>,
    /// The store the counts live in when several instances serve one domain.
    pub shared: Option<SharedStore>,
}

/// `[throttle.shared]`: every counter of the throttle and the lockout guard in Valkey or
/// Redis, so that instances sharing it act as one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedStore {
    /// `redis://host:port/db` or `rediss://host:port/db` (TLS); no credentials in it.
    pub url: String,
    /// Trust anchors for `rediss://` (PEM); the system's when absent.
    pub ca_file: Option<PathBuf>,
    /// ACL user (Redis 6+ `AUTH user password`).
    pub username: Option<String>,
    pub password: Option<super::BindPassword>,
    /// The key of the wrong-password digests, the same on every instance.
    pub secret: StoreSecret,
    /// Instances serving the domain: while the store is unreachable each one counts locally
    /// with this share of an account's lockout budget.
    pub instances: u32,
    /// How long one round trip to the store may take before it counts as down.
    pub timeout: Duration,
    /// Prepended to every key (several deployments on one store).
    pub key_prefix: String,
}

/// The shared secret of the wrong-password digests. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSecret(pub Vec<u8>);

impl std::fmt::Debug for StoreSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreSecret(<redacted>)")
    }
}

/// Familiar locations are remembered this long unless configured.
pub const DEFAULT_FAMILIAR_DAYS: u32 = 14;

/// How this server stays below the directory's account lockout threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Failures left to the account's owner below the domain's threshold: an account is
    /// refused here after `threshold - margin` failures from this server (at least 1).
    pub margin: u32,
    /// Used instead of the threshold the directory reports (fine-grained password
    /// policies, or directories that report none); 0: no lockout policy.
    pub threshold: Option<u32>,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        LockoutSettings {
            margin: 2,
            threshold: None,
        }
    }
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            enabled: true,
            limits: ThrottleConfig::default(),
            lockout: LockoutSettings::default(),
            familiar: Duration::from_secs(u64::from(DEFAULT_FAMILIAR_DAYS) * 86_400),
            ipv6_prefix: 64,
            trusted_sources: Vec::new(),
            shared: None,
        }
    }
}

/// Longest delay a setting may impose: a delayed request holds a connection.
const MAX_DELAY_MS: u64 = 60_000;

impl Validator<'_> {
    pub(super) fn throttle(&self, raw: ThrottleSection) -> Result<ThrottleSettings, ConfigError> {
        let d = ThrottleConfig::default();
        let window_secs = raw.window_secs.unwrap_or(d.window.as_secs());
        if !(1..=86_400).contains(&window_secs) {
            return Err(self.invalid(
                "throttle.window_secs",
                format!("{window_secs} is outside 1..=86400"),
                "use a window of minutes, e.g. 900 (the default, 15 minutes)",
            ));
        }
        let count = |key: &str, value: Option<u32>, default: u32| -> Result<u32, ConfigError> {
            let v = value.unwrap_or(default);
            if v == 0 {
                return Err(self.invalid(
                    key,
                    "0 failures would throttle every first attempt",
                    format!("use a positive count (the default is {default})"),
                ));
            }
            Ok(v)
        };
        let source_delay_after = count(
            "throttle.source_delay_after",
            raw.source_delay_after,
            d.source_delay_after,
        )?;
        let source_block_after = count(
            "throttle.source_block_after",
            raw.source_block_after,
            d.source_block_after,
        )?;
        let pair_block_after = count(
            "throttle.pair_block_after",
            raw.pair_block_after,
            d.pair_block_after,
        )?;
        let account_delay_after = count(
            "throttle.account_delay_after",
            raw.account_delay_after,
            d.account_delay_after,
        )?;
        if source_delay_after > source_block_after {
            return Err(self.invalid(
                "throttle.source_delay_after",
                format!(
                    "{source_delay_after} is above throttle.source_block_after ({source_block_after})"
                ),
                "delays must start before the source is blocked: make source_delay_after <= source_block_after",
            ));
        }
        let delay = |key: &str, value: Option<u64>, default: Duration| {
            let ms = value.unwrap_or(default.as_millis() as u64);
            if ms > MAX_DELAY_MS {
                return Err(self.invalid(
                    key,
                    format!("{ms} ms is above {MAX_DELAY_MS} ms"),
                    "a delayed request holds a connection open; keep delays to a few seconds",
                ));
            }
            Ok(Duration::from_millis(ms))
        };
        let max_delay = delay("throttle.max_delay_ms", raw.max_delay_ms, d.max_delay)?;
        let account_max_delay = delay(
            "throttle.account_max_delay_ms",
            raw.account_max_delay_ms,
            d.account_max_delay,
        )?;
        let max_entries = raw.max_entries.unwrap_or(d.max_entries);
        if !(100..=10_000_000).contains(&max_entries) {
            return Err(self.invalid(
                "throttle.max_entries",
                format!("{max_entries} is outside 100..=10000000"),
                "each entry costs about 100 bytes; the default 100000 suits most sites",
            ));
        }
        let lockout_margin = raw
            .lockout_margin
            .unwrap_or(LockoutSettings::default().margin);
        if lockout_margin > 100 {
            return Err(self.invalid(
                "throttle.lockout_margin",
                format!("{lockout_margin} failures"),
                "keep a few failures for the account's owner, e.g. 2 (the default)",
            ));
        }
        let familiar_days = raw.familiar_days.unwrap_or(DEFAULT_FAMILIAR_DAYS);
        if familiar_days > 365 {
            return Err(self.invalid(
                "throttle.familiar_days",
                format!("{familiar_days} days"),
                "remember familiar locations for days or weeks, e.g. 14 (the default); 0 turns them off",
            ));
        }
        let ipv6_prefix = raw.ipv6_prefix.unwrap_or(64);
        if !(32..=128).contains(&ipv6_prefix) {
            return Err(self.invalid(
                "throttle.ipv6_prefix",
                format!("/{ipv6_prefix} is outside /32../128"),
                "count IPv6 sources per /64 (the default): one host can use every address of its /64",
            ));
        }
        let mut trusted_sources = Vec::new();
        for (i, text) in raw.trusted_sources.unwrap_or_default().iter().enumerate() {
            trusted_sources.push(Cidr::parse(text).ok_or_else(|| {
                self.invalid(
                    &format!("throttle.trusted_sources[{i}]"),
                    format!("`{text}` is not an IP address or CIDR network"),
                    "write networks as \"203.0.113.0/24\", \"192.0.2.7\" or \"2001:db8::/48\"",
                )
            })?);
        }
        let shared = raw.shared.map(|s| self.shared_store(s)).transpose()?;
        Ok(ThrottleSettings {
            familiar: Duration::from_secs(u64::from(familiar_days) * 86_400),
            ipv6_prefix,
            trusted_sources,
            shared,
            enabled: raw.enabled.unwrap_or(true),
            lockout: LockoutSettings {
                margin: lockout_margin,
                threshold: raw.lockout_threshold,
            },
            limits: ThrottleConfig {
                window: Duration::from_secs(window_secs),
                source_delay_after,
                source_block_after,
                pair_block_after,
                account_delay_after,
                max_delay,
                account_max_delay,
                max_entries,
            },
        })
    }
}

impl Validator<'_> {
    fn shared_store(&self, raw: SharedSection) -> Result<SharedStore, ConfigError> {
        let Some(url) = raw.url.filter(|u| !u.trim().is_empty()) else {
            return Err(self.invalid(
                "throttle.shared.url",
                "missing",
                "give the store as url = \"redis://10.0.0.20:6379/0\" (or rediss:// for TLS)",
            ));
        };
        let parsed = url::Url::parse(&url).map_err(|e| {
            self.invalid(
                "throttle.shared.url",
                format!("`{url}` is not a URL: {e}"),
                "write it as redis://HOST:PORT/DB or rediss://HOST:PORT/DB",
            )
        })?;
        if !matches!(parsed.scheme(), "redis" | "rediss") || parsed.host_str().is_none() {
            return Err(self.invalid(
                "throttle.shared.url",
                format!("`{url}` is not a redis:// or rediss:// URL with a host"),
                "write it as redis://HOST:PORT/DB or rediss://HOST:PORT/DB (Valkey or Redis)",
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(self.invalid(
                "throttle.shared.url",
                "the URL carries credentials",
                "keep secrets out of the configuration: use throttle.shared.username and password_file",
            ));
        }
        let ca_file = raw
            .ca_file
            .map(|p| resolve_against(self.file, Path::new(&p)));
        if ca_file.is_some() && parsed.scheme() != "rediss" {
            return Err(self.invalid(
                "throttle.shared.ca_file",
                "set for a plain redis:// URL",
                "use rediss:// to talk TLS to the store, or remove ca_file",
            ));
        }
        if let Some(path) = &ca_file {
            if !path.is_file() {
                return Err(self.invalid(
                    "throttle.shared.ca_file",
                    format!("`{}` does not exist", path.display()),
                    "give the PEM file of the CA that issued the store's certificate",
                ));
            }
        }
        let read = |key: &str, path: &str, what: &str| -> Result<String, ConfigError> {
            let path = resolve_against(self.file, Path::new(path));
            let text = std::fs::read_to_string(&path).map_err(|e| {
                self.invalid(
                    key,
                    format!("cannot read `{}`: {e}", path.display()),
                    format!("create it with {what} on one line, readable by the service user only"),
                )
            })?;
            let value = text.trim_end_matches(['\r', '\n']).to_string();
            if value.is_empty() {
                return Err(self.invalid(
                    key,
                    format!("`{}` is empty", path.display()),
                    format!("write {what} into it"),
                ));
            }
            Ok(value)
        };
        let password = raw
            .password_file
            .as_deref()
            .map(|p| {
                read(
                    "throttle.shared.password_file",
                    p,
                    "the store user's password",
                )
                .map(super::BindPassword::new)
            })
            .transpose()?;
        let Some(secret_file) = raw.secret_file else {
            return Err(self.invalid(
                "throttle.shared.secret_file",
                "missing",
                "create one secret for all instances (e.g. `openssl rand -hex 32 > /etc/autodiscoverd/throttle-secret`) and name it in secret_file",
            ));
        };
        let secret = read(
            "throttle.shared.secret_file",
            &secret_file,
            "a random secret shared by the instances (openssl rand -hex 32)",
        )?;
        if secret.len() < 16 {
            return Err(self.invalid(
                "throttle.shared.secret_file",
                format!("{} characters", secret.len()),
                "use at least 16 random characters (openssl rand -hex 32)",
            ));
        }
        let Some(instances) = raw.instances else {
            return Err(self.invalid(
                "throttle.shared.instances",
                "missing",
                "say how many instances share the store (e.g. instances = 3): while it is down each counts locally with that share of the lockout budget",
            ));
        };
        if !(1..=64).contains(&instances) {
            return Err(self.invalid(
                "throttle.shared.instances",
                format!("{instances}"),
                "give the number of instances serving the domain, 1 to 64",
            ));
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(250);
        if !(10..=5_000).contains(&timeout_ms) {
            return Err(self.invalid(
                "throttle.shared.timeout_ms",
                format!("{timeout_ms} ms"),
                "a store on the local network answers in a millisecond; keep 10..=5000 (default 250)",
            ));
        }
        Ok(SharedStore {
            url,
            ca_file,
            username: raw.username.filter(|u| !u.is_empty()),
            password,
            secret: StoreSecret(secret.into_bytes()),
            instances,
            timeout: Duration::from_millis(timeout_ms),
            key_prefix: raw.key_prefix.unwrap_or_else(|| "autodiscoverd:".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    use crate::config::tests::example;

    #[test]
    fn the_example_documents_the_defaults() {
        let (path, text) = example();
        let c = Config::from_toml(&path, &text).unwrap();
        assert_eq!(c.throttle, ThrottleSettings::default());
        assert!(!c.server.benchmark_static_route);
    }

    #[test]
    fn an_absent_table_means_on_with_defaults() {
        let (path, text) = example();
        let start = text.find("[throttle]").unwrap();
        let end = text.find("[log]").unwrap();
        let without = format!("{}{}", &text[..start], &text[end..]);
        let c = Config::from_toml(&path, &without).unwrap();
        assert_eq!(c.throttle, ThrottleSettings::default());
    }

    #[test]
    fn bad_thresholds_name_the_key_and_the_fix() {
        let (path, text) = example();
        for (from, to, key) in [
            (
                "window_secs = 900",
                "window_secs = 0",
                "throttle.window_secs",
            ),
            (
                "pair_block_after = 5",
                "pair_block_after = 0",
                "throttle.pair_block_after",
            ),
            (
                "source_delay_after = 5",
                "source_delay_after = 31",
                "throttle.source_delay_after",
            ),
            (
                "max_delay_ms = 4000",
                "max_delay_ms = 600000",
                "throttle.max_delay_ms",
            ),
            (
                "max_entries = 100000",
                "max_entries = 5",
                "throttle.max_entries",
            ),
            (
                "lockout_margin = 2",
                "lockout_margin = 500",
                "throttle.lockout_margin",
            ),
        ] {
            assert!(text.contains(from), "{from}");
            let err = Config::from_toml(&path, &text.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
            // Checked on the message, not the path: a checkout under `/work/wt-abuse`
            // once made a looser check pass by the letters of its directory name.
            assert!(err.contains("Fix: "), "{err}");
        }
    }

    #[test]
    fn every_key_is_read() {
        let (path, text) = example();
        let text = text
            .replace(
                "enabled = true\nwindow_secs = 900",
                "enabled = false\nwindow_secs = 60",
            )
            .replace("source_delay_after = 5", "source_delay_after = 2")
            .replace("max_delay_ms = 4000", "max_delay_ms = 300")
            .replace("source_block_after = 30", "source_block_after = 7")
            .replace("pair_block_after = 5", "pair_block_after = 3")
            .replace("account_delay_after = 10", "account_delay_after = 4")
            .replace("account_max_delay_ms = 1000", "account_max_delay_ms = 200")
            .replace("max_entries = 100000", "max_entries = 1000")
            .replace("lockout_margin = 2", "lockout_margin = 1")
            .replace("# lockout_threshold = 5", "lockout_threshold = 4");
        let c = Config::from_toml(&path, &text).unwrap();
        assert_eq!(
            c.throttle,
            ThrottleSettings {
                enabled: false,
                limits: ThrottleConfig {
                    window: Duration::from_secs(60),
                    source_delay_after: 2,
                    source_block_after: 7,
                    pair_block_after: 3,
                    account_delay_after: 4,
                    max_delay: Duration::from_millis(300),
                    account_max_delay: Duration::from_millis(200),
                    max_entries: 1000,
                },
                lockout: LockoutSettings {
                    margin: 1,
                    threshold: Some(4),
                },
                ..ThrottleSettings::default()
            }
        );
    }

    /// The example with `[throttle.shared]` made of `lines`, and secrets in a temporary
    /// directory (the paths are absolute).
    fn with_shared(lines: &str) -> Result<Config, ConfigError> {
        let (path, text) = example();
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "Store-Pass!1\n").unwrap();
        let lines = lines
            .replace("@SECRET@", &secret.display().to_string())
            .replace("@SHORT@", &short.display().to_string())
            .replace("@PASSWORD@", &password.display().to_string());
        Config::from_toml(&path, &format!("{text}\n[throttle.shared]\n{lines}\n"))
    }

    #[test]
    fn the_shared_store_is_read_with_its_secrets_from_files() {
        let c = with_shared(
            "url = \"redis://10.0.0.20:6379/0\"\nusername = \"autodiscoverd\"\npassword_file = \"@PASSWORD@\"\nsecret_file = \"@SECRET@\"\ninstances = 3\ntimeout_ms = 100\nkey_prefix = \"ad1:\"",
        )
        .unwrap();
        let shared = c.throttle.shared.unwrap();
        assert_eq!(shared.url, "redis://10.0.0.20:6379/0");
        assert_eq!(shared.username.as_deref(), Some("autodiscoverd"));
        assert_eq!(shared.password.unwrap().expose(), "Store-Pass!1");
        assert_eq!(shared.secret.0, b"0123456789abcdef0123456789abcdef");
        assert!(!format!("{:?}", shared.secret).contains("0123"));
        assert_eq!(shared.instances, 3);
        assert_eq!(shared.timeout, Duration::from_millis(100));
        assert_eq!(shared.key_prefix, "ad1:");
    }

    #[test]
    fn a_bad_shared_store_names_the_key_and_the_fix() {
        let ok = "secret_file = \"@SECRET@\"\ninstances = 2";
        for (lines, key) in [
            (ok.to_string(), "throttle.shared.url"),
            (
                format!("url = \"http://10.0.0.20/\"\n{ok}"),
                "throttle.shared.url",
            ),
            (
                format!("url = \"redis://user:pw@10.0.0.20/0\"\n{ok}"),
                "throttle.shared.url",
            ),
            (
                format!("url = \"redis://10.0.0.20/0\"\nca_file = \"@SECRET@\"\n{ok}"),
                "throttle.shared.ca_file",
            ),
            (
                "url = \"redis://10.0.0.20/0\"\ninstances = 2".to_string(),
                "throttle.shared.secret_file",
            ),
            (
                "url = \"redis://10.0.0.20/0\"\nsecret_file = \"@SHORT@\"\ninstances = 2".into(),
                "throttle.shared.secret_file",
            ),
            (
                "url = \"redis://10.0.0.20/0\"\nsecret_file = \"@SECRET@\"".into(),
                "throttle.shared.instances",
            ),
            (
                format!("url = \"redis://10.0.0.20/0\"\n{ok}\ntimeout_ms = 0"),
                "throttle.shared.timeout_ms",
            ),
        ] {
            let err = with_shared(&lines).unwrap_err().to_string();
            assert!(err.contains(key), "{lines}: {err}");
            assert!(err.contains("Fix: "), "{err}");
        }
    }

    #[test]
    fn sources_and_familiar_addresses_are_validated() {
        let (path, text) = example();
        for (from, to, key) in [
            (
                "ipv6_prefix = 64",
                "ipv6_prefix = 16",
                "throttle.ipv6_prefix",
            ),
            (
                "# trusted_sources = [\"203.0.113.0/24\"]",
                "trusted_sources = [\"203.0.113.0/33\"]",
                "throttle.trusted_sources[0]",
            ),
            (
                "familiar_days = 14",
                "familiar_days = 4000",
                "throttle.familiar_days",
            ),
        ] {
            assert!(text.contains(from), "{from}");
            let err = Config::from_toml(&path, &text.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
        let c = Config::from_toml(
            &path,
            &text
                .replace("familiar_days = 14", "familiar_days = 0")
                .replace(
                    "# trusted_sources = [\"203.0.113.0/24\"]",
                    "trusted_sources = [\"203.0.113.0/24\", \"2001:db8::/48\"]",
                ),
        )
        .unwrap();
        assert_eq!(c.throttle.familiar, Duration::ZERO);
        assert_eq!(c.throttle.trusted_sources.len(), 2);
    }
}
