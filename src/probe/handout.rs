//! `probe --report FILE.md` / `FILE.html`: the report to hand on to a colleague or a
//! support case, pure. The verdict comes first (with one line per candidate and the
//! advice), then every attempt with its time-stamped steps, the time each took and their
//! evidence (certificate chain, HTTP exchanges with `-v`).

use super::report::{Report, Status};

/// The format of a hand-on report, from the file name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
}

impl Format {
    /// `.md`/`.markdown` or `.html`/`.htm`; `None` for anything else.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "md" | "markdown" => Some(Format::Markdown),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }
}

fn word(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Info => "INFO",
        Status::Skip => "SKIP",
        Status::Warn => "WARN",
    }
}

fn timing(at: Option<u64>, took: Option<u64>) -> String {
    match (at, took) {
        (Some(at), Some(took)) => format!("+{at} ms ({took} ms)"),
        (Some(at), None) => format!("+{at} ms"),
        _ => String::new(),
    }
}

/// Renders the report in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Markdown => markdown(report),
        Format::Html => html(report),
    }
}

/// Markdown: headings, lists, and the evidence in fenced blocks.
pub fn markdown(report: &Report) -> String {
    let v = &report.verdict;
    let mut out = format!(
        "# Autodiscover probe for {} ({})\n\n",
        report.email,
        report.protocol.label()
    );
    if let Some(at) = &report.started_at {
        out.push_str(&format!("Started {at}.\n\n"));
    }
    out.push_str(&format!(
        "## Verdict: {}\n\n{}\n\n",
        if v.success { "PASS" } else { "FAIL" },
        v.summary
    ));
    if !v.candidates.is_empty() {
        out.push_str("What each candidate did:\n\n");
        for line in &v.candidates {
            out.push_str(&format!("- {line}\n"));
        }
        out.push('\n');
    }
    if !v.advice.is_empty() {
        out.push_str("Advice:\n\n");
        for line in &v.advice {
            out.push_str(&format!("- {line}\n"));
        }
        out.push('\n');
    }
    out.push_str("## Steps\n");
    for a in report.attempts.iter().chain(&report.service_checks) {
        out.push_str(&format!(
            "\n### Attempt {}: {} for {}\n\n`{}`{}\n\n",
            a.number,
            a.method.label(),
            a.address,
            a.url,
            a.started_ms
                .map(|ms| format!(", from +{ms} ms"))
                .unwrap_or_default()
        ));
        for s in &a.steps {
            out.push_str(&format!(
                "- **{}** {} {} {}\n",
                word(s.status),
                s.number,
                s.title.replace('\n', " "),
                timing(s.at_ms, s.duration_ms)
            ));
            if !s.details.is_empty() {
                out.push_str("\n  ```\n");
                for d in &s.details {
                    out.push_str(&format!("  {}\n", d.replace("```", "'''")));
                }
                out.push_str("  ```\n\n");
            }
        }
        out.push_str(&format!("\nOutcome: {}\n", a.outcome.describe()));
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One self-contained HTML page (no scripts, no external resources).
pub fn html(report: &Report) -> String {
    let v = &report.verdict;
    let title = format!(
        "Autodiscover probe for {} ({})",
        report.email,
        report.protocol.label()
    );
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n\
         <style>body{{font-family:sans-serif;max-width:70em;margin:auto}}.PASS{{color:#060}}.FAIL{{color:#a00}}\
         .WARN{{color:#a60}}.INFO,.SKIP{{color:#555}}pre{{background:#f4f4f4;padding:.5em;overflow-x:auto}}</style>\n\
         </head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(&title)
    );
    if let Some(at) = &report.started_at {
        out.push_str(&format!("<p>Started {}.</p>\n", escape(at)));
    }
    let mark = if v.success { "PASS" } else { "FAIL" };
    out.push_str(&format!(
        "<h2>Verdict: <span class=\"{mark}\">{mark}</span></h2>\n<p>{}</p>\n",
        escape(&v.summary)
    ));
    for (heading, lines) in [
        ("What each candidate did", &v.candidates),
        ("Advice", &v.advice),
    ] {
        if lines.is_empty() {
            continue;
        }
        out.push_str(&format!("<h3>{heading}</h3>\n<ul>\n"));
        for line in lines {
            out.push_str(&format!("<li>{}</li>\n", escape(line)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Steps</h2>\n");
    for a in report.attempts.iter().chain(&report.service_checks) {
        out.push_str(&format!(
            "<h3>Attempt {}: {} for {}</h3>\n<p><code>{}</code></p>\n<ul>\n",
            a.number,
            escape(a.method.label()),
            escape(&a.address),
            escape(&a.url)
        ));
        for s in &a.steps {
            let w = word(s.status);
            out.push_str(&format!(
                "<li><b class=\"{w}\">{w}</b> {} {} <small>{}</small>",
                escape(&s.number),
                escape(&s.title),
                escape(&timing(s.at_ms, s.duration_ms))
            ));
            if !s.details.is_empty() {
                out.push_str("\n<pre>");
                for d in &s.details {
                    out.push_str(&escape(d));
                    out.push('\n');
                }
                out.push_str("</pre>");
            }
            out.push_str("</li>\n");
        }
        out.push_str(&format!(
            "</ul>\n<p>Outcome: {}</p>\n",
            escape(&a.outcome.describe())
        ));
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::report::tests::sample_report;

    #[test]
    fn the_format_follows_the_extension() {
        use std::path::Path;
        assert_eq!(Format::from_path(Path::new("r.md")), Some(Format::Markdown));
        assert_eq!(Format::from_path(Path::new("r.HTML")), Some(Format::Html));
        assert_eq!(Format::from_path(Path::new("r.txt")), None);
    }

    #[test]
    fn markdown_puts_the_verdict_before_the_steps() {
        let md = markdown(&sample_report());
        let verdict = md.find("## Verdict: PASS").unwrap();
        let steps = md.find("## Steps").unwrap();
        assert!(verdict < steps, "{md}");
        assert!(
            md.contains("- **PASS** 1.1 autodiscover.contoso.com resolves"),
            "{md}"
        );
        assert!(md.contains("  A 192.0.2.1\n"), "{md}");
    }

    #[test]
    fn html_escapes_what_the_servers_sent() {
        let mut report = sample_report();
        report.attempts[0].steps[0]
            .details
            .push("< | <Autodiscover xmlns=\"x\">".into());
        let page = html(&report);
        assert!(
            page.contains("&lt; | &lt;Autodiscover xmlns=&quot;x&quot;&gt;"),
            "{page}"
        );
        assert!(!page.contains("<Autodiscover"), "{page}");
        assert!(page.starts_with("<!DOCTYPE html>"));
    }
}
