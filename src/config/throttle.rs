//! The `[throttle]` table: failed-authentication throttling (see [`crate::auth::throttle`]).
//! Every key is optional; an absent table means "on, with the defaults".

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Validator};
use crate::auth::throttle::ThrottleConfig;

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
}

/// Validated throttle settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// false: every attempt is checked at once and nothing is counted.
    pub enabled: bool,
    pub limits: ThrottleConfig,
    pub lockout: LockoutSettings,
}

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
        Ok(ThrottleSettings {
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
            }
        );
    }
}
