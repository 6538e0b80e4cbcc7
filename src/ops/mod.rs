//! Operations: logging setup, metrics, health endpoints, signals and systemd notification.

pub mod health;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod signals;
