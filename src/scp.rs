//! `autodiscoverd scp publish|show|remove`: the LDAP side of publishing the Autodiscover
//! service connection point (MS-OXDISCO §3.1.5.1) that domain-joined Outlook reads before
//! DNS. The decisions (what to write, what changed, what is ours, how clients order the
//! SCPs) are pure, in [`crate::protocol::scp`]; this module connects with the
//! `[directory.ldap]` settings, binds as the account given, reads and writes.
//!
//! Nothing is left half-written: one SCP is one LDAP add or modify (atomic), and a container
//! created for an SCP that could then not be added is deleted again.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use ldap3::{Ldap, LdapResult, Mod, Scope, SearchEntry};

use crate::config::LdapConfig;
use crate::directory::ldap::escape::filter_value;
use crate::directory::ldap::{describe_result, tls_required, Connector};
use crate::protocol::scp::{self, Change, Existing, Publication, Scp};

/// LDAP result insufficientAccessRights (RFC 4511 §4.1.9).
const INSUFFICIENT_ACCESS_RIGHTS: u32 = 50;
/// The end of a rights error when nothing changed.
const NOTHING_WRITTEN: &str = "Nothing was written.";
/// LDAP result noSuchObject.
const NO_SUCH_OBJECT: u32 = 32;

/// What went wrong, for the administrator.
#[derive(Debug, thiserror::Error)]
pub enum ScpError {
    /// Connecting, binding or an unexpected result.
    #[error("{0}")]
    Directory(String),
    /// The account may not write there: what to delegate.
    #[error("insufficientAccessRights (LDAP result 50) while {action} {dn}.\n{advice}\n{written}")]
    Rights {
        action: &'static str,
        dn: String,
        advice: String,
        /// "Nothing was written.", or what stayed behind.
        written: String,
    },
    /// Someone else's object sits where ours would.
    #[error("{0} exists and was not published by autodiscoverd (it has no `{owner}` keyword): it is left alone; choose another --name", owner = scp::OWNER_KEYWORD)]
    Foreign(String),
    /// Bad arguments.
    #[error("{0}")]
    Invalid(String),
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    Created { dn: String, container_created: bool },
    Updated { dn: String, changes: Vec<Change> },
    Unchanged { dn: String },
}

/// What `remove` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub dn: String,
    /// The SCP was there and is gone.
    pub deleted: bool,
    /// Our container was empty and is gone too.
    pub container_deleted: bool,
    /// Why an empty container of ours stayed.
    pub container_kept: Option<String>,
}

/// A bound connection to the directory.
pub struct Session {
    ldap: Ldap,
    /// The configuration naming context (`CN=Configuration,<forest>`).
    pub config_nc: String,
    default_nc: String,
    /// The bound account as "Who am I?" (RFC 4532) names it (`DOMAIN\name`), or as given.
    pub account: String,
}

/// Entry attributes as the pure code takes them.
type Attributes = Vec<(String, Vec<String>)>;

fn failed(what: &str, e: impl std::fmt::Display) -> ScpError {
    ScpError::Directory(format!("{what}: {e}"))
}

