//! The Python interop clients of tests/interop (exchangelib, requests-ntlm, pyspnego,
//! myl-discovery): finding an interpreter that has their modules, and running a script.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Python with these modules importable: `AUTODISCOVERD_PYTHON` (the venv `.ci/run`
/// makes) or `python3`. Missing: a failure with CI=true (a skip must never count as a pass
/// there), otherwise a loud skip with the reason.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let python = std::env::var_os("AUTODISCOVERD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let reason = format!(
        "`{}` cannot import {} (run `bash .ci/run`, which installs tests/interop/requirements.txt \
         into target/interop-venv, or set AUTODISCOVERD_PYTHON to such a venv; python-gssapi \
         and krb5 need libkrb5-dev)",
        python.display(),
        modules.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true but {reason}");
    }
    eprintln!("\n*** SKIPPED: this interop test did not run: {reason}. ***\n");
    None
}

/// What a script printed.
pub struct ScriptOutput {
    pub stdout: String,
    pub stderr: String,
}

impl ScriptOutput {
    /// One JSON value per line of standard output.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// Runs `tests/interop/<script>` with `args` and asserts that it exited 0. Its temporary
/// directory is a private `tmp` (created here): exchangelib keeps a persistent Autodiscover
/// cache there, and a private one makes every run really discover.
pub async fn run_script(
    python: PathBuf,
    script: &str,
    args: Vec<OsString>,
    tmp: &Path,
) -> ScriptOutput {
    std::fs::create_dir_all(tmp).unwrap();
    let script = super::repo_root().join("tests/interop").join(script);
    let tmp = tmp.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            .env("TMPDIR", tmp)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let out = ScriptOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        out.stdout,
        out.stderr
    );
    out
}
