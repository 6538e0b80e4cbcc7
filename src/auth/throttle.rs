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

/// A failure score `value` recorded at `at_ms`, decayed to `now_ms`: linear, so that any
/// score fades out completely one `window_ms` after its last failure. The shared store's
/// scripts apply the same formula.
pub fn decayed_score(value: f64, at_ms: u64, now_ms: u64, window_ms: u64) -> f64 {
    let elapsed = now_ms.saturating_sub(at_ms) as f64;
    let per_ms = 1.0 / window_ms.max(1) as f64;
    (value - elapsed * per_ms * value.max(1.0)).max(0.0)
}

/// The decayed failure scores an attempt is judged by.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    /// Failures from the attempt's source (its address, or its IPv6 prefix).
    pub source: f64,
    /// Failures of this source on this account.
    pub pair: f64,
    /// Failures on this account from everywhere.
    pub account: f64,
}

/// The verdict on an attempt with these `scores`. A `trusted` source (a partner's known
/// egress) is never delayed or blocked for its own failures as a whole; its failures on
/// one account, and the account's, still count.
pub fn verdict(config: &ThrottleConfig, scores: Scores, trusted: bool) -> Verdict {
    let retry_after = config.window / 4;
    // Scores decay continuously; the limits count whole failures, so that "blocked after
    // N" holds exactly for failures in quick succession.
    if !trusted && scores.source.round() >= f64::from(config.source_block_after) {
        return Verdict::TooManyRequests { retry_after };
    }
    if scores.pair.round() >= f64::from(config.pair_block_after) {
        return Verdict::Refuse { retry_after };
    }
    let source_delay = if trusted {
        Duration::ZERO
    } else {
        backoff(
            Duration::from_millis(250),
            scores.source - f64::from(config.source_delay_after) + 1.0,
            config.max_delay,
        )
    };
    let account_delay = backoff(
        Duration::from_millis(100),
        scores.account - f64::from(config.account_delay_after) + 1.0,
        config.account_max_delay,
    );
    Verdict::Proceed {
        delay: account_delay,
        on_failure: source_delay.saturating_sub(account_delay),
    }
}

/// The address failures are counted against: IPv4 addresses as they are, IPv6 addresses
/// by their first `v6_prefix` bits (a host holds a whole /64 and can pick any address in
/// it); IPv4-mapped IPv6 counts as IPv4.
pub fn source_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(v6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
}

/// The key of an account in every counter: the login as typed, trimmed and lower-case.
pub fn account_key(account: &str) -> String {
    account.trim().to_lowercase()
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
        decayed_score(score.value, score.at_ms, now_ms, window_ms)
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

    /// The decayed scores of an attempt of `account` (the login as typed) from `source`.
    pub fn scores(&self, source: IpAddr, account: &str, now_ms: u64) -> Scores {
        let w = self.window_ms();
        let account = account_key(account);
        Scores {
            source: self.sources.get(&source, now_ms, w),
            pair: self.pairs.get(&(account.clone(), source), now_ms, w),
            account: self.accounts.get(&account, now_ms, w),
        }
    }

    /// Decides about an attempt of `account` (the login as typed) from `source` at `now_ms`.
    pub fn check(&self, source: IpAddr, account: &str, now_ms: u64) -> Verdict {
        verdict(&self.config, self.scores(source, account, now_ms), false)
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

/// Failed password checks this server (or the pool of servers sharing a store) caused on
/// each directory account, kept below the domain's account lockout threshold so that this
/// server never locks an account.
///
/// It counts the way a domain controller counts `badPwdCount` (MS-SAMR, account lockout): per
/// account, whatever spelling of the login was used; back to zero after a successful
/// logon or once the observation window (`lockOutObservationWindow`) has passed since the
/// last failure. An attempt is counted when it is admitted, before the directory is asked
/// (concurrent attempts cannot overshoot), and [`LockoutLedger::settle`] keeps, clears or
/// takes it back once the outcome is known. The rules are [`judge`]'s; the shared store's
/// scripts apply the same ones.
pub struct LockoutLedger {
    entries: HashMap<String, Strikes>,
    /// (account, source) → when the familiarity ends.
    familiar: HashMap<(String, IpAddr), u64>,
    max_entries: usize,
}

/// An account's record in the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Strikes {
    /// Failures within the window, counting checks still in progress.
    pub failures: u32,
    /// Checks admitted and not settled yet (the domain has not counted them yet).
    pub pending: u32,
    /// When the last check was admitted.
    pub last_ms: u64,
}

/// A check in progress longer than this is taken to have ended (a crashed instance
/// cannot hold an account's pending count forever); directory calls time out far sooner.
pub const PENDING_EXPIRY_MS: u64 = 120_000;

/// How an account may be checked: its share of the domain's lockout threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerRule {
    /// Failures any source may cause within the window: threshold − margin, at least 1.
    pub budget: u32,
    /// Further failures left to the account's familiar locations only, so that a spray
    /// from elsewhere cannot refuse the owner; budget + reserve stays below the threshold.
    pub reserve: u32,
    /// The domain's observation window.
    pub window_ms: u64,
    /// The domain's own count of recent bad passwords, when it was read.
    pub domain: Option<DomainCount>,
}

