//! The verdict, pure: which step stopped the journey, what each candidate did, and what an
//! administrator should do about it.
//!
//! A hybrid journey always carries failures that are not faults: the root domain
//! (`https://<domain>/`) usually hosts a web site, and after a redirectAddr to the routing
//! domain, `autodiscover.<routing domain>` on 443 presents Microsoft's certificate for
//! another name (only its port 80 answers, with a redirect). Every real client tries them
//! and moves on, so they never outrank a genuine failure of a later candidate, and neither
//! does an SRV record that is simply not published. Only the last address's journey is
//! judged: the earlier addresses answered with the redirect that led there.

use super::plan::Method;
use super::report::{Attempt, Obtained, Status, Step, StepKind, Verdict};

/// The attempts of one candidate: its first attempt plus the redirects it led to (and, for
/// SRV, the lookup plus its targets).
struct Candidate<'a> {
    /// Position of the candidate's address in the journey (0: the address asked about).
    address_index: usize,
    attempts: Vec<&'a Attempt>,
}

impl<'a> Candidate<'a> {
    fn method(&self) -> Method {
        self.attempts
            .first()
            .map_or(Method::Redirected, |a| a.method)
    }

    fn first(&self) -> Option<&'a Attempt> {
        self.attempts.first().copied()
    }

    /// The failure that got furthest in this candidate (ties: the earlier step, the cause).
    fn furthest_failure(&self) -> Option<(&'a Attempt, &'a Step)> {
        let mut best: Option<(&Attempt, &Step)> = None;
        for a in &self.attempts {
            for s in a.steps.iter().filter(|s| s.status == Status::Fail) {
                if best.is_none_or(|(_, b)| s.kind > b.kind) {
                    best = Some((a, s));
                }
            }
        }
        best
    }

    /// Why this candidate's failure is one every hybrid journey has, if it is.
    fn expected(&self, failure: &Step) -> Option<&'static str> {
        match self.method() {
            Method::RootDomain if failure.kind < StepKind::Authentication => {
                Some("expected: the root domain usually hosts a web site, not Autodiscover")
            }
            Method::AutodiscoverPrefix
                if self.address_index > 0 && failure.kind < StepKind::Request =>
            {
                Some("expected after a redirectAddr: autodiscover.<routing domain> answers on port 80 only")
            }
            Method::Srv if failure.kind == StepKind::Srv => {
                Some("expected: an SRV record is optional")
            }
            _ => None,
        }
    }

    /// One line: what this candidate did.
    fn line(&self) -> String {
        let Some(first) = self.first() else {
            return String::new();
        };
        let label = first.method.label();
        let what = match self.furthest_failure() {
            Some((_, step)) => {
                let note = self
                    .expected(step)
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default();
                format!("step {} failed: {}{note}", step.number, step.title)
            }
            None => self
                .attempts
                .last()
                .map(|a| a.outcome.describe())
                .unwrap_or_default(),
        };
        format!("{label} ({}): {what}", first.url)
    }
}

