//! A pool of long-lived `ntlm_auth --helper-protocol=ntlm-server-1` processes that ask the
//! domain (through winbind) whether an NTLMv2 response is right. Each helper answers one
//! request at a time; a helper that does not answer within the timeout, or whose pipe
//! breaks, is killed and a new one is started for the next request, so one stuck helper
//! costs one request and nothing else. The protocol itself is [`crate::auth::winbind`].

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;

use crate::auth::ntlm::DomainCheck;
use crate::auth::winbind::{self, HelperError, Verdict};
pub use crate::config::WinbindSettings;

/// The longest answer line accepted from a helper, and the most lines.
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 32;

/// Why the domain's verdict could not be had (the request is answered 503, not 401).
#[derive(Debug, thiserror::Error)]
pub enum WinbindError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the helper did not answer within {0} ms (killed; a new one starts with the next request)"
    )]
    Timeout(u64),
    #[error("the helper's pipe broke: {0} (a new one starts with the next request)")]
    Io(#[from] std::io::Error),
    #[error("the helper exited (a new one starts with the next request)")]
    Exited,
    #[error(transparent)]
    Helper(#[from] HelperError),
}

struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The helper processes.
pub struct WinbindPool {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
    slots: Vec<Mutex<Option<Helper>>>,
    next: AtomicUsize,
    /// Helpers started so far (first starts and restarts), for tests and metrics.
    started: AtomicUsize,
}

impl WinbindPool {
    /// A pool; helpers start with the first request that needs one.
    pub fn new(settings: &WinbindSettings) -> WinbindPool {
        let mut parts = settings.command.iter();
        let program = PathBuf::from(parts.next().map(String::as_str).unwrap_or("ntlm_auth"));
        WinbindPool {
            program,
            args: parts.cloned().collect(),
            timeout: settings.timeout,
            slots: (0..settings.helpers.max(1))
                .map(|_| Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        }
    }

    /// How many helper processes were started (restarts included).
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// Asks the domain about one NTLMv2 response: `Ok(Some(session base key))` when it is
    /// right, `Ok(None)` when the domain refused it.
    pub async fn verify(&self, check: &DomainCheck) -> Result<Option<[u8; 16]>, WinbindError> {
        let request = winbind::request(check);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // A free helper if there is one; otherwise wait for the next in turn.
        let n = self.slots.len();
        let mut guard = None;
        for i in 0..n {
            if let Some(slot) = self.slots.get((start + i) % n) {
                if let Ok(g) = slot.try_lock() {
                    guard = Some(g);
                    break;
                }
            }
        }
        let mut slot = match guard {
            Some(g) => g,
            None => match self.slots.get(start % n) {
                Some(s) => s.lock().await,
                None => return Err(WinbindError::Exited),
            },
        };
        let ms = self.timeout.as_millis() as u64;
        let outcome = tokio::time::timeout(self.timeout, async {
            // A helper found dead when the request is written or its answer read (killed,
            // crashed, winbind restarted) is replaced once at once: the domain never saw
            // the request, or answered a question that is safe to ask again.
            for attempt in 0..2 {
                if slot.is_none() {
                    *slot = Some(self.spawn()?);
                }
                let helper = slot.as_mut().ok_or(WinbindError::Exited)?;
                match exchange(helper, &request).await {
                    Err(WinbindError::Exited | WinbindError::Io(_)) if attempt == 0 => {
                        tracing::warn!(target: "auth", "winbind NTLM helper had exited; starting a new one");
                        retire(slot.take());
                    }
                    other => return other,
                }
            }
            Err(WinbindError::Exited)
        })
        .await
        .unwrap_or(Err(WinbindError::Timeout(ms)));
        match outcome {
            Ok(Verdict::Authenticated { session_key }) => Ok(Some(session_key)),
            Ok(Verdict::Refused(why)) => {
                tracing::debug!(target: "auth", user = %check.user, domain = %check.domain, reason = %why, "the domain refused the NTLM response");
                Ok(None)
            }
            Err(e) => {
                // Whatever state the helper is in, it is not trusted with another request.
                retire(slot.take());
                tracing::warn!(target: "auth", error = %e, "winbind NTLM helper failed");
                Err(e)
            }
        }
    }

    fn spawn(&self) -> Result<Helper, WinbindError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| WinbindError::Spawn {
                program: self.program.display().to_string(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(WinbindError::Exited);
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        Ok(Helper {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }
}

/// Kills a helper and reaps it in the background.
fn retire(helper: Option<Helper>) {
    if let Some(mut dead) = helper {
        let _ = dead.child.start_kill();
        tokio::spawn(async move {
            let _ = dead.child.wait().await;
        });
    }
}

/// Writes one request and reads its answer. `ntlm_auth` ends a refusal with two `.`
/// lines, so `.` lines before an answer are the tail of the previous one.
async fn exchange(helper: &mut Helper, request: &str) -> Result<Verdict, WinbindError> {
    helper.stdin.write_all(request.as_bytes()).await?;
    helper.stdin.flush().await?;
    let mut lines = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut helper.stdout)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Err(WinbindError::Exited);
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text == "." {
            if lines.is_empty() {
                continue;
            }
            break;
        }
        if lines.len() >= MAX_LINES || !line.ends_with('\n') {
            return Err(HelperError::Failed("answer too long".into()).into());
        }
        lines.push(text.to_string());
    }
    Ok(winbind::parse_response(&lines)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn check() -> DomainCheck {
        DomainCheck {
            server_challenge: [1; 8],
            nt_response: vec![2; 40],
            user: "alice".into(),
            domain: "CONTOSO".into(),
        }
    }

    /// A stand-in helper: a shell script that answers the way `mode` says. Only the pool's
    /// process handling is tested with it; verification itself is tested against Samba's
    /// ntlm_auth and a real domain controller (tests/ad).
    fn script(dir: &std::path::Path, body: &str) -> WinbindSettings {
        let path = dir.join("helper.sh");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "#!/bin/sh\n{body}").unwrap();
        drop(f);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        WinbindSettings {
            command: vec![path.display().to_string()],
            helpers: 2,
            timeout: Duration::from_millis(500),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Answers every request; the first user name decides: `hang` sleeps, `die` exits.
    const BEHAVIOUR: &str = r#"
while IFS= read -r line; do
  case "$line" in
    "Username:: "*) user=$(printf %s "${line#Username:: }" | base64 -d) ;;
    .)
      case "$user" in
        hang) sleep 30 ;;
        die) exit 1 ;;
        alice) printf 'Authenticated: Yes\nUser-Session-Key: 000102030405060708090a0b0c0d0e0f\n.\n' ;;
        *) printf 'Authenticated: No\nAuthentication-Error: Wrong Password\n.\n.\n' ;;
      esac ;;
  esac
