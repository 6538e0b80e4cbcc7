use base64::Engine;
use rand::{Rng, SeedableRng};

use super::*;
use crate::auth::ntlm::client::{self, ClientOptions};

const NOW: u64 = 134_116_128_000_000_000;

fn names() -> ServerNames {
    ServerNames {
        nb_domain: "CONTOSO".into(),
        nb_computer: "AUTODISCOVER".into(),
        dns_domain: "contoso.com".into(),
        dns_computer: "autodiscover.contoso.com".into(),
        dns_tree: "contoso.com".into(),
    }
}

fn unb64(header: &str, scheme: &str) -> Vec<u8> {
    let token = header.strip_prefix(scheme).unwrap().trim();
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap()
}

fn step(c: &mut ConnAuth, scheme: Scheme, token: &[u8]) -> Leg {
    c.step(scheme, token, &names(), &Policy::default(), [4; 8], NOW)
}

fn resp_token(token: &[u8], mic: Option<&[u8]>) -> Vec<u8> {
    spnego::encode_resp(None, None, Some(token), mic)
}

#[test]
fn raw_ntlm_handshake_answers_in_kind() {
    for scheme in [Scheme::Ntlm, Scheme::Negotiate] {
        let mut c = ConnAuth::default();
        let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
        let Leg::Continue(h) = step(&mut c, scheme, &t1) else {
            panic!()
        };
        let t2 = unb64(&h, scheme.name());
        assert_eq!(ntlm::message_type(&t2), Some(2));
        let (t3, _) =
            client::authenticate_message(&ClientOptions::new("alice", "CONTOSO", "pw"), &t1, &t2)
                .unwrap();
        match step(&mut c, scheme, &t3) {
            Leg::NeedCredential {
                login,
                user,
                domain,
            } => {
                assert_eq!(
                    login,
                    Some(Login::DownLevel {
                        domain: "CONTOSO".into(),
                        user: "alice".into()
                    })
                );
                assert_eq!((user.as_str(), domain.as_str()), ("alice", "CONTOSO"));
            }
            other => panic!("{other:?}"),
        }
        let fin = c.finish(Some(&crypto::nt_hash("pw")), &Policy::default(), None);
        assert_eq!(
            fin,
            Finish::Authenticated {
                user: "alice".into(),
                domain: "CONTOSO".into(),
                final_header: None,
                legacy: None
            }
        );
    }
}

/// Plays a pyspnego-like SPNEGO client: NTLM-only or Kerberos-first mech list.
fn spnego_handshake(
    kerberos_first: bool,
    tamper_mic: bool,
    send_mic: bool,
) -> (Finish, Option<[u8; 16]>, Vec<u8>) {
    let krb5 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
    let mut c = ConnAuth::default();
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let mechs: Vec<&[u8]> = if kerberos_first {
        vec![&krb5, spnego::NTLMSSP_OID]
    } else {
        vec![spnego::NTLMSSP_OID]
    };
    let init = if kerberos_first {
        spnego::encode_init(&mechs, Some(&[0x6e, 0x00]))
    } else {
        spnego::encode_init(&mechs, Some(&t1))
    };
    let mech_types_der = match spnego::parse(&init).unwrap() {
        NegToken::Init(i) => i.mech_types_der.to_vec(),
        _ => unreachable!(),
    };
    let mut leg = step(&mut c, Scheme::Negotiate, &init);
    if kerberos_first {
        let Leg::Continue(h) = &leg else {
            panic!("{leg:?}")
        };
        match spnego::parse(&unb64(h, "Negotiate")).unwrap() {
            NegToken::Resp(r) => {
                assert_eq!(r.neg_state, Some(NegState::RequestMic as u8));
                assert_eq!(r.supported_mech, Some(spnego::NTLMSSP_OID));
                assert_eq!(r.response_token, None);
            }
            other => panic!("{other:?}"),
        }
        leg = step(&mut c, Scheme::Negotiate, &resp_token(&t1, None));
    }
    let Leg::Continue(h) = leg else {
        panic!("{leg:?}")
    };
    let t2 = match spnego::parse(&unb64(&h, "Negotiate")).unwrap() {
        NegToken::Resp(r) => {
            assert_eq!(r.neg_state, Some(1));
            assert_eq!(r.supported_mech.is_some(), !kerberos_first);
            r.response_token.unwrap().to_vec()
        }
        other => panic!("{other:?}"),
    };
    let (t3, esk) =
        client::authenticate_message(&ClientOptions::new("alice@contoso.com", "", "pw"), &t1, &t2)
            .unwrap();
    let flags = ntlm::messages::parse_authenticate(&t3).unwrap().flags;
    let mut mic = crypto::signature(&esk, flags, Direction::ClientToServer, 0, &mech_types_der);
    if tamper_mic {
        mic[5] ^= 1;
    }
    let leg = step(
        &mut c,
        Scheme::Negotiate,
        &resp_token(&t3, send_mic.then_some(&mic[..])),
    );
    let Leg::NeedCredential { login, .. } = leg else {
        panic!("{leg:?}")
    };
    assert_eq!(
        login,
        Some(Login::UserPrincipalName("alice@contoso.com".into()))
    );
    let expected_server_mic =
        crypto::signature(&esk, flags, Direction::ServerToClient, 0, &mech_types_der);
    (
        c.finish(Some(&crypto::nt_hash("pw")), &Policy::default(), None),
        Some(expected_server_mic),
        mech_types_der,
    )
}

