//! Several instances, one domain: the failed-login throttle and lockout guard with their
//! counts in a real redis-server ([throttle.shared]), each instance a real autodiscoverd
//! process. The lab directory has no lockout policy of its own, so these tests set
//! `throttle.lockout_threshold = 5` (margin 2: a budget of 3, a reserve of 1 for familiar
//! addresses). The same rules against a real Active Directory, behind HAProxy, are in
//! tests/ad/pool.rs.
//!
//! Client addresses: the example trusts 127.0.0.1 as a proxy, so a test speaks for any
//! client by sending `X-Forwarded-For` (documentation ranges only).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use autodiscoverd::auth::throttle::{
    decayed_score, LedgerRule, LockoutLedger, Settled, Throttle, ThrottleConfig,
};
use autodiscoverd::config::{SharedStore, StoreSecret};
use autodiscoverd::server::endpoints::shared_counts::SharedCounts;

use crate::harness::daemon::{scrape, Daemon};
use crate::harness::redis::Redis;
use crate::harness::{outlook_request, set, TlsClient};

const PATH: &str = "/autodiscover/autodiscover.xml";

/// An instance of the pool: the example with a lockout threshold, sharing `redis`.
fn instance(redis: &Redis, instances: i64, tweak: &dyn Fn(&mut toml::Table)) -> Daemon {
    Daemon::start(&|t| {
        set(t, &["throttle", "lockout_threshold"], 5.into());
        redis.configure(t, instances);
        tweak(t);
    })
}

/// One POX request for `user` as `client`: (status, Retry-After).
async fn login(d: &Daemon, client: &str, user: &str, password: &str) -> (u16, Option<String>) {
    let mut c = TlsClient::connect(d.addr("https"), "autodiscover.contoso.com", &d.pki).await;
    let a = c
        .post_basic(
            PATH,
            user,
            password,
            &[("X-Forwarded-For", client)],
            &outlook_request("alice@contoso.com"),
        )
        .await;
    (a.status.as_u16(), a.header("retry-after"))
}

async fn metrics(d: &Daemon) -> BTreeMap<String, f64> {
    scrape(d.addr("metrics")).await
}

