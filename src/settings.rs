//! The service settings of one mailbox, derived from the organisation's configuration and
//! the directory entry. Pure; shared by every response format.

use uuid::Uuid;

use crate::config::{Endpoint, ExchangeVersion, Organization, OutlookAnywhere, Owa, Services};
use crate::directory::Recipient;

/// `ou=` of every legacy DN Exchange 2007+ creates.
const ADMIN_GROUP: &str = "Exchange Administrative Group (FYDIBOHF23SPDLT)";

/// MAPI over HTTP URLs of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapiUrls {
    pub mail_store: Endpoint,
    pub address_book: Endpoint,
}

/// Everything a response needs to describe where one mailbox's services are.
#[derive(Debug, Clone)]
pub struct MailboxSettings {
    pub display_name: String,
    pub legacy_dn: String,
    /// The primary SMTP address (AutoDiscoverSMTPAddress).
    pub smtp_address: String,
    pub deployment_id: Uuid,
    pub microsoft_online: bool,
    /// EXCH `Server`: `<MailboxGuid>@<primary domain>`.
    pub mailbox_server: String,
    pub mailbox_server_dn: String,
    pub mdb_dn: String,
    /// POX `ServerVersion`: 8 hex digits.
    pub server_version: String,
    /// SOAP `CasVersion`: `15.02.1258.012`.
    pub cas_version: String,
    pub public_folder_server: String,
    pub ad_server: Option<String>,
    pub ews: Endpoint,
    pub oab: Option<Endpoint>,
    pub ecp: Option<Endpoint>,
    pub owa: Option<Owa>,
    pub activesync: Option<Endpoint>,
    pub outlook_anywhere: OutlookAnywhere,
    pub mapi: Option<MapiUrls>,
    pub ttl_hours: u32,
}

/// The mailbox GUID, or a stable name-based one when the directory has none (so that the
/// EXCH `Server` stays the same between requests).
pub fn mailbox_guid(recipient: &Recipient) -> Uuid {
    recipient.mailbox_guid.unwrap_or_else(|| {
        Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            recipient.primary_smtp.to_ascii_lowercase().as_bytes(),
        )
    })
}

/// The legacy DN, or the one Exchange would have generated.
pub fn legacy_dn(org: &Organization, recipient: &Recipient) -> String {
    if let Some(dn) = &recipient.legacy_dn {
        return dn.clone();
    }
    let alias = recipient
        .primary_smtp
        .split('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    format!(
        "/o={}/ou={ADMIN_GROUP}/cn=Recipients/cn={}-{alias}",
        org.exchange_org,
        mailbox_guid(recipient).simple()
    )
}

/// POX `ServerVersion` (docs "ServerVersion (POX)"): bits 31-28 = 0111, 27-22 major, 21-16 minor,
/// bit 15 set, 14-0 build.
pub fn server_version_hex(v: ExchangeVersion) -> String {
    let packed: u32 = (0b0111 << 28)
        | ((v.major & 0x3F) << 22)
        | ((v.minor & 0x3F) << 16)
        | 0x8000
        | (v.build & 0x7FFF);
    format!("{packed:08X}")
}

/// SOAP `CasVersion`, e.g. `15.02.1258.012`.
pub fn cas_version(v: ExchangeVersion) -> String {
    format!(
        "{}.{:02}.{:04}.{:03}",
        v.major, v.minor, v.build, v.revision
    )
}

/// Builds the settings for a mailbox that lives here.
pub fn mailbox_settings(org: &Organization, services: &Services, r: &Recipient) -> MailboxSettings {
    let guid = mailbox_guid(r);
    let domain = r
        .primary_smtp
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let mailbox_server = format!("{guid}@{domain}");
    let mailbox_server_dn = format!(
        "/o={}/ou={ADMIN_GROUP}/cn=Configuration/cn=Servers/cn={mailbox_server}",
        org.exchange_org
    );
    let mdb_dn = format!("{mailbox_server_dn}/cn=Microsoft Private MDB");
    let mapi = services.mapi_http.as_ref().map(|m| {
        let url = |host: &str, kind: &str| {
            format!("https://{host}/mapi/{kind}/?MailboxId={mailbox_server}")
        };
        MapiUrls {
            mail_store: Endpoint {
                internal: url(&m.internal_host, "emsmdb"),
                external: url(&m.external_host, "emsmdb"),
            },
            address_book: Endpoint {
                internal: url(&m.internal_host, "nspi"),
                external: url(&m.external_host, "nspi"),
            },
        }
    });
    MailboxSettings {
        display_name: r.display_name.clone(),
        legacy_dn: legacy_dn(org, r),
        smtp_address: r.primary_smtp.clone(),
        deployment_id: org.deployment_id,
        microsoft_online: org.microsoft_online,
        mailbox_server,
        mailbox_server_dn,
        mdb_dn,
        server_version: server_version_hex(services.exchange_version),
        cas_version: cas_version(services.exchange_version),
        public_folder_server: services.public_folder_server.clone(),
        ad_server: services.ad_server.clone(),
        ews: services.ews.clone(),
        oab: services.oab.clone(),
        ecp: services.ecp.clone(),
        owa: services.owa.clone(),
        activesync: services.activesync.clone(),
        outlook_anywhere: services.outlook_anywhere.clone(),
        mapi,
        ttl_hours: services.ttl_hours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_version_matches_the_documented_examples() {
        let v = |major, minor, build| ExchangeVersion {
            major,
            minor,
            build,
            revision: 0,
        };
        assert_eq!(server_version_hex(v(15, 1, 2507)), "73C189CB");
        assert_eq!(server_version_hex(v(15, 2, 1258)), "73C284EA");
        assert_eq!(server_version_hex(v(8, 0, 647)), "72008287");
        assert_eq!(server_version_hex(v(14, 1, 218)), "738180DA");
    }

    #[test]
    fn cas_version_is_zero_padded() {
        let v = ExchangeVersion {
            major: 15,
            minor: 1,
            build: 2507,
            revision: 6,
        };
        assert_eq!(cas_version(v), "15.01.2507.006");
    }
}
