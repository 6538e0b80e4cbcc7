//! The line protocol of Samba's `ntlm_auth --helper-protocol=ntlm-server-1` (the helper
//! Squid and Apache use to have the domain check NTLM responses), sans-IO: one request per
//! AUTHENTICATE, `Key: value` lines ended by a line with a single `.`; `Key:: value` carries
//! base64. Only the response check goes to the domain: the NTLMSSP messages, MIC, channel
//! binding and timestamp stay in [`super::ntlm`].

use base64::Engine;

use super::ntlm::DomainCheck;

/// The request for one NTLMv2 response. User and domain travel base64-encoded, so no
/// client-chosen byte can end a line or the request.
pub fn request(check: &DomainCheck) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "LANMAN-Challenge: {}\nNT-Response: {}\nUsername:: {}\nNT-Domain:: {}\nRequest-User-Session-Key: Yes\n.\n",
        hex(&check.server_challenge),
        hex(&check.nt_response),
        b64(&check.user),
        b64(&check.domain),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The domain's answer.
#[derive(Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The response is right; the user session key is the NTLMv2 session base key.
    Authenticated { session_key: [u8; 16] },
    /// Wrong password, unknown, disabled, locked or expired account (the domain's message
    /// is for the log).
    Refused(String),
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Authenticated { .. } => f.write_str("Authenticated"),
            Verdict::Refused(why) => f.debug_tuple("Refused").field(why).finish(),
        }
    }
}

/// Why a helper's answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelperError {
    #[error("the helper's answer has no Authenticated line")]
    NoVerdict,
    #[error("the helper authenticated the user but returned no 16-byte User-Session-Key (run it as a member of winbindd_priv, or as root)")]
    NoSessionKey,
    #[error("the helper reported: {0}")]
    Failed(String),
}

/// Reads one answer: the lines before the terminating `.`.
pub fn parse_response(lines: &[String]) -> Result<Verdict, HelperError> {
    let mut authenticated = None;
    let mut key = None;
    let mut error = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim() {
            "Authenticated" => authenticated = Some(value.eq_ignore_ascii_case("yes")),
            "User-Session-Key" => key = parse_key(value),
            "Authentication-Error" => error = Some(value.to_string()),
            "Error" | "BH" => return Err(HelperError::Failed(value.to_string())),
            _ => {}
        }
    }
    match authenticated {
        Some(true) => key
            .map(|session_key| Verdict::Authenticated { session_key })
            .ok_or(HelperError::NoSessionKey),
        Some(false) => Ok(Verdict::Refused(
            error.unwrap_or_else(|| "refused".to_string()),
        )),
        None => Err(error.map_or(HelperError::NoVerdict, HelperError::Failed)),
    }
}

fn parse_key(text: &str) -> Option<[u8; 16]> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (slot, i) in out.iter_mut().zip((0..32).step_by(2)) {
        *slot = u8::from_str_radix(text.get(i..i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn requests_carry_hex_responses_and_base64_names() {
        let check = DomainCheck {
            server_challenge: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            nt_response: vec![0xaa, 0x0f],
            user: "alice\n.\nAuthenticated: Yes".into(),
            domain: "CONTOSO".into(),
        };
        let r = request(&check);
        assert_eq!(
            r,
            "LANMAN-Challenge: 0123456789abcdef\nNT-Response: aa0f\n\
             Username:: YWxpY2UKLgpBdXRoZW50aWNhdGVkOiBZZXM=\nNT-Domain:: Q09OVE9TTw==\n\
             Request-User-Session-Key: Yes\n.\n"
        );
        // The hostile user name cannot end the request early.
        assert_eq!(r.matches("\n.\n").count(), 1);
    }

    #[test]
    fn answers_are_read_as_samba_writes_them() {
        assert_eq!(
            parse_response(&lines(
                "Authenticated: Yes\nUser-Session-Key: 8DE40CCADBC14A82F15CB0AD0DE95CA3"
            )),
            Ok(Verdict::Authenticated {
                session_key: [
                    0x8d, 0xe4, 0x0c, 0xca, 0xdb, 0xc1, 0x4a, 0x82, 0xf1, 0x5c, 0xb0, 0xad, 0x0d,
                    0xe9, 0x5c, 0xa3
                ]
            })
        );
        assert_eq!(
            parse_response(&lines(
                "Authenticated: No\nAuthentication-Error: Wrong Password"
            )),
            Ok(Verdict::Refused("Wrong Password".into()))
        );
        // Without privileges ntlm_auth authenticates but cannot hand out the key.
        assert_eq!(
            parse_response(&lines("Authenticated: Yes")),
            Err(HelperError::NoSessionKey)
        );
        assert_eq!(
            parse_response(&lines("Authenticated: Yes\nUser-Session-Key: 00")),
            Err(HelperError::NoSessionKey)
        );
        assert_eq!(
            parse_response(&lines("Error: winbind not running")),
            Err(HelperError::Failed("winbind not running".into()))
        );
        assert_eq!(parse_response(&[]), Err(HelperError::NoVerdict));
        assert_eq!(
            parse_response(&lines("garbage\n\u{0}")),
            Err(HelperError::NoVerdict)
        );
        // Debug never shows the key.
        let v = Verdict::Authenticated {
            session_key: [0x5a; 16],
        };
        assert_eq!(format!("{v:?}"), "Authenticated");
    }
}
