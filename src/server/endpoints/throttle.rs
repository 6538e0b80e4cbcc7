//! The I/O side of the failed-login throttle: the counts in this process (one
//! mutex-protected [`Throttle`], lockout ledger and record of wrong passwords, kept across
//! reloads) or in a store the instances share ([`super::shared_counts`]), the edge clock,
//! the sleep of a progressive delay and metrics (the HTTP shape of a refusal is in
//! [`super::auth`]). The rules are in [`crate::auth::throttle`].
//!
//! With `[throttle.shared]`, a store that cannot be reached is never a reason to check
//! more: each instance counts locally with `1 / instances` of every account's lockout
//! budget (plus the domain's own count, read before each check), says so once, and goes
//! back to the store when it answers again.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::shared_counts::{SharedCounts, StoreError};
use crate::auth::throttle::{
    lockout_rule, source_key, verdict, wrong_password_digest, LedgerRule, LockoutLedger,
    RecentWrongPasswords, Settled, Throttle, Verdict, WRONG_PASSWORDS_PER_ACCOUNT,
};
use crate::config::{Cidr, LockoutSettings, ThrottleSettings};
use crate::directory::{Account, GuardFuture, LoginGuard};
use crate::ops::metrics;

/// The one clock of the throttle: milliseconds since the process started (monotonic).
pub fn now_ms() -> u64 {
    static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);
    ORIGIN.elapsed().as_millis() as u64
}

/// How long a store that failed is left alone before a request tries it again.
const STORE_RETRY_MS: u64 = 1000;

/// How long the store's word that a source and an account have no failures is used for
/// correct logins answered from the verification cache: at most one round trip per second
/// for a client's burst, and a block made elsewhere reaches this instance within that time.
const CLEAN_MS: u64 = 1000;

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

/// An attempt the throttle let through, with what its outcome needs.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    /// The delay the source's own failures earned, waited out only when the credentials
    /// turn out wrong.
    pub on_failure: Duration,
    /// The same wrong password was given for this login within the window: answer 401
    /// without asking the domain, and count nothing.
    pub known_wrong: bool,
    /// The keyed digest of the password (Basic), recorded if it turns out wrong.
    digest: Option<[u8; 32]>,
    /// A success has something to clear.
    dirty: bool,
}

impl Admitted {
    fn plain(on_failure: Duration) -> Admitted {
        Admitted {
            on_failure,
            known_wrong: false,
            digest: None,
            dirty: true,
        }
    }
}

struct Inner {
    settings: ThrottleSettings,
    throttle: Throttle,
    ledger: LockoutLedger,
    wrong: RecentWrongPasswords,
}

/// The store, when configured, and whether it answers.
struct Shared {
    counts: SharedCounts,
    /// (source, account as typed) the store found without failures, and when.
    clean: Mutex<std::collections::HashMap<(IpAddr, String), u64>>,
    max_clean: usize,
    instances: u32,
    up: AtomicBool,
    /// While down: when a request may try it again.
    retry_at_ms: AtomicU64,
}

/// The process-wide throttle shared by every generation of the state.
pub struct AuthThrottle {
    inner: Mutex<Inner>,
    shared: Option<Shared>,
    /// The key of the wrong-password digests: the shared secret, or a random one.
    digest_key: ring::hmac::Key,
}