impl Session {
    /// Connects with `[directory.ldap]` (URLs, TLS, timeouts) and binds as `bind_dn`.
    pub async fn open(
        cfg: &LdapConfig,
        config_file: &Path,
        bind_dn: &str,
        password: &str,
    ) -> Result<Session, ScpError> {
        let connector =
            Connector::new(cfg, config_file).map_err(|e| ScpError::Directory(e.to_string()))?;
        let mut ldap = connector
            .connect()
            .await
            .map_err(|e| failed("connecting to the directory", e))?;
        ldap.with_timeout(cfg.timeout);
        let bound = ldap
            .simple_bind(bind_dn, password)
            .await
            .map_err(|e| failed(&format!("bind as {bind_dn}"), e))?;
        if let Some(e) = tls_required(&bound) {
            return Err(ScpError::Directory(format!("bind as {bind_dn}: {e}")));
        }
        if bound.rc != 0 {
            return Err(ScpError::Directory(format!(
                "bind as {bind_dn} refused: {}",
                describe_result(&bound)
            )));
        }
        let root = read_entry(
            &mut ldap,
            "",
            &["configurationNamingContext", "defaultNamingContext"],
        )
        .await?
        .ok_or_else(|| ScpError::Directory("the RootDSE is not readable".into()))?;
        let first = |name: &str| scp::values_of(&root, name).first().cloned();
        let config_nc = first("configurationNamingContext").ok_or_else(|| {
            ScpError::Directory(
                "the RootDSE names no configurationNamingContext: is this Active Directory?".into(),
            )
        })?;
        let default_nc = first("defaultNamingContext").unwrap_or_default();
        let account = match ldap.extended(ldap3::exop::WhoAmI).await {
            Ok(result) => result
                .success()
                .ok()
                .map(|(exop, _)| exop.parse::<ldap3::exop::WhoAmIResp>().authzid)
                .and_then(|id| id.strip_prefix("u:").map(str::to_string))
                .unwrap_or_else(|| bind_dn.to_string()),
            Err(_) => bind_dn.to_string(),
        };
        Ok(Session {
            ldap,
            config_nc,
            default_nc,
            account,
        })
    }

    /// Every Autodiscover SCP of the forest, found as Outlook finds them.
    pub async fn all(&mut self) -> Result<Vec<Scp>, ScpError> {
        let (found, _) = self
            .ldap
            .search(
                &self.config_nc,
                Scope::Subtree,
                &scp::outlook_filter(),
                scp::OUTLOOK_ATTRIBUTES.to_vec(),
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| failed(&format!("searching {}", self.config_nc), e))?;
        Ok(found
            .into_iter()
            .map(SearchEntry::construct)
            .filter_map(|e| {
                let bindings =
                    scp::values_of(&attributes(&e), "serviceBindingInformation").to_vec();
                let keywords = scp::values_of(&attributes(&e), "keywords").to_vec();
                Scp::from_entry(&e.dn, &bindings, &keywords)
            })
            .collect())
    }

    /// Publishes `p`: creates it (and our container), changes what differs, or nothing.
    pub async fn publish(&mut self, p: &Publication) -> Result<Published, ScpError> {
        let wanted = scp::wanted_attributes(p).map_err(ScpError::Invalid)?;
        let dn = scp::scp_dn(&p.name, &self.config_nc);
        let existing = scp::classify(read_entry(&mut self.ldap, &dn, &READ_BACK).await?);
        match existing {
            Existing::Foreign => Err(ScpError::Foreign(dn)),
            Existing::Ours(have) => {
                let changes = scp::changes(&wanted, &have);
                if changes.is_empty() {
                    return Ok(Published::Unchanged { dn });
                }
                let mods: Vec<Mod<String>> = changes.iter().map(to_mod).collect();
                let res = self
                    .ldap
                    .modify(&dn, mods)
                    .await
                    .map_err(|e| failed(&format!("modifying {dn}"), e))?;
                self.check(res, "modifying", &dn, true).await?;
                Ok(Published::Updated { dn, changes })
            }
            Existing::Absent => {
                let container = scp::container_dn(&self.config_nc);
                let container_created = if read_entry(&mut self.ldap, &container, &["description"])
                    .await?
                    .is_none()
                {
                    let res = self
                        .ldap
                        .add(&container, to_add(&scp::container_attributes()))
                        .await
                        .map_err(|e| failed(&format!("adding {container}"), e))?;
                    self.check(res, "creating", &container, false).await?;
                    true
                } else {
                    false
                };
                let added = self.ldap.add(&dn, to_add(&wanted)).await;
                let outcome = match added {
                    Ok(res) => self.check(res, "creating", &dn, !container_created).await,
                    Err(e) => Err(failed(&format!("adding {dn}"), e)),
                };
                if let Err(e) = outcome {
                    if !container_created {
                        return Err(e);
                    }
                    // Leave nothing half-written: the container was only for this SCP.
                    let undone = match self.ldap.delete(&container).await {
                        Ok(res) if res.rc == 0 => None,
                        Ok(res) => Some(describe_result(&res)),
                        Err(e) => Some(e.to_string()),
                    };
                    return Err(match (e, undone) {
                        (e, None) => e,
                        (ScpError::Rights { action, dn, advice, .. }, Some(why)) => {
                            ScpError::Rights {
                                action,
                                dn,
                                advice,
                                written: format!(
                                    "The empty container {container} created for it could not be deleted again ({why}): an administrator deletes it, or publishes once the rights are granted."
                                ),
                            }
                        }
                        (e, Some(why)) => ScpError::Directory(format!(
                            "{e}; the empty container {container} created for it could not be deleted again ({why})"
                        )),
                    });
                }
                Ok(Published::Created {
                    dn,
                    container_created,
                })
            }
        }
    }

