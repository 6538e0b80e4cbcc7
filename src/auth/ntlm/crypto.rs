//! NTLM cryptography (MS-NLMP §3.3.2, §3.4.4, §3.4.5): NT hashes, NTOWFv2, the NTLMv2 proof,
//! session keys, the MIC, channel-binding hashes and the NTLM signature used by SPNEGO's
//! mechListMIC. Pure functions over bytes; comparisons in constant time.

use hmac::{KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use subtle::ConstantTimeEq;

type HmacMd5 = hmac::Hmac<Md5>;

/// An NT hash (NTOWFv1): MD4 of the UTF-16LE password.
pub type NtHash = [u8; 16];

/// UTF-16LE bytes of a string.
pub fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// NTOWFv1 (MS-NLMP §3.3.1): MD4(UTF-16LE(password)).
pub fn nt_hash(password: &str) -> NtHash {
    let mut md4 = Md4::new();
    md4.update(utf16le(password));
    md4.finalize().into()
}

/// HMAC-MD5 over the concatenation of `parts`.
pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC accepts keys of any length, so this never fails; the fallback keeps clippy calm.
    let Ok(mut mac) = <HmacMd5 as KeyInit>::new_from_slice(key) else {
        return [0; 16];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// MD5 over the concatenation of `parts`.
pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Upper-cases a user name per UTF-16 code unit, never changing its length (MS-NLMP uses
/// the Windows per-character mapping; `ß` stays `ß`, unlike Rust's full `to_uppercase`).
pub fn upper_user(user: &str) -> String {
    user.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) if u.len_utf16() == c.len_utf16() => u,
                _ => c,
            }
        })
        .collect()
}

/// NTOWFv2 = ResponseKeyNT (MS-NLMP §3.3.2): HMAC-MD5(NT, UTF-16LE(Upper(user) ‖ domain)).
/// The domain is used as given (not upper-cased).
pub fn ntowfv2(nt: &NtHash, user: &str, domain: &str) -> [u8; 16] {
    let mut who = utf16le(&upper_user(user));
    who.extend_from_slice(&utf16le(domain));
    hmac_md5(nt, &[&who])
}

/// NTProofStr = HMAC-MD5(ResponseKeyNT, ServerChallenge ‖ temp).
pub fn nt_proof(response_key: &[u8; 16], server_challenge: &[u8; 8], temp: &[u8]) -> [u8; 16] {
    hmac_md5(response_key, &[server_challenge, temp])
}

/// SessionBaseKey (= KeyExchangeKey for NTLMv2) = HMAC-MD5(ResponseKeyNT, NTProofStr).
pub fn session_base_key(response_key: &[u8; 16], proof: &[u8; 16]) -> [u8; 16] {
    hmac_md5(response_key, &[proof])
}

/// RC4 with a fresh state: encrypts and decrypts alike.
pub fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut rc4 = Rc4::new(key);
    data.iter().map(|b| b ^ rc4.next_byte()).collect()
}

/// The RC4 stream cipher (MS-NLMP uses it for key exchange and sealing checksums).
struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

// Indices are `u8` into `[u8; 256]`, so every access is in bounds.
#[allow(clippy::indexing_slicing)]
impl Rc4 {
    fn new(key: &[u8]) -> Rc4 {
        let mut s = [0u8; 256];
        for (i, v) in s.iter_mut().enumerate() {
            *v = i as u8;
        }
        if !key.is_empty() {
            let mut j: u8 = 0;
            for (i, k) in (0..=255u8).zip(key.iter().cycle()) {
                j = j.wrapping_add(s[usize::from(i)]).wrapping_add(*k);
                s.swap(usize::from(i), usize::from(j));
            }
        }
        Rc4 { s, i: 0, j: 0 }
    }

    fn next_byte(&mut self) -> u8 {
        self.i = self.i.wrapping_add(1);
        self.j = self.j.wrapping_add(self.s[usize::from(self.i)]);
        self.s.swap(usize::from(self.i), usize::from(self.j));
        let t = self.s[usize::from(self.i)].wrapping_add(self.s[usize::from(self.j)]);
        self.s[usize::from(t)]
    }
}

