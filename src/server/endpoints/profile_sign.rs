//! CMS signing of configuration profiles (RFC 5652 SignedData with the profile as
//! encapsulated `id-data` content, signed attributes, the signer's certificate chain), as
//! Apple devices verify them. The CMS and the signature come from RustCrypto's `cms`,
//! `rsa` and `p256` crates; this module only loads the PEM files and calls them.

use std::path::Path;

use cms::builder::{create_signing_time_attribute, SignedDataBuilder, SignerInfoBuilder};
use cms::cert::x509::der::{Any, Decode, DecodePem, Encode, Tag};
use cms::cert::x509::spki::AlgorithmIdentifierOwned;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use p256::pkcs8::DecodePrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::Certificate;

use crate::config::CertPaths;

/// `id-data` (RFC 5652 §4).
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// `id-sha256` (RFC 5754 §2.2).
const ID_SHA_256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// Why profiles cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {problem}")]
    Pem { file: String, problem: String },
    #[error("building the CMS signature failed: {0}")]
    Cms(String),
}

enum Key {
    Rsa(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>),
    P256(p256::ecdsa::SigningKey),
}

/// The certificate chain and key that sign profiles.
pub struct ProfileSigner {
    chain: Vec<Certificate>,
    key: Key,
}

impl std::fmt::Debug for ProfileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileSigner")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// PEM blocks of `text` as (label, whole block text).
fn pem_blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = rest.get(start + 11..).unwrap_or_default();
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = after.get(..label_end).unwrap_or_default().to_string();
        let end_marker = format!("-----END {label}-----");
        let Some(end) = after.find(&end_marker) else {
            break;
        };
        let block_end = start + 11 + end + end_marker.len();
        out.push((
            label,
            rest.get(start..block_end).unwrap_or_default().to_string(),
        ));
        rest = rest.get(block_end..).unwrap_or_default();
    }
    out
}

