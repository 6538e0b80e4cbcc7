//! Kerberos around the GSS-API acceptor, sans-IO: which directory login a client principal
//! is, whether the service principal a ticket was for is one this server answers for, and
//! what a keytab holds (principal names and encryption types only; key bytes are skipped,
//! never copied). Tickets and Kerberos cryptography stay inside the system's GSS-API.

use crate::directory::Login;

/// Why a client principal does not log in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("principal without a realm")]
    NoRealm,
    #[error("realm {0} is not accepted (auth.kerberos.realms)")]
    ForeignRealm(String),
    #[error("not a user principal")]
    NotAUser,
}

/// Splits `name@REALM` at the last unescaped `@` and removes RFC 1964 §2.1.1 escapes
/// from the name (`alice\@contoso.com` is the enterprise name `alice@contoso.com`).
fn split_principal(principal: &str) -> Option<(String, &str)> {
    let bytes = principal.as_bytes();
    let at = (0..bytes.len()).rev().find(|&i| {
        bytes.get(i) == Some(&b'@') && {
            let backslashes = bytes
                .get(..i)
                .unwrap_or_default()
                .iter()
                .rev()
                .take_while(|b| **b == b'\\')
                .count();
            backslashes % 2 == 0
        }
    })?;
    let (name, realm) = (principal.get(..at)?, principal.get(at + 1..)?);
    let mut unescaped = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            unescaped.push(chars.next()?);
        } else {
            unescaped.push(c);
        }
    }
    Some((unescaped, realm))
}

/// The directory login of an authenticated client principal (MS-KILE: the principal name is
/// the sAMAccountName in the domain's realm). `alice@CONTOSO.COM` is `NETBIOS\alice` (the
/// realm's domain); an enterprise principal `alice@contoso.com@CONTOSO.COM` is the UPN
/// `alice@contoso.com`. Principals of realms not in `realms` and service principals
/// (`HTTP/host`) are refused.
pub fn client_login(
    principal: &str,
    realms: &[String],
    netbios_domain: Option<&str>,
) -> Result<Login, PrincipalError> {
    let (name, realm) = split_principal(principal).ok_or(PrincipalError::NoRealm)?;
    if realm.is_empty() {
        return Err(PrincipalError::NoRealm);
    }
    if !realms.iter().any(|r| r.eq_ignore_ascii_case(realm)) {
        return Err(PrincipalError::ForeignRealm(realm.to_string()));
    }
    if name.is_empty() || name.contains('/') {
        return Err(PrincipalError::NotAUser);
    }
    if name.contains('@') {
        return Login::parse(&name).ok_or(PrincipalError::NotAUser);
    }
    // With no NetBIOS name configured the directory accepts any domain for DOMAIN\user
    // (one directory, one domain); the realm is the natural spelling then.
    let domain = netbios_domain.unwrap_or(realm);
    Login::parse(&format!("{domain}\\{name}")).ok_or(PrincipalError::NotAUser)
}

/// Whether the service principal a context was accepted for is one of the configured
/// ones. `HTTP/host` entries match in any realm; `HTTP/host@REALM` only in that realm.
/// Service and host compare case-insensitively (DNS names), the realm exactly as
/// Kerberos does once upper-cased by convention.
pub fn service_allowed(target: &str, allowed: &[String]) -> bool {
    let Some((name, realm)) = split_principal(target) else {
        return false;
    };
    allowed.iter().any(|a| match split_principal(a) {
        Some((a_name, a_realm)) => a_name.eq_ignore_ascii_case(&name) && a_realm == realm,
        None => a.eq_ignore_ascii_case(&name),
    })
}

/// The realm of `HTTP/host@REALM`, if written.
pub fn realm_of(principal: &str) -> Option<String> {
    split_principal(principal).map(|(_, r)| r.to_string())
}

/// One key of a keytab, without the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeytabEntry {
    /// `HTTP/autodiscover.contoso.com@CONTOSO.COM`
    pub principal: String,
    pub kvno: u32,
    /// RFC 3961 encryption type number.
    pub enctype: u16,
}

