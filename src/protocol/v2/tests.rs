use super::*;

fn urls() -> V2Urls {
    V2Urls {
        autodiscover_v1: "https://autodiscover.contoso.com/autodiscover/autodiscover.xml".into(),
        ews: "https://mail.contoso.com/EWS/Exchange.asmx".into(),
        activesync: Some("https://mail.contoso.com/Microsoft-Server-ActiveSync".into()),
        rest: "https://mail.contoso.com/api".into(),
    }
}

fn policy<'a>(urls: &'a V2Urls, domains: &'a [String], reveal: bool) -> V2Policy<'a> {
    V2Policy {
        urls,
        tenant_url: "https://autodiscover-s.outlook.com",
        accepted_domains: domains,
        reveal_unknown_users: reveal,
        max_redirect_count: 10,
    }
}

fn contoso() -> Vec<String> {
    vec!["contoso.com".to_string()]
}

fn body(answer: &V2Answer) -> (u16, serde_json::Value) {
    match answer {
        V2Answer::Json { status, body } => (*status, serde_json::from_slice(body).unwrap()),
        V2Answer::Redirect(l) => panic!("unexpected redirect to {l}"),
    }
}

#[test]
fn path_form_is_parsed_and_percent_decoded() {
    let r = parse_request(
        "/autodiscover/autodiscover.json/v1.0/alice%40contoso.com",
        Some("Protocol=Ews"),
    )
    .unwrap();
    assert_eq!(r.email, "alice@contoso.com");
    assert_eq!(r.protocol, V2Protocol::Ews);
    assert_eq!(r.protocol_as_sent, "Ews");
    assert_eq!(r.redirect_count, 0);
}

#[test]
fn query_form_is_parsed_with_case_insensitive_names() {
    let r = parse_request(
        "/AutoDiscover/AutoDiscover.json",
        Some("email=alice%40contoso.com&PROTOCOL=autodiscoverv1&redirectcount=3"),
    )
    .unwrap();
    assert_eq!(r.email, "alice@contoso.com");
    assert_eq!(r.protocol, V2Protocol::AutodiscoverV1);
    assert_eq!(r.protocol_as_sent, "autodiscoverv1");
    assert_eq!(r.redirect_count, 3);
    let r = parse_request(
        "/autodiscover/autodiscover.json/V1.0/bob@contoso.com",
        Some("Protocol=ACTIVESYNC&RedirectCount=1"),
    )
    .unwrap();
    assert_eq!(r.email, "bob@contoso.com");
    assert_eq!(r.protocol, V2Protocol::ActiveSync);
    assert_eq!(r.redirect_count, 1);
}

#[test]
fn first_of_repeated_parameters_wins_and_plus_is_a_space_in_queries() {
    let r = parse_request(
        PATH,
        Some("Email=a%2Bb%40contoso.com&Email=x@contoso.com&Protocol=Rest&Protocol=Ews"),
    )
    .unwrap();
    assert_eq!(r.email, "a+b@contoso.com");
    assert_eq!(r.protocol, V2Protocol::Rest);
}

#[test]
fn missing_or_unknown_protocol_is_invalid_protocol() {
    assert_eq!(
        parse_request(PATH, Some("Email=a@contoso.com")),
        Err(V2Reject::InvalidProtocol(String::new()))
    );
    assert_eq!(
        parse_request(PATH, Some("Email=a@contoso.com&Protocol=Substrate")),
        Err(V2Reject::InvalidProtocol("Substrate".into()))
    );
    let (status, json) = body(&reject(&V2Reject::InvalidProtocol("X<y".into()), &urls()));
    assert_eq!(status, 400);
    assert_eq!(json["ErrorCode"], "InvalidProtocol");
    assert_eq!(
        json["ErrorMessage"],
        "The given protocol value 'X<y' is invalid. Supported values are 'AutodiscoverV1,Ews,ActiveSync,Rest'"
    );
}

