//! Legacy AUTHENTICATE messages, accepted only with `auth.ntlm_allow_legacy = true`:
//! NTLMv1, NTLMv1 with Extended Session Security (MS-NLMP §3.3.1) and anonymous messages
//! (MS-NLMP §3.2.5.1.2). LM-only responses are refused whatever the setting.
//!
//! NTLMv1 is weak: the response is three DES encryptions of the server challenge under the
//! NT hash, so a captured exchange (and, without ESS, a chosen challenge) gives the hash
//! away. It exists for legacy labs; the default acceptor takes NTLMv2 only.

use des::cipher::{BlockCipherEncrypt, KeyInit};
use des::Des;
use md4::{Digest, Md4};

use super::crypto::{self, NtHash};
use super::flags::{ANONYMOUS, NEGOTIATE_EXTENDED_SESSIONSECURITY, NEGOTIATE_KEY_EXCH};
use super::messages::Authenticate;

/// A legacy kind of authentication (never NTLMv2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// 24-byte NT response = DESL(NT hash, ServerChallenge).
    NtlmV1,
    /// 24-byte NT response = DESL(NT hash, MD5(ServerChallenge ‖ ClientChallenge)[0..8]),
    /// the client challenge being the first 8 bytes of the LM response.
    NtlmV1Ess,
    /// Empty user and NT response, or the ANONYMOUS flag: no password was proven.
    Anonymous,
}

impl Legacy {
    /// A short name for logs.
    pub fn label(self) -> &'static str {
        match self {
            Legacy::NtlmV1 => "ntlmv1",
            Legacy::NtlmV1Ess => "ntlmv1_ess",
            Legacy::Anonymous => "anonymous",
        }
    }
}

/// What an AUTHENTICATE's responses are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// An NTLMv2 response (NT response longer than 24 bytes).
    NtlmV2,
    /// NTLMv1, NTLMv1 with ESS or anonymous.
    Legacy(Legacy),
    /// LM or LMv2 only (no NT response), or an NT response of no known length: always refused.
    Refused,
}

/// Classifies an AUTHENTICATE by its responses and flags.
pub fn classify(t3: &Authenticate<'_>) -> ResponseKind {
    // MS-NLMP §3.2.5.1.2: anonymous = empty user, empty NT, empty or Z(1) LM response.
    let anonymous_shape =
        t3.user.is_empty() && t3.nt_response.is_empty() && matches!(t3.lm_response, [] | [0]);
    if anonymous_shape || t3.flags & ANONYMOUS != 0 {
        return ResponseKind::Legacy(Legacy::Anonymous);
    }
    match t3.nt_response.len() {
        n if n > 24 => ResponseKind::NtlmV2,
        // With ESS the LM field is ClientChallenge ‖ Z(16) (MS-NLMP §3.3.1).
        24 if t3.flags & NEGOTIATE_EXTENDED_SESSIONSECURITY != 0 => {
            if t3.lm_response.len() == 24 {
                ResponseKind::Legacy(Legacy::NtlmV1Ess)
            } else {
                ResponseKind::Refused
            }
        }
        24 => ResponseKind::Legacy(Legacy::NtlmV1),
        _ => ResponseKind::Refused,
    }
}

/// A DES key (8 bytes, parity bits left zero; DES ignores them) from 7 key bytes.
fn des_key(seven: &[u8]) -> [u8; 8] {
    let bits = seven
        .iter()
        .take(7)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut key = [0u8; 8];
    for (i, k) in key.iter_mut().enumerate() {
        let shift = 49 - 7 * i;
        *k = (((bits >> shift) & 0x7f) as u8) << 1;
    }
    key
}

fn des(seven: &[u8], data: &[u8; 8]) -> [u8; 8] {
    let cipher = Des::new(&des_key(seven).into());
    let mut block = (*data).into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// DESL(K, D) (MS-NLMP §6): D encrypted under K[0..7], K[7..14] and K[14..16] ‖ Z(5).
pub fn desl(key: &[u8; 16], data: &[u8; 8]) -> [u8; 24] {
    let mut last = [0u8; 7];
    last[..2].copy_from_slice(&key[14..]);
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&des(&key[..7], data));
    out[8..16].copy_from_slice(&des(&key[7..14], data));
    out[16..].copy_from_slice(&des(&last, data));
    out
}

/// The NTLMv1 NT response (MS-NLMP §3.3.1, without ESS).
pub fn ntlmv1_response(nt: &NtHash, server_challenge: &[u8; 8]) -> [u8; 24] {
    desl(nt, server_challenge)
}

