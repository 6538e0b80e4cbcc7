use super::*;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn url_scp(dn: &str, url: &str, keywords: &[&str]) -> Scp {
    let mut k = strings(keywords);
    k.push(URL_KEYWORD.to_lowercase());
    Scp::from_entry(dn, &strings(&[url]), &k).expect("a URL SCP")
}

fn pointer_scp(dn: &str, target: &str, keywords: &[&str]) -> Scp {
    let mut k = strings(keywords);
    k.push(POINTER_KEYWORD.into());
    Scp::from_entry(dn, &strings(&[target]), &k).expect("a pointer SCP")
}

#[test]
fn the_filter_is_outlooks() {
    assert_eq!(
        outlook_filter(),
        "(&(objectcategory=serviceConnectionPoint)(|(keywords=67661D7F-8FC4-4fa7-BFAC-E1D7794C1F68)(keywords=77378F46-2C66-4aa9-A6A6-3E7A48B19596)))"
    );
    assert_eq!(
        OUTLOOK_ATTRIBUTES,
        ["serviceBindingInformation", "keywords"]
    );
}

#[test]
fn keywords_are_read_case_insensitively() {
    let s = Scp::from_entry(
        "CN=a",
        &strings(&[" https://ex1/Autodiscover/Autodiscover.xml ", ""]),
        &strings(&[
            "77378f46-2c66-4AA9-a6a6-3e7a48b19596",
            "site=Paris",
            "SITE= Berlin ",
            "Site=",
            "publisher=AUTODISCOVERD",
        ]),
    )
    .expect("an SCP");
    assert_eq!(s.kind, ScpKind::Url);
    assert_eq!(s.sites, ["Paris", "Berlin"]);
    assert_eq!(s.url(), Some("https://ex1/Autodiscover/Autodiscover.xml"));
    assert_eq!(s.bindings.len(), 1);
    assert!(s.owned);
    let p = pointer_scp("CN=p", "LDAP://dc.fabrikam.com", &["Domain=fabrikam.com"]);
    assert_eq!(p.kind, ScpKind::Pointer);
    assert_eq!(p.domains, ["fabrikam.com"]);
    assert!(!p.owned);
    assert!(Scp::from_entry("CN=x", &[], &strings(&["Site=Paris"])).is_none());
}

#[test]
fn sites_rank_the_clients_first_then_siteless_then_others() {
    let scps = vec![
        url_scp("CN=other", "https://other/a", &["Site=Berlin"]),
        url_scp("CN=none", "https://none/a", &[]),
        url_scp("CN=mine", "https://mine/a", &["Site=Berlin", "Site=paris"]),
        url_scp("CN=none2", "https://none2/a", &[]),
    ];
    let order: Vec<(SiteRank, String)> = order_urls(&scps, Some("Paris"))
        .into_iter()
        .map(|(r, s)| (r, s.dn))
        .collect();
    assert_eq!(
        order,
        [
            (SiteRank::ClientSite, "CN=mine".to_string()),
            (SiteRank::NoSite, "CN=none".into()),
            (SiteRank::NoSite, "CN=none2".into()),
            (SiteRank::OtherSite, "CN=other".into()),
        ]
    );
    // No site known: every tagged SCP ranks after the site-less ones.
    let order: Vec<String> = order_urls(&scps, None)
        .into_iter()
        .map(|(_, s)| s.dn)
        .collect();
    assert_eq!(order, ["CN=none", "CN=none2", "CN=other", "CN=mine"]);
}

#[test]
fn a_stale_exchange_scp_with_the_clients_site_outranks_a_siteless_one() {
    let scps = vec![
        url_scp("CN=ours", "https://autodiscover.contoso.com/a", &[]),
        url_scp(
            "CN=EX01",
            "https://ex01.contoso.com/a",
            &["Site=Default-First-Site-Name"],
        ),
    ];
    let plan = plan_server(&scps, "contoso.com", Some("Default-First-Site-Name"));
    assert_eq!(plan.urls[0].1.dn, "CN=EX01");
    assert_eq!(plan.urls[1].1.dn, "CN=ours");
}

