//! Property tests over the sans-IO parsers: the stable-toolchain stand-in for the cargo-fuzz
//! targets in fuzz/. Every input must produce an answer, never a panic.

use autodiscoverd::auth;
use autodiscoverd::protocol::pox;
use proptest::prelude::*;

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
}