/// Splits attempts into candidates. A redirect target belongs to the candidate that led
/// to it; SRV targets belong to the SRV lookup.
fn candidates<'a>(attempts: &'a [Attempt], addresses: &[String]) -> Vec<Candidate<'a>> {
    let mut out: Vec<Candidate<'a>> = Vec::new();
    for a in attempts {
        let joins = match out.last() {
            Some(c) => {
                c.first().is_some_and(|f| f.address == a.address)
                    && (a.method == Method::Redirected || a.method == c.method())
                    && a.method != Method::RootDomain
                    && a.method != Method::AutodiscoverPrefix
            }
            None => false,
        };
        if joins {
            if let Some(c) = out.last_mut() {
                c.attempts.push(a);
            }
            continue;
        }
        let address_index = addresses
            .iter()
            .position(|x| x.eq_ignore_ascii_case(&a.address))
            .unwrap_or(0);
        out.push(Candidate {
            address_index,
            attempts: vec![a],
        });
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Works out the verdict: success with the route taken, or the step that stopped the
/// journey, one line per candidate of the last address, and advice.
pub fn verdict(
    attempts: &[Attempt],
    obtained: Option<&Obtained>,
    addresses: &[String],
    url_redirects: usize,
) -> Verdict {
    if let Some(o) = obtained {
        let mut route = Vec::new();
        if addresses.len() > 1 {
            route.push(format!(
                "{} ({})",
                plural(addresses.len() - 1, "address redirect"),
                addresses.join(" -> ")
            ));
        }
        if url_redirects > 0 {
            route.push(plural(url_redirects, "URL redirect"));
        }
        let route = if route.is_empty() {
            String::new()
        } else {
            format!(" after {}", route.join(" and "))
        };
        let online = match o.settings.microsoft_online {
            Some(true) => " (Exchange Online)",
            Some(false) => " (on-premises)",
            None => "",
        };
        return Verdict {
            success: true,
            summary: format!(
                "settings obtained for {} from {}{online}{route}",
                o.address, o.url
            ),
            failing_step: None,
            failing_kind: None,
            candidates: Vec::new(),
            advice: Vec::new(),
        };
    }
    let all = candidates(attempts, addresses);
    let last_address = attempts.last().map(|a| a.address.as_str()).unwrap_or("");
    let last: Vec<&Candidate> = all
        .iter()
        .filter(|c| c.first().is_some_and(|f| f.address == last_address))
        .collect();
    // Genuine failures first; the furthest along wins, ties go to the earlier candidate
    // (the more direct method names the same fault).
    fn pick<'a>(only_genuine: bool, among: &[&Candidate<'a>]) -> Option<(&'a Attempt, &'a Step)> {
        let mut best: Option<(&'a Attempt, &'a Step)> = None;
        for c in among {
            if let Some((a, s)) = c.furthest_failure() {
                if only_genuine && c.expected(s).is_some() {
                    continue;
                }
                if best.is_none_or(|(_, b)| s.kind > b.kind) {
                    best = Some((a, s));
                }
            }
        }
        best
    }
    let everything: Vec<&Candidate> = all.iter().collect();
    let failure = pick(true, &last)
        .or_else(|| pick(false, &last))
        .or_else(|| pick(false, &everything));
    let lines = last.iter().map(|c| c.line()).collect();
    match failure {
        Some((attempt, step)) => Verdict {
            success: false,
            summary: format!("no settings: step {} failed: {}", step.number, step.title),
            failing_step: Some(step.number.clone()),
            failing_kind: Some(step.kind),
            candidates: lines,
            advice: advice(attempts, attempt, step),
        },
        None => Verdict {
            success: false,
            summary: "no settings: no candidate could be tried".into(),
            failing_step: None,
            failing_kind: None,
            candidates: lines,
            advice: Vec::new(),
        },
    }
}

/// On success with `--check-urls`: one advice line per service URL that does not answer.
pub fn service_advice(checks: &[Attempt]) -> Vec<String> {
    checks
        .iter()
        .filter_map(|a| {
            let failed = a.steps.iter().rev().find(|s| s.status == Status::Fail)?;
            Some(format!(
                "{} (from the settings) does not work: {}; clients get the URL but cannot use it: fix the service's external URL or publish the service",
                a.url, failed.title
            ))
        })
        .collect()
}

/// `host` or `host:port` of an attempt's URL (`_autodiscover._tcp.<domain>` for SRV).
fn host_of(url: &str) -> &str {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.split(['/', ' ']).next().unwrap_or(rest)
}

