//! `[auth.kerberos]` (Negotiate with Kerberos through the system's GSS-API) and
//! `[auth.winbind]` (NTLM responses checked by the domain through `ntlm_auth`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{resolve_against, ConfigError, Validator};
use crate::auth::kerberos::{self, KeytabEntry};

/// Serde mirror of `[auth.kerberos]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KerberosSection {
    pub keytab: String,
    pub service_principals: Vec<String>,
    pub realms: Option<Vec<String>>,
}

/// Serde mirror of `[auth.winbind]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinbindSection {
    pub ntlm_auth: Option<String>,
    pub helpers: Option<usize>,
    pub timeout_ms: Option<u64>,
}

/// Validated `[auth.winbind]`: how to run the helpers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinbindSettings {
    /// `ntlm_auth` and its arguments (`--helper-protocol=ntlm-server-1` included).
    pub command: Vec<String>,
    pub helpers: usize,
    pub timeout: Duration,
}

/// Validated `[auth.kerberos]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosConfig {
    /// The keytab file (a secret: never logged beyond its path).
    pub keytab: PathBuf,
    /// `HTTP/host` or `HTTP/host@REALM`: the service principals tickets may be for.
    pub service_principals: Vec<String>,
    /// Realms whose users log in (upper case).
    pub realms: Vec<String>,
    /// The keytab's keys for the service principals (names and encryption types only).
    pub keys: Vec<KeytabEntry>,
}

impl KerberosConfig {
    /// Service principals whose keys are all RC4 (no AES key): worth a warning at start.
    pub fn rc4_only(&self) -> Vec<String> {
        self.service_principals
            .iter()
            .filter(|spn| {
                let keys: Vec<&KeytabEntry> = self
                    .keys
                    .iter()
                    .filter(|k| kerberos::service_allowed(&k.principal, &[(*spn).clone()]))
                    .collect();
                keys.iter().any(|k| k.enctype == kerberos::RC4_HMAC)
                    && !keys.iter().any(|k| kerberos::is_aes(k.enctype))
            })
            .cloned()
            .collect()
    }
}

const KEY: &str = "auth.kerberos";

