//! Graceful shutdown of open connections. Every connection task holds a [`DrainWatch`];
//! [`Drain::drain`] tells them all to finish the request in progress and close, then waits
//! until the last one has let go of its watch.
//!
//! hyper-util's `GracefulShutdown` can only wrap a hyper connection that runs to its end;
//! a keep-alive connection here alternates between hyper and a parked state outside it
//! (see [`super::park`]), so it needs a signal it can look at in either state.

use std::time::Duration;

use tokio::sync::watch;

/// The server's side: hands out watches, then drains.
#[derive(Debug)]
pub struct Drain {
    signal: watch::Sender<bool>,
}

/// A connection's side: learns that the server is draining.
#[derive(Debug, Clone)]
pub struct DrainWatch {
    signal: watch::Receiver<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            signal: watch::channel(false).0,
        }
    }
}

impl Drain {
    /// A watch for one more connection.
    pub fn watch(&self) -> DrainWatch {
        DrainWatch {
            signal: self.signal.subscribe(),
        }
    }

    /// Connections that still hold a watch.
    pub fn open(&self) -> usize {
        self.signal.receiver_count()
    }

    /// Signals every connection, then waits until all have closed or `grace` has passed.
    /// `true`: all closed in time.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.signal.send_replace(true);
        tokio::time::timeout(grace, self.signal.closed())
            .await
            .is_ok()
    }
}

impl DrainWatch {
    /// Whether the server is draining now.
    pub fn is_draining(&self) -> bool {
        *self.signal.borrow()
    }

    /// Completes when the server starts draining (or is gone).
    pub async fn draining(&mut self) {
        let _ = self.signal.wait_for(|draining| *draining).await;
    }
}

/// Completes when the server drains; never without a watch.
pub async fn draining(drain: &mut Option<DrainWatch>) {
    match drain {
        Some(watch) => watch.draining().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_every_watch_to_be_dropped() {
        let drain = Drain::default();
        let mut watch = drain.watch();
        assert!(!watch.is_draining());
        let connection = tokio::spawn(async move {
            watch.draining().await;
            assert!(watch.is_draining());
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        assert_eq!(drain.open(), 1);
        assert!(drain.drain(Duration::from_secs(5)).await);
        assert_eq!(drain.open(), 0);
        connection.await.unwrap();
    }

    #[tokio::test]
    async fn drain_gives_up_after_the_grace_period() {
        let drain = Drain::default();
        let stuck = drain.watch();
        assert!(!drain.drain(Duration::from_millis(20)).await);
        drop(stuck);
    }
}
