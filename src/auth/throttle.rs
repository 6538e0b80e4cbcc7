//! Failed-authentication throttling (sans-IO: `now` is a parameter, no clock, no I/O).
//!
//! Three counters, each a failure score that decays linearly over `window`:
//! - per client address: a source that fails too often is delayed, then refused with 429
//!   and `Retry-After`, whatever account it tries (password spraying from one host);
//! - per (account, client address): one source cannot keep guessing one account; past the
//!   threshold its attempts are refused with 401 + `Retry-After` *without* checking the
//!   password (no oracle), while the real user on another address is unaffected;
//! - per account: failures from many sources slow every attempt on that account, but only
//!   up to `account_max_delay`, so an attacker can never lock the real user out.
//!
//! Memory is bounded: each table holds at most `max_entries`; when full, the entries with
//! the lowest score are dropped first.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

/// Thresholds; counts are failures within `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub window: Duration,
    /// Source failures after which each attempt from it is delayed.
    pub source_delay_after: u32,
    /// Source failures after which it gets 429.
    pub source_block_after: u32,
    /// Failures of one source on one account after which that pair is refused.
    pub pair_block_after: u32,
    /// Account failures (from all sources) after which attempts on it are delayed.
    pub account_delay_after: u32,
    /// Largest delay caused by a source's own failures.
    pub max_delay: Duration,
    /// Largest delay anyone's failures can add to a login of an account.
    pub account_max_delay: Duration,
    /// Entries kept per table.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            window: Duration::from_secs(15 * 60),
            source_delay_after: 5,
            source_block_after: 30,
            pair_block_after: 5,
            account_delay_after: 10,
            max_delay: Duration::from_secs(4),
            account_max_delay: Duration::from_secs(1),
            max_entries: 100_000,
        }
    }
}

/// What to do with an authentication attempt before checking the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the credentials after waiting `delay` (the account is under a distributed
    /// attack), and wait `on_failure` more before answering when they are wrong (the
    /// source's own failures: a correct login from a busy NAT address is not slowed).
    /// Both are zero when nothing is suspicious.
    Proceed {
        delay: Duration,
        on_failure: Duration,
    },
    /// Refuse with 429 and `Retry-After` (the source is blocked).
    TooManyRequests { retry_after: Duration },
    /// Refuse with the usual 401 plus `Retry-After`, without checking the password.
    Refuse { retry_after: Duration },
}

#[derive(Debug, Clone, Copy)]
struct Score {
    /// Failures, decayed to `at`.
    value: f64,
    at_ms: u64,
}

struct Table<K> {
    entries: HashMap<K, Score>,
    max_entries: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(max_entries: usize) -> Self {
        Table {
            entries: HashMap::new(),
            max_entries,
        }
    }

    fn decayed(score: Score, now_ms: u64, window_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(score.at_ms) as f64;
        // Linear decay: `threshold` failures fade out completely over one window per failure.
        let per_ms = 1.0 / window_ms.max(1) as f64;
        (score.value - elapsed * per_ms * score.value.max(1.0)).max(0.0)
    }

    fn get(&self, key: &K, now_ms: u64, window_ms: u64) -> f64 {
        self.entries
            .get(key)
            .map(|s| Self::decayed(*s, now_ms, window_ms))
            .unwrap_or(0.0)
    }