#[test]
fn pointers_for_the_users_domain_win_unscoped_ones_are_fallbacks() {
    let scps = vec![
        url_scp("CN=url", "https://ex/a", &[]),
        pointer_scp("CN=any", "LDAP://dc.any.com", &[]),
        pointer_scp(
            "CN=other",
            "LDAP://dc.fabrikam.com",
            &["Domain=fabrikam.com"],
        ),
        pointer_scp(
            "CN=mine",
            "ldap://DC2.contoso.com:3268/DC=contoso,DC=com",
            &["Domain=Contoso.com"],
        ),
        url_scp("CN=empty", "", &[]),
    ];
    let plan = plan_server(&scps, "contoso.com", None);
    assert_eq!(
        plan.follow,
        Some(Pointer {
            dn: "CN=mine".into(),
            host: "dc2.contoso.com".into(),
            port: Some(3268),
            scoped: true,
        })
    );
    assert_eq!(plan.fallbacks.len(), 1);
    assert_eq!(plan.fallbacks[0].host, "dc.any.com");
    assert!(!plan.fallbacks[0].scoped);
    assert_eq!(plan.urls.len(), 1, "the SCP without a URL is not tried");
    let skipped: Vec<&str> = plan.skipped.iter().map(|(dn, _)| dn.as_str()).collect();
    assert_eq!(skipped, ["CN=other", "CN=empty"]);
    assert!(plan.skipped[1].1.starts_with("stale"));
}

#[test]
fn ldap_targets_parse() {
    assert_eq!(
        parse_ldap_target("LDAP://dc1.contoso.com"),
        Some(("dc1.contoso.com".into(), None))
    );
    assert_eq!(
        parse_ldap_target("ldap://[::1]:389/x"),
        Some(("::1".into(), Some(389)))
    );
    assert_eq!(parse_ldap_target("https://x"), None);
    assert_eq!(parse_ldap_target("LDAP://"), None);
    assert_eq!(parse_ldap_target("LDAP://dc:0"), None);
    assert_eq!(parse_ldap_target("dc1.contoso.com"), None);
}

#[test]
fn the_walk_stops_at_loops_and_after_ten_hops() {
    let mut walk = PointerWalk::new("DC1");
    assert_eq!(walk.follow("dc1"), Err(WalkStop::Visited("dc1".into())));
    for i in 0..MAX_POINTER_HOPS {
        assert_eq!(walk.follow(&format!("dc-{i}")), Ok(()));
    }
    assert_eq!(walk.hops(), 10);
    assert_eq!(walk.follow("dc-new"), Err(WalkStop::HopLimit));
}

fn publication(url: &str, sites: &[&str]) -> Publication {
    Publication {
        name: "mail1".into(),
        url: url.into(),
        sites: strings(sites),
    }
}

