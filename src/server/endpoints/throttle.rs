//! The I/O side of the failed-login throttle: one mutex-protected
//! [`Throttle`](crate::auth::throttle::Throttle) per process (kept across reloads), the
//! edge clock, the sleep of a progressive delay and metrics (the HTTP shape of a refusal is
//! in [`super::auth`]).
//! The rules are in [`crate::auth::throttle`].

use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::auth::throttle::{Throttle, Verdict};
use crate::config::ThrottleSettings;
use crate::ops::metrics;

/// The one clock of the throttle: milliseconds since the process started (monotonic).
pub fn now_ms() -> u64 {
    static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);
    ORIGIN.elapsed().as_millis() as u64
}

/// Why an attempt was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// The source failed too often: 429 with `Retry-After`.
    TooManyRequests { retry_after: Duration },
    /// This source failed too often on this account: the usual 401 with `Retry-After`.
    Refused { retry_after: Duration },
}

impl Throttled {
    /// Outcome label for the access log and the request metrics.
    pub fn label(self) -> &'static str {
        match self {
            Throttled::TooManyRequests { .. } => "throttled_429",
            Throttled::Refused { .. } => "throttled_401",
        }
    }
}

struct Inner {
    enabled: bool,
    throttle: Throttle,
}

/// The process-wide throttle shared by every generation of the state.
pub struct AuthThrottle {
    inner: Mutex<Inner>,
}

impl AuthThrottle {
    /// A throttle with the configured thresholds.
    pub fn new(settings: &ThrottleSettings) -> AuthThrottle {
        AuthThrottle {
            inner: Mutex::new(Inner {
                enabled: settings.enabled,
                throttle: Throttle::new(settings.limits.clone()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The counters stay usable after a panic elsewhere; they are only scores.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies reloaded settings; the counts survive.
    pub fn configure(&self, settings: &ThrottleSettings) {
        let mut inner = self.lock();
        inner.enabled = settings.enabled;
        if inner.throttle.config() != &settings.limits {
            inner.throttle.reconfigure(settings.limits.clone());
        }
    }

    /// Asks whether `client` may try `account` (the login as typed) now, and waits out the
    /// progressive delay when there is one. `Err`: answer without checking the password.
    pub async fn admit(&self, client: IpAddr, account: &str) -> Result<(), Throttled> {
        let verdict = {
            let inner = self.lock();
            if !inner.enabled {
                return Ok(());
            }
            inner.throttle.check(client, account, now_ms())
        };
        match verdict {
            Verdict::Proceed { delay } if delay.is_zero() => Ok(()),
            Verdict::Proceed { delay } => {
                metrics::throttled("delayed");
                tracing::debug!(target: "auth", %client, delay_ms = delay.as_millis() as u64, "authentication attempt delayed");
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Verdict::TooManyRequests { retry_after } => {
                metrics::throttled("too_many_requests");
                tracing::info!(target: "auth", %client, "authentication refused: too many failures from this address");
                Err(Throttled::TooManyRequests { retry_after })
            }
            Verdict::Refuse { retry_after } => {
                metrics::throttled("refused");
                tracing::info!(target: "auth", %client, "authentication refused: too many failures for this account from this address");
                Err(Throttled::Refused { retry_after })
            }
        }
    }

    /// Records a failed verification.
    pub fn failed(&self, client: IpAddr, account: &str) {
        let mut inner = self.lock();
        if inner.enabled {
            inner.throttle.failed(client, account, now_ms());
        }
    }

    /// Records a successful verification.
    pub fn succeeded(&self, client: IpAddr, account: &str) {
        let mut inner = self.lock();
        if inner.enabled {
            inner.throttle.succeeded(client, account);
        }
    }

    /// Entries held per table (sources, pairs, accounts).
    pub fn tracked(&self) -> (usize, usize, usize) {
        self.lock().throttle.tracked()
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(225)), 225);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn a_disabled_throttle_admits_everything_and_counts_nothing() {
        let settings = ThrottleSettings {
            enabled: false,
            ..ThrottleSettings::default()
        };
        let t = AuthThrottle::new(&settings);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            assert!(t.admit(ip, "alice").await.is_ok());
            t.failed(ip, "alice");
        }
        assert_eq!(t.tracked(), (0, 0, 0));
    }

    #[tokio::test]
    async fn reconfiguring_keeps_the_counts() {
        let t = AuthThrottle::new(&ThrottleSettings::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            t.failed(ip, "alice");
        }
        let mut stricter = ThrottleSettings::default();
        stricter.limits.pair_block_after = 3;
        t.configure(&stricter);
        assert!(matches!(
            t.admit(ip, "alice").await,
            Err(Throttled::Refused { .. })
        ));
    }
}
