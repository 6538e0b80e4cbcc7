//! The per-mailbox hybrid decision (what Exchange on-premises answers for local, remote and
//! missing recipients; docs/protocol.md), a pure function over directory values.

use crate::directory::recipient::REMOTE_MAILBOX_FLAGS;
use crate::directory::{Recipient, RecipientType};
use crate::protocol::ErrorCode;

/// What to answer for one discovered address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// The mailbox is here: answer with its settings.
    Settings(&'a Recipient),
    /// The mailbox lives elsewhere (Exchange Online): restart discovery for this address.
    RedirectAddr(String),
    /// An Autodiscover error code.
    Error(ErrorCode),
}

impl Decision<'_> {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Settings(_) => "settings",
            Decision::RedirectAddr(_) => "redirectAddr",
            Decision::Error(code) => code.label(),
        }
    }
}

/// Decides for the recipient found for `requested` (the address the client asked about;
/// `None` when the request carried only a legacy DN).
pub fn decide<'a>(requested: Option<&str>, recipient: Option<&'a Recipient>) -> Decision<'a> {
    let Some(r) = recipient else {
        return Decision::Error(ErrorCode::AddressNotFound);
    };
    let remote = r.recipient_type.is_remote_mailbox()
        || (r.remote_recipient_type & REMOTE_MAILBOX_FLAGS != 0
            && !r.recipient_type.is_local_mailbox());
    if remote || r.recipient_type == RecipientType::MailUser {
        return match &r.target_address {
            Some(target) => {
                // Loop guard: never redirect a client to the address it
                // asked about, or to the recipient's primary address, which resolves back
                // here. Other proxy addresses are fine: real hybrid remote mailboxes list
                // their routing address (the targetAddress) among their proxy addresses.
                let loops = requested.is_some_and(|a| a.trim().eq_ignore_ascii_case(target))
                    || r.primary_smtp.eq_ignore_ascii_case(target);
                if loops {
                    Decision::Error(ErrorCode::ConfigurationError)
                } else {
                    Decision::RedirectAddr(target.clone())
                }
            }
            // A remote mailbox without targetAddress is a broken object; a mail user
            // without one simply has no configuration.
            None if remote => Decision::Error(ErrorCode::ConfigurationError),
            None => Decision::Error(ErrorCode::NoConfiguration),
        };
    }
    if r.recipient_type.is_local_mailbox() {
        return if r.has_local_mailbox {
            Decision::Settings(r)
        } else {
            Decision::Error(ErrorCode::NoConfiguration)
        };
    }
    // Contacts and anything that is not a user: "can't be found", as Exchange answers.
    Decision::Error(ErrorCode::AddressNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(kind: RecipientType, target: Option<&str>) -> Recipient {
        Recipient {
            display_name: "Alice".into(),
            primary_smtp: "alice@contoso.com".into(),
            addresses: vec!["alice@contoso.com".into(), "a@contoso.com".into()],
            legacy_dn: None,
            mailbox_guid: None,
            recipient_type: kind,
            remote_recipient_type: 0,
            target_address: target.map(str::to_string),
            has_local_mailbox: kind.is_local_mailbox(),
            enabled: true,
        }
    }

    #[test]
    fn unknown_address_is_error_500() {
        assert_eq!(
            decide(Some("x@contoso.com"), None),
            Decision::Error(ErrorCode::AddressNotFound)
        );
    }

    #[test]
    fn local_mailbox_gets_settings() {
        let r = recipient(RecipientType::UserMailbox, None);
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r)),
            Decision::Settings(&r)
        );
    }

    #[test]
    fn migrated_mailbox_gets_redirect_addr_to_target_address() {
        let r = recipient(
            RecipientType::RemoteUserMailbox,
            Some("alice@contoso.mail.onmicrosoft.com"),
        );
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r)),
            Decision::RedirectAddr("alice@contoso.mail.onmicrosoft.com".into())
        );
    }

    #[test]
    fn remote_flag_on_a_mail_user_redirects() {
        let mut r = recipient(
            RecipientType::Other(0),
            Some("alice@contoso.mail.onmicrosoft.com"),
        );
        r.remote_recipient_type = 4;
        assert!(matches!(
            decide(Some("alice@contoso.com"), Some(&r)),
            Decision::RedirectAddr(_)
        ));
    }

    #[test]
    fn remote_mailbox_without_target_is_602() {
        let r = recipient(RecipientType::RemoteUserMailbox, None);
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r)),
            Decision::Error(ErrorCode::ConfigurationError)
        );
    }

    #[test]
    fn redirect_to_itself_is_602() {
        let r = recipient(RecipientType::RemoteUserMailbox, Some("ALICE@contoso.com"));
        assert_eq!(
            decide(Some("a@contoso.com"), Some(&r)),
            Decision::Error(ErrorCode::ConfigurationError)
        );
        let r = recipient(RecipientType::RemoteUserMailbox, Some("bob@contoso.com"));
        assert_eq!(
            decide(Some("BOB@contoso.com"), Some(&r)),
            Decision::Error(ErrorCode::ConfigurationError)
        );
    }

    #[test]
    fn routing_address_listed_as_a_proxy_address_still_redirects() {
        let mut r = recipient(
            RecipientType::RemoteUserMailbox,
            Some("alice@contoso.mail.onmicrosoft.com"),
        );
        r.addresses
            .push("alice@contoso.mail.onmicrosoft.com".into());
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r)),
            Decision::RedirectAddr("alice@contoso.mail.onmicrosoft.com".into())
        );
    }

    #[test]
    fn mail_user_without_target_is_501_and_contact_is_500() {
        let r = recipient(RecipientType::MailUser, None);
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r)),
            Decision::Error(ErrorCode::NoConfiguration)
        );
        let r = recipient(RecipientType::MailContact, Some("alice@fabrikam.com"));
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r)),
            Decision::Error(ErrorCode::AddressNotFound)
        );
    }

    #[test]
    fn mailbox_type_without_database_is_501() {
        let mut r = recipient(RecipientType::UserMailbox, None);
        r.has_local_mailbox = false;
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r)),
            Decision::Error(ErrorCode::NoConfiguration)
        );
    }
}