#[test]
fn bad_addresses_counts_and_paths_are_rejected() {
    for (path, query, expected) in [
        (PATH, "Protocol=Ews", V2Reject::InvalidAddress),
        (PATH, "Protocol=Ews&Email=nobody", V2Reject::InvalidAddress),
        (
            PATH,
            "Protocol=Ews&Email=%40contoso.com",
            V2Reject::InvalidAddress,
        ),
        (
            PATH,
            "Protocol=Ews&Email=a%20b@contoso.com",
            V2Reject::InvalidAddress,
        ),
        (
            PATH,
            "Protocol=Ews&Email=a%ZZ@contoso.com",
            V2Reject::InvalidAddress,
        ),
        (
            PATH,
            "Protocol=Ews&Email=a%FF@contoso.com",
            V2Reject::InvalidAddress,
        ),
        (
            PATH,
            "Protocol=Ews&Email=a@contoso.com&RedirectCount=-1",
            V2Reject::InvalidRedirectCount,
        ),
        (
            PATH,
            "Protocol=Ews&Email=a@contoso.com&RedirectCount=many",
            V2Reject::InvalidRedirectCount,
        ),
        (
            "/autodiscover/autodiscover.json/v2.0/a@contoso.com",
            "Protocol=Ews",
            V2Reject::NotFound,
        ),
        (
            "/autodiscover/autodiscover.json/v1.0/a@contoso.com/x",
            "Protocol=Ews",
            V2Reject::NotFound,
        ),
        (
            "/autodiscover/autodiscover.xml",
            "Protocol=Ews",
            V2Reject::NotFound,
        ),
    ] {
        assert_eq!(
            parse_request(path, Some(query)),
            Err(expected.clone()),
            "{path}?{query}"
        );
    }
}

#[test]
fn local_mailbox_gets_the_url_with_the_protocol_echoed_as_sent() {
    let u = urls();
    let d = contoso();
    let p = policy(&u, &d, false);
    for (sent, url) in [
        ("autodiscoverV1", &u.autodiscover_v1),
        ("EWS", &u.ews),
        ("activesync", u.activesync.as_ref().unwrap()),
        ("Rest", &u.rest),
    ] {
        let req =
            parse_request(PATH, Some(&format!("Email=a@contoso.com&Protocol={sent}"))).unwrap();
        assert_eq!(precheck(&req, &p), None);
        let a = answer(&req, &Found::Local, &p);
        let V2Answer::Json { status, body } = &a else {
            panic!("{a:?}")
        };
        assert_eq!(*status, 200);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            format!("{{\"Protocol\":\"{sent}\",\"Url\":\"{url}\"}}")
        );
    }
}

#[test]
fn migrated_mailbox_is_redirected_to_the_tenant_with_the_count_incremented() {
    let u = urls();
    let d = contoso();
    let p = policy(&u, &d, false);
    let req = parse_request(
        "/autodiscover/autodiscover.json/v1.0/bob@contoso.com",
        Some("Protocol=ews&RedirectCount=2"),
    )
    .unwrap();
    assert_eq!(
        answer(&req, &Found::Migrated("bob@contoso.mail.onmicrosoft.com".into()), &p),
        V2Answer::Redirect(
            "https://autodiscover-s.outlook.com/autodiscover/autodiscover.json?Email=bob%40contoso.mail.onmicrosoft.com&Protocol=ews&RedirectCount=3".into()
        )
    );
}

#[test]
fn redirect_count_cap_applies_before_lookup_and_to_the_next_hop() {
    let u = urls();
    let d = contoso();
    let p = policy(&u, &d, false);
    let over = parse_request(
        PATH,
        Some("Email=a@contoso.com&Protocol=Ews&RedirectCount=11"),
    )
    .unwrap();
    let (status, json) = body(&precheck(&over, &p).unwrap());
    assert_eq!(
        (status, json["ErrorCode"].as_str()),
        (400, Some("TooManyRedirects"))
    );
    let at = parse_request(
        PATH,
        Some("Email=a@contoso.com&Protocol=Ews&RedirectCount=10"),
    )
    .unwrap();
    assert_eq!(precheck(&at, &p), None);
    let (status, _) = body(&answer(&at, &Found::Migrated("a@t.example".into()), &p));
    assert_eq!(status, 400);
    let (status, _) = body(&answer(&at, &Found::Local, &p));
    assert_eq!(status, 200);
}

