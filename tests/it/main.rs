//! The one integration-test binary: one module per area, a shared harness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
mod harness;

mod abuse;
mod answers;
mod cli;
mod clients;
mod directory_battery;
mod hma;
mod idle;
mod journey;
mod lab;
mod ldap;
mod ntlm;
mod ops;
mod pox;
mod properties;
mod proxy;
mod redirect;
mod shared_throttle;
mod soap;
mod thunderbird;
mod tls;
mod v2;