impl ProfileSigner {
    /// Loads the PEM certificate chain (leaf first) and its RSA or P-256 key.
    pub fn load(paths: &CertPaths) -> Result<ProfileSigner, SignError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| SignError::Read {
                file: p.display().to_string(),
                source,
            })
        };
        let cert_file = paths.cert.display().to_string();
        let key_file = paths.key.display().to_string();
        let pem = |file: &str, problem: String| SignError::Pem {
            file: file.to_string(),
            problem,
        };
        let mut chain = Vec::new();
        for (label, block) in pem_blocks(&read(&paths.cert)?) {
            if label == "CERTIFICATE" {
                chain.push(
                    Certificate::from_pem(block.as_bytes())
                        .map_err(|e| pem(&cert_file, format!("bad certificate: {e}")))?,
                );
            }
        }
        if chain.is_empty() {
            return Err(pem(&cert_file, "no CERTIFICATE block".into()));
        }
        let key_text = read(&paths.key)?;
        let (label, block) = pem_blocks(&key_text)
            .into_iter()
            .find(|(l, _)| l.ends_with("PRIVATE KEY"))
            .ok_or_else(|| pem(&key_file, "no PRIVATE KEY block".into()))?;
        let unsupported = || {
            pem(
                &key_file,
                "the key is neither RSA nor ECDSA P-256 (the keys profiles can be signed with here)"
                    .into(),
            )
        };
        let key = match label.as_str() {
            "PRIVATE KEY" => {
                if let Ok(k) = p256::SecretKey::from_pkcs8_pem(&block) {
                    Key::P256(k.into())
                } else if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(&block) {
                    Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k)))
                } else {
                    return Err(unsupported());
                }
            }
            "RSA PRIVATE KEY" => Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(
                rsa::RsaPrivateKey::from_pkcs1_pem(&block).map_err(|_| unsupported())?,
            ))),
            "EC PRIVATE KEY" => Key::P256(
                p256::SecretKey::from_sec1_pem(&block)
                    .map_err(|_| unsupported())?
                    .into(),
            ),
            _ => return Err(unsupported()),
        };
        Ok(ProfileSigner { chain, key })
    }

    /// The DER `ContentInfo` of a SignedData carrying `content`.
    pub fn sign(&self, content: &[u8]) -> Result<Vec<u8>, SignError> {
        let err = |e: &dyn std::fmt::Display| SignError::Cms(e.to_string());
        let leaf = self
            .chain
            .first()
            .ok_or_else(|| SignError::Cms("no certificate".into()))?;
        let econtent = EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(Any::new(Tag::OctetString, content).map_err(|e| err(&e))?),
        };
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: leaf.tbs_certificate.issuer.clone(),
            serial_number: leaf.tbs_certificate.serial_number.clone(),
        });
        let digest = AlgorithmIdentifierOwned {
            oid: ID_SHA_256,
            parameters: None,
        };
        let mut builder = SignedDataBuilder::new(&econtent);
        builder
            .add_digest_algorithm(digest.clone())
            .map_err(|e| err(&e))?;
        for cert in &self.chain {
            builder
                .add_certificate(CertificateChoices::Certificate(cert.clone()))
                .map_err(|e| err(&e))?;
        }
        let signing_time = create_signing_time_attribute().map_err(|e| err(&e))?;
        match &self.key {
            Key::Rsa(key) => {
                let mut info = SignerInfoBuilder::new(&**key, sid, digest, &econtent, None)
                    .map_err(|e| err(&e))?;
                info.add_signed_attribute(signing_time)
                    .map_err(|e| err(&e))?;
                builder
                    .add_signer_info::<_, rsa::pkcs1v15::Signature>(info)
                    .map_err(|e| err(&e))?;
            }
            Key::P256(key) => {
                let mut info = SignerInfoBuilder::new(key, sid, digest, &econtent, None)
                    .map_err(|e| err(&e))?;
                info.add_signed_attribute(signing_time)
                    .map_err(|e| err(&e))?;
                builder
                    .add_signer_info::<_, p256::ecdsa::DerSignature>(info)
                    .map_err(|e| err(&e))?;
            }
        }
        let content_info = builder.build().map_err(|e| err(&e))?;
        content_info.to_der().map_err(|e| err(&e))
    }
}

/// Re-reads a DER SignedData's encapsulated content (tests and the probe).
pub fn signed_content(der: &[u8]) -> Option<Vec<u8>> {
    let ci = cms::content_info::ContentInfo::from_der(der).ok()?;
    let sd: cms::signed_data::SignedData = ci.content.decode_as().ok()?;
    sd.encap_content_info
        .econtent
        .map(|any| any.value().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_split_by_label() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";
        let blocks = pem_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].0, "CERTIFICATE");
        assert!(blocks[1].1.ends_with("-----END PRIVATE KEY-----"));
    }

    #[test]
    fn a_profile_signed_with_an_ecdsa_key_carries_the_profile_and_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["autodiscover.contoso.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let paths = CertPaths {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
        };
        std::fs::write(&paths.cert, cert.pem()).unwrap();
        std::fs::write(&paths.key, key.serialize_pem()).unwrap();
        let signer = ProfileSigner::load(&paths).unwrap();
        let signed = signer.sign(b"<plist/>").unwrap();
        assert_eq!(signed_content(&signed).as_deref(), Some(&b"<plist/>"[..]));
        let ci = cms::content_info::ContentInfo::from_der(&signed).unwrap();
        let sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
        assert_eq!(sd.certificates.unwrap().0.len(), 1);
        assert_eq!(sd.signer_infos.0.len(), 1);
    }

    #[test]
    fn missing_or_foreign_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths {
            cert: dir.path().join("none.pem"),
            key: dir.path().join("none.key"),
        };
        let e = ProfileSigner::load(&paths).unwrap_err();
        assert!(e.to_string().contains("none.pem"), "{e}");
        std::fs::write(&paths.cert, "not pem").unwrap();
        let e = ProfileSigner::load(&paths).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    }
}