/// MIC = HMAC-MD5(ExportedSessionKey, Type1 ‖ Type2 ‖ Type3-with-the-MIC-zeroed).
pub fn mic(exported_session_key: &[u8; 16], type1: &[u8], type2: &[u8], type3: &[u8]) -> [u8; 16] {
    hmac_md5(exported_session_key, &[type1, type2, type3])
}

/// Direction of an NTLM signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// SIGNKEY with extended session security (MS-NLMP §3.4.5.2).
pub fn sign_key(exported_session_key: &[u8; 16], dir: Direction) -> [u8; 16] {
    let magic: &[u8] = match dir {
        Direction::ClientToServer => {
            b"session key to client-to-server signing key magic constant\0"
        }
        Direction::ServerToClient => {
            b"session key to server-to-client signing key magic constant\0"
        }
    };
    md5(&[exported_session_key, magic])
}

/// SEALKEY with extended session security (MS-NLMP §3.4.5.3): the key is cut to 16, 7 or 5
/// bytes for NEGOTIATE_128, NEGOTIATE_56 or neither.
pub fn seal_key(exported_session_key: &[u8; 16], flags: u32, dir: Direction) -> [u8; 16] {
    let len = if flags & super::flags::NEGOTIATE_128 != 0 {
        16
    } else if flags & super::flags::NEGOTIATE_56 != 0 {
        7
    } else {
        5
    };
    let key = exported_session_key
        .get(..len)
        .unwrap_or(exported_session_key);
    let magic: &[u8] = match dir {
        Direction::ClientToServer => {
            b"session key to client-to-server sealing key magic constant\0"
        }
        Direction::ServerToClient => {
            b"session key to server-to-client sealing key magic constant\0"
        }
    };
    md5(&[key, magic])
}

/// The NTLM signature (MS-NLMP §3.4.4.2, extended session security) of `message` with a
/// fresh RC4 state, as SPNEGO's mechListMIC uses it: `01000000 ‖ checksum(8) ‖ seq(4)`.
pub fn signature(
    exported_session_key: &[u8; 16],
    flags: u32,
    dir: Direction,
    seq: u32,
    message: &[u8],
) -> [u8; 16] {
    let seq_bytes = seq.to_le_bytes();
    let digest = hmac_md5(&sign_key(exported_session_key, dir), &[&seq_bytes, message]);
    let mut checksum = [0u8; 8];
    checksum.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    if flags & super::flags::NEGOTIATE_KEY_EXCH != 0 {
        let sealed = rc4(&seal_key(exported_session_key, flags, dir), &checksum);
        checksum.copy_from_slice(sealed.get(..8).unwrap_or(&[0; 8]));
    }
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&1u32.to_le_bytes());
    out[4..12].copy_from_slice(&checksum);
    out[12..].copy_from_slice(&seq_bytes);
    out
}

