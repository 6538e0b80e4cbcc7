//! The lab's Entra-like token issuer: an RSA signing key, the tenant's OpenID discovery
//! document and JWKS, and RS256 access tokens shaped like Entra's (v1 `iss`, `upn`,
//! `onprem_sid`, `scp`, `oid`). Tokens are minted with `jsonwebtoken`; the key comes from
//! the `rsa` crate. Used by `lab up` and by the tests of `[auth.bearer]`.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

/// Why the issuer could not be made or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("RSA key: {0}")]
    Key(String),
    #[error("signing a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// A signing key with its `kid`, for one tenant.
pub struct LabIssuer {
    tenant_id: String,
    kid: String,
    key: EncodingKey,
    pem: String,
    modulus: String,
    exponent: String,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl LabIssuer {
    /// A fresh 2048-bit key for `tenant_id`.
    pub fn generate(tenant_id: &str, kid: &str) -> Result<LabIssuer, IssuerError> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| IssuerError::Key(e.to_string()))?;
        LabIssuer::from_key(tenant_id, kid, &key)
    }

    /// The issuer of a key saved with [`LabIssuer::private_key_pem`].
    pub fn from_pem(tenant_id: &str, kid: &str, pem: &str) -> Result<LabIssuer, IssuerError> {
        let key =
            RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| IssuerError::Key(e.to_string()))?;
        LabIssuer::from_key(tenant_id, kid, &key)
    }

    fn from_key(tenant_id: &str, kid: &str, key: &RsaPrivateKey) -> Result<LabIssuer, IssuerError> {
        let der = key
            .to_pkcs1_der()
            .map_err(|e| IssuerError::Key(e.to_string()))?;
        let pem = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| IssuerError::Key(e.to_string()))?
            .to_string();
        Ok(LabIssuer {
            tenant_id: tenant_id.to_string(),
            kid: kid.to_string(),
            key: EncodingKey::from_rsa_der(der.as_bytes()),
            pem,
            modulus: b64url(&key.n().to_bytes_be()),
            exponent: b64url(&key.e().to_bytes_be()),
        })
    }

    /// The private key (PKCS #1 PEM), to keep the lab's issuer stable across restarts.
    pub fn private_key_pem(&self) -> &str {
        &self.pem
    }

    /// The tenant.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The key id tokens carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS (RFC 7517 §5) with the one public key.
    pub fn jwks(&self) -> String {
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": self.modulus,
            "e": self.exponent,
        }]})
        .to_string()
    }

    /// The OpenID discovery document served at
    /// `{base}/{tenant}/v2.0/.well-known/openid-configuration`.
    pub fn metadata(&self, base: &str) -> String {
        let base = base.trim_end_matches('/');
        let t = &self.tenant_id;
        json!({
            "issuer": format!("https://login.microsoftonline.com/{t}/v2.0"),
            "authorization_endpoint": format!("{base}/{t}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{base}/{t}/oauth2/v2.0/token"),
            "jwks_uri": format!("{base}/{t}/discovery/v2.0/keys"),
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "tenant_region_scope": "EU",
        })
        .to_string()
    }

    /// Claims of a delegated user token as Entra issues it (v1 issuer) for `audience`,
    /// valid from `now` for `lifetime_secs`.
    pub fn user_claims(
        &self,
        audience: &str,
        upn: &str,
        onprem_sid: Option<&str>,
        now: u64,
        lifetime_secs: u64,
    ) -> Value {
        let mut claims = json!({
            "aud": audience,
            "iss": format!("https://sts.windows.net/{}/", self.tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_secs,
            "appid": "d3590ed6-52b3-4102-aeff-aad2292ab01c",
            "oid": uuid::Uuid::new_v4().to_string(),
            "scp": "EWS.AccessAsUser.All",
            "tid": self.tenant_id,
            "upn": upn,
            "unique_name": upn,
            "ver": "1.0",
        });
        if let (Some(sid), Some(map)) = (onprem_sid, claims.as_object_mut()) {
            map.insert("onprem_sid".to_string(), Value::String(sid.to_string()));
        }
        claims
    }

    /// A signed RS256 token with these claims.
    pub fn mint(&self, claims: &Value) -> Result<String, IssuerError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// A user the lab issuer signs in (resource owner password grant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabAccount {
    pub upn: String,
    pub password: String,
    /// The on-premises `objectSid` a synced user carries as `onprem_sid`.
    pub onprem_sid: Option<String>,
}

