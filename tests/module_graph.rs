//! The module rules of ARCHITECTURE.md, checked on the source text:
//! - the sans-IO modules (`protocol`, `auth`, `decision`, `settings`) name no I/O crate and
//!   none of the edge modules (`server`, `ops`, `lab`, `probe`);
//! - the module graph has no import cycle, apart from the known ones listed in
//!   [`KNOWN_CYCLE_EDGES`] (each one is an edge to remove, never one to add).
//!
//! The graph is built from `crate::…` and `super::…` paths in non-test code: an edge
//! `a -> b` between top-level modules, and `a::x -> a::y` between the children of one
//! top-level module.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Edges that close an import cycle today. Removing the cycle means deleting its line here;
/// a new cycle fails the test until it is removed (or, with a reason, listed).
const KNOWN_CYCLE_EDGES: &[(&str, &str, &str)] = &[
    (
        "config",
        "server",
        "config parses `[proxy] trusted` into server::proxy::Cidr",
    ),
    (
        "config",
        "auth",
        "config holds auth's CbtPolicy and ThrottleConfig",
    ),
    (
        "directory",
        "auth",
        "the embedded directory derives NT hashes with auth::ntlm::crypto",
    ),
    (
        "directory",
        "ops",
        "directory calls record ops::metrics timings",
    ),
    (
        "ops",
        "server",
        "ops::health answers with server::respond and reads server::reload",
    ),
    (
        "server::handlers",
        "server::listener",
        "endpoints reach into the listener (src/server/ split pending)",
    ),
    (
        "server::handlers",
        "server::soap_v2",
        "POX routing dispatches to the SOAP/V2 glue (src/server/ split pending)",
    ),
    (
        "server::throttle",
        "server::handlers",
        "the throttle's refusal reuses the handlers' realm (src/server/ split pending)",
    ),
    (
        "server::ntlm",
        "server::throttle",
        "NTLM glue records failures in the throttle (src/server/ split pending)",
    ),
    (
        "server::soap_v2",
        "server::handlers",
        "SOAP/V2 glue reuses the POX authentication (src/server/ split pending)",
    ),
    (
        "server::lean_tls",
        "server::park",
        "lean_tls leaves with the TLS rework",
    ),
];

/// Modules that must stay sans-IO.
const SANS_IO: &[&str] = &["protocol", "auth", "decision", "settings"];

/// What sans-IO code must not name.
const IO_NAMES: &[&str] = &[
    "tokio",
    "hyper",
    "rustls",
    "ldap3",
    "std::fs",
    "std::net::Tcp",
    "std::net::Udp",
    "Instant::now",
    "SystemTime::now",
    "crate::server",
    "crate::ops",
    "crate::lab",
    "crate::probe",
];

/// A Rust source file of the library and its module path (`src/server/listener.rs` →
/// `["server", "listener"]`).
struct Source {
    path: PathBuf,
    module: Vec<String>,
    code: String,
}

fn src_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable src/") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(relative: &Path) -> bool {
    relative.components().any(|c| c.as_os_str() == "tests")
        || relative
            .file_stem()
            .and_then(|s| s.to_str())
            .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

/// The library's non-test sources. `main.rs`, `cli.rs` and `lab_cli.rs` belong to the binary.
fn sources() -> Vec<Source> {
    let root = src_dir();
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut sources = Vec::new();
    for path in files {
        let relative = path.strip_prefix(&root).unwrap().to_path_buf();
        let name = relative.to_str().unwrap().to_string();
        if matches!(name.as_str(), "main.rs" | "cli.rs" | "lab_cli.rs") || is_test_file(&relative) {
            continue;
        }
        let mut module: Vec<String> = relative
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_str().unwrap().to_string())
            .collect();
        if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
            module.pop();
        }
        let text = fs::read_to_string(&path).unwrap();
        sources.push(Source {
            path,
            module,
            code: non_test_code(&text),
        });
    }
    sources
}

/// The code without comments and without items under `#[cfg(test)]`.
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            // Skip the item: attributes, then one line ending in `;` or a braced block.
            let mut depth = 0i32;
            let mut opened = false;
            for item in lines.by_ref() {
                let code = strip_comment(item);
                if !opened && code.trim_start().starts_with("#[") {
                    continue;
                }
                depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
                opened |= code.contains('{');
                if (opened && depth <= 0) || (!opened && code.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        out.push_str(strip_comment(line));
        out.push('\n');
    }
    out
}

fn strip_comment(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Paths that start right after `crate::` or `super::` at `rest`, braces expanded:
/// `{a, b::c}` gives `a` and `b::c`; only the first two segments matter here.
fn expand(rest: &str) -> Vec<Vec<String>> {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut items = Vec::new();
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return items
            .into_iter()
            .filter(|item| !item.trim().is_empty())
            .flat_map(|item| expand(item.trim()))
            .collect();
    }
    let mut segments = Vec::new();
    let mut rest = rest;
    loop {
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segments.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(next) if next.starts_with('{') => {
                return expand(next)
                    .into_iter()
                    .map(|tail| segments.iter().cloned().chain(tail).collect())
                    .collect();
            }
            Some(next) => rest = next,
            None => break,
        }
    }
    vec![segments]
}

