//! Command-line interface.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use autodiscoverd::config::Config;
use autodiscoverd::server;
use clap::{Parser, Subcommand};

/// Exchange-compatible Autodiscover server with per-mailbox hybrid routing.
#[derive(Debug, Parser)]
#[command(name = "autodiscoverd", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "/etc/autodiscoverd/autodiscoverd.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Autodiscover (the default).
    Serve,
    /// Validate the configuration and the directory, print a summary, exit 1 on error.
    CheckConfig,
    /// Read a password from standard input and print its argon2 hash for the directory file.
    HashPassword {
        /// Print the NT hash (`nt_hash = "..."`, for NTLM) instead of the argon2 hash.
        #[arg(long)]
        nt: bool,
    },
    /// Build (`lab init DIR`) or run (`lab up DIR`) a hybrid lab: an on-premises
    /// organisation and an emulated Exchange Online tenant on loopback.
    Lab {
        #[command(subcommand)]
        command: crate::lab_cli::LabCommand,
    },
    /// Walk the Autodiscover journey for an address as a client does and report every
    /// step; exit 0 only when settings were obtained.
    Probe(Box<crate::lab_cli::ProbeArgs>),
    /// Publish, show or remove the Autodiscover service connection point (SCP) in Active
    /// Directory that domain-joined Outlook reads before DNS (MS-OXDISCO §3.1.5.1).
    Scp {
        #[command(subcommand)]
        command: crate::scp_cli::ScpCommand,
    },
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::load(&cli.config)?;
            // Before the runtime's threads exist: GSS-API reads the keytab's name from the
            // environment.
            #[cfg(feature = "kerberos")]
            if let Some(k) = &config.auth.kerberos {
                server::endpoints::kerberos::use_keytab(k);
            }
            let runtime =
                tokio::runtime::Runtime::new().context("while starting the async runtime")?;
            runtime.block_on(server::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => {
            let config = Config::load(&cli.config)?;
            let summary = config.summary();
            let runtime =
                tokio::runtime::Runtime::new().context("while starting the async runtime")?;
            // The shared throttle store's client is made inside the runtime it will use.
            let _entered = runtime.enter();
            let state = server::build_state(config)?;
            print!("{summary}");
            match &state.directory {
                autodiscoverd::directory::DirectoryBackend::Embedded(d) => {
                    println!("directory users:    {}", d.len())
                }
                autodiscoverd::directory::DirectoryBackend::Ldap(d) => {
                    match runtime.block_on(d.inner().probe()) {
                        Ok(()) => println!("directory bind:     OK (service account)"),
                        Err(e) => {
                            println!("directory bind:     FAILED: {e}");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                    let policy = runtime.block_on(d.inner().base_lockout_policy());
                    println!(
                        "account lockout:    {}",
                        lockout_summary(policy, &state.config.throttle)
                    );
                }
            }
            if let Some(shared) = &state.config.throttle.shared {
                match runtime.block_on(state.throttle.probe_store()) {
                    Some(Ok(())) => println!(
                        "throttle store:     OK ({}; the counting scripts run)",
                        shared.url
                    ),
                    Some(Err(e)) => {
                        println!("throttle store:     FAILED: {e}");
                        return Ok(ExitCode::FAILURE);
                    }
                    None => {
                        println!("throttle store:     FAILED: the client could not be set up");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            println!("configuration OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::HashPassword { nt } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("while reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("empty password on standard input");
            }
            if nt {
                let hash = autodiscoverd::auth::ntlm::crypto::nt_hash(password);
                println!("{}", autodiscoverd::directory::embedded::hex16(&hash));
                return Ok(ExitCode::SUCCESS);
            }
            let hash = autodiscoverd::directory::embedded::hash_password(password)
                .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
            println!("{hash}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Lab { command } => crate::lab_cli::lab(command),
        Command::Probe(args) => crate::lab_cli::probe(*args),
        Command::Scp { command } => crate::scp_cli::scp(command, &cli.config),
    }
}

/// What `check-config` says about the domain's lockout policy and this server's share of it.
fn lockout_summary(
    policy: Option<autodiscoverd::directory::LockoutPolicy>,
    throttle: &autodiscoverd::config::ThrottleSettings,
) -> String {
    let margin = throttle.lockout.margin;
    let (threshold, source) = match (throttle.lockout.threshold, policy) {
        (Some(t), _) => (t, "throttle.lockout_threshold"),
        (None, Some(p)) => (p.threshold, "the domain"),
        (None, None) => {
            return "the domain's lockoutThreshold is not readable; set throttle.lockout_threshold"
                .into()
        }
    };
    let window = policy
        .map(|p| {
            format!(
                ", observation window {} min",
                p.observation_window.as_secs() / 60
            )
        })
        .unwrap_or_default();
    match autodiscoverd::auth::throttle::lockout_budget(threshold, margin) {
        None => format!("none ({source}: lockoutThreshold 0)"),
        Some(_) if !throttle.enabled => format!(
            "threshold {threshold} ({source}{window}); NOT guarded here: [throttle] is disabled"
        ),
        Some(budget) => {
            let reserve = autodiscoverd::auth::throttle::lockout_rule(threshold, margin)
                .map_or(0, |(_, reserve)| reserve);
            let pool = match &throttle.shared {
                Some(s) => format!(
                    "; counted in the shared store {} by {} instances ({} each while it is down)",
                    s.url,
                    s.instances,
                    (budget / s.instances).max(1)
                ),
                None => String::new(),
            };
            format!(
                "threshold {threshold} ({source}{window}); an account is refused after {budget} failures (lockout_margin {margin}), {} from its familiar addresses{pool}",
                budget + reserve
            )
        }
    }
}
