//! Thunderbird's own account-setup code (its JavaScript modules from Debian's `thunderbird`
//! package, extracted by tests/thunderbird/fetch.sh into target/thunderbird) run under Node
//! by tests/thunderbird/run.mjs against a test server.

use std::path::PathBuf;
use std::process::Command;

use super::{repo_root, TestServer};

/// The extracted modules (with their `version.json`), when they and Node are there.
/// Missing: a failure with CI=true, otherwise a loud skip that says how to get them.
pub fn thunderbird_modules() -> Option<PathBuf> {
    let dir = repo_root().join("target/thunderbird");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let xmldom = repo_root().join("tests/thunderbird/node_modules/@xmldom/xmldom");
    let missing = if !node {
        Some("`node` is not on PATH")
    } else if !dir.join("version.json").is_file() {
        Some("target/thunderbird has no Thunderbird modules")
    } else if !xmldom.is_dir() {
        Some("tests/thunderbird/node_modules is not installed")
    } else {
        None
    };
    let Some(missing) = missing else {
        let version = std::fs::read_to_string(dir.join("version.json")).unwrap_or_default();
        eprintln!("Thunderbird modules: {}", version.trim());
        return Some(dir);
    };
    let reason = format!("{missing} (run `bash tests/thunderbird/fetch.sh`, which .ci/run runs)");
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true but {reason}");
    }
    eprintln!("\n*** SKIPPED: Thunderbird's own code did not run: {reason}. ***\n");
    None
}

/// Runs the cases (see tests/thunderbird/run.mjs) with `map` ("host:port" → local port) as
/// the network, `srv` as the SRV records and the test CAs of `servers` as the only trusted
/// roots; one JSON value per case.
pub async fn run_thunderbird(
    modules: &std::path::Path,
    servers: &[&TestServer],
    map: serde_json::Value,
    srv: serde_json::Value,
    cases: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    let mut command = Command::new("node");
    command
        .current_dir(repo_root())
        .arg("tests/thunderbird/run.mjs")
        .arg("--tb")
        .arg(modules);
    for server in servers {
        command
            .arg("--ca")
            .arg(server.pki.write_ca(server.dir.path()));
    }
    command
        .arg("--map")
        .arg(map.to_string())
        .arg("--srv")
        .arg(srv.to_string())
        .args(cases.iter().map(|c| c.to_string()));
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect();
    assert_eq!(lines.len(), cases.len(), "{stdout}\n{stderr}");
    for line in &lines {
        eprintln!("Thunderbird: {line}");
    }
    lines
}
