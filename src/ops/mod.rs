//! Operations: logging setup, metrics, health endpoints, signals and systemd notification.

pub mod access;
pub mod health;
pub mod log_writer;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod signals;
