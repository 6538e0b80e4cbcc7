//! Escaping of values placed into LDAP filters (RFC 4515) and distinguished names
//! (RFC 4514). Pure functions; every value that reaches a filter or a DN string goes
//! through here, so an address or login can never change the shape of the query.

use std::fmt::Write as _;

/// Escapes an assertion value for an LDAP search filter (RFC 4515 §3).
///
/// The RFC requires `*`, `(`, `)`, `\` and NUL to be written as `\2a`, `\28`, `\29`, `\5c`
/// and `\00`. Other control characters are escaped too (allowed by the RFC, and it keeps
/// filters printable in logs). Non-ASCII UTF-8 is left as it is (valid in a filter string).
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => push_hex(&mut out, c as u32),
            c if c.is_ascii_control() => push_hex(&mut out, c as u32),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a binary assertion value (an `objectSid`) for a search filter: every byte as
/// `\\XX` (RFC 4515 §3 allows any octet written so).
pub fn filter_bytes(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value {
        push_hex(&mut out, u32::from(*b));
    }
    out
}

/// Escapes an attribute value for use inside a distinguished name (RFC 4514 §2.4).
///
/// `"`, `+`, `,`, `;`, `<`, `>`, `\` and `=` are backslash-escaped; a leading space or
/// `#` and a trailing space are escaped; NUL and other control characters become `\XX`.
pub fn dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            c if c.is_ascii_control() => push_hex(&mut out, c as u32),
            c => out.push(c),
        }
    }
    out
}

fn push_hex(out: &mut String, byte: u32) {
    let _ = write!(out, "\\{byte:02x}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_are_escaped_byte_by_byte() {
        assert_eq!(filter_bytes(&[1, 5, 0, 0x2a, 0xff]), "\\01\\05\\00\\2a\\ff");
        assert_eq!(filter_bytes(&[]), "");
    }

    #[test]
    fn filter_specials_from_rfc_4515_are_hex_escaped() {
        assert_eq!(filter_value("*"), "\\2a");
        assert_eq!(filter_value("("), "\\28");
        assert_eq!(filter_value(")"), "\\29");
        assert_eq!(filter_value("\\"), "\\5c");
        assert_eq!(filter_value("\0"), "\\00");
        // The examples of RFC 4515 §4.
        assert_eq!(
            filter_value("Parens R Us (for all your parenthetical needs)"),
            "Parens R Us \\28for all your parenthetical needs\\29"
        );
        assert_eq!(filter_value("*"), "\\2a");
        assert_eq!(filter_value("C:\\MyFile"), "C:\\5cMyFile");
    }

    #[test]
    fn filter_injection_attempts_stay_one_assertion_value() {
        let nasty = "alice@contoso.com)(|(mail=*)";
        let escaped = filter_value(nasty);
        assert_eq!(escaped, "alice@contoso.com\\29\\28|\\28mail=\\2a\\29");
        assert!(!escaped.contains(['(', ')', '*']));
        assert_eq!(filter_value("a\nb\x7f"), "a\\0ab\\7f");
    }

    #[test]
    fn filter_values_keep_plain_text_and_utf8() {
        assert_eq!(filter_value("alice@contoso.com"), "alice@contoso.com");
        assert_eq!(filter_value("jürgen@contoso.com"), "jürgen@contoso.com");
        assert_eq!(filter_value(""), "");
    }

    #[test]
    fn filter_escaping_agrees_with_the_ldap3_crate() {
        for v in ["a*b", "(x)", "back\\slash", "nul\0", "plain", "jürgen"] {
            // ldap3 escapes non-ASCII too; both forms are valid RFC 4515.
            let ours = filter_value(v);
            let theirs = ldap3::ldap_escape(v);
            if v.is_ascii() {
                assert_eq!(ours, theirs.to_string(), "{v:?}");
            }
        }
    }

    #[test]
    fn dn_values_escape_rfc_4514_specials() {
        assert_eq!(dn_value("Jones, Carol"), "Jones\\, Carol");
        assert_eq!(dn_value("a+b"), "a\\+b");
        assert_eq!(dn_value("\"q\";<>\\="), "\\\"q\\\"\\;\\<\\>\\\\\\=");
        assert_eq!(dn_value(" lead"), "\\ lead");
        assert_eq!(dn_value("trail "), "trail\\ ");
        assert_eq!(dn_value("#hash"), "\\#hash");
        assert_eq!(dn_value("mid#dle mid"), "mid#dle mid");
        assert_eq!(dn_value("nul\0"), "nul\\00");
        assert_eq!(dn_value(" "), "\\ ");
        assert_eq!(dn_value(""), "");
    }
}