impl AuthThrottle {
    /// A throttle with the configured thresholds. The store (`[throttle.shared]`) is
    /// fixed for the life of the process; a reload that changes it says so.
    pub fn new(settings: &ThrottleSettings) -> AuthThrottle {
        let shared = settings
            .shared
            .as_ref()
            .and_then(|s| match SharedCounts::new(s) {
                Ok(counts) => Some(Shared {
                    counts,
                    clean: Mutex::new(std::collections::HashMap::new()),
                    max_clean: settings.limits.max_entries,
                    instances: s.instances,
                    up: AtomicBool::new(true),
                    retry_at_ms: AtomicU64::new(0),
                }),
                Err(e) => {
                    // Only a malformed URL gets here (check-config refuses it first):
                    // counting locally with the share of an instance is the safe side.
                    tracing::error!(error = %e, "shared throttle store unusable; counting locally with a share of each lockout budget");
                    None
                }
            });
        if let Some(s) = &settings.shared {
            metrics::throttle_store_up(true);
            tracing::info!(target: "auth", url = %s.url, instances = s.instances, "failed-login counts shared through the store");
        }
        let digest_key = match &settings.shared {
            Some(s) => ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &s.secret.0),
            None => {
                let rng = ring::rand::SystemRandom::new();
                ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
                    // The OS RNG does not fail on Linux; a fixed key would only make the
                    // digests guessable offline, and they never leave this process.
                    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"autodiscoverd")
                })
            }
        };
        let max = settings.limits.max_entries;
        AuthThrottle {
            inner: Mutex::new(Inner {
                settings: settings.clone(),
                throttle: Throttle::new(settings.limits.clone()),
                ledger: LockoutLedger::new(max),
                wrong: RecentWrongPasswords::new(max),
            }),
            shared,
            digest_key,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The counters stay usable after a panic elsewhere; they are only scores.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies reloaded settings; the counts survive.
    pub fn configure(&self, settings: &ThrottleSettings) {
        let mut inner = self.lock();
        if inner.settings.shared != settings.shared {
            tracing::warn!(
                "throttle.shared changed: the store in use stays until the service is restarted"
            );
        }
        if inner.throttle.config() != &settings.limits {
            inner.throttle.reconfigure(settings.limits.clone());
        }
        let shared = inner.settings.shared.clone();
        inner.settings = ThrottleSettings {
            shared,
            ..settings.clone()
        };
    }

    /// The store, unless it failed within the last second.
    fn store(&self) -> Option<&Shared> {
        let shared = self.shared.as_ref()?;
        if shared.up.load(Ordering::Relaxed)
            || now_ms() >= shared.retry_at_ms.load(Ordering::Relaxed)
        {
            return Some(shared);
        }
        None
    }

    /// Notes what a store call did (logging each change of state once) and gives its value,
    /// or `None`: count locally.
    fn observe<T>(
        &self,
        shared: &Shared,
        op: &'static str,
        result: Result<T, StoreError>,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                if !shared.up.swap(true, Ordering::Relaxed) {
                    metrics::throttle_store_up(true);
                    tracing::info!(target: "auth", "shared throttle store reachable again: failed logins are counted in the store");
                }
                Some(value)
            }
            Err(e) => {
                metrics::throttle_store_error(op);
                shared
                    .retry_at_ms
                    .store(now_ms() + STORE_RETRY_MS, Ordering::Relaxed);
                if shared.up.swap(false, Ordering::Relaxed) {
                    metrics::throttle_store_up(false);
                    tracing::warn!(target: "auth", error = %e, instances = shared.instances, "shared throttle store unreachable: counting failed logins locally with 1/{} of each account's lockout budget until it answers", shared.instances);
                } else {
                    tracing::debug!(target: "auth", error = %e, op, "shared throttle store call failed");
                }
                None
            }
        }
    }

    /// The address failures of `client` are counted against, and whether it is trusted.
    fn source(&self, client: IpAddr) -> (IpAddr, bool, ThrottleSettingsView) {
        let inner = self.lock();
        let trusted = inner
            .settings
            .trusted_sources
            .iter()
            .any(|c: &Cidr| c.contains(client));
        (
            source_key(client, inner.settings.ipv6_prefix),
            trusted,
            ThrottleSettingsView {
                enabled: inner.settings.enabled,
                window_ms: inner.settings.limits.window.as_millis() as u64,
            },
        )
    }

    /// Runs the read-only check script once against the store (for `check-config`): it
    /// proves the address, the credentials, TLS and the ACL rights the scripts need.
    /// `None` without a store.
    pub async fn probe_store(&self) -> Option<Result<(), String>> {
        let shared = self.shared.as_ref()?;
        let probe = IpAddr::from([0, 0, 0, 0]);
        Some(
            shared
                .counts
                .check(probe, "check-config", None, 1000)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        )
    }

    /// Whether the store said within the last second that `client` and `account` (the login
    /// as typed) have no failures: a correct login answered from the verification cache
    /// then needs no round trip. Wrong passwords never get here (they miss that cache).
    pub fn recently_clean(&self, client: IpAddr, account: &str) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let (source, _, view) = self.source(client);
        if !view.enabled {
            return false;
        }
        let key = (source, crate::auth::throttle::account_key(account));
        let now = now_ms();
        shared
            .clean
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied())
            .is_some_and(|at| now.saturating_sub(at) < CLEAN_MS)
    }

    fn note_clean(&self, shared: &Shared, source: IpAddr, account: &str) {
        let now = now_ms();
        if let Ok(mut m) = shared.clean.lock() {
            if m.len() >= shared.max_clean {
                m.retain(|_, at| now.saturating_sub(*at) < CLEAN_MS);
                if m.len() >= shared.max_clean {
                    m.clear();
                }
            }
            m.insert((source, crate::auth::throttle::account_key(account)), now);
        }
    }

    /// Asks whether `client` may try `account` (the login as typed) now, and waits out the
    /// progressive delay when there is one. `Err`: answer without checking the password.
    pub async fn admit(&self, client: IpAddr, account: &str) -> Result<(), Throttled> {
        let admitted = self.admit_deferred(client, account, None).await?;
        self.wait(client, admitted.on_failure).await;
        Ok(())
    }

    /// Like [`AuthThrottle::admit`], but the delay the source's own failures earned is
    /// returned instead of waited out: the caller waits only when the credentials turn out
    /// wrong, so that correct logins from an address others fail from (one NAT address for
    /// a whole site) are not slowed. An attacker gains nothing: every guess still waits
    /// before its answer. With the `password` (Basic), a wrong password given again for
    /// the same login within the window is recognised by its keyed digest.
    pub async fn admit_deferred(
        &self,
        client: IpAddr,
        account: &str,
        password: Option<&str>,
    ) -> Result<Admitted, Throttled> {
        let (source, trusted, view) = self.source(client);
        if !view.enabled {
            return Ok(Admitted::plain(Duration::ZERO));
        }
        let digest = password.map(|p| wrong_password_digest(&self.digest_key, account, p));
        let shared_reply = match self.store() {
            Some(shared) => {
                let reply = shared
                    .counts
                    .check(source, account, digest.as_ref(), view.window_ms)
                    .await;
                let reply = self.observe(shared, "check", reply);
                if let Some(r) = &reply {
                    let s = r.scores;
                    if !r.dirty && !r.known_wrong && s.source == 0.0 && s.account == 0.0 {
                        self.note_clean(shared, source, account);
                    }
                }
                reply
            }
            None => None,
        };
        let (decision, known_wrong, dirty) = {
            let inner = self.lock();
            let (scores, known_wrong, dirty) = match shared_reply {
                Some(r) => (r.scores, r.known_wrong, r.dirty),
                None => {
                    let now = now_ms();
                    let known = digest
                        .is_some_and(|d| inner.wrong.contains(account, &d, view.window_ms, now));
                    (inner.throttle.scores(source, account, now), known, true)
                }
            };
            (
                verdict(inner.throttle.config(), scores, trusted),
                known_wrong,
                dirty,
            )
        };
        match decision {
            Verdict::Proceed { delay, on_failure } => {
                self.wait(client, delay).await;
                Ok(Admitted {
                    on_failure,
                    known_wrong,
                    digest,
                    dirty,
                })
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
            via_store: AtomicBool::new(false),
            shared: AtomicBool::new(false),
        }
    }

    /// Records a failed verification (and the wrong password's digest, when admitted with
    /// one).
    pub async fn failed(&self, client: IpAddr, account: &str, admitted: Option<&Admitted>) {
        let (source, _, view) = self.source(client);
        if !view.enabled {
            return;
        }
        let digest = admitted.and_then(|a| a.digest);
        if let Some(shared) = self.store() {
            let result = shared
                .counts
                .failed(
                    source,
                    account,
                    digest.as_ref(),
                    view.window_ms,
                    WRONG_PASSWORDS_PER_ACCOUNT,
                )
                .await;
            if self.observe(shared, "failed", result).is_some() {
                return;
            }
        }
        let mut inner = self.lock();
        let now = now_ms();
        inner.throttle.failed(source, account, now);
        if let Some(d) = digest {
            inner.wrong.record(account, d, view.window_ms, now);
        }
    }

    /// Records a successful verification.
    pub async fn succeeded(&self, client: IpAddr, account: &str, admitted: Option<&Admitted>) {
        let (source, _, view) = self.source(client);
        if !view.enabled || admitted.is_some_and(|a| !a.dirty) {
            return;
        }
        if let Some(shared) = self.store() {
            let result = shared.counts.succeeded(source, account).await;
            if self.observe(shared, "succeeded", result).is_some() {
                return;
            }
        }
        let mut inner = self.lock();
        inner.throttle.succeeded(source, account);
        inner.wrong.clear(account);
    }

    /// Entries held per table (sources, pairs, accounts) in this process.
    pub fn tracked(&self) -> (usize, usize, usize) {
        self.lock().throttle.tracked()
    }
}

