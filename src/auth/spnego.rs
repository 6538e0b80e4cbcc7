//! SPNEGO (RFC 4178, MS-SPNG) as HTTP Negotiate (RFC 4559) uses it with NTLM inside:
//! decoding NegTokenInit / NegTokenResp and encoding NegTokenResp. Strict DER subset: no
//! indefinite lengths, no trailing bytes. [`route`] decides which acceptor a Negotiate
//! token belongs to: Kerberos tokens go whole to the system's GSS-API, never parsed here.

use super::der::{self, DerError, DerReader};

/// DER contents of OID 1.3.6.1.4.1.311.2.2.10 (NTLMSSP).
pub const NTLMSSP_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];
/// DER contents of OID 1.3.6.1.5.5.2 (SPNEGO).
pub const SPNEGO_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];

/// DER contents of OID 1.2.840.113554.1.2.2 (Kerberos V5, RFC 4121).
pub const KRB5_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// DER contents of OID 1.2.840.48018.1.2.2 (the Kerberos OID Windows sends first, MS-KILE).
pub const MS_KRB5_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];

/// Upper bound on a Negotiate token.
pub const MAX_TOKEN: usize = 12 * 1024;

/// negState values (RFC 4178 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegState {
    AcceptCompleted = 0,
    AcceptIncomplete = 1,
    Reject = 2,
    RequestMic = 3,
}

/// Why a token could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpnegoError {
    #[error("token too large")]
    TooLarge,
    #[error("not a SPNEGO token")]
    NotSpnego,
    #[error(transparent)]
    Der(#[from] DerError),
}

/// The initiator's first token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegTokenInit<'a> {
    /// OID contents of each offered mechanism, in the client's order of preference.
    pub mech_types: Vec<&'a [u8]>,
    /// The DER of `mechTypes` exactly as received (input of the mechListMIC).
    pub mech_types_der: &'a [u8],
    /// The optimistic token of the first mechanism.
    pub mech_token: Option<&'a [u8]>,
    pub mech_list_mic: Option<&'a [u8]>,
}

/// A continuation token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegTokenResp<'a> {
    pub neg_state: Option<u8>,
    pub supported_mech: Option<&'a [u8]>,
    pub response_token: Option<&'a [u8]>,
    pub mech_list_mic: Option<&'a [u8]>,
}

/// A decoded Negotiate token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegToken<'a> {
    Init(NegTokenInit<'a>),
    Resp(NegTokenResp<'a>),
}

/// Decodes `[APPLICATION 0] { SPNEGO OID, [0] NegTokenInit }`, a bare `[0] NegTokenInit`,
/// or `[1] NegTokenResp`.
pub fn parse(token: &[u8]) -> Result<NegToken<'_>, SpnegoError> {
    if token.len() > MAX_TOKEN {
        return Err(SpnegoError::TooLarge);
    }
    match token.first() {
        Some(0x60) => {
            let app = der::single(token, 0x60)?;
            let mut r = DerReader::new(app.value);
            if r.expect(0x06)?.value != SPNEGO_OID {
                return Err(SpnegoError::NotSpnego);
            }
            let init = r.expect(0xa0)?;
            r.finish()?;
            parse_init(init.value).map(NegToken::Init)
        }
        Some(0xa0) => parse_init(der::single(token, 0xa0)?.value).map(NegToken::Init),
        Some(0xa1) => parse_resp(der::single(token, 0xa1)?.value).map(NegToken::Resp),
        _ => Err(SpnegoError::NotSpnego),
    }
}

