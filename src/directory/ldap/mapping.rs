//! Directory attributes → [`Recipient`] / [`Identity`] / NT hash. Pure: takes the values of
//! one entry as bytes (already read off the wire) and the configured attribute names.
//!
//! Active Directory and Exchange schema conventions: the primary SMTP address is the
//! `proxyAddresses` value with an upper-case `SMTP:` prefix; `msExchMailboxGuid` is 16
//! bytes in .NET GUID byte order (the first three fields little-endian);
//! `userAccountControl` bit 0x2 is ACCOUNTDISABLE; `homeMDB` is set only when a mailbox
//! database on-premises holds the mailbox.

use std::time::Duration;

use uuid::Uuid;

use crate::config::{normalise_dn, LdapAttributes, MailboxKindRule};
use crate::directory::{Identity, Login, MailboxKind, Recipient, RecipientType};

/// `userAccountControl` ACCOUNTDISABLE flag.
pub const ACCOUNTDISABLE: i64 = 0x2;

/// One search result entry: its DN and every returned attribute's raw values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEntry {
    pub dn: String,
    attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl RawEntry {
    /// An entry with no attributes yet.
    pub fn new(dn: impl Into<String>) -> RawEntry {
        RawEntry {
            dn: dn.into(),
            attrs: Vec::new(),
        }
    }

    /// Adds the values of one attribute (the name as the server spelled it).
    pub fn push(&mut self, name: impl Into<String>, values: Vec<Vec<u8>>) {
        self.attrs.push((name.into(), values));
    }

    /// Builder form of [`RawEntry::push`] for text values.
    pub fn with(mut self, name: &str, values: &[&str]) -> RawEntry {
        self.push(name, values.iter().map(|v| v.as_bytes().to_vec()).collect());
        self
    }

    /// Every value of `name` (case-insensitive; `;options` such as `;binary` ignored).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attrs
            .iter()
            .filter(move |(n, _)| {
                n.split(';')
                    .next()
                    .is_some_and(|base| base.eq_ignore_ascii_case(name))
            })
            .flat_map(|(_, vs)| vs.iter().map(Vec::as_slice))
    }

    /// Every value of `name` that is UTF-8, trimmed, non-empty.
    pub fn texts<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// The first text value of `name`.
    pub fn text<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.texts(name).next()
    }

    /// Finds an attribute the server returned only part of (`name;range=0-1499`, MS-ADTS
    /// "range retrieval"), renames it to its plain name so that its values count as read,
    /// and returns the name and the first value index still to fetch.
    pub fn take_incomplete_range(&mut self) -> Option<(String, u64)> {
        self.attrs.iter_mut().find_map(|(name, _)| {
            let (base, _, end) = parse_range(name)?;
            let next = end?.checked_add(1)?;
            let base = base.to_string();
            *name = base.clone();
            Some((base, next))
        })
    }

    /// The values of a ranged `attribute` starting at `start` (its name as sent and the
    /// values), if this entry holds that range.
    pub fn range_of(self, attribute: &str, start: u64) -> Option<(String, Vec<Vec<u8>>)> {
        self.attrs.into_iter().find(|(name, _)| {
            parse_range(name)
                .is_some_and(|(base, low, _)| base.eq_ignore_ascii_case(attribute) && low == start)
        })
    }

    /// True when `name` has at least one value.
    pub fn has<'a>(&'a self, name: &'a str) -> bool {
        self.values(name).next().is_some()
    }
}

