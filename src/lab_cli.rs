//! Command-line front of `lab init`, `lab up` and `probe`: argument parsing and printing
//! only; the work is in `autodiscoverd::lab` and `autodiscoverd::probe`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use autodiscoverd::lab::{self, Breakage, LabSpec};
use autodiscoverd::ops::signals::{Event, Signals};
use autodiscoverd::probe::auth::{AuthChoice, Credentials};
use autodiscoverd::probe::{self, handout, plan::Protocol, report, target};
use clap::{Args, Subcommand};

/// `lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Write a complete lab into DIR: CA and certificates, both roles' configurations and
    /// directories, a hosts file and a curl/probe name map (curl.conf).
    Init(LabInitArgs),
    /// Run both roles of the lab in DIR until Ctrl-C.
    Up {
        /// The lab directory written by `lab init`.
        dir: PathBuf,
    },
}

/// `lab init` options.
#[derive(Debug, Args)]
pub struct LabInitArgs {
    /// Directory to create (must be empty unless --force).
    pub dir: PathBuf,
    /// First of four loopback ports: on-premises HTTPS, tenant HTTPS, tenant HTTP
    /// redirector, on-premises HTTP redirector.
    #[arg(long, default_value_t = 8443)]
    pub base_port: u16,
    /// The organisation's SMTP domain.
    #[arg(long, default_value = "contoso.lab")]
    pub domain: String,
    /// The tenant name (routing domain <tenant>.mail.onmicrosoft.<cloud-domain>).
    #[arg(long, default_value = "contoso")]
    pub tenant: String,
    /// Stands in for Microsoft's domains (autodiscover-s.<cloud-domain>, outlook.<cloud-domain>).
    #[arg(long, default_value = "lab")]
    pub cloud_domain: String,
    /// Build the lab with a deliberate fault for the probe to find (docs/lab-and-probe.md
    /// lists what each does).
    #[arg(long = "break", value_parser = clap::builder::PossibleValuesParser::new(Breakage::ALL.map(Breakage::name)))]
    pub breakage: Option<String>,
    /// Overwrite the lab files in a non-empty DIR.
    #[arg(long)]
    pub force: bool,
    /// Hybrid Modern Authentication: an Entra-like token issuer on base+5 and the
    /// on-premises side accepting its tokens ([auth.bearer]).
    #[arg(long)]
    pub hma: bool,
}

/// `probe` options.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The email address to discover.
    pub email: String,
    /// Autodiscover flavour to speak, or a non-Autodiscover client's format (Thunderbird
    /// autoconfig, Apple mobileconfig; anonymous).
    #[arg(long, default_value = "pox", value_parser = ["pox", "mobilesync", "soap", "v2", "autoconfig", "mobileconfig"])]
    pub protocol: String,
    /// Login name (default: the email address).
    #[arg(long, short)]
    pub user: Option<String>,
    /// Password (visible to other local users in the process list; prefer
    /// --password-file or AUTODISCOVERD_PROBE_PASSWORD).
    #[arg(long, conflicts_with = "password_file")]
    pub password: Option<String>,
    /// File whose first line is the password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Pin addresses like curl: HOST:PORT:ADDRESS[,ADDRESS...] (repeatable).
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Connect elsewhere like curl: HOST1:PORT1:HOST2:PORT2; TLS and Host keep HOST1
    /// (repeatable).
    #[arg(long, value_name = "HOST1:PORT1:HOST2:PORT2")]
    pub connect_to: Vec<String>,
    /// A curl config file (`curl -K`) whose resolve, connect-to and cacert lines apply,
    /// e.g. a lab's curl.conf.
    #[arg(long, value_name = "FILE")]
    pub map: Vec<PathBuf>,
    /// Trust these CA certificates (PEM) instead of the system store.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Never query DNS: names without a --resolve/--connect-to entry do not resolve
    /// (labs without DNS).
    #[arg(long)]
    pub no_dns: bool,
    /// Ask only this DNS server (ADDRESS:PORT, e.g. a lab's 127.0.0.1:8447) instead of the
    /// system's resolvers and hosts file.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "no_dns")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Show the evidence of every HTTP exchange: status, request-id and X-FEServer-style
    /// headers, the authentication offers and the XML/JSON bodies (never credentials).
    #[arg(long, short)]
    pub verbose: bool,
    /// Look up Autodiscover service connection points in Active Directory first, as a
    /// domain-joined Outlook does: an LDAP URL such as ldaps://dc01.contoso.com (simple
    /// bind with --user/--password; --ca-file also anchors the DC's certificate).
    #[arg(long, value_name = "LDAP-URL")]
    pub scp: Option<String>,
    /// With --scp: the client's Active Directory site. SCPs tagged with it are tried first,
    /// then those without a site, then the others (MS-OXDISCO §3.1.5.1).
    #[arg(long, value_name = "NAME", requires = "scp")]
    pub site: Option<String>,
    /// POX: ask by this legacy DN (<LegacyDN>) instead of the address, as Outlook does
    /// once it knows the mailbox.
    #[arg(long, value_name = "DN")]
    pub legacy_dn: Option<String>,
    /// After settings are found, check that the EWS, OAB, MAPI/HTTP and ActiveSync URLs
    /// they name answer (TLS valid, then a 200 or an authentication challenge).
    #[arg(long)]
    pub check_urls: bool,
    /// Also write the report to hand on: FILE.md (Markdown) or FILE.html, verdict first,
    /// every step time-stamped with the time it took, and the evidence.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Seconds allowed for each network operation.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Do not send X-MapiHttpCapability: 1 (ask for EXCH/EXPR instead of MAPI/HTTP).
    #[arg(long)]
    pub no_mapi: bool,
    /// Authentication scheme: auto (NTLM when offered, else Basic), basic or ntlm.
    #[arg(long, default_value = "auto", value_parser = ["auto", "basic", "ntlm"])]
    pub auth: String,
    /// Present this file's Entra ID access token (first line) instead of a password
    /// (Hybrid Modern Authentication); the report also checks the Bearer challenge.
    /// The token may also come from AUTODISCOVERD_PROBE_BEARER.
    #[arg(long, value_name = "FILE")]
    pub bearer: Option<PathBuf>,
}

