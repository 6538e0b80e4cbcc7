//! The endpoints: routing, the POX, SOAP, AutodiscoverV2 and port-80 answers, the
//! metrics/health routes, the answer caches, the one authentication entry point ([`auth`])
//! with its NTLM and throttle glue, and [`respond`], the one place that builds responses.
//!
//! The endpoints never import the transport ([`super::net`]): it calls them, and hands them
//! what they need to know about a connection in the types defined here ([`ConnInfo`] per
//! connection, [`ClientContext`] per request), together with the shared [`State`].

pub mod answers;
pub mod auth;
pub mod bearer;
pub mod body;
pub mod clients;
pub mod front_door;
pub mod handlers;
pub mod health;
#[cfg(feature = "kerberos")]
pub mod kerberos;
pub mod ntlm;
pub mod profile_sign;
pub mod redirect80;
pub mod respond;
pub mod shared_counts;
pub mod soap_v2;
pub mod throttle;
pub mod winbind;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::Request;

use crate::config::Config;
use crate::directory::DirectoryBackend;

/// Everything a request handler needs, shared by all connections.
pub struct State {
    pub config: Config,
    pub directory: DirectoryBackend,
    /// `Id` attribute of POX Error elements: a stable number for this server.
    pub server_id: u32,
    /// NTLM/Negotiate settings derived at start.
    pub ntlm: ntlm::NtlmService,
    /// Failed-login throttle; one per process, handed on to every reloaded generation.
    pub throttle: Arc<throttle::AuthThrottle>,
    /// Rendered POX answers of this generation (a reload starts with an empty cache).
    pub answers: answers::AnswerCache,
    /// Parsed POX request bodies (parsing does not depend on the configuration, but a
    /// reload is a natural moment to start over).
    pub pox_bodies: answers::ParsedBodies,
    /// Signs `.mobileconfig` profiles (`[mail.mobileconfig]`); `None`: unsigned.
    pub profile_signer: Option<profile_sign::ProfileSigner>,
    /// `[auth.bearer]`: Entra ID tokens, the tenant's signing keys (fetched again by each
    /// generation).
    pub bearer: Option<bearer::BearerService>,
}

/// Facts about one client connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The host name the client asked for in the TLS handshake.
    pub sni: Option<String>,
    /// NTLM handshake state and the identity authenticated on this connection; allocated
    /// by the connection's first NTLM or Negotiate request (Basic clients never need it,
    /// and an idle connection should not carry it).
    auth: std::sync::OnceLock<Box<std::sync::Mutex<crate::auth::ConnAuth>>>,
}

impl ConnInfo {
    /// A connection with no authentication state yet.
    pub fn new(peer: SocketAddr, sni: Option<String>) -> ConnInfo {
        ConnInfo {
            peer,
            sni,
            auth: std::sync::OnceLock::new(),
        }
    }

    /// The connection's NTLM state, created on first use.
    pub fn auth(&self) -> &std::sync::Mutex<crate::auth::ConnAuth> {
        self.auth.get_or_init(Box::default)
    }

    /// The connection's NTLM state, if an NTLM request ever created it.
    pub fn auth_if_used(&self) -> Option<&std::sync::Mutex<crate::auth::ConnAuth>> {
        self.auth.get().map(|auth| &**auth)
    }
}

/// What the server believes about the client of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientContext {
    /// The client address after PROXY protocol and trusted `X-Forwarded-For` resolution.
    pub client: IpAddr,
    /// True when the client's own connection was encrypted: TLS to us, a trusted proxy
    /// saying `X-Forwarded-Proto: https`, or a PROXY v2 header with the SSL flag.
    pub secure: bool,
    /// True when a trusted proxy told us the client address or protocol.
    pub via_trusted_proxy: bool,
}

/// Reports which `ClientContext` the handler saw (for the access log).
pub fn client_of<B>(req: &Request<B>, conn: &ConnInfo) -> std::net::IpAddr {
    req.extensions()
        .get::<ClientContext>()
        .map(|c| c.client)
        .unwrap_or_else(|| conn.peer.ip())
}
