use std::sync::LazyLock;

use base64::Engine;
use serde_json::{json, Value};

use super::*;
use crate::lab::issuer::LabIssuer;

const TENANT: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const OTHER_TENANT: &str = "11111111-2222-4333-8444-555555555555";
const HOST: &str = "autodiscover.contoso.com";
const NOW: u64 = 1_800_000_000;
const SID: &str = "S-1-5-21-3623811015-3361044348-30300820-1013";

static ISSUER: LazyLock<LabIssuer> =
    LazyLock::new(|| LabIssuer::generate(TENANT, "key-1").unwrap());
/// Another key under the same `kid`: a forger's.
static FORGER: LazyLock<LabIssuer> =
    LazyLock::new(|| LabIssuer::generate(TENANT, "key-1").unwrap());

fn rules() -> TokenRules {
    TokenRules {
        tenant_id: TENANT.to_string(),
        audiences: vec![],
        accept_exchange_online_audience: false,
        leeway_secs: 300,
    }
}

fn keys() -> KeySet {
    KeySet::from_jwks(ISSUER.jwks().as_bytes()).unwrap()
}

fn claims() -> Value {
    ISSUER.user_claims(
        "https://autodiscover.contoso.com",
        "alice@contoso.com",
        Some(SID),
        NOW - 60,
        3600,
    )
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims
        .as_object_mut()
        .unwrap()
        .insert(name.to_string(), value);
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn verify(token: &str, rules: &TokenRules) -> Result<TokenUser, Refusal> {
    let keys = keys();
    let kid = key_id(token)?;
    let key = keys.get(&kid).ok_or(Refusal::UnknownKey(kid))?;
    check(token, key, rules, HOST, NOW)
}

fn verify_claims(claims: &Value) -> Result<TokenUser, Refusal> {
    verify(&ISSUER.mint(claims).unwrap(), &rules())
}

#[test]
fn the_challenge_is_exchanges_text_exactly() {
    assert_eq!(
        challenge(TENANT, DEFAULT_AUTHORIZATION_URI, false),
        "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\", trusted_issuers=\"00000001-0000-0000-c000-000000000000@6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\", authorization_uri=\"https://login.windows.net/common/oauth2/authorize\""
    );
    assert!(challenge(TENANT, DEFAULT_AUTHORIZATION_URI, true)
        .ends_with("authorization_uri=\"https://login.windows.net/common/oauth2/authorize\", error=\"invalid_token\""));
}

#[test]
fn a_token_of_a_synced_user_names_the_sid_and_the_upn() {
    let user = verify_claims(&claims()).unwrap();
    assert_eq!(user.onprem_sid, Sid::parse(SID));
    assert_eq!(user.upn.as_deref(), Some("alice@contoso.com"));
    assert!(user.object_id.is_some());
    // v2 tokens: the other issuer form and preferred_username.
    let v2 = with(
        without(claims(), "upn"),
        "iss",
        json!(format!("https://login.microsoftonline.com/{TENANT}/v2.0")),
    );
    let v2 = with(v2, "preferred_username", json!("alice@contoso.com"));
    assert_eq!(
        verify_claims(&v2).unwrap().upn.as_deref(),
        Some("alice@contoso.com")
    );
}

#[test]
fn audiences_are_compared_after_normalising_case_port_and_slash() {
    for aud in [
        "https://autodiscover.contoso.com",
        "HTTPS://Autodiscover.Contoso.COM",
        "https://autodiscover.contoso.com:443",
        "https://autodiscover.contoso.com/",
        "https://autodiscover.contoso.com:443/",
    ] {
        assert!(
            verify_claims(&with(claims(), "aud", json!(aud))).is_ok(),
            "{aud}"
        );
    }
    for aud in [
        "https://autodiscover.contoso.com:8443",
        "http://autodiscover.contoso.com",
        "https://mail.contoso.com",
        "https://autodiscover.contoso.com.evil.example",
        "https://autodiscover.contoso.com/EWS",
        "00000002-0000-0ff1-ce00-000000000000",
        "https://outlook.office365.com",
    ] {
        assert!(
            matches!(
                verify_claims(&with(claims(), "aud", json!(aud))),
                Err(Refusal::Audience(_))
            ),
            "{aud}"
        );
    }
    assert_eq!(
        verify_claims(&without(claims(), "aud")),
        Err(Refusal::Audience(String::new()))
    );
}

#[test]
fn configured_audiences_replace_the_request_host_and_the_exchange_online_guid_is_opt_in() {
    let mut r = rules();
    r.audiences = vec![normalize_audience("https://mail.contoso.com/")];
    let mail = ISSUER
        .mint(&with(claims(), "aud", json!("https://mail.contoso.com")))
        .unwrap();
    assert!(verify(&mail, &r).is_ok());
    assert!(matches!(
        verify(&ISSUER.mint(&claims()).unwrap(), &r),
        Err(Refusal::Audience(_))
    ));
    let guid = ISSUER
        .mint(&with(claims(), "aud", json!(EXCHANGE_CLIENT_ID)))
        .unwrap();
    assert!(matches!(verify(&guid, &r), Err(Refusal::Audience(_))));
    r.accept_exchange_online_audience = true;
    assert!(verify(&guid, &r).is_ok());
}

#[test]
fn tokens_of_another_tenant_or_issuer_are_refused() {
    for iss in [
        format!("https://sts.windows.net/{OTHER_TENANT}/"),
        format!("https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"),
        format!("https://sts.windows.net/{TENANT}"),
        format!("https://login.microsoftonline.com/{TENANT}/"),
        format!("https://evil.example/{TENANT}/"),
    ] {
        assert!(
            matches!(
                verify_claims(&with(claims(), "iss", json!(iss))),
                Err(Refusal::Issuer(_))
            ),
            "{iss}"
        );
    }
    assert!(matches!(
        verify_claims(&without(claims(), "iss")),
        Err(Refusal::Issuer(_))
    ));
}

#[test]
fn lifetimes_are_required_and_checked_with_at_most_five_minutes_of_leeway() {
    assert_eq!(
        verify_claims(&with(claims(), "exp", json!(NOW - 301))),
        Err(Refusal::Expired)
    );
    assert!(verify_claims(&with(claims(), "exp", json!(NOW - 200))).is_ok());
    assert_eq!(
        verify_claims(&with(claims(), "nbf", json!(NOW + 301))),
        Err(Refusal::NotYetValid)
    );
    assert!(verify_claims(&with(claims(), "nbf", json!(NOW + 200))).is_ok());
    assert_eq!(
        verify_claims(&without(claims(), "exp")),
        Err(Refusal::MissingLifetime)
    );
    assert_eq!(
        verify_claims(&without(claims(), "nbf")),
        Err(Refusal::MissingLifetime)
    );
    // A leeway above the bound is clamped to it.
    let mut r = rules();
    r.leeway_secs = 86_400;
    let old = ISSUER
        .mint(&with(claims(), "exp", json!(NOW - 301)))
        .unwrap();
    assert_eq!(verify(&old, &r), Err(Refusal::Expired));
}

#[test]
fn claims_of_the_wrong_type_are_refused() {
    assert_eq!(
        verify_claims(&with(claims(), "exp", json!("soon"))),
        Err(Refusal::ClaimType("exp"))
    );
    assert_eq!(
        verify_claims(&with(claims(), "nbf", json!(-5))),
        Err(Refusal::ClaimType("nbf"))
    );
    assert_eq!(
        verify_claims(&with(claims(), "aud", json!(42))),
        Err(Refusal::ClaimType("aud"))
    );
    assert_eq!(
        verify_claims(&with(claims(), "iss", json!(["x"]))),
        Err(Refusal::ClaimType("iss"))
    );
    assert_eq!(
        verify_claims(&with(claims(), "upn", json!(7))),
        Err(Refusal::ClaimType("upn"))
    );
    assert_eq!(
        verify_claims(&with(claims(), "onprem_sid", json!("S-1-5-not-a-sid"))),
        Err(Refusal::ClaimType("onprem_sid"))
    );
}

#[test]
fn application_tokens_are_refused() {
    let app = with(
        without(claims(), "scp"),
        "roles",
        json!(["full_access_as_app"]),
    );
    assert_eq!(verify_claims(&app), Err(Refusal::AppOnly));
    assert_eq!(
        verify_claims(&with(claims(), "idtyp", json!("app"))),
        Err(Refusal::AppOnly)
    );
    assert_eq!(
        verify_claims(&without(claims(), "scp")),
        Err(Refusal::AppOnly)
    );
}

#[test]
fn a_token_without_onprem_sid_falls_back_to_the_upn_and_one_without_either_is_refused() {
    let cloud = without(claims(), "onprem_sid");
    let user = verify_claims(&cloud).unwrap();
    assert_eq!(
        (user.onprem_sid, user.upn.as_deref()),
        (None, Some("alice@contoso.com"))
    );
    let nobody = without(without(cloud, "upn"), "unique_name");
    assert_eq!(verify_claims(&nobody), Err(Refusal::NoUser));
}

fn part(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[test]
fn alg_none_and_hs256_keyed_with_the_public_key_are_refused() {
    let none = format!(
        "{}.{}.",
        part(&json!({"alg": "none", "kid": "key-1"})),
        part(&claims())
    );
    assert_eq!(
        verify(&none, &rules()),
        Err(Refusal::Algorithm("none".to_string()))
    );
    // The classic confusion: HMAC keyed with the issuer's public key material.
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("key-1".to_string());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(ISSUER.jwks().as_bytes()),
    )
    .unwrap();
    assert!(matches!(verify(&hs, &rules()), Err(Refusal::Algorithm(_))));
    let key = keys();
    let rsa_key = key.get("key-1").unwrap();
    assert!(matches!(
        check(&hs, rsa_key, &rules(), HOST, NOW),
        Err(Refusal::Algorithm(_))
    ));
}

#[test]
fn forged_signatures_unknown_kids_and_garbage_are_refused() {
    let forged = FORGER.mint(&claims()).unwrap();
    assert_eq!(verify(&forged, &rules()), Err(Refusal::Signature));
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some("key-2".to_string());
    let other_kid = format!(
        "{}.{}",
        part(&serde_json::to_value(&header).unwrap()),
        forged.split_once('.').unwrap().1
    );
    assert_eq!(
        verify(&other_kid, &rules()),
        Err(Refusal::UnknownKey("key-2".to_string()))
    );
    let no_kid = format!(
        "{}.{}",
        part(&json!({"alg": "RS256"})),
        forged.split_once('.').unwrap().1
    );
    assert_eq!(verify(&no_kid, &rules()), Err(Refusal::NoKeyId));
    for garbage in ["", "abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9"] {
        assert!(verify(garbage, &rules()).is_err(), "{garbage}");
    }
    // A tampered payload under a genuine signature.
    let good = ISSUER.mint(&claims()).unwrap();
    let mut pieces: Vec<&str> = good.split('.').collect();
    let evil = part(&with(claims(), "upn", json!("admin@contoso.com")));
    pieces[1] = &evil;
    assert_eq!(verify(&pieces.join("."), &rules()), Err(Refusal::Signature));
}

#[test]
fn every_refusal_has_a_label_and_a_header_safe_diagnostic() {
    let all = [
        Refusal::Malformed,
        Refusal::Algorithm("none".into()),
        Refusal::NoKeyId,
        Refusal::UnknownKey("k\"\r\n".into()),
        Refusal::KeysUnavailable,
        Refusal::Signature,
        Refusal::Issuer("x".into()),
        Refusal::Audience("https://a\"b".into()),
        Refusal::MissingLifetime,
        Refusal::ClaimType("exp"),
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::AppOnly,
        Refusal::NoUser,
        Refusal::UnknownAccount,
    ];
    for r in &all {
        let d = r.diagnostics();
        assert!(http::HeaderValue::from_str(&d).is_ok(), "{d}");
        assert!(
            d.contains(";reason=\"") && d.contains("error_category=\""),
            "{d}"
        );
        assert!(!r.label().is_empty());
    }
    assert!(!Refusal::KeysUnavailable.counts_as_failure());
    assert!(Refusal::Signature.counts_as_failure());
}

#[test]
fn sids_convert_between_text_and_the_binary_object_sid() {
    let sid = Sid::parse(SID).unwrap();
    let bytes = sid.to_bytes();
    assert_eq!(
        bytes.get(..8).unwrap(),
        &[1, 5, 0, 0, 0, 0, 0, 5],
        "revision 1, five sub-authorities, NT authority"
    );
    assert_eq!(bytes.get(8..12).unwrap(), &21u32.to_le_bytes());
    assert_eq!(Sid::from_bytes(&bytes), Some(sid.clone()));
    assert_eq!(sid.to_string(), SID);
    assert_eq!(
        Sid::parse("s-1-5-32-544").unwrap().to_string(),
        "S-1-5-32-544"
    );
    for bad in [
        "",
        "S-1",
        "S-2-5-21",
        "X-1-5-21",
        "S-1-5-21-x",
        "S-1-281474976710656-1",
    ] {
        assert_eq!(Sid::parse(bad), None, "{bad}");
    }
    assert_eq!(Sid::from_bytes(&[1, 2, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0]), None);
}

#[test]
fn key_sets_keep_rsa_signing_keys_with_a_kid() {
    let doc = json!({"keys": [
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "RSA", "use": "sig", "kid": "good", "n": "AQAB", "e": "AQAB", "x5c": ["MII"]},
    ]});
    let set = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.get("good").is_some() && set.get("hmac").is_none() && set.get("enc").is_none());
    assert_eq!(
        KeySet::from_jwks(b"{\"keys\": []}").unwrap_err(),
        KeyError::NoKeys
    );
    assert!(matches!(
        KeySet::from_jwks(b"<html>"),
        Err(KeyError::Jwks(_))
    ));
    let meta = ISSUER.metadata("https://login.lab.example");
    assert_eq!(
        jwks_uri(meta.as_bytes()).unwrap(),
        format!("https://login.lab.example/{TENANT}/discovery/v2.0/keys")
    );
    assert!(jwks_uri(b"{\"jwks_uri\": \"http://plain.example/keys\"}").is_err());
    assert_eq!(
        metadata_url("https://login.microsoftonline.com/", TENANT),
        format!("https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration")
    );
}