/// Environment variable holding the probe password.
const PASSWORD_ENV: &str = "AUTODISCOVERD_PROBE_PASSWORD";
/// Environment variable holding an access token for `probe` (instead of `--bearer FILE`).
const BEARER_ENV: &str = "AUTODISCOVERD_PROBE_BEARER";

/// The token of `--bearer FILE` (first line) or AUTODISCOVERD_PROBE_BEARER: never on the
/// command line, where other users of the machine could read it.
fn bearer(args: &ProbeArgs) -> anyhow::Result<Option<String>> {
    if let Some(file) = &args.bearer {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("while reading the token file {}", file.display()))?;
        return Ok(Some(
            text.lines().next().unwrap_or_default().trim().to_string(),
        ));
    }
    Ok(std::env::var(BEARER_ENV).ok().map(|t| t.trim().to_string()))
}

/// Runs a `lab` subcommand.
pub fn lab(command: LabCommand) -> anyhow::Result<ExitCode> {
    match command {
        LabCommand::Init(args) => {
            let spec = LabSpec {
                domain: args.domain,
                tenant: args.tenant,
                cloud: args.cloud_domain,
                base_port: args.base_port,
                breakage: args.breakage.as_deref().and_then(Breakage::parse),
                hma: args.hma,
            };
            let written = lab::init::init(&args.dir, &spec, SystemTime::now(), args.force)?;
            print!("{}", written.summary);
            println!("\nLab written to {}", written.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Up { dir } => {
            let runtime =
                tokio::runtime::Runtime::new().context("while starting the async runtime")?;
            runtime.block_on(async {
                let running =
                    lab::up::RunningLab::start(&dir, lab::up::Binding::AsConfigured).await?;
                let summary = dir.join(lab::init::paths::SUMMARY);
                if let Ok(text) = std::fs::read_to_string(&summary) {
                    eprint!("{text}");
                }
                let mut signals =
                    Signals::install().context("while installing the signal handlers")?;
                eprintln!("\nLab running; Ctrl-C stops it.");
                running
                    .serve_until(async move {
                        while signals.next().await != Event::Shutdown {
                            tracing::warn!(
                                "SIGHUP ignored: `lab up` does not reload; stop and start it"
                            );
                        }
                    })
                    .await;
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn password(args: &ProbeArgs) -> anyhow::Result<Option<String>> {
    if let Some(p) = &args.password {
        return Ok(Some(p.clone()));
    }
    if let Some(file) = &args.password_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("while reading the password file {}", file.display()))?;
        let first = text.lines().next().unwrap_or_default().to_string();
        return Ok(Some(first));
    }
    Ok(std::env::var(PASSWORD_ENV).ok())
}

/// Runs `probe`.
pub fn probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let protocol = Protocol::parse(&args.protocol)
        .ok_or_else(|| anyhow::anyhow!("unknown protocol `{}`", args.protocol))?;
    let mut overrides = target::Overrides::default();
    for r in &args.resolve {
        overrides
            .resolve
            .push(target::parse_resolve(r).map_err(|e| anyhow::anyhow!("--resolve {e}"))?);
    }
    for c in &args.connect_to {
        overrides
            .connect_to
            .push(target::parse_connect_to(c).map_err(|e| anyhow::anyhow!("--connect-to {e}"))?);
    }
    for file in &args.map {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("while reading the map file {}", file.display()))?;
        let parsed = target::parse_map_file(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        overrides.extend(parsed);
    }
    let credentials = password(&args)?.map(|password| Credentials {
        user: args
            .user
            .clone()
            .unwrap_or_else(|| args.email.trim().to_string()),
        password,
    });
    let options = probe::ProbeOptions {
        email: args.email.trim().to_string(),
        protocol,
        credentials,
        overrides,
        ca_file: args.ca_file.clone(),
        system_dns: !args.no_dns,
        dns_server: args.dns_server,
        timeout: Duration::from_secs(args.timeout.max(1)),
        mapi_http: !args.no_mapi,
        verbose: args.verbose,
        check_urls: args.check_urls,
        legacy_dn: args.legacy_dn.clone(),
        scp: args.scp.clone(),
        site: args.site.clone(),
        auth: AuthChoice::parse(&args.auth)
            .ok_or_else(|| anyhow::anyhow!("unknown --auth `{}`", args.auth))?,
        bearer: bearer(&args)?.filter(|t| !t.is_empty()),
    };
    let handout = match &args.report {
        Some(path) => Some((
            path,
            handout::Format::from_path(path).ok_or_else(|| {
                anyhow::anyhow!(
                    "--report {}: the file name must end in .md or .html",
                    path.display()
                )
            })?,
        )),
        None => None,
    };
    let runtime = tokio::runtime::Runtime::new().context("while starting the async runtime")?;
    let report = runtime.block_on(probe::run(&options, SystemTime::now()));
    if let Some((path, format)) = handout {
        std::fs::write(path, handout::render(&report, format))
            .with_context(|| format!("while writing the report {}", path.display()))?;
    }
    if args.json {
        println!("{}", report::render_json(&report));
    } else {
        print!("{}", report::render_text(&report));
    }
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
