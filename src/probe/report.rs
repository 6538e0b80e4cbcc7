//! The probe's report, pure: numbered attempts and steps as the I/O side records them, the
//! final verdict, and its two renderings (readable text with PASS/FAIL marks, and JSON).

use serde::Serialize;

use super::answer::Settings;
use super::plan::{Method, Protocol};

/// Result mark of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// A fact, neither good nor bad (the certificate's details, a redirect to follow).
    Info,
    /// Not attempted, and why.
    Skip,
    /// Works, but needs attention soon (a certificate about to expire).
    Warn,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Pass => "[PASS]",
            Status::Fail => "[FAIL]",
            Status::Info => "[INFO]",
            Status::Skip => "[SKIP]",
            Status::Warn => "[WARN]",
        }
    }
}

/// What a step checks. The order is how far a request got: the verdict blames the
/// failure that got furthest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A/AAAA resolution (or an override).
    Dns,
    /// The SRV lookup.
    Srv,
    /// The SCP lookup in Active Directory (connect, bind, search).
    Scp,
    /// TCP connect.
    Tcp,
    /// The TLS handshake.
    TlsHandshake,
    /// The server certificate's details.
    Certificate,
    /// Certificate valid for the host name.
    CertificateName,
    /// Certificate chain trusted.
    CertificateChain,
    /// Certificate within its dates.
    CertificateDates,
    /// Whether the server asked for a client certificate.
    ClientCertificate,
    /// A request without credentials (the port-80 GET, the 401 challenge, V2's GET).
    Request,
    /// The request with credentials.
    Authentication,
    /// The answer, parsed and explained.
    Response,
    /// A redirect (HTTP 3xx, redirectUrl, redirectAddr) and whether it may be followed.
    Redirect,
}

/// One numbered step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `attempt.step`, e.g. `2.7`.
    pub number: String,
    pub kind: StepKind,
    pub status: Status,
    /// What was attempted and the result, in one line.
    pub title: String,
    /// Further lines (addresses, certificate fields, settings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateInfo>,
    /// Milliseconds from the start of the probe to the end of this step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// Milliseconds this step took (since the previous step of the attempt ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// The server certificate as presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    pub serial: String,
    /// Certificates the server sent, leaf included.
    pub chain_length: usize,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Settings obtained.
    Settings,
    /// The server sent the client to another address.
    RedirectAddr { address: String },
    /// The server sent the client to another URL (followed as the next attempt).
    RedirectUrl { url: String },
    /// Nothing usable here; the client moves on.
    Failed { reason: String },
    /// Not tried (e.g. the URL was already visited).
    Skipped { reason: String },
    /// A service URL answered as a service should (`--check-urls`).
    ServiceAnswers,
}

impl Outcome {
    /// In words, for the text and the hand-on report.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Settings => "settings obtained".into(),
            Outcome::RedirectAddr { address } => {
                format!("redirectAddr: restart discovery for {address}")
            }
            Outcome::RedirectUrl { url } => format!("redirect to {url}"),
            Outcome::Failed { reason } => format!("failed: {reason}"),
            Outcome::Skipped { reason } => format!("skipped: {reason}"),
            Outcome::ServiceAnswers => "the service answers".into(),
        }
    }
}

/// One candidate URL (or redirect target) and everything tried against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub number: usize,
    /// The address being discovered.
    pub address: String,
    pub method: Method,
    pub url: String,
    pub steps: Vec<Step>,
    pub outcome: Outcome,
    /// Milliseconds from the start of the probe to the start of this attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// The probe's start, when steps are timed.
    #[serde(skip)]
    origin: Option<std::time::Instant>,
}

impl Attempt {
    /// A new attempt; its outcome is `Failed` until set.
    pub fn new(number: usize, address: &str, method: Method, url: &str) -> Attempt {
        Attempt {
            number,
            address: address.to_string(),
            method,
            url: url.to_string(),
            steps: Vec::new(),
            outcome: Outcome::Failed {
                reason: "not finished".into(),
            },
            started_ms: None,
            origin: None,
        }
    }

    /// Times this attempt's steps from `origin` (the start of the probe).
    pub fn timed(mut self, origin: std::time::Instant) -> Attempt {
        self.started_ms = Some(millis(origin.elapsed()));
        self.origin = Some(origin);
        self
    }

