//! The binary itself: check-config exit codes and messages.

use std::process::Command;

use crate::harness::repo_root;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let out = binary()
        .args(["check-config", "--config"])
        .arg(repo_root().join("config/autodiscoverd.example.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration OK"));
    assert!(stdout.contains("directory users:    8"));
}

#[test]
fn check_config_names_file_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(repo_root().join("config/autodiscoverd.example.toml")).unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        example.replace(
            "exchange_version = \"15.2.1258.12\"",
            "exchange_version = \"fifteen\"",
        ),
    )
    .unwrap();
    let out = binary()
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("services.exchange_version"), "{stderr}");
    assert!(stderr.contains("Fix:"), "{stderr}");

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, example.replace("[auth]\n", "[auth]\nbasci = true\n")).unwrap();
    let out = binary()
        .args(["check-config", "--config"])
        .arg(&typo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("typo.toml") && stderr.contains("basci"),
        "{stderr}"
    );

    let missing = binary()
        .args([
            "check-config",
            "--config",
            "/nonexistent/autodiscoverd.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/autodiscoverd.toml"));
}

#[test]
fn hash_password_output_is_accepted_by_the_directory() {
    use std::io::Write;
    let mut child = binary()
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"));
    assert!(!hash.contains("s3cret"));
}
