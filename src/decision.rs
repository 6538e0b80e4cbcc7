//! The per-mailbox hybrid decision, a pure function over directory values and the
//! configured mailbox kinds. Every format (POX, SOAP, AutodiscoverV2, autoconfig,
//! mobileconfig) answers from it.

use crate::config::mail::{domain_of, MailConfig};
use crate::directory::recipient::REMOTE_MAILBOX_FLAGS;
use crate::directory::{MailboxKind, Recipient, RecipientType};
use crate::protocol::ErrorCode;

/// What to answer for one discovered address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// The mailbox is here and served as Exchange: answer with its settings.
    Settings(&'a Recipient),
    /// The mailbox is here and served as Internet mail (IMAP/POP3 and SMTP).
    InternetMail(&'a Recipient),
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
            Decision::InternetMail(_) => "internet_mail",
            Decision::RedirectAddr(_) => "redirectAddr",
            Decision::Error(code) => code.label(),
        }
    }
}

/// The kind a local mailbox is served as: the directory's per-mailbox kind, else the
/// default of its primary address's domain.
pub fn mailbox_kind(r: &Recipient, mail: &MailConfig) -> MailboxKind {
    r.mailbox_kind
        .unwrap_or_else(|| mail.kind_of_domain(&domain_of(&r.primary_smtp)))
}

/// Decides for the recipient found for `requested` (the address the client asked about;
/// `None` when the request carried only a legacy DN).
pub fn decide<'a>(
    requested: Option<&str>,
    recipient: Option<&'a Recipient>,
    mail: &MailConfig,
) -> Decision<'a> {
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
            match mailbox_kind(r, mail) {
                MailboxKind::Exchange => Decision::Settings(r),
                MailboxKind::Internet => Decision::InternetMail(r),
            }
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

    fn mail() -> MailConfig {
        MailConfig::default()
    }

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
            mailbox_kind: None,
        }
    }

    #[test]
    fn unknown_address_is_error_500() {
        assert_eq!(
            decide(Some("x@contoso.com"), None, &mail()),
            Decision::Error(ErrorCode::AddressNotFound)
        );
    }

    #[test]
    fn local_mailbox_gets_settings() {
        let r = recipient(RecipientType::UserMailbox, None);
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r), &mail()),
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
            decide(Some("alice@contoso.com"), Some(&r), &mail()),
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
            decide(Some("alice@contoso.com"), Some(&r), &mail()),
            Decision::RedirectAddr(_)
        ));
    }

    #[test]
    fn remote_mailbox_without_target_is_602() {
        let r = recipient(RecipientType::RemoteUserMailbox, None);
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r), &mail()),
            Decision::Error(ErrorCode::ConfigurationError)
        );
    }

    #[test]
    fn redirect_to_itself_is_602() {
        let r = recipient(RecipientType::RemoteUserMailbox, Some("ALICE@contoso.com"));
        assert_eq!(
            decide(Some("a@contoso.com"), Some(&r), &mail()),
            Decision::Error(ErrorCode::ConfigurationError)
        );
        let r = recipient(RecipientType::RemoteUserMailbox, Some("bob@contoso.com"));
        assert_eq!(
            decide(Some("BOB@contoso.com"), Some(&r), &mail()),
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
            decide(Some("alice@contoso.com"), Some(&r), &mail()),
            Decision::RedirectAddr("alice@contoso.mail.onmicrosoft.com".into())
        );
    }

    #[test]
    fn mail_user_without_target_is_501_and_contact_is_500() {
        let r = recipient(RecipientType::MailUser, None);
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r), &mail()),
            Decision::Error(ErrorCode::NoConfiguration)
        );
        let r = recipient(RecipientType::MailContact, Some("alice@fabrikam.com"));
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r), &mail()),
            Decision::Error(ErrorCode::AddressNotFound)
        );
    }

    #[test]
    fn the_kind_comes_from_the_mailbox_then_its_domain_and_migrated_ones_still_redirect() {
        let mut config = mail();
        config
            .domain_kinds
            .insert("fabrikam.com".into(), MailboxKind::Internet);
        let mut r = recipient(RecipientType::UserMailbox, None);
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r), &config),
            Decision::Settings(&r)
        );
        r.mailbox_kind = Some(MailboxKind::Internet);
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r), &config),
            Decision::InternetMail(&r)
        );
        let mut f = recipient(RecipientType::UserMailbox, None);
        f.primary_smtp = "frank@FABRIKAM.com".into();
        assert_eq!(
            decide(Some("frank@fabrikam.com"), Some(&f), &config),
            Decision::InternetMail(&f)
        );
        f.mailbox_kind = Some(MailboxKind::Exchange);
        assert_eq!(
            decide(Some("frank@fabrikam.com"), Some(&f), &config),
            Decision::Settings(&f)
        );
        // The kind never overrides the hybrid decision: a migrated mailbox redirects.
        let mut m = recipient(
            RecipientType::RemoteUserMailbox,
            Some("alice@contoso.mail.onmicrosoft.com"),
        );
        m.mailbox_kind = Some(MailboxKind::Internet);
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&m), &config),
            Decision::RedirectAddr("alice@contoso.mail.onmicrosoft.com".into())
        );
    }

    #[test]
    fn mailbox_type_without_database_is_501() {
        let mut r = recipient(RecipientType::UserMailbox, None);
        r.has_local_mailbox = false;
        assert_eq!(
            decide(Some("alice@contoso.com"), Some(&r), &mail()),
            Decision::Error(ErrorCode::NoConfiguration)
        );
    }
}