/// What an administrator should check, in their words, for the step that stopped the
/// journey.
fn advice(attempts: &[Attempt], attempt: &Attempt, step: &Step) -> Vec<String> {
    let host = host_of(&attempt.url);
    let title = step.title.as_str();
    let mut out = Vec::new();
    match step.kind {
        StepKind::Dns => {
            if title.contains("DNS is off") {
                out.push(format!("{host} is in no --resolve, --connect-to or --map entry: for a lab, pass its name map (--map DIR/curl.conf)"));
            } else if title.contains("timed out") || title.contains("did not answer") {
                out.push("DNS did not answer in time: for lab names, pass the lab's name map (--map DIR/curl.conf --no-dns) instead of waiting for DNS".into());
            } else {
                out.push(format!("publish an A (or CNAME) record for {host}; for a lab, pass its name map (--map DIR/curl.conf)"));
            }
        }
        StepKind::Srv => {
            out.push(format!(
                "publish the SRV record {host} or an A record for autodiscover.<domain>"
            ));
        }
        StepKind::Tcp => {
            if attempt.method == Method::HttpRedirect {
                out.push(format!("nothing answers on {host}: the HTTP redirect method needs a port-80 listener (for Exchange Online, the CNAME autodiscover.<domain> -> autodiscover.outlook.com)"));
            } else {
                out.push(format!("nothing accepts connections on {host}: check that the server runs and that firewalls and load balancers forward the port"));
            }
        }
        StepKind::TlsHandshake => {
            out.push(format!("{host} does not complete a TLS handshake: check the HTTPS binding and its certificate"));
        }
        StepKind::CertificateName => {
            out.push(format!("the certificate on {host} does not carry that name: add it to the certificate's subject alternative names (RFC 6125 §6.4)"));
        }
        StepKind::CertificateChain => {
            if title.contains("intermediate") {
                out.push("install the intermediate certificate(s) on the server so that it sends the whole chain (RFC 8446 §4.4.2)".into());
            } else {
                out.push(format!("the certificate on {host} does not lead to a trusted root: use a certificate from a CA the clients trust (for the probe: --ca-file)"));
            }
        }
        StepKind::CertificateDates => {
            out.push(format!("renew the certificate on {host}"));
        }
        StepKind::Authentication if title.contains("no credentials") => {
            out.push(
                "pass the password with --password-file or AUTODISCOVERD_PROBE_PASSWORD".into(),
            );
        }
        StepKind::Authentication => {
            let accepted_before = attempts.iter().find(|a| {
                a.address != attempt.address
                    && a.steps
                        .iter()
                        .any(|s| s.kind == StepKind::Authentication && s.status == Status::Pass)
            });
            match accepted_before {
                Some(earlier) => out.push(format!(
                    "{} accepted the same credentials (attempt {}), {host} refused them: check that password hash sync (or federation) covers this account in the tenant, and log in with the UPN the tenant knows",
                    host_of(&earlier.url),
                    earlier.number
                )),
                None => out.push(
                    "check the password, that the account is enabled and not locked, and the login form (UPN or DOMAIN\\user)".into(),
                ),
            }
        }
        StepKind::Response => {
            let error_code = title
                .strip_prefix("Autodiscover error ")
                .and_then(|rest| rest.split(':').next())
                .unwrap_or("");
            let redirected = attempts
                .first()
                .is_some_and(|first| first.address != attempt.address);
            match error_code {
                "602" => out.push("the mailbox is a remote mailbox without a targetAddress: set its RemoteRoutingAddress to <alias>@<tenant>.mail.onmicrosoft.com (Set-RemoteMailbox)".into()),
                "500" | "InvalidUser" if redirected => out.push(format!(
                    "the tenant knows no recipient {}: the tenant mailbox lacks the routing address; add smtp:{} to its proxy addresses (the hybrid email address policy does this)",
                    attempt.address, attempt.address
                )),
                "500" | "InvalidUser" => out.push(format!("no recipient has the address {}: check the address and the directory", attempt.address)),
                "501" => out.push("the recipient has no mailbox on this side: check where the mailbox lives (RemoteUserMailbox on-premises, MailUser in the tenant)".into()),
                "603" => out.push("the server could not read its directory: check the directory server".into()),
                _ => {}
            }
        }
        StepKind::Redirect if title.contains("redirect loop") => {
            out.push("each side says the mailbox is on the other side: check the targetAddress on-premises and that the tenant holds the mailbox (not a mail user)".into());
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::answer::Settings;

    fn attempt(
        number: usize,
        address: &str,
        method: Method,
        url: &str,
        steps: &[(StepKind, Status)],
    ) -> Attempt {
        let mut a = Attempt::new(number, address, method, url);
        for (kind, status) in steps {
            a.step(*kind, *status, format!("{kind:?}"));
        }
        a
    }

    const BOB: &str = "bob@contoso.com";
    const ROUTED: &str = "bob@contoso.mail.onmicrosoft.com";

    #[test]
    fn a_genuine_failure_outranks_the_root_domain_certificate() {
        use Method::*;
        use StepKind::*;
        let attempts = vec![
            attempt(
                1,
                BOB,
                RootDomain,
                "https://contoso.com/a",
                &[(Dns, Status::Pass), (CertificateName, Status::Fail)],
            ),
            attempt(
                2,
                BOB,
                AutodiscoverPrefix,
                "https://autodiscover.contoso.com/a",
                &[(Dns, Status::Fail)],
            ),
            attempt(
                3,
                BOB,
                HttpRedirect,
                "http://autodiscover.contoso.com/a",
                &[(Dns, Status::Fail)],
            ),
        ];
        let v = verdict(&attempts, None, &[BOB.into()], 0);
        assert!(!v.success);
        assert_eq!(v.failing_step.as_deref(), Some("2.1"));
        assert_eq!(v.failing_kind, Some(Dns));
        assert_eq!(v.candidates.len(), 3);
        assert!(
            v.candidates[0].contains("(expected: the root domain"),
            "{:?}",
            v.candidates
        );
        assert!(
            v.advice[0].contains("autodiscover.contoso.com"),
            "{:?}",
            v.advice
        );
    }

    #[test]
    fn after_a_redirect_addr_only_the_last_address_is_judged() {
        use Method::*;
        use StepKind::*;
        let attempts = vec![
            attempt(
                1,
                BOB,
                RootDomain,
                "https://contoso.com/a",
                &[(CertificateName, Status::Fail)],
            ),
            attempt(
                2,
                BOB,
                AutodiscoverPrefix,
                "https://autodiscover.contoso.com/a",
                &[(Authentication, Status::Pass), (Response, Status::Info)],
            ),
            attempt(
                3,
                ROUTED,
                RootDomain,
                "https://contoso.mail.onmicrosoft.com/a",
                &[(Dns, Status::Fail)],
            ),
            attempt(
                4,
                ROUTED,
                AutodiscoverPrefix,
                "https://autodiscover.contoso.mail.onmicrosoft.com/a",
                &[(CertificateName, Status::Fail)],
            ),
            attempt(
                5,
                ROUTED,
                HttpRedirect,
                "http://autodiscover.contoso.mail.onmicrosoft.com/a",
                &[(Dns, Status::Pass), (Tcp, Status::Fail)],
            ),
            attempt(
                6,
                ROUTED,
                Method::Srv,
                "_autodiscover._tcp.contoso.mail.onmicrosoft.com SRV",
                &[(StepKind::Srv, Status::Fail)],
            ),
        ];
        let v = verdict(&attempts, None, &[BOB.into(), ROUTED.into()], 0);
        assert_eq!(v.failing_step.as_deref(), Some("5.2"));
        assert_eq!(v.candidates.len(), 4, "{:?}", v.candidates);
        assert!(
            v.candidates[1].contains("port 80 only"),
            "{:?}",
            v.candidates
        );
        assert!(
            v.candidates[3].contains("SRV record is optional"),
            "{:?}",
            v.candidates
        );
        assert!(v.advice[0].contains("port-80 listener"), "{:?}", v.advice);
    }

    #[test]
    fn a_redirect_target_belongs_to_its_candidate_and_the_tenant_401_is_explained() {
        use Method::*;
        use StepKind::*;
        let attempts = vec![
            attempt(
                1,
                BOB,
                AutodiscoverPrefix,
                "https://autodiscover.contoso.com/a",
                &[(Authentication, Status::Pass)],
            ),
            attempt(
                2,
                ROUTED,
                HttpRedirect,
                "http://autodiscover.contoso.mail.onmicrosoft.com/a",
                &[(Request, Status::Pass)],
            ),
            attempt(
                3,
                ROUTED,
                Redirected,
                "https://autodiscover-s.outlook.com/a",
                &[(Request, Status::Pass), (Authentication, Status::Fail)],
            ),
        ];
        let v = verdict(&attempts, None, &[BOB.into(), ROUTED.into()], 1);
        assert_eq!(v.failing_step.as_deref(), Some("3.2"));
        assert_eq!(v.candidates.len(), 1, "{:?}", v.candidates);
        assert!(v.advice[0].contains("password hash sync"), "{:?}", v.advice);
        assert!(
            v.advice[0].contains("autodiscover.contoso.com accepted"),
            "{:?}",
            v.advice
        );
    }

    #[test]
    fn with_only_expected_failures_the_furthest_is_named() {
        use Method::*;
        use StepKind::*;
        let attempts = vec![attempt(
            1,
            BOB,
            RootDomain,
            "https://contoso.com/a",
            &[(Dns, Status::Pass), (CertificateName, Status::Fail)],
        )];
        let v = verdict(&attempts, None, &[BOB.into()], 0);
        assert_eq!(v.failing_step.as_deref(), Some("1.2"));
        assert!(verdict(&[], None, &[], 0).failing_step.is_none());
    }

    #[test]
    fn a_successful_verdict_names_the_route() {
        let obtained = Obtained {
            address: ROUTED.into(),
            url: "https://autodiscover-s.outlook.com/autodiscover/autodiscover.xml".into(),
            settings: Settings {
                microsoft_online: Some(true),
                ..Settings::default()
            },
        };
        let v = verdict(&[], Some(&obtained), &[BOB.into(), ROUTED.into()], 1);
        assert!(v.success);
        assert!(v.summary.contains("(Exchange Online)"), "{}", v.summary);
        assert!(v
            .summary
            .contains("1 address redirect (bob@contoso.com -> bob@contoso.mail.onmicrosoft.com)"));
        assert!(v.summary.contains("1 URL redirect"));
    }
}