/// What one call needs of the settings, read under the lock once.
struct ThrottleSettingsView {
    enabled: bool,
    window_ms: u64,
}

/// Keeps this server's (or pool's) failed password checks of each directory account below
/// its domain's lockout threshold ([`LockoutLedger`]), for one request from `client`.
pub struct AccountGuard<'a> {
    throttle: &'a AuthThrottle,
    client: IpAddr,
    /// Set when the account was refused: the time until it may be tried again.
    refused: Mutex<Option<Duration>>,
    /// The admission was counted in the store, so its outcome goes there too.
    via_store: AtomicBool,
    /// An identical check in progress for another request answered this one's.
    shared: AtomicBool,
}

impl AccountGuard<'_> {
    /// `Some(retry_after)` when this request's account was refused without a check.
    pub fn refused(&self) -> Option<Duration> {
        self.refused.lock().ok().and_then(|r| *r)
    }

    /// True when this request's wrong password was found wrong by an identical check made
    /// for another request, which counted it: this one counts nothing more.
    pub fn shared_outcome(&self) -> bool {
        self.shared.load(Ordering::Relaxed)
    }

    /// The rule for `account`, if it is under a lockout policy, with the source key and
    /// how long a success makes it familiar.
    fn rule(&self, account: &Account) -> Option<(LedgerRule, IpAddr, u64)> {
        let inner = self.throttle.lock();
        if !inner.settings.enabled {
            return None;
        }
        let lockout: LockoutSettings = inner.settings.lockout;
        let threshold = lockout.threshold.or(account.lockout.map(|p| p.threshold))?;
        let (budget, reserve) = lockout_rule(threshold, lockout.margin)?;
        let window = account
            .lockout
            .map(|p| p.observation_window)
            .filter(|w| !w.is_zero())
            .unwrap_or(inner.throttle.config().window);
        let rule = LedgerRule {
            budget,
            reserve,
            window_ms: window.as_millis() as u64,
            domain: account.bad_passwords,
        };
        Some((
            rule,
            source_key(self.client, inner.settings.ipv6_prefix),
            inner.settings.familiar.as_millis() as u64,
        ))
    }

    async fn admit_account(&self, account: &Account) -> bool {
        let Some((rule, source, _)) = self.rule(account) else {
            return true;
        };
        let mut verdict = None;
        if let Some(shared) = self.throttle.store() {
            let result = shared.counts.admit(&account.key, source, &rule).await;
            if let Some(v) = self.throttle.observe(shared, "admit", result) {
                self.via_store.store(true, Ordering::Relaxed);
                verdict = Some(v);
            }
        }
        let verdict = match verdict {
            Some(v) => v,
            None => {
                let local_rule = match &self.throttle.shared {
                    // The store is down: this instance's share of the budget.
                    Some(shared) => LedgerRule {
                        budget: (rule.budget / shared.instances).max(1),
                        reserve: rule.reserve / shared.instances,
                        ..rule
                    },
                    None => rule,
                };
                self.throttle
                    .lock()
                    .ledger
                    .admit(&account.key, source, &local_rule, now_ms())
            }
        };
        match verdict {
            Ok(()) => true,
            Err(retry_after) => {
                metrics::throttled("lockout");
                let domain_count = account.bad_passwords.map(|d| d.bad_passwords);
                tracing::info!(target: "auth", client = %self.client, account = %account.key, domain_bad_passwords = domain_count, retry_after_secs = retry_after_secs(retry_after), "authentication refused: the account's lockout budget here is used up");
                if let Ok(mut r) = self.refused.lock() {
                    *r = Some(retry_after);
                }
                false
            }
        }
    }

    async fn settle_account(&self, account: &Account, outcome: Option<bool>) {
        let Some((_, source, familiar_ms)) = self.rule(account) else {
            return;
        };
        let outcome = Settled::from_outcome(outcome);
        if self.via_store.load(Ordering::Relaxed) {
            if let Some(shared) = &self.throttle.shared {
                let result = shared
                    .counts
                    .settle(&account.key, source, outcome, familiar_ms)
                    .await;
                // A lost outcome leaves the attempt counted as a failure: the safe side.
                self.throttle.observe(shared, "settle", result);
                return;
            }
        }
        self.throttle
            .lock()
            .ledger
            .settle(&account.key, source, outcome, now_ms(), familiar_ms);
    }
}

impl LoginGuard for AccountGuard<'_> {
    fn admit<'a>(&'a self, account: &'a Account) -> GuardFuture<'a, bool> {
        Box::pin(self.admit_account(account))
    }

    fn shared_outcome(&self) {
        self.shared.store(true, Ordering::Relaxed);
    }

    fn settle<'a>(&'a self, account: &'a Account, outcome: Option<bool>) -> GuardFuture<'a, ()> {
        Box::pin(self.settle_account(account, outcome))
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
            t.failed(ip, "alice", None).await;
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
            t.failed(ip, "alice", None).await;
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