/// The NTLMv1 NT response with Extended Session Security (MS-NLMP §3.3.1).
pub fn ntlmv1_ess_response(
    nt: &NtHash,
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
) -> [u8; 24] {
    let digest = crypto::md5(&[server_challenge, client_challenge]);
    let mut challenge = [0u8; 8];
    challenge.copy_from_slice(&digest[..8]);
    desl(nt, &challenge)
}

/// SessionBaseKey for NTLMv1 = MD4(NT hash) (MS-NLMP §3.3.1).
pub fn session_base_key_v1(nt: &NtHash) -> [u8; 16] {
    let mut md4 = Md4::new();
    md4.update(nt);
    md4.finalize().into()
}

/// Verifies an NTLMv1 (`ess` false) or NTLMv1-with-ESS response against `nt_hash` (`None`:
/// unknown user; the same work is done against a key nobody knows) and returns the
/// ExportedSessionKey. Only called with a response [`classify`] put in these kinds.
pub fn verify_v1(
    t3: &Authenticate<'_>,
    ess: bool,
    server_challenge: &[u8; 8],
    nt_hash: Option<&NtHash>,
) -> Option<[u8; 16]> {
    let (key, known) = match nt_hash {
        Some(h) => (*h, true),
        None => ([0u8; 16], false),
    };
    let sbk = session_base_key_v1(&key);
    let (expected, key_exchange_key) = if ess {
        let client_challenge: [u8; 8] = t3.lm_response.get(..8)?.try_into().ok()?;
        (
            ntlmv1_ess_response(&key, server_challenge, &client_challenge),
            // MS-NLMP §3.4.5.1 KXKEY with ESS.
            crypto::hmac_md5(&sbk, &[server_challenge, &client_challenge]),
        )
    } else {
        // We never grant LM_KEY or NON_NT_SESSION_KEY, so KXKEY is the SessionBaseKey.
        (ntlmv1_response(&key, server_challenge), sbk)
    };
    let matches = crypto::ct_eq(&expected, t3.nt_response);
    if !(matches && known) {
        return None;
    }
    Some(exported_session_key(
        t3.flags,
        &key_exchange_key,
        t3.encrypted_session_key,
    ))
}

