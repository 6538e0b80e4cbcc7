//! The NTLM message codec (MS-NLMP §2.2): a bounds-checked [`Reader`] and the three
//! messages. Parsing never indexes a slice: every offset and length goes through
//! `checked_add` and `get`, so truncated, overlapping or huge security buffers come back as
//! [`NtlmError`]s.

use super::{flags, MAX_MESSAGE, SIGNATURE};

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NtlmError {
    /// The message ends before a fixed field.
    #[error("message truncated")]
    Truncated,
    /// The message is longer than [`MAX_MESSAGE`].
    #[error("message too large")]
    TooLarge,
    /// The first eight bytes are not `NTLMSSP\0`.
    #[error("bad NTLMSSP signature")]
    BadSignature,
    /// Another message type than the one expected at this step.
    #[error("expected message type {expected}, got {got}")]
    WrongMessageType { expected: u32, got: u32 },
    /// A security buffer points outside the message or into its fixed header.
    #[error("security buffer out of range")]
    BufferOutOfRange,
    /// A string is not valid UTF-16LE (odd length, lone surrogate).
    #[error("bad UTF-16 string")]
    BadString,
    /// The AV pair list is truncated or has no terminator.
    #[error("bad AV pair list")]
    BadAvPairs,
    /// The NTLMv2 client challenge structure is malformed.
    #[error("bad NTLMv2 response")]
    BadNtlmV2Response,
}

/// A cursor over a byte slice that refuses to read past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], NtlmError> {
        let end = self.pos.checked_add(n).ok_or(NtlmError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(NtlmError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], NtlmError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u16(&mut self) -> Result<u16, NtlmError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, NtlmError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, NtlmError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.rest().is_empty()
    }
}

/// A security buffer field: `Len u16 | MaxLen u16 | Offset u32` (MS-NLMP §2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecBuf {
    pub len: u16,
    pub offset: u32,
}

impl SecBuf {
    fn read(r: &mut Reader<'_>) -> Result<SecBuf, NtlmError> {
        let len = r.u16()?;
        let _max_len = r.u16()?;
        let offset = r.u32()?;
        Ok(SecBuf { len, offset })
    }

    /// The bytes this buffer points at in `message`; the payload may not start before
    /// `header_end`. Empty buffers are empty whatever their offset.
    fn resolve<'a>(&self, message: &'a [u8], header_end: usize) -> Result<&'a [u8], NtlmError> {
        if self.len == 0 {
            return Ok(&[]);
        }
        let start = usize::try_from(self.offset).map_err(|_| NtlmError::BufferOutOfRange)?;
        if start < header_end {
            return Err(NtlmError::BufferOutOfRange);
        }
        let end = start
            .checked_add(usize::from(self.len))
            .ok_or(NtlmError::BufferOutOfRange)?;
        message.get(start..end).ok_or(NtlmError::BufferOutOfRange)
    }
}

fn header(message: &[u8], expected: u32) -> Result<Reader<'_>, NtlmError> {
    if message.len() > MAX_MESSAGE {
        return Err(NtlmError::TooLarge);
    }
    let mut r = Reader::new(message);
    if r.take(8).map_err(|_| NtlmError::BadSignature)? != SIGNATURE {
        return Err(NtlmError::BadSignature);
    }
    let got = r.u32()?;
    if got != expected {
        return Err(NtlmError::WrongMessageType { expected, got });
    }
    Ok(r)
}

/// A NEGOTIATE_MESSAGE (Type 1, MS-NLMP §2.2.1.1). Only the flags matter to a server; the
/// exact bytes are kept by the caller for the MIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiate {
    pub flags: u32,
}

/// Decodes a Type 1. Old clients send only 16 bytes; the optional domain and workstation
/// fields are not needed and not read.
pub fn parse_negotiate(message: &[u8]) -> Result<Negotiate, NtlmError> {
    let mut r = header(message, 1)?;
    let flags = r.u32()?;
    Ok(Negotiate { flags })
}

