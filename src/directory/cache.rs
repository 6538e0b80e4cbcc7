//! [`Cached`]: a decorator over any [`Directory`] that remembers recipient lookups and
//! successful password verifications for a short time, so that a busy Outlook population
//! does not search and bind once per request.
//!
//! Verifications are keyed by HMAC-SHA256 of login and password under a random key made
//! at start (never the password, and a memory dump does not allow offline guessing without
//! the key). Failed verifications and directory errors are never cached. Both maps are
//! bounded. NT hashes are not cached (NTLM asks once per connection).
//!
//! Identical calls in progress are made once ([`super::flight`]): a burst of the same login
//! costs one bind and one slot of the account's lockout budget, a burst of misses on one
//! mailbox one search.
//!
//! When the directory cannot be asked, an entry that expired less than `serve_stale` ago
//! answers instead of Error 603 (noted with [`super::note_stale`], counted in a metric):
//! a mailbox lookup, or a login whose exact credentials the directory verified before (never
//! a password it has not). Lookups answered that way are asked again in the background as
//! soon as the directory answers again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::hmac;

use super::flight::{Flights, Role};
use super::{
    Account, Directory, DirectoryError, GuardFuture, Identity, Login, LoginGuard, Lookup,
    NtCredential, Recipient,
};
use crate::ops::metrics;

