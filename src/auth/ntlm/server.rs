//! The NTLMv2 acceptor (MS-NLMP §3.2.5), as a state machine that returns values:
//!
//! ```text
//! Idle --negotiate(Type1)--> Challenged            => NtlmStep::SendChallenge(Type2)
//! Challenged --authenticate(Type3)--> Awaiting     => NtlmStep::NeedCredential{user,domain}
//! Awaiting --credential(NT hash | None)--> Done    => NtlmStep::Authenticated | Rejected
//! ```
//!
//! The challenge is consumed by the first Type 3, whatever the outcome. The caller supplies
//! the random server challenge, the clock (FILETIME) and the NT hash it looked up between
//! the two last steps. NTLMv1 and anonymous messages are refused unless
//! [`Policy::allow_legacy`] is set (see [`super::legacy`]).

use super::crypto::{self, NtHash};
use super::flags::*;
pub use super::legacy::Legacy;
use super::legacy::{self, ResponseKind};
pub use super::messages::ServerNames;
use super::messages::{self, av, NtlmError};

/// How long a challenge stays valid (MS-NLMP leaves it to the server; 60 s is plenty for a
/// client that answers within one keep-alive connection).
pub const CHALLENGE_LIFETIME_SECS: u64 = 60;

/// What to do with MsvAvChannelBindings (Extended Protection, MS-NLMP §3.2.5.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CbtPolicy {
    /// Ignore channel bindings (TLS ends at a proxy whose certificate we do not know).
    Off,
    /// A present, non-zero binding must match ours; absent or zero is accepted (curl).
    Accept,
    /// Every client must send a matching binding.
    Require,
}

/// Verification policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Largest accepted distance between the client blob's timestamp and our clock.
    pub timestamp_window_secs: u64,
    pub channel_binding: CbtPolicy,
    /// Accept NTLMv1, NTLMv1 with ESS and anonymous AUTHENTICATE messages
    /// (`auth.ntlm_allow_legacy`; see [`legacy`]). LM-only responses are refused anyway.
    pub allow_legacy: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timestamp_window_secs: 36 * 3600,
            channel_binding: CbtPolicy::Accept,
            allow_legacy: false,
        }
    }
}

/// Why a handshake failed. Only for logs: every reason gets the same 401.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reject {
    /// The message could not be decoded.
    Malformed(NtlmError),
    /// A Type 3 without an outstanding challenge (new connection, replay, second try).
    NoChallenge,
    /// The challenge is older than [`CHALLENGE_LIFETIME_SECS`].
    Expired,
    /// Anonymous AUTHENTICATE (empty user and responses, or the ANONYMOUS flag).
    Anonymous,
    /// NTLMv1 response (without `allow_legacy`), or an LM-only response (always).
    NtlmV1Refused,
    /// The blob's timestamp is outside the window.
    TimestampOutOfWindow,
    /// Unknown user, disabled account or wrong password (indistinguishable).
    BadCredentials,
    /// MsvAvFlags announces a MIC but there is no room for it.
    MicMissing,
    /// The MIC does not verify.
    MicMismatch,
    /// A channel binding is present and does not match this TLS channel.
    ChannelBindingMismatch,
    /// The policy requires a channel binding and the client sent none.
    ChannelBindingMissing,
    /// A step was called in the wrong state.
    OutOfSequence,
}

impl Reject {
    /// A short category for logs (never secrets).
    pub fn label(&self) -> &'static str {
        match self {
            Reject::Malformed(_) => "malformed",
            Reject::NoChallenge => "no_challenge",
            Reject::Expired => "expired",
            Reject::Anonymous => "anonymous_refused",
            Reject::NtlmV1Refused => "ntlmv1_refused",
            Reject::TimestampOutOfWindow => "timestamp_window",
            Reject::BadCredentials => "bad_credentials",
            Reject::MicMissing => "mic_missing",
            Reject::MicMismatch => "mic_mismatch",
            Reject::ChannelBindingMismatch => "cbt_mismatch",
            Reject::ChannelBindingMissing => "cbt_missing",
            Reject::OutOfSequence => "out_of_sequence",
        }
    }
}