/// The names a CHALLENGE announces (all sent as UTF-16LE AV pairs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNames {
    /// NetBIOS domain, e.g. `CONTOSO` (also the TargetName).
    pub nb_domain: String,
    /// NetBIOS computer name, e.g. `AUTODISCOVER`.
    pub nb_computer: String,
    /// DNS domain, e.g. `contoso.com`.
    pub dns_domain: String,
    /// DNS computer name, e.g. `autodiscover.contoso.com`.
    pub dns_computer: String,
    /// DNS forest name.
    pub dns_tree: String,
}

/// AV pair ids (MS-NLMP §2.2.2.1).
pub mod av {
    pub const EOL: u16 = 0;
    pub const NB_COMPUTER: u16 = 1;
    pub const NB_DOMAIN: u16 = 2;
    pub const DNS_COMPUTER: u16 = 3;
    pub const DNS_DOMAIN: u16 = 4;
    pub const DNS_TREE: u16 = 5;
    pub const FLAGS: u16 = 6;
    pub const TIMESTAMP: u16 = 7;
    pub const TARGET_NAME: u16 = 9;
    pub const CHANNEL_BINDINGS: u16 = 10;
    /// MsvAvFlags bit: the AUTHENTICATE message carries a MIC.
    pub const FLAG_MIC_PRESENT: u32 = 0x2;
}

fn push_av(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value.get(..usize::from(len)).unwrap_or(value));
}

/// The TargetInfo of our CHALLENGE: the five names, the timestamp, EOL.
pub fn target_info(names: &ServerNames, timestamp: u64) -> Vec<u8> {
    use super::crypto::utf16le;
    let mut out = Vec::with_capacity(160);
    push_av(&mut out, av::NB_DOMAIN, &utf16le(&names.nb_domain));
    push_av(&mut out, av::NB_COMPUTER, &utf16le(&names.nb_computer));
    push_av(&mut out, av::DNS_DOMAIN, &utf16le(&names.dns_domain));
    push_av(&mut out, av::DNS_COMPUTER, &utf16le(&names.dns_computer));
    push_av(&mut out, av::DNS_TREE, &utf16le(&names.dns_tree));
    push_av(&mut out, av::TIMESTAMP, &timestamp.to_le_bytes());
    push_av(&mut out, av::EOL, &[]);
    out
}

/// Version field we announce: 10.0 build 20348, NTLMSSP revision 15.
const VERSION: [u8; 8] = [0x0a, 0x00, 0x7c, 0x4f, 0x00, 0x00, 0x00, 0x0f];

/// Builds a CHALLENGE_MESSAGE (Type 2, MS-NLMP §2.2.1.2). The Version field is always laid
/// out, so the payload starts at 56.
pub fn build_challenge(
    flags: u32,
    target_name: &[u8],
    server_challenge: &[u8; 8],
    target_info: &[u8],
) -> Vec<u8> {
    const PAYLOAD: usize = 56;
    let tn_len = u16::try_from(target_name.len()).unwrap_or(0);
    let ti_len = u16::try_from(target_info.len()).unwrap_or(0);
    let tn_off = PAYLOAD as u32;
    let ti_off = tn_off + u32::from(tn_len);
    let mut out = Vec::with_capacity(PAYLOAD + target_name.len() + target_info.len());
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&tn_len.to_le_bytes());
    out.extend_from_slice(&tn_len.to_le_bytes());
    out.extend_from_slice(&tn_off.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(server_challenge);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&ti_len.to_le_bytes());
    out.extend_from_slice(&ti_len.to_le_bytes());
    out.extend_from_slice(&ti_off.to_le_bytes());
    out.extend_from_slice(&VERSION);
    out.extend_from_slice(target_name.get(..usize::from(tn_len)).unwrap_or(&[]));
    out.extend_from_slice(target_info.get(..usize::from(ti_len)).unwrap_or(&[]));
    out
}

/// A decoded CHALLENGE (used by tests and the benchmark's client side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    pub flags: u32,
    pub server_challenge: [u8; 8],
    pub target_info: &'a [u8],
}

