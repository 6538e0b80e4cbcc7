//! HTTP `NTLM` and `Negotiate` authentication (MS-NTHT, RFC 4559) on one connection,
//! sans-IO: the per-connection state [`ConnAuth`] turns `Authorization` tokens into the
//! next `WWW-Authenticate` value, a request for the user's NT hash, or a verdict.
//!
//! Token forms accepted after `Negotiate` (RFC 4559 §4, RFC 4178 §4.2): a bare NTLMSSP message
//! (requests-ntlm), a SPNEGO NegTokenInit (gss-ntlmssp, pyspnego, Windows) and a
//! NegTokenResp. Answers use the client's form. A mechanism list without NTLMSSP
//! (Kerberos only) is refused so that the client can fall back.

use base64::Engine;

use super::ntlm::crypto::{self, Direction, NtHash};
use super::ntlm::{self, Acceptor, DomainCheck, Legacy, NtlmStep, Policy, ServerNames};
use super::spnego::{self, NegState, NegToken};
use crate::directory::{Identity, Login};

/// The HTTP authentication scheme a token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ntlm,
    Negotiate,
}

impl Scheme {
    /// The scheme name as sent in `WWW-Authenticate`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Ntlm => "NTLM",
            Scheme::Negotiate => "Negotiate",
        }
    }
}

/// How the client framed its tokens in the current handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    /// Bare NTLMSSP after `NTLM` or `Negotiate`.
    Raw(Scheme),
    /// SPNEGO around NTLMSSP.
    Spnego {
        /// `mechTypes` DER as received (input of the mechListMIC).
        mech_types_der: Vec<u8>,
        /// The NTLMSSP OID as the client wrote it (echoed as supportedMech).
        mech_sent: bool,
        /// We picked NTLM although it was not the client's first choice, so the
        /// mechListMIC is mandatory (RFC 4178 §5).
        mic_required: bool,
        /// The client's mechListMIC from the last token, checked once the key is known.
        client_mic: Option<Vec<u8>>,
    },
}

/// What to answer after one `Authorization: NTLM|Negotiate` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leg {
    /// 401 with this `WWW-Authenticate` value (e.g. `NTLM <Type 2>`).
    Continue(String),
    /// Look up the NT hash of this login, then call [`ConnAuth::finish`].
    NeedCredential {
        /// The login to look up, or `None` when the name cannot be one.
        login: Option<Login>,
        user: String,
        domain: String,
    },
    /// 401 with the plain offers; the label is for the log.
    Rejected(&'static str),
}

/// The end of a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Authenticated; send this `WWW-Authenticate` value with the 200 when present
    /// (the final SPNEGO token with our mechListMIC).
    Authenticated {
        user: String,
        domain: String,
        final_header: Option<String>,
        /// Set when `auth.ntlm_allow_legacy` let an NTLMv1 or anonymous message in.
        legacy: Option<Legacy>,
    },
    /// 401 with the plain offers; the label is for the log.
    Rejected(&'static str),
}

/// Authentication state of one client connection.
#[derive(Default)]
pub struct ConnAuth {
    acceptor: Acceptor,
    framing: Option<Framing>,
    identity: Option<Identity>,
    /// Final `WWW-Authenticate` value for the answer of the completing request.
    final_header: Option<String>,
    /// The GSS-API context of a Kerberos exchange that needs another client token.
    kerberos: Option<Box<dyn std::any::Any + Send>>,
}

impl std::fmt::Debug for ConnAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnAuth")
            .field("acceptor", &self.acceptor)
            .field(
                "identity",
                &self.identity.as_ref().map(|i| &i.user_principal_name),
            )
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Maps the user and domain of an AUTHENTICATE to a directory login: `alice@contoso.com`
/// is a UPN whatever the domain; `alice` with domain `CONTOSO` is `CONTOSO\alice`.
pub fn login_for(user: &str, domain: &str) -> Option<Login> {
    if user.contains('@') || user.contains('\\') || domain.is_empty() {
        return Login::parse(user);
    }
    Login::parse(&format!("{domain}\\{user}"))
}

impl ConnAuth {
    /// The identity this connection authenticated as (when persisting).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Remembers who authenticated on this connection.
    pub fn set_identity(&mut self, identity: Identity) {
        self.identity = Some(identity);
    }

    /// Keeps the final token until the answer of the current request is built.
    pub fn set_final_header(&mut self, header: Option<String>) {
        self.final_header = header;
    }