/// The issuer's endpoints: discovery, keys, user realm, token (password and refresh-token
/// grants) and a placeholder authorize page. Resources not in `resources` get Entra's
/// AADSTS500011 (the on-premises URL is not an SPN of Exchange Online in the tenant).
pub struct IssuerService {
    issuer: LabIssuer,
    base: String,
    accounts: Vec<LabAccount>,
    resources: Vec<String>,
    lifetime_secs: u64,
    /// Refresh token → UPN.
    refresh: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Key set downloads served (what a relying party's refresh policy costs the issuer).
    key_fetches: std::sync::atomic::AtomicUsize,
}

/// One answer: status, content type, body.
pub type IssuerAnswer = (http::StatusCode, &'static str, String);

fn json_answer(status: http::StatusCode, body: Value) -> IssuerAnswer {
    (status, "application/json; charset=utf-8", body.to_string())
}

fn oauth_error(code: &str, description: &str) -> IssuerAnswer {
    json_answer(
        http::StatusCode::BAD_REQUEST,
        json!({"error": code, "error_description": description}),
    )
}

/// `key=value&...` of a form body, decoded.
fn form(body: &str) -> std::collections::HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((
                crate::protocol::v2::percent_decode(k, true)?,
                crate::protocol::v2::percent_decode(v, true)?,
            ))
        })
        .collect()
}

/// The resource a scope list asks for: the origin of its first URL scope
/// (`https://autodiscover.contoso.com/.default` → `https://autodiscover.contoso.com`).
pub fn resource_of(scope: &str) -> Option<String> {
    let url = scope.split_whitespace().find(|s| s.contains("://"))?;
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    Some(format!("{scheme}://{host}"))
}

impl IssuerService {
    /// The issuer at `base` (`https://login.lab.example:port`), for these accounts and
    /// registered resources (origins).
    pub fn new(
        issuer: LabIssuer,
        base: &str,
        accounts: Vec<LabAccount>,
        resources: Vec<String>,
    ) -> IssuerService {
        IssuerService {
            issuer,
            base: base.trim_end_matches('/').to_string(),
            accounts,
            resources: resources
                .iter()
                .map(|r| crate::auth::bearer::normalize_audience(r))
                .collect(),
            lifetime_secs: 3600,
            refresh: std::sync::Mutex::new(std::collections::HashMap::new()),
            key_fetches: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many times the key set was downloaded.
    pub fn key_fetches(&self) -> usize {
        self.key_fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The signing side.
    pub fn issuer(&self) -> &LabIssuer {
        &self.issuer
    }

    /// Answers one request (`path` without the query).
    pub fn answer(&self, method: &http::Method, path: &str, body: &str, now: u64) -> IssuerAnswer {
        let t = self.issuer.tenant_id().to_string();
        let get = method == http::Method::GET;
        if get && path == format!("/{t}/v2.0/.well-known/openid-configuration") {
            return json_answer(
                http::StatusCode::OK,
                serde_json::from_str(&self.issuer.metadata(&self.base)).unwrap_or_default(),
            );
        }
        if get && path == format!("/{t}/discovery/v2.0/keys") {
            self.key_fetches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return (
                http::StatusCode::OK,
                "application/json; charset=utf-8",
                self.issuer.jwks(),
            );
        }
        if get && path.starts_with("/common/userrealm/") {
            return json_answer(
                http::StatusCode::OK,
                json!({"ver": "1.0", "account_type": "Managed", "cloud_instance_name": "microsoftonline.com"}),
            );
        }
        if get && path.ends_with("/oauth2/authorize") {
            return (
                http::StatusCode::OK,
                "text/plain; charset=utf-8",
                "The lab issuer signs in with the password grant only.\n".to_string(),
            );
        }
        if method == http::Method::POST && path == format!("/{t}/oauth2/v2.0/token") {
            return self.token(&form(body), now);
        }
        (
            http::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            String::new(),
        )
    }

    fn token(&self, form: &std::collections::HashMap<String, String>, now: u64) -> IssuerAnswer {
        let scope = form.get("scope").map(String::as_str).unwrap_or("");
        let upn = match form.get("grant_type").map(String::as_str) {
            Some("password") => {
                let user = form.get("username").map(String::as_str).unwrap_or("");
                let password = form.get("password").map(String::as_str).unwrap_or("");
                match self
                    .accounts
                    .iter()
                    .find(|a| a.upn.eq_ignore_ascii_case(user) && a.password == password)
                {
                    Some(a) => a.upn.clone(),
                    None => {
                        return oauth_error(
                            "invalid_grant",
                            "AADSTS50126: Error validating credentials due to invalid username or password.",
                        )
                    }
                }
            }
            Some("refresh_token") => {
                let token = form.get("refresh_token").map(String::as_str).unwrap_or("");
                let known = self.refresh.lock().ok().and_then(|m| m.get(token).cloned());
                match known {
                    Some(upn) => upn,
                    None => {
                        return oauth_error(
                            "invalid_grant",
                            "AADSTS70008: The refresh token has expired or is invalid.",
                        )
                    }
                }
            }
            _ => {
                return oauth_error(
                    "unsupported_grant_type",
                    "AADSTS70003: The app requested an unsupported grant type.",
                )
            }
        };
        let Some(resource) = resource_of(scope) else {
            return oauth_error(
                "invalid_scope",
                "AADSTS70011: The provided value for scope is not valid: ask for <on-premises origin>/.default.",
            );
        };
        if !self
            .resources
            .contains(&crate::auth::bearer::normalize_audience(&resource))
        {
            return oauth_error(
                "invalid_resource",
                &format!("AADSTS500011: The resource principal named {resource} was not found in the tenant named {}. Add it as a service principal name of Office 365 Exchange Online.", self.issuer.tenant_id()),
            );
        }
        let account = self.accounts.iter().find(|a| a.upn == upn);
        let claims = self.issuer.user_claims(
            &resource,
            &upn,
            account.and_then(|a| a.onprem_sid.as_deref()),
            now,
            self.lifetime_secs,
        );
        let access_token = match self.issuer.mint(&claims) {
            Ok(t) => t,
            Err(e) => return oauth_error("server_error", &e.to_string()),
        };
        let refresh_token = format!("{:032x}", rand::random::<u128>());
        if let Ok(mut m) = self.refresh.lock() {
            m.insert(refresh_token.clone(), upn);
        }
        json_answer(
            http::StatusCode::OK,
            json!({
                "token_type": "Bearer",
                "scope": format!("{resource}/EWS.AccessAsUser.All"),
                "expires_in": self.lifetime_secs,
                "ext_expires_in": self.lifetime_secs,
                "access_token": access_token,
                "refresh_token": refresh_token,
            }),
        )
    }
}

/// Serves the issuer over TLS on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    service: std::sync::Arc<IssuerService>,
) {
    use http_body_util::BodyExt;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let service = std::sync::Arc::clone(&service);
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let service = std::sync::Arc::clone(&service);
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = http_body_util::Limited::new(body, 64 * 1024)
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0);
                        let (status, content_type, text) = service.answer(
                            &parts.method,
                            parts.uri.path(),
                            &String::from_utf8_lossy(&body),
                            now,
                        );
                        let mut response = http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(text),
                        ));
                        *response.status_mut() = status;
                        response.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(content_type),
                        );
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// `issuer/issuer.toml` of an `--hma` lab.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerFile {
    tenant_id: String,
    kid: String,
    listen: std::net::SocketAddr,
    signing_key: String,
    cert: String,
    key: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    account: Vec<AccountEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    upn: String,
    password: String,
    onprem_sid: Option<String>,
}

