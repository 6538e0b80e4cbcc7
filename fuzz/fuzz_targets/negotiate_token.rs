#![no_main]
use autodiscoverd::auth::negotiate::{ConnAuth, Leg, Scheme};
use autodiscoverd::auth::ntlm::{Policy, ServerNames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = autodiscoverd::auth::spnego::parse(data);
    let names = ServerNames {
        nb_domain: "CONTOSO".into(),
        nb_computer: "AUTODISCOVER".into(),
        dns_domain: "contoso.com".into(),
        dns_computer: "autodiscover.contoso.com".into(),
        dns_tree: "contoso.com".into(),
    };
    let mut conn = ConnAuth::default();
    for scheme in [Scheme::Negotiate, Scheme::Ntlm] {
        if let Leg::NeedCredential { .. } = conn.step(scheme, data, &names, &Policy::default(), [2; 8], 0) {
            let _ = conn.finish(None, &Policy::default(), None);
        }
    }
});
