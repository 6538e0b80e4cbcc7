//! Directory values: recipients, recipient types, logins and identities.

use uuid::Uuid;

/// `msExchRecipientTypeDetails` (Exchange's `RecipientTypeDetails` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecipientType {
    UserMailbox,
    LinkedMailbox,
    SharedMailbox,
    RoomMailbox,
    EquipmentMailbox,
    MailContact,
    MailUser,
    RemoteUserMailbox,
    RemoteRoomMailbox,
    RemoteEquipmentMailbox,
    RemoteSharedMailbox,
    TeamMailbox,
    RemoteTeamMailbox,
    /// Any other value, kept so that it can be logged.
    Other(u64),
}

const NAMED: [(RecipientType, u64, &str); 13] = [
    (RecipientType::UserMailbox, 1, "UserMailbox"),
    (RecipientType::LinkedMailbox, 2, "LinkedMailbox"),
    (RecipientType::SharedMailbox, 4, "SharedMailbox"),
    (RecipientType::RoomMailbox, 16, "RoomMailbox"),
    (RecipientType::EquipmentMailbox, 32, "EquipmentMailbox"),
    (RecipientType::MailContact, 64, "MailContact"),
    (RecipientType::MailUser, 128, "MailUser"),
    (
        RecipientType::RemoteUserMailbox,
        2_147_483_648,
        "RemoteUserMailbox",
    ),
    (
        RecipientType::RemoteRoomMailbox,
        8_589_934_592,
        "RemoteRoomMailbox",
    ),
    (
        RecipientType::RemoteEquipmentMailbox,
        17_179_869_184,
        "RemoteEquipmentMailbox",
    ),
    (
        RecipientType::RemoteSharedMailbox,
        34_359_738_368,
        "RemoteSharedMailbox",
    ),
    (RecipientType::TeamMailbox, 137_438_953_472, "TeamMailbox"),
    (
        RecipientType::RemoteTeamMailbox,
        274_877_906_944,
        "RemoteTeamMailbox",
    ),
];

impl RecipientType {
    /// From the numeric attribute value.
    pub fn from_value(value: u64) -> RecipientType {
        NAMED
            .iter()
            .find(|(_, v, _)| *v == value)
            .map(|(t, _, _)| *t)
            .unwrap_or(RecipientType::Other(value))
    }

    /// From a name (case-insensitive) such as `RemoteUserMailbox`, or a decimal number.
    pub fn parse(text: &str) -> Option<RecipientType> {
        let text = text.trim();
        if let Ok(v) = text.parse::<u64>() {
            return Some(RecipientType::from_value(v));
        }
        NAMED
            .iter()
            .find(|(_, _, n)| n.eq_ignore_ascii_case(text))
            .map(|(t, _, _)| *t)
    }

    /// The numeric attribute value.
    pub fn value(self) -> u64 {
        match self {
            RecipientType::Other(v) => v,
            known => NAMED
                .iter()
                .find(|(t, _, _)| *t == known)
                .map(|(_, v, _)| *v)
                .unwrap_or(0),
        }
    }

    /// The mailbox lives in Exchange Online (a "remote" mailbox on-premises).
    pub fn is_remote_mailbox(self) -> bool {
        matches!(
            self,
            RecipientType::RemoteUserMailbox
                | RecipientType::RemoteRoomMailbox
                | RecipientType::RemoteEquipmentMailbox
                | RecipientType::RemoteSharedMailbox
                | RecipientType::RemoteTeamMailbox
        )
    }

    /// The mailbox lives in this organisation's own Exchange.
    pub fn is_local_mailbox(self) -> bool {
        matches!(
            self,
            RecipientType::UserMailbox
                | RecipientType::LinkedMailbox
                | RecipientType::SharedMailbox
                | RecipientType::RoomMailbox
                | RecipientType::EquipmentMailbox
                | RecipientType::TeamMailbox
        )
    }
}

/// `msExchRemoteRecipientType` flags that mean "the mailbox is in the cloud"
/// (1 ProvisionMailbox, 4 Migrated; Exchange's `msExchRemoteRecipientType` flags).
pub const REMOTE_MAILBOX_FLAGS: u64 = 1 | 4;

pub use crate::config::mail::MailboxKind;

/// One mail recipient as the directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub display_name: String,
    /// The primary SMTP address (upper-case `SMTP:` proxy, or `mail`).
    pub primary_smtp: String,
    /// Every SMTP address of the recipient, lower-case, primary included.
    pub addresses: Vec<String>,
    pub legacy_dn: Option<String>,
    pub mailbox_guid: Option<Uuid>,
    pub recipient_type: RecipientType,
    /// `msExchRemoteRecipientType`, 0 when absent.
    pub remote_recipient_type: u64,
    /// `targetAddress` without its `SMTP:` prefix.
    pub target_address: Option<String>,
    /// A mailbox database holds this mailbox here (`homeMDB` is set).
    pub has_local_mailbox: bool,
    /// The account may log in (`userAccountControl` without ACCOUNTDISABLE).
    pub enabled: bool,
    /// The directory's per-mailbox kind; `None`: the accepted domain's default applies.
    pub mailbox_kind: Option<MailboxKind>,
}

impl Recipient {
    /// True when `address` (any case) is one of this recipient's SMTP addresses.
    pub fn has_address(&self, address: &str) -> bool {
        self.addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(address))
    }
}

/// What a request asks the directory for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// An SMTP address (matched against `mail` and every `smtp:` proxy address).
    Address(String),
    /// A `legacyExchangeDN` (POX `LegacyDN` requests; wins over the address).
    LegacyDn(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_types_parse_by_name_and_number() {
        assert_eq!(
            RecipientType::parse("remoteusermailbox"),
            Some(RecipientType::RemoteUserMailbox)
        );
        assert_eq!(
            RecipientType::parse("2147483648"),
            Some(RecipientType::RemoteUserMailbox)
        );
        assert_eq!(RecipientType::parse("7"), Some(RecipientType::Other(7)));
        assert_eq!(RecipientType::parse("NoSuchType"), None);
        assert_eq!(RecipientType::RemoteSharedMailbox.value(), 34_359_738_368);
    }
}