fn lockout_refusals(m: &BTreeMap<String, f64>) -> f64 {
    m.get(r#"autodiscoverd_auth_throttled_total{action="lockout"}"#)
        .copied()
        .unwrap_or(0.0)
}

#[tokio::test]
async fn instances_sharing_a_store_spend_one_lockout_budget_between_them() {
    let Some(redis) = Redis::start() else { return };
    // An ACL user with the rights docs/high-availability.md lists, and no others.
    let acl = "on >Store-Pass!1 ~autodiscoverd:* +evalsha +eval +script|load +@connection +time +hget +hmget +hset +hdel +hlen +hgetall +exists +del +set +pexpire";
    let mut args = vec!["ACL", "SETUSER", "autodiscoverd"];
    args.extend(acl.split(' '));
    assert_eq!(redis.cli(&args), "OK");
    let password_file = redis.secret_file.with_file_name("store-password");
    std::fs::write(&password_file, "Store-Pass!1\n").unwrap();
    let with_acl = |t: &mut toml::Table| {
        set(
            t,
            &["throttle", "shared", "username"],
            "autodiscoverd".into(),
        );
        set(
            t,
            &["throttle", "shared", "password_file"],
            password_file.display().to_string().into(),
        );
    };
    let pool = [
        instance(&redis, 2, &with_acl),
        instance(&redis, 2, &with_acl),
    ];
    // Three different wrong passwords in three spellings, over both instances and from
    // three addresses: the pool checks three, as one server would.
    let logins = ["alice@contoso.com", "CONTOSO\\alice", "alice"];
    for (i, user) in logins.iter().enumerate() {
        let d = &pool[i % 2];
        let answer = login(
            d,
            &format!("198.51.100.{}", i + 1),
            user,
            &format!("Wrong-{i}"),
        )
        .await;
        assert_eq!(answer, (401, None), "attempt {i}");
    }
    // Every further attempt, on either instance, is refused without a check, with the time
    // left of the window; even the right password from a new address.
    for (i, d) in pool.iter().enumerate() {
        let (status, retry) = login(d, "198.51.100.50", "alice", &format!("Again-{i}")).await;
        assert_eq!(status, 401);
        let secs: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((800..=900).contains(&secs), "{secs}");
    }
    assert_eq!(
        login(&pool[1], "198.51.100.51", "alice", "alice-pw")
            .await
            .0,
        401
    );
    let refused: f64 =
        lockout_refusals(&metrics(&pool[0]).await) + lockout_refusals(&metrics(&pool[1]).await);
    assert_eq!(refused, 3.0, "refusals by the shared ledger");
    // Another account is not affected.
    assert_eq!(
        login(&pool[0], "198.51.100.1", "bob", "bob-pw").await.0,
        200
    );
    // What the store holds: counts under the configured prefix, no password.
    // Inspected as the default user: the instances' own user may not even list keys.
    let cli = |args: &[&str]| redis.cli(args);
    let keys = cli(&["--scan", "--pattern", "autodiscoverd:*"]);
    assert!(keys.contains("autodiscoverd:l:"), "{keys}");
    let dump: String = keys
        .lines()
        .map(|k| cli(&["--no-raw", "HGETALL", k]))
        .collect();
    // Nothing fell back to local counting: the ACL user had every right it needed.
    for d in &pool {
        assert_eq!(
            metrics(d).await.get("autodiscoverd_throttle_store_up"),
            Some(&1.0)
        );
        assert!(!d.log_text().contains("unreachable"), "{}", d.log_text());
    }
    assert!(
        !dump.contains("Wrong-") && !dump.contains("alice-pw"),
        "{dump}"
    );
}

#[tokio::test]
async fn the_same_wrong_password_again_counts_once_across_the_pool() {
    let Some(redis) = Redis::start() else { return };
    let pool = [instance(&redis, 2, &|_| {}), instance(&redis, 2, &|_| {})];
    // A phone retrying an old password, through both instances: one failure.
    for i in 0..8 {
        let answer = login(
            &pool[i % 2],
            "192.0.2.10",
            "alice@contoso.com",
            "Old-Pass!1",
        )
        .await;
        assert_eq!(answer, (401, None), "retry {i}");
    }
    // The right password then works from the same address ...
    assert_eq!(
        login(&pool[0], "192.0.2.10", "alice@contoso.com", "alice-pw").await,
        (200, None)
    );
    // The count is exact: for carol the old password, sent eight times, counts once, so two
    // more different wrong passwords are checked and the third is refused.
    for i in 0..8 {
        let answer = login(&pool[i % 2], "192.0.2.11", "carol", "Old-Pass!1").await;
        assert_eq!(answer, (401, None), "carol's retry {i}");
    }
    assert_eq!(
        login(&pool[1], "198.51.100.9", "carol", "Guess-2").await,
        (401, None)
    );
    assert_eq!(
        login(&pool[0], "198.51.100.9", "carol", "Guess-3").await,
        (401, None)
    );
    let (status, retry) = login(&pool[1], "198.51.100.9", "carol", "Guess-4").await;
    assert_eq!((status, retry.is_some()), (401, true));
    let repeated: f64 = [&pool[0], &pool[1]]
        .iter()
        .map(|d| d.log_events())
        .map(|events| {
            events
                .iter()
                .filter(|e| {
                    e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("a wrong password already given"))
                })
                .count() as f64
        })
        .sum();
    assert_eq!(
        repeated, 14.0,
        "seven repeats each answered without a check"
    );
}

