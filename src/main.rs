//! The `autodiscoverd` binary: parse the command line, load the configuration, hand over.

mod cli;
mod lab_cli;
mod scp_cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    autodiscoverd::ops::logging::init();
    let result = cli::run(cli);
    // Log lines are written by a background thread: out before the process ends.
    autodiscoverd::ops::logging::flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("autodiscoverd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// jemalloc keeps size classes apart and, configured in `.cargo/config.toml`, returns freed
/// pages from a background thread: the buffers of parked keep-alive connections go back to
/// the system instead of staying resident between long-lived objects.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
