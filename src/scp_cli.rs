//! Command-line front of `scp publish|show|remove`: arguments, the account to bind as, and
//! printing; the LDAP work is in `autodiscoverd::scp`, the decisions in
//! `autodiscoverd::protocol::scp`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use autodiscoverd::config::{Config, DirectoryConfig, LdapConfig};
use autodiscoverd::probe::target;
use autodiscoverd::protocol::scp::{self, Change, Finding, Publication, ScpKind};
use autodiscoverd::scp::{Published, Session};
use clap::{Args, Subcommand};

/// `scp` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScpCommand {
    /// Create or update this server's Autodiscover SCP (idempotent: unchanged arguments
    /// change nothing).
    Publish {
        #[command(flatten)]
        account: Account,
        #[command(flatten)]
        name: NameArg,
        /// The Autodiscover URL to publish (default:
        /// https://autodiscover.<first accepted domain>/Autodiscover/Autodiscover.xml).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// An AD site this server serves (`Site=` keyword; repeatable). Without one the SCP
        /// serves every site, after the SCPs tagged with a client's own site.
        #[arg(long = "site", value_name = "NAME")]
        sites: Vec<String>,
    },
    /// List every Autodiscover SCP of the forest in the order a client in --site tries
    /// them; flag stale ones and those tried before ours, with the command that fixes each.
    Show {
        #[command(flatten)]
        account: Account,
        /// The client's AD site (the first one given orders the list).
        #[arg(long = "site", value_name = "NAME")]
        sites: Vec<String>,
        /// Which of the SCPs autodiscoverd published counts as ours (default: all of them).
        #[arg(long, value_name = "CN")]
        name: Option<String>,
        /// Our Autodiscover URL, for the fixes that point other SCPs at it (default: the
        /// URL of our SCP).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Connect to HOST:PORT at ADDRESS when checking URLs (curl's --resolve syntax).
        #[arg(long, value_name = "HOST:PORT:ADDRESS")]
        resolve: Vec<String>,
        /// Seconds to wait for each URL check.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Delete this server's SCP (only if autodiscoverd published it), and our container
    /// once it is empty. Nothing there: nothing to do.
    Remove {
        #[command(flatten)]
        account: Account,
        #[command(flatten)]
        name: NameArg,
    },
}

/// The account to bind as.
#[derive(Debug, Args)]
pub struct Account {
    /// Bind as this account (an Enterprise Admin, or one delegated on our container)
    /// instead of the service account of [directory.ldap].
    #[arg(long, value_name = "DN", requires = "password_file")]
    bind_dn: Option<String>,
    /// The file with --bind-dn's password (first line).
    #[arg(long, value_name = "FILE", requires = "bind_dn")]
    password_file: Option<PathBuf>,
}

/// The SCP's name.
#[derive(Debug, Args)]
pub struct NameArg {
    /// The SCP's CN (default: this machine's short host name, as Exchange names its SCPs
    /// after the server).
    #[arg(long, value_name = "CN")]
    name: Option<String>,
}

impl NameArg {
    fn get(&self) -> String {
        self.name.clone().unwrap_or_else(host_name)
    }
}

/// This machine's short host name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| h.trim().split('.').next().map(str::to_string))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "autodiscoverd".into())
}

/// Runs an `scp` subcommand with the configuration in `config_file`.
pub fn scp(command: ScpCommand, config_file: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_file)?;
    let DirectoryConfig::Ldap(ldap) = &config.directory else {
        anyhow::bail!(
            "{}: `scp` writes to Active Directory through [directory.ldap], but directory.backend is not \"ldap\"",
            config_file.display()
        );
    };
    let runtime = tokio::runtime::Runtime::new().context("while starting the async runtime")?;
    runtime.block_on(run(command, &config, ldap))
}

async fn open(account: &Account, config: &Config, ldap: &LdapConfig) -> anyhow::Result<Session> {
    let (dn, password) = match (&account.bind_dn, &account.password_file) {
        (Some(dn), Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading --password-file {}", file.display()))?;
            let password = text.lines().next().unwrap_or_default().to_string();
            if password.is_empty() {
                anyhow::bail!("--password-file {} is empty", file.display());
            }
            (dn.clone(), password)
        }
        _ => (
            ldap.bind_dn.clone(),
            ldap.bind_password.expose().to_string(),
        ),
    };
    Ok(Session::open(ldap, &config.source, &dn, &password).await?)
}

