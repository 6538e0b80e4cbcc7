//! The transport: listeners and accept loops, TLS, the PROXY protocol and trusted-proxy
//! headers, parking idle connections, drain on shutdown and hot reload. It hands each
//! request to [`super::endpoints`] with the connection's facts; the endpoints never
//! import anything from here.

pub mod drain;
pub mod listener;
pub mod park;
pub mod proxy;
pub mod reload;
pub mod tls;
