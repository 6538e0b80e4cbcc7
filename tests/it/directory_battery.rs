//! One battery of directory cases run against every backend: the embedded lab directory,
//! the LDAP backend on a real slapd (uncached), and the LDAP backend behind the cache.
//! Same data (tests/fixtures/directory/lab.toml ≙ deploy/ldap/lab.ldif), same answers.

use autodiscoverd::directory::{
    Directory, DirectoryBackend, EmbeddedDirectory, Login, Lookup, MailboxKind, RecipientType,
};
use uuid::Uuid;

use crate::harness::{repo_root, Slapd};

/// A backend plus whatever must stay alive for it.
pub struct Fixture {
    pub dir: DirectoryBackend,
    _slapd: Option<Slapd>,
}

pub fn embedded() -> Option<Fixture> {
    let dir = EmbeddedDirectory::load(&repo_root().join("tests/fixtures/directory/lab.toml"))
        .expect("lab directory");
    Some(Fixture {
        dir: DirectoryBackend::Embedded(dir),
        _slapd: None,
    })
}

pub fn ldap() -> Option<Fixture> {
    let slapd = Slapd::start()?;
    Some(Fixture {
        dir: slapd.directory(0, &|_| {}),
        _slapd: Some(slapd),
    })
}

pub fn ldap_cached() -> Option<Fixture> {
    let slapd = Slapd::start()?;
    Some(Fixture {
        dir: slapd.directory(60, &|_| {}),
        _slapd: Some(slapd),
    })
}

fn addr(a: &str) -> Lookup {
    Lookup::Address(a.to_string())
}

fn sam(s: &str) -> Login {
    Login::SamAccountName(s.to_string())
}

/// The cases; each takes the backend under test.
pub mod cases {
    use super::*;

    pub async fn local_mailbox_by_primary_address(d: &DirectoryBackend) {
        let r = d.find(&addr("alice@contoso.com")).await.unwrap().unwrap();
        assert_eq!(r.display_name, "Alice <Example> & Co");
        assert_eq!(r.primary_smtp, "alice@contoso.com");
        assert!(r.has_address("alice.example@contoso.com"));
        assert_eq!(r.recipient_type, RecipientType::UserMailbox);
        assert!(r.has_local_mailbox);
        assert!(r.enabled);
        assert_eq!(
            r.mailbox_guid,
            Some(Uuid::parse_str("9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64").unwrap())
        );
        assert_eq!(
            r.legacy_dn.as_deref(),
            Some("/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=3f1c2a9e0b7d4c1e9a55d0b4e2c7a118-alice")
        );
    }

