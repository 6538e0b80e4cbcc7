//! `--scp ldaps://dc`: the first step of a domain-joined Outlook (MS-OXDISCO §3.1.5.1):
//! service connection points in Active Directory. The probe binds to the DC (LDAPS, or
//! plain LDAP when asked), reads the configuration naming context from the RootDSE and
//! searches it with Outlook's filter for URL and pointer SCPs. What to do with them is
//! decided by [`crate::protocol::scp::plan_server`]: a pointer for the user's domain is
//! followed at once (to `LDAP://host`, reached with the scheme and port of `--scp`: the
//! probe binds simply, so it keeps TLS), otherwise the URLs are tried in site order
//! (`--site`), and unscoped pointers are followed when none answered; at most
//! [`crate::protocol::scp::MAX_POINTER_HOPS`] pointers, never the same directory twice.

use std::sync::Arc;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use super::report::{Attempt, Status, StepKind};
use super::Prober;
use crate::protocol::scp::{
    self, parse_ldap_target, plan_server, Pointer, PointerWalk, Scp, ServerPlan,
};

/// The LDAP URL of `host` with the scheme and port of the `--scp` URL.
pub fn pointer_url(start: &str, host: &str) -> String {
    let scheme = start.split_once("://").map_or("ldaps", |(s, _)| s);
    let port = parse_ldap_target(start)
        .and_then(|(_, p)| p)
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!("{}://{host}{port}", scheme.to_ascii_lowercase())
}

/// Where the walk over the directories goes next.
pub(super) enum Next {
    /// Ask this directory (LDAP URL).
    Ask(String),
    /// No directory is left to ask.
    Done,
}

/// The state of one SCP walk: directories asked, fallbacks kept.
pub(super) struct ScpWalk {
    start: String,
    walk: PointerWalk,
    fallbacks: Vec<Pointer>,
    next: Option<String>,
}

impl ScpWalk {
    pub(super) fn new(start: &str) -> ScpWalk {
        let host = parse_ldap_target(start).map(|(h, _)| h).unwrap_or_default();
        ScpWalk {
            start: start.to_string(),
            walk: PointerWalk::new(&host),
            fallbacks: Vec::new(),
            next: Some(start.to_string()),
        }
    }

    pub(super) fn next(&mut self) -> Next {
        match self.next.take() {
            Some(url) => Next::Ask(url),
            None => Next::Done,
        }
    }

    /// Takes `pointer` if the walk allows it; the refusal otherwise.
    fn take(&mut self, pointer: &Pointer) -> Result<String, String> {
        self.walk
            .follow(&pointer.host)
            .map(|()| pointer_url(&self.start, &pointer.host))
            .map_err(|stop| stop.to_string())
    }
}

