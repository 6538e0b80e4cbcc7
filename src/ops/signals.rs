//! Process signals as events: SIGHUP → reload, SIGTERM/SIGINT → shutdown.

/// What a signal asks the server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGHUP (`systemctl reload`): re-read configuration, certificates and directory.
    Reload,
    /// SIGTERM (`systemctl stop`) or SIGINT (Ctrl-C): stop accepting, drain, exit 0.
    Shutdown,
}

/// The installed signal handlers.
pub struct Signals {
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (call inside the runtime, before announcing readiness, so a
    /// `systemctl reload` right after start is not lost).
    pub fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                hup: signal(SignalKind::hangup())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> Event {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.hup.recv() => Event::Reload,
                _ = self.term.recv() => Event::Shutdown,
                _ = tokio::signal::ctrl_c() => Event::Shutdown,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Event::Shutdown
        }
    }
}
