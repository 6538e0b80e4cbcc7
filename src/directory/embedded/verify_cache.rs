//! A cache of successful password verifications for the embedded directory: argon2 costs
//! ~20 ms per check by design, and Outlook authenticates every Autodiscover request, so
//! without it one busy user population would keep the CPUs busy with the same hashes.
//!
//! Keyed by HMAC-SHA256(random per-process key, login, password): the password is never
//! stored, and a memory dump does not allow offline guessing without the key. Only
//! successes are cached (failures always pay the full argon2 price, so an unknown user and
//! a wrong password keep costing the same). Bounded in size and time; a reload builds a
//! new directory and with it an empty cache, so a changed password takes effect on SIGHUP.
//!
//! The LDAP backend's decorator (`directory::cache::Cached`) keys its verification cache the
//! same way and also caches lookups (pointless for an in-memory directory); both share
//! [`TtlMap`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::hmac;

use crate::directory::cache::TtlMap;
use crate::directory::{Identity, Login};
use crate::ops::metrics;

/// How long a verified login+password stays trusted.
pub const TTL: Duration = Duration::from_secs(15 * 60);
/// Most remembered verifications.
pub const MAX_ENTRIES: usize = 10_000;

pub struct VerifyCache {
    /// `None` when the OS random generator failed: the cache is then off, never keyed
    /// predictably.
    key: Option<hmac::Key>,
    entries: Mutex<TtlMap<[u8; 32], Identity>>,
}

impl VerifyCache {
    /// An empty cache with a fresh random key.
    pub fn new(ttl: Duration, max: usize) -> VerifyCache {
        let rng = ring::rand::SystemRandom::new();
        VerifyCache {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng).ok(),
            entries: Mutex::new(TtlMap::new(ttl, max)),
        }
    }

    fn digest(&self, login: &Login, password: &str) -> Option<[u8; 32]> {
        let key = self.key.as_ref()?;
        let login = login.to_string().to_lowercase();
        let mut ctx = hmac::Context::with_key(key);
        // Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
        ctx.update(&(login.len() as u64).to_be_bytes());
        ctx.update(login.as_bytes());
        ctx.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        Some(out)
    }

    /// The identity of an earlier successful verification of exactly these credentials.
    pub fn get(&self, login: &Login, password: &str, now: Instant) -> Option<Identity> {
        let digest = self.digest(login, password)?;
        let hit = self.entries.lock().ok()?.get(&digest, now);
        if hit.is_some() {
            metrics::cache_hit();
        } else {
            metrics::cache_miss();
        }
        hit
    }

    /// Remembers a successful verification.
    pub fn insert(&self, login: &Login, password: &str, identity: Identity, now: Instant) {
        let Some(digest) = self.digest(login, password) else {
            return;
        };
        if let Ok(mut map) = self.entries.lock() {
            map.insert(digest, identity, now);
        }
    }

    /// Entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(upn: &str) -> Identity {
        Identity {
            user_principal_name: upn.to_string(),
            addresses: vec![upn.to_string()],
        }
    }

    fn login(s: &str) -> Login {
        Login::parse(s).unwrap()
    }

    #[test]
    fn only_the_exact_credentials_hit() {
        let c = VerifyCache::new(TTL, 10);
        let now = Instant::now();
        c.insert(
            &login("alice@contoso.com"),
            "pw",
            identity("alice@contoso.com"),
            now,
        );
        assert!(c.get(&login("ALICE@contoso.com"), "pw", now).is_some());
        assert!(c.get(&login("alice@contoso.com"), "pw2", now).is_none());
        assert!(c.get(&login("alice@contoso.co"), "mpw", now).is_none());
        assert!(c.get(&login("bob@contoso.com"), "pw", now).is_none());
    }

    #[test]
    fn entries_expire() {
        let c = VerifyCache::new(Duration::from_secs(10), 10);
        let now = Instant::now();
        c.insert(
            &login("alice@contoso.com"),
            "pw",
            identity("alice@contoso.com"),
            now,
        );
        assert!(c
            .get(
                &login("alice@contoso.com"),
                "pw",
                now + Duration::from_secs(11)
            )
            .is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn size_is_bounded() {
        let c = VerifyCache::new(TTL, 100);
        let now = Instant::now();
        for i in 0..1000 {
            c.insert(
                &login(&format!("user{i}@contoso.com")),
                "pw",
                identity("x@contoso.com"),
                now + Duration::from_millis(i),
            );
        }
        assert!(c.len() <= 100);
        // The newest survive.
        assert!(c
            .get(
                &login("user999@contoso.com"),
                "pw",
                now + Duration::from_secs(1)
            )
            .is_some());
    }

    #[test]
    fn the_key_is_random_per_cache() {
        let a = VerifyCache::new(TTL, 10);
        let b = VerifyCache::new(TTL, 10);
        assert_ne!(
            a.digest(&login("alice"), "pw"),
            b.digest(&login("alice"), "pw")
        );
    }
}