/// ExportedSessionKey: the client's random key with KEY_EXCH, else the KeyExchangeKey.
pub fn exported_session_key(flags: u32, key_exchange_key: &[u8; 16], encrypted: &[u8]) -> [u8; 16] {
    if flags & NEGOTIATE_KEY_EXCH != 0 {
        if let Ok(k) = <[u8; 16]>::try_from(crypto::rc4(key_exchange_key, encrypted)) {
            return k;
        }
    }
    *key_exchange_key
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::auth::testing::hex;

    // MS-NLMP §4.2.1 common values: Password "Password", ServerChallenge 0123456789abcdef,
    // ClientChallenge aa×8, RandomSessionKey 55×16.
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];

    #[test]
    fn ntlmv1_response_and_session_keys_match_ms_nlmp_4_2_2() {
        let nt = crypto::nt_hash("Password");
        // MS-NLMP §4.2.2.1.3 SessionBaseKey = MD4(NTOWFv1).
        assert_eq!(
            session_base_key_v1(&nt).to_vec(),
            hex("d87262b0cde4b1cb7499becccdf10784")
        );
        // MS-NLMP §4.2.2.2.1 NTLMv1 Response = DESL(NTOWFv1, ServerChallenge).
        assert_eq!(
            ntlmv1_response(&nt, &SERVER_CHALLENGE).to_vec(),
            hex("67c43011f30298a2ad35ece64f16331c44bdbed927841f94")
        );
        // MS-NLMP §4.2.2.2.3 EncryptedSessionKey = RC4(KeyExchangeKey = SessionBaseKey,
        // RandomSessionKey): the server recovers 55×16.
        let esk = hex("518822b1b3f350c8958682ecbb3e3cb7");
        assert_eq!(
            exported_session_key(NEGOTIATE_KEY_EXCH, &session_base_key_v1(&nt), &esk),
            [0x55; 16]
        );
    }

    #[test]
    fn ntlmv1_ess_response_and_key_exchange_key_match_ms_nlmp_4_2_3() {
        let nt = crypto::nt_hash("Password");
        // MS-NLMP §4.2.3.2.2 NTLMv1 Response with ESS.
        assert_eq!(
            ntlmv1_ess_response(&nt, &SERVER_CHALLENGE, &CLIENT_CHALLENGE).to_vec(),
            hex("7537f803ae367128ca458204bde7caf81e97ed2683267232")
        );
        // MS-NLMP §4.2.3.1.2 KeyExchangeKey = HMAC-MD5(SessionBaseKey, SC ‖ CC).
        assert_eq!(
            crypto::hmac_md5(
                &session_base_key_v1(&nt),
                &[&SERVER_CHALLENGE, &CLIENT_CHALLENGE]
            )
            .to_vec(),
            hex("eb93429a8bd952f8b89c55b87f475edc")
        );
    }

    #[test]
    fn des_keys_spread_seven_bytes_over_eight() {
        assert_eq!(des_key(&[0xff; 7]), [0xfe; 8]);
        assert_eq!(des_key(&[0; 7]), [0; 8]);
        assert_eq!(
            des_key(&[0x80, 0, 0, 0, 0, 0, 0x01]),
            [0x80, 0, 0, 0, 0, 0, 0, 0x02]
        );
    }

    fn t3<'a>(flags: u32, user: &str, lm: &'a [u8], nt: &'a [u8]) -> Authenticate<'a> {
        Authenticate {
            flags,
            lm_response: lm,
            nt_response: nt,
            domain: String::new(),
            user: user.into(),
            workstation: String::new(),
            encrypted_session_key: &[],
            mic: None,
        }
    }

    #[test]
    fn responses_are_classified_by_length_flags_and_emptiness() {
        use ResponseKind::*;
        let ess = NEGOTIATE_EXTENDED_SESSIONSECURITY;
        let cases: [(Authenticate<'_>, ResponseKind); 9] = [
            (t3(0, "", &[], &[]), Legacy(super::Legacy::Anonymous)),
            (t3(0, "", &[0], &[]), Legacy(super::Legacy::Anonymous)),
            (
                t3(ANONYMOUS, "x", &[], &[1; 24]),
                Legacy(super::Legacy::Anonymous),
            ),
            (t3(0, "", &[1; 24], &[]), Refused),
            (t3(0, "alice", &[1; 24], &[]), Refused),
            (t3(0, "alice", &[], &[1; 23]), Refused),
            (
                t3(0, "alice", &[1; 24], &[1; 24]),
                Legacy(super::Legacy::NtlmV1),
            ),
            (
                t3(ess, "alice", &[1; 24], &[1; 24]),
                Legacy(super::Legacy::NtlmV1Ess),
            ),
            (t3(ess, "alice", &[], &[1; 24]), Refused),
        ];
        for (msg, kind) in cases {
            assert_eq!(classify(&msg), kind, "{msg:?}");
        }
        assert_eq!(classify(&t3(0, "alice", &[], &[1; 25])), NtlmV2);
    }

    #[test]
    fn v1_verification_needs_the_right_hash_and_a_known_user() {
        let nt = crypto::nt_hash("Password");
        let plain = ntlmv1_response(&nt, &SERVER_CHALLENGE);
        let msg = t3(0, "User", &[], &plain);
        assert!(verify_v1(&msg, false, &SERVER_CHALLENGE, Some(&nt)).is_some());
        assert!(verify_v1(&msg, false, &SERVER_CHALLENGE, None).is_none());
        let wrong = crypto::nt_hash("password");
        assert!(verify_v1(&msg, false, &SERVER_CHALLENGE, Some(&wrong)).is_none());
        // The same response read as ESS does not verify.
        let mut lm = CLIENT_CHALLENGE.to_vec();
        lm.extend([0; 16]);
        let as_ess = t3(NEGOTIATE_EXTENDED_SESSIONSECURITY, "User", &lm, &plain);
        assert!(verify_v1(&as_ess, true, &SERVER_CHALLENGE, Some(&nt)).is_none());
        let ess = ntlmv1_ess_response(&nt, &SERVER_CHALLENGE, &CLIENT_CHALLENGE);
        let good = t3(NEGOTIATE_EXTENDED_SESSIONSECURITY, "User", &lm, &ess);
        // No KEY_EXCH: the exported key is the ESS KeyExchangeKey (MS-NLMP §4.2.3.1.2).
        assert_eq!(
            verify_v1(&good, true, &SERVER_CHALLENGE, Some(&nt)).map(|k| k.to_vec()),
            Some(hex("eb93429a8bd952f8b89c55b87f475edc"))
        );
    }
}