#[tokio::test]
async fn the_owners_familiar_address_keeps_its_reserve_during_a_spray() {
    let Some(redis) = Redis::start() else { return };
    let pool = [instance(&redis, 2, &|_| {}), instance(&redis, 2, &|_| {})];
    let home = "192.0.2.44";
    assert_eq!(login(&pool[0], home, "alice", "alice-pw").await.0, 200);
    // A spray from elsewhere uses up the budget any address may spend ...
    for i in 0..5 {
        login(
            &pool[i % 2],
            &format!("203.0.113.{i}"),
            "alice",
            &format!("Spray-{i}"),
        )
        .await;
    }
    let (status, retry) = login(&pool[1], "203.0.113.99", "alice", "alice-pw").await;
    assert_eq!(
        (status, retry.is_some()),
        (401, true),
        "unfamiliar: refused"
    );
    // ... but not the owner's, at home, on either instance.
    assert_eq!(login(&pool[1], home, "alice", "alice-pw").await.0, 200);
    assert_eq!(login(&pool[0], home, "alice", "alice-pw").await.0, 200);
}

#[tokio::test]
async fn without_the_store_each_instance_counts_its_share_and_returns_when_it_is_back() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let d = instance(&redis, 3, &|_| {});
    assert_eq!(login(&d, "198.51.100.1", "bob", "bob-pw").await.0, 200);
    assert_eq!(
        metrics(&d).await.get("autodiscoverd_throttle_store_up"),
        Some(&1.0)
    );
    redis.kill();
    // Budget 3 shared by 3 instances: one check of alice here while the store is down.
    assert_eq!(
        login(&d, "198.51.100.2", "alice", "Wrong-1").await,
        (401, None)
    );
    let (status, retry) = login(&d, "198.51.100.3", "alice", "Wrong-2").await;
    assert_eq!((status, retry.is_some()), (401, true));
    // Correct logins of other accounts are answered, and the server stays ready.
    assert_eq!(login(&d, "198.51.100.4", "bob", "bob-pw").await.0, 200);
    let ready = crate::harness::daemon::http(d.addr("metrics"), "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200);
    let m = metrics(&d).await;
    assert_eq!(m.get("autodiscoverd_throttle_store_up"), Some(&0.0));
    assert!(m
        .get(r#"autodiscoverd_throttle_store_errors_total{op="check"}"#)
        .is_some_and(|n| *n >= 1.0));
    let down = d
        .log_text()
        .matches("shared throttle store unreachable")
        .count();
    assert_eq!(down, 1, "said once:\n{}", d.log_text());
    // The store comes back: within a second the instance counts there again.
    redis.resume();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        login(&d, "198.51.100.5", "carol", "Wrong-3").await,
        (401, None)
    );
    assert!(d
        .wait_event(Duration::from_secs(5), |e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("reachable again")))
        .is_some());
    assert_eq!(
        metrics(&d).await.get("autodiscoverd_throttle_store_up"),
        Some(&1.0)
    );
    let keys = redis.cli(&["--scan", "--pattern", "autodiscoverd:a:*"]);
    assert!(keys.contains("carol"), "counted in the store again: {keys}");
}

#[tokio::test]
async fn ipv6_sources_count_per_64_and_trusted_sources_are_never_blocked_as_a_whole() {
    let Some(redis) = Redis::start() else { return };
    let d = instance(&redis, 1, &|t| {
        set(t, &["throttle", "source_delay_after"], 3.into());
        set(t, &["throttle", "source_block_after"], 3.into());
        set(t, &["throttle", "max_delay_ms"], 0.into());
        set(
            t,
            &["throttle", "trusted_sources"],
            toml::Value::Array(vec!["203.0.113.0/24".into()]),
        );
    });
    // Three failures from three addresses of one /64 block the whole /64 ...
    for i in 1..=3 {
        let user = format!("nobody{i}");
        assert_eq!(
            login(&d, &format!("2001:db8:7:1::{i}"), &user, "x").await.0,
            401
        );
    }
    assert_eq!(
        login(&d, "2001:db8:7:1:ffff::9", "bob", "bob-pw").await.0,
        429
    );
    // ... and nothing else.
    assert_eq!(login(&d, "2001:db8:7:2::1", "bob", "bob-pw").await.0, 200);
    // A trusted partner egress fails often on many accounts and is never refused as a
    // whole; its guesses at one account still spend that account's budget.
    for i in 1..=10 {
        let user = format!("someone{i}");
        assert_eq!(login(&d, "203.0.113.7", &user, "x").await.0, 401, "{i}");
    }
    assert_eq!(login(&d, "203.0.113.7", "bob", "bob-pw").await.0, 200);
    for i in 0..3 {
        login(&d, "203.0.113.7", "carol", &format!("Guess-{i}")).await;
    }
    let (status, retry) = login(&d, "203.0.113.7", "carol", "carol-pw").await;
    assert_eq!((status, retry.is_some()), (401, true));
}