/// A successful authentication. `Debug` hides the session key.
#[derive(Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The user name as the client sent it.
    pub user: String,
    /// The domain as the client sent it.
    pub domain: String,
    pub workstation: String,
    /// MsvAvTargetName (the SPN the client meant), if sent.
    pub target_name: Option<String>,
    /// The Type 3 flags (needed for SPNEGO's mechListMIC).
    pub flags: u32,
    /// ExportedSessionKey (MS-NLMP §3.2.5.1.2).
    pub exported_session_key: [u8; 16],
    /// `None` for NTLMv2; the legacy kind when [`Policy::allow_legacy`] let it in.
    pub legacy: Option<Legacy>,
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("workstation", &self.workstation)
            .field("target_name", &self.target_name)
            .field("flags", &format_args!("{:#010x}", self.flags))
            .field("legacy", &self.legacy)
            .finish_non_exhaustive()
    }
}

/// What the acceptor wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NtlmStep {
    /// Send this CHALLENGE (Type 2) to the client in a 401.
    SendChallenge(Vec<u8>),
    /// Look up the NT hash of this user (as sent on the wire) and call
    /// [`Acceptor::credential`]. For an allowed anonymous AUTHENTICATE, user and domain are
    /// empty and the answer is `None`.
    NeedCredential { user: String, domain: String },
    /// The client proved knowledge of the password.
    Authenticated(Authenticated),
    /// The handshake failed; the reason is for logs only.
    Rejected(Reject),
}

#[derive(Clone)]
struct Challenged {
    type1: Vec<u8>,
    type2: Vec<u8>,
    server_challenge: [u8; 8],
    issued_at: u64,
}

#[derive(Clone)]
struct Awaiting {
    challenged: Challenged,
    type3: Vec<u8>,
}

/// One NTLM handshake.
#[derive(Clone, Default)]
pub enum Acceptor {
    /// Nothing outstanding.
    #[default]
    Idle,
    /// A CHALLENGE was sent; waiting for the AUTHENTICATE.
    Challenged(Box<ChallengedState>),
    /// The AUTHENTICATE was decoded; waiting for the user's NT hash.
    Awaiting(Box<AwaitingState>),
    /// Finished (successfully or not); a new Type 1 starts over.
    Done,
}

/// Opaque state of [`Acceptor::Challenged`].
#[derive(Clone)]
pub struct ChallengedState(Challenged);
/// Opaque state of [`Acceptor::Awaiting`].
#[derive(Clone)]
pub struct AwaitingState(Awaiting);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Acceptor::Idle => "Idle",
            Acceptor::Challenged(_) => "Challenged",
            Acceptor::Awaiting(_) => "Awaiting",
            Acceptor::Done => "Done",
        })
    }
}

/// The flags of our CHALLENGE: what the server always sets plus what it grants from the
/// client's request (MS-NLMP §3.2.5.1.1). Never LM_KEY, DATAGRAM or ANONYMOUS.
pub fn challenge_flags(client: u32) -> u32 {
    const ECHO: u32 = REQUEST_TARGET
        | NEGOTIATE_SIGN
        | NEGOTIATE_SEAL
        | NEGOTIATE_ALWAYS_SIGN
        | NEGOTIATE_EXTENDED_SESSIONSECURITY
        | NEGOTIATE_IDENTIFY
        | NEGOTIATE_VERSION
        | NEGOTIATE_128
        | NEGOTIATE_KEY_EXCH
        | NEGOTIATE_56;
    let charset = if client & NEGOTIATE_UNICODE != 0 {
        NEGOTIATE_UNICODE
    } else {
        NEGOTIATE_OEM
    };
    NEGOTIATE_NTLM | NEGOTIATE_TARGET_INFO | TARGET_TYPE_DOMAIN | charset | (client & ECHO)
}

const TICKS_PER_SEC: u64 = 10_000_000;

impl Acceptor {
    /// A fresh acceptor.
    pub fn new() -> Acceptor {
        Acceptor::Idle
    }

    /// True while a challenge is outstanding.
    pub fn is_challenged(&self) -> bool {
        matches!(self, Acceptor::Challenged(_))
    }