    fn add(&mut self, key: &K, now_ms: u64, window_ms: u64) {
        let value = self.get(key, now_ms, window_ms) + 1.0;
        if !self.entries.contains_key(key) && self.entries.len() >= self.max_entries {
            self.evict(now_ms, window_ms);
        }
        self.entries.insert(
            key.clone(),
            Score {
                value,
                at_ms: now_ms,
            },
        );
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops expired entries, then the weakest quarter if still full.
    fn evict(&mut self, now_ms: u64, window_ms: u64) {
        self.entries
            .retain(|_, s| Self::decayed(*s, now_ms, window_ms) > 0.0);
        if self.entries.len() < self.max_entries {
            return;
        }
        let mut scores: Vec<(K, f64)> = self
            .entries
            .iter()
            .map(|(k, s)| (k.clone(), Self::decayed(*s, now_ms, window_ms)))
            .collect();
        scores.sort_by(|a, b| a.1.total_cmp(&b.1));
        let drop = (self.max_entries / 4).max(1);
        for (k, _) in scores.into_iter().take(drop) {
            self.entries.remove(&k);
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The throttle state. Not synchronised: wrap it in a mutex at the edge.
pub struct Throttle {
    config: ThrottleConfig,
    sources: Table<IpAddr>,
    pairs: Table<(String, IpAddr)>,
    accounts: Table<String>,
}

fn account_key(account: &str) -> String {
    account.trim().to_lowercase()
}

fn backoff(base: Duration, over: f64, cap: Duration) -> Duration {
    if over <= 0.0 {
        return Duration::ZERO;
    }
    let factor = 2f64.powf((over - 1.0).min(16.0));
    let delay = base.mul_f64(factor);
    delay.min(cap)
}

impl Throttle {
    /// A throttle with the given thresholds.
    pub fn new(config: ThrottleConfig) -> Throttle {
        let n = config.max_entries;
        Throttle {
            config,
            sources: Table::new(n),
            pairs: Table::new(n),
            accounts: Table::new(n),
        }
    }

    /// Applies new thresholds (a configuration reload) and keeps the counts.
    pub fn reconfigure(&mut self, config: ThrottleConfig) {
        self.sources.max_entries = config.max_entries;
        self.pairs.max_entries = config.max_entries;
        self.accounts.max_entries = config.max_entries;
        self.config = config;
    }

    /// The thresholds in force.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    fn window_ms(&self) -> u64 {
        self.config.window.as_millis() as u64
    }

    /// Decides about an attempt of `account` (the login as typed) from `source` at `now_ms`.
    pub fn check(&self, source: IpAddr, account: &str, now_ms: u64) -> Verdict {
        let w = self.window_ms();
        let account = account_key(account);
        let retry_after = self.config.window / 4;
        // Scores decay continuously; the limits count whole failures, so that "blocked after
        // N" holds exactly for failures in quick succession.
        let source_failures = self.sources.get(&source, now_ms, w);
        if source_failures.round() >= f64::from(self.config.source_block_after) {
            return Verdict::TooManyRequests { retry_after };
        }
        let pair_failures = self.pairs.get(&(account.clone(), source), now_ms, w);
        if pair_failures.round() >= f64::from(self.config.pair_block_after) {
            return Verdict::Refuse { retry_after };
        }
        let source_delay = backoff(
            Duration::from_millis(250),
            source_failures - f64::from(self.config.source_delay_after) + 1.0,
            self.config.max_delay,
        );
        let account_delay = backoff(
            Duration::from_millis(100),
            self.accounts.get(&account, now_ms, w) - f64::from(self.config.account_delay_after)
                + 1.0,
            self.config.account_max_delay,
        );
        Verdict::Proceed {
            delay: account_delay,
            on_failure: source_delay.saturating_sub(account_delay),
        }
    }

    /// Records a failed attempt.
    pub fn failed(&mut self, source: IpAddr, account: &str, now_ms: u64) {
        let w = self.window_ms();
        let account = account_key(account);
        self.sources.add(&source, now_ms, w);
        self.pairs.add(&(account.clone(), source), now_ms, w);
        self.accounts.add(&account, now_ms, w);
    }

    /// Records a successful login: that source's record against the account is cleared.
    pub fn succeeded(&mut self, source: IpAddr, account: &str) {
        self.pairs.clear(&(account_key(account), source));
    }

    /// Entries held (for tests and metrics).
    pub fn tracked(&self) -> (usize, usize, usize) {
        (self.sources.len(), self.pairs.len(), self.accounts.len())
    }
}

/// Failed password checks this server caused on each directory account, kept below the
/// domain's account lockout threshold so that this server never locks an account.
///
/// It counts the way a domain controller counts `badPwdCount` (MS-SAMR, account lockout): per
/// account, whatever spelling of the login was used; back to zero after a successful
/// logon or once the observation window (`lockOutObservationWindow`) has passed since the
/// last failure. An attempt is counted when it is admitted, before the directory is asked
/// (concurrent attempts cannot overshoot), and [`LockoutLedger::settle`] keeps, clears or
/// takes it back once the outcome is known.
pub struct LockoutLedger {
    entries: HashMap<String, Strikes>,
    max_entries: usize,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last_ms: u64,
}

/// How many failures an account may collect here: the domain's threshold minus a margin
/// left for the owner's own mistakes elsewhere, at least one. `None`: the domain has no
/// lockout policy (threshold 0), so there is nothing to stay below.
pub fn lockout_budget(threshold: u32, margin: u32) -> Option<u32> {
    (threshold > 0).then(|| threshold.saturating_sub(margin).max(1))
}

impl LockoutLedger {
    /// An empty ledger holding at most `max_entries` accounts.
    pub fn new(max_entries: usize) -> LockoutLedger {
        LockoutLedger {
            entries: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    fn current(&self, account: &str, window_ms: u64, now_ms: u64) -> Option<Strikes> {
        self.entries
            .get(account)
            .copied()
            .filter(|s| now_ms.saturating_sub(s.last_ms) < window_ms)
    }

    /// Admits a password check of `account` and counts it as a failure until settled, or
    /// refuses it for the time until the window after its last failure has passed.
    pub fn admit(
        &mut self,
        account: &str,
        budget: u32,
        window_ms: u64,
        now_ms: u64,
    ) -> Result<(), Duration> {
        let strikes = self.current(account, window_ms, now_ms);
        if let Some(s) = strikes.filter(|s| s.failures >= budget) {
            let until = s.last_ms.saturating_add(window_ms);
            return Err(Duration::from_millis(until.saturating_sub(now_ms).max(1)));
        }
        if strikes.is_none() && self.entries.len() >= self.max_entries {
            self.entries
                .retain(|_, s| now_ms.saturating_sub(s.last_ms) < window_ms);
            if self.entries.len() >= self.max_entries {
                // Forgetting the oldest record errs towards checking a password, which
                // the domain's own threshold still bounds.
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, s)| s.last_ms)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.entries.remove(&k);
                }
            }
        }
        let failures = strikes.map_or(0, |s| s.failures) + 1;
        self.entries.insert(
            account.to_string(),
            Strikes {
                failures,
                last_ms: now_ms,
            },
        );
        Ok(())
    }

    /// The outcome of an admitted check: `Some(true)` the password was right (the domain
    /// resets its count too), `Some(false)` wrong (the failure stays), `None` the directory
    /// could not check it (the attempt is taken back).
    pub fn settle(&mut self, account: &str, outcome: Option<bool>) {
        match outcome {
            Some(true) => {
                self.entries.remove(account);
            }
            Some(false) => {}
            None => {
                if let Some(s) = self.entries.get_mut(account) {
                    s.failures = s.failures.saturating_sub(1);
                    if s.failures == 0 {
                        self.entries.remove(account);
                    }
                }
            }
        }
    }

    /// Failures currently held for `account`.
    pub fn failures(&self, account: &str, window_ms: u64, now_ms: u64) -> u32 {
        self.current(account, window_ms, now_ms)
            .map_or(0, |s| s.failures)
    }

    /// Accounts held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no account is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 30 * 60 * 1000;

    #[test]
    fn the_budget_stays_below_the_domain_threshold() {
        assert_eq!(lockout_budget(5, 2), Some(3));
        assert_eq!(lockout_budget(10, 2), Some(8));
        assert_eq!(lockout_budget(2, 2), Some(1));
        assert_eq!(lockout_budget(1, 0), Some(1));
        assert_eq!(lockout_budget(0, 2), None);
    }

    #[test]
    fn an_account_is_refused_once_its_budget_is_spent_until_the_window_passes() {
        let mut l = LockoutLedger::new(100);
        for i in 0..3 {
            assert_eq!(l.admit("cn=alice", 3, WINDOW, i * 1000), Ok(()));
            l.settle("cn=alice", Some(false));
        }
        assert_eq!(l.failures("cn=alice", WINDOW, 2000), 3);
        // Refused for the rest of the window after the last failure (at 2 s).
        assert_eq!(
            l.admit("cn=alice", 3, WINDOW, 62_000),
            Err(Duration::from_millis(WINDOW - 60_000))
        );
        assert_eq!(
            l.failures("cn=alice", WINDOW, 62_000),
            3,
            "refusals do not count"
        );
        // Another account is unaffected; after the window the owner may try again.
        assert_eq!(l.admit("cn=bob", 3, WINDOW, 62_000), Ok(()));
        assert_eq!(l.admit("cn=alice", 3, WINDOW, 2000 + WINDOW), Ok(()));
    }

    #[test]
    fn a_success_clears_and_an_unchecked_attempt_is_taken_back() {
        let mut l = LockoutLedger::new(100);
        for _ in 0..2 {
            l.admit("a", 3, WINDOW, 0).unwrap();
            l.settle("a", Some(false));
        }
        l.admit("a", 3, WINDOW, 0).unwrap();
        l.settle("a", None);
        assert_eq!(l.failures("a", WINDOW, 0), 2);
        l.admit("a", 3, WINDOW, 0).unwrap();
        l.settle("a", Some(true));
        assert_eq!(l.failures("a", WINDOW, 0), 0);
        assert!(l.is_empty());
    }

    #[test]
    fn concurrent_attempts_cannot_overshoot_the_budget() {
        let mut l = LockoutLedger::new(100);
        // Five attempts admitted before any outcome is known: only the budget gets through.
        let admitted = (0..5)
            .filter(|_| l.admit("a", 3, WINDOW, 0).is_ok())
            .count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn the_ledger_stays_bounded() {
        let mut l = LockoutLedger::new(10);
        for i in 0..1000u64 {
            l.admit(&format!("u{i}"), 3, WINDOW, i).unwrap();
        }
        assert!(l.len() <= 10);
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn proceeds(v: Verdict) -> bool {
        matches!(v, Verdict::Proceed { .. })
    }

    #[test]
    fn a_single_source_spraying_many_accounts_is_blocked() {
        let mut t = Throttle::new(ThrottleConfig::default());
        let mut blocked_at = None;
        for i in 0..100u32 {
            let account = format!("user{i}@contoso.com");
            match t.check(ip(1), &account, 1000) {
                Verdict::TooManyRequests { .. } => {
                    blocked_at = Some(i);
                    break;
                }
                _ => t.failed(ip(1), &account, 1000),
            }
        }
        assert_eq!(blocked_at, Some(30));
        // Another source is not affected.
        assert_eq!(
            t.check(ip(2), "user0@contoso.com", 1000),
            Verdict::Proceed {
                delay: Duration::ZERO,
                on_failure: Duration::ZERO
            }
        );
    }

    #[test]
    fn one_source_guessing_one_account_is_refused_without_checking() {
        let mut t = Throttle::new(ThrottleConfig::default());
        for _ in 0..5 {
            assert!(proceeds(t.check(ip(1), "alice@contoso.com", 0)));
            t.failed(ip(1), "alice@contoso.com", 0);
        }
        assert!(matches!(
            t.check(ip(1), "ALICE@contoso.com", 0),
            Verdict::Refuse { .. }
        ));
    }

    #[test]
    fn a_distributed_attack_on_one_account_delays_the_real_user_only_up_to_the_bound() {
        let config = ThrottleConfig::default();
        let mut t = Throttle::new(config.clone());
        for i in 0..1000 {
            t.failed(ip(100 + i), "alice@contoso.com", 0);
        }
        match t.check(ip(1), "alice@contoso.com", 0) {
            Verdict::Proceed { delay, .. } => assert_eq!(delay, config.account_max_delay),
            other => panic!("real user must still be checked: {other:?}"),
        }
        // Other accounts are untouched.
        assert_eq!(
            t.check(ip(1), "bob@contoso.com", 0),
            Verdict::Proceed {
                delay: Duration::ZERO,
                on_failure: Duration::ZERO
            }
        );
    }

    #[test]
    fn delays_grow_progressively_and_are_capped() {
        let config = ThrottleConfig::default();
        let mut t = Throttle::new(config.clone());
        let mut last = Duration::ZERO;
        for i in 0..29u32 {
            t.failed(ip(1), &format!("u{i}"), 0);
            if let Verdict::Proceed { delay, on_failure } = t.check(ip(1), "someone-new", 0) {
                assert_eq!(
                    delay,
                    Duration::ZERO,
                    "a source's failures never delay a check"
                );
                let delay = on_failure;
                assert!(delay >= last);
                assert!(delay <= config.max_delay);
                last = delay;
            }
        }
        assert_eq!(last, config.max_delay);
    }

    #[test]
    fn failures_decay_over_the_window() {
        let config = ThrottleConfig::default();
        let mut t = Throttle::new(config.clone());
        for _ in 0..5 {
            t.failed(ip(1), "alice@contoso.com", 0);
        }
        assert!(matches!(
            t.check(ip(1), "alice@contoso.com", 0),
            Verdict::Refuse { .. }
        ));
        let later = config.window.as_millis() as u64 + 1;
        assert!(proceeds(t.check(ip(1), "alice@contoso.com", later)));
    }

    #[test]
    fn success_clears_the_pair_record() {
        let mut t = Throttle::new(ThrottleConfig::default());
        for _ in 0..4 {
            t.failed(ip(1), "alice@contoso.com", 0);
        }
        t.succeeded(ip(1), "alice@contoso.com");
        t.failed(ip(1), "alice@contoso.com", 0);
        assert!(proceeds(t.check(ip(1), "alice@contoso.com", 0)));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut t = Throttle::new(ThrottleConfig {
            max_entries: 1000,
            ..ThrottleConfig::default()
        });
        for i in 0..50_000u32 {
            t.failed(ip(i), &format!("user{i}"), u64::from(i));
        }
        let (s, p, a) = t.tracked();
        assert!(s <= 1000 && p <= 1000 && a <= 1000, "{s} {p} {a}");
    }
}
