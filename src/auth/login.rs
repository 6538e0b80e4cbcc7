//! Who a client says it is ([`Login`], as typed) and who it turned out to be ([`Identity`],
//! what the directory confirmed). Used by Basic, NTLM and Negotiate, and answered by the
//! directory.

/// A login name as a client typed it (UPN, `DOMAIN\user` or sAMAccountName).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// `alice@contoso.com`
    UserPrincipalName(String),
    /// `CONTOSO\alice`
    DownLevel { domain: String, user: String },
    /// `alice`
    SamAccountName(String),
}

impl Login {
    /// The account name without any domain: `alice` of `alice@contoso.com`,
    /// `CONTOSO\alice` and `alice`.
    pub fn user(&self) -> &str {
        match self {
            Login::UserPrincipalName(upn) => upn.rsplit_once('@').map_or(upn.as_str(), |(u, _)| u),
            Login::DownLevel { user, .. } | Login::SamAccountName(user) => user,
        }
    }

    /// Classifies a login string; `None` when it is empty or malformed.
    pub fn parse(text: &str) -> Option<Login> {
        let text = text.trim();
        if text.is_empty() || text.chars().any(|c| c.is_control()) {
            return None;
        }
        if let Some((domain, user)) = text.split_once('\\') {
            if domain.is_empty() || user.is_empty() || user.contains('\\') {
                return None;
            }
            return Some(Login::DownLevel {
                domain: domain.to_string(),
                user: user.to_string(),
            });
        }
        if let Some((user, domain)) = text.rsplit_once('@') {
            if user.is_empty() || domain.is_empty() {
                return None;
            }
            return Some(Login::UserPrincipalName(text.to_string()));
        }
        Some(Login::SamAccountName(text.to_string()))
    }
}

impl std::fmt::Display for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::UserPrincipalName(upn) => f.write_str(upn),
            Login::DownLevel { domain, user } => write!(f, "{domain}\\{user}"),
            Login::SamAccountName(sam) => f.write_str(sam),
        }
    }
}

/// Who passed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user principal name (canonical login).
    pub user_principal_name: String,
    /// The user's own SMTP addresses, lower-case (for the "self" lookup policy).
    pub addresses: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_classified() {
        assert_eq!(
            Login::parse("CONTOSO\\alice"),
            Some(Login::DownLevel {
                domain: "CONTOSO".into(),
                user: "alice".into()
            })
        );
        assert_eq!(
            Login::parse("alice@contoso.com"),
            Some(Login::UserPrincipalName("alice@contoso.com".into()))
        );
        assert_eq!(
            Login::parse("alice"),
            Some(Login::SamAccountName("alice".into()))
        );
        assert_eq!(Login::parse(""), None);
        assert_eq!(Login::parse("\\alice"), None);
        assert_eq!(Login::parse("a\\b\\c"), None);
        assert_eq!(Login::parse("@contoso.com"), None);
    }
}
