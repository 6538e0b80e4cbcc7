//! The I/O side of Hybrid Modern Authentication (`[auth.bearer]`): the tenant's signing
//! keys fetched over HTTPS from the authority's OpenID configuration, cached, fetched again
//! on the schedule of [`RefreshPolicy`] by one request at a time (single flight), and a
//! token's user found in the directory (`onprem_sid`, then `upn`). The rules are in
//! [`crate::auth::bearer`].

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use jsonwebtoken::DecodingKey;
use rustls::pki_types::ServerName;

use crate::auth::bearer::{self, FetchTimes, KeySet, RefreshPolicy, Refusal, TokenUser};
use crate::auth::Login;
use crate::config::BearerConfig;
use crate::directory::{Directory, DirectoryBackend, DirectoryError, Identity};
use crate::ops::metrics;

/// Bound on one fetch (connect, TLS, answer).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest accepted discovery document or key set.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Why a token did not authenticate anyone.
#[derive(Debug)]
pub enum BearerFailure {
    /// Refused: 401 with `error="invalid_token"`.
    Refused(Refusal),
    /// The directory could not be asked.
    Unavailable(DirectoryError),
}

/// The keys as last fetched.
struct Loaded {
    keys: KeySet,
    /// Unix seconds.
    at: u64,
}

enum KeySource {
    /// `jwks_file`: fixed keys, never fetched.
    File,
    /// The authority's discovery document, over HTTPS with these trust anchors.
    Authority {
        metadata_url: String,
        tls: Arc<rustls::ClientConfig>,
    },
}

/// `[auth.bearer]` at run time: the rendered challenges, the key cache, the settings.
pub struct BearerService {
    config: BearerConfig,
    challenge: String,
    refused_challenge: String,
    source: KeySource,
    loaded: RwLock<Option<Arc<Loaded>>>,
    /// The last fetch attempt and the last one an unknown `kid` caused.
    attempts: Mutex<(Option<u64>, Option<u64>)>,
    /// Held by the one request that fetches keys; the others wait and use its result.
    flight: tokio::sync::Mutex<()>,
    policy: RefreshPolicy,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl BearerService {
    /// Reads the trust anchors (or the static key set). Errors name the file.
    pub fn new(config: &BearerConfig) -> Result<BearerService, String> {
        let (source, loaded) = match &config.jwks_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("auth.bearer.jwks_file {}: {e}", path.display()))?;
                let keys = KeySet::from_jwks(&bytes)
                    .map_err(|e| format!("auth.bearer.jwks_file {}: {e}", path.display()))?;
                let loaded = Loaded {
                    keys,
                    at: unix_now(),
                };
                (KeySource::File, Some(Arc::new(loaded)))
            }
            None => (
                KeySource::Authority {
                    metadata_url: bearer::metadata_url(&config.authority, &config.rules.tenant_id),
                    tls: client_tls(config.ca_file.as_deref())?,
                },
                None,
            ),
        };
        Ok(BearerService {
            challenge: bearer::challenge(&config.rules.tenant_id, &config.authorization_uri, false),
            refused_challenge: bearer::challenge(
                &config.rules.tenant_id,
                &config.authorization_uri,
                true,
            ),
            config: config.clone(),
            source,
            loaded: RwLock::new(loaded),
            attempts: Mutex::new((None, None)),
            flight: tokio::sync::Mutex::new(()),
            policy: RefreshPolicy::DEFAULT,
        })
    }

    /// The Bearer line of a 401; `refused`: with `error="invalid_token"`.
    pub fn challenge(&self, refused: bool) -> &str {
        if refused {
            &self.refused_challenge
        } else {
            &self.challenge
        }
    }

    /// Checks a token and finds its user. `host`: the request's host name (the default
    /// audience).
    pub async fn authenticate(
        &self,
        token: &str,
        host: &str,
        directory: &DirectoryBackend,
    ) -> Result<(Identity, TokenUser), BearerFailure> {
        let kid = bearer::key_id(token).map_err(BearerFailure::Refused)?;
        let key = self.key(&kid).await.map_err(BearerFailure::Refused)?;
        let user = bearer::check(token, &key, &self.config.rules, host, unix_now())
            .map_err(BearerFailure::Refused)?;
        match self.account(&user, directory).await {
            Ok(Some(identity)) => Ok((identity, user)),
            Ok(None) => Err(BearerFailure::Refused(Refusal::UnknownAccount)),
            Err(e) => Err(BearerFailure::Unavailable(e)),
        }
    }

    /// `onprem_sid` → the account with that `objectSid`; else (when allowed) `upn` →
    /// `userPrincipalName`. Disabled accounts are found by neither.
    async fn account(
        &self,
        user: &TokenUser,
        directory: &DirectoryBackend,
    ) -> Result<Option<Identity>, DirectoryError> {
        if let Some(sid) = &user.onprem_sid {
            if let Some(identity) = directory.account_by_sid(sid).await? {
                return Ok(Some(identity));
            }
        }
        if !self.config.upn_fallback {
            return Ok(None);
        }
        match user.upn.as_deref().and_then(Login::parse) {
            Some(login @ Login::UserPrincipalName(_)) => directory.account_identity(&login).await,
            _ => Ok(None),
        }
    }

    /// The key for `kid`, fetching the keys first when they are due or lack it.
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        let now = unix_now();
        if let Some(key) = self.cached_key(kid, now, false) {
            return Ok(key);
        }
        self.refresh(kid, now).await;
        match self.cached_key(kid, now, true) {
            Some(key) => Ok(key),
            None if self.usable_keys(now).is_some() => Err(Refusal::UnknownKey(kid.to_string())),
            None => Err(Refusal::KeysUnavailable),
        }
    }

    fn usable_keys(&self, now: u64) -> Option<Arc<Loaded>> {
        let loaded = self.loaded.read().ok()?.clone()?;
        let fixed = matches!(self.source, KeySource::File);
        (fixed || self.policy.usable(loaded.at, now)).then_some(loaded)
    }

    /// The cached key, unless a fetch is due first (`after_fetch`: take what there is).
    fn cached_key(&self, kid: &str, now: u64, after_fetch: bool) -> Option<DecodingKey> {
        let loaded = self.usable_keys(now)?;
        let key = loaded.keys.get(kid)?;
        if after_fetch || matches!(self.source, KeySource::File) {
            return Some(key.clone());
        }
        let due = self
            .policy
            .fetch_due(self.times(Some(loaded.at)), false, now);
        // A daily refresh that fails keeps the key in use (up to the staleness bound).
        (!due).then(|| key.clone())
    }

    fn times(&self, loaded_at: Option<u64>) -> FetchTimes {
        let (attempted_at, forced_at) = self.attempts.lock().map(|a| *a).unwrap_or_default();
        FetchTimes {
            loaded_at,
            attempted_at,
            forced_at,
        }
    }

    /// Fetches the keys if the policy says so; one request at a time.
    async fn refresh(&self, kid: &str, now: u64) {
        let KeySource::Authority { metadata_url, tls } = &self.source else {
            return;
        };
        let _flight = self.flight.lock().await;
        // Decided under the flight lock: a request that waited sees the fetch it waited for.
        let loaded = self.usable_keys(now);
        let unknown = loaded.as_ref().is_none_or(|l| l.keys.get(kid).is_none());
        let times = self.times(loaded.as_ref().map(|l| l.at));
        if !self.policy.fetch_due(times, unknown, now) {
            return;
        }
        if let Ok(mut a) = self.attempts.lock() {
            a.0 = Some(now);
            if unknown && loaded.is_some() {
                a.1 = Some(now);
            }
        }
        match fetch_keys(metadata_url, tls).await {
            Ok(keys) => {
                metrics::bearer_key_fetch(true);
                tracing::info!(target: "auth", url = %metadata_url, keys = keys.len(), "tenant signing keys fetched");
                if let Ok(mut slot) = self.loaded.write() {
                    *slot = Some(Arc::new(Loaded { keys, at: now }));
                }
            }
            Err(e) => {
                metrics::bearer_key_fetch(false);
                let kept = if loaded.is_some() {
                    "the last keys stay in use"
                } else {
                    "no keys: tokens are refused"
                };
                tracing::warn!(target: "auth", url = %metadata_url, error = %e, "tenant signing keys could not be fetched; {kept}");
            }
        }
    }
}