/// Why a keytab file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeytabError {
    #[error("not an MIT keytab (version 0x0502 expected)")]
    NotAKeytab,
    #[error("the keytab is truncated or malformed")]
    Malformed,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KeytabError> {
        let head = self.0.get(..n).ok_or(KeytabError::Malformed)?;
        self.0 = self.0.get(n..).ok_or(KeytabError::Malformed)?;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, KeytabError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([
            *b.first().ok_or(KeytabError::Malformed)?,
            *b.get(1).ok_or(KeytabError::Malformed)?,
        ]))
    }
    fn u32(&mut self) -> Result<u32, KeytabError> {
        let hi = u32::from(self.u16()?);
        let lo = u32::from(self.u16()?);
        Ok(hi << 16 | lo)
    }
    fn text(&mut self) -> Result<String, KeytabError> {
        let n = usize::from(self.u16()?);
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

/// Lists the keys of an MIT keytab file (format version 0x0502, as `ktutil`, `ktpass`
/// and `samba-tool domain exportkeytab` write it) without copying a key.
pub fn keytab_entries(file: &[u8]) -> Result<Vec<KeytabEntry>, KeytabError> {
    let mut c = Cursor(file);
    if c.take(2).map_err(|_| KeytabError::NotAKeytab)? != [0x05, 0x02] {
        return Err(KeytabError::NotAKeytab);
    }
    let mut out = Vec::new();
    while !c.0.is_empty() {
        let size = c.u32()? as i32;
        let len = usize::try_from(size.unsigned_abs()).map_err(|_| KeytabError::Malformed)?;
        let record = c.take(len)?;
        if size <= 0 {
            continue; // a hole left by a deleted entry
        }
        let mut r = Cursor(record);
        let components = r.u16()?;
        let realm = r.text()?;
        let mut names = Vec::new();
        for _ in 0..components {
            names.push(r.text()?);
        }
        let _name_type = r.u32()?;
        let _timestamp = r.u32()?;
        let vno8 = r.take(1)?.first().copied().unwrap_or(0);
        let enctype = r.u16()?;
        let key_len = usize::from(r.u16()?);
        r.take(key_len)?;
        // A 32-bit kvno follows when the record has room for it (krb5 1.14+ writers).
        let kvno = match r.u32() {
            Ok(v) if v != 0 => v,
            _ => u32::from(vno8),
        };
        out.push(KeytabEntry {
            principal: format!("{}@{realm}", names.join("/")),
            kvno,
            enctype,
        });
    }
    Ok(out)
}

/// RFC 3961/3962/8009 encryption types that are AES.
pub fn is_aes(enctype: u16) -> bool {
    matches!(enctype, 17..=20)
}

/// RC4-HMAC (RFC 4757), the NT-hash-keyed type AD used before AES.
pub const RC4_HMAC: u16 = 23;

#[cfg(test)]
mod tests {
    use super::*;

    fn realms() -> Vec<String> {
        vec!["CONTOSO.COM".to_string()]
    }

    #[test]
    fn user_principals_map_to_down_level_logins_in_their_realm() {
        assert_eq!(
            client_login("alice@CONTOSO.COM", &realms(), Some("CONTOSO")),
            Ok(Login::DownLevel {
                domain: "CONTOSO".into(),
                user: "alice".into()
            })
        );
        // No NetBIOS name configured: the realm stands for the domain.
        assert_eq!(
            client_login("bob@CONTOSO.COM", &realms(), None),
            Ok(Login::DownLevel {
                domain: "CONTOSO.COM".into(),
                user: "bob".into()
            })
        );
    }

    #[test]
    fn enterprise_principals_are_upns() {
        for p in [
            "alice\\@contoso.com@CONTOSO.COM",
            "alice@contoso.com@CONTOSO.COM",
        ] {
            assert_eq!(
                client_login(p, &realms(), Some("CONTOSO")),
                Ok(Login::UserPrincipalName("alice@contoso.com".into())),
                "{p}"
            );
        }
    }

    #[test]
    fn foreign_realms_services_and_nonsense_are_refused() {
        assert_eq!(
            client_login("alice@FABRIKAM.COM", &realms(), Some("CONTOSO")),
            Err(PrincipalError::ForeignRealm("FABRIKAM.COM".into()))
        );
        assert_eq!(
            client_login("HTTP/web.contoso.com@CONTOSO.COM", &realms(), None),
            Err(PrincipalError::NotAUser)
        );
        assert_eq!(
            client_login("alice", &realms(), None),
            Err(PrincipalError::NoRealm)
        );
        assert_eq!(
            client_login("alice@", &realms(), None),
            Err(PrincipalError::NoRealm)
        );
        assert_eq!(
            client_login("@CONTOSO.COM", &realms(), None),
            Err(PrincipalError::NotAUser)
        );
        // An escaped @ is not the realm separator.
        assert_eq!(
            client_login("alice\\@CONTOSO.COM", &realms(), None),
            Err(PrincipalError::NoRealm)
        );
    }

    #[test]
    fn service_principals_match_with_or_without_realm() {
        let allowed = vec![
            "HTTP/autodiscover.contoso.com".to_string(),
            "HTTP/mail.contoso.com@CONTOSO.COM".to_string(),
        ];
        assert!(service_allowed(
            "HTTP/autodiscover.contoso.com@CONTOSO.COM",
            &allowed
        ));
        assert!(service_allowed(
            "http/AutoDiscover.contoso.com@FABRIKAM.COM",
            &allowed
        ));
        assert!(service_allowed(
            "HTTP/mail.contoso.com@CONTOSO.COM",
            &allowed
        ));
        assert!(!service_allowed(
            "HTTP/mail.contoso.com@FABRIKAM.COM",
            &allowed
        ));
        assert!(!service_allowed(
            "HTTP/other.contoso.com@CONTOSO.COM",
            &allowed
        ));
        assert!(!service_allowed("HTTP/autodiscover.contoso.com", &allowed));
        assert_eq!(
            realm_of("HTTP/x@CONTOSO.COM").as_deref(),
            Some("CONTOSO.COM")
        );
        assert_eq!(realm_of("HTTP/x"), None);
    }

    /// A keytab as MIT's ktutil writes it: two keys for one principal, then a hole.
    fn keytab() -> Vec<u8> {
        fn entry(enctype: u16, key: &[u8], kvno: u32) -> Vec<u8> {
            let mut e = Vec::new();
            e.extend(2u16.to_be_bytes());
            for s in ["CONTOSO.COM", "HTTP", "autodiscover.contoso.com"] {
                e.extend((s.len() as u16).to_be_bytes());
                e.extend(s.as_bytes());
            }
            e.extend(1u32.to_be_bytes()); // KRB5_NT_PRINCIPAL
            e.extend(0x6000_0000u32.to_be_bytes());
            e.push(kvno as u8);
            e.extend(enctype.to_be_bytes());
            e.extend((key.len() as u16).to_be_bytes());
            e.extend(key);
            e.extend(kvno.to_be_bytes());
            let mut out = (e.len() as i32).to_be_bytes().to_vec();
            out.extend(e);
            out
        }
        let mut kt = vec![0x05, 0x02];
        kt.extend(entry(18, &[0xaa; 32], 300));
        kt.extend(entry(23, &[0xbb; 16], 3));
        kt.extend((-8i32).to_be_bytes());
        kt.extend([0u8; 8]);
        kt
    }

    #[test]
    fn keytabs_list_principals_and_enctypes_but_no_keys() {
        let entries = keytab_entries(&keytab()).unwrap();
        assert_eq!(
            entries,
            vec![
                KeytabEntry {
                    principal: "HTTP/autodiscover.contoso.com@CONTOSO.COM".into(),
                    kvno: 300,
                    enctype: 18
                },
                KeytabEntry {
                    principal: "HTTP/autodiscover.contoso.com@CONTOSO.COM".into(),
                    kvno: 3,
                    enctype: RC4_HMAC
                },
            ]
        );
        assert!(is_aes(entries[0].enctype) && !is_aes(entries[1].enctype));
        assert!(!format!("{entries:?}").contains("170"));
    }

    #[test]
    fn broken_keytabs_are_errors_not_panics() {
        assert_eq!(keytab_entries(b""), Err(KeytabError::NotAKeytab));
        assert_eq!(keytab_entries(b"\x05\x01"), Err(KeytabError::NotAKeytab));
        let kt = keytab();
        for cut in 3..kt.len() - 9 {
            let _ = keytab_entries(&kt[..cut]);
        }
        assert_eq!(keytab_entries(&kt[..20]), Err(KeytabError::Malformed));
    }
}
