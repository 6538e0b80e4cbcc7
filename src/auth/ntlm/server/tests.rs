use rand::{Rng, SeedableRng};

use super::*;
use crate::auth::ntlm::client::{self, ClientOptions};

use crate::auth::testing::hex;

fn names() -> ServerNames {
    ServerNames {
        nb_domain: "CONTOSO".into(),
        nb_computer: "AUTODISCOVER".into(),
        dns_domain: "contoso.com".into(),
        dns_computer: "autodiscover.contoso.com".into(),
        dns_tree: "contoso.com".into(),
    }
}

/// 2026-01-01T00:00:00Z as FILETIME.
const NOW: u64 = 134_116_128_000_000_000;
const SEC: u64 = 10_000_000;

fn challenged(type1: &[u8], challenge: [u8; 8]) -> (Acceptor, Vec<u8>) {
    let mut acc = Acceptor::new();
    match acc.negotiate(type1, &names(), challenge, NOW) {
        NtlmStep::SendChallenge(t2) => (acc, t2),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// Runs the three steps with `hash` as the directory's answer.
fn run(
    opts: &ClientOptions,
    type1_flags: u32,
    hash: Option<&[u8; 16]>,
    policy: &Policy,
    cbt: Option<&[u8; 16]>,
) -> NtlmStep {
    let t1 = client::negotiate_message(type1_flags);
    let (mut acc, t2) = challenged(&t1, [9; 8]);
    let (t3, _) = client::authenticate_message(opts, &t1, &t2).unwrap();
    match acc.authenticate(&t3, policy, NOW + SEC) {
        NtlmStep::NeedCredential { .. } => acc.credential(hash, policy, cbt),
        other => other,
    }
}

fn alice() -> ClientOptions {
    ClientOptions::new("alice", "CONTOSO", "alice-pw")
}

fn alice_hash() -> [u8; 16] {
    crypto::nt_hash("alice-pw")
}

#[test]
fn chromium_end_to_end_vector_with_mic_and_channel_bindings_verifies() {
    // MS-NLMP §4.2.4 inputs (User/Domain/Password, ServerChallenge 0123456789abcdef,
    // ClientChallenge aa×8) with the §4.2.4.3 CHALLENGE; the AUTHENTICATE is Chromium's
    // `kExpectedAuthenticateMsgSpecResponseV2` (net/ntlm/ntlm_test_data.h), rebuilt from its
    // parts: client timestamp 131400439870000000, MsvAvFlags=MIC, the MS blog CBT vector and
    // TargetName HTTP/Server. Expected NTProofStr 8c0260db…, MIC f7361633….
    let type1 = hex("4e544c4d53535000 01000000 07820800 0000000020000000 0000000020000000");
    let type2 = hex(
        "4e544c4d53535000 02000000 0c000c0038000000 33828ae2 0123456789abcdef 0000000000000000
         2400240044000000 060070170000000f 530065007200760065007200
         02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000",
    );
    let client_ts: u64 = 131_400_439_870_000_000;
    let cbt = hex("6586e99d81c2fc984e47172fd4dd0310");
    let mut av = hex("02000c0044006f006d00610069006e00 01000c00530065007200760065007200 0600040002000000 0a001000");
    av.extend(&cbt);
    av.extend(hex("09001600"));
    av.extend(crypto::utf16le("HTTP/Server"));
    av.extend(hex("00000000"));
    let mut temp = hex("0101000000000000");
    temp.extend(client_ts.to_le_bytes());
    temp.extend([0xaa; 8]);
    temp.extend([0; 4]);
    temp.extend(&av);
    temp.extend([0; 4]);
    let proof = hex("8c0260dbef690662af9c42d50782d2ed");
    let mic = hex("f7361633f0ad9bdf4a7c421bc6b824a3");
    let mut type3 = hex(
        "4e544c4d53535000 03000000 1800180058000000 8a008a0070000000 0c000c00fa000000
         0800080006010000 100010000e010000 0000000058000000 03820800 0000000000000000",
    );
    type3.extend(&mic);
    type3.extend([0u8; 24]);
    type3.extend(&proof);
    type3.extend(&temp);
    type3.extend(crypto::utf16le("Domain"));
    type3.extend(crypto::utf16le("User"));
    type3.extend(crypto::utf16le("COMPUTER"));
    assert_eq!(type3.len(), 286);

    let policy = Policy {
        timestamp_window_secs: 60,
        channel_binding: CbtPolicy::Require,
        allow_legacy: false,
    };
    let expected_cbt: [u8; 16] = cbt.clone().try_into().unwrap();
    let attempt = |t3: &[u8], cbt: &[u8; 16]| {
        let mut acc = Acceptor::Challenged(Box::new(ChallengedState(Challenged {
            type1: type1.clone(),
            type2: type2.clone(),
            server_challenge: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            issued_at: client_ts,
        })));
        match acc.authenticate(t3, &policy, client_ts) {
            NtlmStep::NeedCredential { user, domain } => {
                assert_eq!((user.as_str(), domain.as_str()), ("User", "Domain"));
                acc.credential(Some(&crypto::nt_hash("Password")), &policy, Some(cbt))
            }
            other => other,
        }
    };
    match attempt(&type3, &expected_cbt) {
        NtlmStep::Authenticated(a) => {
            assert_eq!(a.user, "User");
            assert_eq!(a.target_name.as_deref(), Some("HTTP/Server"));
            // No KEY_EXCH: the exported key is the SessionBaseKey from the same vector set.
            assert_eq!(
                a.exported_session_key.to_vec(),
                hex("623dbd071be7a530b6a95c2eb4982470")
            );
        }
        other => panic!("golden vector rejected: {other:?}"),
    }
    let mut bad_mic = type3.clone();
    bad_mic[72] ^= 1;
    assert_eq!(
        attempt(&bad_mic, &expected_cbt),
        NtlmStep::Rejected(Reject::MicMismatch)
    );
    let mut bad_proof = type3.clone();
    bad_proof[112] ^= 1;
    assert_eq!(
        attempt(&bad_proof, &expected_cbt),
        NtlmStep::Rejected(Reject::BadCredentials)
    );
    assert_eq!(
        attempt(&type3, &[7; 16]),
        NtlmStep::Rejected(Reject::ChannelBindingMismatch)
    );
}

#[test]
fn challenge_answers_unicode_clients_in_unicode_and_curl_in_oem() {
    let (_, t2) = challenged(&client::negotiate_message(client::DEFAULT_FLAGS), [1; 8]);
    let c = messages::parse_challenge(&t2).unwrap();
    assert_eq!(c.flags & NEGOTIATE_UNICODE, NEGOTIATE_UNICODE);
    assert_ne!(c.flags & NEGOTIATE_KEY_EXCH, 0);
    assert_ne!(c.flags & NEGOTIATE_TARGET_INFO, 0);
    assert_eq!(&t2[56..70], &crypto::utf16le("CONTOSO")[..]);
    let pairs = messages::parse_av_pairs(c.target_info).unwrap();
    assert!(pairs.contains(&(av::TIMESTAMP, &NOW.to_le_bytes()[..])));
    // curl: 0x00088206, no UNICODE → OEM, target name in ASCII.
    let (_, t2) = challenged(&client::negotiate_message(0x0008_8206), [1; 8]);
    let c = messages::parse_challenge(&t2).unwrap();
    assert_eq!(c.flags & (NEGOTIATE_UNICODE | NEGOTIATE_OEM), NEGOTIATE_OEM);
    assert_eq!(c.flags & NEGOTIATE_LM_KEY, 0);
    assert_eq!(&t2[56..63], b"CONTOSO");
}

#[test]
fn right_password_authenticates_with_and_without_mic_unicode_and_oem() {
    let policy = Policy::default();
    for (flags, mic) in [
        (client::DEFAULT_FLAGS, true),
        (0x0008_8206, false),
        (0x0008_8207, true),
    ] {
        let mut opts = alice();
        opts.mic = mic;
        match run(&opts, flags, Some(&alice_hash()), &policy, None) {
            NtlmStep::Authenticated(a) => {
                assert_eq!(a.user, "alice");
                assert_eq!(a.domain, "CONTOSO");
                assert_eq!(a.workstation, "WORKSTATION");
            }
            other => panic!("flags {flags:#x}: {other:?}"),
        }
    }
}

#[test]
fn key_exchange_recovers_the_clients_session_key() {
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let (mut acc, t2) = challenged(&t1, [3; 8]);
    let mut opts = alice();
    opts.random_session_key = [0x42; 16];
    let (t3, exported) = client::authenticate_message(&opts, &t1, &t2).unwrap();
    assert_eq!(exported, [0x42; 16]);
    let policy = Policy::default();
    assert!(matches!(
        acc.authenticate(&t3, &policy, NOW),
        NtlmStep::NeedCredential { .. }
    ));
    match acc.credential(Some(&alice_hash()), &policy, None) {
        NtlmStep::Authenticated(a) => assert_eq!(a.exported_session_key, [0x42; 16]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_password_and_unknown_user_are_the_same_rejection() {
    let policy = Policy::default();
    let wrong = crypto::nt_hash("not-the-password");
    assert_eq!(
        run(&alice(), client::DEFAULT_FLAGS, Some(&wrong), &policy, None),
        NtlmStep::Rejected(Reject::BadCredentials)
    );
    assert_eq!(
        run(&alice(), client::DEFAULT_FLAGS, None, &policy, None),
        NtlmStep::Rejected(Reject::BadCredentials)
    );
    // Even a client that "knows" the all-zero dummy key is refused when the user is unknown.
    let mut zero = alice();
    zero.nt_hash = [0; 16];
    assert_eq!(
        run(&zero, client::DEFAULT_FLAGS, None, &policy, None),
        NtlmStep::Rejected(Reject::BadCredentials)
    );
}

#[test]
fn domain_is_tried_as_sent_upper_cased_and_empty() {
    let policy = Policy::default();
    for domain in ["contoso", "CONTOSO", "", "contoso.com"] {
        let opts = ClientOptions::new("Alice", domain, "alice-pw");
        assert!(
            matches!(
                run(
                    &opts,
                    client::DEFAULT_FLAGS,
                    Some(&alice_hash()),
                    &policy,
                    None
                ),
                NtlmStep::Authenticated(_)
            ),
            "domain {domain:?}"
        );
    }
    // UPN with an empty domain (requests-ntlm with alice@contoso.com).
    let upn = ClientOptions::new("alice@contoso.com", "", "alice-pw");
    match run(
        &upn,
        client::DEFAULT_FLAGS,
        Some(&alice_hash()),
        &policy,
        None,
    ) {
        NtlmStep::Authenticated(a) => assert_eq!(a.user, "alice@contoso.com"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_challenge_is_used_once() {
    let policy = Policy::default();
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let (mut acc, t2) = challenged(&t1, [5; 8]);
    let (t3, _) = client::authenticate_message(&alice(), &t1, &t2).unwrap();
    assert!(matches!(
        acc.authenticate(&t3, &policy, NOW),
        NtlmStep::NeedCredential { .. }
    ));
    assert!(matches!(
        acc.credential(Some(&alice_hash()), &policy, None),
        NtlmStep::Authenticated(_)
    ));
    // Replay on the same acceptor: nothing outstanding.
    assert_eq!(
        acc.authenticate(&t3, &policy, NOW),
        NtlmStep::Rejected(Reject::NoChallenge)
    );
    // Replay against a fresh challenge: the proof no longer matches.
    let _ = acc.negotiate(&t1, &names(), [6; 8], NOW);
    assert!(matches!(
        acc.authenticate(&t3, &policy, NOW),
        NtlmStep::NeedCredential { .. }
    ));
    assert_eq!(
        acc.credential(Some(&alice_hash()), &policy, None),
        NtlmStep::Rejected(Reject::BadCredentials)
    );
    // A failed Type 3 consumes the challenge too.
    let (mut acc, _) = challenged(&t1, [7; 8]);
    assert!(matches!(
        acc.authenticate(b"garbage", &policy, NOW),
        NtlmStep::Rejected(Reject::Malformed(_))
    ));
    assert_eq!(
        acc.authenticate(&t3, &policy, NOW),
        NtlmStep::Rejected(Reject::NoChallenge)
    );
    // Credential without a decoded Type 3.
    assert_eq!(
        Acceptor::new().credential(Some(&alice_hash()), &policy, None),
        NtlmStep::Rejected(Reject::OutOfSequence)
    );
}

#[test]
fn an_old_challenge_expires() {
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let (mut acc, t2) = challenged(&t1, [5; 8]);
    let (t3, _) = client::authenticate_message(&alice(), &t1, &t2).unwrap();
    let late = NOW + (CHALLENGE_LIFETIME_SECS + 1) * SEC;
    assert_eq!(
        acc.authenticate(&t3, &Policy::default(), late),
        NtlmStep::Rejected(Reject::Expired)
    );
}

#[test]
fn timestamps_outside_the_window_are_refused() {
    let policy = Policy {
        timestamp_window_secs: 300,
        ..Policy::default()
    };
    let mut opts = alice();
    opts.timestamp = Some(NOW - 301 * SEC);
    assert_eq!(
        run(
            &opts,
            client::DEFAULT_FLAGS,
            Some(&alice_hash()),
            &policy,
            None
        ),
        NtlmStep::Rejected(Reject::TimestampOutOfWindow)
    );
    opts.timestamp = Some(NOW + 200 * SEC);
    assert!(matches!(
        run(
            &opts,
            client::DEFAULT_FLAGS,
            Some(&alice_hash()),
            &policy,
            None
        ),
        NtlmStep::Authenticated(_)
    ));
}

#[test]
fn anonymous_ntlmv1_and_lm_only_responses_are_refused() {
    let policy = Policy::default();
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let cases = [
        // Anonymous: empty user, NT and LM = Z(1).
        (
            [vec![0u8], vec![], vec![], vec![], vec![], vec![]],
            Reject::Anonymous,
        ),
        // NTLMv1: a 24-byte NT response.
        (
            [
                vec![0u8; 24],
                vec![0x11; 24],
                vec![],
                b"alice".to_vec(),
                vec![],
                vec![],
            ],
            Reject::NtlmV1Refused,
        ),
        // LMv2 only.
        (
            [
                vec![0x11; 24],
                vec![],
                vec![],
                b"alice".to_vec(),
                vec![],
                vec![],
            ],
            Reject::NtlmV1Refused,
        ),
    ];
    for (payloads, reason) in cases {
        let (mut acc, _) = challenged(&t1, [1; 8]);
        let t3 = client::build_authenticate(&payloads, 0x0008_8206);
        assert_eq!(
            acc.authenticate(&t3, &policy, NOW),
            NtlmStep::Rejected(reason)
        );
    }
}

/// A Type 3 (OEM strings) with these LM/NT responses, user and domain, after a CHALLENGE
/// with the MS-NLMP §4.2.1 ServerChallenge 0123456789abcdef.
fn legacy_attempt(lm: &[u8], nt: &[u8], user: &str, flags: u32, policy: &Policy) -> NtlmStep {
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let (mut acc, _) = challenged(&t1, [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    let t3 = client::build_authenticate(
        &[
            lm.to_vec(),
            nt.to_vec(),
            b"Domain".to_vec(),
            user.as_bytes().to_vec(),
            b"COMPUTER".to_vec(),
            vec![],
        ],
        flags,
    );
    match acc.authenticate(&t3, policy, NOW) {
        NtlmStep::NeedCredential { user, .. } if user.is_empty() => {
            acc.credential(None, policy, None)
        }
        NtlmStep::NeedCredential { .. } => {
            acc.credential(Some(&crypto::nt_hash("Password")), policy, None)
        }
        other => other,
    }
}

#[test]
fn with_allow_legacy_ntlmv1_from_ms_nlmp_4_2_2_and_4_2_3_authenticates() {
    let legacy = Policy {
        allow_legacy: true,
        ..Policy::default()
    };
    // MS-NLMP §4.2.2.2.1 NTLMv1 response (no ESS: flags without 0x00080000).
    let v1 = hex("67c43011f30298a2ad35ece64f16331c44bdbed927841f94");
    // MS-NLMP §4.2.3.2.2 NTLMv1 response with ESS; §4.2.3.2.1 LM = ClientChallenge ‖ Z(16).
    let v1_ess = hex("7537f803ae367128ca458204bde7caf81e97ed2683267232");
    let mut ess_lm = vec![0xaa; 8];
    ess_lm.extend([0; 16]);
    let (plain, ess) = (0x0000_8206, 0x0008_8206);
    match legacy_attempt(&[0; 24], &v1, "User", plain, &legacy) {
        NtlmStep::Authenticated(a) => {
            assert_eq!(a.legacy, Some(Legacy::NtlmV1));
            assert_eq!((a.user.as_str(), a.domain.as_str()), ("User", "Domain"));
            // §4.2.2.1.3: no KEY_EXCH, so the exported key is SessionBaseKey = MD4(NT).
            assert_eq!(
                a.exported_session_key.to_vec(),
                hex("d87262b0cde4b1cb7499becccdf10784")
            );
        }
        other => panic!("NTLMv1 spec vector rejected: {other:?}"),
    }
    match legacy_attempt(&ess_lm, &v1_ess, "User", ess, &legacy) {
        NtlmStep::Authenticated(a) => {
            assert_eq!(a.legacy, Some(Legacy::NtlmV1Ess));
            // §4.2.3.1.2 KeyExchangeKey.
            assert_eq!(
                a.exported_session_key.to_vec(),
                hex("eb93429a8bd952f8b89c55b87f475edc")
            );
        }
        other => panic!("NTLMv1+ESS spec vector rejected: {other:?}"),
    }
    // Swapped kinds, a flipped byte: bad credentials.
    let mut flipped = v1.clone();
    flipped[23] ^= 1;
    for (lm, nt, flags) in [
        (&ess_lm, &v1, ess),
        (&vec![0; 24], &v1_ess, plain),
        (&vec![0; 24], &flipped, plain),
    ] {
        assert_eq!(
            legacy_attempt(lm, nt, "User", flags, &legacy),
            NtlmStep::Rejected(Reject::BadCredentials)
        );
    }
    // The default policy refuses both before any lookup.
    assert_eq!(
        legacy_attempt(&[0; 24], &v1, "User", plain, &Policy::default()),
        NtlmStep::Rejected(Reject::NtlmV1Refused)
    );
    assert_eq!(
        legacy_attempt(&ess_lm, &v1_ess, "User", ess, &Policy::default()),
        NtlmStep::Rejected(Reject::NtlmV1Refused)
    );
}

#[test]
fn with_allow_legacy_an_unknown_user_still_fails_ntlmv1() {
    let legacy = Policy {
        allow_legacy: true,
        ..Policy::default()
    };
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let (mut acc, _) = challenged(&t1, [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    let v1 = hex("67c43011f30298a2ad35ece64f16331c44bdbed927841f94");
    let t3 = client::build_authenticate(
        &[vec![], v1, vec![], b"User".to_vec(), vec![], vec![]],
        0x0000_8206,
    );
    assert!(matches!(
        acc.authenticate(&t3, &legacy, NOW),
        NtlmStep::NeedCredential { .. }
    ));
    assert_eq!(
        acc.credential(None, &legacy, None),
        NtlmStep::Rejected(Reject::BadCredentials)
    );
}

#[test]
fn with_allow_legacy_anonymous_authenticates_without_a_user_and_lm_only_stays_refused() {
    let legacy = Policy {
        allow_legacy: true,
        ..Policy::default()
    };
    for (lm, user, flags) in [
        (vec![], "", 0x0008_8206),
        (vec![0u8], "", 0x0008_8206),
        // The ANONYMOUS flag makes any message anonymous, whatever name it carries.
        (vec![], "User", 0x0008_8206 | ANONYMOUS),
    ] {
        match legacy_attempt(&lm, &[], user, flags, &legacy) {
            NtlmStep::Authenticated(a) => {
                assert_eq!(a.legacy, Some(Legacy::Anonymous));
                assert_eq!(a.user, "");
            }
            other => panic!("anonymous refused: {other:?}"),
        }
        assert_eq!(
            legacy_attempt(&lm, &[], user, flags, &Policy::default()),
            NtlmStep::Rejected(Reject::Anonymous)
        );
    }
    // LM or LMv2 only (no NT response): refused even for legacy labs.
    for user in ["User", ""] {
        assert_eq!(
            legacy_attempt(&[0x11; 24], &[], user, 0x0008_8206, &legacy),
            NtlmStep::Rejected(Reject::NtlmV1Refused)
        );
    }
    // NTLMv2 is unaffected by the switch.
    let step = run(
        &alice(),
        client::DEFAULT_FLAGS,
        Some(&alice_hash()),
        &legacy,
        None,
    );
    match step {
        NtlmStep::Authenticated(a) => assert_eq!(a.legacy, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_mic_flag_without_room_for_the_mic_is_refused() {
    // Payload starting at 72 (no MIC field) while MsvAvFlags says MIC present.
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let (mut acc, t2) = challenged(&t1, [2; 8]);
    let (t3, _) = client::authenticate_message(&alice(), &t1, &t2).unwrap();
    let parsed = messages::parse_authenticate(&t3).unwrap();
    let payloads = [
        parsed.lm_response.to_vec(),
        parsed.nt_response.to_vec(),
        crypto::utf16le("CONTOSO"),
        crypto::utf16le("alice"),
        vec![],
        parsed.encrypted_session_key.to_vec(),
    ];
    let mut msg = client::build_authenticate(&payloads, parsed.flags);
    msg.drain(72..88);
    // Shift every offset back by 16.
    for field in 0..6 {
        let at = 12 + field * 8 + 4;
        let off = u32::from_le_bytes(msg[at..at + 4].try_into().unwrap()) - 16;
        msg[at..at + 4].copy_from_slice(&off.to_le_bytes());
    }
    assert_eq!(
        acc.authenticate(&msg, &Policy::default(), NOW),
        NtlmStep::Rejected(Reject::MicMissing)
    );
}

#[test]
fn channel_binding_policy_is_applied() {
    let ours = [0x33u8; 16];
    let accept = Policy::default();
    let require = Policy {
        channel_binding: CbtPolicy::Require,
        ..Policy::default()
    };
    let off = Policy {
        channel_binding: CbtPolicy::Off,
        ..Policy::default()
    };
    let mut with = alice();
    with.channel_bindings = Some(ours);
    let mut wrong = alice();
    wrong.channel_bindings = Some([0x44; 16]);
    let mut zero = alice();
    zero.channel_bindings = Some([0; 16]);
    let h = alice_hash();
    let f = client::DEFAULT_FLAGS;
    let ok = |s: NtlmStep| matches!(s, NtlmStep::Authenticated(_));
    assert!(ok(run(&with, f, Some(&h), &accept, Some(&ours))));
    assert!(ok(run(&alice(), f, Some(&h), &accept, Some(&ours))));
    assert!(ok(run(&zero, f, Some(&h), &accept, Some(&ours))));
    assert_eq!(
        run(&wrong, f, Some(&h), &accept, Some(&ours)),
        NtlmStep::Rejected(Reject::ChannelBindingMismatch)
    );
    assert_eq!(
        run(&with, f, Some(&h), &accept, None),
        NtlmStep::Rejected(Reject::ChannelBindingMismatch)
    );
    assert_eq!(
        run(&alice(), f, Some(&h), &require, Some(&ours)),
        NtlmStep::Rejected(Reject::ChannelBindingMissing)
    );
    assert!(ok(run(&with, f, Some(&h), &require, Some(&ours))));
    assert!(ok(run(&wrong, f, Some(&h), &off, Some(&ours))));
}

#[test]
fn random_and_mutated_messages_never_panic_and_never_authenticate() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x4e54_4c4d);
    let policy = Policy::default();
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let (_, t2) = challenged(&t1, [8; 8]);
    let (good, _) = client::authenticate_message(&alice(), &t1, &t2).unwrap();
    let h = alice_hash();
    for round in 0..4000 {
        let mut blob = if round % 4 == 0 {
            let len = rng.gen_range(0..300);
            let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if rng.gen_bool(0.5) && b.len() >= 12 {
                b[..8].copy_from_slice(SIGNATURE_BYTES);
                b[8] = rng.gen_range(1..4);
            }
            b
        } else {
            let mut b = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..b.len());
                b[i] ^= rng.gen_range(1..=255u8);
            }
            if rng.gen_bool(0.1) {
                b.truncate(rng.gen_range(0..b.len()));
            }
            b
        };
        if rng.gen_bool(0.05) {
            blob.extend(std::iter::repeat_n(0u8, rng.gen_range(0..10_000)));
        }
        // As a Type 1.
        let mut acc = Acceptor::new();
        let _ = acc.negotiate(&blob, &names(), [8; 8], NOW);
        // As a Type 3 against the real challenge.
        let mut acc = Acceptor::Challenged(Box::new(ChallengedState(Challenged {
            type1: t1.clone(),
            type2: t2.clone(),
            server_challenge: [8; 8],
            issued_at: NOW,
        })));
        let step = match acc.authenticate(&blob, &policy, NOW) {
            NtlmStep::NeedCredential { .. } => acc.credential(Some(&h), &policy, None),
            other => other,
        };
        if blob != good {
            assert!(
                !matches!(step, NtlmStep::Authenticated(_)),
                "mutated Type 3 accepted: {blob:02x?}"
            );
        }
    }
}

const SIGNATURE_BYTES: &[u8] = b"NTLMSSP\0";

/// What a domain controller computes for a right NTLMv2 response (MS-NLMP §3.3.2): the
/// session base key from the user's NT hash and the response's proof.
fn domain_session_key(check: &DomainCheck, nt_hash: &[u8; 16]) -> [u8; 16] {
    let response_key = crypto::ntowfv2(nt_hash, &check.user, &check.domain);
    let proof: [u8; 16] = check.nt_response[..16].try_into().unwrap();
    crypto::session_base_key(&response_key, &proof)
}

#[test]
fn the_domains_verdict_finishes_the_handshake_with_mic_and_binding_checked_here() {
    let policy = Policy::default();
    let cbt = [7u8; 16];
    let mut opts = alice();
    opts.channel_bindings = Some(cbt);
    opts.random_session_key = [0x42; 16];
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let start = |opts: &ClientOptions| {
        let (mut acc, t2) = challenged(&t1, [5; 8]);
        let (t3, _) = client::authenticate_message(opts, &t1, &t2).unwrap();
        assert!(matches!(
            acc.authenticate(&t3, &policy, NOW),
            NtlmStep::NeedCredential { .. }
        ));
        acc
    };
    // What goes to the domain: our challenge, the whole NT response, the names as sent.
    let mut acc = start(&opts);
    let check = acc.domain_check().unwrap();
    assert_eq!(check.server_challenge, [5; 8]);
    assert_eq!(
        (check.user.as_str(), check.domain.as_str()),
        ("alice", "CONTOSO")
    );
    assert!(check.nt_response.len() > 24);
    let key = domain_session_key(&check, &alice_hash());
    match acc.domain_verdict(Some(&key), &policy, Some(&cbt)) {
        NtlmStep::Authenticated(a) => {
            assert_eq!(a.exported_session_key, [0x42; 16]);
            assert_eq!(a.user, "alice");
        }
        other => panic!("{other:?}"),
    }
    // The domain refused: the same rejection as a wrong password.
    let mut acc = start(&opts);
    assert_eq!(
        acc.domain_verdict(None, &policy, Some(&cbt)),
        NtlmStep::Rejected(Reject::BadCredentials)
    );
    // A wrong key (a helper answering for another response) fails the MIC.
    let mut acc = start(&opts);
    assert_eq!(
        acc.domain_verdict(Some(&[0x11; 16]), &policy, Some(&cbt)),
        NtlmStep::Rejected(Reject::MicMismatch)
    );
    // The channel binding is still ours to check.
    let mut acc = start(&opts);
    let key = domain_session_key(&acc.domain_check().unwrap(), &alice_hash());
    assert_eq!(
        acc.domain_verdict(Some(&key), &policy, Some(&[8u8; 16])),
        NtlmStep::Rejected(Reject::ChannelBindingMismatch)
    );
    // Used once: no second verdict, and nothing to check before an AUTHENTICATE.
    assert_eq!(acc.domain_check(), None);
    assert_eq!(
        acc.domain_verdict(Some(&key), &policy, None),
        NtlmStep::Rejected(Reject::OutOfSequence)
    );
}

#[test]
fn legacy_responses_are_not_sent_to_the_domain() {
    let policy = Policy {
        allow_legacy: true,
        ..Policy::default()
    };
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let (mut acc, _) = challenged(&t1, [1; 8]);
    let t3 = client::build_authenticate(
        &[
            vec![0u8; 24],
            vec![0x11; 24],
            b"Domain".to_vec(),
            b"alice".to_vec(),
            b"COMPUTER".to_vec(),
            vec![],
        ],
        0x0000_8206, // NTLMv1 without ESS (MS-NLMP §4.2.2)
    );
    assert!(matches!(
        acc.authenticate(&t3, &policy, NOW),
        NtlmStep::NeedCredential { .. }
    ));
    assert_eq!(acc.domain_check(), None);
    assert_eq!(
        acc.domain_verdict(Some(&[1; 16]), &policy, None),
        NtlmStep::Rejected(Reject::NtlmV1Refused)
    );
}
