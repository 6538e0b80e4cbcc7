//! `[directory.ldap]` through the whole configuration loader: the shipped LDAP example, the
//! commented table of the main example, unknown keys, and every invalid value.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, DirectoryConfig, LdapConfig, LdapScope};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ldap_example_path() -> PathBuf {
    root().join("config/autodiscoverd.ldap-example.toml")
}

fn ldap_example() -> String {
    std::fs::read_to_string(ldap_example_path()).unwrap()
}

fn ldap_of(c: &Config) -> &LdapConfig {
    match &c.directory {
        DirectoryConfig::Ldap(l) => l,
        other => panic!("not ldap: {other:?}"),
    }
}

#[test]
fn the_ldap_example_parses_to_the_expected_values() {
    let c = Config::load(&ldap_example_path()).unwrap();
    let l = ldap_of(&c);
    assert_eq!(l.urls.len(), 1);
    assert_eq!(l.urls[0].url, "ldap://127.0.0.1:3389");
    assert!(l.urls[0].loopback && !l.urls[0].ldaps);
    assert_eq!(
        l.bind_dn,
        "cn=svc-autodiscover,ou=Service,dc=contoso,dc=com"
    );
    assert_eq!(l.bind_password.expose(), "svc-pw");
    assert_eq!(l.scope, LdapScope::Subtree);
    assert_eq!(l.filter, "(&(objectClass=inetOrgPerson){match})");
    assert_eq!(l.netbios_domain.as_deref(), Some("contoso"));
    assert_eq!(l.timeout, Duration::from_millis(5000));
    assert_eq!(l.cache_ttl, Duration::from_secs(60));
    assert_eq!(l.serve_stale, Duration::from_secs(4 * 3600));
    assert_eq!(l.attributes.nt_password.as_deref(), Some("sambaNTPassword"));
    assert_eq!(l.attributes.mailbox_guid, "msExchMailboxGuid");
    // The password is in memory, never in Debug output (logs, panics).
    assert!(!format!("{c:?}").contains("svc-pw"));
    assert!(c
        .summary()
        .contains("directory:          ldap ldap://127.0.0.1:3389"));
}

#[test]
fn an_unknown_key_in_any_table_of_the_ldap_example_is_rejected_by_name() {
    let table: toml::Table = toml::from_str(&ldap_example()).unwrap();
    let mut paths: Vec<Vec<String>> = vec![vec![]];
    fn walk(t: &toml::Table, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        for (k, v) in t {
            if let toml::Value::Table(inner) = v {
                let mut p = prefix.clone();
                p.push(k.clone());
                out.push(p.clone());
                walk(inner, p, out);
            }
        }
    }
    walk(&table, vec![], &mut paths);
    assert!(paths.contains(&vec!["directory".into(), "ldap".into()]));
    assert!(paths.contains(&vec![
        "directory".into(),
        "ldap".into(),
        "attributes".into()
    ]));
    for path in paths {
        let mut t = table.clone();
        let mut target = &mut t;
        for p in &path {
            target = target.get_mut(p).unwrap().as_table_mut().unwrap();
        }
        target.insert("bogus_key".into(), toml::Value::Integer(1));
        let err =
            Config::from_toml(&ldap_example_path(), &toml::to_string(&t).unwrap()).unwrap_err();
        assert!(err.to_string().contains("bogus_key"), "{path:?}: {err}");
    }
}

/// The main example's commented-out `[directory.ldap]` block, uncommented.
fn main_example_with_ldap_uncommented() -> String {
    let text = std::fs::read_to_string(root().join("config/autodiscoverd.example.toml")).unwrap();
    let mut out = String::new();
    let mut in_block = false;
    for line in text.lines() {
        if line == "# [directory.ldap]" {
            in_block = true;
        } else if in_block && !line.starts_with('#') {
            in_block = false;
        }
        let line = if in_block {
            line.strip_prefix("# ")
                .unwrap_or(line.trim_start_matches('#'))
        } else {
            line
        };
        out.push_str(line);
        out.push('\n');
    }
    let lab_password = root().join("deploy/ldap/lab-bind-password");
    out.replace("backend = \"file\"", "backend = \"ldap\"")
        .replace(
            "/etc/autodiscoverd/ldap-password",
            &lab_password.display().to_string(),
        )
        // Any existing file passes the loader's check; its PEM is read at start-up.
        .replace(
            "/etc/autodiscoverd/corp-ca.pem",
            &lab_password.display().to_string(),
        )
}

#[test]
fn the_commented_ldap_table_of_the_main_example_is_valid_as_documented() {
    let text = main_example_with_ldap_uncommented();
    assert!(text.contains("\n[directory.ldap]\n"), "{text}");
    assert!(text.contains("\n[directory.ldap.attributes]\n"));
    let c = Config::from_toml(&root().join("config/x.toml"), &text).unwrap();
    let l = ldap_of(&c);
    assert_eq!(l.urls.len(), 2);
    assert!(l.urls.iter().all(|u| u.ldaps));
    assert_eq!(l.filter, "(&(objectCategory=person){match})");
    assert_eq!(l.attributes.nt_password, None);
    assert_eq!(l.pool_size, 8);
    assert_eq!(l.connect_timeout, Duration::from_millis(3000));
}

