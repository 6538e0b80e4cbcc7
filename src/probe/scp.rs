//! `--scp ldaps://dc`: the first step of a domain-joined Outlook (MS-OXDISCO §3.1.5.1):
//! service connection points in Active Directory. The probe binds to the DC (LDAPS, or
//! StartTLS-less LDAP when asked), reads the configuration naming context from the
//! RootDSE, and searches it for `serviceConnectionPoint` objects whose keywords carry the
//! Autodiscover URL GUID; each `serviceBindingInformation` is an Autodiscover URL the
//! journey tries before the DNS candidates.

use std::sync::Arc;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use super::report::{Attempt, Status, StepKind};
use super::Prober;

/// The keyword of SCP objects that publish an Autodiscover URL.
pub const AUTODISCOVER_URL_KEYWORD: &str = "77378F46-2C66-4aa9-A6A6-3E7A48B19596";

/// The LDAP filter for Autodiscover URL SCPs (keyword matching is case-insensitive in AD).
pub fn filter() -> String {
    format!("(&(objectClass=serviceConnectionPoint)(keywords={AUTODISCOVER_URL_KEYWORD}))")
}

/// One SCP object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpEntry {
    pub dn: String,
    pub url: String,
    /// `Site=<name>` keywords: the AD sites the server serves.
    pub sites: Vec<String>,
}

/// The entries in the order they are tried: by DN, for a stable report (the probe does not
/// know the client's AD site, so site preference is shown, not applied).
pub fn entries(found: Vec<(String, Vec<String>, Vec<String>)>) -> Vec<ScpEntry> {
    let mut out: Vec<ScpEntry> = found
        .into_iter()
        .flat_map(|(dn, bindings, keywords)| {
            let sites: Vec<String> = keywords
                .iter()
                .filter_map(|k| {
                    k.get(..5)
                        .filter(|p| p.eq_ignore_ascii_case("site="))
                        .and_then(|_| k.get(5..))
                        .map(str::to_string)
                })
                .collect();
            bindings.into_iter().map(move |url| ScpEntry {
                dn: dn.clone(),
                url: url.trim().to_string(),
                sites: sites.clone(),
            })
        })
        .filter(|e| !e.url.is_empty())
        .collect();
    out.sort_by(|a, b| a.dn.cmp(&b.dn).then(a.url.cmp(&b.url)));
    out
}

impl Prober<'_> {
    /// Looks the SCPs up on `url`; records one attempt and returns the URLs found.
    pub(super) async fn scp_lookup(&mut self, url: &str) -> Vec<String> {
        let mut a = self.new_attempt(super::plan::Method::Scp, url);
        let found = self.search_scp(&mut a, url).await;
        match found {
            Ok(list) if list.is_empty() => {
                a.step(
                    StepKind::Scp,
                    Status::Fail,
                    format!("no serviceConnectionPoint with keyword {AUTODISCOVER_URL_KEYWORD} in the configuration partition"),
                );
                a.fail("no SCP");
                self.attempts.push(a);
                Vec::new()
            }
            Ok(list) => {
                let s = a.step(
                    StepKind::Scp,
                    Status::Pass,
                    format!("{} Autodiscover SCP URL(s)", list.len()),
                );
                for e in &list {
                    s.detail(format!("{} ({})", e.url, e.dn));
                    if !e.sites.is_empty() {
                        s.detail(format!("  serves AD sites: {}", e.sites.join(", ")));
                    }
                }
                a.outcome = super::report::Outcome::Skipped {
                    reason: "the SCP URLs follow".into(),
                };
                self.attempts.push(a);
                list.into_iter().map(|e| e.url).collect()
            }
            Err(e) => {
                a.step(StepKind::Scp, Status::Fail, e);
                a.fail("SCP lookup failed");
                self.attempts.push(a);
                Vec::new()
            }
        }
    }

    async fn search_scp(&self, a: &mut Attempt, url: &str) -> Result<Vec<ScpEntry>, String> {
        let (roots, label) = self.roots.clone()?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(Arc::clone(&roots))
        .with_no_client_auth();
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.options.timeout)
            .set_config(Arc::new(tls));
        let (conn, mut ldap) = tokio::time::timeout(
            self.options.timeout,
            LdapConnAsync::with_settings(settings, url),
        )
        .await
        .map_err(|_| format!("{url}: no connection in time"))?
        .map_err(|e| format!("{url}: {e} (anchors: {label})"))?;
        tokio::spawn(async move {
            let _ = conn.drive().await;
        });
        ldap.with_timeout(self.options.timeout);
        a.step(
            StepKind::Scp,
            Status::Pass,
            format!("connected to {url} (anchors: {label})"),
        );
        match &self.options.credentials {
            Some(c) => {
                let bound = ldap
                    .simple_bind(&c.user, &c.password)
                    .await
                    .map_err(|e| format!("bind as {}: {e}", c.user))?;
                if bound.rc != 0 {
                    return Err(format!(
                        "bind as {} refused: rc {} {}",
                        c.user, bound.rc, bound.text
                    ));
                }
                a.step(
                    StepKind::Scp,
                    Status::Pass,
                    format!("simple bind as {}", c.user),
                );
            }
            None => {
                a.step(
                    StepKind::Scp,
                    Status::Info,
                    "no credentials: searching anonymously (Active Directory usually refuses)",
                );
            }
        }
        let (root_dse, _) = ldap
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                vec!["configurationNamingContext"],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| format!("reading the RootDSE: {e}"))?;
        let config_nc = root_dse
            .into_iter()
            .map(SearchEntry::construct)
            .find_map(|e| {
                e.attrs
                    .get("configurationNamingContext")
                    .and_then(|v| v.first().cloned())
            })
            .ok_or("the RootDSE names no configurationNamingContext (not Active Directory?)")?;
        let (found, _) = ldap
            .search(
                &config_nc,
                Scope::Subtree,
                &filter(),
                vec!["serviceBindingInformation", "keywords"],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| format!("searching {config_nc}: {e}"))?;
        a.step(
            StepKind::Scp,
            Status::Info,
            format!("searched {config_nc} for {}", filter()),
        );
        let _ = ldap.unbind().await;
        Ok(entries(
            found
                .into_iter()
                .map(SearchEntry::construct)
                .map(|mut e| {
                    let bindings = e
                        .attrs
                        .remove("serviceBindingInformation")
                        .unwrap_or_default();
                    let keywords = e.attrs.remove("keywords").unwrap_or_default();
                    (e.dn, bindings, keywords)
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_urls_and_sites_in_a_stable_order() {
        let found = vec![
            (
                "CN=ex2,CN=Configuration,DC=contoso,DC=com".to_string(),
                vec!["https://ex2.contoso.com/Autodiscover/Autodiscover.xml".to_string()],
                vec![
                    AUTODISCOVER_URL_KEYWORD.to_string(),
                    "Site=Paris".to_string(),
                ],
            ),
            (
                "CN=ex1,CN=Configuration,DC=contoso,DC=com".to_string(),
                vec![
                    " https://ex1.contoso.com/Autodiscover/Autodiscover.xml ".to_string(),
                    String::new(),
                ],
                vec!["site=Berlin".to_string()],
            ),
        ];
        let e = entries(found);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].url,
            "https://ex1.contoso.com/Autodiscover/Autodiscover.xml"
        );
        assert_eq!(e[0].sites, ["Berlin"]);
        assert_eq!(e[1].sites, ["Paris"]);
        assert!(filter().contains("(keywords=77378F46-2C66-4aa9-A6A6-3E7A48B19596)"));
    }
}