fn parse_init(body: &[u8]) -> Result<NegTokenInit<'_>, SpnegoError> {
    let seq = der::single(body, 0x30)?;
    let mut r = DerReader::new(seq.value);
    let mech_list = r.expect(0xa0)?;
    let list = der::single(mech_list.value, 0x30)?;
    let mut mechs = DerReader::new(list.value);
    let mut mech_types = Vec::new();
    while !mechs.is_empty() {
        mech_types.push(mechs.expect(0x06)?.value);
    }
    let _req_flags = r.optional(0xa1)?;
    let mech_token = match r.optional(0xa2)? {
        Some(t) => Some(der::single(t.value, 0x04)?.value),
        None => None,
    };
    let mech_list_mic = match r.optional(0xa3)? {
        Some(t) => Some(der::single(t.value, 0x04)?.value),
        None => None,
    };
    r.finish()?;
    Ok(NegTokenInit {
        mech_types,
        mech_types_der: list.raw,
        mech_token,
        mech_list_mic,
    })
}

fn parse_resp(body: &[u8]) -> Result<NegTokenResp<'_>, SpnegoError> {
    let seq = der::single(body, 0x30)?;
    let mut r = DerReader::new(seq.value);
    let neg_state = match r.optional(0xa0)? {
        Some(t) => {
            let e = der::single(t.value, 0x0a)?;
            match e.value {
                [v] => Some(*v),
                _ => return Err(SpnegoError::Der(DerError::BadLength)),
            }
        }
        None => None,
    };
    let supported_mech = match r.optional(0xa1)? {
        Some(t) => Some(der::single(t.value, 0x06)?.value),
        None => None,
    };
    let response_token = match r.optional(0xa2)? {
        Some(t) => Some(der::single(t.value, 0x04)?.value),
        None => None,
    };
    let mech_list_mic = match r.optional(0xa3)? {
        Some(t) => Some(der::single(t.value, 0x04)?.value),
        None => None,
    };
    r.finish()?;
    Ok(NegTokenResp {
        neg_state,
        supported_mech,
        response_token,
        mech_list_mic,
    })
}

/// The acceptor a Negotiate token goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// This server's NTLMSSP acceptor (bare NTLMSSP, SPNEGO preferring NTLMSSP, and
    /// everything malformed, which it refuses).
    Ntlm,
    /// The GSS-API acceptor, handed the whole token.
    Kerberos,
}

fn is_kerberos(oid: &[u8]) -> bool {
    oid == KRB5_OID || oid == MS_KRB5_OID
}

/// Routes one `Negotiate` token. A raw Kerberos token (RFC 4121 §4.1 framing) and a
/// NegTokenInit whose first mechanism this server knows is Kerberos go to Kerberos; a
/// NegTokenResp continues the exchange in progress on the connection (`kerberos_pending`).
pub fn route(token: &[u8], kerberos_pending: bool) -> Mechanism {
    if token.len() > MAX_TOKEN || token.starts_with(super::ntlm::SIGNATURE) {
        return Mechanism::Ntlm;
    }
    match token.first() {
        Some(0x60) => {
            let Ok(app) = der::single(token, 0x60) else {
                return Mechanism::Ntlm;
            };
            match DerReader::new(app.value).expect(0x06) {
                Ok(oid) if is_kerberos(oid.value) => Mechanism::Kerberos,
                Ok(oid) if oid.value == SPNEGO_OID => match parse(token) {
                    Ok(NegToken::Init(init)) => init
                        .mech_types
                        .iter()
                        .find_map(|m| {
                            if is_kerberos(m) {
                                Some(Mechanism::Kerberos)
                            } else if *m == NTLMSSP_OID {
                                Some(Mechanism::Ntlm)
                            } else {
                                None
                            }
                        })
                        .unwrap_or(Mechanism::Ntlm),
                    _ => Mechanism::Ntlm,
                },
                _ => Mechanism::Ntlm,
            }
        }
        Some(0xa1) if kerberos_pending => Mechanism::Kerberos,
        _ => Mechanism::Ntlm,
    }
}

