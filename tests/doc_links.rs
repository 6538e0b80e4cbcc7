//! Every relative link in README.md, ARCHITECTURE.md and docs/*.md resolves: the file (or
//! directory) exists, and an `#anchor` into a Markdown file names one of its headings
//! (GitHub's slugs). Links with a scheme (`https:`, `mailto:`) are not fetched. Paths of the
//! repository named in code spans (`src/…/x.rs`, `tests/…`, `config/…`) exist, so that moved
//! files do not leave the documentation pointing at nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose links are checked.
fn documents() -> Vec<PathBuf> {
    let root = repo();
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("readable docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Lines outside fenced code blocks, with inline code spans removed.
fn prose_lines(markdown: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            lines.push(without_code_spans(line));
        }
    }
    lines
}

fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// Link targets: inline `[text](target "title")` and reference definitions `[x]: target`.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(markdown) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let raw = after[..end].trim();
            let target = raw.split_whitespace().next().unwrap_or("");
            let target = target.trim_start_matches('<').trim_end_matches('>');
            if !target.is_empty() {
                targets.push(target.to_string());
            }
            rest = &after[end..];
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if let Some(close) = trimmed.find("]:") {
                if let Some(target) = trimmed[close + 2..].split_whitespace().next() {
                    targets.push(target.to_string());
                }
            }
        }
    }
    targets
}

/// GitHub's anchor for a heading: formatting dropped, lower case, punctuation other than
/// `-` and `_` removed, spaces to hyphens; repeated headings get `-1`, `-2`, ...
fn slug(heading: &str) -> String {
    let mut text = String::new();
    // `[text](url)` keeps only its text.
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(paren)) if paren > close => {
                text.push_str(&after[..close]);
                rest = &after[paren + 1..];
            }
            _ => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading.trim());
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// What is wrong with the links of `file` (empty when every one resolves).
fn broken_links(file: &Path, markdown: &str) -> Vec<String> {
    let dir = file.parent().expect("a file has a directory");
    let mut broken = Vec::new();
    for target in link_targets(markdown) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        if !path.is_empty() && !resolved.exists() {
            broken.push(format!("{target}: {} does not exist", resolved.display()));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        if resolved.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        let text = if path.is_empty() {
            markdown.to_string()
        } else {
            fs::read_to_string(&resolved).expect("readable Markdown")
        };
        if !anchors(&text).contains(anchor) {
            broken.push(format!(
                "{target}: no heading #{anchor} in {}",
                resolved.display()
            ));
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_documentation_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in documents() {
        let markdown = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        checked += link_targets(&markdown).len();
        for problem in broken_links(&file, &markdown) {
            problems.push(format!("{}: {problem}", file.display()));
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// The top-level folders whose files the documentation names by path.
const NAMED_FOLDERS: [&str; 7] = [
    "src/", "tests/", "config/", "deploy/", "benches/", "docs/", ".ci/",
];

/// Paths the documentation names that are not this repository's files.
const ELSEWHERE: [&str; 2] = [
    // Created at run time by the AD lab script (ignored by git).
    "config/ad-lab/",
    // HAProxy's source, cited for its connection handling.
    "src/http_ana.c",
];

/// Repository paths named in the text (in code spans or not) that do not exist. A path is a
/// run of path characters starting with one of [`NAMED_FOLDERS`] and ending in a file
/// extension; globs and placeholders (`*`, `<`, `…`) are not paths.
fn missing_paths(markdown: &str) -> Vec<String> {
    let root = repo();
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    let mut missing = Vec::new();
    for line in markdown.lines() {
        let mut rest = line;
        while let Some(start) = NAMED_FOLDERS
            .iter()
            .filter_map(|folder| rest.find(folder))
            .min()
        {
            let preceded_by_path = rest[..start].chars().next_back().is_some_and(is_path_char);
            let tail = &rest[start..];
            let end = tail.find(|c: char| !is_path_char(c)).unwrap_or(tail.len());
            let candidate = tail[..end].trim_end_matches('.');
            let next = tail[end..].chars().next();
            rest = &tail[end.max(1)..];
            let has_extension = candidate
                .rsplit('/')
                .next()
                .is_some_and(|name| name.contains('.') && !name.ends_with('.'));
            let elsewhere = ELSEWHERE.iter().any(|p| candidate.starts_with(p));
            if preceded_by_path
                || elsewhere
                || !has_extension
                || matches!(next, Some('*' | '<' | '…'))
            {
                continue;
            }
            if !root.join(candidate).exists() && !missing.contains(&candidate.to_string()) {
                missing.push(candidate.to_string());
            }
        }
    }
    missing
}

#[test]
fn every_repository_path_the_documentation_names_exists() {
    let mut problems = Vec::new();
    for file in documents()
        .into_iter()
        .chain([repo().join("deploy/README.md")])
    {
        let markdown = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for path in missing_paths(&markdown) {
            problems.push(format!("{}: {path}", file.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "paths named in the documentation that do not exist:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_path_checker_finds_a_moved_file() {
    let text = "The glue is in `src/server/winbind.rs` and `src/server/endpoints/winbind.rs`; \
        see tests/ad/run.sh, `config/*.toml`, `src/<module>.rs` and target/src/x.rs.";
    assert_eq!(
        missing_paths(text),
        vec!["src/server/winbind.rs".to_string()]
    );
}

#[test]
fn the_checker_finds_a_missing_file_and_a_missing_heading() {
    let root = repo();
    let file = root.join("docs").join("example.md");
    let markdown = "# Title\n\n## Second part\n\nSee [ok](#second-part), [self](#title), \
        [gone](missing.md), [bad anchor](README.md#no-such-heading), \
        [code](`not-a-link.md`) and [index](README.md#autodiscoverd-documentation).\n\n\
        ```\n[in a fence](nowhere.md)\n```\n\n[ref]: also-missing.md\n";
    let broken = broken_links(&file, markdown);
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(broken[0].starts_with("missing.md:"), "{broken:#?}");
    assert!(
        broken[1].starts_with("README.md#no-such-heading:"),
        "{broken:#?}"
    );
    assert!(broken[2].starts_with("also-missing.md:"), "{broken:#?}");
}

#[test]
fn slugs_follow_github() {
    for (heading, anchor) in [
        (
            "Configuration (`[v2]`, all optional)",
            "configuration-v2-all-optional",
        ),
        (
            "Legacy logins (`ntlm_allow_legacy`)",
            "legacy-logins-ntlm_allow_legacy",
        ),
        ("AutodiscoverV2 (JSON)", "autodiscoverv2-json"),
        ("The [lab](x.md) and `probe`", "the-lab-and-probe"),
    ] {
        assert_eq!(slug(heading), anchor, "{heading}");
    }
    let twice = anchors("## Results\n\n## Results\n");
    assert!(
        twice.contains("results") && twice.contains("results-1"),
        "{twice:?}"
    );
}
