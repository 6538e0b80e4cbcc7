use super::*;

/// The shipped example configuration's path (a fixture for every config test module).
pub(crate) fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/autodiscoverd.example.toml")
}

/// The example's path and text.
pub(crate) fn example() -> (PathBuf, String) {
    let path = example_path();
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn shipped_example_parses_to_the_expected_values() {
    let c = Config::load(&example_path()).unwrap();
    assert_eq!(
        c.server.listen,
        vec!["127.0.0.1:8443".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.server.max_body_bytes, 65536);
    assert_eq!(c.org.accepted_domains, vec!["contoso.com"]);
    assert_eq!(
        c.org.tenant_routing_domain.as_deref(),
        Some("contoso.mail.onmicrosoft.com")
    );
    assert_eq!(
        c.services.ews.external,
        "https://mail.contoso.com/EWS/Exchange.asmx"
    );
    assert_eq!(c.services.outlook_anywhere.auth_package, "Ntlm");
    assert!(c.services.mapi_http.is_some());
    assert_eq!(c.auth.lookup_policy, LookupPolicy::Any);
    assert!(c.tls.default.cert.ends_with("certs/autodiscover.pem"));
    assert!(
        matches!(&c.directory, DirectoryConfig::File { path } if path.ends_with("directory.example.toml"))
    );
    assert_eq!(
        c.redirect.as_ref().unwrap().target,
        "https://autodiscover.contoso.com"
    );
}

#[test]
fn an_unknown_key_in_any_table_is_rejected_by_name() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
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
    assert!(paths.len() > 10, "walked {paths:?}");
    for path in paths {
        let mut t = table.clone();
        let mut target = &mut t;
        for p in &path {
            target = target.get_mut(p).unwrap().as_table_mut().unwrap();
        }
        target.insert("bogus_key".into(), toml::Value::Integer(1));
        let err = Config::from_toml(&example_path(), &toml::to_string(&t).unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bogus_key"), "{path:?}: {msg}");
        assert!(msg.contains("autodiscoverd.example.toml"), "{msg}");
    }
}

#[test]
fn invalid_values_name_the_key_and_the_fix() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let cases = [
        (
            "deployment_id = \"2b7e1f0c-5a3d-4e8b-9c61-0d2f4a6b8c90\"",
            "deployment_id = \"nope\"",
            "organization.deployment_id",
        ),
        (
            "external = \"https://mail.contoso.com/ecp/\"",
            "external = \"http://mail.contoso.com/ecp/\"",
            "services.ecp.external",
        ),
        (
            "listen = [\"127.0.0.1:8443\"]",
            "listen = [\"localhost\"]",
            "server.listen",
        ),
        (
            "auth_package = \"Ntlm\"",
            "auth_package = \"Kerberos5\"",
            "services.outlook_anywhere.auth_package",
        ),
        (
            "lookup_policy = \"any\"",
            "lookup_policy = \"all\"",
            "auth.lookup_policy",
        ),
        (
            "target = \"https://autodiscover.contoso.com\"",
            "target = \"https://autodiscover.contoso.com/x\"",
            "redirect.target",
        ),
        (
            "backend = \"file\"",
            "backend = \"nis\"",
            "directory.backend",
        ),
    ];
    for (from, to, key) in cases {
        assert!(text.contains(from), "{from}");
        let err = Config::from_toml(&example_path(), &text.replace(from, to)).unwrap_err();
        assert_eq!(err.key(), Some(key), "{err}");
        assert!(err.to_string().contains("Fix:"), "{err}");
    }
}

#[test]
fn exchange_versions_parse() {
    assert_eq!(
        parse_exchange_version("15.2.1258.12"),
        Some(ExchangeVersion {
            major: 15,
            minor: 2,
            build: 1258,
            revision: 12
        })
    );
    assert!(parse_exchange_version("15.2").is_none());
    assert!(parse_exchange_version("99.2.1").is_none());
}

#[test]
fn ntlm_keys_are_validated_and_default_sensibly() {
    use crate::auth::ntlm::CbtPolicy;
    let c = Config::load(&example_path()).unwrap();
    assert!(c.auth.ntlm.enabled);
    assert!(!c.auth.ntlm.advertise_negotiate);
    assert!(c.auth.ntlm.persist_on_connection);
    assert_eq!(c.auth.ntlm.timestamp_window_secs, 129_600);
    assert_eq!(c.auth.ntlm.channel_binding, CbtPolicy::Accept);
    assert!(!c.auth.ntlm.allow_legacy);
    let text = std::fs::read_to_string(example_path()).unwrap();
    let cases = [
        (
            "ntlm_channel_binding = \"accept\"",
            "ntlm_channel_binding = \"maybe\"",
            "auth.ntlm_channel_binding",
        ),
        (
            "# ntlm_domain = \"CONTOSO\"",
            "ntlm_domain = \"contoso.example.com\"",
            "auth.ntlm_domain",
        ),
        (
            "ntlm_timestamp_window_secs = 129600",
            "ntlm_timestamp_window_secs = 0",
            "auth.ntlm_timestamp_window_secs",
        ),
        (
            "ntlm = true",
            "ntlm = false\nnegotiate = true",
            "auth.negotiate",
        ),
        ("ntlm = true", "ntlm = false", "auth.ntlm_allow_legacy"),
    ];
    for (from, to, key) in cases {
        assert!(text.contains(from), "{from}");
        let to_text = if key == "auth.negotiate" {
            text.replace(from, "ntlm = false")
                .replace("negotiate = false", "negotiate = true")
        } else if key == "auth.ntlm_allow_legacy" {
            text.replace(from, to)
                .replace("ntlm_allow_legacy = false", "ntlm_allow_legacy = true")
        } else {
            text.replace(from, to)
        };
        let err = Config::from_toml(&example_path(), &to_text).unwrap_err();
        assert_eq!(err.key(), Some(key), "{err}");
        assert!(err.to_string().contains("Fix:"), "{err}");
    }
    let ok = text.replace("# ntlm_domain = \"CONTOSO\"", "ntlm_domain = \"fabrikam\"");
    let c = Config::from_toml(&example_path(), &ok).unwrap();
    assert_eq!(c.auth.ntlm.domain.as_deref(), Some("FABRIKAM"));
    let legacy = text.replace("ntlm_allow_legacy = false", "ntlm_allow_legacy = true");
    let c = Config::from_toml(&example_path(), &legacy).unwrap();
    assert!(c.auth.ntlm.allow_legacy);
}
