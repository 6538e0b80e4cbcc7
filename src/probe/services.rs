//! `--check-urls`: after settings were found, the next test a client makes. Each service
//! URL the settings name (EWS, OAB, MAPI/HTTP, ActiveSync) gets DNS, TCP, TLS with the
//! certificate checks, and an unauthenticated GET, which must answer 200 or a 401 that
//! offers a scheme.

use super::answer::Settings;
use super::auth;
use super::exchange::{http_handshake, plain_get, send};
use super::plan::{self, Method};
use super::report::{Attempt, Outcome, Status, StepKind};
use super::Prober;

impl Prober<'_> {
    /// Checks every service URL of `settings`; attempts are numbered after the journey's.
    pub(super) async fn check_services(&mut self, settings: &Settings) -> Vec<Attempt> {
        let mut checks = Vec::new();
        for (service, text) in plan::service_urls(settings) {
            let mut a = Attempt::new(
                self.attempts.len() + checks.len() + 1,
                self.journey.current(),
                Method::ServiceUrl,
                &text,
            )
            .timed(self.started);
            self.check_service(&mut a, service, &text).await;
            checks.push(a);
        }
        checks
    }

    async fn check_service(&mut self, a: &mut Attempt, service: &str, text: &str) {
        let url = match plan::parse_https(text) {
            Ok(url) => url,
            Err(problem) => {
                a.step(
                    StepKind::Request,
                    Status::Fail,
                    format!("{service} URL {text} is unusable: {}", problem.explain()),
                );
                a.fail(format!("{service} URL unusable"));
                return;
            }
        };
        let Some(tcp) = self.connect(a, &url.host, url.port).await else {
            a.fail(format!("{service}: cannot reach {}:{}", url.host, url.port));
            return;
        };
        let Some(tls) = self.tls(a, &url.host, tcp).await else {
            a.fail(format!("{service}: certificate not trusted"));
            return;
        };
        let host_header = if url.port == 443 {
            url.host.clone()
        } else {
            format!("{}:{}", url.host, url.port)
        };
        let sent = async {
            let mut sender = http_handshake(tls, self.options.timeout).await?;
            let request = plain_get(&url.path, &host_header)?;
            send(&mut sender, request, self.options.timeout).await
        }
        .await;
        match sent {
            Ok(response) => {
                let offered = auth::offered_schemes(&response.www_authenticate());
                let (ok, what) = plan::service_answer(response.status.as_u16(), &offered);
                a.step(
                    StepKind::Request,
                    if ok { Status::Pass } else { Status::Fail },
                    format!("{service}: GET {} (no credentials): {what}", url.path),
                );
                if ok {
                    a.outcome = Outcome::ServiceAnswers;
                } else {
                    a.fail(format!("{service} does not answer"));
                }
            }
            Err(e) => {
                a.step(
                    StepKind::Request,
                    Status::Fail,
                    format!("{service}: GET {} failed: {e}", url.path),
                );
                a.fail(format!("{service} does not answer"));
            }
        }
    }
}
