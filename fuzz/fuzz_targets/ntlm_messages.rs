#![no_main]
use autodiscoverd::auth::ntlm::{messages, Acceptor, NtlmStep, Policy, ServerNames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = messages::parse_negotiate(data);
    let _ = messages::parse_authenticate(data);
    let _ = messages::parse_ntlmv2_response(data);
    let _ = messages::parse_av_pairs(data);
    let names = ServerNames {
        nb_domain: "CONTOSO".into(),
        nb_computer: "AUTODISCOVER".into(),
        dns_domain: "contoso.com".into(),
        dns_computer: "autodiscover.contoso.com".into(),
        dns_tree: "contoso.com".into(),
    };
    let t1 = autodiscoverd::auth::ntlm::client::negotiate_message(0xe208_8237);
    let mut acc = Acceptor::new();
    let _ = acc.negotiate(&t1, &names, [1; 8], 0);
    if let NtlmStep::NeedCredential { .. } = acc.authenticate(data, &Policy::default(), 0) {
        let _ = acc.credential(Some(&[0; 16]), &Policy::default(), None);
    }
});