/// A rustls client configuration trusting `ca_file` (replacing the system store) or the
/// system store.
fn client_tls(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let (roots, _) =
        crate::ops::trust::load_roots(ca_file).map_err(|e| format!("auth.bearer.ca_file {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The discovery document, then the key set it points at.
async fn fetch_keys(metadata_url: &str, tls: &Arc<rustls::ClientConfig>) -> Result<KeySet, String> {
    let metadata = https_get(metadata_url, tls).await?;
    let jwks_uri = bearer::jwks_uri(&metadata).map_err(|e| e.to_string())?;
    let jwks = https_get(&jwks_uri, tls).await?;
    KeySet::from_jwks(&jwks).map_err(|e| format!("{jwks_uri}: {e}"))
}

/// One HTTPS GET, bounded in time and size; only 200 is an answer.
async fn https_get(url: &str, tls: &Arc<rustls::ClientConfig>) -> Result<Bytes, String> {
    let exchange = async {
        let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("{url}: not https"));
        }
        let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
        let port = uri.port_u16().unwrap_or(443);
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|e| format!("{url}: {e}"))?
            .to_owned();
        let tcp = tokio::net::TcpStream::connect((
            host.trim_start_matches('[').trim_end_matches(']'),
            port,
        ))
        .await
        .map_err(|e| format!("{url}: connect: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{url}: TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let request = http::Request::builder()
            .uri(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("autodiscoverd/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{url}: reading the answer: {e}"))?;
        Ok(body.to_bytes())
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{url}: no answer within {} s", FETCH_TIMEOUT.as_secs()))?
}