/// Every module path the source names through `crate::` or `super::`, made absolute.
fn references(source: &Source) -> Vec<Vec<String>> {
    // In `a/b.rs` and `a/b/mod.rs` alike, `super` is `a`.
    let mut found = Vec::new();
    let code = &source.code;
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let Some(offset) = rest.find(['c', 's']) else {
            break;
        };
        let start = at + offset;
        let here = &code[start..];
        let preceded_by_ident = code[..start].chars().next_back().is_some_and(is_ident);
        if !preceded_by_ident && here.starts_with("crate::") {
            for path in expand(&here["crate::".len()..]) {
                found.push(path);
            }
            at = start + "crate::".len();
        } else if !preceded_by_ident && here.starts_with("super::") {
            let mut base = source.module.clone();
            let mut tail = here;
            while let Some(next) = tail.strip_prefix("super::") {
                base.pop();
                tail = next;
            }
            for path in expand(tail) {
                found.push(base.iter().cloned().chain(path).collect());
            }
            at = start + "super::".len();
        } else {
            at = start + 1;
        }
    }
    found
}

/// `a -> b` between top-level modules, `a::x -> a::y` between siblings under `a`.
fn graph(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in sources {
        let from = &source.module;
        for target in references(source) {
            let Some(first) = target.first() else {
                continue;
            };
            if !modules.contains(&vec![first.clone()]) {
                continue; // an item of lib.rs, not a module
            }
            match (from.first(), from.get(1), target.get(1)) {
                (Some(a), _, _) if a != first => {
                    edges.entry(a.clone()).or_default().insert(first.clone());
                }
                (Some(a), Some(x), Some(y))
                    if x != y && modules.contains(&vec![a.clone(), y.clone()]) =>
                {
                    edges
                        .entry(format!("{a}::{x}"))
                        .or_default()
                        .insert(format!("{a}::{y}"));
                }
                _ => {}
            }
        }
    }
    edges
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        w.on_stack.insert(v);
        if let Some(next) = w.edges.get(v) {
            for u in next {
                let u = u.as_str();
                if !w.index.contains_key(u) {
                    visit(w, u);
                    let low = w.low[v].min(w.low[u]);
                    w.low.insert(v, low);
                } else if w.on_stack.contains(u) {
                    let low = w.low[v].min(w.index[u]);
                    w.low.insert(v, low);
                }
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            while let Some(u) = w.stack.pop() {
                w.on_stack.remove(u);
                component.push(u.to_string());
                if u == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.found
}

fn render(edges: &BTreeMap<String, BTreeSet<String>>) -> String {
    edges
        .iter()
        .filter(|(_, to)| !to.is_empty())
        .map(|(from, to)| {
            format!(
                "  {from} -> {}",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn sans_io_modules_name_no_io() {
    let mut offences = Vec::new();
    for source in sources() {
        let Some(top) = source.module.first() else {
            continue;
        };
        if !SANS_IO.contains(&top.as_str()) {
            continue;
        }
        for name in IO_NAMES {
            if source.code.contains(name) {
                offences.push(format!("{}: {name}", source.path.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "I/O in sans-IO modules:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_module_graph_has_no_new_import_cycle() {
    let edges = graph(&sources());
    assert!(
        edges.get("server").is_some_and(|t| t.contains("protocol")),
        "the graph misses server -> protocol; is the parser broken?\n{}",
        render(&edges)
    );
    let mut pruned = edges.clone();
    for (from, to, _why) in KNOWN_CYCLE_EDGES {
        let removed = pruned
            .get_mut(*from)
            .is_some_and(|targets| targets.remove(*to));
        if !removed {
            eprintln!("{from} -> {to} is gone: delete it from KNOWN_CYCLE_EDGES");
        }
    }
    let found = cycles(&pruned);
    assert!(
        found.is_empty(),
        "import cycles {found:?}; the graph without the known edges:\n{}",
        render(&pruned)
    );
}

#[test]
fn the_cycle_finder_and_the_path_reader_work() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges.entry(a.into()).or_default().insert(b.into());
    }
    assert_eq!(cycles(&edges), vec![vec!["a", "b", "c"]]);
    edges.get_mut("c").unwrap().remove("a");
    assert!(cycles(&edges).is_empty());

    let source = Source {
        path: PathBuf::from("src/server/handlers.rs"),
        module: vec!["server".into(), "handlers".into()],
        code: non_test_code(
            "use crate::{auth::{self, basic}, protocol::pox};\nuse super::listener::Kind;\n\
             // crate::ops in a comment\nfn f() { my_crate::x(); }\n\
             #[cfg(test)]\nmod tests {\n    use crate::lab;\n}\n",
        ),
    };
    let found = references(&source);
    let names: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        names,
        [
            "auth::self",
            "auth::basic",
            "protocol::pox",
            "server::listener::Kind"
        ]
    );
}
