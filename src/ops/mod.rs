//! Operations: logging setup.

pub mod logging;