/// Calls of scripts the store has run so far.
fn script_calls(redis: &Redis) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    ["cmdstat_evalsha:calls=", "cmdstat_eval:calls="]
        .iter()
        .filter_map(|prefix| {
            let line = stats.lines().find(|l| l.starts_with(prefix))?;
            line.strip_prefix(prefix)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn correct_logins_cost_at_most_one_round_trip_a_second() {
    let Some(redis) = Redis::start() else { return };
    let d = instance(&redis, 2, &|_| {});
    // Each script is loaded into the store on its first use (EVALSHA, SCRIPT LOAD, EVALSHA).
    assert_eq!(login(&d, "198.51.100.9", "carol", "Wrong?").await.0, 401);
    assert_eq!(login(&d, "198.51.100.1", "bob", "bob-pw").await.0, 200);
    // A burst answered from the verification cache asks the store at most once a second
    // for this client and account.
    let before = script_calls(&redis);
    let started = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(login(&d, "198.51.100.1", "bob", "bob-pw").await.0, 200);
    }
    let calls = script_calls(&redis) - before;
    let allowed = started.elapsed().as_secs();
    assert!(
        calls <= allowed,
        "{calls} store calls in {:?}",
        started.elapsed()
    );
    // A second later: one check, and nothing to clear.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = script_calls(&redis);
    assert_eq!(login(&d, "198.51.100.1", "bob", "bob-pw").await.0, 200);
    assert_eq!(script_calls(&redis) - before, 1);
    // Another account from the same address is checked in the store.
    let before = script_calls(&redis);
    assert_eq!(login(&d, "198.51.100.1", "carol", "carol-pw").await.0, 200);
    assert!(script_calls(&redis) - before >= 1);
    // A failure costs the check, the ledger's admission and outcome, and the record.
    let before = script_calls(&redis);
    assert_eq!(login(&d, "198.51.100.1", "bob", "Wrong!").await.0, 401);
    assert_eq!(script_calls(&redis) - before, 4);
}

#[tokio::test]
async fn a_store_that_speaks_only_tls_is_used_with_its_ca_file() {
    let pki = crate::harness::TestPki::new();
    let Some(redis) = Redis::start_tls(&pki) else {
        return;
    };
    assert!(redis.url().starts_with("rediss://"));
    let d = instance(&redis, 1, &|_| {});
    assert_eq!(
        login(&d, "198.51.100.1", "bob", "Wrong-1").await,
        (401, None)
    );
    assert_eq!(login(&d, "198.51.100.1", "bob", "bob-pw").await.0, 200);
    assert_eq!(
        metrics(&d).await.get("autodiscoverd_throttle_store_up"),
        Some(&1.0),
        "{}",
        d.log_text()
    );
    // Counted in the store, over TLS.
    let keys = redis.cli(&["--scan", "--pattern", "autodiscoverd:a:*"]);
    assert!(keys.contains("bob"), "{keys}");
    // A CA that did not sign the store's certificate: nothing is sent, counting is local.
    let other = crate::harness::TestPki::new();
    let wrong_ca = d.dir.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, other.ca_pem()).unwrap();
    let untrusting = instance(&redis, 1, &|t| {
        set(
            t,
            &["throttle", "shared", "ca_file"],
            wrong_ca.display().to_string().into(),
        )
    });
    assert_eq!(
        login(&untrusting, "198.51.100.2", "bob", "Wrong-2").await,
        (401, None)
    );
    assert_eq!(
        metrics(&untrusting)
            .await
            .get("autodiscoverd_throttle_store_up"),
        Some(&0.0)
    );
}