    /// Deletes the SCP called `name` if it is ours, then our container once it is empty.
    /// Nothing there: nothing to do.
    pub async fn remove(&mut self, name: &str) -> Result<Removed, ScpError> {
        let dn = scp::scp_dn(name, &self.config_nc);
        let existing = scp::classify(read_entry(&mut self.ldap, &dn, &READ_BACK).await?);
        let deleted = match existing {
            Existing::Foreign => return Err(ScpError::Foreign(dn)),
            Existing::Absent => false,
            Existing::Ours(_) => {
                let res = self
                    .ldap
                    .delete(&dn)
                    .await
                    .map_err(|e| failed(&format!("deleting {dn}"), e))?;
                self.check(res, "deleting", &dn, true).await?;
                true
            }
        };
        let container = scp::container_dn(&self.config_nc);
        let mut removed = Removed {
            dn,
            deleted,
            container_deleted: false,
            container_kept: None,
        };
        let Some(attrs) = read_entry(&mut self.ldap, &container, &["description"]).await? else {
            return Ok(removed);
        };
        if !scp::container_is_ours(&attrs) {
            return Ok(removed);
        }
        let (children, _) = self
            .ldap
            .search(&container, Scope::OneLevel, "(objectClass=*)", vec!["1.1"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| failed(&format!("listing {container}"), e))?;
        if !children.is_empty() {
            removed.container_kept = Some(format!(
                "{container} still holds {} other object(s)",
                children.len()
            ));
            return Ok(removed);
        }
        match self.ldap.delete(&container).await {
            Ok(res) if res.rc == 0 => removed.container_deleted = true,
            Ok(res) => {
                removed.container_kept =
                    Some(format!("deleting {container}: {}", describe_result(&res)))
            }
            Err(e) => removed.container_kept = Some(format!("deleting {container}: {e}")),
        }
        Ok(removed)
    }

    /// Turns a write result into an error; for insufficientAccessRights, one that names the
    /// delegation (`container_exists`: whether our container is there to delegate).
    async fn check(
        &mut self,
        res: LdapResult,
        action: &'static str,
        dn: &str,
        container_exists: bool,
    ) -> Result<(), ScpError> {
        match res.rc {
            0 => Ok(()),
            INSUFFICIENT_ACCESS_RIGHTS => {
                let (sid, name) = self.account_identity().await;
                Err(ScpError::Rights {
                    action,
                    dn: dn.to_string(),
                    advice: scp::delegation_advice(
                        &self.config_nc,
                        container_exists,
                        sid.as_deref(),
                        &name,
                    ),
                    written: NOTHING_WRITTEN.into(),
                })
            }
            _ => Err(ScpError::Directory(format!(
                "{action} {dn}: {}",
                describe_result(&res)
            ))),
        }
    }

    /// The bound account's SID (for `samba-tool dsacl set`) and a name `dsacls` takes
    /// (`DOMAIN\name` or the UPN), found from what it bound as (best effort).
    async fn account_identity(&mut self) -> (Option<String>, String) {
        let who = self.account.clone();
        let (base, scope, filter) = if let Some((_, name)) = who.split_once('\\') {
            (
                self.default_nc.clone(),
                Scope::Subtree,
                format!("(sAMAccountName={})", filter_value(name)),
            )
        } else if who.contains('=') {
            (who.clone(), Scope::Base, "(objectClass=*)".to_string())
        } else {
            (
                self.default_nc.clone(),
                Scope::Subtree,
                format!("(userPrincipalName={})", filter_value(&who)),
            )
        };
        let found = self
            .ldap
            .search(
                &base,
                scope,
                &filter,
                vec!["objectSid", "userPrincipalName"],
            )
            .await
            .and_then(|r| r.success());
        let Some(entry) = found
            .ok()
            .and_then(|(found, _)| found.into_iter().next())
            .map(SearchEntry::construct)
        else {
            return (None, who);
        };
        let sid = entry
            .bin_attrs
            .get("objectSid")
            .and_then(|v| v.first())
            .and_then(|sid| scp::sid_string(sid));
        let name = if who.contains('=') {
            entry
                .attrs
                .get("userPrincipalName")
                .and_then(|v| v.first().cloned())
                .unwrap_or(who)
        } else {
            who
        };
        (sid, name)
    }

    /// Ends the session.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// The attributes read back to compare with what publish wants.
const READ_BACK: [&str; 5] = [
    "keywords",
    "serviceBindingInformation",
    "serviceDNSName",
    "serviceClassName",
    "description",
];

fn attributes(e: &SearchEntry) -> Attributes {
    e.attrs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The entry at `dn` (base search), `None` when there is none.
async fn read_entry(
    ldap: &mut Ldap,
    dn: &str,
    attrs: &[&str],
) -> Result<Option<Attributes>, ScpError> {
    let result = ldap
        .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
        .await
        .map_err(|e| failed(&format!("reading {dn}"), e))?;
    if result.1.rc == NO_SUCH_OBJECT {
        return Ok(None);
    }
    let (found, _) = result
        .success()
        .map_err(|e| failed(&format!("reading {dn}"), e))?;
    Ok(found
        .into_iter()
        .next()
        .map(|e| attributes(&SearchEntry::construct(e))))
}

fn to_add(attrs: &[(&'static str, Vec<String>)]) -> Vec<(String, HashSet<String>)> {
    attrs
        .iter()
        .map(|(name, values)| (name.to_string(), values.iter().cloned().collect()))
        .collect()
}

fn to_mod(change: &Change) -> Mod<String> {
    let set = |v: &[String]| v.iter().cloned().collect::<HashSet<String>>();
    match change {
        Change::Add(a, v) => Mod::Add(a.to_string(), set(v)),
        Change::Delete(a, v) => Mod::Delete(a.to_string(), set(v)),
        Change::Replace(a, v) => Mod::Replace(a.to_string(), set(v)),
    }
}

/// Whether `url` answers: a TCP connection to its host and port (through `overrides`, as
/// the probe's `--resolve`) within `timeout`. `Some(reason)` when it does not.
pub async fn dead(
    url: &str,
    overrides: &crate::probe::target::Overrides,
    timeout: Duration,
) -> Option<String> {
    let host = match scp::url_host(url) {
        Ok(h) => h,
        Err(e) => return Some(e),
    };
    let port = scp::url_port(url);
    let route = overrides.route(&host, port);
    let addrs: Vec<std::net::SocketAddr> = match route.addrs {
        Some(a) => a
            .into_iter()
            .map(|ip| std::net::SocketAddr::new(ip, route.port))
            .collect(),
        None => match tokio::time::timeout(
            timeout,
            tokio::net::lookup_host((route.host.as_str(), route.port)),
        )
        .await
        {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(e)) => return Some(format!("{} does not resolve: {e}", route.host)),
            Err(_) => return Some(format!("{} does not resolve in time", route.host)),
        },
    };
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return None,
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer within {} s", timeout.as_secs()),
        }
    }
    Some(last)
}
