//! The `autodiscoverd` binary: parse the command line, load the configuration, hand over.

mod cli;
mod lab_cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    autodiscoverd::ops::logging::init();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("autodiscoverd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