async fn run(command: ScpCommand, config: &Config, ldap: &LdapConfig) -> anyhow::Result<ExitCode> {
    match command {
        ScpCommand::Publish {
            account,
            name,
            url,
            sites,
        } => {
            let url = match url {
                Some(u) => u,
                None => scp::default_url(config.org.accepted_domains.first().ok_or_else(|| {
                    anyhow::anyhow!("no --url and no accepted domain to build one from")
                })?),
            };
            let publication = Publication {
                name: name.get(),
                url,
                sites,
            };
            scp::wanted_attributes(&publication).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut session = open(&account, config, ldap).await?;
            let outcome = session.publish(&publication).await;
            let container = scp::container_dn(&session.config_nc);
            session.close().await;
            match outcome? {
                Published::Created {
                    dn,
                    container_created,
                } => {
                    if container_created {
                        println!("created container {container}");
                    }
                    println!("created {dn}");
                    println!("  serviceBindingInformation: {}", publication.url);
                    print_sites(&publication.sites);
                }
                Published::Updated { dn, changes } => {
                    println!("updated {dn}");
                    for change in &changes {
                        println!("  {}", describe(change));
                    }
                }
                Published::Unchanged { dn } => {
                    println!("unchanged {dn}: already published as asked");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ScpCommand::Remove { account, name } => {
            let mut session = open(&account, config, ldap).await?;
            let outcome = session.remove(&name.get()).await;
            let container = scp::container_dn(&session.config_nc);
            session.close().await;
            let removed = outcome?;
            if removed.deleted {
                println!("removed {}", removed.dn);
            } else {
                println!("nothing to remove: no {}", removed.dn);
            }
            if removed.container_deleted {
                println!("removed the empty container {container}");
            }
            if let Some(why) = removed.container_kept {
                println!("kept the container: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ScpCommand::Show {
            account,
            sites,
            name,
            url,
            resolve,
            timeout,
        } => {
            let mut overrides = target::Overrides::default();
            for r in &resolve {
                overrides
                    .resolve
                    .push(target::parse_resolve(r).map_err(|e| anyhow::anyhow!("--resolve {e}"))?);
            }
            let mut session = open(&account, config, ldap).await?;
            let found = session.all().await;
            let config_nc = session.config_nc.clone();
            session.close().await;
            let mut found = found?;
            if let Some(name) = &name {
                // Only that one of ours counts as ours.
                let dn = scp::scp_dn(name, &config_nc);
                for s in &mut found {
                    s.owned &= s.dn.eq_ignore_ascii_case(&dn);
                }
            }
            let timeout = Duration::from_secs(timeout.max(1));
            let mut answers: HashMap<String, Option<String>> = HashMap::new();
            for url in found
                .iter()
                .filter(|s| s.kind == ScpKind::Url)
                .filter_map(|s| s.url())
            {
                if !answers.contains_key(url) {
                    let verdict = autodiscoverd::scp::dead(url, &overrides, timeout).await;
                    answers.insert(url.to_string(), verdict);
                }
            }
            let site = sites.first().map(String::as_str);
            let dead = |url: &str| answers.get(url).cloned().flatten();
            let reviewed = scp::review(&found, site, &dead);
            print!(
                "{}",
                render_show(&config_nc, site, url.as_deref(), &reviewed)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_sites(sites: &[String]) {
    if sites.is_empty() {
        println!("  sites: none (every site, after SCPs tagged with a client's own site)");
    } else {
        println!("  sites: {}", sites.join(", "));
    }
}

fn describe(change: &Change) -> String {
    match change {
        Change::Add(a, v) => format!("{a}: added {}", v.join(", ")),
        Change::Delete(a, v) => format!("{a}: removed {}", v.join(", ")),
        Change::Replace(a, v) => format!("{a}: now {}", v.join(", ")),
    }
}

/// The `show` listing.
fn render_show(
    config_nc: &str,
    site: Option<&str>,
    url: Option<&str>,
    reviewed: &[scp::Reviewed],
) -> String {
    let mut out = format!(
        "Autodiscover SCPs in {config_nc}, in the order a client {} tries them:\n",
        site.map(|s| format!("in site {s}"))
            .unwrap_or_else(|| "without a site".into())
    );
    if reviewed.is_empty() {
        out.push_str("  none: domain-joined Outlook goes straight to DNS\n");
    }
    let our_url = url.map(str::to_string).or_else(|| {
        reviewed
            .iter()
            .find(|r| r.scp.owned)
            .and_then(|r| r.scp.url())
            .map(str::to_string)
    });
    let ours_listed = reviewed.iter().any(|r| r.scp.owned);
    for (i, r) in reviewed.iter().enumerate() {
        let s = &r.scp;
        let what = match (s.kind, r.rank) {
            (ScpKind::Pointer, _) if s.domains.is_empty() => "pointer, fallback".to_string(),
            (ScpKind::Pointer, _) => format!("pointer for {}", s.domains.join(", ")),
            (ScpKind::Url, Some(rank)) => format!("URL, rank: {rank}"),
            (ScpKind::Url, None) => "URL".into(),
        };
        let owner = if s.owned { " (ours)" } else { "" };
        out.push_str(&format!(
            "{:>2}. {}{owner}\n    {what}; {}\n",
            i + 1,
            s.url().unwrap_or("(no serviceBindingInformation)"),
            if s.sites.is_empty() {
                "no Site= keyword".to_string()
            } else {
                format!("sites: {}", s.sites.join(", "))
            }
        ));
        out.push_str(&format!("    {}\n", s.dn));
        for f in &r.findings {
            out.push_str(&match f {
                Finding::NoUrl => "    STALE: no URL (clients skip it)\n".to_string(),
                Finding::Unreachable(why) => format!("    STALE: does not answer ({why})\n"),
                Finding::OutranksOurs => {
                    "    OUTRANKS OURS: clients in this site try it first\n".to_string()
                }
            });
        }
        for fix in scp::fixes(r, our_url.as_deref(), site) {
            out.push_str(&format!("    fix: {fix}\n"));
        }
    }
    if !ours_listed {
        out.push_str("no SCP published by autodiscoverd: `autodiscoverd scp publish` adds one\n");
    }
    out
}