/// Decodes a Type 2.
pub fn parse_challenge(message: &[u8]) -> Result<Challenge<'_>, NtlmError> {
    let mut r = header(message, 2)?;
    let _target_name = SecBuf::read(&mut r)?;
    let flags = r.u32()?;
    let server_challenge = r.array::<8>()?;
    let _reserved = r.take(8)?;
    let ti = SecBuf::read(&mut r)?;
    let target_info = ti.resolve(message, 48)?;
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
    })
}

/// An AUTHENTICATE_MESSAGE (Type 3, MS-NLMP §2.2.1.3), borrowed from the wire bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate<'a> {
    pub flags: u32,
    pub lm_response: &'a [u8],
    pub nt_response: &'a [u8],
    pub domain: String,
    pub user: String,
    pub workstation: String,
    pub encrypted_session_key: &'a [u8],
    /// Bytes 72..88 when every payload starts at 88 or later (where a MIC can be).
    pub mic: Option<[u8; 16]>,
}

/// Fixed part of a Type 3 up to and including the flags.
const AUTH_FIXED: usize = 64;
/// Where the MIC sits (after the 8-byte Version).
pub const MIC_OFFSET: usize = 72;
const MIC_END: usize = 88;

/// Decodes a Type 3. Every non-empty security buffer must lie inside the message and after
/// the 64-byte fixed header; buffers may overlap each other (harmless to a reader).
pub fn parse_authenticate(message: &[u8]) -> Result<Authenticate<'_>, NtlmError> {
    let mut r = header(message, 3)?;
    let lm = SecBuf::read(&mut r)?;
    let nt = SecBuf::read(&mut r)?;
    let domain = SecBuf::read(&mut r)?;
    let user = SecBuf::read(&mut r)?;
    let workstation = SecBuf::read(&mut r)?;
    let session_key = SecBuf::read(&mut r)?;
    let flags = r.u32()?;
    let unicode = flags & flags::NEGOTIATE_UNICODE != 0;
    let bufs = [lm, nt, domain, user, workstation, session_key];
    let lowest = bufs
        .iter()
        .filter(|b| b.len > 0)
        .map(|b| usize::try_from(b.offset).unwrap_or(usize::MAX))
        .min()
        .unwrap_or(message.len());
    let mic = if lowest >= MIC_END {
        message
            .get(MIC_OFFSET..MIC_END)
            .and_then(|m| <[u8; 16]>::try_from(m).ok())
    } else {
        None
    };
    Ok(Authenticate {
        flags,
        lm_response: lm.resolve(message, AUTH_FIXED)?,
        nt_response: nt.resolve(message, AUTH_FIXED)?,
        domain: decode_string(domain.resolve(message, AUTH_FIXED)?, unicode)?,
        user: decode_string(user.resolve(message, AUTH_FIXED)?, unicode)?,
        workstation: decode_string(workstation.resolve(message, AUTH_FIXED)?, unicode)?,
        encrypted_session_key: session_key.resolve(message, AUTH_FIXED)?,
        mic,
    })
}

/// UTF-16LE strictly with UNICODE; otherwise OEM, read as Latin-1 (the client's code page
/// is unknown; non-ASCII OEM names simply will not match).
pub fn decode_string(bytes: &[u8], unicode: bool) -> Result<String, NtlmError> {
    if !unicode {
        return Ok(bytes.iter().map(|&b| char::from(b)).collect());
    }
    if bytes.len() % 2 != 0 {
        return Err(NtlmError::BadString);
    }
    let units = bytes.chunks_exact(2).map(|c| {
        u16::from_le_bytes([
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        ])
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| NtlmError::BadString)
}

/// The AV pairs of a list up to MsvAvEOL (bytes after the terminator are ignored).
pub fn parse_av_pairs(data: &[u8]) -> Result<Vec<(u16, &[u8])>, NtlmError> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    loop {
        let id = r.u16().map_err(|_| NtlmError::BadAvPairs)?;
        let len = r.u16().map_err(|_| NtlmError::BadAvPairs)?;
        let value = r
            .take(usize::from(len))
            .map_err(|_| NtlmError::BadAvPairs)?;
        if id == av::EOL {
            return Ok(out);
        }
        out.push((id, value));
    }
}

