//! Many instances, one domain, for real: three autodiscoverd processes behind a real HAProxy
//! (TCP mode, PROXY protocol v2, round robin, health checks on /readyz, as
//! deploy/haproxy/autodiscoverd-tcp.cfg), one redis-server holding the failed-login counts,
//! and the Samba DC with its lockout policy (5 bad passwords). Whatever the spray, the
//! spelling, the instance or the store's state, the DC's badPwdCount never passes
//! threshold − margin (3) and the account is never locked; failures made elsewhere in the
//! domain stop every instance from checking, with or without a store.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::harness::client::{basic, client_config};
use crate::harness::daemon::{config_table, scrape, send_over, Daemon};
use crate::harness::haproxy::{connect_from, haproxy, start_haproxy, Haproxy};
use crate::harness::redis::Redis;
use crate::harness::{outlook_request, set, TestPki};
use crate::{use_dc, Dc, PATH};

/// An instance of the pool: the lab DC, PROXY protocol from HAProxy on loopback, and the
/// shared store when there is one. The instances of a pool share one certificate (`pki`),
/// as a load-balanced name does.
fn instance(
    dc: &Dc,
    pki: &Arc<TestPki>,
    redis: Option<&Redis>,
    tweak: &dyn Fn(&mut toml::Table),
) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = config_table(dir.path(), pki);
    use_dc(&mut t, dc);
    set(
        &mut t,
        &["proxy", "proxy_protocol_https_listen"],
        toml::Value::Array(vec!["127.0.0.1:0".into()]),
    );
    if let Some(redis) = redis {
        redis.configure(&mut t, 3);
    }
    tweak(&mut t);
    let path = dir.path().join("autodiscoverd.toml");
    std::fs::write(&path, toml::to_string(&t).expect("toml")).expect("write");
    Daemon::start_file(dir, Arc::clone(pki), path)
}

/// HAProxy in TCP mode in front of `pool`, round robin, checking each one's /readyz.
async fn balancer(pool: &[Daemon]) -> Haproxy {
    let bin = haproxy().expect("haproxy (.ci/run installs it)");
    // The check's own timeout is generous and a server needs many failed checks to be
    // taken out: /readyz asks the DC, which the rest of the AD suite keeps busy, and HAProxy
    // closes new connections once every server is down.
    let mut body = String::from(
        "frontend tls\n    mode tcp\n    bind @LISTEN@\n    default_backend pool\n\
         backend pool\n    mode tcp\n    balance roundrobin\n    timeout check 5s\n\
         \x20   option httpchk\n\
         \x20   http-check send meth GET uri /readyz\n    http-check expect status 200\n",
    );
    for (i, d) in pool.iter().enumerate() {
        body.push_str(&format!(
            "    server ad{i} {} send-proxy-v2 check port {} inter 300ms fall 30 rise 1\n",
            d.addr("https_proxy"),
            d.addr("metrics").port()
        ));
    }
    start_haproxy(bin, pool[0].dir.path(), &body).await
}

/// One Basic POX request through `lb` from the loopback address `source`: (status,
/// Retry-After).
async fn login(
    lb: &Haproxy,
    pool: &[Daemon],
    source: &str,
    user: &str,
    password: &str,
) -> (u16, Option<String>) {
    let tcp = connect_from(source, lb.addr).await;
    let tls = TlsConnector::from(client_config(&pool[0].pki))
        .connect(
            ServerName::try_from("autodiscover.contoso.com").unwrap(),
            tcp,
        )
        .await
        .expect("TLS through HAProxy");
    let auth = basic(user, password);
    let body = outlook_request("pia@contoso.com");
    let a = send_over(
        tls,
        "POST",
        PATH,
        &[("Authorization", &auth), ("Content-Type", "text/xml")],
        body.as_bytes(),
    )
    .await
    .expect("answer through HAProxy");
    (a.status.as_u16(), a.header("retry-after"))
}