#[test]
fn unknown_address_is_indistinguishable_from_a_local_mailbox_by_default() {
    let u = urls();
    let d = contoso();
    let hidden = policy(&u, &d, false);
    let req = parse_request(PATH, Some("Email=nobody@contoso.com&Protocol=Ews")).unwrap();
    assert_eq!(
        answer(&req, &Found::NotServed, &hidden),
        answer(&req, &Found::Local, &hidden)
    );
    let revealed = policy(&u, &d, true);
    let (status, json) = body(&answer(&req, &Found::NotServed, &revealed));
    assert_eq!(
        (status, json["ErrorCode"].as_str()),
        (404, Some("InvalidUser"))
    );
}

#[test]
fn an_internet_mail_mailbox_is_served_only_by_autodiscover_v1_when_revealing() {
    let u = urls();
    let d = contoso();
    let ews = parse_request(PATH, Some("Email=ida@contoso.com&Protocol=Ews")).unwrap();
    let v1 = parse_request(PATH, Some("Email=ida@contoso.com&Protocol=AutodiscoverV1")).unwrap();
    let hidden = policy(&u, &d, false);
    for req in [&ews, &v1] {
        assert_eq!(
            answer(req, &Found::InternetMail, &hidden),
            answer(req, &Found::Local, &hidden)
        );
    }
    let revealed = policy(&u, &d, true);
    assert_eq!(
        answer(&v1, &Found::InternetMail, &revealed),
        answer(&v1, &Found::Local, &revealed)
    );
    let (status, json) = body(&answer(&ews, &Found::InternetMail, &revealed));
    assert_eq!(
        (status, json["ErrorCode"].as_str()),
        (404, Some("InvalidUser"))
    );
}

#[test]
fn foreign_domains_and_protocols_not_offered_are_refused_before_lookup() {
    let mut u = urls();
    let d = contoso();
    u.activesync = None;
    let p = policy(&u, &d, false);
    let req = parse_request(PATH, Some("Email=a@fabrikam.com&Protocol=Ews")).unwrap();
    let (status, json) = body(&precheck(&req, &p).unwrap());
    assert_eq!(
        (status, json["ErrorCode"].as_str()),
        (400, Some("InvalidDomain"))
    );
    let req = parse_request(PATH, Some("Email=a@CONTOSO.com&Protocol=ActiveSync")).unwrap();
    let (status, json) = body(&precheck(&req, &p).unwrap());
    assert_eq!(status, 400);
    assert_eq!(json["ErrorCode"], "InvalidProtocol");
    assert!(json["ErrorMessage"]
        .as_str()
        .unwrap()
        .ends_with("Supported values are 'AutodiscoverV1,Ews,Rest'"));
}

#[test]
fn percent_encoding_round_trips() {
    let s = "a+b c/ü@x.example";
    assert_eq!(
        percent_decode(&percent_encode(s), false).as_deref(),
        Some(s)
    );
    assert_eq!(percent_encode("bob@contoso.com"), "bob%40contoso.com");
}

mod properties {
    use proptest::prelude::*;

    use super::super::{parse_request, percent_decode, percent_encode};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn v2_parser_answers_any_path_and_query(path in ".{0,200}", query in proptest::option::of(".{0,200}")) {
            let _ = parse_request(&path, query.as_deref());
            let _ = parse_request(&format!("/autodiscover/autodiscover.json/{path}"), query.as_deref());
        }

        #[test]
        fn any_address_survives_the_query_form(
            local in "[^@]{1,30}",
            name in prop::sample::select(vec!["Ews", "Rest", "ActiveSync", "AutodiscoverV1"]),
            case_bits in any::<u32>(),
        ) {
            // Random ASCII case per letter (only ASCII case-folding is accepted).
            let protocol: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| if case_bits >> (i % 32) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect();
            let email = format!("{local}@contoso.com");
            let query = format!("Email={}&Protocol={protocol}", percent_encode(&email));
            let parsed = parse_request("/autodiscover/autodiscover.json", Some(&query));
            let trimmed = email.trim();
            let valid = trimmed.rsplit_once('@').is_some_and(|(l, _)| !l.is_empty())
                && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
            match parsed {
                Ok(r) => {
                    prop_assert!(valid);
                    prop_assert_eq!(r.email, email.trim());
                    prop_assert_eq!(r.protocol_as_sent, protocol);
                }
                Err(_) => prop_assert!(!valid),
            }
        }

        #[test]
        fn percent_encoding_round_trips_any_text(text in ".{0,100}") {
            prop_assert_eq!(percent_decode(&percent_encode(&text), true), Some(text));
        }
    }
}
