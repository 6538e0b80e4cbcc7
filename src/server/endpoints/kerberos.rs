//! Negotiate with Kerberos: the whole client token (SPNEGO NegTokenInit or a raw Kerberos
//! token) goes to the system's GSS-API (`gss_accept_sec_context`, MIT krb5) with the keys of
//! the configured keytab; it checks the ticket, the authenticator, the clock skew and the
//! replay cache and writes the answer (AP-REP for mutual authentication, inside SPNEGO when
//! the client used SPNEGO). This module only decides whom the accepted client principal is
//! in the directory and whether the service principal is one this server answers for.
//!
//! The keytab is named through `KRB5_KTNAME` (the only way the safe binding has to point
//! the acceptor at a file), set once before the first GSS-API call.

use std::any::Any;

use libgssapi::context::{SecurityContext, ServerCtx};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::oid::{OidSet, GSS_MECH_KRB5, GSS_MECH_SPNEGO};

use crate::auth::kerberos;
use crate::config::KerberosConfig;
use crate::directory::Login;

/// The acceptor: credentials from the keytab, and the rules about principals.
pub struct KerberosAcceptor {
    cred: Cred,
    service_principals: Vec<String>,
    realms: Vec<String>,
    netbios_domain: Option<String>,
}

/// The outcome of one client token.
pub enum KerberosStep {
    /// 401 with this token; the context waits on the connection for the next one.
    Continue(Vec<u8>, Box<dyn Any + Send>),
    /// The client proved who it is; the token (AP-REP, mutual authentication) goes in the
    /// `WWW-Authenticate: Negotiate` header of the answer.
    Accepted {
        login: Login,
        principal: String,
        token: Option<Vec<u8>>,
    },
    /// 401; the reason is for the log only.
    Rejected(String),
}

/// Points MIT krb5 at the keytab. Call before threads that use GSS-API exist (the server
/// calls it before its runtime starts); calling it again with the same file is a no-op.
pub fn use_keytab(config: &KerberosConfig) {
    let value = format!("FILE:{}", config.keytab.display());
    if std::env::var("KRB5_KTNAME").ok().as_deref() != Some(value.as_str()) {
        std::env::set_var("KRB5_KTNAME", value);
    }
}

impl KerberosAcceptor {
    /// Acquires acceptor credentials for every key of the keytab (the service principals
    /// are enforced after acceptance, so one keytab may serve several names).
    pub fn new(
        config: &KerberosConfig,
        netbios_domain: Option<String>,
    ) -> Result<KerberosAcceptor, String> {
        use_keytab(config);
        let mut mechs = OidSet::new();
        mechs.add(GSS_MECH_SPNEGO).map_err(|e| e.to_string())?;
        mechs.add(GSS_MECH_KRB5).map_err(|e| e.to_string())?;
        let cred = Cred::acquire(None, None, CredUsage::Accept, Some(&mechs)).map_err(|e| {
            format!(
                "GSS-API cannot use the keytab {}: {e}",
                config.keytab.display()
            )
        })?;
        Ok(KerberosAcceptor {
            cred,
            service_principals: config.service_principals.clone(),
            realms: config.realms.clone(),
            netbios_domain,
        })
    }

    /// Feeds one client token to GSS-API (on a blocking thread: it reads the keytab and
    /// writes the replay cache). `pending` is the context of an exchange in progress;
    /// `channel_binding` the RFC 5929 application data of the TLS channel, when checked.
    pub async fn accept(
        &self,
        pending: Option<Box<dyn Any + Send>>,
        token: Vec<u8>,
        channel_binding: Option<Vec<u8>>,
    ) -> KerberosStep {
        let ctx = pending
            .and_then(|p| p.downcast::<ServerCtx>().ok())
            .map(|b| *b)
            .unwrap_or_else(|| ServerCtx::new(Some(self.cred.clone())));
        let stepped = tokio::task::spawn_blocking(move || {
            let mut ctx = ctx;
            let out = ctx.step(&token, channel_binding.as_deref());
            (ctx, out.map(|o| o.map(|b| b.to_vec())))
        })
        .await;
        let (ctx, out) = match stepped {
            Ok(r) => r,
            Err(e) => return KerberosStep::Rejected(format!("acceptor task failed: {e}")),
        };
        let token = match out {
            Ok(t) => t,
            // GSS-API's message names the reason (no key for the ticket's service,
            // clock skew, replay, integrity) without secrets.
            Err(e) => return KerberosStep::Rejected(e.to_string()),
        };
        if !ctx.is_complete() {
            return match token {
                Some(t) => KerberosStep::Continue(t, Box::new(ctx)),
                None => KerberosStep::Rejected("incomplete context without a token".into()),
            };
        }
        let (source, target) = match (ctx.source_name(), ctx.target_name()) {
            (Ok(s), Ok(t)) => (s.to_string(), t.to_string()),
            _ => return KerberosStep::Rejected("names of the context unavailable".into()),
        };
        if !kerberos::service_allowed(&target, &self.service_principals) {
            return KerberosStep::Rejected(format!(
                "ticket for {target}, which is not in auth.kerberos.service_principals"
            ));
        }
        match kerberos::client_login(&source, &self.realms, self.netbios_domain.as_deref()) {
            Ok(login) => KerberosStep::Accepted {
                login,
                principal: source,
                token,
            },
            Err(e) => KerberosStep::Rejected(format!("{source}: {e}")),
        }
    }
}