    /// Takes the final token (once).
    pub fn take_final_header(&mut self) -> Option<String> {
        self.final_header.take()
    }

    /// Forgets the connection's identity (a new handshake or Basic credentials).
    pub fn clear_identity(&mut self) {
        self.identity = None;
    }

    /// Handles one token. `server_challenge` is fresh randomness (used only if the token is
    /// a Type 1); `now` is a FILETIME.
    pub fn step(
        &mut self,
        scheme: Scheme,
        token: &[u8],
        names: &ServerNames,
        policy: &Policy,
        server_challenge: [u8; 8],
        now: u64,
    ) -> Leg {
        self.kerberos = None;
        let (inner, framing) = match self.unwrap(scheme, token) {
            Ok(Unwrapped::Ntlm(inner, framing)) => (inner, framing),
            Ok(Unwrapped::Answer(leg)) => return leg,
            Err(label) => {
                self.reset();
                return Leg::Rejected(label);
            }
        };
        match ntlm::message_type(&inner) {
            Some(1) => {
                self.identity = None;
                match self
                    .acceptor
                    .negotiate(&inner, names, server_challenge, now)
                {
                    NtlmStep::SendChallenge(type2) => {
                        let header = self.wrap_challenge(scheme, &framing, &type2);
                        self.framing = Some(framing);
                        Leg::Continue(header)
                    }
                    NtlmStep::Rejected(r) => {
                        self.reset();
                        Leg::Rejected(r.label())
                    }
                    _ => {
                        self.reset();
                        Leg::Rejected("out_of_sequence")
                    }
                }
            }
            Some(3) => match self.acceptor.authenticate(&inner, policy, now) {
                NtlmStep::NeedCredential { user, domain } => {
                    self.framing = Some(framing);
                    Leg::NeedCredential {
                        login: login_for(&user, &domain),
                        user,
                        domain,
                    }
                }
                NtlmStep::Rejected(r) => {
                    self.reset();
                    Leg::Rejected(r.label())
                }
                _ => {
                    self.reset();
                    Leg::Rejected("out_of_sequence")
                }
            },
            _ => {
                self.reset();
                Leg::Rejected("malformed")
            }
        }
    }

    /// Completes a handshake with the NT hash the directory returned.
    pub fn finish(
        &mut self,
        nt_hash: Option<&NtHash>,
        policy: &Policy,
        expected_cbt: Option<&[u8; 16]>,
    ) -> Finish {
        let step = self.acceptor.credential(nt_hash, policy, expected_cbt);
        self.conclude(step)
    }

    /// What the domain needs to check the outstanding AUTHENTICATE itself (winbind).
    pub fn domain_check(&self) -> Option<DomainCheck> {
        self.acceptor.domain_check()
    }

    /// Completes a handshake with the domain's verdict: the session base key it returned,
    /// or `None` when it refused the response.
    pub fn finish_by_domain(
        &mut self,
        session_base_key: Option<&[u8; 16]>,
        policy: &Policy,
        expected_cbt: Option<&[u8; 16]>,
    ) -> Finish {
        let step = self
            .acceptor
            .domain_verdict(session_base_key, policy, expected_cbt);
        self.conclude(step)
    }

    /// Whether a Kerberos exchange continues on this connection.
    pub fn kerberos_pending(&self) -> bool {
        self.kerberos.is_some()
    }

    /// Takes the GSS-API context of a Kerberos exchange in progress (opaque here).
    pub fn take_kerberos(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        self.kerberos.take()
    }

    /// Keeps a GSS-API context until the client's next token; a new exchange of any kind
    /// on the connection starts without it.
    pub fn keep_kerberos(&mut self, context: Box<dyn std::any::Any + Send>) {
        self.reset();
        self.identity = None;
        self.kerberos = Some(context);
    }

