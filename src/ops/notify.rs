//! systemd `sd_notify(3)` without libsystemd: one datagram per state change to the Unix
//! socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the Linux abstract namespace).
//! Outside systemd the variable is unset and every call is a no-op.

use std::io;
use std::time::Duration;

/// A handle on the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    #[cfg(unix)]
    socket: std::os::unix::net::UnixDatagram,
    #[cfg(unix)]
    addr: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// The notifier systemd asked for, or `None` when not started by systemd (or the socket
    /// name is unusable, which is logged).
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        match Notifier::connect(&name.to_string_lossy()) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; not notifying systemd");
                None
            }
        }
    }

    /// A notifier for the socket `name` (`/run/...` or `@abstract`).
    #[cfg(unix)]
    pub fn connect(name: &str) -> io::Result<Notifier> {
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let addr = if let Some(abstract_name) = name.strip_prefix('@') {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name.as_bytes())?
            }
            #[cfg(not(target_os = "linux"))]
            {
                let _ = abstract_name;
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "abstract socket names need Linux",
                ));
            }
        } else if name.starts_with('/') {
            SocketAddr::from_pathname(name)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` is neither an absolute path nor @abstract"),
            ));
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Not available off Unix.
    #[cfg(not(unix))]
    pub fn connect(_name: &str) -> io::Result<Notifier> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "sd_notify needs Unix",
        ))
    }

    /// Sends newline-separated `KEY=VALUE` assignments. Failures are logged, never fatal:
    /// systemd going away must not take the service with it.
    pub fn send(&self, state: &str) {
        #[cfg(unix)]
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
        #[cfg(not(unix))]
        let _ = state;
    }
}

/// Removes characters that would break the newline-separated `KEY=VALUE` protocol.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// `READY=1` with a status line (listeners are bound, the service accepts requests).
pub fn ready(n: Option<&Notifier>, status: &str) {
    if let Some(n) = n {
        n.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }
}

/// `RELOADING=1` with `MONOTONIC_USEC` (systemd ≥ 253 requires it for notify-reload).
pub fn reloading(n: Option<&Notifier>) {
    if let Some(n) = n {
        n.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading configuration",
            monotonic_usec()
        ));
    }
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping(n: Option<&Notifier>) {
    if let Some(n) = n {
        n.send("STOPPING=1\nSTATUS=draining connections");
    }
}

/// `STATUS=...` only.
pub fn status(n: Option<&Notifier>, status: &str) {
    if let Some(n) = n {
        n.send(&format!("STATUS={}", one_line(status)));
    }
}

/// `WATCHDOG=1`: the service is alive.
pub fn watchdog(n: Option<&Notifier>) {
    if let Some(n) = n {
        n.send("WATCHDOG=1");
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        (t.tv_sec.max(0) as u64) * 1_000_000 + (t.tv_nsec.max(0) as u64) / 1_000
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// How often systemd expects `WATCHDOG=1`, from `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, which
/// must be ours when set). `None` when the watchdog is off.
pub fn watchdog_interval() -> Option<Duration> {
    parse_watchdog(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    let usec = usec?.trim().parse::<u64>().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_settings_are_read_only_for_this_process() {
        assert_eq!(
            parse_watchdog(Some("30000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_watchdog(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_watchdog(Some("30000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("x"), None, 7), None);
        assert_eq!(parse_watchdog(None, None, 7), None);
    }

    #[cfg(unix)]
    #[test]
    fn notifications_arrive_as_one_datagram_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.to_str().unwrap()).unwrap();
        ready(Some(&n), "serving\nhttps=127.0.0.1:1");
        reloading(Some(&n));
        let mut buf = [0u8; 512];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..len]).unwrap(),
            "READY=1\nSTATUS=serving https=127.0.0.1:1"
        );
        let len = server.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
        let usec: u64 = text.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..]
            .parse()
            .unwrap();
        assert!(usec > 0);
        assert!(Notifier::connect("relative/path").is_err());
    }
}
