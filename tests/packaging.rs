//! The Debian maintainer scripts as cargo-deb will assemble them: cargo-deb replaces every
//! `#DEBHELPER#` in a script with its snippets (sysusers, tmpfiles, systemd), even inside a
//! comment, so the token must stand alone on one line and the result must still be a valid
//! shell script.

use std::path::Path;
use std::process::Command;

/// A stand-in for cargo-deb's snippets: a multi-line `if` block like the real ones.
const SNIPPET: &str = "# Automatically added by cargo-deb\nif [ \"$1\" = \"configure\" ] ; then\n   true\nfi\n# End automatically added section\n";

fn maintainer_scripts() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/debian");
    let mut scripts: Vec<_> = ["preinst", "postinst", "prerm", "postrm"]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.exists())
        .collect();
    scripts.sort();
    scripts
}

#[test]
fn debhelper_token_stands_alone_once_in_every_maintainer_script() {
    let scripts = maintainer_scripts();
    assert!(
        !scripts.is_empty(),
        "no maintainer scripts in deploy/debian"
    );
    for script in scripts {
        let text = std::fs::read_to_string(&script).unwrap();
        let mentions = text.matches("#DEBHELPER#").count();
        let alone = text.lines().filter(|l| l.trim() == "#DEBHELPER#").count();
        assert_eq!(
            (mentions, alone),
            (1, 1),
            "{}: `#DEBHELPER#` must appear exactly once, alone on its line (cargo-deb \
             replaces it everywhere, comments included)",
            script.display()
        );
    }
}

#[test]
fn maintainer_scripts_stay_valid_shell_once_assembled() {
    for script in maintainer_scripts() {
        let assembled = std::fs::read_to_string(&script)
            .unwrap()
            .replace("#DEBHELPER#", SNIPPET);
        let out = Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&assembled)
            .output()
            .expect("run sh -n");
        assert!(
            out.status.success(),
            "{} does not parse once assembled: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn postinst_notes_the_autodiscover_scp_and_where_it_is_documented() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let postinst = std::fs::read_to_string(dir.join("deploy/debian/postinst")).unwrap();
    for needle in [
        "autodiscoverd scp show",
        "autodiscoverd scp publish",
        "/usr/share/doc/autodiscoverd/active-directory.md",
    ] {
        assert!(
            postinst.contains(needle),
            "postinst does not mention {needle}"
        );
    }
    // The note points at a document the package installs, and that document has the section.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(
        r#"["docs/active-directory.md", "usr/share/doc/autodiscoverd/active-directory.md", "644"]"#
    ));
    let doc = std::fs::read_to_string(dir.join("docs/active-directory.md")).unwrap();
    assert!(doc.contains("\n## Domain-joined Outlook: the Autodiscover SCP\n"));
}
