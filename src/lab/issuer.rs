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