/// The domain's own record of recent bad passwords of an account (`badPwdCount` at the
/// PDC emulator, within the observation window; a locked account counts as full). It
/// includes failures from everywhere: workstations, phones, other servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainCount {
    pub bad_passwords: u32,
    /// Until the domain forgets them (the window after the last bad password).
    pub retry_after_ms: u64,
}

/// The budget and reserve for a domain's `threshold` and this server's `margin`. `None`:
/// the domain has no lockout policy (threshold 0), so there is nothing to stay below.
pub fn lockout_rule(threshold: u32, margin: u32) -> Option<(u32, u32)> {
    let budget = lockout_budget(threshold, margin)?;
    Some((budget, threshold.saturating_sub(1).saturating_sub(budget)))
}

/// How many failures an account may collect here from anywhere: the domain's threshold
/// minus a margin left for the owner's own mistakes elsewhere, at least one.
pub fn lockout_budget(threshold: u32, margin: u32) -> Option<u32> {
    (threshold > 0).then(|| threshold.saturating_sub(margin).max(1))
}

/// May a password check of an account with record `strikes` (current: within the window,
/// pending not expired) go ahead, from a `familiar` location or not? `Err`: refused for
/// this long. Familiar locations may use the reserve too; the domain's own count, with the
/// checks in progress it has not seen yet, must stay below the same limit.
pub fn judge(
    strikes: Strikes,
    familiar: bool,
    rule: &LedgerRule,
    now_ms: u64,
) -> Result<(), Duration> {
    let limit = rule.budget + if familiar { rule.reserve } else { 0 };
    if strikes.failures >= limit {
        let until = strikes.last_ms.saturating_add(rule.window_ms);
        return Err(Duration::from_millis(until.saturating_sub(now_ms).max(1)));
    }
    if let Some(domain) = rule.domain {
        if domain.bad_passwords.saturating_add(strikes.pending) >= limit {
            return Err(Duration::from_millis(domain.retry_after_ms.max(1)));
        }
    }
    Ok(())
}

/// The outcome of a settled check, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The password was right: the domain resets its count, and so does the ledger.
    Right,
    /// Wrong: the failure stays.
    Wrong,
    /// The directory could not check it: the attempt is taken back.
    Unchecked,
}

impl Settled {
    /// From the `Option<bool>` a directory check ends with.
    pub fn from_outcome(outcome: Option<bool>) -> Settled {
        match outcome {
            Some(true) => Settled::Right,
            Some(false) => Settled::Wrong,
            None => Settled::Unchecked,
        }
    }
}