#[test]
fn spnego_handshake_verifies_and_returns_mech_list_mics() {
    let (fin, server_mic, _) = spnego_handshake(false, false, true);
    let Finish::Authenticated {
        final_header: Some(h),
        ..
    } = fin
    else {
        panic!("{fin:?}")
    };
    match spnego::parse(&unb64(&h, "Negotiate")).unwrap() {
        NegToken::Resp(r) => {
            assert_eq!(r.neg_state, Some(0));
            assert_eq!(r.mech_list_mic, Some(&server_mic.unwrap()[..]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn spnego_without_client_mic_completes_without_ours() {
    let (fin, _, _) = spnego_handshake(false, false, false);
    let Finish::Authenticated {
        final_header: Some(h),
        ..
    } = fin
    else {
        panic!("{fin:?}")
    };
    match spnego::parse(&unb64(&h, "Negotiate")).unwrap() {
        NegToken::Resp(r) => assert_eq!(r.mech_list_mic, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_client_mech_list_mic_is_refused() {
    let (fin, _, _) = spnego_handshake(false, true, true);
    assert_eq!(fin, Finish::Rejected("mech_list_mic_mismatch"));
}

#[test]
fn kerberos_first_lists_fall_back_to_ntlm_and_require_the_mic() {
    let (fin, _, _) = spnego_handshake(true, false, true);
    assert!(matches!(fin, Finish::Authenticated { .. }), "{fin:?}");
    let (fin, _, _) = spnego_handshake(true, false, false);
    assert_eq!(fin, Finish::Rejected("mech_list_mic_missing"));
}

#[test]
fn kerberos_only_tokens_and_orphan_responses_are_refused() {
    let krb5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
    let mut c = ConnAuth::default();
    assert_eq!(
        step(
            &mut c,
            Scheme::Negotiate,
            &spnego::encode_init(&[krb5], Some(&[0x6e, 0]))
        ),
        Leg::Rejected("no_ntlm_mech")
    );
    assert_eq!(
        step(&mut c, Scheme::Negotiate, &resp_token(&[1, 2], None)),
        Leg::Rejected("no_spnego_context")
    );
    // A Kerberos AP-REQ outside SPNEGO.
    assert_eq!(
        step(&mut c, Scheme::Negotiate, &[0x6e, 0x82, 0x01, 0x00]),
        Leg::Rejected("malformed")
    );
    // SPNEGO after the NTLM scheme name.
    assert_eq!(
        step(
            &mut c,
            Scheme::Ntlm,
            &spnego::encode_init(&[spnego::NTLMSSP_OID], None)
        ),
        Leg::Rejected("malformed")
    );
    // A Type 2 sent by a client.
    let mut t2 = b"NTLMSSP\0".to_vec();
    t2.extend([2, 0, 0, 0]);
    assert_eq!(step(&mut c, Scheme::Ntlm, &t2), Leg::Rejected("malformed"));
}

#[test]
fn a_new_handshake_forgets_the_connection_identity() {
    let mut c = ConnAuth::default();
    c.set_identity(Identity {
        user_principal_name: "alice@contoso.com".into(),
        addresses: vec![],
    });
    assert!(c.identity().is_some());
    let _ = step(
        &mut c,
        Scheme::Ntlm,
        &client::negotiate_message(client::DEFAULT_FLAGS),
    );
    assert!(c.identity().is_none());
}

#[test]
fn logins_follow_the_wire_user_and_domain() {
    assert_eq!(
        login_for("alice", ""),
        Some(Login::SamAccountName("alice".into()))
    );
    assert_eq!(
        login_for("alice@contoso.com", "CONTOSO"),
        Some(Login::UserPrincipalName("alice@contoso.com".into()))
    );
    assert_eq!(
        login_for("alice", "CONTOSO"),
        Some(Login::DownLevel {
            domain: "CONTOSO".into(),
            user: "alice".into()
        })
    );
    assert_eq!(login_for("", ""), None);
}

#[test]
fn random_tokens_in_any_state_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4559);
    let mut c = ConnAuth::default();
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let seeds = [
        t1.clone(),
        spnego::encode_init(&[spnego::NTLMSSP_OID], Some(&t1)),
        resp_token(&t1, Some(&[1; 16])),
    ];
    for round in 0..3000 {
        let mut t = seeds[round % seeds.len()].clone();
        for _ in 0..rng.gen_range(0..4) {
            let i = rng.gen_range(0..t.len());
            t[i] = rng.gen();
        }
        t.truncate(rng.gen_range(0..=t.len()));
        let scheme = if rng.gen_bool(0.5) {
            Scheme::Ntlm
        } else {
            Scheme::Negotiate
        };
        if let Leg::NeedCredential { .. } = step(&mut c, scheme, &t) {
            assert!(!matches!(
                c.finish(None, &Policy::default(), None),
                Finish::Authenticated { .. }
            ));
        }
    }
}