/// `member;range=0-1499` → `("member", 0, Some(1499))`; `member;range=1500-*` →
/// `("member", 1500, None)`; `None` without a range option.
pub fn parse_range(name: &str) -> Option<(&str, u64, Option<u64>)> {
    let mut parts = name.split(';');
    let base = parts.next()?;
    let range = parts.find_map(|option| {
        let (key, value) = option.split_once('=')?;
        key.eq_ignore_ascii_case("range").then_some(value)
    })?;
    let (low, high) = range.split_once('-')?;
    let low = low.parse().ok()?;
    let high = match high {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    Some((base, low, high))
}

/// Splits a proxy address into prefix and value (`SMTP:a@b` → `("SMTP", "a@b")`).
fn split_proxy(proxy: &str) -> Option<(&str, &str)> {
    let (prefix, value) = proxy.split_once(':')?;
    (!prefix.is_empty() && !prefix.contains('@')).then_some((prefix, value.trim()))
}

/// The primary SMTP address and every SMTP address (lower-case, primary first, no
/// duplicates). Primary = the upper-case `SMTP:` proxy, else `mail`.
pub fn smtp_addresses(entry: &RawEntry, names: &LdapAttributes) -> (Option<String>, Vec<String>) {
    let mut primary: Option<String> = None;
    let mut others: Vec<String> = Vec::new();
    for proxy in entry.texts(&names.proxy_addresses) {
        let Some((prefix, value)) = split_proxy(proxy) else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case("smtp")
            || !crate::directory::embedded::is_smtp_address(value)
        {
            continue;
        }
        if prefix == "SMTP" && primary.is_none() {
            primary = Some(value.to_string());
        } else {
            others.push(value.to_ascii_lowercase());
        }
    }
    let mail = entry
        .text(&names.mail)
        .filter(|m| crate::directory::embedded::is_smtp_address(m));
    if primary.is_none() {
        primary = mail.map(str::to_string);
    } else if let Some(m) = mail {
        others.push(m.to_ascii_lowercase());
    }
    let mut addresses: Vec<String> = Vec::new();
    for a in primary.iter().map(|p| p.to_ascii_lowercase()).chain(others) {
        if !addresses.contains(&a) {
            addresses.push(a);
        }
    }
    (primary, addresses)
}

/// `msExchMailboxGuid`: 16 bytes in .NET GUID byte order.
pub fn mailbox_guid(bytes: &[u8]) -> Option<Uuid> {
    let array: [u8; 16] = bytes.try_into().ok()?;
    Some(Uuid::from_bytes_le(array))
}

fn number(entry: &RawEntry, name: &str) -> Option<i64> {
    entry.text(name).and_then(|t| t.parse::<i64>().ok())
}

/// True when `userAccountControl` has the ACCOUNTDISABLE bit (absent attribute: enabled).
pub fn is_disabled(entry: &RawEntry, names: &LdapAttributes) -> bool {
    number(entry, &names.user_account_control).is_some_and(|uac| uac & ACCOUNTDISABLE != 0)
}

/// `targetAddress` without its `SMTP:` prefix; `None` for other address types (X400:...).
fn target_address(entry: &RawEntry, names: &LdapAttributes) -> Option<String> {
    let raw = entry.text(&names.target_address)?;
    let value = match split_proxy(raw) {
        Some((prefix, value)) if prefix.eq_ignore_ascii_case("smtp") => value,
        Some(_) => return None,
        None => raw,
    };
    crate::directory::embedded::is_smtp_address(value).then(|| value.to_string())
}

/// The recipient an entry describes; `None` when it has no SMTP address at all (not a
/// mail recipient).
pub fn recipient(entry: &RawEntry, names: &LdapAttributes) -> Option<Recipient> {
    let (primary, addresses) = smtp_addresses(entry, names);
    let primary = primary?;
    let has_local_mailbox = entry.has(&names.home_mdb);
    let target = target_address(entry, names);
    let recipient_type = match number(entry, &names.recipient_type_details) {
        Some(v) => RecipientType::from_value(v as u64),
        // No Exchange schema values: infer from what is there (a database → a mailbox
        // here; a target address → a mail user that lives elsewhere).
        None if has_local_mailbox => RecipientType::UserMailbox,
        None if target.is_some() => RecipientType::MailUser,
        None => RecipientType::Other(0),
    };
    Some(Recipient {
        display_name: entry
            .text(&names.display_name)
            .map(str::to_string)
            .unwrap_or_else(|| primary.clone()),
        primary_smtp: primary,
        addresses,
        legacy_dn: entry.text(&names.legacy_exchange_dn).map(str::to_string),
        mailbox_guid: entry
            .values(&names.mailbox_guid)
            .next()
            .and_then(mailbox_guid),
        recipient_type,
        remote_recipient_type: number(entry, &names.remote_recipient_type)
            .map(|v| v as u64)
            .unwrap_or(0),
        target_address: target,
        has_local_mailbox,
        enabled: !is_disabled(entry, names),
        mailbox_kind: None,
    })
}

/// The per-mailbox kind the rule gives an entry: the attribute's value when it names a
/// kind, else Internet mail for a member of a listed group or an entry below a listed
/// subtree, else `None` (the accepted domain's default).
pub fn mailbox_kind(entry: &RawEntry, rule: &MailboxKindRule) -> Option<MailboxKind> {
    if let Some(kind) = rule
        .attribute
        .as_deref()
        .and_then(|a| entry.text(a))
        .and_then(MailboxKind::parse)
    {
        return Some(kind);
    }
    let dn = normalise_dn(&entry.dn);
    let below = |subtree: &String| dn == *subtree || dn.ends_with(&format!(",{subtree}"));
    let member = !rule.internet_groups.is_empty()
        && entry
            .texts(&rule.member_of_attribute)
            .map(normalise_dn)
            .any(|g| rule.internet_groups.contains(&g));
    (member || rule.internet_subtrees.iter().any(below)).then_some(MailboxKind::Internet)
}

/// Who logged in: the UPN (else the primary address, else the login as typed) and the
/// user's own addresses.
pub fn identity(entry: &RawEntry, names: &LdapAttributes, login: &Login) -> Identity {
    let (primary, addresses) = smtp_addresses(entry, names);
    let user_principal_name = entry
        .text(&names.user_principal_name)
        .map(str::to_string)
        .or(primary)
        .unwrap_or_else(|| login.to_string());
    Identity {
        user_principal_name,
        addresses,
    }
}

/// Whether the domain of a `DOMAIN\user` login names this user's domain: the configured
/// NetBIOS name, or the DNS domain of the user's UPN. With no NetBIOS name configured any
/// domain is accepted (one directory, one domain).
pub fn down_level_domain_matches(
    entry: &RawEntry,
    names: &LdapAttributes,
    domain: &str,
    netbios: Option<&str>,
) -> bool {
    let Some(netbios) = netbios else {
        return true;
    };
    if netbios.eq_ignore_ascii_case(domain)
        || dns_domain(&entry.dn).is_some_and(|d| d.eq_ignore_ascii_case(domain))
    {
        return true;
    }
    entry
        .text(&names.user_principal_name)
        .and_then(|upn| upn.rsplit_once('@'))
        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
}

/// The DNS domain an entry lives in: the `DC=` components that end its DN
/// (`CN=Alice,CN=Users,DC=contoso,DC=com` → `contoso.com`), lower-case (MS-ADTS, domain naming contexts).
pub fn dns_domain(dn: &str) -> Option<String> {
    let mut labels: Vec<&str> = dn
        .rsplit(',')
        .map(str::trim)
        .map_while(|rdn| {
            let (attribute, value) = rdn.split_once('=')?;
            attribute
                .trim()
                .eq_ignore_ascii_case("dc")
                .then_some(value.trim())
        })
        .collect();
    if labels.is_empty() || labels.iter().any(|l| l.is_empty()) {
        return None;
    }
    labels.reverse();
    Some(labels.join(".").to_ascii_lowercase())
}

/// The naming context (domain object DN) of the domain an entry lives in: the `DC=`
/// components that end its DN, as written there.
pub fn domain_naming_context(dn: &str) -> Option<String> {
    let components: Vec<&str> = dn.split(',').map(str::trim).collect();
    let first_dc = components.iter().rposition(|rdn| {
        !rdn.split_once('=')
            .is_some_and(|(a, _)| a.trim().eq_ignore_ascii_case("dc"))
    });
    let start = first_dc.map_or(0, |i| i + 1);
    let tail = components.get(start..)?;
    (!tail.is_empty()).then(|| tail.join(","))
}

/// A domain object's lockout policy: `lockoutThreshold`, `lockOutObservationWindow` and
/// `lockoutDuration` (negative counts of 100 ns intervals; MS-ADA2; the most negative value
/// means "until an administrator unlocks it").
pub fn lockout_policy(domain: &RawEntry) -> Option<crate::directory::LockoutPolicy> {
    let threshold = u32::try_from(number(domain, "lockoutThreshold")?).ok()?;
    let interval = |name: &str| {
        number(domain, name)
            .filter(|v| *v != i64::MIN)
            .map(|v| Duration::from_nanos(v.unsigned_abs().saturating_mul(100)))
    };
    Some(crate::directory::LockoutPolicy {
        threshold,
        observation_window: interval("lockOutObservationWindow").unwrap_or(Duration::ZERO),
        lockout_duration: interval("lockoutDuration").filter(|d| !d.is_zero()),
    })
}

/// The attributes of a user entry that hold the domain's own count of its bad passwords.
pub const BAD_PASSWORD_ATTRIBUTES: [&str; 3] = ["badPwdCount", "badPasswordTime", "lockoutTime"];

/// The domain's own count of `user`'s recent bad passwords at `now` (a FILETIME: 100 ns
/// intervals since 1601): `badPwdCount` while the last bad password (`badPasswordTime`)
/// is inside the observation window, zero after it (the domain resets the count at the
/// next failure); a locked account (`lockoutTime` within `lockoutDuration`) counts as
/// full. `None` when the entry does not show `badPwdCount` (no right to read it).
pub fn bad_passwords(
    user: &RawEntry,
    policy: &crate::directory::LockoutPolicy,
    now: i64,
) -> Option<crate::directory::DomainCount> {
    let count = u32::try_from(number(user, "badPwdCount")?.max(0)).unwrap_or(u32::MAX);
    let since = |at: i64| Duration::from_nanos(now.saturating_sub(at).max(0).unsigned_abs() * 100);
    let locked_at = number(user, "lockoutTime").unwrap_or(0);
    if locked_at > 0 {
        let left = match policy.lockout_duration {
            Some(duration) => duration.saturating_sub(since(locked_at)),
            None => policy.observation_window.max(Duration::from_secs(60)),
        };
        if !left.is_zero() {
            return Some(crate::directory::DomainCount {
                bad_passwords: u32::MAX,
                retry_after_ms: left.as_millis() as u64,
            });
        }
    }
    let last = number(user, "badPasswordTime").unwrap_or(0);
    let left = policy.observation_window.saturating_sub(since(last));
    Some(crate::directory::DomainCount {
        bad_passwords: if last > 0 && !left.is_zero() {
            count
        } else {
            0
        },
        retry_after_ms: left.as_millis() as u64,
    })
}

/// The entry's parent: `CN=DC1,CN=Servers,…` for `CN=NTDS Settings,CN=DC1,CN=Servers,…`
/// (the server object of the domain controller a role owner names).
pub fn parent_dn(dn: &str) -> Option<&str> {
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => return dn.get(i + 1..).map(str::trim).filter(|p| !p.is_empty()),
            _ => escaped = false,
        }
    }
    None
}