impl LockoutLedger {
    /// An empty ledger holding at most `max_entries` accounts.
    pub fn new(max_entries: usize) -> LockoutLedger {
        LockoutLedger {
            entries: HashMap::new(),
            familiar: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    fn current(&self, account: &str, window_ms: u64, now_ms: u64) -> Strikes {
        let Some(mut s) = self
            .entries
            .get(account)
            .copied()
            .filter(|s| now_ms.saturating_sub(s.last_ms) < window_ms)
        else {
            return Strikes::default();
        };
        if now_ms.saturating_sub(s.last_ms) >= PENDING_EXPIRY_MS {
            s.pending = 0;
        }
        s
    }

    /// Whether `source` logged in to `account` successfully within the familiar period.
    pub fn is_familiar(&self, account: &str, source: IpAddr, now_ms: u64) -> bool {
        self.familiar
            .get(&(account.to_string(), source))
            .is_some_and(|until| *until > now_ms)
    }

    /// Admits a password check of `account` from `source` and counts it as a failure until
    /// settled, or refuses it for the time [`judge`] says.
    pub fn admit(
        &mut self,
        account: &str,
        source: IpAddr,
        rule: &LedgerRule,
        now_ms: u64,
    ) -> Result<(), Duration> {
        let strikes = self.current(account, rule.window_ms, now_ms);
        judge(
            strikes,
            self.is_familiar(account, source, now_ms),
            rule,
            now_ms,
        )?;
        if !self.entries.contains_key(account) && self.entries.len() >= self.max_entries {
            self.entries
                .retain(|_, s| now_ms.saturating_sub(s.last_ms) < rule.window_ms);
            if self.entries.len() >= self.max_entries {
                // Forgetting the oldest record errs towards checking a password, which
                // the domain's own threshold (and its count, when read) still bounds.
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
        self.entries.insert(
            account.to_string(),
            Strikes {
                failures: strikes.failures + 1,
                pending: strikes.pending + 1,
                last_ms: now_ms,
            },
        );
        Ok(())
    }

    /// The outcome of an admitted check. A right password also makes `source` familiar
    /// for `account` for `familiar_ms`.
    pub fn settle(
        &mut self,
        account: &str,
        source: IpAddr,
        outcome: Settled,
        now_ms: u64,
        familiar_ms: u64,
    ) {
        match outcome {
            Settled::Right => {
                self.entries.remove(account);
                if familiar_ms == 0 {
                    return;
                }
                if self.familiar.len() >= self.max_entries {
                    self.familiar.retain(|_, until| *until > now_ms);
                    if self.familiar.len() >= self.max_entries {
                        let oldest = self
                            .familiar
                            .iter()
                            .min_by_key(|(_, until)| **until)
                            .map(|(k, _)| k.clone());
                        if let Some(k) = oldest {
                            self.familiar.remove(&k);
                        }
                    }
                }
                self.familiar.insert(
                    (account.to_string(), source),
                    now_ms.saturating_add(familiar_ms),
                );
            }
            Settled::Wrong | Settled::Unchecked => {
                if let Some(s) = self.entries.get_mut(account) {
                    s.pending = s.pending.saturating_sub(1);
                    if outcome == Settled::Unchecked {
                        s.failures = s.failures.saturating_sub(1);
                        if s.failures == 0 {
                            self.entries.remove(account);
                        }
                    }
                }
            }
        }
    }

    /// Failures currently held for `account`.
    pub fn failures(&self, account: &str, window_ms: u64, now_ms: u64) -> u32 {
        self.current(account, window_ms, now_ms).failures
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

/// Wrong passwords seen recently, as keyed digests ([`wrong_password_digest`]), never the
/// password: the same wrong password again (a phone retrying an old password after a
/// change) is answered 401 without asking the domain and counts once.
pub struct RecentWrongPasswords {
    /// Account (login as typed, [`account_key`]) → (digest, when seen).
    entries: HashMap<String, Vec<([u8; 32], u64)>>,
    max_entries: usize,
}

/// Distinct wrong passwords remembered per account; more are a guesser, not a phone.
pub const WRONG_PASSWORDS_PER_ACCOUNT: usize = 8;

/// A keyed, non-reversible digest of a wrong password for `login` (HMAC-SHA-256 with a
/// secret the instances share; length-prefixed so that the login and password cannot
/// trade characters).
pub fn wrong_password_digest(key: &ring::hmac::Key, login: &str, password: &str) -> [u8; 32] {
    credentials_digest(key, &account_key(login), password)
}

/// HMAC-SHA-256 of a login and a password under `key`, the login length-prefixed so that
/// ("ab", "c") and ("a", "bc") differ: what remembers credentials without keeping them.
pub fn credentials_digest(key: &ring::hmac::Key, login: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(&(login.len() as u64).to_be_bytes());
    ctx.update(login.as_bytes());
    ctx.update(password.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

impl RecentWrongPasswords {
    /// An empty record of at most `max_entries` accounts.
    pub fn new(max_entries: usize) -> RecentWrongPasswords {
        RecentWrongPasswords {
            entries: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    /// Whether `digest` was recorded for `account` within `window_ms`.
    pub fn contains(&self, account: &str, digest: &[u8; 32], window_ms: u64, now_ms: u64) -> bool {
        self.entries.get(&account_key(account)).is_some_and(|list| {
            list.iter()
                .any(|(d, at)| d == digest && now_ms.saturating_sub(*at) < window_ms)
        })
    }

    /// Records a wrong password.
    pub fn record(&mut self, account: &str, digest: [u8; 32], window_ms: u64, now_ms: u64) {
        let key = account_key(account);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_entries {
            self.entries.retain(|_, list| {
                list.iter()
                    .any(|(_, at)| now_ms.saturating_sub(*at) < window_ms)
            });
            if self.entries.len() >= self.max_entries {
                // Forgetting errs towards asking the domain, which the ledger still bounds.
                if let Some(k) = self.entries.keys().next().cloned() {
                    self.entries.remove(&k);
                }
            }
        }
        let list = self.entries.entry(key).or_default();
        list.retain(|(d, at)| d != &digest && now_ms.saturating_sub(*at) < window_ms);
        if list.len() >= WRONG_PASSWORDS_PER_ACCOUNT {
            list.remove(0);
        }
        list.push((digest, now_ms));
    }

    /// Forgets an account's wrong passwords once it logs in: its password may just have
    /// been changed to one of them.
    pub fn clear(&mut self, account: &str) {
        self.entries.remove(&account_key(account));
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
        // The reserve of familiar locations takes the total to one below the threshold.
        assert_eq!(lockout_rule(5, 2), Some((3, 1)));
        assert_eq!(lockout_rule(10, 3), Some((7, 2)));
        assert_eq!(lockout_rule(5, 0), Some((5, 0)));
        assert_eq!(lockout_rule(2, 2), Some((1, 0)));
        assert_eq!(lockout_rule(0, 2), None);
    }

    fn rule(budget: u32, reserve: u32) -> LedgerRule {
        LedgerRule {
            budget,
            reserve,
            window_ms: WINDOW,
            domain: None,
        }
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9));

    fn fail(l: &mut LockoutLedger, account: &str, source: IpAddr, r: &LedgerRule, at: u64) {
        l.admit(account, source, r, at).unwrap();
        l.settle(account, source, Settled::Wrong, at, DAY);
    }

    const DAY: u64 = 24 * 3600 * 1000;

    #[test]
    fn an_account_is_refused_once_its_budget_is_spent_until_the_window_passes() {
        let mut l = LockoutLedger::new(100);
        let r = rule(3, 0);
        for i in 0..3 {
            fail(&mut l, "cn=alice", AWAY, &r, i * 1000);
        }
        assert_eq!(l.failures("cn=alice", WINDOW, 2000), 3);
        // Refused for the rest of the window after the last failure (at 2 s).
        assert_eq!(
            l.admit("cn=alice", AWAY, &r, 62_000),
            Err(Duration::from_millis(WINDOW - 60_000))
        );
        assert_eq!(
            l.failures("cn=alice", WINDOW, 62_000),
            3,
            "refusals do not count"
        );
        // Another account is unaffected; after the window the owner may try again.
        assert_eq!(l.admit("cn=bob", AWAY, &r, 62_000), Ok(()));
        assert_eq!(l.admit("cn=alice", AWAY, &r, 2000 + WINDOW), Ok(()));
    }

    #[test]
    fn a_success_clears_and_an_unchecked_attempt_is_taken_back() {
        let mut l = LockoutLedger::new(100);
        let r = rule(3, 0);
        for _ in 0..2 {
            fail(&mut l, "a", AWAY, &r, 0);
        }
        l.admit("a", AWAY, &r, 0).unwrap();
        l.settle("a", AWAY, Settled::Unchecked, 0, DAY);
        assert_eq!(l.failures("a", WINDOW, 0), 2);
        l.admit("a", AWAY, &r, 0).unwrap();
        l.settle("a", AWAY, Settled::Right, 0, DAY);
        assert_eq!(l.failures("a", WINDOW, 0), 0);
        assert!(l.is_empty());
    }

    #[test]
    fn concurrent_attempts_cannot_overshoot_the_budget() {
        let mut l = LockoutLedger::new(100);
        // Five attempts admitted before any outcome is known: only the budget gets through.
        let admitted = (0..5)
            .filter(|_| l.admit("a", AWAY, &rule(3, 0), 0).is_ok())
            .count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn a_spray_from_elsewhere_leaves_the_owners_familiar_place_its_reserve() {
        let mut l = LockoutLedger::new(100);
        let r = rule(3, 1);
        // The owner logged in from home yesterday.
        l.admit("cn=lou", HOME, &r, 0).unwrap();
        l.settle("cn=lou", HOME, Settled::Right, 0, 14 * DAY);
        let now = DAY;
        assert!(l.is_familiar("cn=lou", HOME, now));
        assert!(!l.is_familiar("cn=lou", AWAY, now));
        assert!(!l.is_familiar("cn=bob", HOME, now));
        for _ in 0..3 {
            fail(&mut l, "cn=lou", AWAY, &r, now);
        }
        assert!(l.admit("cn=lou", AWAY, &r, now).is_err(), "the spray stops");
        // Home still gets a check (and a typo there spends the reserve, never more).
        assert_eq!(l.admit("cn=lou", HOME, &r, now), Ok(()));
        l.settle("cn=lou", HOME, Settled::Wrong, now, 14 * DAY);
        assert!(l.admit("cn=lou", HOME, &r, now).is_err());
        assert_eq!(
            l.failures("cn=lou", WINDOW, now),
            4,
            "threshold 5 never reached"
        );
        // Familiarity ends.
        assert!(!l.is_familiar("cn=lou", HOME, 15 * DAY));
    }

    #[test]
    fn the_domains_own_count_with_checks_in_flight_stays_below_the_limit() {
        let mut l = LockoutLedger::new(100);
        let mut r = rule(3, 1);
        // Two bad passwords elsewhere in the domain (a workstation): one check left here.
        r.domain = Some(DomainCount {
            bad_passwords: 2,
            retry_after_ms: 1_500_000,
        });
        assert_eq!(l.admit("cn=lou", AWAY, &r, 0), Ok(()));
        // A second concurrent check would take the domain to the limit with the first.
        assert_eq!(
            l.admit("cn=lou", AWAY, &r, 0),
            Err(Duration::from_millis(1_500_000))
        );
        l.settle("cn=lou", AWAY, Settled::Wrong, 0, DAY);
        // Three at the domain now (its count includes ours): refused without checking.
        r.domain = Some(DomainCount {
            bad_passwords: 3,
            retry_after_ms: 1_400_000,
        });
        assert_eq!(
            l.admit("cn=lou", AWAY, &r, 0),
            Err(Duration::from_millis(1_400_000))
        );
        // Checks in flight expire, so a crashed instance cannot hold an account.
        let mut l = LockoutLedger::new(100);
        r.domain = Some(DomainCount {
            bad_passwords: 2,
            retry_after_ms: 1,
        });
        l.admit("cn=lou", AWAY, &rule(3, 1), 0).unwrap();
        assert!(l.admit("cn=lou", AWAY, &r, 1000).is_err());
        assert_eq!(l.admit("cn=lou", AWAY, &r, PENDING_EXPIRY_MS), Ok(()));
    }

    #[test]
    fn the_ledger_stays_bounded() {
        let mut l = LockoutLedger::new(10);
        for i in 0..1000u64 {
            l.admit(&format!("u{i}"), AWAY, &rule(3, 0), i).unwrap();
            l.settle(&format!("u{i}"), ip(i as u32), Settled::Right, i, DAY);
        }
        assert!(l.len() <= 10);
        assert!(l.familiar.len() <= 10);
    }

    #[test]
    fn ipv6_sources_count_by_prefix_and_ipv4_as_is() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a, 64), source_key(b, 64));
        assert_ne!(source_key(a, 64), source_key(c, 64));
        assert_eq!(source_key(a, 128), a);
        assert_eq!(
            source_key(a, 64),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(source_key(v4, 64), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_key(mapped, 64), v4);
    }

    #[test]
    fn a_trusted_source_is_never_blocked_as_a_whole_but_its_pairs_are() {
        let config = ThrottleConfig::default();
        let flooded = Scores {
            source: 100.0,
            pair: 0.0,
            account: 0.0,
        };
        assert!(matches!(
            verdict(&config, flooded, false),
            Verdict::TooManyRequests { .. }
        ));
        assert_eq!(
            verdict(&config, flooded, true),
            Verdict::Proceed {
                delay: Duration::ZERO,
                on_failure: Duration::ZERO
            }
        );
        let guessing = Scores {
            pair: 5.0,
            ..flooded
        };
        assert!(matches!(
            verdict(&config, guessing, true),
            Verdict::Refuse { .. }
        ));
    }

    #[test]
    fn the_same_wrong_password_is_remembered_by_digest_only() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"shared secret");
        let d1 = wrong_password_digest(&key, "Alice@contoso.com ", "Old-Pass!1");
        assert_eq!(
            d1,
            wrong_password_digest(&key, "alice@contoso.com", "Old-Pass!1")
        );
        assert_ne!(
            d1,
            wrong_password_digest(&key, "alice@contoso.com", "Old-Pass!2")
        );
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"another secret");
        assert_ne!(
            d1,
            wrong_password_digest(&other, "alice@contoso.com", "Old-Pass!1")
        );
        // Length-prefixed: the boundary between login and password is part of the digest.
        assert_ne!(
            wrong_password_digest(&key, "ab", "c"),
            wrong_password_digest(&key, "a", "bc")
        );
        let mut w = RecentWrongPasswords::new(100);
        assert!(!w.contains("alice@contoso.com", &d1, WINDOW, 0));
        w.record("alice@contoso.com", d1, WINDOW, 0);
        assert!(w.contains("ALICE@contoso.com", &d1, WINDOW, 1000));
        assert!(!w.contains("alice@contoso.com", &d1, WINDOW, WINDOW));
        w.clear("alice@contoso.com");
        assert!(!w.contains("alice@contoso.com", &d1, WINDOW, 1000));
        // Bounded per account and in accounts.
        for i in 0..20u8 {
            w.record("bob", [i; 32], WINDOW, 0);
        }
        assert!(!w.contains("bob", &[0; 32], WINDOW, 0));
        assert!(w.contains("bob", &[19; 32], WINDOW, 0));
        for i in 0..1000 {
            w.record(&format!("u{i}"), [1; 32], WINDOW, 0);
        }
        assert!(w.entries.len() <= 100);
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