#[test]
fn invalid_ldap_values_name_the_key_and_the_fix() {
    let text = ldap_example();
    let cases: [(&str, &str, &str); 13] = [
        (
            "urls = [\"ldap://127.0.0.1:3389\"]",
            "urls = [\"ldap://dc01.corp.contoso.com\"]",
            "directory.ldap.urls",
        ),
        (
            "urls = [\"ldap://127.0.0.1:3389\"]",
            "urls = [\"https://dc01\"]",
            "directory.ldap.urls",
        ),
        (
            "urls = [\"ldap://127.0.0.1:3389\"]",
            "urls = []",
            "directory.ldap.urls",
        ),
        (
            "bind_password_file = \"../deploy/ldap/lab-bind-password\"",
            "bind_password_file = \"../deploy/ldap/no-such-file\"",
            "directory.ldap.bind_password_file",
        ),
        (
            "bind_password_file = \"../deploy/ldap/lab-bind-password\"",
            "bind_password_env = \"AUTODISCOVERD_TEST_UNSET_VARIABLE\"",
            "directory.ldap.bind_password_env",
        ),
        (
            "bind_password_file = \"../deploy/ldap/lab-bind-password\"",
            "bind_password_file = \"../deploy/ldap/lab-bind-password\"\nbind_password_env = \"X\"",
            "directory.ldap.bind_password_file",
        ),
        (
            "filter = \"(&(objectClass=inetOrgPerson){match})\"",
            "filter = \"(objectClass=inetOrgPerson)\"",
            "directory.ldap.filter",
        ),
        (
            "filter = \"(&(objectClass=inetOrgPerson){match})\"",
            "filter = \"(&(objectClass=inetOrgPerson){match}\"",
            "directory.ldap.filter",
        ),
        (
            "scope = \"sub\"",
            "scope = \"deep\"",
            "directory.ldap.scope",
        ),
        (
            "connect_timeout_ms = 3000",
            "connect_timeout_ms = 9000",
            "directory.ldap.connect_timeout_ms",
        ),
        (
            "nt_password = \"sambaNTPassword\"",
            "nt_password = \"sambaNTPassword)(uid=*\"",
            "directory.ldap.attributes.nt_password",
        ),
        (
            "bind_dn = \"cn=svc-autodiscover,ou=Service,dc=contoso,dc=com\"",
            "bind_dn = \" \"",
            "directory.ldap.bind_dn",
        ),
        (
            "serve_stale_secs = 14400",
            "serve_stale_secs = 604801",
            "directory.ldap.serve_stale_secs",
        ),
    ];
    for (from, to, key) in cases {
        assert!(text.contains(from), "{from}");
        let err = Config::from_toml(&ldap_example_path(), &text.replace(from, to)).unwrap_err();
        assert_eq!(err.key(), Some(key), "{to}: {err}");
        assert!(err.to_string().contains("Fix:"), "{err}");
    }
    // backend = "ldap" without the table.
    let start = text.find("[directory.ldap]").unwrap();
    let end = text.find("[redirect]").unwrap();
    let without = format!("{}{}", &text[..start], &text[end..]);
    let err = Config::from_toml(&ldap_example_path(), &without).unwrap_err();
    assert_eq!(err.key(), Some("directory.ldap"));
}

#[test]
fn the_service_password_can_come_from_the_environment() {
    // A variable name only this test uses.
    std::env::set_var("AUTODISCOVERD_TEST_LDAP_PASSWORD_ENV", "from-env");
    let text = ldap_example().replace(
        "bind_password_file = \"../deploy/ldap/lab-bind-password\"",
        "bind_password_env = \"AUTODISCOVERD_TEST_LDAP_PASSWORD_ENV\"",
    );
    let c = Config::from_toml(&ldap_example_path(), &text).unwrap();
    assert_eq!(ldap_of(&c).bind_password.expose(), "from-env");
    assert!(!format!("{c:?}").contains("from-env"));
}

#[test]
fn an_empty_base_dn_means_the_forest_and_needs_global_catalog_urls() {
    let text = ldap_example().replace("base_dn = \"dc=contoso,dc=com\"", "base_dn = \"\"");
    let err = Config::from_toml(&ldap_example_path(), &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("directory.ldap.base_dn") && err.contains("3269"),
        "{err}"
    );
    let gc = text.replace("ldap://127.0.0.1:3389", "ldaps://127.0.0.1:3269");
    let c = Config::from_toml(&ldap_example_path(), &gc).unwrap();
    assert_eq!(ldap_of(&c).base_dn, "");
}