impl Validator<'_> {
    pub(super) fn kerberos(&self, raw: KerberosSection) -> Result<KerberosConfig, ConfigError> {
        if !cfg!(feature = "kerberos") {
            return Err(self.invalid(
                KEY,
                "this autodiscoverd was built without Kerberos support",
                "build it with `cargo build --release --features kerberos` (needs MIT krb5's development files and clang: `apt install libkrb5-dev libclang-dev pkg-config`), install the Debian package (built with it), or remove [auth.kerberos]",
            ));
        }
        let keytab = resolve_against(self.file, Path::new(&raw.keytab));
        let bytes = self.read_keytab(&keytab)?;
        // GSS-API gets the name through the environment: absolute, whatever the cwd.
        let keytab = std::fs::canonicalize(&keytab).unwrap_or(keytab);
        let entries = kerberos::keytab_entries(&bytes).map_err(|e| {
            self.invalid(
                "auth.kerberos.keytab",
                format!("{}: {e}", keytab.display()),
                "export the keytab again (`samba-tool domain exportkeytab FILE --principal=HTTP/host` or `ktpass /out FILE /princ HTTP/host@REALM ...`)",
            )
        })?;
        if raw.service_principals.is_empty() {
            return Err(self.invalid(
                "auth.kerberos.service_principals",
                "no service principal",
                "list the SPNs clients ask tickets for, e.g. [\"HTTP/autodiscover.contoso.com\"]",
            ));
        }
        let mut keys = Vec::new();
        for spn in &raw.service_principals {
            let (name, _) = spn.split_once('@').unwrap_or((spn, ""));
            let plausible = name
                .split_once('/')
                .is_some_and(|(service, host)| !service.is_empty() && !host.is_empty())
                && !spn.chars().any(|c| c.is_whitespace() || c.is_control());
            if !plausible {
                return Err(self.invalid(
                    "auth.kerberos.service_principals",
                    format!("`{spn}` is not a service principal"),
                    "write SERVICE/host[@REALM], e.g. \"HTTP/autodiscover.contoso.com\"",
                ));
            }
            let matching: Vec<KeytabEntry> = entries
                .iter()
                .filter(|e| kerberos::service_allowed(&e.principal, std::slice::from_ref(spn)))
                .cloned()
                .collect();
            if matching.is_empty() {
                let present: Vec<&str> = entries.iter().map(|e| e.principal.as_str()).collect();
                return Err(self.invalid(
                    "auth.kerberos.service_principals",
                    format!(
                        "{} holds no key for {spn} (it has: {})",
                        keytab.display(),
                        if present.is_empty() { "nothing".to_string() } else { present.join(", ") }
                    ),
                    "export the SPN's keys into the keytab (see docs/active-directory.md), or correct the SPN",
                ));
            }
            keys.extend(matching);
        }
        let realms: Vec<String> = match raw.realms {
            Some(r) if !r.is_empty() => r.iter().map(|r| r.trim().to_ascii_uppercase()).collect(),
            Some(_) => {
                return Err(self.invalid(
                    "auth.kerberos.realms",
                    "empty list",
                    "leave it out (the realms of the service principals) or list realms such as [\"CONTOSO.COM\"]",
                ))
            }
            None => {
                let mut r: Vec<String> = keys
                    .iter()
                    .filter_map(|k| kerberos::realm_of(&k.principal))
                    .collect();
                r.sort();
                r.dedup();
                r
            }
        };
        Ok(KerberosConfig {
            keytab,
            service_principals: raw.service_principals,
            realms,
            keys,
        })
    }

    fn read_keytab(&self, keytab: &Path) -> Result<Vec<u8>, ConfigError> {
        let key = "auth.kerberos.keytab";
        let meta = std::fs::metadata(keytab).map_err(|e| {
            self.invalid(
                key,
                format!("{}: {e}", keytab.display()),
                "point it at the keytab exported for the service account (relative paths start at the configuration file's directory)",
            )
        })?;
        if !meta.is_file() {
            return Err(self.invalid(
                key,
                format!("{} is not a file", keytab.display()),
                "point it at the keytab file",
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(self.invalid(
                    key,
                    format!(
                        "{} is readable or writable by group or others (mode {mode:04o}); a keytab holds the service's long-term keys",
                        keytab.display()
                    ),
                    format!(
                        "chmod 0600 {} and chown it to the user autodiscoverd runs as",
                        keytab.display()
                    ),
                ));
            }
        }
        std::fs::read(keytab).map_err(|e| {
            self.invalid(
                key,
                format!("cannot read {}: {e}", keytab.display()),
                "make the keytab readable by the user autodiscoverd runs as (owner, mode 0600)",
            )
        })
    }

    pub(super) fn winbind(&self, raw: WinbindSection) -> Result<WinbindSettings, ConfigError> {
        let helpers = raw.helpers.unwrap_or(2);
        if !(1..=64).contains(&helpers) {
            return Err(self.invalid(
                "auth.winbind.helpers",
                format!("{helpers} is outside 1..=64"),
                "use 2 to 8: each helper checks one response at a time in a few milliseconds",
            ));
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(5000);
        if !(100..=60_000).contains(&timeout_ms) {
            return Err(self.invalid(
                "auth.winbind.timeout_ms",
                format!("{timeout_ms} is outside 100..=60000"),
                "use 5000: a helper that has not answered by then is replaced",
            ));
        }
        let program = raw.ntlm_auth.unwrap_or_else(|| "ntlm_auth".to_string());
        if program.trim().is_empty() {
            return Err(self.invalid(
                "auth.winbind.ntlm_auth",
                "empty",
                "leave it out (ntlm_auth from PATH) or give the path, e.g. \"/usr/bin/ntlm_auth\"",
            ));
        }
        Ok(WinbindSettings {
            command: vec![program, "--helper-protocol=ntlm-server-1".to_string()],
            helpers,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::tests::example;
    use super::super::Config;

    /// The example configuration with `extra` appended, loaded from `dir` (so that relative
    /// keytab paths start there).
    fn load(dir: &std::path::Path, extra: &str) -> Result<Config, super::ConfigError> {
        let (_, text) = example();
        let text = text.replacen("[services]", &format!("{extra}\n[services]"), 1);
        Config::from_toml(&dir.join("autodiscoverd.toml"), &text)
    }

    /// A keytab with AES and RC4 keys for one SPN, as `keytab_entries` reads it.
    fn keytab(dir: &std::path::Path, mode: u32, enctypes: &[u16]) {
        let mut kt = vec![0x05, 0x02];
        for &enctype in enctypes {
            let mut e = Vec::new();
            e.extend(2u16.to_be_bytes());
            for s in ["CONTOSO.COM", "HTTP", "autodiscover.contoso.com"] {
                e.extend((s.len() as u16).to_be_bytes());
                e.extend(s.as_bytes());
            }
            e.extend([0, 0, 0, 1, 0, 0, 0, 0, 3]);
            e.extend(enctype.to_be_bytes());
            e.extend(16u16.to_be_bytes());
            e.extend([0x11; 16]);
            kt.extend((e.len() as i32).to_be_bytes());
            kt.extend(e);
        }
        let path = dir.join("http.keytab");
        std::fs::write(&path, kt).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    const KERBEROS: &str = "[auth.kerberos]\nkeytab = \"http.keytab\"\nservice_principals = [\"HTTP/autodiscover.contoso.com\"]\n";

    #[cfg(not(feature = "kerberos"))]
    #[test]
    fn a_build_without_kerberos_refuses_kerberos_and_says_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        keytab(dir.path(), 0o600, &[18]);
        let e = load(dir.path(), KERBEROS).unwrap_err().to_string();
        assert!(e.contains("auth.kerberos"), "{e}");
        assert!(e.contains("--features kerberos"), "{e}");
        assert!(e.contains("libkrb5-dev"), "{e}");
    }

    #[cfg(feature = "kerberos")]
    #[test]
    fn keytabs_readable_by_others_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        keytab(dir.path(), 0o640, &[18]);
        let e = load(dir.path(), KERBEROS).unwrap_err().to_string();
        assert!(e.contains("auth.kerberos.keytab"), "{e}");
        assert!(e.contains("mode 0640") && e.contains("chmod 0600"), "{e}");
        keytab(dir.path(), 0o600, &[18]);
        let c = load(dir.path(), KERBEROS).unwrap();
        let k = c.auth.kerberos.unwrap();
        assert_eq!(k.realms, vec!["CONTOSO.COM"]);
        assert!(k.keytab.is_absolute());
        assert!(k.rc4_only().is_empty());
    }

    #[cfg(feature = "kerberos")]
    #[test]
    fn spns_without_keys_and_rc4_only_keytabs_are_found_at_start() {
        let dir = tempfile::tempdir().unwrap();
        keytab(dir.path(), 0o600, &[23]);
        let c = load(dir.path(), KERBEROS).unwrap();
        assert_eq!(
            c.auth.kerberos.unwrap().rc4_only(),
            vec!["HTTP/autodiscover.contoso.com"]
        );
        let other = KERBEROS.replace("autodiscover.contoso", "mail.contoso");
        let e = load(dir.path(), &other).unwrap_err().to_string();
        assert!(
            e.contains("holds no key for HTTP/mail.contoso.com")
                && e.contains("HTTP/autodiscover.contoso.com@CONTOSO.COM"),
            "{e}"
        );
        let e = load(
            dir.path(),
            &KERBEROS.replace("http.keytab", "missing.keytab"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("auth.kerberos.keytab"), "{e}");
        let e = load(dir.path(), &format!("{KERBEROS}bogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn winbind_settings_are_bounded_and_need_ntlm() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(dir.path(), "[auth.winbind]\n").unwrap();
        let w = c.auth.winbind.unwrap();
        assert_eq!(
            w.command,
            vec!["ntlm_auth", "--helper-protocol=ntlm-server-1"]
        );
        assert_eq!((w.helpers, w.timeout.as_millis()), (2, 5000));
        let e = load(dir.path(), "[auth.winbind]\nhelpers = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.winbind.helpers"), "{e}");
        let e = load(dir.path(), "[auth.winbind]\ntimeout_ms = 10\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.winbind.timeout_ms"), "{e}");
    }
}