/// The store's scripts and the local counts apply the same rules: one sequence of
/// attempts, played on both, gets the same verdicts.
#[tokio::test]
async fn the_stores_scripts_follow_the_rules_of_the_local_counts() {
    let Some(redis) = Redis::start() else { return };
    let store = SharedCounts::new(&SharedStore {
        url: redis.url(),
        ca_file: None,
        username: None,
        password: None,
        secret: StoreSecret(b"0123456789abcdef".to_vec()),
        instances: 1,
        timeout: Duration::from_secs(2),
        key_prefix: "parity:".into(),
    })
    .unwrap();
    let config = ThrottleConfig::default();
    let window = config.window.as_millis() as u64;
    let mut local = Throttle::new(config.clone());
    let mut ledger = LockoutLedger::new(1000);
    let ip = |n: u8| IpAddr::from([198, 51, 100, n]);
    // A deterministic mix of sources, accounts and outcomes.
    let mut x: u32 = 7;
    let mut next = |m: u32| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (x >> 16) % m
    };
    for step in 0..300 {
        let source = ip(next(4) as u8 + 1);
        let account = format!("user{}", next(3));
        let reply = store.check(source, &account, None, window).await.unwrap();
        let scores = local.scores(source, &account, 0);
        for (shared, own, what) in [
            (reply.scores.source, scores.source, "source"),
            (reply.scores.pair, scores.pair, "pair"),
            (reply.scores.account, scores.account, "account"),
        ] {
            // The store's clock moves on during the test; decay over a second is 1/900.
            assert!(
                (shared - own).abs() < 0.05,
                "step {step} {what}: {shared} vs {own}"
            );
        }
        let rule = LedgerRule {
            budget: 3,
            reserve: 1,
            window_ms: window,
            domain: None,
        };
        let admitted = store.admit(&account, source, &rule).await.unwrap();
        assert_eq!(
            admitted.is_ok(),
            ledger.admit(&account, source, &rule, 0).is_ok(),
            "step {step}: ledger"
        );
        if admitted.is_ok() {
            let outcome = match next(10) {
                0 => Settled::Right,
                1 => Settled::Unchecked,
                _ => Settled::Wrong,
            };
            store
                .settle(&account, source, outcome, 60_000)
                .await
                .unwrap();
            ledger.settle(&account, source, outcome, 0, 60_000);
            if outcome == Settled::Right {
                store.succeeded(source, &account).await.unwrap();
                local.succeeded(source, &account);
            } else {
                store
                    .failed(source, &account, None, window, 8)
                    .await
                    .unwrap();
                local.failed(source, &account, 0);
            }
        }
    }
    // The decay is the same formula on both sides.
    assert!((decayed_score(3.0, 0, window / 3, window) - 2.0).abs() < 1e-9);
}

/// `check-config` runs the counting script once: address, credentials, TLS and ACL proven
/// before the service starts; a store that does not answer fails the check.
#[test]
fn check_config_proves_the_store_or_fails() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::harness::TestPki::new();
    let mut table = crate::harness::daemon::config_table(dir.path(), &pki);
    redis.configure(&mut table, 2);
    let path = dir.path().join("autodiscoverd.toml");
    std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, said) = check();
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("throttle store:     OK ({}", redis.url())),
        "{said}"
    );
    redis.kill();
    let (ok, said) = check();
    assert!(!ok, "{said}");
    assert!(said.contains("throttle store:     FAILED"), "{said}");
}
