//! The candidate methods (HTTPS URL chains, the port-80 redirect, SRV) and the redirects
//! between them: URL hops and redirectAddr restarts.

use super::answer::Answer;
use super::exchange::{http_handshake, plain_get, send, Exchange};
use super::plan::{self, AddressStep, HttpsUrl, Method, Protocol, UrlStep};
use super::report::{Attempt, Obtained, Outcome, Status, StepKind};
use super::{Found, Prober};

impl Prober<'_> {
    /// Follows one candidate URL and the URL redirects it leads to.
    pub(super) async fn https_chain(&mut self, method: Method, first: HttpsUrl) -> Found {
        let mut url = first;
        let mut method = method;
        loop {
            let text = url.text();
            let mut a = self.new_attempt(method, &text);
            if !self.journey.visit(&text) {
                a.outcome = Outcome::Skipped {
                    reason: "this URL was already tried for this address".into(),
                };
                self.attempts.push(a);
                return Found::Nothing;
            }
            let exchange = self.https_once(&mut a, &url).await;
            let next = match exchange {
                Exchange::Failed => None,
                Exchange::Moved(location) => Some(location),
                Exchange::Answer(Answer::RedirectUrl(target)) => Some(target),
                Exchange::Answer(Answer::Settings(settings)) => {
                    a.outcome = Outcome::Settings;
                    self.attempts.push(a);
                    return Found::Settings(Box::new(Obtained {
                        address: self.journey.current().to_string(),
                        url: text,
                        settings: *settings,
                    }));
                }
                Exchange::Answer(Answer::RedirectAddr(target)) => {
                    let found = self.follow_address(&mut a, &target);
                    self.attempts.push(a);
                    return found;
                }
                Exchange::Answer(Answer::Error { .. }) => None,
            };
            let Some(location) = next else {
                if matches!(a.outcome, Outcome::Failed { ref reason } if reason == "not finished") {
                    a.fail("no usable answer");
                }
                self.attempts.push(a);
                return Found::Nothing;
            };
            let path_protocol = self.options.protocol;
            match plan::check_redirect(&location, path_protocol) {
                Err(problem) => return self.refuse_redirect(a, &location, problem),
                Ok(target) => match self.journey.redirect_url(&target.text()) {
                    UrlStep::Follow => {
                        a.step(
                            StepKind::Redirect,
                            Status::Pass,
                            format!("redirect to {} accepted (https, Autodiscover path; hop {} of at most {})", target.text(), self.journey.url_hops(), plan::MAX_URL_HOPS),
                        );
                        a.outcome = Outcome::RedirectUrl { url: target.text() };
                        self.attempts.push(a);
                        url = target;
                        method = Method::Redirected;
                    }
                    UrlStep::Loop => {
                        a.step(
                            StepKind::Redirect,
                            Status::Fail,
                            format!("redirect loop: {} was already visited", target.text()),
                        );
                        a.fail("redirect loop");
                        self.attempts.push(a);
                        return Found::Nothing;
                    }
                    UrlStep::TooMany => {
                        a.step(
                            StepKind::Redirect,
                            Status::Fail,
                            format!(
                                "too many redirects: clients stop after {} URL hops",
                                plan::MAX_URL_HOPS
                            ),
                        );
                        a.fail("too many redirects");
                        self.attempts.push(a);
                        return Found::Stop;
                    }
                },
            }
        }
    }

    /// Ends an attempt whose redirect target is not https or not an Autodiscover path.
    pub(super) fn refuse_redirect(
        &mut self,
        mut a: Attempt,
        location: &str,
        problem: plan::RedirectProblem,
    ) -> Found {
        a.step(
            StepKind::Redirect,
            Status::Fail,
            format!("redirect to {location} refused: {}", problem.explain()),
        );
        a.fail("unusable redirect");
        self.attempts.push(a);
        Found::Nothing
    }

    pub(super) fn follow_address(&mut self, a: &mut Attempt, target: &str) -> Found {
        let before = self.journey.addresses().to_vec();
        match self.journey.redirect_address(target) {
            AddressStep::Restart => {
                a.step(
                    StepKind::Redirect,
                    Status::Pass,
                    format!("redirectAddr {target} accepted: discovery restarts for the new address with the same credentials"),
                );
                a.outcome = Outcome::RedirectAddr {
                    address: target.to_string(),
                };
                Found::Restart
            }
            AddressStep::Loop { first_seen } => {
                let mut chain: Vec<String> = before.iter().skip(first_seen).cloned().collect();
                chain.push(target.to_string());
                a.step(
                    StepKind::Redirect,
                    Status::Fail,
                    format!("redirect loop: redirectAddr {target} was already tried"),
                )
                .detail(format!("address loop: {}", chain.join(" -> ")))
                .detail("each side says the mailbox is on the other side: check targetAddress on-premises and the mailbox in the tenant");
                a.fail("address redirect loop");
                Found::Stop
            }
            AddressStep::TooMany => {
                a.step(
                    StepKind::Redirect,
                    Status::Fail,
                    format!(
                        "too many address redirects (more than {})",
                        plan::MAX_ADDRESS_REDIRECTS
                    ),
                );
                a.fail("too many address redirects");
                Found::Stop
            }
            AddressStep::Invalid => {
                a.step(
                    StepKind::Redirect,
                    Status::Fail,
                    format!("redirectAddr `{target}` is not an email address"),
                );
                a.fail("invalid redirect address");
                Found::Nothing
            }
        }
    }

    /// The HTTP-redirect method: unauthenticated GET on port 80, then the https target.
    pub(super) async fn http_redirect(&mut self, host: &str, port: u16) -> Found {
        let path = self.options.protocol.redirect_probe_path();
        let url = if port == 80 {
            format!("http://{host}{path}")
        } else {
            format!("http://{host}:{port}{path}")
        };
        let mut a = self.new_attempt(Method::HttpRedirect, &url);
        let Some(tcp) = self.connect(&mut a, host, port).await else {
            a.fail(format!("cannot reach {host}:{port}"));
            self.attempts.push(a);
            return Found::Nothing;
        };
        let result = async {
            let mut sender = http_handshake(tcp, self.options.timeout).await?;
            let request = plain_get(path, host)?;
            send(&mut sender, request, self.options.timeout).await
        }
        .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                a.step(
                    StepKind::Request,
                    Status::Fail,
                    format!("GET {path} failed: {e}"),
                );
                a.fail("HTTP failed");
                self.attempts.push(a);
                return Found::Nothing;
            }
        };
        let location = response.location();
        let (true, Some(location)) = (response.status.is_redirection(), location) else {
            a.step(
                StepKind::Request,
                Status::Fail,
                format!(
                    "GET {path} (no credentials): HTTP {}, not a redirect",
                    response.status.as_u16()
                ),
            );
            a.fail("no redirect on port 80");
            self.attempts.push(a);
            return Found::Nothing;
        };
        a.step(
            StepKind::Request,
            Status::Pass,
            format!(
                "GET {path} (no credentials): HTTP {} to {location}",
                response.status.as_u16()
            ),
        );
        // The port-80 answer points at a POX (or SOAP) path even for V2 clients.
        // (Autoconfig and profiles have no port-80 method: never asked.)
        let path_protocol = match self.options.protocol {
            Protocol::Soap => Protocol::Soap,
            Protocol::Pox | Protocol::V2 | Protocol::Autoconfig | Protocol::Mobileconfig => {
                Protocol::Pox
            }
            Protocol::MobileSync => Protocol::MobileSync,
        };
        let target = match plan::check_redirect(&location, path_protocol) {
            Ok(t) => t,
            Err(problem) => return self.refuse_redirect(a, &location, problem),
        };
        let next = match self.options.protocol {
            Protocol::V2 => plan::endpoint(
                &target.host,
                target.port,
                Protocol::V2,
                self.journey.current(),
            ),
            _ => target,
        };
        let found = match self.journey.redirect_url(&next.text()) {
            UrlStep::Follow => {
                a.step(
                    StepKind::Redirect,
                    Status::Pass,
                    format!(
                        "redirect target {} accepted (https, Autodiscover path)",
                        next.text()
                    ),
                )
                .detail(
                    "learned over plain HTTP: Outlook asks the user before using it (MS-OXDISCO §3.1.5.4)",
                );
                a.outcome = Outcome::RedirectUrl { url: next.text() };
                None
            }
            UrlStep::Loop => {
                a.step(
                    StepKind::Redirect,
                    Status::Info,
                    format!("{} was already tried", next.text()),
                );
                a.outcome = Outcome::Skipped {
                    reason: "target already tried".into(),
                };
                Some(Found::Nothing)
            }
            UrlStep::TooMany => {
                a.step(StepKind::Redirect, Status::Fail, "too many redirects");
                a.fail("too many redirects");
                Some(Found::Stop)
            }
        };
        self.attempts.push(a);
        match found {
            Some(f) => f,
            None => self.https_chain(Method::Redirected, next).await,
        }
    }

    /// The SRV method.
    pub(super) async fn srv(&mut self, domain: &str) -> Found {
        let name = plan::srv_name(domain);
        let mut a = self.new_attempt(Method::Srv, &format!("{name} SRV"));
        let resolver = match &self.resolver {
            None => {
                a.step(
                    StepKind::Srv,
                    Status::Skip,
                    format!("SRV lookup of {name} skipped: DNS is off (--no-dns)"),
                );
                a.outcome = Outcome::Skipped {
                    reason: "DNS is off".into(),
                };
                self.attempts.push(a);
                return Found::Nothing;
            }
            Some(Err(e)) => {
                a.step(
                    StepKind::Srv,
                    Status::Fail,
                    format!("SRV lookup of {name} impossible: {e}"),
                );
                a.fail("no DNS");
                self.attempts.push(a);
                return Found::Nothing;
            }
            Some(Ok(r)) => r.clone(),
        };
        let records = match self.ask_dns(resolver.srv_lookup(name.as_str())).await {
            Ok(found) => plan::order_srv(
                found
                    .iter()
                    .map(|r| plan::SrvTarget {
                        priority: r.priority(),
                        weight: r.weight(),
                        port: r.port(),
                        target: r.target().to_ascii(),
                    })
                    .collect(),
            ),
            Err(e) => {
                a.step(
                    StepKind::Srv,
                    Status::Fail,
                    format!("no SRV record {name}: {e}"),
                );
                a.fail("no SRV record");
                self.attempts.push(a);
                return Found::Nothing;
            }
        };
        if records.is_empty() {
            a.step(
                StepKind::Srv,
                Status::Fail,
                format!("{name} has no usable SRV target"),
            );
            a.fail("no SRV target");
            self.attempts.push(a);
            return Found::Nothing;
        }
        {
            let s = a.step(
                StepKind::Srv,
                Status::Pass,
                format!("{name}: {} target(s)", records.len()),
            );
            for r in &records {
                s.detail(format!(
                    "{} {} {} {}",
                    r.priority, r.weight, r.port, r.target
                ));
            }
            s.detail(
                "learned from DNS: Outlook asks the user before using an SRV target (MS-OXDISCO §3.1.5.3)",
            );
        }
        a.outcome = Outcome::Skipped {
            reason: "SRV targets follow".into(),
        };
        self.attempts.push(a);
        for r in records {
            let url = plan::endpoint(
                &r.target,
                r.port,
                self.options.protocol,
                self.journey.current(),
            );
            match self.https_chain(Method::Srv, url).await {
                Found::Nothing => continue,
                other => return other,
            }
        }
        Found::Nothing
    }
}