/// A lab issuer read from its file, ready to serve.
pub struct LabIssuerConfig {
    /// Where it listens as configured.
    pub listen: std::net::SocketAddr,
    tls: std::sync::Arc<rustls::ServerConfig>,
    issuer: LabIssuer,
    accounts: Vec<LabAccount>,
    resources: Vec<String>,
}

impl LabIssuerConfig {
    /// Reads `path` (relative file names are relative to its directory).
    pub fn load(path: &std::path::Path) -> Result<LabIssuerConfig, String> {
        use rustls::pki_types::pem::PemObject;
        let fail =
            |what: &str, e: &dyn std::fmt::Display| format!("{}: {what}: {e}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| fail("cannot read", &e))?;
        let file: IssuerFile = toml::from_str(&text).map_err(|e| fail("bad TOML", &e))?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let at = |name: &str| base.join(name);
        let pem = std::fs::read_to_string(at(&file.signing_key))
            .map_err(|e| fail(&file.signing_key, &e))?;
        let issuer = LabIssuer::from_pem(&file.tenant_id, &file.kid, &pem)
            .map_err(|e| fail(&file.signing_key, &e))?;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(at(&file.cert))
            .map_err(|e| fail(&file.cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(&file.cert, &e))?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(at(&file.key))
            .map_err(|e| fail(&file.key, &e))?;
        let tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("TLS", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail("TLS", &e))?;
        Ok(LabIssuerConfig {
            listen: file.listen,
            tls: std::sync::Arc::new(tls),
            issuer,
            accounts: file
                .account
                .into_iter()
                .map(|a| LabAccount {
                    upn: a.upn,
                    password: a.password,
                    onprem_sid: a.onprem_sid,
                })
                .collect(),
            resources: file.resources,
        })
    }

    /// Serves on `listener` (its endpoints named after the port it is bound to) until the
    /// task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let service = IssuerService::new(
            self.issuer,
            &format!("https://localhost:{port}"),
            self.accounts,
            self.resources,
        );
        serve(listener, self.tls, std::sync::Arc::new(service)).await;
    }
}
