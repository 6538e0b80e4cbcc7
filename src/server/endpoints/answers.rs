//! Rendered POX settings answers, remembered per configuration generation.
//!
//! An Outlook settings document is a pure function of the configuration, the recipient the
//! directory returned and the client's capabilities. Outlook asks again and again for the same mailbox (every start, every hour, on
//! every network change), so the rendered bytes are kept and served with a cheap
//! `Bytes::clone`.
//!
//! Correctness does not rest on the fingerprint: it only picks the slot, and a hit also
//! compares the full key (the whole [`Recipient`] as found *now*, and the caps), so a
//! directory change (new display name, new GUID, a move) renders afresh at once. The cache
//! lives in the [`State`](super::State) of one configuration generation: a reload starts
//! with an empty one. Bounded in entries and age.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::directory::Recipient;
use crate::protocol::pox::{self, PoxReject, PoxRequest};
use crate::protocol::ClientCaps;

/// Most documents kept (a settings answer is ~3 KB: ~6 MB at most).
pub const MAX_ENTRIES: usize = 2048;
/// How long a document is served before it is rendered again.
pub const TTL: Duration = Duration::from_secs(300);

/// What a rendered document depends on (besides the configuration of the generation).
/// (redirectAddr answers are not cached: ~0.5 KB, rendering them measured as cheap as a
/// cache hit.)
#[derive(Debug, Clone, Copy)]
pub enum AnswerKey<'a> {
    /// Outlook (2006a) settings for a recipient that lives here.
    Settings(&'a Recipient, ClientCaps),
    /// Outlook (2006a) `AccountType email` (IMAP/POP3/SMTP) for an Internet-mail mailbox.
    InternetMail(&'a Recipient),
}

#[derive(Debug)]
enum StoredKey {
    Settings(Recipient, ClientCaps),
    InternetMail(Recipient),
}

impl StoredKey {
    fn of(key: AnswerKey<'_>) -> StoredKey {
        match key {
            AnswerKey::Settings(r, caps) => StoredKey::Settings(r.clone(), caps),
            AnswerKey::InternetMail(r) => StoredKey::InternetMail(r.clone()),
        }
    }

    fn matches(&self, key: AnswerKey<'_>) -> bool {
        match (self, key) {
            (StoredKey::Settings(r, c), AnswerKey::Settings(r2, c2)) => c == &c2 && r == r2,
            (StoredKey::InternetMail(r), AnswerKey::InternetMail(r2)) => r == r2,
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Entry {
    key: StoredKey,
    body: Bytes,
    at: Instant,
}

/// The cache of one configuration generation.
#[derive(Debug)]
pub struct AnswerCache {
    hasher: RandomState,
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache::new(TTL, MAX_ENTRIES)
    }
}

impl AnswerCache {
    /// An empty cache holding at most `max` documents for `ttl` each.
    pub fn new(ttl: Duration, max: usize) -> AnswerCache {
        AnswerCache {
            hasher: RandomState::new(),
            ttl,
            max: max.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The document for `key`, rendered by `render` when it is not cached (or stale).
    pub fn get_or_render(
        &self,
        key: AnswerKey<'_>,
        now: Instant,
        render: impl FnOnce() -> Vec<u8>,
    ) -> Bytes {
        let slot = self.fingerprint(key);
        if let Some(body) = self.lookup(slot, key, now) {
            return body;
        }
        // Rendered outside the lock; two racing requests both render, the last one stays.
        let body = Bytes::from(render());
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max && !entries.contains_key(&slot) {
                let ttl = self.ttl;
                entries.retain(|_, e| now.saturating_duration_since(e.at) < ttl);
                if entries.len() >= self.max {
                    // Still full of live documents: start over (O(1) amortised, bounded).
                    entries.clear();
                }
            }
            entries.insert(
                slot,
                Entry {
                    key: StoredKey::of(key),
                    body: body.clone(),
                    at: now,
                },
            );
        }
        body
    }

    fn lookup(&self, slot: u64, key: AnswerKey<'_>, now: Instant) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(&slot)?;
        (now.saturating_duration_since(entry.at) < self.ttl && entry.key.matches(key))
            .then(|| entry.body.clone())
    }

    /// Documents held now (expired ones included until they are pushed out).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// True when no document is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fingerprint(&self, key: AnswerKey<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        match key {
            AnswerKey::Settings(r, caps) => {
                let ClientCaps {
                    mapi_http,
                    ex_http_info,
                    negotiate,
                    outlook,
                } = caps;
                (mapi_http, ex_http_info, negotiate, outlook).hash(&mut h);
                hash_recipient(r, &mut h);
            }
            AnswerKey::InternetMail(r) => {
                "internet".hash(&mut h);
                hash_recipient(r, &mut h);
            }
        }
        h.finish()
    }
}

/// Bodies up to this size are remembered parsed (Outlook's are ~300 bytes).
pub const MAX_REMEMBERED_BODY: usize = 2048;
/// Most parsed bodies kept (~2 MB at most).
pub const MAX_BODIES: usize = 1024;

/// Parsed POX request bodies, by their exact bytes.
///
/// A client sends the same body for a mailbox every time it asks, and parsing the XML cost
/// more than the rest of the handler's own work (13 % of the server's user CPU per
/// request in the benchmark). Parsing is a pure function of the bytes, so a hit is exact:
/// the whole body is compared, not only its hash. Rejected bodies are not remembered.
#[derive(Debug)]
pub struct ParsedBodies {
    hasher: RandomState,
    max: usize,
    entries: Mutex<HashMap<u64, RememberedBody>>,
}

/// A body, whole (a hit compares it), and what it parsed to.
type RememberedBody = (Box<[u8]>, PoxRequest);

impl Default for ParsedBodies {
    fn default() -> Self {
        ParsedBodies::new(MAX_BODIES)
    }
}

impl ParsedBodies {
    pub fn new(max: usize) -> ParsedBodies {
        ParsedBodies {
            hasher: RandomState::new(),
            max: max.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// [`pox::parse_request`], remembered.
    pub fn parse(&self, body: &[u8]) -> Result<PoxRequest, PoxReject> {
        if body.len() > MAX_REMEMBERED_BODY {
            return pox::parse_request(body);
        }
        let slot = self.hasher.hash_one(body);
        if let Some(known) = self.lookup(slot, body) {
            return Ok(known);
        }
        let parsed = pox::parse_request(body)?;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max && !entries.contains_key(&slot) {
                // Full: start over (bounded, O(1) amortised; clients ask again soon).
                entries.clear();
            }
            entries.insert(slot, (body.into(), parsed.clone()));
        }
        Ok(parsed)
    }

    fn lookup(&self, slot: u64, body: &[u8]) -> Option<PoxRequest> {
        let entries = self.entries.lock().ok()?;
        let (known, parsed) = entries.get(&slot)?;
        (**known == *body).then(|| parsed.clone())
    }

    /// Bodies held now.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// True when no body is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every field, so that two recipients that differ anywhere rarely share a slot (a shared
/// slot is still correct: the full comparison on lookup tells them apart).
fn hash_recipient(r: &Recipient, h: &mut impl Hasher) {
    let Recipient {
        display_name,
        primary_smtp,
        addresses,
        legacy_dn,
        mailbox_guid,
        recipient_type,
        remote_recipient_type,
        target_address,
        has_local_mailbox,
        enabled,
        mailbox_kind,
    } = r;
    display_name.hash(h);
    primary_smtp.hash(h);
    addresses.hash(h);
    legacy_dn.hash(h);
    mailbox_guid.hash(h);
    recipient_type.hash(h);
    remote_recipient_type.hash(h);
    target_address.hash(h);
    has_local_mailbox.hash(h);
    enabled.hash(h);
    mailbox_kind.hash(h);
}

/// The Internet-mail servers of a mailbox's primary address; `None` (logged) when the
/// directory marks a mailbox Internet mail in a domain without servers.
pub(super) fn internet_servers<'a>(
    state: &'a super::State,
    primary_smtp: &str,
) -> Option<&'a crate::config::mail::InternetServers> {
    let domain = crate::config::mail::domain_of(primary_smtp);
    let servers = state.config.mail.servers_for(&domain);
    if servers.is_none() {
        tracing::warn!(
            domain = %domain,
            "an Internet-mail mailbox has no servers: add [mail.internet] or servers to [mail.domains.\"{domain}\"]"
        );
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::RecipientType;
    use crate::probe::answer::pox_request;

    fn alice() -> Recipient {
        Recipient {
            display_name: "Alice".into(),
            primary_smtp: "alice@contoso.com".into(),
            addresses: vec!["alice@contoso.com".into()],
            legacy_dn: None,
            mailbox_guid: None,
            recipient_type: RecipientType::UserMailbox,
            remote_recipient_type: 0,
            target_address: None,
            has_local_mailbox: true,
            enabled: true,
            mailbox_kind: None,
        }
    }

    fn caps(mapi_http: bool) -> ClientCaps {
        ClientCaps {
            mapi_http,
            ..ClientCaps::default()
        }
    }

    #[test]
    fn a_cached_document_is_served_without_rendering_again() {
        let cache = AnswerCache::default();
        let now = Instant::now();
        let r = alice();
        let first = cache.get_or_render(AnswerKey::Settings(&r, caps(true)), now, || b"A".to_vec());
        let second = cache.get_or_render(AnswerKey::Settings(&r, caps(true)), now, || {
            panic!("rendered twice")
        });
        assert_eq!(first, second);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn different_caps_or_a_changed_recipient_render_their_own_document() {
        let cache = AnswerCache::default();
        let now = Instant::now();
        let r = alice();
        let mut renamed = alice();
        renamed.display_name = "Alice Smith".into();
        let a = cache.get_or_render(AnswerKey::Settings(&r, caps(true)), now, || b"A".to_vec());
        let b = cache.get_or_render(AnswerKey::Settings(&r, caps(false)), now, || b"B".to_vec());
        let c = cache.get_or_render(AnswerKey::Settings(&renamed, caps(true)), now, || {
            b"C".to_vec()
        });
        assert_eq!((&a[..], &b[..], &c[..]), (&b"A"[..], &b"B"[..], &b"C"[..]));
        // And each is served again as its own.
        let b2 = cache.get_or_render(AnswerKey::Settings(&r, caps(false)), now, || b"X".to_vec());
        assert_eq!(&b2[..], b"B");
    }

    #[test]
    fn a_slot_shared_by_two_keys_never_serves_the_other_document() {
        // A cache with one slot for everything: every key lands on the same slot whatever its
        // fingerprint, which is what a fingerprint collision would do.
        let cache = AnswerCache::new(TTL, 1);
        let now = Instant::now();
        let r = alice();
        let mut bob = alice();
        bob.primary_smtp = "bob@contoso.com".into();
        cache.get_or_render(AnswerKey::Settings(&r, caps(true)), now, || b"A".to_vec());
        let b = cache.get_or_render(AnswerKey::Settings(&bob, caps(true)), now, || b"B".to_vec());
        assert_eq!(&b[..], b"B");
        assert_eq!(cache.len(), 1);
        let slot = cache.fingerprint(AnswerKey::Settings(&bob, caps(true)));
        // Forced collision: alice's key looked up in bob's slot is a miss.
        assert_eq!(
            cache.lookup(slot, AnswerKey::Settings(&r, caps(true)), now),
            None
        );
    }

    #[test]
    fn internet_mail_and_exchange_documents_of_one_recipient_are_kept_apart() {
        // One slot for everything: the keys must still tell the kinds apart.
        let cache = AnswerCache::new(TTL, 1);
        let now = Instant::now();
        let r = alice();
        cache.get_or_render(AnswerKey::Settings(&r, caps(false)), now, || {
            b"EXCH".to_vec()
        });
        let internet = cache.get_or_render(AnswerKey::InternetMail(&r), now, || b"IMAP".to_vec());
        assert_eq!(&internet[..], b"IMAP");
        let again = cache.get_or_render(AnswerKey::InternetMail(&r), now, || {
            panic!("rendered twice")
        });
        assert_eq!(&again[..], b"IMAP");
    }

    #[test]
    fn documents_expire_and_the_cache_stays_bounded() {
        let cache = AnswerCache::new(Duration::from_secs(10), 3);
        let now = Instant::now();
        let r = alice();
        cache.get_or_render(AnswerKey::Settings(&r, caps(true)), now, || b"old".to_vec());
        let later = now + Duration::from_secs(11);
        let fresh = cache.get_or_render(AnswerKey::Settings(&r, caps(true)), later, || {
            b"new".to_vec()
        });
        assert_eq!(&fresh[..], b"new");
        for i in 0..10 {
            let mut other = alice();
            other.primary_smtp = format!("user{i}@contoso.com");
            cache.get_or_render(AnswerKey::Settings(&other, caps(true)), later, || {
                b"R".to_vec()
            });
            assert!(cache.len() <= 3);
        }
    }

    #[test]
    fn remembered_bodies_parse_exactly_as_the_parser_does_and_stay_bounded() {
        let bodies = ParsedBodies::new(2);
        let alice = pox_request("alice@contoso.com");
        let bob = pox_request("bob@contoso.com");
        for _ in 0..2 {
            assert_eq!(bodies.parse(&alice), pox::parse_request(&alice));
            assert_eq!(bodies.parse(&bob), pox::parse_request(&bob));
        }
        assert_eq!(bodies.len(), 2);
        assert_eq!(
            bodies.parse(&alice).unwrap().email.as_deref(),
            Some("alice@contoso.com")
        );
        // A rejected body is answered as the parser answers it, and not remembered.
        let broken = b"<Autodiscover><Request>".to_vec();
        assert_eq!(bodies.parse(&broken), pox::parse_request(&broken));
        assert_eq!(bodies.len(), 2);
        // Full: a third body starts over instead of growing.
        let carol = pox_request("carol@contoso.com");
        assert_eq!(bodies.parse(&carol), pox::parse_request(&carol));
        assert_eq!(bodies.len(), 1);
        // Large bodies are parsed every time.
        let mut large = pox_request("dave@contoso.com");
        large.splice(0..0, vec![b' '; MAX_REMEMBERED_BODY]);
        assert_eq!(bodies.parse(&large), pox::parse_request(&large));
        assert_eq!(bodies.len(), 1);
    }
}
