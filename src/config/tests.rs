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

/// The example with `[auth.bearer]` made of `body`.
fn with_bearer(body: &str) -> Result<Config, ConfigError> {
    let (path, text) = example();
    let text = text.replacen(
        "[services]\n",
        &format!("[auth.bearer]\n{body}\n\n[services]\n"),
        1,
    );
    Config::from_toml(&path, &text)
}

const TENANT: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";

#[test]
fn bearer_defaults_to_entra_and_exchanges_authorization_uri() {
    assert!(Config::load(&example_path()).unwrap().auth.bearer.is_none());
    let c = with_bearer(&format!("tenant_id = \"{}\"", TENANT.to_uppercase())).unwrap();
    let b = c.auth.bearer.unwrap();
    assert_eq!(b.rules.tenant_id, TENANT);
    assert_eq!(b.authority, "https://login.microsoftonline.com");
    assert_eq!(
        b.authorization_uri,
        "https://login.windows.net/common/oauth2/authorize"
    );
    assert!(b.rules.audiences.is_empty() && b.upn_fallback && b.ca_file.is_none());
    assert!(!b.rules.accept_exchange_online_audience);
    assert_eq!(b.rules.leeway_secs, 300);
    let c = with_bearer(&format!(
        "tenant_id = \"{TENANT}\"\nauthority = \"https://login.lab.example/\"\naudiences = [\"HTTPS://Autodiscover.Contoso.com:443/\", \"https://autodiscover.contoso.com\"]\nca_file = \"directory.example.toml\"\nupn_fallback = false"
    ));
    // ca_file must hold a PEM certificate: the example configuration does not.
    let err = c.unwrap_err().to_string();
    assert!(
        err.contains("auth.bearer.ca_file") && err.contains("PEM"),
        "{err}"
    );
    let c = with_bearer(&format!(
        "tenant_id = \"{TENANT}\"\nauthority = \"https://login.lab.example/\"\naudiences = [\"HTTPS://Autodiscover.Contoso.com:443/\", \"https://autodiscover.contoso.com\"]\nupn_fallback = false"
    ))
    .unwrap();
    let b = c.auth.bearer.as_ref().unwrap();
    assert_eq!(b.authority, "https://login.lab.example");
    assert_eq!(b.rules.audiences, vec!["https://autodiscover.contoso.com"]);
    assert!(!b.upn_fallback);
    assert!(c.summary().contains("bearer (HMA):"), "{}", c.summary());
}

#[test]
fn bad_bearer_settings_name_the_key_and_the_fix() {
    for (body, key) in [
        ("tenant_id = \"contoso.onmicrosoft.com\"", "auth.bearer.tenant_id"),
        (
            &*format!("tenant_id = \"{TENANT}\"\nauthority = \"http://login.lab.example\""),
            "auth.bearer.authority",
        ),
        (
            &*format!("tenant_id = \"{TENANT}\"\nauthorization_uri = \"login.windows.net\""),
            "auth.bearer.authorization_uri",
        ),
        (
            &*format!("tenant_id = \"{TENANT}\"\naudiences = [\"00000002-0000-0ff1-ce00-000000000000\"]"),
            "auth.bearer.audiences",
        ),
        (
            &*format!("tenant_id = \"{TENANT}\"\naudiences = [\"https://autodiscover.contoso.com/autodiscover\"]"),
            "auth.bearer.audiences",
        ),
        (
            &*format!("tenant_id = \"{TENANT}\"\naudiences = [\"autodiscover.contoso.com\"]"),
            "auth.bearer.audiences",
        ),
        (
            &*format!("tenant_id = \"{TENANT}\"\nleeway_secs = 3600"),
            "auth.bearer.leeway_secs",
        ),
        (
            &*format!("tenant_id = \"{TENANT}\"\nca_file = \"no-such.pem\""),
            "auth.bearer.ca_file",
        ),
        (
            &*format!("tenant_id = \"{TENANT}\"\njwks_file = \"autodiscoverd.example.toml\""),
            "auth.bearer.jwks_file",
        ),
        (&*format!("tenant_id = \"{TENANT}\"\nissuer = \"x\""), "issuer"),
    ] {
        let err = with_bearer(body).unwrap_err().to_string();
        assert!(err.contains(key), "{body}: {err}");
        assert!(err.contains("autodiscoverd.example.toml"), "{err}");
    }
}