/// A time-bounded, size-bounded map; `now` is always an argument (testable without sleeping).
/// Entries are fresh for `ttl` and kept `stale_for` longer for [`TtlMap::get_stale`].
#[derive(Debug)]
pub struct TtlMap<K, V> {
    ttl: Duration,
    /// How long an entry is kept: `ttl` plus the staleness it may still be served with.
    keep: Duration,
    max: usize,
    entries: HashMap<K, (Instant, V)>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlMap<K, V> {
    /// An empty map whose entries live `ttl` and that holds at most `max` of them.
    pub fn new(ttl: Duration, max: usize) -> TtlMap<K, V> {
        TtlMap::with_staleness(ttl, Duration::ZERO, max)
    }

    /// [`TtlMap::new`] whose entries are kept `stale_for` past their TTL.
    pub fn with_staleness(ttl: Duration, stale_for: Duration, max: usize) -> TtlMap<K, V> {
        TtlMap {
            ttl,
            keep: ttl.saturating_add(stale_for),
            max: max.max(1),
            entries: HashMap::new(),
        }
    }

    /// The value stored for `key` when it is younger than the TTL.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        match self.entries.get(key) {
            Some((at, v)) if now.saturating_duration_since(*at) < self.ttl => Some(v.clone()),
            Some((at, _)) if now.saturating_duration_since(*at) >= self.keep => {
                self.entries.remove(key);
                None
            }
            _ => None,
        }
    }

    /// The value stored for `key` when it is younger than the TTL plus the staleness.
    pub fn get_stale(&mut self, key: &K, now: Instant) -> Option<V> {
        match self.entries.get(key) {
            Some((at, v)) if now.saturating_duration_since(*at) < self.keep => Some(v.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value`; when full, entries past keeping go first, then the oldest one.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        if self.entries.len() >= self.max && !self.entries.contains_key(&key) {
            let keep = self.keep;
            self.entries
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < keep);
            if self.entries.len() >= self.max {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(key, (now, value));
    }

    /// Number of stored entries (expired ones included until they are pruned).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A directory answer shared by the callers of one flight: stale when it came from an
/// expired cache entry because the directory could not be asked.
#[derive(Debug, Clone)]
struct Served<T> {
    result: Result<T, DirectoryError>,
    stale: bool,
}

impl<T> Served<T> {
    fn fresh(result: Result<T, DirectoryError>) -> Served<T> {
        Served {
            result,
            stale: false,
        }
    }

    /// The caller's answer; a stale one is noted for the request's access log line.
    fn deliver(self, op: &'static str) -> Result<T, DirectoryError> {
        if self.stale {
            super::note_stale();
            metrics::directory_stale(op);
        }
        self.result
    }
}

/// The caching decorator. A TTL of zero turns the cache off (identical calls in progress
/// are still made once).
pub struct Cached<D> {
    core: Arc<Core<D>>,
}

struct Core<D> {
    inner: D,
    /// Answers are remembered (a TTL above zero and a random key).
    caching: bool,
    /// Identical calls in progress are made once (a random key: even with the cache off).
    sharing: bool,
    key: hmac::Key,
    max_entries: usize,
    recipients: Mutex<TtlMap<String, Option<Recipient>>>,
    logins: Mutex<TtlMap<[u8; 32], Identity>>,
    /// The last identity found for each login the domain verified itself (Kerberos),
    /// used only while the directory cannot be asked.
    identities: Mutex<TtlMap<String, Identity>>,
    serve_stale: Duration,
    finds: Flights<String, Served<Option<Recipient>>>,
    checks: Flights<[u8; 32], Served<Option<Identity>>>,
    /// Lookups answered from stale entries, asked again once the directory answers.
    stale_lookups: Mutex<HashMap<String, Lookup>>,
    refreshing: AtomicBool,
}

/// Records whether the guard admitted the leader's check (a refusal is that caller's own,
/// not an outcome the others may share).
struct Recording<'g> {
    guard: &'g dyn LoginGuard,
    admitted: AtomicBool,
}

impl LoginGuard for Recording<'_> {
    fn admit<'a>(&'a self, account: &'a Account) -> GuardFuture<'a, bool> {
        Box::pin(async move {
            let admitted = self.guard.admit(account).await;
            self.admitted.store(admitted, Ordering::Relaxed);
            admitted
        })
    }
    fn settle<'a>(&'a self, account: &'a Account, outcome: Option<bool>) -> GuardFuture<'a, ()> {
        self.guard.settle(account, outcome)
    }
    fn shared_outcome(&self) {
        self.guard.shared_outcome();
    }
}

impl<D: Directory + 'static> Cached<D> {
    /// Wraps `inner`; entries live `ttl` and each map holds at most `max_entries`; no
    /// stale answers.
    pub fn new(inner: D, ttl: Duration, max_entries: usize) -> Cached<D> {
        Cached::with_staleness(inner, ttl, Duration::ZERO, max_entries)
    }

    /// [`Cached::new`] that answers from entries expired less than `serve_stale` ago when
    /// the directory cannot be asked.
    pub fn with_staleness(
        inner: D,
        ttl: Duration,
        serve_stale: Duration,
        max_entries: usize,
    ) -> Cached<D> {
        let rng = ring::rand::SystemRandom::new();
        // Falls back to a fixed key only if the OS RNG fails (it does not on Linux);
        // the cache and the sharing of checks are then disabled rather than keyed
        // predictably.
        let (key, sharing) = match hmac::Key::generate(hmac::HMAC_SHA256, &rng) {
            Ok(k) => (k, true),
            Err(_) => (hmac::Key::new(hmac::HMAC_SHA256, &[0u8; 32]), false),
        };
        Cached {
            core: Arc::new(Core {
                inner,
                caching: sharing && !ttl.is_zero(),
                sharing,
                key,
                max_entries,
                recipients: Mutex::new(TtlMap::with_staleness(ttl, serve_stale, max_entries)),
                logins: Mutex::new(TtlMap::with_staleness(ttl, serve_stale, max_entries)),
                identities: Mutex::new(TtlMap::with_staleness(
                    Duration::ZERO,
                    serve_stale,
                    max_entries,
                )),
                serve_stale,
                finds: Flights::new(),
                checks: Flights::new(),
                stale_lookups: Mutex::new(HashMap::new()),
                refreshing: AtomicBool::new(false),
            }),
        }
    }

    /// A success remembered for these exact credentials, without asking anyone.
    pub fn cached_verification(&self, login: &Login, password: &str) -> Option<Identity> {
        let core = &self.core;
        if !core.caching || password.is_empty() {
            return None;
        }
        let key = core.login_key(login, password);
        core.logins
            .lock()
            .ok()
            .and_then(|mut m| m.get(&key, Instant::now()))
    }

    /// The wrapped directory.
    pub fn inner(&self) -> &D {
        &self.core.inner
    }

    /// Asks the directory again, in the background, for the lookups answered from stale
    /// entries, once it has just answered (one refresh at a time).
    fn refresh_after_success(&self) {
        let core = &self.core;
        let pending = core
            .stale_lookups
            .lock()
            .map(|m| !m.is_empty())
            .unwrap_or(false);
        if !pending || core.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            core.refreshing.store(false, Ordering::Release);
            return;
        };
        let core = Arc::clone(core);
        runtime.spawn(async move {
            let taken: Vec<(String, Lookup)> = core
                .stale_lookups
                .lock()
                .map(|mut m| m.drain().collect())
                .unwrap_or_default();
            let mut refreshed = 0usize;
            let mut left = taken.into_iter();
            for (key, lookup) in left.by_ref() {
                match core.inner.find(&lookup).await {
                    Ok(found) => {
                        if let Ok(mut m) = core.recipients.lock() {
                            m.insert(key, found, Instant::now());
                        }
                        refreshed += 1;
                    }
                    Err(_) => {
                        // Down again: what is left waits for the next answer.
                        if let Ok(mut m) = core.stale_lookups.lock() {
                            m.insert(key, lookup);
                            m.extend(left);
                        }
                        break;
                    }
                }
            }
            tracing::info!(
                refreshed,
                "directory answers again: lookups served stale were refreshed"
            );
            core.refreshing.store(false, Ordering::Release);
        });
    }
}

impl<D: Directory> Core<D> {
    fn login_key(&self, login: &Login, password: &str) -> [u8; 32] {
        crate::auth::credential_digest(&self.key, &login.to_string(), password)
    }

    /// Asks the directory for `lookup` and remembers the answer; when it cannot be asked,
    /// the stale entry (if any) answers.
    async fn fetch_lookup(&self, key: &str, lookup: &Lookup) -> Served<Option<Recipient>> {
        match self.inner.find(lookup).await {
            Ok(found) => {
                if self.caching {
                    if let Ok(mut m) = self.recipients.lock() {
                        m.insert(key.to_string(), found.clone(), Instant::now());
                    }
                }
                Served::fresh(Ok(found))
            }
            Err(e) => {
                let stale = self
                    .recipients
                    .lock()
                    .ok()
                    .and_then(|mut m| m.get_stale(&key.to_string(), Instant::now()));
                match stale {
                    Some(found) => {
                        if let Ok(mut m) = self.stale_lookups.lock() {
                            if m.len() < self.max_entries {
                                m.insert(key.to_string(), lookup.clone());
                            }
                        }
                        Served {
                            result: Ok(found),
                            stale: true,
                        }
                    }
                    None => Served::fresh(Err(e)),
                }
            }
        }
    }

    /// Checks the password under `guard` and remembers a success; when the directory
    /// cannot be asked, a success remembered for these exact credentials (stale) answers.
    /// The flag: the guard admitted the check (a refused one is not shared).
    async fn check_password(
        &self,
        key: &[u8; 32],
        login: &Login,
        password: &str,
        guard: &dyn LoginGuard,
    ) -> (Served<Option<Identity>>, bool) {
        let recording = Recording {
            guard,
            admitted: AtomicBool::new(false),
        };
        let result = self
            .inner
            .verify_password_guarded(login, password, &recording)
            .await;
        let admitted = recording.admitted.load(Ordering::Relaxed);
        match result {
            Ok(verified) => {
                if let Some(identity) = verified.as_ref().filter(|_| self.caching) {
                    if let Ok(mut m) = self.logins.lock() {
                        m.insert(*key, identity.clone(), Instant::now());
                    }
                }
                (Served::fresh(Ok(verified)), admitted)
            }
            Err(e) => {
                let stale = self
                    .logins
                    .lock()
                    .ok()
                    .and_then(|mut m| m.get_stale(key, Instant::now()));
                let served = match stale {
                    Some(identity) => Served {
                        result: Ok(Some(identity)),
                        stale: true,
                    },
                    None => Served::fresh(Err(e)),
                };
                (served, true)
            }
        }
    }
}

/// Addresses under the `.invalid` TLD (RFC 6761: guaranteed never to exist) are health
/// probes (`/readyz` looks one up): they must reach the directory every time, or readiness
/// would report a cached answer for a directory that is down.
fn is_reserved_probe(lookup: &Lookup) -> bool {
    match lookup {
        Lookup::Address(a) => a
            .trim()
            .rsplit_once('.')
            .is_some_and(|(_, tld)| tld.eq_ignore_ascii_case("invalid")),
        Lookup::LegacyDn(_) => false,
    }
}

fn lookup_key(lookup: &Lookup) -> String {
    match lookup {
        Lookup::Address(a) => format!("a:{}", a.trim().to_lowercase()),
        Lookup::LegacyDn(d) => format!("l:{}", d.trim().to_lowercase()),
    }
}

impl<D: Directory + 'static> Directory for Cached<D> {
    async fn find(&self, lookup: &Lookup) -> Result<Option<Recipient>, DirectoryError> {
        let core = &self.core;
        if is_reserved_probe(lookup) {
            let result = core.inner.find(lookup).await;
            if result.is_ok() {
                self.refresh_after_success();
            }
            return result;
        }
        let key = lookup_key(lookup);
        let fresh = |key: &String| {
            if !core.caching {
                return None;
            }
            core.recipients
                .lock()
                .ok()
                .and_then(|mut m| m.get(key, Instant::now()))
        };
        if let Some(hit) = fresh(&key) {
            return Ok(hit);
        }
        loop {
            match core.finds.join(key.clone()) {
                Role::Leader(lead) => {
                    // A flight that ended between the first look and joining left its answer.
                    if let Some(hit) = fresh(&key) {
                        return Ok(hit);
                    }
                    let served = core.fetch_lookup(&key, lookup).await;
                    lead.finish(served.clone());
                    if !served.stale && served.result.is_ok() {
                        self.refresh_after_success();
                    }
                    return served.deliver("find");
                }
                Role::Follower(follow) => {
                    metrics::directory_shared("find");
                    if let Some(served) = follow.result().await {
                        return served.deliver("find");
                    }
                }
            }
        }
    }

    /// A remembered success is answered without asking the directory (and so without
    /// the guard: nothing can count against the account); identical checks in progress
    /// are made once (the followers' guards are told [`LoginGuard::shared_outcome`]);
    /// otherwise the inner directory's guarded check.
    async fn verify_password_guarded(
        &self,
        login: &Login,
        password: &str,
        guard: &dyn LoginGuard,
    ) -> Result<Option<Identity>, DirectoryError> {
        let core = &self.core;
        if !core.sharing || password.is_empty() {
            return core
                .inner
                .verify_password_guarded(login, password, guard)
                .await;
        }
        if let Some(hit) = self.cached_verification(login, password) {
            return Ok(Some(hit));
        }
        let key = core.login_key(login, password);
        loop {
            match core.checks.join(key) {
                Role::Leader(lead) => {
                    if let Some(hit) = self.cached_verification(login, password) {
                        return Ok(Some(hit));
                    }
                    let (served, admitted) =
                        core.check_password(&key, login, password, guard).await;
                    if admitted {
                        lead.finish(served.clone());
                    }
                    if !served.stale && served.result.is_ok() {
                        self.refresh_after_success();
                    }
                    return served.deliver("verify_password");
                }
                Role::Follower(follow) => {
                    metrics::directory_shared("verify_password");
                    if let Some(served) = follow.result().await {
                        if matches!(served.result, Ok(None)) {
                            guard.shared_outcome();
                        }
                        return served.deliver("verify_password");
                    }
                }
            }
        }
    }

    async fn nt_credential(&self, login: &Login) -> Result<Option<NtCredential>, DirectoryError> {
        self.core.inner.nt_credential(login).await
    }

    fn supports_nt_hashes(&self) -> bool {
        self.core.inner.supports_nt_hashes()
    }

    /// Always asked (the domain verified the login, the directory says whether the account
    /// is enabled now); while the directory cannot be asked, the identity it last gave for
    /// the login within `serve_stale` answers.
    async fn account_identity(&self, login: &Login) -> Result<Option<Identity>, DirectoryError> {
        let core = &self.core;
        let key = login.to_string().to_lowercase();
        match core.inner.account_identity(login).await {
            Ok(found) => {
                if let Some(identity) = found.as_ref().filter(|_| !core.serve_stale.is_zero()) {
                    if let Ok(mut m) = core.identities.lock() {
                        m.insert(key, identity.clone(), Instant::now());
                    }
                }
                Ok(found)
            }
            Err(e) => {
                let stale = core
                    .identities
                    .lock()
                    .ok()
                    .and_then(|mut m| m.get_stale(&key, Instant::now()));
                match stale {
                    Some(identity) => Served {
                        result: Ok(Some(identity)),
                        stale: true,
                    }
                    .deliver("account_identity"),
                    None => Err(e),
                }
            }
        }
    }

    async fn account_by_sid(&self, sid: &super::Sid) -> Result<Option<Identity>, DirectoryError> {
        self.core.inner.account_by_sid(sid).await
    }

    async fn resolve_account(
        &self,
        login: &Login,
    ) -> Result<(Account, Option<Identity>), DirectoryError> {
        self.core.inner.resolve_account(login).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut m = TtlMap::new(Duration::from_secs(10), 4);
        m.insert("a", 1, t0);
        assert_eq!(m.get(&"a", t0 + Duration::from_secs(9)), Some(1));
        assert_eq!(m.get(&"a", t0 + Duration::from_secs(10)), None);
        assert!(m.is_empty());
    }

    #[test]
    fn the_map_never_grows_past_its_bound() {
        let t0 = Instant::now();
        let mut m = TtlMap::new(Duration::from_secs(60), 3);
        for i in 0..10u64 {
            m.insert(i, i, t0 + Duration::from_millis(i));
        }
        assert_eq!(m.len(), 3);
        // The newest survive.
        assert_eq!(m.get(&9, t0), Some(9));
        assert_eq!(m.get(&0, t0), None);
    }

    /// Counts calls; accepts only ("alice", "right"); finds every address as alice's
    /// mailbox; each call takes `delay` (so that calls overlap); fails while `fail`.
    struct Counting {
        verifies: AtomicUsize,
        finds: AtomicUsize,
        fail: AtomicBool,
        delay: Duration,
    }

    fn alice() -> Identity {
        Identity {
            user_principal_name: "alice@contoso.com".into(),
            addresses: vec![],
        }
    }

    impl Directory for Counting {
        async fn find(&self, _: &Lookup) -> Result<Option<Recipient>, DirectoryError> {
            self.finds.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(DirectoryError::Timeout(1));
            }
            Ok(None)
        }
        async fn verify_password_guarded(
            &self,
            login: &Login,
            password: &str,
            guard: &dyn LoginGuard,
        ) -> Result<Option<Identity>, DirectoryError> {
            self.verifies.fetch_add(1, Ordering::SeqCst);
            let account = Account {
                key: login.to_string(),
                lockout: None,
                bad_passwords: None,
            };
            if !guard.admit(&account).await {
                return Ok(None);
            }
            tokio::time::sleep(self.delay).await;
            if self.fail.load(Ordering::SeqCst) {
                guard.settle(&account, None).await;
                return Err(DirectoryError::Unavailable("down".into()));
            }
            let ok = login.to_string() == "alice" && password == "right";
            guard.settle(&account, Some(ok)).await;
            Ok(ok.then(alice))
        }
        async fn nt_credential(&self, _: &Login) -> Result<Option<NtCredential>, DirectoryError> {
            Ok(None)
        }
        fn supports_nt_hashes(&self) -> bool {
            false
        }
        async fn account_identity(
            &self,
            login: &Login,
        ) -> Result<Option<Identity>, DirectoryError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(DirectoryError::Unavailable("down".into()));
            }
            Ok((login.to_string() == "alice@contoso.com").then(alice))
        }
    }

    /// A directory whose every call takes 50 ms, behind a cache of `ttl`.
    fn slow(ttl: Duration) -> Cached<Counting> {
        Cached::new(
            Counting {
                delay: Duration::from_millis(50),
                ..counting(false)
            },
            ttl,
            100,
        )
    }

    fn counting(fail: bool) -> Counting {
        Counting {
            verifies: AtomicUsize::new(0),
            finds: AtomicUsize::new(0),
            fail: AtomicBool::new(fail),
            delay: Duration::ZERO,
        }
    }

    /// Counts admissions and settlements, admits at most `budget`, and records whether it
    /// was told of a shared outcome.
    struct Budget {
        left: Mutex<usize>,
        admitted: AtomicUsize,
        shared: AtomicBool,
    }

    impl Budget {
        fn new(budget: usize) -> Budget {
            Budget {
                left: Mutex::new(budget),
                admitted: AtomicUsize::new(0),
                shared: AtomicBool::new(false),
            }
        }
    }

    impl LoginGuard for Budget {
        fn admit<'a>(&'a self, _: &'a Account) -> GuardFuture<'a, bool> {
            let mut left = self.left.lock().unwrap();
            let ok = *left > 0;
            if ok {
                *left -= 1;
                self.admitted.fetch_add(1, Ordering::SeqCst);
            }
            Box::pin(std::future::ready(ok))
        }
        fn settle<'a>(&'a self, _: &'a Account, _: Option<bool>) -> GuardFuture<'a, ()> {
            Box::pin(std::future::ready(()))
        }
        fn shared_outcome(&self) {
            self.shared.store(true, Ordering::SeqCst);
        }
    }

    /// 15 correct logins of alice at once through `c`: all accepted after one check that
    /// took one slot of a budget of 3 checks in progress (5 - margin 2, as the lockout
    /// ledger gives).
    async fn fifteen_correct_logins_at_once(c: &Cached<Counting>, login: &Login) {
        let guard = Budget::new(3);
        let burst = (0..15).map(|_| c.verify_password_guarded(login, "right", &guard));
        let answers = futures_util::future::join_all(burst).await;
        assert!(
            answers.iter().all(|a| a == &Ok(Some(alice()))),
            "{answers:?}"
        );
        assert_eq!(c.inner().verifies.load(Ordering::SeqCst), 1);
        assert_eq!(guard.admitted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_burst_of_identical_logins_costs_one_check_and_one_admission() {
        let c = slow(Duration::from_secs(60));
        let login = Login::SamAccountName("alice".into());
        fifteen_correct_logins_at_once(&c, &login).await;
        // The same wrong password at once: one check, the others told it was shared.
        let wrong = Budget::new(3);
        let burst = (0..5).map(|_| c.verify_password_guarded(&login, "wrong", &wrong));
        let answers = futures_util::future::join_all(burst).await;
        assert!(answers.iter().all(|a| a == &Ok(None)), "{answers:?}");
        assert_eq!(wrong.admitted.load(Ordering::SeqCst), 1);
        assert!(wrong.shared.load(Ordering::SeqCst));
        // Different wrong passwords are each checked and admitted, as before.
        let different = Budget::new(10);
        let passwords: Vec<String> = (0..4).map(|i| format!("guess-{i}")).collect();
        let burst = passwords
            .iter()
            .map(|p| c.verify_password_guarded(&login, p, &different));
        futures_util::future::join_all(burst).await;
        assert_eq!(different.admitted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn with_the_cache_off_identical_checks_in_progress_are_still_made_once() {
        let c = slow(Duration::ZERO);
        let login = Login::SamAccountName("alice".into());
        fifteen_correct_logins_at_once(&c, &login).await;
        // Nothing is remembered once they are done.
        assert!(c.verify_password(&login, "right").await.is_ok());
        assert_eq!(c.inner().verifies.load(Ordering::SeqCst), 2);
        assert!(c.cached_verification(&login, "right").is_none());
    }

    #[tokio::test]
    async fn a_refused_leader_does_not_answer_for_the_others() {
        let c = slow(Duration::from_secs(60));
        let login = Login::SamAccountName("alice".into());
        let refused = Budget::new(0);
        let admitted = Budget::new(1);
        let (a, b) = tokio::join!(
            c.verify_password_guarded(&login, "right", &refused),
            c.verify_password_guarded(&login, "right", &admitted)
        );
        assert_eq!(a, Ok(None));
        assert_eq!(b, Ok(Some(alice())));
        assert!(!admitted.shared.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_burst_of_misses_on_one_mailbox_costs_one_search() {
        let c = slow(Duration::from_secs(60));
        let lookup = Lookup::Address("alice@contoso.com".into());
        let burst = (0..15).map(|_| c.find(&lookup));
        let answers = futures_util::future::join_all(burst).await;
        assert!(answers.iter().all(|a| a == &Ok(None)));
        assert_eq!(c.inner().finds.load(Ordering::SeqCst), 1);
        assert!(c.core.finds.is_empty());
    }

    #[tokio::test]
    async fn stale_entries_answer_only_while_the_directory_cannot_be_asked() {
        let ttl = Duration::from_millis(30);
        let c = Cached::with_staleness(counting(false), ttl, Duration::from_secs(60), 100);
        let login = Login::SamAccountName("alice".into());
        let lookup = Lookup::Address("alice@contoso.com".into());
        assert_eq!(c.verify_password(&login, "right").await, Ok(Some(alice())));
        assert_eq!(c.find(&lookup).await, Ok(None));
        tokio::time::sleep(ttl * 2).await;
        c.inner().fail.store(true, Ordering::SeqCst);
        let (answers, stale) = crate::directory::noting_stale(async {
            (
                c.verify_password(&login, "right").await,
                c.find(&lookup).await,
            )
        })
        .await;
        assert_eq!(answers, (Ok(Some(alice())), Ok(None)));
        assert!(stale, "the stale answer is noted for the access log");
        // A password never verified is never accepted from stale data.
        assert!(c.verify_password(&login, "other").await.is_err());
        assert!(c
            .find(&Lookup::Address("never@contoso.com".into()))
            .await
            .is_err());
        // The directory answers again: the stale lookup is refreshed in the background.
        c.inner().fail.store(false, Ordering::SeqCst);
        let finds = c.inner().finds.load(Ordering::SeqCst);
        let (_, stale) = crate::directory::noting_stale(c.verify_password(&login, "right")).await;
        assert!(!stale);
        for _ in 0..100 {
            if c.inner().finds.load(Ordering::SeqCst) > finds {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(c.inner().finds.load(Ordering::SeqCst), finds + 1);
        c.inner().fail.store(true, Ordering::SeqCst);
        assert_eq!(c.find(&lookup).await, Ok(None), "fresh again");
        // Without staleness, an outage is an outage.
        let strict = Cached::new(counting(false), ttl, 100);
        strict.verify_password(&login, "right").await.unwrap();
        tokio::time::sleep(ttl * 2).await;
        strict.inner().fail.store(true, Ordering::SeqCst);
        assert!(strict.verify_password(&login, "right").await.is_err());
    }

    /// Counting's account_identity: alice while up.
    #[tokio::test]
    async fn identities_of_logins_the_domain_verified_are_served_stale_only_in_an_outage() {
        let c = Cached::with_staleness(
            counting(false),
            Duration::from_secs(60),
            Duration::from_secs(60),
            100,
        );
        let alice = Login::UserPrincipalName("alice@contoso.com".into());
        assert_eq!(c.account_identity(&alice).await, Ok(Some(self::alice())));
        c.inner().fail.store(true, Ordering::SeqCst);
        let (answer, stale) = crate::directory::noting_stale(c.account_identity(&alice)).await;
        assert_eq!((answer, stale), (Ok(Some(self::alice())), true));
        let bob = Login::UserPrincipalName("bob@contoso.com".into());
        assert!(c.account_identity(&bob).await.is_err());
        let strict = Cached::new(counting(false), Duration::from_secs(60), 100);
        strict.account_identity(&alice).await.unwrap();
        strict.inner().fail.store(true, Ordering::SeqCst);
        assert!(strict.account_identity(&alice).await.is_err());
    }

    #[test]
    fn stale_entries_are_kept_for_their_staleness_only() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut m = TtlMap::with_staleness(s(10), s(100), 4);
        m.insert("a", 1, t0);
        assert_eq!(m.get(&"a", t0 + s(10)), None);
        assert_eq!(m.get_stale(&"a", t0 + s(109)), Some(1));
        assert_eq!(m.get_stale(&"a", t0 + s(110)), None);
        assert!(m.is_empty());
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn successful_verifications_are_cached_and_failures_are_not() {
        let c = Cached::new(counting(false), Duration::from_secs(60), 100);
        let alice = Login::SamAccountName("alice".into());
        block(async {
            assert!(c.verify_password(&alice, "right").await.unwrap().is_some());
            assert!(c.verify_password(&alice, "right").await.unwrap().is_some());
            assert_eq!(c.inner().verifies.load(Ordering::SeqCst), 1);
            // A wrong password is asked every time and never served from the cache.
            assert!(c.verify_password(&alice, "wrong").await.unwrap().is_none());
            assert!(c.verify_password(&alice, "wrong").await.unwrap().is_none());
            assert_eq!(c.inner().verifies.load(Ordering::SeqCst), 3);
            // Another password for the same login is a different key.
            assert!(c.verify_password(&alice, "righ").await.unwrap().is_none());
            assert_eq!(c.inner().verifies.load(Ordering::SeqCst), 4);
        });
    }

    #[test]
    fn directory_errors_are_never_cached() {
        let c = Cached::new(counting(true), Duration::from_secs(60), 100);
        let alice = Login::SamAccountName("alice".into());
        block(async {
            assert!(c.verify_password(&alice, "right").await.is_err());
            assert!(c.verify_password(&alice, "right").await.is_err());
            assert!(c.find(&Lookup::Address("a@b.c".into())).await.is_err());
            assert!(c.find(&Lookup::Address("a@b.c".into())).await.is_err());
        });
        assert_eq!(c.inner().verifies.load(Ordering::SeqCst), 2);
        assert_eq!(c.inner().finds.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn lookups_are_cached_case_insensitively_and_a_zero_ttl_disables_the_cache() {
        let c = Cached::new(counting(false), Duration::from_secs(60), 100);
        block(async {
            c.find(&Lookup::Address("A@b.c".into())).await.unwrap();
            c.find(&Lookup::Address("a@B.c ".into())).await.unwrap();
            c.find(&Lookup::LegacyDn("a@b.c".into())).await.unwrap();
        });
        assert_eq!(c.inner().finds.load(Ordering::SeqCst), 2);
        let off = Cached::new(counting(false), Duration::ZERO, 100);
        let alice = Login::SamAccountName("alice".into());
        block(async {
            off.verify_password(&alice, "right").await.unwrap();
            off.verify_password(&alice, "right").await.unwrap();
        });
        assert_eq!(off.inner().verifies.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn health_probe_addresses_always_reach_the_directory() {
        let c = Cached::new(counting(false), Duration::from_secs(60), 100);
        block(async {
            for _ in 0..3 {
                c.find(&Lookup::Address(
                    "readyz-probe@autodiscoverd.invalid".into(),
                ))
                .await
                .unwrap();
            }
        });
        assert_eq!(c.inner().finds.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_key_is_a_keyed_hash_not_the_password() {
        let a = Cached::new(counting(false), Duration::from_secs(60), 10);
        let b = Cached::new(counting(false), Duration::from_secs(60), 10);
        let login = Login::SamAccountName("alice".into());
        let ka = a.core.login_key(&login, "right");
        assert_ne!(
            ka,
            b.core.login_key(&login, "right"),
            "per-process random key"
        );
        assert_ne!(ka, a.core.login_key(&login, "Right"));
        assert_eq!(
            ka,
            a.core
                .login_key(&Login::SamAccountName("ALICE".into()), "right")
        );
        assert!(!ka.windows(5).any(|w| w == b"right"));
    }
}