    /// Appends a numbered step and returns it for details.
    pub fn step(&mut self, kind: StepKind, status: Status, title: impl Into<String>) -> &mut Step {
        let number = format!("{}.{}", self.number, self.steps.len() + 1);
        let at_ms = self.origin.map(|origin| millis(origin.elapsed()));
        let since = self.steps.last().and_then(|s| s.at_ms).or(self.started_ms);
        let duration_ms = at_ms.zip(since).map(|(at, since)| at.saturating_sub(since));
        self.steps.push(Step {
            number,
            kind,
            status,
            title: title.into(),
            details: Vec::new(),
            certificate: None,
            at_ms,
            duration_ms,
        });
        match self.steps.last_mut() {
            Some(step) => step,
            None => unreachable!("a step was just pushed"),
        }
    }

    /// Marks the attempt failed because of its last failing step (or `reason`).
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.outcome = Outcome::Failed {
            reason: reason.into(),
        };
    }
}

impl Step {
    /// Adds detail lines.
    pub fn detail(&mut self, line: impl Into<String>) -> &mut Step {
        self.details.push(line.into());
        self
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Settings obtained, with where they came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Obtained {
    /// The address the settings are for (after address redirects).
    pub address: String,
    pub url: String,
    pub settings: Settings,
}

/// The conclusion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub success: bool,
    pub summary: String,
    /// The step that stopped the journey (failure that got furthest), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_kind: Option<StepKind>,
    /// On failure, one line per candidate of the last address: what it did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// On failure, what to check or change, in an administrator's words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<String>,
}

/// The whole probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The address the user asked about.
    pub email: String,
    /// When the probe started (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub protocol: Protocol,
    /// Every address discovered, in order (address redirects).
    pub addresses: Vec<String>,
    pub url_redirects: usize,
    pub attempts: Vec<Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub obtained: Option<Obtained>,
    /// `--check-urls`: the service URLs of the settings, checked after the journey.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_checks: Vec<Attempt>,
    pub verdict: Verdict,
}

impl Report {
    /// True when settings were obtained (exit code 0).
    pub fn success(&self) -> bool {
        self.obtained.is_some()
    }
}

/// JSON rendering (pretty-printed).
pub fn render_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn explain_settings(out: &mut String, s: &Settings) {
    let mut line = |label: &str, value: &Option<String>| {
        if let Some(v) = value {
            out.push_str(&format!("  {label:<24}{v}\n"));
        }
    };
    line("Display name:", &s.display_name);
    line("SMTP address:", &s.smtp_address);
    line("Legacy DN:", &s.legacy_dn);
    line("Deployment ID:", &s.deployment_id);
    line(
        "Microsoft Online:",
        &s.microsoft_online.map(|b| {
            if b {
                "True (Exchange Online)".to_string()
            } else {
                "False (on-premises)".to_string()
            }
        }),
    );
    line("EWS URL:", &s.ews_url);
    line("MAPI/HTTP mail store:", &s.mapi_mailstore_url);
    for p in &s.protocols {
        let mut facts = Vec::new();
        for key in [
            "Server",
            "Port",
            "SocketType",
            "Encryption",
            "Username",
            "LoginName",
            "ServerVersion",
            "AuthPackage",
            "OABUrl",
            "AddressBook/ExternalUrl",
            "External/OWAUrl",
        ] {
            if let Some(v) = p.get(key) {
                facts.push(format!("{key}={v}"));
            }
        }
        out.push_str(&format!("  Protocol {:<15}{}\n", p.kind, facts.join("  ")));
    }
    for (name, value) in &s.user_settings {
        out.push_str(&format!("  {name:<24}{value}\n"));
    }
    if let Some(v2) = &s.v2 {
        out.push_str(&format!("  V2 {:<21}{}\n", v2.protocol, v2.url));
    }
}

