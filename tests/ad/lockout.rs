//! Lockout-safe logins against the domain's real lockout policy (5 bad passwords lock an
//! account in the lab): this server counts failures per directory account, whatever the
//! spelling, and stops checking before the domain would lock the account.

use std::time::{Duration, Instant};

use crate::harness::daemon::Daemon;
use crate::{daemon, post, Dc};

/// One POX request with Basic credentials as seen from `source` (the example trusts the
/// loopback proxy's X-Forwarded-For): (status, Retry-After).
async fn login(d: &Daemon, source: &str, user: &str, password: &str) -> (u16, Option<String>) {
    let address = format!("{}@contoso.com", user_part(user));
    let a = post(d, user, password, &address, &[("X-Forwarded-For", source)]).await;
    (a.status.as_u16(), a.header("retry-after"))
}

fn user_part(login: &str) -> &str {
    let login = login.rsplit('\\').next().unwrap_or(login);
    login.split('@').next().unwrap_or(login)
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn wrong_passwords_in_every_spelling_never_lock_the_ad_account() {
    let Some(dc) = Dc::shared().await else { return };
    const PW: &str = "Lou-Pass!123";
    let dn = dc.create_user("lou", PW);
    let d = daemon(&dc, &|_| {});
    let spellings = ["lou@contoso.com", "CONTOSO\\lou", "lou"];
    let mut answers = Vec::new();
    for round in 0..4 {
        for login_name in spellings {
            let wrong = format!("Guess-{round}!");
            answers.push(login(&d, "198.51.100.7", login_name, &wrong).await);
        }
    }
    // Three checks reached the DC (threshold 5 - margin 2); every later attempt, in any
    // spelling, was refused here with Retry-After = what is left of the domain's 30 min
    // observation window, without its password being sent to the DC.
    assert!(answers.iter().all(|(s, _)| *s == 401), "{answers:?}");
    assert!(answers[..3].iter().all(|(_, r)| r.is_none()), "{answers:?}");
    for (_, retry) in &answers[3..] {
        let secs: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
        assert!((1700..=1800).contains(&secs), "{answers:?}");
    }
    // A login that names no account is answered the same way, attempt for attempt, so
    // when refusals start does not tell which accounts exist.
    let mut ghost = Vec::new();
    for round in 0..4 {
        for login_name in ["ghost@contoso.com", "CONTOSO\\ghost", "ghost"] {
            let wrong = format!("Guess-{round}!");
            let (status, retry) = login(&d, "198.51.100.8", login_name, &wrong).await;
            ghost.push((status, retry.is_some()));
        }
    }
    let lou: Vec<(u16, bool)> = answers.iter().map(|(s, r)| (*s, r.is_some())).collect();
    assert_eq!(ghost, lou);
    assert_eq!(
        dc.number(&dn, "badPwdCount"),
        3,
        "bad passwords seen by the DC"
    );
    assert_eq!(dc.number(&dn, "lockoutTime"), 0, "the account is locked");
    // Even the right password is not tried from here within the window (no oracle, and
    // the owner's margin stays untouched) ...
    let (status, retry) = login(&d, "198.51.100.7", "lou", PW).await;
    assert_eq!((status, retry.is_some()), (401, true));
    assert_eq!(dc.number(&dn, "badPwdCount"), 3);
    // ... while the owner logs on elsewhere in the domain at once: the account is not
    // locked, and the DC resets its count.
    assert!(
        dc.ldap_bind_works("CONTOSO\\lou", PW),
        "the owner cannot log on"
    );
    assert_eq!(dc.number(&dn, "badPwdCount"), 0);
    assert!(!d.log_text().contains("Guess-"), "a password in the log");
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn a_correct_login_from_a_nat_address_with_failures_is_not_slowed() {
    let Some(dc) = Dc::shared().await else { return };
    // The site's users are accounts of this test's own: the domain's bad-password count of
    // an account is shared by every test, and the lab's alice and bob must stay clean.
    const PW: &str = "Nina-Pass!123";
    dc.create_user("nina", PW);
    dc.create_user("nick", "Nick-Pass!123");
    let d = daemon(&dc, &|_| {});
    let nat = "203.0.113.40";
    // Warm: pooled LDAPS connections and the domain's lockout policy, as on a live server.
    let (status, _) = login(&d, "192.0.2.1", "alice", crate::dc::ALICE_PASSWORD).await;
    assert_eq!(status, 200);
    // A site behind one address: its users mistype, eight failures across accounts
    // (past source_delay_after = 5, so wrong answers from it now wait).
    for (i, user) in [
        "nina",
        "nick",
        "nobody1",
        "nobody2",
        "nina@contoso.com",
        "CONTOSO\\nick",
        "nobody3",
        "nobody4",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, _) = login(&d, nat, user, &format!("typo-{i}")).await;
        assert_eq!(status, 401);
    }
    let started = Instant::now();
    let (status, _) = login(&d, nat, "CONTOSO\\nina", PW).await;
    let correct = started.elapsed();
    assert_eq!(status, 200, "{}", d.log_text());
    let started = Instant::now();
    let (status, _) = login(&d, nat, "nick", "typo-again").await;
    let wrong = started.elapsed();
    assert_eq!(status, 401);
    eprintln!(
        "NAT address after 8 failures: correct login answered in {} ms, a wrong one in {} ms",
        correct.as_millis(),
        wrong.as_millis()
    );
    // The wrong one waited the source's delay (about 2 s: 250 ms doubled for each failure
    // past 5, the count decaying slowly); the correct one none (the bound is generous for a
    // loaded machine, and far below the delay).
    assert!(
        wrong >= Duration::from_millis(1500),
        "wrong login not delayed: {wrong:?}"
    );
    assert!(
        correct < Duration::from_millis(1500),
        "correct login took {correct:?}"
    );
    assert!(correct * 2 < wrong, "correct {correct:?}, wrong {wrong:?}");
}