/// The NTLMv2 response: NTProofStr and the client challenge structure `temp`
/// (NTLMv2_CLIENT_CHALLENGE, MS-NLMP §2.2.2.7) with what the server needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtlmV2Response<'a> {
    pub proof: [u8; 16],
    /// Everything after the proof; the proof's HMAC covers it whole.
    pub temp: &'a [u8],
    pub timestamp: u64,
    pub av_flags: Option<u32>,
    pub channel_bindings: Option<[u8; 16]>,
    pub target_name: Option<String>,
}

/// Decodes an NT response longer than 24 bytes as NTLMv2.
pub fn parse_ntlmv2_response(nt: &[u8]) -> Result<NtlmV2Response<'_>, NtlmError> {
    let bad = |_| NtlmError::BadNtlmV2Response;
    let mut r = Reader::new(nt);
    let proof = r.array::<16>().map_err(bad)?;
    let temp = r.rest();
    let resp_type = r.array::<1>().map_err(bad)?;
    let hi_resp_type = r.array::<1>().map_err(bad)?;
    if resp_type != [1] || hi_resp_type != [1] {
        return Err(NtlmError::BadNtlmV2Response);
    }
    let _reserved = r.take(6).map_err(bad)?;
    let timestamp = r.u64().map_err(bad)?;
    let _client_challenge = r.take(8).map_err(bad)?;
    let _reserved = r.take(4).map_err(bad)?;
    let pairs = parse_av_pairs(r.rest())?;
    let mut out = NtlmV2Response {
        proof,
        temp,
        timestamp,
        av_flags: None,
        channel_bindings: None,
        target_name: None,
    };
    for (id, value) in pairs {
        match id {
            av::FLAGS => {
                let v = <[u8; 4]>::try_from(value).map_err(|_| NtlmError::BadAvPairs)?;
                out.av_flags = Some(u32::from_le_bytes(v));
            }
            av::CHANNEL_BINDINGS => {
                let v = <[u8; 16]>::try_from(value).map_err(|_| NtlmError::BadAvPairs)?;
                out.channel_bindings = Some(v);
            }
            av::TARGET_NAME => out.target_name = decode_string(value, true).ok(),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::auth::testing::hex;

    #[test]
    fn curl_style_type1_parses() {
        // curl 7.88.1: flags 0x00088206 (no UNICODE), 32 bytes, empty buffers.
        let t1 = hex("4e544c4d53535000 01000000 06820800 0000000000000000 0000000000000000");
        assert_eq!(parse_negotiate(&t1).unwrap().flags, 0x0008_8206);
        // A 16-byte Type 1 from an old client is enough.
        assert_eq!(parse_negotiate(&t1[..16]).unwrap().flags, 0x0008_8206);
    }

    #[test]
    fn bad_signature_wrong_type_and_truncation_are_errors() {
        let mut t1 = hex("4e544c4d53535000 01000000 06820800");
        assert_eq!(
            parse_authenticate(&t1),
            Err(NtlmError::WrongMessageType {
                expected: 3,
                got: 1
            })
        );
        assert_eq!(parse_negotiate(&t1[..14]), Err(NtlmError::Truncated));
        assert_eq!(parse_negotiate(&t1[..5]), Err(NtlmError::BadSignature));
        t1[0] = b'X';
        assert_eq!(parse_negotiate(&t1), Err(NtlmError::BadSignature));
        assert_eq!(
            parse_negotiate(&vec![0u8; MAX_MESSAGE + 1]),
            Err(NtlmError::TooLarge)
        );
    }

    #[test]
    fn ms_nlmp_4_2_4_3_challenge_decodes() {
        // MS-NLMP §4.2.4.3 CHALLENGE_MESSAGE.
        let t2 = hex(
            "4e544c4d53535000 02000000 0c000c0038000000 33828ae2 0123456789abcdef 0000000000000000
             2400240044000000 060070170000000f 530065007200760065007200
             02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000",
        );
        let c = parse_challenge(&t2).unwrap();
        assert_eq!(c.flags, 0xe28a_8233);
        assert_eq!(
            c.server_challenge,
            [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
        );
        let pairs = parse_av_pairs(c.target_info).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].0, av::NB_DOMAIN);
        assert_eq!(decode_string(pairs[1].1, true).unwrap(), "Server");
    }

    #[test]
    fn our_challenge_round_trips() {
        let names = ServerNames {
            nb_domain: "CONTOSO".into(),
            nb_computer: "AUTODISCOVER".into(),
            dns_domain: "contoso.com".into(),
            dns_computer: "autodiscover.contoso.com".into(),
            dns_tree: "contoso.com".into(),
        };
        let ti = target_info(&names, 42);
        let t2 = build_challenge(0xe28a_8215, b"C\0O\0", &[7; 8], &ti);
        let c = parse_challenge(&t2).unwrap();
        assert_eq!(c.flags, 0xe28a_8215);
        assert_eq!(c.server_challenge, [7; 8]);
        assert_eq!(c.target_info, &ti[..]);
        let pairs = parse_av_pairs(&ti).unwrap();
        assert!(pairs.contains(&(av::TIMESTAMP, &42u64.to_le_bytes()[..])));
        // Payload starts after the Version field.
        assert_eq!(&t2[48..56], &VERSION);
    }

    fn type3_with(bufs: [(u16, u32); 6], flags: u32, total: usize) -> Vec<u8> {
        let mut m = SIGNATURE.to_vec();
        m.extend_from_slice(&3u32.to_le_bytes());
        for (len, off) in bufs {
            m.extend_from_slice(&len.to_le_bytes());
            m.extend_from_slice(&len.to_le_bytes());
            m.extend_from_slice(&off.to_le_bytes());
        }
        m.extend_from_slice(&flags.to_le_bytes());
        m.resize(total, 0x41);
        m
    }

    #[test]
    fn security_buffers_outside_the_message_are_rejected() {
        let ok = [(0, 0); 6];
        assert!(parse_authenticate(&type3_with(ok, 0, 64)).is_ok());
        // Past the end.
        let mut b = ok;
        b[1] = (100, 64);
        assert_eq!(
            parse_authenticate(&type3_with(b, 0, 100)),
            Err(NtlmError::BufferOutOfRange)
        );
        // Into the fixed header.
        b[1] = (8, 8);
        assert_eq!(
            parse_authenticate(&type3_with(b, 0, 100)),
            Err(NtlmError::BufferOutOfRange)
        );
        // Huge offset and length do not overflow.
        b[1] = (u16::MAX, u32::MAX);
        assert_eq!(
            parse_authenticate(&type3_with(b, 0, 100)),
            Err(NtlmError::BufferOutOfRange)
        );
        // Overlapping buffers are readable.
        b[1] = (16, 64);
        b[3] = (8, 68);
        let msg = type3_with(b, 0, 100);
        let t3 = parse_authenticate(&msg).unwrap();
        assert_eq!(t3.user, "AAAAAAAA");
        assert_eq!(t3.mic, None);
    }

    #[test]
    fn odd_length_utf16_is_rejected() {
        let mut b = [(0, 0); 6];
        b[3] = (3, 64);
        assert_eq!(
            parse_authenticate(&type3_with(b, flags::NEGOTIATE_UNICODE, 80)),
            Err(NtlmError::BadString)
        );
        assert_eq!(
            decode_string(&[0x00, 0xd8], true),
            Err(NtlmError::BadString)
        );
        assert_eq!(decode_string(b"ALICE", false).unwrap(), "ALICE");
    }

    #[test]
    fn av_pairs_need_a_terminator_and_complete_values() {
        assert_eq!(parse_av_pairs(&[]), Err(NtlmError::BadAvPairs));
        assert_eq!(parse_av_pairs(&[1, 0, 9, 0, 1]), Err(NtlmError::BadAvPairs));
        assert_eq!(
            parse_av_pairs(&[1, 0, 1, 0, 7, 0, 0, 0, 0, 0xff]).unwrap(),
            vec![(1u16, &[7u8][..])]
        );
    }
}
