//! A minimal NTLMv2 initiator (MS-NLMP §3.1.5). The server never uses it: it exists for the
//! unit and integration tests (malformed-message and replay cases that real clients cannot
//! be made to send) and for the handshake benchmark. Interoperability is checked against
//! independent clients (curl, requests-ntlm, pyspnego) in `tests/it/ntlm.rs`.

use super::crypto::{self, NtHash};
use super::flags::*;
use super::messages::{self, av, NtlmError};
use super::SIGNATURE;

/// Type 1 flags like pyspnego's: UNICODE, SIGN, SEAL, ESS, 128, KEY_EXCH, 56, VERSION.
pub const DEFAULT_FLAGS: u32 = 0xe208_8237;

/// What the client sends and how.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub user: String,
    pub domain: String,
    pub workstation: String,
    pub nt_hash: NtHash,
    /// Add MsvAvFlags = MIC present and the MIC.
    pub mic: bool,
    /// MsvAvChannelBindings value.
    pub channel_bindings: Option<[u8; 16]>,
    /// MsvAvTargetName (SPN).
    pub target_name: Option<String>,
    /// Timestamp of the blob; `None` copies the server's MsvAvTimestamp.
    pub timestamp: Option<u64>,
    pub client_challenge: [u8; 8],
    /// Random session key for KEY_EXCH (used when the server granted KEY_EXCH).
    pub random_session_key: [u8; 16],
}

impl ClientOptions {
    /// Options for `user`/`domain` with `password`, MIC on, no channel bindings.
    pub fn new(user: &str, domain: &str, password: &str) -> ClientOptions {
        ClientOptions {
            user: user.into(),
            domain: domain.into(),
            workstation: "WORKSTATION".into(),
            nt_hash: crypto::nt_hash(password),
            mic: true,
            channel_bindings: None,
            target_name: None,
            timestamp: None,
            client_challenge: [0xaa; 8],
            random_session_key: [0x55; 16],
        }
    }
}

/// A NEGOTIATE message with `flags` and no domain or workstation (32 bytes + Version).
pub fn negotiate_message(flags: u32) -> Vec<u8> {
    let mut m = SIGNATURE.to_vec();
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&[0u8; 16]);
    m.extend_from_slice(&[0x0a, 0x00, 0x7c, 0x4f, 0x00, 0x00, 0x00, 0x0f]);
    m
}

/// The AUTHENTICATE for `type2`, and the exported session key.
pub fn authenticate_message(
    opts: &ClientOptions,
    type1: &[u8],
    type2: &[u8],
) -> Result<(Vec<u8>, [u8; 16]), NtlmError> {
    let challenge = messages::parse_challenge(type2)?;
    let flags = challenge.flags;
    let unicode = flags & NEGOTIATE_UNICODE != 0;
    let mut server_ts = None;
    let mut pairs = Vec::new();
    for (id, value) in messages::parse_av_pairs(challenge.target_info)? {
        if id == av::TIMESTAMP {
            server_ts = <[u8; 8]>::try_from(value).ok().map(u64::from_le_bytes);
        }
        push_av(&mut pairs, id, value);
    }
    if opts.mic {
        push_av(&mut pairs, av::FLAGS, &av::FLAG_MIC_PRESENT.to_le_bytes());
    }
    if let Some(cbt) = &opts.channel_bindings {
        push_av(&mut pairs, av::CHANNEL_BINDINGS, cbt);
    }
    if let Some(spn) = &opts.target_name {
        push_av(&mut pairs, av::TARGET_NAME, &crypto::utf16le(spn));
    }
    push_av(&mut pairs, av::EOL, &[]);
    let timestamp = opts.timestamp.or(server_ts).unwrap_or(0);
    let mut temp = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
    temp.extend_from_slice(&timestamp.to_le_bytes());
    temp.extend_from_slice(&opts.client_challenge);
    temp.extend_from_slice(&[0u8; 4]);
    temp.extend_from_slice(&pairs);
    temp.extend_from_slice(&[0u8; 4]);
    let key = crypto::ntowfv2(&opts.nt_hash, &opts.user, &opts.domain);
    let proof = crypto::nt_proof(&key, &challenge.server_challenge, &temp);
    let mut nt = proof.to_vec();
    nt.extend_from_slice(&temp);
    let session_base_key = crypto::session_base_key(&key, &proof);
    let (encrypted_key, exported) = if flags & NEGOTIATE_KEY_EXCH != 0 {
        (
            crypto::rc4(&session_base_key, &opts.random_session_key),
            opts.random_session_key,
        )
    } else {
        (Vec::new(), session_base_key)
    };
    let text = |s: &str| {
        if unicode {
            crypto::utf16le(s)
        } else {
            s.bytes().collect()
        }
    };
    let payloads = [
        vec![0u8; 24],
        nt,
        text(&opts.domain),
        text(&opts.user),
        text(&opts.workstation),
        encrypted_key,
    ];
    let mut msg = build_authenticate(&payloads, flags);
    if opts.mic {
        let mic = crypto::mic(&exported, type1, type2, &msg);
        if let Some(m) = msg.get_mut(messages::MIC_OFFSET..messages::MIC_OFFSET + 16) {
            m.copy_from_slice(&mic);
        }
    }
    Ok((msg, exported))
}

/// Lays out a Type 3: fixed header, Version, a zero MIC, then the six payloads in order.
pub fn build_authenticate(payloads: &[Vec<u8>; 6], flags: u32) -> Vec<u8> {
    let mut msg = SIGNATURE.to_vec();
    msg.extend_from_slice(&3u32.to_le_bytes());
    let mut offset = 88u32;
    for p in payloads {
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        msg.extend_from_slice(&len.to_le_bytes());
        msg.extend_from_slice(&len.to_le_bytes());
        msg.extend_from_slice(&offset.to_le_bytes());
        offset = offset.saturating_add(u32::from(len));
    }
    msg.extend_from_slice(&flags.to_le_bytes());
    msg.extend_from_slice(&[0x0a, 0x00, 0x7c, 0x4f, 0x00, 0x00, 0x00, 0x0f]);
    msg.extend_from_slice(&[0u8; 16]);
    for p in payloads {
        msg.extend_from_slice(p);
    }
    msg
}

fn push_av(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
}