/// Readable text rendering.
pub fn render_text(report: &Report) -> String {
    let mut out = format!(
        "Autodiscover probe for {} ({})\n",
        report.email,
        report.protocol.label()
    );
    let last = report.attempts.len();
    for a in report.attempts.iter().chain(&report.service_checks) {
        out.push_str(&format!(
            "\nAttempt {}: {} for {}\n  {}\n",
            a.number,
            a.method.label(),
            a.address,
            a.url
        ));
        for s in &a.steps {
            out.push_str(&format!(
                "  {} {:<5} {}\n",
                s.status.mark(),
                s.number,
                s.title
            ));
            for d in &s.details {
                out.push_str(&format!("               {d}\n"));
            }
        }
        let outcome = match &a.outcome {
            Outcome::Failed { reason } if a.number < last => {
                format!("failed: {reason}; next candidate")
            }
            other => other.describe(),
        };
        out.push_str(&format!("  => {outcome}\n"));
    }
    out.push_str(&format!(
        "\nVerdict: {} {}\n",
        if report.verdict.success {
            "PASS"
        } else {
            "FAIL"
        },
        report.verdict.summary
    ));
    if !report.verdict.candidates.is_empty() {
        out.push_str("  Candidates:\n");
        for line in &report.verdict.candidates {
            out.push_str(&format!("    - {line}\n"));
        }
    }
    for line in &report.verdict.advice {
        out.push_str(&format!("  Advice: {line}\n"));
    }
    if let Some(o) = &report.obtained {
        out.push_str("\nSettings:\n");
        explain_settings(&mut out, &o.settings);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn attempt_with(number: usize, steps: &[(StepKind, Status)]) -> Attempt {
        let mut a = Attempt::new(number, "bob@contoso.com", Method::RootDomain, "https://x/");
        for (kind, status) in steps {
            a.step(*kind, *status, format!("{kind:?}"));
        }
        a
    }

    #[test]
    fn steps_are_numbered_per_attempt() {
        let a = attempt_with(
            3,
            &[(StepKind::Dns, Status::Pass), (StepKind::Tcp, Status::Fail)],
        );
        let numbers: Vec<&str> = a.steps.iter().map(|s| s.number.as_str()).collect();
        assert_eq!(numbers, vec!["3.1", "3.2"]);
    }

    pub(crate) fn sample_report() -> Report {
        let mut a = Attempt::new(
            1,
            "alice@contoso.com",
            Method::AutodiscoverPrefix,
            "https://autodiscover.contoso.com/autodiscover/autodiscover.xml",
        );
        a.step(
            StepKind::Dns,
            Status::Pass,
            "autodiscover.contoso.com resolves",
        )
        .detail("A 192.0.2.1");
        a.step(StepKind::Response, Status::Pass, "Action=settings");
        a.outcome = Outcome::Settings;
        let obtained = Obtained {
            address: "alice@contoso.com".into(),
            url: a.url.clone(),
            settings: Settings {
                ews_url: Some("https://mail.contoso.com/EWS/Exchange.asmx".into()),
                microsoft_online: Some(false),
                ..Settings::default()
            },
        };
        let verdict = super::super::verdict::verdict(
            std::slice::from_ref(&a),
            Some(&obtained),
            &["alice@contoso.com".into()],
            0,
        );
        Report {
            email: "alice@contoso.com".into(),
            started_at: None,
            service_checks: Vec::new(),
            protocol: Protocol::Pox,
            addresses: vec!["alice@contoso.com".into()],
            url_redirects: 0,
            attempts: vec![a],
            obtained: Some(obtained),
            verdict,
        }
    }

    #[test]
    fn text_has_marks_numbers_and_the_verdict() {
        let text = render_text(&sample_report());
        assert!(
            text.contains("Attempt 1: autodiscover. prefix for alice@contoso.com"),
            "{text}"
        );
        assert!(text.contains("[PASS] 1.1"), "{text}");
        assert!(text.contains("A 192.0.2.1"));
        assert!(text.contains("=> settings obtained"));
        assert!(text.contains("Verdict: PASS settings obtained for alice@contoso.com"));
        assert!(
            text.contains("EWS URL:                https://mail.contoso.com/EWS/Exchange.asmx"),
            "{text}"
        );
    }

    #[test]
    fn json_carries_the_same_facts() {
        let json: serde_json::Value = serde_json::from_str(&render_json(&sample_report())).unwrap();
        assert_eq!(json["protocol"], "pox");
        assert_eq!(json["attempts"][0]["method"], "autodiscover_prefix");
        assert_eq!(json["attempts"][0]["steps"][0]["number"], "1.1");
        assert_eq!(json["attempts"][0]["steps"][0]["kind"], "dns");
        assert_eq!(json["attempts"][0]["steps"][0]["status"], "pass");
        assert_eq!(json["attempts"][0]["outcome"]["result"], "settings");
        assert_eq!(json["verdict"]["success"], true);
        assert_eq!(
            json["obtained"]["settings"]["ews_url"],
            "https://mail.contoso.com/EWS/Exchange.asmx"
        );
        assert!(json["verdict"].get("failing_step").is_none());
    }
}
