//! The I/O side of the failed-login throttle: one mutex-protected
//! [`Throttle`](crate::auth::throttle::Throttle) per process (kept across reloads), the
//! edge clock, the sleep of a progressive delay, metrics, and the HTTP shape of a refusal.
//! The rules are in [`crate::auth::throttle`].

use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::HeaderMap;

use super::respond::{self, Body};
use super::{ConnInfo, State};
use crate::auth::throttle::{lockout_budget, LockoutLedger, Throttle, Verdict};
use crate::config::{LockoutSettings, ThrottleSettings};
use crate::directory::{Account, LoginGuard};
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
    lockout: LockoutSettings,
    ledger: LockoutLedger,
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
                lockout: settings.lockout,
                ledger: LockoutLedger::new(settings.limits.max_entries),
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
        inner.lockout = settings.lockout;
        if inner.throttle.config() != &settings.limits {
            inner.throttle.reconfigure(settings.limits.clone());
        }
    }

    /// Asks whether `client` may try `account` (the login as typed) now, and waits out the
    /// progressive delay when there is one. `Err`: answer without checking the password.
    pub async fn admit(&self, client: IpAddr, account: &str) -> Result<(), Throttled> {
        let on_failure = self.admit_deferred(client, account).await?;
        self.wait(client, on_failure).await;
        Ok(())
    }

    /// Like [`AuthThrottle::admit`], but the delay the source's own failures earned is
    /// returned instead of waited out: the caller waits only when the credentials turn out
    /// wrong, so that correct logins from an address others fail from (one NAT address for
    /// a whole site) are not slowed. An attacker gains nothing: every guess still waits
    /// before its answer.
    pub async fn admit_deferred(
        &self,
        client: IpAddr,
        account: &str,
    ) -> Result<Duration, Throttled> {
        let verdict = {
            let inner = self.lock();
            if !inner.enabled {
                return Ok(Duration::ZERO);
            }
            inner.throttle.check(client, account, now_ms())
        };
        match verdict {
            Verdict::Proceed { delay, on_failure } => {
                self.wait(client, delay).await;
                Ok(on_failure)
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

    /// Waits out a delay from [`AuthThrottle::admit_deferred`].
    pub async fn wait(&self, client: IpAddr, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        metrics::throttled("delayed");
        tracing::debug!(target: "auth", %client, delay_ms = delay.as_millis() as u64, "authentication answer delayed");
        tokio::time::sleep(delay).await;
    }

    /// The guard the directory consults once it knows which account a login names.
    pub fn guard(&self, client: IpAddr) -> AccountGuard<'_> {
        AccountGuard {
            throttle: self,
            client,
            refused: Mutex::new(None),
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

/// Keeps this server's failed password checks of each directory account below its
/// domain's lockout threshold ([`LockoutLedger`]), for one request from `client`.
pub struct AccountGuard<'a> {
    throttle: &'a AuthThrottle,
    client: IpAddr,
    /// Set when the account was refused: the time until it may be tried again.
    refused: Mutex<Option<Duration>>,
}

impl AccountGuard<'_> {
    /// `Some(retry_after)` when this request's account was refused without a check.
    pub fn refused(&self) -> Option<Duration> {
        self.refused.lock().ok().and_then(|r| *r)
    }

    /// The failure budget and window for `account`, if it is under a lockout policy.
    fn limits(inner: &Inner, account: &Account) -> Option<(u32, u64)> {
        let threshold = inner
            .lockout
            .threshold
            .or(account.lockout.map(|p| p.threshold))?;
        let budget = lockout_budget(threshold, inner.lockout.margin)?;
        let window = account
            .lockout
            .map(|p| p.observation_window)
            .filter(|w| !w.is_zero())
            .unwrap_or(inner.throttle.config().window);
        Some((budget, window.as_millis() as u64))
    }
}

impl LoginGuard for AccountGuard<'_> {
    fn admit(&self, account: &Account) -> bool {
        let verdict = {
            let mut inner = self.throttle.lock();
            if !inner.enabled {
                return true;
            }
            let Some((budget, window_ms)) = Self::limits(&inner, account) else {
                return true;
            };
            inner
                .ledger
                .admit(&account.key, budget, window_ms, now_ms())
        };
        match verdict {
            Ok(()) => true,
            Err(retry_after) => {
                metrics::throttled("lockout");
                tracing::info!(target: "auth", client = %self.client, account = %account.key, retry_after_secs = retry_after_secs(retry_after), "authentication refused: this server's share of the account's lockout threshold is used up");
                if let Ok(mut r) = self.refused.lock() {
                    *r = Some(retry_after);
                }
                false
            }
        }
    }

    fn settle(&self, account: &Account, outcome: Option<bool>) {
        let mut inner = self.throttle.lock();
        if inner.enabled && Self::limits(&inner, account).is_some() {
            inner.ledger.settle(&account.key, outcome);
        }
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// The answer to a throttled attempt: 429, or the endpoint's usual 401 challenge set, both
/// with `Retry-After` and the `/autodiscover/*` headers.
pub fn response(
    throttled: Throttled,
    state: &State,
    headers: &HeaderMap,
    conn: &ConnInfo,
) -> http::Response<Body> {
    match throttled {
        Throttled::TooManyRequests { retry_after } => {
            respond::too_many_requests(retry_after_secs(retry_after))
        }
        Throttled::Refused { retry_after } => {
            let challenges = crate::auth::challenges(
                &super::handlers::realm(state, headers, conn),
                state.ntlm.offers(state.config.auth.basic),
            );
            let mut r = respond::unauthorized(&challenges);
            respond::add_retry_after(&mut r, retry_after_secs(retry_after));
            r
        }
    }
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
    async fn every_spelling_of_an_account_spends_one_lockout_budget() {
        use crate::directory::{Directory, EmbeddedDirectory, Login};
        let lab = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/directory/lab.toml");
        let directory = EmbeddedDirectory::load(&lab).unwrap();
        let mut settings = ThrottleSettings::default();
        settings.lockout.threshold = Some(5);
        let t = AuthThrottle::new(&settings);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let check = |login: &str, password: &str| {
            let login = Login::parse(login).unwrap();
            let password = password.to_string();
            let t = &t;
            let directory = &directory;
            async move {
                let guard = t.guard(ip);
                let verified = directory
                    .verify_password_guarded(&login, &password, &guard)
                    .await
                    .unwrap();
                (verified.is_some(), guard.refused())
            }
        };
        // Budget 5 - 2 = 3, spent by three spellings of alice.
        for login in ["alice@contoso.com", "CONTOSO\\alice", "alice"] {
            assert_eq!(check(login, "wrong").await, (false, None), "{login}");
        }
        let (ok, refused) = check("ALICE", "alice-pw").await;
        assert!(
            !ok && refused.is_some(),
            "the right password is not tried now"
        );
        // Bob is another account; a success clears his count.
        assert_eq!(check("bob", "wrong").await, (false, None));
        assert_eq!(check("bob@contoso.com", "bob-pw").await, (true, None));
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
