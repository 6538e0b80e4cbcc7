//! In-process NTLMv2 acceptor (MS-NLMP, MS-NTHT), sans-IO: bytes in, bytes and decisions
//! out. Time, randomness and the directory lookup are supplied by the caller.
//!
//! - [`messages`]: bounds-checked codec of the NEGOTIATE (Type 1), CHALLENGE (Type 2) and
//!   AUTHENTICATE (Type 3) messages and AV pairs.
//! - [`crypto`]: NT hash, NTOWFv2, NTProofStr, session keys, MIC, channel bindings, signing.
//! - [`legacy`]: NTLMv1, NTLMv1 with ESS and anonymous messages, for `ntlm_allow_legacy`.
//! - [`server`]: the acceptor state machine ([`server::Acceptor`], [`server::NtlmStep`]).

pub mod client;
pub mod crypto;
pub mod legacy;
pub mod messages;
pub mod server;

pub use messages::NtlmError;
pub use server::{
    Acceptor, Authenticated, CbtPolicy, DomainCheck, Legacy, NtlmStep, Policy, Reject, ServerNames,
};

/// NEGOTIATE flags (MS-NLMP §2.2.2.5).
pub mod flags {
    pub const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
    pub const NEGOTIATE_OEM: u32 = 0x0000_0002;
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    pub const NEGOTIATE_SIGN: u32 = 0x0000_0010;
    pub const NEGOTIATE_SEAL: u32 = 0x0000_0020;
    pub const NEGOTIATE_DATAGRAM: u32 = 0x0000_0040;
    pub const NEGOTIATE_LM_KEY: u32 = 0x0000_0080;
    pub const NEGOTIATE_NTLM: u32 = 0x0000_0200;
    pub const ANONYMOUS: u32 = 0x0000_0800;
    pub const OEM_DOMAIN_SUPPLIED: u32 = 0x0000_1000;
    pub const OEM_WORKSTATION_SUPPLIED: u32 = 0x0000_2000;
    pub const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
    pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
    pub const TARGET_TYPE_SERVER: u32 = 0x0002_0000;
    pub const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
    pub const NEGOTIATE_IDENTIFY: u32 = 0x0010_0000;
    pub const REQUEST_NON_NT_SESSION_KEY: u32 = 0x0040_0000;
    pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
    pub const NEGOTIATE_VERSION: u32 = 0x0200_0000;
    pub const NEGOTIATE_128: u32 = 0x2000_0000;
    pub const NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
    pub const NEGOTIATE_56: u32 = 0x8000_0000;
}

/// The 8-byte signature that starts every NTLMSSP message.
pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// Upper bound on one NTLM message; real Type 3s are 300–450 bytes.
pub const MAX_MESSAGE: usize = 8 * 1024;

/// FILETIME (100 ns ticks since 1601-01-01) for a Unix time in seconds.
pub fn filetime_from_unix(secs: u64, nanos: u32) -> u64 {
    const EPOCH_DIFF_SECS: u64 = 11_644_473_600;
    secs.saturating_add(EPOCH_DIFF_SECS)
        .saturating_mul(10_000_000)
        .saturating_add(u64::from(nanos / 100))
}

/// The message type of an NTLMSSP token (1, 2 or 3), if it starts with the signature.
pub fn message_type(token: &[u8]) -> Option<u32> {
    let sig = token.get(..8)?;
    if sig != SIGNATURE {
        return None;
    }
    let t = token.get(8..12)?;
    Some(u32::from_le_bytes([
        *t.first()?,
        *t.get(1)?,
        *t.get(2)?,
        *t.get(3)?,
    ]))
}