    /// Handles a NEGOTIATE (Type 1) in any state: a new Type 1 starts over.
    /// `server_challenge` must come from a CSPRNG; `now` is a FILETIME.
    pub fn negotiate(
        &mut self,
        type1: &[u8],
        names: &ServerNames,
        server_challenge: [u8; 8],
        now: u64,
    ) -> NtlmStep {
        *self = Acceptor::Done;
        let negotiate = match messages::parse_negotiate(type1) {
            Ok(n) => n,
            Err(e) => return NtlmStep::Rejected(Reject::Malformed(e)),
        };
        let flags = challenge_flags(negotiate.flags);
        let target_name = if flags & NEGOTIATE_UNICODE != 0 {
            crypto::utf16le(&names.nb_domain)
        } else {
            names.nb_domain.bytes().filter(u8::is_ascii).collect()
        };
        let info = messages::target_info(names, now);
        let type2 = messages::build_challenge(flags, &target_name, &server_challenge, &info);
        *self = Acceptor::Challenged(Box::new(ChallengedState(Challenged {
            type1: type1.to_vec(),
            type2: type2.clone(),
            server_challenge,
            issued_at: now,
        })));
        NtlmStep::SendChallenge(type2)
    }

    /// Handles an AUTHENTICATE (Type 3). Consumes the challenge. On success, asks for the
    /// user's NT hash.
    pub fn authenticate(&mut self, type3: &[u8], policy: &Policy, now: u64) -> NtlmStep {
        let state = std::mem::replace(self, Acceptor::Done);
        let Acceptor::Challenged(challenged) = state else {
            return NtlmStep::Rejected(Reject::NoChallenge);
        };
        let challenged = challenged.0;
        if now.saturating_sub(challenged.issued_at) > CHALLENGE_LIFETIME_SECS * TICKS_PER_SEC {
            return NtlmStep::Rejected(Reject::Expired);
        }
        let t3 = match messages::parse_authenticate(type3) {
            Ok(t) => t,
            Err(e) => return NtlmStep::Rejected(Reject::Malformed(e)),
        };
        match legacy::classify(&t3) {
            ResponseKind::NtlmV2 => {}
            ResponseKind::Refused => return NtlmStep::Rejected(Reject::NtlmV1Refused),
            ResponseKind::Legacy(kind) if !policy.allow_legacy => {
                return NtlmStep::Rejected(refusal(kind));
            }
            ResponseKind::Legacy(kind) => {
                let (user, domain) = match kind {
                    Legacy::Anonymous => (String::new(), String::new()),
                    _ => (t3.user.clone(), t3.domain.clone()),
                };
                *self = Acceptor::Awaiting(Box::new(AwaitingState(Awaiting {
                    challenged,
                    type3: type3.to_vec(),
                })));
                return NtlmStep::NeedCredential { user, domain };
            }
        }
        let v2 = match messages::parse_ntlmv2_response(t3.nt_response) {
            Ok(v) => v,
            Err(e) => return NtlmStep::Rejected(Reject::Malformed(e)),
        };
        let window = policy.timestamp_window_secs.saturating_mul(TICKS_PER_SEC);
        if v2.timestamp.abs_diff(now) > window {
            return NtlmStep::Rejected(Reject::TimestampOutOfWindow);
        }
        if v2.av_flags.unwrap_or(0) & av::FLAG_MIC_PRESENT != 0 && t3.mic.is_none() {
            return NtlmStep::Rejected(Reject::MicMissing);
        }
        let step = NtlmStep::NeedCredential {
            user: t3.user.clone(),
            domain: t3.domain.clone(),
        };
        *self = Acceptor::Awaiting(Box::new(AwaitingState(Awaiting {
            challenged,
            type3: type3.to_vec(),
        })));
        step
    }

    /// Finishes with the NT hash the directory holds for the user (`None`: unknown or
    /// disabled user; the same work is done and the answer is the same as a bad password).
    /// `expected_cbt` is MD5 of this TLS channel's bindings, when known.
    pub fn credential(
        &mut self,
        nt_hash: Option<&NtHash>,
        policy: &Policy,
        expected_cbt: Option<&[u8; 16]>,
    ) -> NtlmStep {
        self.conclude(|w| verify(w, nt_hash, policy, expected_cbt))
    }

    /// Ends an awaiting handshake with `verdict` (consumed whatever the outcome).
    fn conclude(
        &mut self,
        verdict: impl FnOnce(&Awaiting) -> Result<Authenticated, Reject>,
    ) -> NtlmStep {
        let state = std::mem::replace(self, Acceptor::Done);
        let Acceptor::Awaiting(awaiting) = state else {
            return NtlmStep::Rejected(Reject::OutOfSequence);
        };
        match verdict(&awaiting.0) {
            Ok(a) => NtlmStep::Authenticated(a),
            Err(r) => NtlmStep::Rejected(r),
        }
    }