impl Prober<'_> {
    /// Asks the directory at `url` (one attempt in the report) and returns what a client
    /// does next there: follow a pointer (already queued in `walk`), or these URLs.
    pub(super) async fn scp_lookup(
        &mut self,
        walk: &mut ScpWalk,
        url: &str,
        domain: &str,
    ) -> Vec<String> {
        let mut a = self.new_attempt(super::plan::Method::Scp, url);
        let found = match self.search_scp(&mut a, url).await {
            Ok(found) => found,
            Err(e) => {
                a.step(StepKind::Scp, Status::Fail, e);
                a.fail("SCP lookup failed");
                self.attempts.push(a);
                return self.fallback(walk);
            }
        };
        let site = self.options.site.as_deref();
        let plan = plan_server(&found, domain, site);
        report_skipped(&mut a, &plan);
        if let Some(pointer) = &plan.follow {
            match walk.take(pointer) {
                Ok(next) => {
                    a.step(
                        StepKind::Scp,
                        Status::Pass,
                        format!("pointer SCP for {domain}: following it to {next}"),
                    )
                    .detail(pointer.dn.clone());
                    a.outcome = super::report::Outcome::Skipped {
                        reason: "the pointer SCP is followed".into(),
                    };
                    walk.next = Some(next);
                    self.attempts.push(a);
                    return Vec::new();
                }
                Err(why) => {
                    a.step(
                        StepKind::Scp,
                        Status::Warn,
                        format!("pointer SCP for {domain} not followed: {why}"),
                    )
                    .detail(pointer.dn.clone());
                }
            }
        }
        walk.fallbacks.extend(plan.fallbacks.iter().cloned());
        if plan.urls.is_empty() {
            a.step(
                StepKind::Scp,
                Status::Fail,
                format!(
                    "no usable Autodiscover URL SCP (keyword {}) in the configuration partition",
                    scp::URL_KEYWORD
                ),
            );
            a.fail("no SCP");
            self.attempts.push(a);
            return self.fallback(walk);
        }
        let s = a.step(
            StepKind::Scp,
            Status::Pass,
            format!("{} Autodiscover SCP URL(s)", plan.urls.len()),
        );
        for (rank, e) in &plan.urls {
            s.detail(format!("{} ({})", e.url().unwrap_or_default(), e.dn));
            let sites = if e.sites.is_empty() {
                "no Site= keyword".to_string()
            } else {
                format!("serves AD sites: {}", e.sites.join(", "))
            };
            s.detail(format!("  {sites}; rank: {rank}"));
        }
        if !walk.fallbacks.is_empty() {
            s.detail(format!(
                "then the fallback pointer(s): {}",
                walk.fallbacks
                    .iter()
                    .map(|p| p.host.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        a.outcome = super::report::Outcome::Skipped {
            reason: "the SCP URLs follow".into(),
        };
        self.attempts.push(a);
        plan.urls
            .into_iter()
            .filter_map(|(_, e)| e.url().map(str::to_string))
            .collect()
    }

    /// After a directory gave nothing that answered: the next unscoped pointer the walk
    /// takes, queued in `walk`. Returns no URLs (they come from the next directory).
    pub(super) fn fallback(&mut self, walk: &mut ScpWalk) -> Vec<String> {
        while !walk.fallbacks.is_empty() {
            let pointer = walk.fallbacks.remove(0);
            if let Ok(next) = walk.take(&pointer) {
                walk.next = Some(next);
                break;
            }
        }
        Vec::new()
    }

    async fn search_scp(&self, a: &mut Attempt, url: &str) -> Result<Vec<Scp>, String> {
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
        let filter = scp::outlook_filter();
        let (found, _) = ldap
            .search(
                &config_nc,
                Scope::Subtree,
                &filter,
                scp::OUTLOOK_ATTRIBUTES.to_vec(),
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| format!("searching {config_nc}: {e}"))?;
        a.step(
            StepKind::Scp,
            Status::Info,
            format!("searched {config_nc} for {filter}"),
        );
        let _ = ldap.unbind().await;
        Ok(found
            .into_iter()
            .map(SearchEntry::construct)
            .filter_map(|mut e| {
                let bindings = e
                    .attrs
                    .remove("serviceBindingInformation")
                    .unwrap_or_default();
                let keywords = e.attrs.remove("keywords").unwrap_or_default();
                Scp::from_entry(&e.dn, &bindings, &keywords)
            })
            .collect())
    }
}

/// Records the SCPs a client passes over (stale or for other domains).
fn report_skipped(a: &mut Attempt, plan: &ServerPlan) {
    if plan.skipped.is_empty() {
        return;
    }
    let s = a.step(
        StepKind::Scp,
        Status::Warn,
        format!("{} SCP(s) passed over", plan.skipped.len()),
    );
    for (dn, why) in &plan.skipped {
        s.detail(format!("{why}: {dn}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_reached_with_the_scheme_and_port_of_the_start() {
        assert_eq!(
            pointer_url("ldaps://127.0.0.1:636", "localhost"),
            "ldaps://localhost:636"
        );
        assert_eq!(pointer_url("LDAP://dc1", "::1"), "ldap://[::1]");
    }

    #[test]
    fn the_walk_follows_a_pointer_once_and_fallbacks_last() {
        let mut walk = ScpWalk::new("ldaps://dc1:636");
        assert!(matches!(walk.next(), Next::Ask(u) if u == "ldaps://dc1:636"));
        assert!(matches!(walk.next(), Next::Done));
        let to = |host: &str| Pointer {
            dn: format!("CN={host}"),
            host: host.into(),
            port: None,
            scoped: false,
        };
        assert_eq!(walk.take(&to("dc2")), Ok("ldaps://dc2:636".into()));
        assert!(walk.take(&to("DC1")).is_err(), "back to the start: a loop");
        assert!(walk.take(&to("dc2")).is_err(), "asked already");
    }
}
