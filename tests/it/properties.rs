//! Property tests over the sans-IO parsers: the stable-toolchain stand-in for the cargo-fuzz
//! targets in fuzz/ (cargo-fuzz needs nightly). Every input must produce an answer, never a
//! panic. Coverage of the parsers named by the abuse issue: POX (here), Basic and the
//! `Authorization` header (here), Entra ID bearer tokens (here), NTLM messages, SPNEGO tokens
//! and the NTLM/Negotiate connection state machine (here), SOAP (`src/protocol/soap/tests.rs`, module
//! `properties`) and AutodiscoverV2 path/query (`src/protocol/v2/tests.rs`, `properties`).

use autodiscoverd::auth;
use autodiscoverd::auth::negotiate::{ConnAuth, Finish, Leg, Scheme};
use autodiscoverd::auth::ntlm::{self, client, messages, Acceptor, NtlmStep, Policy, ServerNames};
use autodiscoverd::auth::spnego;
use autodiscoverd::protocol::pox;
use base64::Engine;
use proptest::prelude::*;

fn names() -> ServerNames {
    ServerNames {
        nb_domain: "CONTOSO".into(),
        nb_computer: "AUTODISCOVER".into(),
        dns_domain: "contoso.com".into(),
        dns_computer: "autodiscover.contoso.com".into(),
        dns_tree: "contoso.com".into(),
    }
}

/// A valid Type 1, Type 3 (for a fixed challenge) and SPNEGO wrappings: seeds to mutate.
fn ntlm_seeds() -> Vec<Vec<u8>> {
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let mut acc = Acceptor::new();
    let NtlmStep::SendChallenge(t2) = acc.negotiate(&t1, &names(), [7; 8], 0) else {
        unreachable!("a valid Type 1 gets a challenge")
    };
    let (t3, _) = client::authenticate_message(
        &client::ClientOptions::new("alice", "CONTOSO", "alice-pw"),
        &t1,
        &t2,
    )
    .expect("type 3");
    vec![
        spnego::encode_init(&[spnego::NTLMSSP_OID], Some(&t1)),
        spnego::encode_resp(None, None, Some(&t3), None),
        t1,
        t2,
        t3,
    ]
}

fn mutate(
    mut data: Vec<u8>,
    edits: Vec<(prop::sample::Index, u8)>,
    cut: prop::sample::Index,
) -> Vec<u8> {
    for (at, byte) in edits {
        if data.is_empty() {
            break;
        }
        let i = at.index(data.len());
        data[i] = byte;
    }
    data.truncate(cut.index(data.len() + 1));
    data
}

const OUTLOOK_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@contoso.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn pox_parser_answers_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = pox::parse_request(&data);
    }

    #[test]
    fn pox_parser_survives_mutations_of_a_real_request(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = OUTLOOK_REQUEST.as_bytes().to_vec();
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        data.truncate(cut.index(data.len() + 1));
        let _ = pox::parse_request(&data);
    }

    #[test]
    fn pox_addresses_round_trip_through_escaping(local in "[a-zA-Z0-9.&<>'\"_-]{1,40}") {
        let escaped = local.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let body = OUTLOOK_REQUEST.replace("alice", &escaped);
        let parsed = pox::parse_request(body.as_bytes()).expect("valid request");
        prop_assert_eq!(parsed.email, Some(format!("{local}@contoso.com")));
    }

    #[test]
    fn authorization_header_parser_answers_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = auth::presented(Some(&data));
        let mut basic = b"Basic ".to_vec();
        basic.extend_from_slice(&data);
        let _ = auth::presented(Some(&basic));
    }

    #[test]
    fn basic_credentials_round_trip_and_never_panic(
        user in "[^:\\x00]{0,40}",
        password in ".{0,60}",
        junk in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        if let Some(c) = auth::parse_basic(&token) {
            prop_assert_eq!(c.password, password);
        }
        let _ = auth::parse_basic(&String::from_utf8_lossy(&junk));
        let _ = auth::parse_basic(&base64::engine::general_purpose::STANDARD.encode(&junk));
    }

    #[test]
    fn ntlm_message_decoders_answer_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = messages::parse_negotiate(&data);
        let _ = messages::parse_challenge(&data);
        let _ = messages::parse_authenticate(&data);
        let _ = messages::parse_ntlmv2_response(&data);
        let _ = messages::parse_av_pairs(&data);
        let _ = ntlm::message_type(&data);
    }

    #[test]
    fn spnego_decoder_answers_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = spnego::parse(&data);
    }

    #[test]
    fn mutated_ntlm_and_spnego_tokens_never_authenticate_or_panic(
        seed in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in any::<prop::sample::Index>(),
        negotiate in any::<bool>(),
    ) {
        let seeds = ntlm_seeds();
        let token = mutate(seeds[seed].clone(), edits, cut);
        let _ = spnego::parse(&token);
        let _ = messages::parse_authenticate(&token);
        // The connection state machine after a real Type 1, then the mutated token: without
        // the user's NT hash nothing may authenticate.
        let mut conn = ConnAuth::default();
        let scheme = if negotiate { Scheme::Negotiate } else { Scheme::Ntlm };
        let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
        let _ = conn.step(scheme, &t1, &names(), &Policy::default(), [7; 8], 0);
        if let Leg::NeedCredential { .. } = conn.step(scheme, &token, &names(), &Policy::default(), [7; 8], 0) {
            let finish = conn.finish(None, &Policy::default(), None);
            let authenticated = matches!(finish, Finish::Authenticated { .. });
            prop_assert!(!authenticated, "a mutated token authenticated without a hash");
        }
    }

    #[test]
    fn mutated_bearer_tokens_are_refused_never_accepted_or_panicked_on(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        junk in ".{0,300}",
    ) {
        use autodiscoverd::auth::bearer::{self, KeySet, TokenRules};
        let issuer = crate::harness::issuer::lab_issuer();
        let now = 1_800_000_000;
        let good = issuer
            .mint(&issuer.user_claims("https://autodiscover.contoso.com", "alice@contoso.com", None, now, 3600))
            .unwrap();
        let keys = KeySet::from_jwks(issuer.jwks().as_bytes()).unwrap();
        let key = keys.get(issuer.kid()).unwrap();
        let rules = TokenRules {
            tenant_id: issuer.tenant_id().to_string(),
            audiences: vec![],
            accept_exchange_online_audience: false,
            leeway_secs: 300,
        };
        prop_assert!(bearer::check(&good, key, &rules, "autodiscover.contoso.com", now).is_ok());
        let mutated = mutate(good.clone().into_bytes(), edits, cut);
        let mutated = String::from_utf8_lossy(&mutated).into_owned();
        let _ = bearer::key_id(&mutated);
        let _ = bearer::throttle_account(&mutated);
        if mutated != good {
            // A changed token may still decode to the same JWT (base64 padding bits), but then
            // it names the same user: nothing else may pass.
            if let Ok(user) = bearer::check(&mutated, key, &rules, "autodiscover.contoso.com", now) {
                prop_assert_eq!(user.upn.as_deref(), Some("alice@contoso.com"));
            }
        }
        let _ = bearer::key_id(&junk);
        prop_assert!(bearer::check(&junk, key, &rules, "autodiscover.contoso.com", now).is_err());
        let _ = auth::presented(Some(format!("Bearer {junk}").as_bytes()));
    }
}