    /// What a domain controller needs to check the outstanding AUTHENTICATE itself
    /// (winbind): `None` unless an NTLMv2 AUTHENTICATE awaits its verdict.
    pub fn domain_check(&self) -> Option<DomainCheck> {
        let Acceptor::Awaiting(awaiting) = self else {
            return None;
        };
        let w = &awaiting.0;
        let t3 = messages::parse_authenticate(&w.type3).ok()?;
        if legacy::classify(&t3) != ResponseKind::NtlmV2 {
            return None;
        }
        Some(DomainCheck {
            server_challenge: w.challenged.server_challenge,
            nt_response: t3.nt_response.to_vec(),
            user: t3.user,
            domain: t3.domain,
        })
    }

    /// Finishes with the verdict of the domain: the session base key it returned for a
    /// valid NTLMv2 response, or `None` when it refused. The MIC and channel binding are
    /// still checked here.
    pub fn domain_verdict(
        &mut self,
        session_base_key: Option<&[u8; 16]>,
        policy: &Policy,
        expected_cbt: Option<&[u8; 16]>,
    ) -> NtlmStep {
        self.conclude(|w| verify_by_domain(w, session_base_key, policy, expected_cbt))
    }
}

/// The parts of an NTLMv2 AUTHENTICATE a domain controller checks (MS-NLMP §3.3.2 there
/// instead of here): what winbind's `ntlm_auth --helper-protocol=ntlm-server-1` is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct DomainCheck {
    pub server_challenge: [u8; 8],
    pub nt_response: Vec<u8>,
    /// As the client sent them.
    pub user: String,
    pub domain: String,
}

impl std::fmt::Debug for DomainCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainCheck")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

fn verify(
    w: &Awaiting,
    nt_hash: Option<&NtHash>,
    policy: &Policy,
    expected_cbt: Option<&[u8; 16]>,
) -> Result<Authenticated, Reject> {
    let t3 = messages::parse_authenticate(&w.type3).map_err(Reject::Malformed)?;
    match legacy::classify(&t3) {
        ResponseKind::NtlmV2 => {}
        ResponseKind::Refused => return Err(Reject::NtlmV1Refused),
        ResponseKind::Legacy(kind) if !policy.allow_legacy => return Err(refusal(kind)),
        ResponseKind::Legacy(kind) => return verify_legacy(w, &t3, kind, nt_hash),
    }
    let v2 = messages::parse_ntlmv2_response(t3.nt_response).map_err(Reject::Malformed)?;
    // Unknown user: the same HMACs against a key nobody knows the password of, then fail.
    let (key, known) = match nt_hash {
        Some(h) => (*h, true),
        None => ([0u8; 16], false),
    };
    // Domain as sent, upper-cased, then empty (MS-NLMP §3.3.2; Samba does the same).
    let upper_domain = t3.domain.to_uppercase();
    let mut matched: Option<[u8; 16]> = None;
    for domain in [t3.domain.as_str(), upper_domain.as_str(), ""] {
        let response_key = crypto::ntowfv2(&key, &t3.user, domain);
        let proof = crypto::nt_proof(&response_key, &w.challenged.server_challenge, v2.temp);
        if crypto::ct_eq(&proof, &v2.proof) && matched.is_none() {
            matched = Some(response_key);
        }
    }
    let response_key = match matched {
        Some(k) if known => k,
        _ => return Err(Reject::BadCredentials),
    };
    let session_base_key = crypto::session_base_key(&response_key, &v2.proof);
    complete(w, t3, &v2, &session_base_key, policy, expected_cbt)
}

