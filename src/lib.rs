//! autodiscoverd: an Exchange-compatible Autodiscover server that makes the hybrid
//! (on-premises vs Exchange Online) decision per mailbox.
//!
//! Layout, following a request from the socket to the response:
//! - [`server`]: the I/O edge. TLS listeners (SNI certificates), HTTP/1.1 via hyper, routing,
//!   body limits, the port-80 HTTP-redirect responder, and the one place that maps outcomes
//!   to HTTP responses.
//! - [`auth`]: sans-IO parsing of `Authorization` headers and the 401 challenge set.
//! - [`directory`]: the [`directory::Directory`] trait and its backends (embedded TOML file).
//! - [`protocol`]: sans-IO parsing and rendering of the POX request/response documents.
//! - [`decision`]: the pure per-mailbox decision (settings, redirectAddr, error code).
//! - [`settings`]: the service settings (EXCH/EXPR/WEB/mapiHttp/mobilesync) for one mailbox.
//! - [`config`]: the TOML configuration, validated into [`config::Config`].
//! - [`ops`]: logging setup.
//! - [`probe`]: the client side: walks the Autodiscover journey step by step and reports.
//! - [`lab`]: `lab init` / `lab up`: an on-premises organisation plus an emulated Exchange
//!   Online tenant on loopback.

pub mod auth;
pub mod config;
pub mod decision;
pub mod directory;
pub mod lab;
pub mod ops;
pub mod probe;
pub mod protocol;
pub mod scp;
pub mod server;
pub mod settings;