/// How an entry matches a `name@domain` login: by its `userPrincipalName`, or by its
/// implicit UPN `sAMAccountName@<DNS domain of the account>`, which AD accepts for every
/// account whatever its explicit UPN is (MS-ADTS, userPrincipalName).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpnMatch {
    No,
    Implicit,
    Explicit,
}

/// See [`UpnMatch`].
pub fn upn_match(entry: &RawEntry, names: &LdapAttributes, upn: &str) -> UpnMatch {
    if entry
        .texts(&names.user_principal_name)
        .any(|u| u.eq_ignore_ascii_case(upn))
    {
        return UpnMatch::Explicit;
    }
    let Some((user, domain)) = upn.rsplit_once('@') else {
        return UpnMatch::No;
    };
    let same_account = entry
        .texts(&names.sam_account_name)
        .any(|s| s.eq_ignore_ascii_case(user));
    if same_account && dns_domain(&entry.dn).is_some_and(|d| d.eq_ignore_ascii_case(domain)) {
        UpnMatch::Implicit
    } else {
        UpnMatch::No
    }
}

/// The NT hash from a hex attribute such as Samba's `sambaNTPassword` (32 hex digits).
pub fn nt_hash(entry: &RawEntry, name: &str) -> Option<[u8; 16]> {
    let text = entry.text(name)?;
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LdapAttributes;

    fn names() -> LdapAttributes {
        LdapAttributes::default()
    }

    fn alice() -> RawEntry {
        let mut e = RawEntry::new("CN=Alice,OU=Users,DC=contoso,DC=com")
            .with("displayName", &["Alice Example"])
            .with("mail", &["Alice@Contoso.com"])
            .with(
                "proxyAddresses",
                &[
                    "smtp:alice.example@contoso.com",
                    "SMTP:Alice@Contoso.com",
                    "X500:/o=Old/cn=alice",
                    "sip:alice@contoso.com",
                ],
            )
            .with(
                "legacyExchangeDN",
                &["/o=Contoso/ou=x/cn=Recipients/cn=alice"],
            )
            .with("msExchRecipientTypeDetails", &["1"])
            .with("homeMDB", &["CN=DB01,CN=Databases,DC=contoso,DC=com"])
            .with("userAccountControl", &["512"])
            .with("userPrincipalName", &["alice@contoso.com"]);
        // 9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64 as AD stores it.
        e.push(
            "msExchMailboxGuid",
            vec![vec![
                0x2e, 0x7c, 0x0b, 0x9d, 0x1a, 0x4f, 0x6b, 0x4e, 0x8a, 0x3c, 0x5b, 0x2d, 0x1e, 0x0f,
                0x7a, 0x64,
            ]],
        );
        e
    }

    #[test]
    fn a_local_mailbox_maps_every_attribute() {
        let r = recipient(&alice(), &names()).unwrap();
        assert_eq!(r.display_name, "Alice Example");
        assert_eq!(r.primary_smtp, "Alice@Contoso.com");
        assert_eq!(
            r.addresses,
            vec!["alice@contoso.com", "alice.example@contoso.com"]
        );
        assert_eq!(
            r.legacy_dn.as_deref(),
            Some("/o=Contoso/ou=x/cn=Recipients/cn=alice")
        );
        assert_eq!(
            r.mailbox_guid,
            Some(Uuid::parse_str("9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64").unwrap())
        );
        assert_eq!(r.recipient_type, RecipientType::UserMailbox);
        assert!(r.has_local_mailbox);
        assert!(r.enabled);
        assert_eq!(r.target_address, None);
    }

    #[test]
    fn mailbox_guid_uses_dotnet_byte_order_and_needs_16_bytes() {
        let bytes: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            mailbox_guid(&bytes).unwrap().to_string(),
            "03020100-0504-0706-0809-0a0b0c0d0e0f"
        );
        assert_eq!(mailbox_guid(&bytes[..15]), None);
        assert_eq!(mailbox_guid(&[0u8; 17]), None);
    }

    #[test]
    fn a_migrated_mailbox_has_its_target_without_prefix() {
        let e = RawEntry::new("cn=bob")
            .with("proxyAddresses", &["SMTP:bob@contoso.com"])
            .with("msExchRecipientTypeDetails", &["2147483648"])
            .with("msExchRemoteRecipientType", &["4"])
            .with("targetAddress", &["SMTP:bob@contoso.mail.onmicrosoft.com"]);
        let r = recipient(&e, &names()).unwrap();
        assert_eq!(r.recipient_type, RecipientType::RemoteUserMailbox);
        assert_eq!(r.remote_recipient_type, 4);
        assert_eq!(
            r.target_address.as_deref(),
            Some("bob@contoso.mail.onmicrosoft.com")
        );
        assert!(!r.has_local_mailbox);
        assert_eq!(r.display_name, "bob@contoso.com");
    }

    #[test]
    fn non_smtp_target_addresses_are_ignored() {
        let e = RawEntry::new("cn=x").with("mail", &["x@contoso.com"]).with(
            "targetAddress",
            &["X400:c=US;a= ;p=Contoso;o=Exchange;s=x;"],
        );
        assert_eq!(recipient(&e, &names()).unwrap().target_address, None);
    }

    #[test]
    fn the_primary_falls_back_to_mail_and_entries_without_address_are_not_recipients() {
        let e = RawEntry::new("cn=x")
            .with("mail", &["X@contoso.com"])
            .with("proxyAddresses", &["smtp:alias@contoso.com"]);
        let r = recipient(&e, &names()).unwrap();
        assert_eq!(r.primary_smtp, "X@contoso.com");
        assert_eq!(r.addresses, vec!["x@contoso.com", "alias@contoso.com"]);
        let none = RawEntry::new("cn=y").with("displayName", &["No Mail"]);
        assert_eq!(recipient(&none, &names()), None);
    }

    #[test]
    fn recipient_type_is_inferred_without_exchange_values() {
        let mailbox = RawEntry::new("cn=x")
            .with("mail", &["x@contoso.com"])
            .with("homeMDB", &["cn=db"]);
        assert_eq!(
            recipient(&mailbox, &names()).unwrap().recipient_type,
            RecipientType::UserMailbox
        );
        let mail_user = RawEntry::new("cn=x")
            .with("mail", &["x@contoso.com"])
            .with("targetAddress", &["smtp:x@fabrikam.com"]);
        assert_eq!(
            recipient(&mail_user, &names()).unwrap().recipient_type,
            RecipientType::MailUser
        );
    }

    #[test]
    fn the_dns_domain_comes_from_the_trailing_dc_components() {
        assert_eq!(
            dns_domain("CN=Alice\\, Example,CN=Users,DC=corp,DC=Contoso,DC=com").as_deref(),
            Some("corp.contoso.com")
        );
        assert_eq!(dns_domain("cn=x,ou=people,o=contoso"), None);
        assert_eq!(dns_domain("CN=x,DC=,DC=com"), None);
    }

    #[test]
    fn ranged_attributes_are_recognised_and_completed_in_order() {
        assert_eq!(
            parse_range("member;range=0-1499"),
            Some(("member", 0, Some(1499)))
        );
        assert_eq!(
            parse_range("proxyAddresses;Range=1500-*"),
            Some(("proxyAddresses", 1500, None))
        );
        assert_eq!(parse_range("mail"), None);
        assert_eq!(parse_range("x;range=a-1"), None);
        assert_eq!(parse_range("x;binary"), None);
        let mut e =
            RawEntry::new("cn=x").with("proxyAddresses;range=0-1", &["SMTP:a@b.c", "smtp:b@b.c"]);
        assert_eq!(
            e.take_incomplete_range(),
            Some(("proxyAddresses".to_string(), 2))
        );
        assert_eq!(e.take_incomplete_range(), None, "renamed: counts as read");
        let part = RawEntry::new("cn=x").with("proxyAddresses;range=2-*", &["smtp:c@b.c"]);
        assert_eq!(part.clone().range_of("proxyaddresses", 3), None);
        let (name, values) = part.range_of("proxyaddresses", 2).unwrap();
        e.push(name, values);
        assert_eq!(e.take_incomplete_range(), None);
        let (_, all) = smtp_addresses(&e, &names());
        assert_eq!(all, vec!["a@b.c", "b@b.c", "c@b.c"]);
    }

    #[test]
    fn the_domain_object_and_its_lockout_policy() {
        assert_eq!(
            domain_naming_context("CN=Alice,CN=Users,DC=contoso,DC=com").as_deref(),
            Some("DC=contoso,DC=com")
        );
        assert_eq!(domain_naming_context("cn=x,o=contoso"), None);
        let domain = RawEntry::new("DC=contoso,DC=com")
            .with("lockoutThreshold", &["5"])
            .with("lockOutObservationWindow", &["-18000000000"]);
        let policy = lockout_policy(&domain).unwrap();
        assert_eq!(policy.threshold, 5);
        assert_eq!(
            policy.observation_window,
            std::time::Duration::from_secs(1800)
        );
        assert_eq!(lockout_policy(&RawEntry::new("DC=x")), None);
    }

    #[test]
    fn upn_logins_match_the_explicit_or_the_implicit_upn() {
        let n = names();
        let dora = RawEntry::new("CN=Dora,CN=Users,DC=contoso,DC=com")
            .with("sAMAccountName", &["dora"])
            .with("userPrincipalName", &["dora.explorer@contoso.com"]);
        assert_eq!(
            upn_match(&dora, &n, "Dora.Explorer@contoso.com"),
            UpnMatch::Explicit
        );
        assert_eq!(upn_match(&dora, &n, "dora@CONTOSO.com"), UpnMatch::Implicit);
        assert_eq!(upn_match(&dora, &n, "dora@fabrikam.com"), UpnMatch::No);
        assert_eq!(upn_match(&dora, &n, "dora@corp.contoso.com"), UpnMatch::No);
        assert_eq!(upn_match(&dora, &n, "explorer@contoso.com"), UpnMatch::No);
    }

    #[test]
    fn account_disable_bit_is_read_from_user_account_control() {
        let with = |uac: &str| RawEntry::new("cn=x").with("userAccountControl", &[uac]);
        assert!(!is_disabled(&with("512"), &names()));
        assert!(is_disabled(&with("514"), &names()));
        assert!(is_disabled(&with("66050"), &names()));
        assert!(!is_disabled(&with("66048"), &names()));
        assert!(!is_disabled(&RawEntry::new("cn=x"), &names()));
        assert!(!is_disabled(&with("garbage"), &names()));
    }

    #[test]
    fn attribute_names_match_case_insensitively_and_ignore_options() {
        let mut e = RawEntry::new("cn=x").with("MAIL", &["x@contoso.com"]);
        e.push("msexchmailboxguid;binary", vec![vec![0u8; 16]]);
        let r = recipient(&e, &names()).unwrap();
        assert_eq!(r.primary_smtp, "x@contoso.com");
        assert_eq!(r.mailbox_guid, Some(Uuid::nil()));
    }

    #[test]
    fn identity_prefers_the_upn() {
        let login = Login::SamAccountName("alice".into());
        let id = identity(&alice(), &names(), &login);
        assert_eq!(id.user_principal_name, "alice@contoso.com");
        assert_eq!(id.addresses[0], "alice@contoso.com");
        let bare = RawEntry::new("cn=x");
        assert_eq!(
            identity(&bare, &names(), &login).user_principal_name,
            "alice"
        );
    }

    #[test]
    fn down_level_domains_match_netbios_or_upn_domain() {
        let n = names();
        assert!(down_level_domain_matches(
            &alice(),
            &n,
            "CONTOSO",
            Some("contoso")
        ));
        assert!(down_level_domain_matches(
            &alice(),
            &n,
            "contoso.com",
            Some("CONTOSO")
        ));
        assert!(!down_level_domain_matches(
            &alice(),
            &n,
            "FABRIKAM",
            Some("CONTOSO")
        ));
        assert!(down_level_domain_matches(&alice(), &n, "FABRIKAM", None));
    }

    #[test]
    fn mailbox_kind_comes_from_the_attribute_then_groups_then_subtrees() {
        let rule = MailboxKindRule {
            attribute: Some("employeeType".into()),
            internet_groups: vec![normalise_dn("CN=IMAP Users, OU=Groups,DC=contoso,DC=com")],
            internet_subtrees: vec![normalise_dn("OU=Dovecot,DC=contoso,DC=com")],
            member_of_attribute: "memberOf".into(),
        };
        let plain = RawEntry::new("CN=Alice,OU=Users,DC=contoso,DC=com");
        assert_eq!(mailbox_kind(&plain, &rule), None);
        let tagged = plain.clone().with("employeeType", &["Internet"]);
        assert_eq!(mailbox_kind(&tagged, &rule), Some(MailboxKind::Internet));
        let member = plain
            .clone()
            .with("memberOf", &["cn=imap users,ou=groups,dc=contoso,dc=com"]);
        assert_eq!(mailbox_kind(&member, &rule), Some(MailboxKind::Internet));
        // The attribute wins over the group.
        let exchange = member.with("employeeType", &["exchange"]);
        assert_eq!(mailbox_kind(&exchange, &rule), Some(MailboxKind::Exchange));
        let below = RawEntry::new("cn=Carol, ou=Dovecot,dc=contoso,dc=com");
        assert_eq!(mailbox_kind(&below, &rule), Some(MailboxKind::Internet));
        // A sibling whose name only ends like the subtree does not match.
        let sibling = RawEntry::new("cn=Dan,ou=NotDovecot,dc=contoso,dc=com");
        assert_eq!(mailbox_kind(&sibling, &rule), None);
        // An unrelated attribute value leaves the default.
        let other = RawEntry::new("cn=x,dc=contoso,dc=com").with("employeeType", &["staff"]);
        assert_eq!(mailbox_kind(&other, &rule), None);
    }

    #[test]
    fn nt_hashes_are_32_hex_digits() {
        let e = |v: &str| RawEntry::new("cn=x").with("sambaNTPassword", &[v]);
        assert_eq!(
            nt_hash(&e("0CB6948805F797BF2A82807973B89537"), "sambaNTPassword"),
            Some([
                0x0c, 0xb6, 0x94, 0x88, 0x05, 0xf7, 0x97, 0xbf, 0x2a, 0x82, 0x80, 0x79, 0x73, 0xb8,
                0x95, 0x37
            ])
        );
        assert_eq!(nt_hash(&e("0CB6"), "sambaNTPassword"), None);
        assert_eq!(
            nt_hash(&e("ZZB6948805F797BF2A82807973B89537"), "sambaNTPassword"),
            None
        );
        assert_eq!(
            nt_hash(&e("+cb6948805F797BF2A82807973B89537"), "sambaNTPassword"),
            None
        );
        assert_eq!(nt_hash(&RawEntry::new("cn=x"), "sambaNTPassword"), None);
    }

    /// 100 ns intervals per second.
    const SECOND: i64 = 10_000_000;

    fn domain_policy() -> crate::directory::LockoutPolicy {
        lockout_policy(
            &RawEntry::new("DC=contoso,DC=com")
                .with("lockoutThreshold", &["5"])
                .with("lockOutObservationWindow", &["-18000000000"])
                .with("lockoutDuration", &["-18000000000"]),
        )
        .unwrap()
    }

    #[test]
    fn the_lockout_policy_reads_window_and_duration() {
        let p = domain_policy();
        assert_eq!(p.threshold, 5);
        assert_eq!(p.observation_window, Duration::from_secs(1800));
        assert_eq!(p.lockout_duration, Some(Duration::from_secs(1800)));
        let forever = lockout_policy(
            &RawEntry::new("DC=contoso,DC=com")
                .with("lockoutThreshold", &["5"])
                .with("lockoutDuration", &["-9223372036854775808"]),
        )
        .unwrap();
        assert_eq!(forever.lockout_duration, None);
        assert_eq!(forever.observation_window, Duration::ZERO);
    }

    #[test]
    fn the_domains_count_holds_inside_the_window_only() {
        let p = domain_policy();
        let now = 133_000_000_000_000_000i64;
        let user = |count: &str, last: i64, locked: i64| {
            RawEntry::new("CN=Lou,CN=Users,DC=contoso,DC=com")
                .with("badPwdCount", &[count])
                .with("badPasswordTime", &[&last.to_string()])
                .with("lockoutTime", &[&locked.to_string()])
        };
        // Three bad passwords ten minutes ago: they count for 20 more minutes.
        let c = bad_passwords(&user("3", now - 600 * SECOND, 0), &p, now).unwrap();
        assert_eq!(c.bad_passwords, 3);
        assert_eq!(c.retry_after_ms, 1_200_000);
        // The window has passed: the domain resets the count at the next failure.
        let c = bad_passwords(&user("3", now - 1800 * SECOND, 0), &p, now).unwrap();
        assert_eq!(c.bad_passwords, 0);
        // Locked five minutes ago for 30 minutes: full, for 25 more minutes.
        let c = bad_passwords(&user("5", now - 300 * SECOND, now - 300 * SECOND), &p, now).unwrap();
        assert_eq!(c.bad_passwords, u32::MAX);
        assert_eq!(c.retry_after_ms, 1_500_000);
        // A lockout that has run out is only a count again.
        let c = bad_passwords(
            &user("5", now - 3600 * SECOND, now - 3600 * SECOND),
            &p,
            now,
        )
        .unwrap();
        assert_eq!(c.bad_passwords, 0);
        // No right to read badPwdCount: not known, rather than zero.
        assert_eq!(
            bad_passwords(&RawEntry::new("CN=Lou,CN=Users,DC=contoso,DC=com"), &p, now),
            None
        );
    }

    #[test]
    fn the_role_owners_server_is_its_parent() {
        assert_eq!(
            parent_dn("CN=NTDS Settings,CN=DC1,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,DC=contoso,DC=com"),
            Some("CN=DC1,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,DC=contoso,DC=com")
        );
        assert_eq!(parent_dn("CN=a\\,b,DC=x"), Some("DC=x"));
        assert_eq!(parent_dn("DC=com"), None);
    }
}