#[test]
fn keys_are_fetched_again_daily_and_for_an_unknown_kid_at_most_every_five_minutes() {
    let p = RefreshPolicy::DEFAULT;
    let t = |loaded: Option<u64>, attempted: Option<u64>, forced: Option<u64>| FetchTimes {
        loaded_at: loaded.map(|s| NOW - s),
        attempted_at: attempted.map(|s| NOW - s),
        forced_at: forced.map(|s| NOW - s),
    };
    // Nothing loaded: fetch, but an issuer that is down is retried every 10 s only.
    assert!(p.fetch_due(t(None, None, None), false, NOW));
    assert!(!p.fetch_due(t(None, Some(5), None), true, NOW));
    assert!(p.fetch_due(t(None, Some(10), None), true, NOW));
    // Loaded a second ago: a known kid does not fetch; an unknown one does, once.
    assert!(!p.fetch_due(t(Some(1), Some(1), None), false, NOW));
    assert!(p.fetch_due(t(Some(1), Some(1), None), true, NOW));
    assert!(
        !p.fetch_due(t(Some(1), Some(1), Some(299)), true, NOW),
        "5 min between forced fetches"
    );
    assert!(p.fetch_due(t(Some(1), Some(1), Some(300)), true, NOW));
    // A day old: fetched again; a failed refresh is retried after 5 minutes, and the keys
    // are kept while the issuer is down, up to 7 days.
    assert!(p.fetch_due(t(Some(86_400), Some(86_400), None), false, NOW));
    assert!(!p.fetch_due(t(Some(86_400), Some(60), None), false, NOW));
    assert!(p.usable(NOW - 6 * 86_400, NOW));
    assert!(!p.usable(NOW - 7 * 86_400, NOW));
}

#[test]
fn tenant_ids_must_be_guids_and_request_audiences_drop_the_port() {
    assert_eq!(
        parse_tenant_id(&TENANT.to_uppercase()),
        Some(TENANT.to_string())
    );
    assert_eq!(parse_tenant_id("contoso.onmicrosoft.com"), None);
    assert_eq!(parse_tenant_id("6f1c2a3b4d5e4f608a7b9c0d1e2f3a4b"), None);
    assert_eq!(
        request_audience("Autodiscover.Contoso.com:8443"),
        "https://autodiscover.contoso.com"
    );
    assert_eq!(
        request_audience("[2001:db8::1]:443"),
        "https://[2001:db8::1]"
    );
}

#[test]
fn failures_count_against_the_claimed_user_without_trusting_it() {
    let forged = FORGER.mint(&claims()).unwrap();
    assert_eq!(throttle_account(&forged), "bearer:alice@contoso.com");
    let no_upn = ISSUER
        .mint(&with(without(claims(), "upn"), "oid", json!("OID-1")))
        .unwrap();
    assert_eq!(throttle_account(&no_upn), "bearer:oid-1");
    assert_eq!(throttle_account("garbage"), "bearer:");
}
