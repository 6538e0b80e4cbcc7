//! `autodiscoverd lab init DIR`: a lab CA, one certificate per host, both roles'
//! configurations and directories, and the name maps, written in one go. The clock is a
//! parameter so that tests (and `--break expired-cert`) control certificate dates.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use super::files::{self, Issuer, CERT_ONPREM_AUTODISCOVER};
use super::{dns, Breakage, LabSpec, SpecError};

/// Why a lab could not be written.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{dir} already contains files. Fix: choose a new or empty directory, or pass --force to overwrite the lab files in it")]
    NotEmpty { dir: PathBuf },
    #[error("{path}: cannot write ({source}). Fix: check that the directory is writable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the certificate for {name}: {message}")]
    Certificate { name: String, message: String },
    #[error("cannot create the token issuer's signing key: {0}")]
    Issuer(String),
}

/// What `lab init` wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The lab directory (absolute).
    pub dir: PathBuf,
    pub spec: LabSpec,
    /// The text of `LAB.txt`.
    pub summary: String,
}

/// Paths inside a lab directory.
pub mod paths {
    /// The lab CA certificate (trust it, or pass it to `probe --ca-file`).
    pub const CA_CERT: &str = "ca/ca.pem";
    /// The lab CA key (to issue more certificates; keep it in the lab).
    pub const CA_KEY: &str = "ca/ca.key";
    /// The on-premises role's configuration.
    pub const ONPREM_CONFIG: &str = "onprem/autodiscoverd.toml";
    /// The tenant role's configuration.
    pub const TENANT_CONFIG: &str = "tenant/autodiscoverd.toml";
    /// Name map in curl config syntax (`curl -K`, `probe --map`).
    pub const CURL_CONFIG: &str = "curl.conf";
    /// Hosts-file lines.
    pub const HOSTS: &str = "hosts";
    /// Ports-only map for the DNS mode (`probe --dns-server ... --map dns.conf`).
    pub const DNS_MODE_CONFIG: &str = "dns.conf";
    /// Human summary.
    pub const SUMMARY: &str = "LAB.txt";
    /// The token issuer of `--hma` labs.
    pub const ISSUER_CONFIG: &str = "issuer/issuer.toml";
    /// Its RSA signing key (PKCS #1, mode 0600).
    pub const ISSUER_KEY: &str = "issuer/signing-key.pem";
}

const DAY: Duration = Duration::from_secs(86_400);

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), InitError> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(contents.as_bytes()).map_err(io_error(path))
}

fn cert_error(name: &str) -> impl FnOnce(rcgen::Error) -> InitError + '_ {
    move |e| InitError::Certificate {
        name: name.to_string(),
        message: e.to_string(),
    }
}

/// The lab CA: its certificate and key.
struct LabCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A CA: self-signed when `parent` is `None`, else an intermediate under `parent`.
fn make_ca(name: &str, parent: Option<&LabCa>, now: OffsetDateTime) -> Result<LabCa, InitError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error(name))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "autodiscoverd lab");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - DAY;
    params.not_after = now + DAY * 3650;
    let key = KeyPair::generate().map_err(cert_error(name))?;
    let cert = match parent {
        None => params.self_signed(&key),
        Some(parent) => {
            params.use_authority_key_identifier_extension = true;
            params.signed_by(&key, &parent.cert, &parent.key)
        }
    }
    .map_err(cert_error(name))?;
    Ok(LabCa { cert, key })
}

fn make_leaf(
    ca: &LabCa,
    names: &[String],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(String, String), InitError> {
    let first = names.first().cloned().unwrap_or_default();
    let mut params = CertificateParams::new(names.to_vec()).map_err(cert_error(&first))?;
    params.distinguished_name.push(DnType::CommonName, &first);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "autodiscoverd lab");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate().map_err(cert_error(&first))?;
    let cert = params
        .signed_by(&key, &ca.cert, &ca.key)
        .map_err(cert_error(&first))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn is_empty_dir(dir: &Path) -> Result<bool, InitError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_error(dir)(e)),
    }
}