/// `kinit` with the password on stdin: the account is usable (not locked).
fn kinit_works(dc: &Dc, user: &str, password: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("kinit")
        .arg(user)
        .env("KRB5_CONFIG", dc.krb5_conf())
        .env(
            "KRB5CCNAME",
            format!("FILE:{}", dir.path().join("cc").display()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kinit (krb5-user)");
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait().unwrap().success()
}

async fn store_up(d: &Daemon) -> Option<f64> {
    scrape(d.addr("metrics"))
        .await
        .get("autodiscoverd_throttle_store_up")
        .copied()
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn a_pool_behind_haproxy_never_locks_an_account_whatever_the_store_does() {
    let Some(dc) = Dc::shared().await else { return };
    let Some(mut redis) = Redis::start() else {
        return;
    };
    const PW: &str = "Pia-Pass!123";
    let dn = dc.create_user("pia", PW);
    let pki = Arc::new(TestPki::new());
    let pool: Vec<Daemon> = (0..3)
        .map(|_| instance(&dc, &pki, Some(&redis), &|_| {}))
        .collect();
    let lb = balancer(&pool).await;
    let bad = || dc.number(&dn, "badPwdCount");

    // The owner logs in from home: that address becomes familiar.
    let home = "127.0.0.2";
    assert_eq!(login(&lb, &pool, home, "pia@contoso.com", PW).await.0, 200);

    // 15 wrong passwords in three spellings from ten addresses, spread round robin over the
    // three instances: three reach the DC, the rest are refused with Retry-After.
    let spellings = ["pia@contoso.com", "CONTOSO\\pia", "pia"];
    let mut answers = Vec::new();
    for i in 0..15 {
        let source = format!("127.0.1.{}", i % 10 + 1);
        let answer = login(&lb, &pool, &source, spellings[i % 3], &format!("Spray-{i}")).await;
        answers.push(answer);
        assert!(bad() <= 3, "badPwdCount {} after attempt {i}", bad());
        if i == 7 {
            // The owner, at home, in the middle of the spray: their reserve is theirs.
            assert_eq!(login(&lb, &pool, home, "pia", PW).await.0, 200);
        }
    }
    assert!(answers.iter().all(|(s, _)| *s == 401), "{answers:?}");
    let refused = answers.iter().filter(|(_, r)| r.is_some()).count();
    assert!(refused >= 9, "{answers:?}");
    assert_eq!(dc.number(&dn, "lockoutTime"), 0);

    // The store dies mid-spray: each instance keeps a third of the budget (1) and reads the
    // domain's own count before checking, so the DC's count still stays at or below 3.
    redis.kill();
    for i in 15..30 {
        let source = format!("127.0.2.{}", i % 10 + 1);
        let (status, _) = login(&lb, &pool, &source, spellings[i % 3], &format!("Spray-{i}")).await;
        assert_eq!(status, 401);
        assert!(
            bad() <= 3,
            "badPwdCount {} after attempt {i} (store down)",
            bad()
        );
    }
    // Correct logins of others are answered meanwhile, on every instance.
    for _ in 0..3 {
        let (status, _) = login(&lb, &pool, "127.0.3.1", "alice", crate::dc::ALICE_PASSWORD).await;
        assert_eq!(status, 200);
    }
    for d in &pool {
        assert_eq!(store_up(d).await, Some(0.0));
    }

    // The store comes back: every instance counts in it again.
    redis.resume();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..3 {
        // A login that names no account: no one's domain count moves.
        let (status, _) = login(&lb, &pool, "127.0.4.1", "ghost", &format!("Wrong-{i}")).await;
        assert_eq!(status, 401);
    }
    for d in &pool {
        assert_eq!(store_up(d).await, Some(1.0), "{}", d.log_text());
        // The lab's PDC emulator (dc1.contoso.com) cannot be resolved here, so its counts
        // come from the configured DC: that is not the directory being unreachable.
        let m = scrape(d.addr("metrics")).await;
        let unreachable = m.get("autodiscoverd_ldap_unreachable").copied();
        assert_eq!(unreachable.unwrap_or(0.0), 0.0, "{}", d.log_text());
    }

    // Never locked: Kerberos still issues the owner a ticket.
    assert!(bad() <= 3);
    assert_eq!(dc.number(&dn, "lockoutTime"), 0, "the account is locked");
    assert!(kinit_works(&dc, "pia", PW), "kinit refused: locked");
    for d in &pool {
        assert!(!d.log_text().contains("Spray-"), "a password in the log");
    }
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn failures_made_elsewhere_in_the_domain_stop_every_instance_from_checking() {
    let Some(dc) = Dc::shared().await else { return };
    const PW: &str = "Mia-Pass!123";
    let dn = dc.create_user("mia", PW);
    // No shared store at all: the domain's own count is the guard.
    let pki = Arc::new(TestPki::new());
    let pool: Vec<Daemon> = (0..3).map(|_| instance(&dc, &pki, None, &|_| {})).collect();
    let lb = balancer(&pool).await;
    // Three wrong passwords straight to the DC (a phone, a workstation): threshold 5 −
    // margin 2.
    for _ in 0..3 {
        assert!(!dc.ldap_bind_works("CONTOSO\\mia", "Not-Her-Pass!1"));
    }
    assert_eq!(dc.number(&dn, "badPwdCount"), 3);
    // Every instance now refuses mia without binding, even with the right password, and
    // says for how long (what is left of the 30-minute observation window).
    for i in 0..3 {
        let (status, retry) = login(&lb, &pool, "127.0.5.1", "mia", PW).await;
        assert_eq!(status, 401, "instance {i}");
        let secs: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1700..=1800).contains(&secs), "{secs}");
    }
    // Each instance on its own, to see that every one refused on the domain's count (the
    // event is logged after the answer is on its way: waited for, not raced).
    for (i, d) in pool.iter().enumerate() {
        let a = crate::post(d, "mia", PW, "mia@contoso.com", &[]).await;
        assert_eq!(a.status, 401, "instance {i}");
        assert!(a.header("retry-after").is_some(), "instance {i}");
        assert!(
            d.wait_event(Duration::from_secs(5), |e| e["domain_bad_passwords"] == 3)
                .is_some(),
            "instance {i} refused on the domain's count:\n{}",
            d.log_text()
        );
    }
    assert_eq!(dc.number(&dn, "badPwdCount"), 3, "a check reached the DC");
    assert_eq!(dc.number(&dn, "lockoutTime"), 0);

    // NTLM through winbind is guarded the same way.
    let ntlm = instance(&dc, &pki, None, &crate::ntlm::with_winbind);
    let (status, _) = crate::ntlm::curl_ntlm_from(
        &ntlm,
        "198.51.100.60",
        "CONTOSO\\mia",
        PW,
        "mia@contoso.com",
    );
    assert_eq!(status, 401);
    assert_eq!(
        dc.number(&dn, "badPwdCount"),
        3,
        "an NTLM check reached the DC"
    );
    assert!(
        ntlm.wait_event(Duration::from_secs(5), |e| e["domain_bad_passwords"] == 3)
            .is_some(),
        "{}",
        ntlm.log_text()
    );

    // Once the owner logs in elsewhere the DC resets its count, and the pool checks again.
    assert!(dc.ldap_bind_works("CONTOSO\\mia", PW));
    assert_eq!(dc.number(&dn, "badPwdCount"), 0);
    assert_eq!(login(&lb, &pool, "127.0.5.1", "mia", PW).await.0, 200);
}
