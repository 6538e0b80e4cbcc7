//! The `[v2]` table: AutodiscoverV2 (JSON) settings, validated into [`V2Config`].
//! Every key is optional; an absent table means "defaults".

use serde::Deserialize;

use super::{ConfigError, Organization, Services, Validator};

/// Where migrated mailboxes are sent when the configuration does not say: Exchange
/// Online's AutodiscoverV2 host.
pub const DEFAULT_TENANT_URL: &str = "https://autodiscover-s.outlook.com";

/// Clients stop after about ten hops (the EWS Managed API and exchangelib stop at 10); so do we.
pub const DEFAULT_MAX_REDIRECT_COUNT: u32 = 10;

/// Serde mirror of `[v2]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V2Section {
    pub tenant_url: Option<String>,
    #[serde(default)]
    pub reveal_unknown_users: bool,
    pub max_redirect_count: Option<u32>,
    pub autodiscover_v1_url: Option<String>,
    pub rest_url: Option<String>,
}

/// Validated AutodiscoverV2 settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Config {
    /// `https://host[:port]` of the tenant's V2 endpoint (no path, no trailing slash).
    pub tenant_url: String,
    /// `false` (default): an unknown address gets the same answer as a local mailbox of
    /// the domain, so the anonymous endpoint is no user-enumeration oracle.
    pub reveal_unknown_users: bool,
    /// Highest `RedirectCount` accepted, and highest one put into a redirect.
    pub max_redirect_count: u32,
    /// `Url` for `Protocol=AutodiscoverV1`.
    pub autodiscover_v1_url: String,
    /// `Url` for `Protocol=Rest`.
    pub rest_url: String,
}

impl Validator<'_> {
    pub(super) fn v2(
        &self,
        raw: V2Section,
        org: &Organization,
        services: &Services,
    ) -> Result<V2Config, ConfigError> {
        let tenant_url = match &raw.tenant_url {
            Some(url) => self.redirect_target("v2.tenant_url", url)?,
            None => DEFAULT_TENANT_URL.to_string(),
        };
        let max_redirect_count = raw.max_redirect_count.unwrap_or(DEFAULT_MAX_REDIRECT_COUNT);
        if !(1..=50).contains(&max_redirect_count) {
            return Err(self.invalid(
                "v2.max_redirect_count",
                format!("{max_redirect_count} is outside 1..=50"),
                "clients give up after about 10 hops; use 10 (the default)",
            ));
        }
        let autodiscover_v1_url = match &raw.autodiscover_v1_url {
            Some(url) => self.https_url("v2.autodiscover_v1_url", url)?,
            None => format!(
                "https://autodiscover.{}/autodiscover/autodiscover.xml",
                org.accepted_domains
                    .first()
                    .map(String::as_str)
                    .unwrap_or("localhost")
            ),
        };
        let rest_url = match &raw.rest_url {
            Some(url) => self.https_url("v2.rest_url", url)?,
            None => {
                let host = services
                    .ews
                    .external
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|u| u.authority().map(|a| a.to_string()))
                    .unwrap_or_else(|| services.outlook_anywhere.external_host.clone());
                format!("https://{host}/api")
            }
        };
        Ok(V2Config {
            tenant_url,
            reveal_unknown_users: raw.reveal_unknown_users,
            max_redirect_count,
            autodiscover_v1_url,
            rest_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    use crate::config::tests::example;

    #[test]
    fn shipped_example_has_the_documented_v2_defaults() {
        let (path, text) = example();
        let c = Config::from_toml(&path, &text).unwrap();
        assert_eq!(c.v2.tenant_url, "https://autodiscover-s.outlook.com");
        assert!(!c.v2.reveal_unknown_users);
        assert_eq!(c.v2.max_redirect_count, 10);
        assert_eq!(
            c.v2.autodiscover_v1_url,
            "https://autodiscover.contoso.com/autodiscover/autodiscover.xml"
        );
        assert_eq!(c.v2.rest_url, "https://mail.contoso.com/api");
    }

    #[test]
    fn a_missing_v2_table_means_defaults() {
        let (path, text) = example();
        let mut table: toml::Table = toml::from_str(&text).unwrap();
        table.remove("v2");
        let c = Config::from_toml(&path, &toml::to_string(&table).unwrap()).unwrap();
        assert_eq!(c.v2.tenant_url, DEFAULT_TENANT_URL);
        assert_eq!(c.v2.max_redirect_count, DEFAULT_MAX_REDIRECT_COUNT);
    }

    #[test]
    fn bad_v2_values_name_the_key_and_the_fix() {
        let (path, text) = example();
        for (key, value) in [
            (
                "tenant_url",
                toml::Value::from("http://autodiscover-s.outlook.com"),
            ),
            (
                "tenant_url",
                toml::Value::from("https://x.example/autodiscover"),
            ),
            ("max_redirect_count", toml::Value::from(0)),
            ("rest_url", toml::Value::from("ftp://mail.contoso.com/api")),
        ] {
            let mut table: toml::Table = toml::from_str(&text).unwrap();
            table
                .entry("v2")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap()
                .insert(key.to_string(), value);
            let err = Config::from_toml(&path, &toml::to_string(&table).unwrap()).unwrap_err();
            assert_eq!(err.key(), Some(format!("v2.{key}").as_str()), "{err}");
            assert!(err.to_string().contains("Fix:"), "{err}");
        }
    }
}