/// What the directory would hold after adding `wanted` (names as the server spells them).
fn stored(wanted: &[(&'static str, Vec<String>)]) -> Vec<(String, Vec<String>)> {
    wanted
        .iter()
        .map(|(a, v)| (a.to_ascii_lowercase(), v.clone()))
        .collect()
}

#[test]
fn publishing_the_same_again_changes_nothing() {
    let wanted = wanted_attributes(&publication(
        "https://autodiscover.contoso.com/Autodiscover/Autodiscover.xml",
        &["Paris"],
    ))
    .expect("valid");
    assert_eq!(
        values_of(&stored(&wanted), "KEYWORDS"),
        [URL_KEYWORD, OWNER_KEYWORD, "Site=Paris"]
    );
    assert_eq!(
        values_of(&stored(&wanted), "serviceDNSName"),
        ["autodiscover.contoso.com"]
    );
    assert!(changes(&wanted, &stored(&wanted)).is_empty());
    // The directory may return keywords in another order and case.
    let mut reordered = stored(&wanted);
    for (name, values) in reordered.iter_mut() {
        if name == "keywords" {
            values.reverse();
            values[0] = values[0].to_lowercase();
        }
    }
    assert!(changes(&wanted, &reordered).is_empty());
}

#[test]
fn a_new_url_or_site_changes_only_those_values() {
    let old = stored(
        &wanted_attributes(&publication("https://a.contoso.com/x", &["Paris"])).expect("valid"),
    );
    let wanted =
        wanted_attributes(&publication("https://b.contoso.com/x", &["Berlin"])).expect("valid");
    assert_eq!(
        changes(&wanted, &old),
        [
            Change::Replace("serviceDNSName", strings(&["b.contoso.com"])),
            Change::Replace(
                "serviceBindingInformation",
                strings(&["https://b.contoso.com/x"])
            ),
            Change::Delete("keywords", strings(&["Site=Paris"])),
            Change::Add("keywords", strings(&["Site=Berlin"])),
        ]
    );
}

#[test]
fn bad_publications_are_refused() {
    assert!(wanted_attributes(&publication("http://a/x", &[])).is_err());
    assert!(wanted_attributes(&publication("https:///x", &[])).is_err());
    assert!(wanted_attributes(&publication("https://a/x", &["a=b"])).is_err());
    assert_eq!(url_host("HTTPS://[::1]:8443/x"), Ok("::1".into()));
    assert_eq!(url_port("HTTPS://[::1]:8443/x"), 8443);
    assert_eq!(url_port("https://a.contoso.com:9443/x"), 9443);
    assert_eq!(url_port("https://a.contoso.com/x"), 443);
}

#[test]
fn only_marked_objects_are_ours() {
    let ours = stored(&wanted_attributes(&publication("https://a/x", &[])).expect("valid"));
    assert!(matches!(classify(Some(ours)), Existing::Ours(_)));
    let exchange = vec![(
        "keywords".to_string(),
        strings(&[URL_KEYWORD, "Site=Paris"]),
    )];
    assert_eq!(classify(Some(exchange)), Existing::Foreign);
    assert_eq!(classify(None), Existing::Absent);
    assert!(container_is_ours(&stored(&container_attributes())));
    assert!(!container_is_ours(&[(
        "description".into(),
        strings(&["someone's"])
    )]));
}

#[test]
fn dns_escape_rdn_values() {
    assert_eq!(
        scp_dn("a,b", "CN=Configuration,DC=contoso,DC=com"),
        "CN=a\\,b,CN=autodiscoverd,CN=Services,CN=Configuration,DC=contoso,DC=com"
    );
}

#[test]
fn sids_render_as_strings() {
    // S-1-5-21-1-2-3-1104
    let mut bytes = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
    for sub in [21u32, 1, 2, 3, 1104] {
        bytes.extend(sub.to_le_bytes());
    }
    assert_eq!(sid_string(&bytes).as_deref(), Some("S-1-5-21-1-2-3-1104"));
    assert_eq!(sid_string(&bytes[..10]), None);
}

#[test]
fn the_delegation_advice_names_both_tools() {
    let advice = delegation_advice(
        "CN=Configuration,DC=contoso,DC=com",
        false,
        Some("S-1-5-21-1-2-3-1104"),
        "CONTOSO\\alice",
    );
    assert!(advice.contains("samba-tool dsacl set --objectdn='CN=autodiscoverd,CN=Services,CN=Configuration,DC=contoso,DC=com' --sddl='(A;CI;RPWPCCDCLCLOSDDTRC;;;S-1-5-21-1-2-3-1104)'"), "{advice}");
    assert!(advice.contains("dsacls \"CN=autodiscoverd,CN=Services,CN=Configuration,DC=contoso,DC=com\" /I:T /G \"CONTOSO\\alice:GA\""), "{advice}");
    assert!(advice.contains("first create the container"));
}

#[test]
fn the_review_flags_stale_and_outranking_scps_in_client_order() {
    let mut ours = url_scp("CN=ours", "https://autodiscover.contoso.com/a", &[]);
    ours.owned = true;
    let scps = vec![
        ours,
        url_scp("CN=EX01", "https://ex01.contoso.com/a", &["Site=Paris"]),
        url_scp("CN=EX02", "", &["Site=Paris"]),
        url_scp("CN=EX03", "https://ex03.contoso.com/a", &["Site=Berlin"]),
        pointer_scp("CN=ptr", "LDAP://dc.fabrikam.com", &[]),
    ];
    let dead = |url: &str| {
        url.contains("ex01")
            .then(|| "connection refused".to_string())
    };
    let reviewed = review(&scps, Some("Paris"), &dead);
    let order: Vec<(&str, &[Finding])> = reviewed
        .iter()
        .map(|r| (r.scp.dn.as_str(), r.findings.as_slice()))
        .collect();
    assert_eq!(
        order,
        [
            ("CN=ptr", &[][..]),
            (
                "CN=EX01",
                &[
                    Finding::Unreachable("connection refused".into()),
                    Finding::OutranksOurs
                ][..]
            ),
            ("CN=EX02", &[Finding::NoUrl][..]),
            ("CN=ours", &[][..]),
            ("CN=EX03", &[][..]),
        ]
    );
    let fix = fixes(
        &reviewed[1],
        Some("https://autodiscover.contoso.com/a"),
        Some("Paris"),
    );
    assert!(
        fix[0].contains("Remove-ADObject -Identity \"CN=EX01\""),
        "{fix:?}"
    );
    assert!(fix[0].contains("ldbdel"), "{fix:?}");
    assert!(fix[1].contains("-AutoDiscoverServiceInternalUri https://autodiscover.contoso.com/a"));
    assert!(fixes(&reviewed[3], None, None).is_empty(), "ours is fine");
    assert!(
        fixes(&reviewed[4], None, None).is_empty(),
        "ranked after ours"
    );
}