/// What the rest of the handshake needs once the NTLMv2 proof is known to be right: the
/// exported session key, the MIC over the three messages and the channel binding
/// (MS-NLMP §3.2.5.1.2), whoever checked the proof.
fn complete(
    w: &Awaiting,
    t3: messages::Authenticate<'_>,
    v2: &messages::NtlmV2Response<'_>,
    session_base_key: &[u8; 16],
    policy: &Policy,
    expected_cbt: Option<&[u8; 16]>,
) -> Result<Authenticated, Reject> {
    let exported_session_key = if t3.flags & NEGOTIATE_KEY_EXCH != 0 {
        match <[u8; 16]>::try_from(crypto::rc4(session_base_key, t3.encrypted_session_key)) {
            Ok(k) => k,
            Err(_) => *session_base_key,
        }
    } else {
        *session_base_key
    };
    if v2.av_flags.unwrap_or(0) & av::FLAG_MIC_PRESENT != 0 {
        let Some(mic) = t3.mic else {
            return Err(Reject::MicMissing);
        };
        let mut zeroed = w.type3.clone();
        if let Some(m) = zeroed.get_mut(messages::MIC_OFFSET..messages::MIC_OFFSET + 16) {
            m.fill(0);
        }
        let expected = crypto::mic(
            &exported_session_key,
            &w.challenged.type1,
            &w.challenged.type2,
            &zeroed,
        );
        if !crypto::ct_eq(&expected, &mic) {
            return Err(Reject::MicMismatch);
        }
    }
    let sent_cbt = v2.channel_bindings.filter(|c| c.iter().any(|b| *b != 0));
    match (policy.channel_binding, sent_cbt) {
        (CbtPolicy::Off, _) | (CbtPolicy::Accept, None) => {}
        (CbtPolicy::Require, None) => return Err(Reject::ChannelBindingMissing),
        (CbtPolicy::Accept | CbtPolicy::Require, Some(sent)) => match expected_cbt {
            Some(exp) if crypto::ct_eq(exp, &sent) => {}
            _ => return Err(Reject::ChannelBindingMismatch),
        },
    }
    Ok(Authenticated {
        user: t3.user,
        domain: t3.domain,
        workstation: t3.workstation,
        target_name: v2.target_name.clone(),
        flags: t3.flags,
        exported_session_key,
        legacy: None,
    })
}

/// Finishes with the session base key a domain controller returned after checking the
/// NTLMv2 response itself (`None`: the domain refused it).
fn verify_by_domain(
    w: &Awaiting,
    session_base_key: Option<&[u8; 16]>,
    policy: &Policy,
    expected_cbt: Option<&[u8; 16]>,
) -> Result<Authenticated, Reject> {
    let t3 = messages::parse_authenticate(&w.type3).map_err(Reject::Malformed)?;
    match legacy::classify(&t3) {
        ResponseKind::NtlmV2 => {}
        // The domain's answer for NTLMv1 carries another key derivation; not offered.
        ResponseKind::Refused => return Err(Reject::NtlmV1Refused),
        ResponseKind::Legacy(kind) => return Err(refusal(kind)),
    }
    let v2 = messages::parse_ntlmv2_response(t3.nt_response).map_err(Reject::Malformed)?;
    let key = session_base_key.ok_or(Reject::BadCredentials)?;
    complete(w, t3, &v2, key, policy, expected_cbt)
}

fn refusal(kind: Legacy) -> Reject {
    match kind {
        Legacy::Anonymous => Reject::Anonymous,
        Legacy::NtlmV1 | Legacy::NtlmV1Ess => Reject::NtlmV1Refused,
    }
}

/// NTLMv1 (with or without ESS) or anonymous, once the policy allowed it. There is no
/// NTLMv2 blob, hence no timestamp, MIC flag or channel binding to check.
fn verify_legacy(
    w: &Awaiting,
    t3: &messages::Authenticate<'_>,
    kind: Legacy,
    nt_hash: Option<&NtHash>,
) -> Result<Authenticated, Reject> {
    let challenge = &w.challenged.server_challenge;
    let (user, domain, exported_session_key) = match kind {
        // No password proven; the session key is derived from Z(16) (MS-NLMP §3.2.5.1.2).
        Legacy::Anonymous => (
            String::new(),
            String::new(),
            legacy::exported_session_key(t3.flags, &[0; 16], t3.encrypted_session_key),
        ),
        Legacy::NtlmV1 | Legacy::NtlmV1Ess => {
            let ess = kind == Legacy::NtlmV1Ess;
            let key =
                legacy::verify_v1(t3, ess, challenge, nt_hash).ok_or(Reject::BadCredentials)?;
            (t3.user.clone(), t3.domain.clone(), key)
        }
    };
    Ok(Authenticated {
        user,
        domain,
        workstation: t3.workstation.clone(),
        target_name: None,
        flags: t3.flags,
        exported_session_key,
        legacy: Some(kind),
    })
}

#[cfg(test)]
pub(crate) mod tests;