/// Encodes `[1] NegTokenResp`.
pub fn encode_resp(
    neg_state: Option<NegState>,
    supported_mech: Option<&[u8]>,
    response_token: Option<&[u8]>,
    mech_list_mic: Option<&[u8]>,
) -> Vec<u8> {
    let mut seq = Vec::new();
    if let Some(s) = neg_state {
        seq.extend(der::tlv(0xa0, &der::tlv(0x0a, &[s as u8])));
    }
    if let Some(m) = supported_mech {
        seq.extend(der::tlv(0xa1, &der::tlv(0x06, m)));
    }
    if let Some(t) = response_token {
        seq.extend(der::tlv(0xa2, &der::tlv(0x04, t)));
    }
    if let Some(m) = mech_list_mic {
        seq.extend(der::tlv(0xa3, &der::tlv(0x04, m)));
    }
    der::tlv(0xa1, &der::tlv(0x30, &seq))
}

/// Encodes an initial `[APPLICATION 0]` NegTokenInit (tests and benchmarks play client).
pub fn encode_init(mech_types: &[&[u8]], mech_token: Option<&[u8]>) -> Vec<u8> {
    let list: Vec<u8> = mech_types.iter().flat_map(|m| der::tlv(0x06, m)).collect();
    let mut seq = der::tlv(0xa0, &der::tlv(0x30, &list));
    if let Some(t) = mech_token {
        seq.extend(der::tlv(0xa2, &der::tlv(0x04, t)));
    }
    let mut app = der::tlv(0x06, SPNEGO_OID);
    app.extend(der::tlv(0xa0, &der::tlv(0x30, &seq)));
    der::tlv(0x60, &app)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::auth::testing::hex;

    #[test]
    fn gss_ntlmssp_init_token_decodes() {
        // The NegTokenInit curl + gss-ntlmssp sends (RFC 4178 framing), with a 40-byte Type 1.
        let mut t1 = b"NTLMSSP\0".to_vec();
        t1.extend(hex(
            "01000000 17820ee2 0000000000000000 0000000000000000 0000000000000000",
        ));
        let mut token =
            hex("6048 0606 2b0601050502 a03e 303c a00e 300c 060a 2b06010401823702020a a22a 0428");
        token.extend(&t1);
        match parse(&token).unwrap() {
            NegToken::Init(init) => {
                assert_eq!(init.mech_types, vec![NTLMSSP_OID]);
                assert_eq!(
                    init.mech_types_der,
                    &hex("300c060a2b06010401823702020a")[..]
                );
                assert_eq!(init.mech_token, Some(&t1[..]));
                assert_eq!(init.mech_list_mic, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(encode_init(&[NTLMSSP_OID], Some(&t1)), token);
    }

    #[test]
    fn final_server_token_matches_the_iis_shape() {
        // `a1 1b 30 19 a0 03 0a 01 00 a3 12 04 10 <16-byte signature>`.
        let sig = [1u8, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0];
        let t = encode_resp(Some(NegState::AcceptCompleted), None, None, Some(&sig));
        assert_eq!(&t[..13], &hex("a11b3019a0030a0100a3120410")[..]);
        match parse(&t).unwrap() {
            NegToken::Resp(r) => {
                assert_eq!(r.neg_state, Some(0));
                assert_eq!(r.mech_list_mic, Some(&sig[..]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn challenge_response_round_trips_with_long_lengths() {
        let type2 = vec![0x42u8; 300];
        let t = encode_resp(
            Some(NegState::AcceptIncomplete),
            Some(NTLMSSP_OID),
            Some(&type2),
            None,
        );
        match parse(&t).unwrap() {
            NegToken::Resp(r) => {
                assert_eq!(r.neg_state, Some(1));
                assert_eq!(r.supported_mech, Some(NTLMSSP_OID));
                assert_eq!(r.response_token, Some(&type2[..]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kerberos_only_and_garbage_tokens_are_classified_or_refused() {
        let krb5 = hex("2a864886f712010202");
        match parse(&encode_init(&[&krb5], Some(b"\x6e\x00"))).unwrap() {
            NegToken::Init(i) => assert!(!i.mech_types.contains(&NTLMSSP_OID)),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(b"NTLMSSP\0"), Err(SpnegoError::NotSpnego));
        assert_eq!(parse(&[]), Err(SpnegoError::NotSpnego));
        assert!(parse(&hex("6003 0601 00")).is_err());
        assert!(parse(&hex("a1 03 30 01 00")).is_err());
        let mut trailing = encode_resp(Some(NegState::Reject), None, None, None);
        trailing.push(0);
        assert!(parse(&trailing).is_err());
        assert_eq!(
            parse(&vec![0xa1; MAX_TOKEN + 1]),
            Err(SpnegoError::TooLarge)
        );
    }

    #[test]
    fn kerberos_tokens_route_to_gss_and_ntlm_stays_here() {
        let ap_req = b"\x01\x00\x6e\x03\x02\x01\x05";
        // Windows: MS KRB5, KRB5, NEGOEX, NTLMSSP, with a Kerberos optimistic token.
        let negoex = hex("2b06010401823702021e");
        let windows = encode_init(&[MS_KRB5_OID, KRB5_OID, &negoex, NTLMSSP_OID], Some(ap_req));
        assert_eq!(route(&windows, false), Mechanism::Kerberos);
        // MIT (curl --negotiate, pyspnego with gssapi): KRB5 first.
        assert_eq!(
            route(&encode_init(&[KRB5_OID, NTLMSSP_OID], Some(ap_req)), false),
            Mechanism::Kerberos
        );
        // NTLMSSP before Kerberos, or no Kerberos at all: this server's NTLM.
        assert_eq!(
            route(
                &encode_init(&[NTLMSSP_OID, KRB5_OID], Some(b"NTLMSSP\0")),
                false
            ),
            Mechanism::Ntlm
        );
        // Unknown mechanisms are skipped, not chosen.
        assert_eq!(
            route(&encode_init(&[&negoex, NTLMSSP_OID], None), false),
            Mechanism::Ntlm
        );
        assert_eq!(
            route(&encode_init(&[&negoex, KRB5_OID], None), false),
            Mechanism::Kerberos
        );
        // A raw Kerberos GSS token (RFC 4121 §4.1), as some clients send without SPNEGO.
        let mut inner = der::tlv(0x06, KRB5_OID);
        inner.extend_from_slice(ap_req);
        assert_eq!(route(&der::tlv(0x60, &inner), false), Mechanism::Kerberos);
        // Bare NTLMSSP, whatever is pending.
        assert_eq!(route(b"NTLMSSP\0\x01\0\0\0", true), Mechanism::Ntlm);
        // A continuation follows the exchange in progress.
        let resp = encode_resp(Some(NegState::AcceptIncomplete), None, Some(b"x"), None);
        assert_eq!(route(&resp, true), Mechanism::Kerberos);
        assert_eq!(route(&resp, false), Mechanism::Ntlm);
        // Garbage and oversized tokens never reach GSS-API.
        assert_eq!(route(&hex("6005 0603 2a8648"), false), Mechanism::Ntlm);
        assert_eq!(route(&[0x60, 0x82, 0xff], false), Mechanism::Ntlm);
        let mut huge = der::tlv(0x06, KRB5_OID);
        huge.extend(vec![0u8; MAX_TOKEN]);
        assert_eq!(route(&der::tlv(0x60, &huge), false), Mechanism::Ntlm);
        assert_eq!(route(&[], false), Mechanism::Ntlm);
    }

    #[test]
    fn random_and_truncated_tokens_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(4178);
        let good = encode_init(&[NTLMSSP_OID], Some(&[1, 2, 3, 4]));
        for _ in 0..5000 {
            let mut t = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..t.len());
                t[i] = rng.gen();
            }
            t.truncate(rng.gen_range(0..=t.len()));
            let _ = parse(&t);
            let random: Vec<u8> = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect();
            let _ = parse(&random);
            let _ = route(&t, rng.gen());
            let _ = route(&random, true);
        }
    }
}