    fn conclude(&mut self, step: NtlmStep) -> Finish {
        let framing = self.framing.take();
        self.acceptor = Acceptor::Done;
        let a = match step {
            NtlmStep::Authenticated(a) => a,
            NtlmStep::Rejected(r) => return Finish::Rejected(r.label()),
            _ => return Finish::Rejected("out_of_sequence"),
        };
        let final_header = match framing {
            Some(Framing::Spnego {
                mech_types_der,
                mic_required,
                client_mic,
                ..
            }) => {
                let ours = match client_mic {
                    // Plain NTLMv1 signs with RC4/CRC32 (MS-NLMP §3.4.4.1), which this
                    // server does not implement: such a mechListMIC cannot be checked.
                    Some(_) if a.legacy == Some(Legacy::NtlmV1) => {
                        return Finish::Rejected("ntlmv1_mech_list_mic_unsupported");
                    }
                    Some(theirs) => {
                        let expected = crypto::signature(
                            &a.exported_session_key,
                            a.flags,
                            Direction::ClientToServer,
                            0,
                            &mech_types_der,
                        );
                        if !crypto::ct_eq(&expected, &theirs) {
                            return Finish::Rejected("mech_list_mic_mismatch");
                        }
                        Some(crypto::signature(
                            &a.exported_session_key,
                            a.flags,
                            Direction::ServerToClient,
                            0,
                            &mech_types_der,
                        ))
                    }
                    None if mic_required => return Finish::Rejected("mech_list_mic_missing"),
                    None => None,
                };
                let token = spnego::encode_resp(
                    Some(NegState::AcceptCompleted),
                    None,
                    None,
                    ours.as_ref().map(|m| &m[..]),
                );
                Some(format!("Negotiate {}", b64(&token)))
            }
            _ => None,
        };
        Finish::Authenticated {
            user: a.user,
            domain: a.domain,
            final_header,
            legacy: a.legacy,
        }
    }

    fn reset(&mut self) {
        self.acceptor = Acceptor::Done;
        self.framing = None;
    }

    fn unwrap(&mut self, scheme: Scheme, token: &[u8]) -> Result<Unwrapped, &'static str> {
        if ntlm::message_type(token).is_some() {
            return Ok(Unwrapped::Ntlm(token.to_vec(), Framing::Raw(scheme)));
        }
        if scheme == Scheme::Ntlm {
            return Err("malformed");
        }
        match spnego::parse(token).map_err(|_| "malformed")? {
            NegToken::Init(init) => {
                let Some(pos) = init
                    .mech_types
                    .iter()
                    .position(|m| *m == spnego::NTLMSSP_OID)
                else {
                    return Err("no_ntlm_mech");
                };
                let mut framing = Framing::Spnego {
                    mech_types_der: init.mech_types_der.to_vec(),
                    mech_sent: false,
                    mic_required: pos != 0,
                    client_mic: init.mech_list_mic.map(<[u8]>::to_vec),
                };
                match (pos, init.mech_token) {
                    (0, Some(inner)) => Ok(Unwrapped::Ntlm(inner.to_vec(), framing)),
                    _ => {
                        // Not our mechanism's token (Kerberos first, or none): pick NTLMSSP
                        // and ask for its first token.
                        if let Framing::Spnego { mech_sent, .. } = &mut framing {
                            *mech_sent = true;
                        }
                        self.acceptor = Acceptor::Done;
                        self.identity = None;
                        let resp = spnego::encode_resp(
                            Some(NegState::RequestMic),
                            Some(spnego::NTLMSSP_OID),
                            None,
                            None,
                        );
                        self.framing = Some(framing);
                        Ok(Unwrapped::Answer(Leg::Continue(format!(
                            "Negotiate {}",
                            b64(&resp)
                        ))))
                    }
                }
            }
            NegToken::Resp(resp) => {
                let Some(Framing::Spnego {
                    mech_types_der,
                    mech_sent,
                    mic_required,
                    ..
                }) = self.framing.take()
                else {
                    return Err("no_spnego_context");
                };
                let inner = resp.response_token.ok_or("malformed")?;
                Ok(Unwrapped::Ntlm(
                    inner.to_vec(),
                    Framing::Spnego {
                        mech_types_der,
                        mech_sent,
                        mic_required,
                        client_mic: resp.mech_list_mic.map(<[u8]>::to_vec),
                    },
                ))
            }
        }
    }

    fn wrap_challenge(&self, scheme: Scheme, framing: &Framing, type2: &[u8]) -> String {
        match framing {
            Framing::Raw(_) => format!("{} {}", scheme.name(), b64(type2)),
            Framing::Spnego { mech_sent, .. } => {
                let mech = (!mech_sent).then_some(spnego::NTLMSSP_OID);
                let resp =
                    spnego::encode_resp(Some(NegState::AcceptIncomplete), mech, Some(type2), None);
                format!("Negotiate {}", b64(&resp))
            }
        }
    }
}

enum Unwrapped {
    Ntlm(Vec<u8>, Framing),
    Answer(Leg),
}

#[cfg(test)]
mod tests;
