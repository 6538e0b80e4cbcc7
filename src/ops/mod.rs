//! Operations: logging setup, metrics, signals and systemd notification (the health
//! endpoints are in `server::endpoints::health`).

pub mod access;
pub mod log_writer;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod signals;