/// Writes a complete lab into `dir` (created when missing). `now` dates the certificates.
/// Refuses a non-empty directory unless `overwrite`.
pub fn init(
    dir: &Path,
    spec: &LabSpec,
    now: SystemTime,
    overwrite: bool,
) -> Result<Written, InitError> {
    let spec = spec.clone().validated()?;
    if !overwrite && !is_empty_dir(dir)? {
        return Err(InitError::NotEmpty {
            dir: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let dir = std::path::absolute(dir).map_err(io_error(dir))?;
    let now = OffsetDateTime::from(now);
    let ports = spec.ports();

    let ca = make_ca(
        &format!("autodiscoverd lab CA ({})", spec.domain),
        None,
        now,
    )?;
    write(&dir.join(paths::CA_CERT), &ca.cert.pem(), false)?;
    write(&dir.join(paths::CA_KEY), &ca.key.serialize_pem(), true)?;
    let intermediate = make_ca(
        &format!("autodiscoverd lab issuing CA ({})", spec.domain),
        Some(&ca),
        now,
    )?;
    // Nobody trusts this one: it is written nowhere but into the certificate file.
    let untrusted = make_ca("untrusted self-signed CA", None, now)?;
    for plan in files::certificates(&spec) {
        let expired = spec.breakage == Some(Breakage::ExpiredCertificate)
            && plan.stem == CERT_ONPREM_AUTODISCOVER;
        let (not_before, not_after) = if expired {
            (now - DAY * 400, now - DAY * 30)
        } else {
            (now - DAY, now + DAY * 397)
        };
        let (issuer, sent_with_leaf) = match plan.issuer {
            Issuer::LabCa => (&ca, None),
            Issuer::IntermediateNotSent => (&intermediate, None),
            Issuer::Untrusted => (&untrusted, Some(untrusted.cert.pem())),
        };
        let (mut cert, key) = make_leaf(issuer, &plan.names, not_before, not_after)?;
        if let Some(chain) = sent_with_leaf {
            cert.push_str(&chain);
        }
        write(
            &dir.join("certs").join(format!("{}.pem", plan.stem)),
            &cert,
            false,
        )?;
        write(
            &dir.join("certs").join(format!("{}.key", plan.stem)),
            &key,
            true,
        )?;
    }
    write(
        &dir.join(paths::ONPREM_CONFIG),
        &files::onprem_config(&spec, ports),
        false,
    )?;
    write(
        &dir.join("onprem/directory.toml"),
        &files::onprem_directory(&spec),
        true,
    )?;
    write(
        &dir.join(paths::TENANT_CONFIG),
        &files::tenant_config(&spec, ports),
        false,
    )?;
    write(
        &dir.join("tenant/directory.toml"),
        &files::tenant_directory(&spec),
        true,
    )?;
    write(
        &dir.join(paths::HOSTS),
        &files::hosts_file(&spec, ports),
        false,
    )?;
    let ca_path = dir.join(paths::CA_CERT).display().to_string();
    write(
        &dir.join(paths::CURL_CONFIG),
        &files::curl_config(&spec, ports, &ca_path),
        false,
    )?;
    write(
        &dir.join(paths::DNS_MODE_CONFIG),
        &files::dns_mode_config(&spec, ports, &ca_path),
        false,
    )?;
    for zone in dns::zones(&spec) {
        write(&dir.join("dns").join(zone.file_name()), &zone.text, false)?;
    }
    write(
        &dir.join(dns::ZONES_FILE),
        &dns::zones_config(&spec, ports),
        false,
    )?;
    if spec.hma {
        let issuer = super::issuer::LabIssuer::generate(&spec.tenant_id(), "lab-signing-key")
            .map_err(|e| InitError::Issuer(e.to_string()))?;
        write(&dir.join(paths::ISSUER_KEY), issuer.private_key_pem(), true)?;
        write(
            &dir.join(paths::ISSUER_CONFIG),
            &files::issuer_config(&spec),
            false,
        )?;
    }
    let summary = files::summary(&spec, ports, &dir.display().to_string());
    write(&dir.join(paths::SUMMARY), &summary, false)?;
    Ok(Written { dir, spec, summary })
}