    pub async fn secondary_addresses_match_in_any_case(d: &DirectoryBackend) {
        let r = d
            .find(&addr("ALICE.Example@Contoso.com"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.primary_smtp, "alice@contoso.com");
        let carol = d.find(&addr("Sales@contoso.com")).await.unwrap().unwrap();
        assert_eq!(carol.primary_smtp, "carol.jones@contoso.com");
        assert_eq!(carol.recipient_type, RecipientType::SharedMailbox);
    }

    pub async fn migrated_mailbox_carries_its_target(d: &DirectoryBackend) {
        let r = d.find(&addr("bob@contoso.com")).await.unwrap().unwrap();
        assert_eq!(r.recipient_type, RecipientType::RemoteUserMailbox);
        assert_eq!(r.remote_recipient_type, 4);
        assert_eq!(
            r.target_address.as_deref(),
            Some("bob@contoso.mail.onmicrosoft.com")
        );
        assert!(!r.has_local_mailbox);
        assert_eq!(
            r.mailbox_guid,
            Some(Uuid::parse_str("1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f").unwrap())
        );
    }

    pub async fn legacy_dn_and_x500_proxy_find_the_owner(d: &DirectoryBackend) {
        let dn = "/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=3f1c2a9e0b7d4c1e9a55d0b4e2c7a118-alice";
        let r = d
            .find(&Lookup::LegacyDn(dn.to_uppercase()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.primary_smtp, "alice@contoso.com");
        let old = d
            .find(&Lookup::LegacyDn("/o=Old/cn=alice".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.primary_smtp, "alice@contoso.com");
    }

    /// Ida is served as Internet mail: the file says `mailbox_kind`, LDAP the configured
    /// attribute (`employeeType`); everyone else has no kind of their own.
    pub async fn the_mailbox_kind_comes_from_the_directory(d: &DirectoryBackend) {
        let ida = d
            .find(&addr("IDA.imap@contoso.com"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ida.primary_smtp, "ida@contoso.com");
        assert_eq!(ida.mailbox_kind, Some(MailboxKind::Internet));
        assert!(ida.has_local_mailbox);
        let alice = d.find(&addr("alice@contoso.com")).await.unwrap().unwrap();
        assert_eq!(alice.mailbox_kind, None);
        assert!(d
            .verify_password(&sam("ida"), "ida-pw")
            .await
            .unwrap()
            .is_some());
    }

    pub async fn other_recipient_kinds_keep_their_type(d: &DirectoryBackend) {
        let contact = d.find(&addr("partner@contoso.com")).await.unwrap().unwrap();
        assert_eq!(contact.recipient_type, RecipientType::MailContact);
        let dave = d.find(&addr("dave@contoso.com")).await.unwrap().unwrap();
        assert_eq!(dave.recipient_type, RecipientType::MailUser);
        assert_eq!(dave.target_address, None);
        let eve = d.find(&addr("eve@contoso.com")).await.unwrap().unwrap();
        assert!(!eve.enabled);
    }

    pub async fn unknown_and_injected_addresses_find_nothing(d: &DirectoryBackend) {
        for a in [
            "nobody@contoso.com",
            "*",
            "*@contoso.com",
            "alice*",
            "a*e@contoso.com",
            "alice@contoso.com)(mail=*",
            "*)(|(mail=*",
            "(",
            ")",
            "\\",
            "\\2a",
            "alice@contoso.com\0",
            "\0",
            "",
        ] {
            assert_eq!(d.find(&addr(a)).await.unwrap(), None, "{a:?}");
        }
        for dn in ["*", "/o=Old/cn=*", "/o=Old/cn=alice)(cn=*"] {
            assert_eq!(
                d.find(&Lookup::LegacyDn(dn.into())).await.unwrap(),
                None,
                "{dn:?}"
            );
        }
    }

    pub async fn every_login_form_verifies(d: &DirectoryBackend) {
        for login in [
            Login::UserPrincipalName("alice@contoso.com".into()),
            Login::UserPrincipalName("ALICE@contoso.com".into()),
            sam("alice"),
            Login::DownLevel {
                domain: "CONTOSO".into(),
                user: "alice".into(),
            },
            Login::DownLevel {
                domain: "contoso.com".into(),
                user: "alice".into(),
            },
        ] {
            let id = d
                .verify_password(&login, "alice-pw")
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{login:?}"));
            assert_eq!(id.user_principal_name, "alice@contoso.com");
            assert!(id.addresses.contains(&"alice@contoso.com".to_string()));
        }
        // The escaped comma of carol's DN survives the bind.
        assert!(d
            .verify_password(&sam("carol"), "carol-pw")
            .await
            .unwrap()
            .is_some());
    }

    pub async fn wrong_empty_and_foreign_domain_credentials_fail(d: &DirectoryBackend) {
        let alice = sam("alice");
        assert_eq!(d.verify_password(&alice, "wrong").await.unwrap(), None);
        assert_eq!(d.verify_password(&alice, "").await.unwrap(), None);
        assert_eq!(d.verify_password(&alice, "*").await.unwrap(), None);
        assert_eq!(d.verify_password(&alice, "alice-pw ").await.unwrap(), None);
        let foreign = Login::DownLevel {
            domain: "FABRIKAM".into(),
            user: "alice".into(),
        };
        assert_eq!(d.verify_password(&foreign, "alice-pw").await.unwrap(), None);
        assert_eq!(
            d.verify_password(&sam("nobody"), "alice-pw").await.unwrap(),
            None
        );
    }

    pub async fn disabled_accounts_are_refused_with_the_right_password(d: &DirectoryBackend) {
        for login in [
            sam("eve"),
            Login::UserPrincipalName("eve@contoso.com".into()),
        ] {
            assert_eq!(d.verify_password(&login, "eve-pw").await.unwrap(), None);
        }
    }

    pub async fn injected_logins_bind_nothing(d: &DirectoryBackend) {
        for login in [
            sam("*"),
            sam("al*"),
            sam("*lice"),
            sam("alice)(sAMAccountName=*"),
            sam("alice\0"),
            sam("\\61lice"),
            Login::UserPrincipalName("*@contoso.com".into()),
            Login::UserPrincipalName("alice@contoso.com)(|(userPrincipalName=*".into()),
            Login::DownLevel {
                domain: "CONTOSO".into(),
                user: "a*".into(),
            },
        ] {
            assert_eq!(
                d.verify_password(&login, "alice-pw").await.unwrap(),
                None,
                "{login:?}"
            );
        }
    }

    pub async fn repeated_calls_give_the_same_answers(d: &DirectoryBackend) {
        for _ in 0..3 {
            assert!(d
                .verify_password(&sam("bob"), "bob-pw")
                .await
                .unwrap()
                .is_some());
            assert_eq!(d.verify_password(&sam("bob"), "nope").await.unwrap(), None);
            assert_eq!(
                d.find(&addr("bob@contoso.com"))
                    .await
                    .unwrap()
                    .unwrap()
                    .primary_smtp,
                "bob@contoso.com"
            );
        }
    }
}

macro_rules! directory_battery {
    ($backend:ident) => {
        mod $backend {
            use super::cases;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let Some(f) = super::$backend() else { return };
                        cases::$name(&f.dir).await;
                    }
                };
            }

            case!(local_mailbox_by_primary_address);
            case!(secondary_addresses_match_in_any_case);
            case!(migrated_mailbox_carries_its_target);
            case!(legacy_dn_and_x500_proxy_find_the_owner);
            case!(other_recipient_kinds_keep_their_type);
            case!(the_mailbox_kind_comes_from_the_directory);
            case!(unknown_and_injected_addresses_find_nothing);
            case!(every_login_form_verifies);
            case!(wrong_empty_and_foreign_domain_credentials_fail);
            case!(disabled_accounts_are_refused_with_the_right_password);
            case!(injected_logins_bind_nothing);
            case!(repeated_calls_give_the_same_answers);
        }
    };
}

directory_battery!(embedded);
directory_battery!(ldap);
directory_battery!(ldap_cached);