done"#;

    #[test]
    fn answers_refusals_and_keys_come_through_one_long_lived_helper() {
        let dir = tempfile::tempdir().unwrap();
        let pool = WinbindPool::new(&script(dir.path(), BEHAVIOUR));
        runtime().block_on(async {
            let key = pool.verify(&check()).await.unwrap();
            assert_eq!(key.unwrap()[15], 0x0f);
            let mut bob = check();
            bob.user = "bob".into();
            // The refusal's second `.` does not confuse the next answer.
            assert_eq!(pool.verify(&bob).await.unwrap(), None);
            assert!(pool.verify(&check()).await.unwrap().is_some());
            assert!(
                pool.started() <= 2,
                "helpers are reused, not one per request"
            );
        });
    }

    #[test]
    fn a_hanging_or_dying_helper_fails_one_request_within_the_timeout_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = script(dir.path(), BEHAVIOUR);
        settings.helpers = 1;
        let pool = WinbindPool::new(&settings);
        runtime().block_on(async {
            let mut hang = check();
            hang.user = "hang".into();
            let t = std::time::Instant::now();
            assert!(matches!(
                pool.verify(&hang).await,
                Err(WinbindError::Timeout(500))
            ));
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            // The next request gets a fresh helper and a real answer.
            assert!(pool.verify(&check()).await.unwrap().is_some());
            assert_eq!(pool.started(), 2);
            let mut die = check();
            die.user = "die".into();
            // A request that kills every helper it meets fails after one replacement.
            assert!(matches!(
                pool.verify(&die).await,
                Err(WinbindError::Exited | WinbindError::Io(_))
            ));
            assert_eq!(pool.started(), 3);
            assert!(pool.verify(&check()).await.unwrap().is_some());
            assert_eq!(pool.started(), 4);
        });
    }

    #[test]
    fn a_helper_that_died_between_requests_is_replaced_without_failing_anyone() {
        let dir = tempfile::tempdir().unwrap();
        // Answers one request, then exits.
        let mut settings = script(
            dir.path(),
            "while IFS= read -r line; do [ \"$line\" = . ] && printf 'Authenticated: Yes\\nUser-Session-Key: 000102030405060708090a0b0c0d0e0f\\n.\\n' && exit 0; done",
        );
        settings.helpers = 1;
        let pool = WinbindPool::new(&settings);
        runtime().block_on(async {
            for round in 1..=3 {
                assert!(pool.verify(&check()).await.unwrap().is_some(), "{round}");
            }
            assert_eq!(pool.started(), 3);
        });
    }

    #[test]
    fn a_missing_helper_program_is_an_error_not_a_refusal() {
        let pool = WinbindPool::new(&WinbindSettings {
            command: vec!["/nonexistent/ntlm_auth".into()],
            helpers: 1,
            timeout: Duration::from_millis(500),
        });
        runtime().block_on(async {
            assert!(matches!(
                pool.verify(&check()).await,
                Err(WinbindError::Spawn { .. })
            ));
        });
    }
}
