//! [`Cached`]: a decorator over any [`Directory`] that remembers recipient lookups and
//! successful password verifications for a short time, so that a busy Outlook population
//! does not search and bind once per request.
//!
//! Verifications are keyed by HMAC-SHA256 of login and password under a random key made
//! at start (never the password, and a memory dump does not allow offline guessing without
//! the key). Failed verifications and directory errors are never cached. Both maps are
//! bounded. NT hashes are not cached (NTLM asks once per connection).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::hmac;

use super::{
    Account, Directory, DirectoryError, Identity, Login, LoginGuard, Lookup, NtCredential,
    Recipient,
};

/// A time-bounded, size-bounded map; `now` is always an argument (testable without sleeping).
#[derive(Debug)]
pub struct TtlMap<K, V> {
    ttl: Duration,
    max: usize,
    entries: HashMap<K, (Instant, V)>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlMap<K, V> {
    /// An empty map whose entries live `ttl` and that holds at most `max` of them.
    pub fn new(ttl: Duration, max: usize) -> TtlMap<K, V> {
        TtlMap {
            ttl,
            max: max.max(1),
            entries: HashMap::new(),
        }
    }

    /// The value stored for `key` when it is younger than the TTL.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        match self.entries.get(key) {
            Some((at, v)) if now.saturating_duration_since(*at) < self.ttl => Some(v.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value`; when full, expired entries go first, then the oldest one.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        if self.entries.len() >= self.max && !self.entries.contains_key(&key) {
            let ttl = self.ttl;
            self.entries
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
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

/// The caching decorator. A TTL of zero turns it into a pass-through.
pub struct Cached<D> {
    inner: D,
    enabled: bool,
    key: hmac::Key,
    recipients: Mutex<TtlMap<String, Option<Recipient>>>,
    logins: Mutex<TtlMap<[u8; 32], Identity>>,
}

impl<D: Directory> Cached<D> {
    /// Wraps `inner`; entries live `ttl` and each map holds at most `max_entries`.
    pub fn new(inner: D, ttl: Duration, max_entries: usize) -> Cached<D> {
        let rng = ring::rand::SystemRandom::new();
        // Falls back to a fixed key only if the OS RNG fails (it does not on Linux);
        // the cache is then disabled rather than keyed predictably.
        let (key, enabled) = match hmac::Key::generate(hmac::HMAC_SHA256, &rng) {
            Ok(k) => (k, !ttl.is_zero()),
            Err(_) => (hmac::Key::new(hmac::HMAC_SHA256, &[0u8; 32]), false),
        };
        Cached {
            inner,
            enabled,
            key,
            recipients: Mutex::new(TtlMap::new(ttl, max_entries)),
            logins: Mutex::new(TtlMap::new(ttl, max_entries)),
        }
    }

    /// A success remembered for these exact credentials, without asking anyone.
    pub fn cached_verification(&self, login: &Login, password: &str) -> Option<Identity> {
        if !self.enabled || password.is_empty() {
            return None;
        }
        let key = self.login_key(login, password);
        self.logins
            .lock()
            .ok()
            .and_then(|mut m| m.get(&key, Instant::now()))
    }

    /// The wrapped directory.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    fn login_key(&self, login: &Login, password: &str) -> [u8; 32] {
        crate::auth::credential_digest(&self.key, &login.to_string(), password)
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

impl<D: Directory> Directory for Cached<D> {
    async fn find(&self, lookup: &Lookup) -> Result<Option<Recipient>, DirectoryError> {
        if !self.enabled || is_reserved_probe(lookup) {
            return self.inner.find(lookup).await;
        }
        let key = lookup_key(lookup);
        if let Some(hit) = self
            .recipients
            .lock()
            .ok()
            .and_then(|mut m| m.get(&key, Instant::now()))
        {
            return Ok(hit);
        }
        let found = self.inner.find(lookup).await?;
        if let Ok(mut m) = self.recipients.lock() {
            m.insert(key, found.clone(), Instant::now());
        }
        Ok(found)
    }

    /// A remembered success is answered without asking the directory (and so without
    /// the guard: nothing can count against the account); otherwise the inner
    /// directory's guarded check.
    async fn verify_password_guarded(
        &self,
        login: &Login,
        password: &str,
        guard: &dyn LoginGuard,
    ) -> Result<Option<Identity>, DirectoryError> {
        if !self.enabled || password.is_empty() {
            return self
                .inner
                .verify_password_guarded(login, password, guard)
                .await;
        }
        if let Some(hit) = self.cached_verification(login, password) {
            return Ok(Some(hit));
        }
        let key = self.login_key(login, password);
        let verified = self
            .inner
            .verify_password_guarded(login, password, guard)
            .await?;
        if let Some(identity) = &verified {
            if let Ok(mut m) = self.logins.lock() {
                m.insert(key, identity.clone(), Instant::now());
            }
        }
        Ok(verified)
    }

    async fn nt_credential(&self, login: &Login) -> Result<Option<NtCredential>, DirectoryError> {
        self.inner.nt_credential(login).await
    }

    fn supports_nt_hashes(&self) -> bool {
        self.inner.supports_nt_hashes()
    }

    async fn account_identity(&self, login: &Login) -> Result<Option<Identity>, DirectoryError> {
        self.inner.account_identity(login).await
    }

    async fn account_by_sid(&self, sid: &super::Sid) -> Result<Option<Identity>, DirectoryError> {
        self.inner.account_by_sid(sid).await
    }

    async fn resolve_account(
        &self,
        login: &Login,
    ) -> Result<(Account, Option<Identity>), DirectoryError> {
        self.inner.resolve_account(login).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    /// Counts calls; accepts only ("alice", "right").
    struct Counting {
        verifies: AtomicUsize,
        finds: AtomicUsize,
        fail: bool,
    }

    impl Directory for Counting {
        async fn find(&self, _: &Lookup) -> Result<Option<Recipient>, DirectoryError> {
            self.finds.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(DirectoryError::Timeout(1));
            }
            Ok(None)
        }
        async fn verify_password_guarded(
            &self,
            login: &Login,
            password: &str,
            _: &dyn LoginGuard,
        ) -> Result<Option<Identity>, DirectoryError> {
            self.verifies.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return Err(DirectoryError::Unavailable("down".into()));
            }
            Ok(
                (login.to_string() == "alice" && password == "right").then(|| Identity {
                    user_principal_name: "alice@contoso.com".into(),
                    addresses: vec![],
                }),
            )
        }
        async fn nt_credential(&self, _: &Login) -> Result<Option<NtCredential>, DirectoryError> {
            Ok(None)
        }
        fn supports_nt_hashes(&self) -> bool {
            false
        }
        async fn account_identity(&self, _: &Login) -> Result<Option<Identity>, DirectoryError> {
            Ok(None)
        }
    }

    fn counting(fail: bool) -> Counting {
        Counting {
            verifies: AtomicUsize::new(0),
            finds: AtomicUsize::new(0),
            fail,
        }
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
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
        let ka = a.login_key(&login, "right");
        assert_ne!(ka, b.login_key(&login, "right"), "per-process random key");
        assert_ne!(ka, a.login_key(&login, "Right"));
        assert_eq!(
            ka,
            a.login_key(&Login::SamAccountName("ALICE".into()), "right")
        );
        assert!(!ka.windows(5).any(|w| w == b"right"));
    }
}
