//! Operations: logging setup, metrics, signals, systemd notification and the trust anchors
//! of outgoing TLS (the health
//! endpoints are in `server::endpoints::health`).

pub mod access;
pub mod log_writer;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod signals;
pub mod trust;