/// The MsvAvChannelBindings value (MS-NLMP §2.2.2.1, RFC 2744 §3.11 layout) for
/// `application_data` such as `tls-server-end-point:<hash of the certificate>`.
pub fn channel_binding_hash(application_data: &[u8]) -> [u8; 16] {
    let len = u32::try_from(application_data.len()).unwrap_or(u32::MAX);
    md5(&[&[0u8; 16], &len.to_le_bytes(), application_data])
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::auth::testing::hex;

    fn arr16(s: &str) -> [u8; 16] {
        hex(s).try_into().unwrap()
    }

    // MS-NLMP §4.2.1 common values: User "User", UserDom "Domain", Password "Password",
    // ServerChallenge 0123456789abcdef, ClientChallenge aa×8, Time 0, RandomSessionKey 55×16.
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

    /// MS-NLMP §4.2.4: the `temp` blob for NTLMv2 (target info "Domain"/"Server").
    fn spec_temp() -> Vec<u8> {
        hex("0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa 00000000
             02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000
             00000000")
    }

    #[test]
    fn nt_hash_matches_ms_nlmp_4_2_2_1_2() {
        // MS-NLMP §4.2.2.1.2 NTOWFv1("Password").
        assert_eq!(
            nt_hash("Password"),
            arr16("a4f49c406510bdcab6824ee7c30fd852")
        );
    }

    #[test]
    fn ntowfv2_matches_ms_nlmp_4_2_4_1_1() {
        // MS-NLMP §4.2.4.1.1 NTOWFv2("Password", "User", "Domain").
        assert_eq!(
            ntowfv2(&nt_hash("Password"), "User", "Domain"),
            arr16("0c868a403bfd7a93a3001ef22ef02e3f")
        );
        // The user name is upper-cased, so its case does not matter; the domain's does.
        assert_eq!(
            ntowfv2(&nt_hash("Password"), "user", "Domain"),
            arr16("0c868a403bfd7a93a3001ef22ef02e3f")
        );
        assert_ne!(
            ntowfv2(&nt_hash("Password"), "User", "DOMAIN"),
            arr16("0c868a403bfd7a93a3001ef22ef02e3f")
        );
    }

    #[test]
    fn ntlmv2_proof_and_session_key_match_ms_nlmp_4_2_4_2() {
        let key = ntowfv2(&nt_hash("Password"), "User", "Domain");
        let proof = nt_proof(&key, &SERVER_CHALLENGE, &spec_temp());
        // MS-NLMP §4.2.4.2.2 NTProofStr.
        assert_eq!(proof, arr16("68cd0ab851e51c96aabc927bebef6a1c"));
        // MS-NLMP §4.2.4.1.2 SessionBaseKey.
        let sbk = session_base_key(&key, &proof);
        assert_eq!(sbk, arr16("8de40ccadbc14a82f15cb0ad0de95ca3"));
        // MS-NLMP §4.2.4.2.3 EncryptedSessionKey = RC4(KeyExchangeKey, RandomSessionKey).
        assert_eq!(
            rc4(&sbk, &[0x55; 16]),
            hex("c5dad2544fc9799094ce1ce90bc9d03e")
        );
        // RC4 is its own inverse: the server recovers the exported session key.
        assert_eq!(
            rc4(&sbk, &hex("c5dad2544fc9799094ce1ce90bc9d03e")),
            vec![0x55; 16]
        );
    }

    #[test]
    fn signing_and_sealing_keys_match_published_vectors() {
        // MS-NLMP §4.2.4.1.4/§4.2.4.1.5 style keys for ExportedSessionKey 55×16
        // (values as in pyspnego tests/_ntlm_raw/test_crypto.py).
        let esk = [0x55u8; 16];
        assert_eq!(
            sign_key(&esk, Direction::ClientToServer),
            arr16("4788dc861b4782f35d43fd98fe1a2d39")
        );
        assert_eq!(
            sign_key(&esk, Direction::ServerToClient),
            arr16("d04d6f10741041d1d246d64188d7a8ad")
        );
        let f = crate::auth::ntlm::flags::NEGOTIATE_128;
        assert_eq!(
            seal_key(&esk, f, Direction::ClientToServer),
            arr16("59f600973cc4960a25480a7c196e4c58")
        );
        assert_eq!(
            seal_key(&esk, f, Direction::ServerToClient),
            arr16("9355f3a957c1583d25c4c2f11e40390e")
        );
    }

    #[test]
    fn channel_binding_hash_matches_the_microsoft_blog_vector() {
        // MS Open Specifications blog (2013-03-26), as carried in Chromium's
        // net/ntlm/ntlm_test_data.h.
        let mut app = b"tls-server-end-point:".to_vec();
        app.extend(hex(
            "ea05fefecc6b0bd571dbbc5baa3ed45386d0446835f7b74c85621b9983475f95",
        ));
        assert_eq!(
            channel_binding_hash(&app),
            arr16("6586e99d81c2fc984e47172fd4dd0310")
        );
    }

    #[test]
    fn user_upper_casing_keeps_the_length() {
        assert_eq!(upper_user("alice@contoso.com"), "ALICE@CONTOSO.COM");
        assert_eq!(upper_user("straße"), "STRAßE");
        assert_eq!(upper_user("élodie"), "ÉLODIE");
    }

    #[test]
    fn constant_time_compare_checks_length_and_content() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
