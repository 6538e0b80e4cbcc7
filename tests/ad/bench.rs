//! The cold-login benchmark against the Samba DC (benches/dc.sh runs it): Basic POX logins
//! of users the server has not seen (cache off), as a ratio to what a plain LDAP client gets
//! from the same DC in the same run for what each such login needs of it (a search for the
//! user, a bind as the user). The DC has a core of its own; the server and both load
//! generators share the other. Without `BENCH_DC=1` it is a smoke run: a few users, one
//! second, the tooling checked and the figures printed but meaningless.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, Scope};

use crate::harness::{outlook_request, set};
use crate::{client, daemon, dc, Dc, PATH};

const PASSWORD: &str = "Bench-Pass!123";
/// Concurrent clients, as the issue measured (a fresh server opens 16 LDAPS connections).
const CONCURRENCY: usize = 16;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Rates of one run: over the whole duration, and within its first second.
#[derive(Debug, Clone, Copy)]
struct Rate {
    per_second: f64,
    first_second: usize,
}

/// Runs `work(i)` from `CONCURRENCY` workers for `length`; each worker has its own state
/// made by `setup`. Counts completed units.
async fn drive<S, Setup, SetupFut, Work>(
    length: Duration,
    limit: usize,
    setup: Setup,
    work: Work,
) -> Rate
where
    S: Send + 'static,
    Setup: Fn() -> SetupFut + Send + Sync + 'static,
    SetupFut: std::future::Future<Output = S> + Send,
    Work: for<'a> Fn(
            &'a mut S,
            usize,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>
        + Send
        + Sync
        + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let first_second = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let setup = Arc::new(setup);
    let work = Arc::new(work);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, first, done, setup, work) = (
            next.clone(),
            first_second.clone(),
            done.clone(),
            setup.clone(),
            work.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut state = setup().await;
            while started.elapsed() < length {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                work(&mut state, i).await;
                done.fetch_add(1, Ordering::Relaxed);
                if started.elapsed() < Duration::from_secs(1) {
                    first.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    Rate {
        per_second: done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        first_second: first_second.load(Ordering::Relaxed),
    }
}

/// An LDAPS connection to the lab DC, verified against its CA.
async fn ldaps(dc: &Dc) -> ldap3::Ldap {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(dc.ca_pem()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let settings = LdapConnSettings::new().set_config(Arc::new(tls));
    let (conn, ldap) = LdapConnAsync::with_settings(settings, "ldaps://127.0.0.1:636")
        .await
        .expect("LDAPS to the DC");
    tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    ldap
}

/// The plain client for `length`: per login, a search for the user as the service account
/// and a bind as the user, each worker on two LDAPS connections of its own.
async fn plain_client(
    dc: &'static Dc,
    names: Arc<Vec<String>>,
    length: Duration,
    limit: usize,
) -> Rate {
    let service_password = std::fs::read_to_string(dc.svc_password_file()).unwrap();
    drive(
        length,
        limit,
        move || {
            let service_password = service_password.trim().to_string();
            async move {
                let mut search = ldaps(dc).await;
                search
                    .simple_bind(dc::SERVICE_DN, &service_password)
                    .await
                    .unwrap()
                    .success()
                    .unwrap();
                (search, ldaps(dc).await)
            }
        },
        move |(search, bind), i| {
            let name = names[i % names.len()].clone();
            Box::pin(async move {
                let filter = format!(
                    "(&(objectCategory=person)(|(userPrincipalName={name}@contoso.com)(sAMAccountName={name})))"
                );
                let (entries, _) = search
                    .search(dc::BASE_DN, Scope::Subtree, &filter, ["mail"])
                    .await
                    .unwrap()
                    .success()
                    .unwrap();
                assert_eq!(entries.len(), 1, "{name}");
                let dn = ldap3::SearchEntry::construct(entries.into_iter().next().unwrap()).dn;
                bind.simple_bind(&dn, PASSWORD).await.unwrap().success().unwrap();
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Samba AD DC in a private namespace: bash benches/dc.sh"]
async fn benchmark_cold_logins_as_a_ratio_to_a_plain_ldap_client() {
    let Some(dc) = Dc::exclusive().await else {
        return;
    };
    let real = std::env::var("BENCH_DC").is_ok_and(|v| v == "1");
    let users = env_number("BENCH_DC_USERS", if real { 1000 } else { 20 });
    let length = Duration::from_secs(env_number("BENCH_DC_SECS", if real { 10 } else { 1 }) as u64);
    let created = Instant::now();
    let names = Arc::new(dc.create_users("bench", users, PASSWORD));
    eprintln!(
        "benchmark: {users} users created in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = cpus >= 2;
    if pinned {
        dc.pin("1");
        let me = std::process::id().to_string();
        let _ = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &me])
            .output();
    }

    // The plain client before and after the server (A/B/A: the DC's own drift and the
    // machine's other load show up as the difference of the two).
    // Every user logs on once first: a first logon writes to the DC's database (lastLogon,
    // logonCount), which later ones do less, and would favour whichever run comes last.
    plain_client(dc.dc, names.clone(), Duration::from_secs(600), users).await;
    let plain_before = plain_client(dc.dc, names.clone(), length, usize::MAX).await;

    // autodiscoverd, started fresh, cache off: every login is cold.
    let d = daemon(&dc, &|t| {
        set(t, &["directory", "ldap", "cache_ttl_secs"], 0.into());
        // Every benchmark login comes from 127.0.0.1 and is right: nothing to throttle.
        set(t, &["throttle", "enabled"], false.into());
    });
    if pinned {
        let _ = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &d.pid().to_string()])
            .output();
    }
    let d = Arc::new(d);
    let failures = Arc::new(AtomicUsize::new(0));
    let server = {
        let (d_setup, names, failures) = (d.clone(), names.clone(), failures.clone());
        drive(
            length,
            usize::MAX,
            move || {
                let d = d_setup.clone();
                async move { client(&d).await }
            },
            move |c, i| {
                let name = names[i % names.len()].clone();
                let failures = failures.clone();
                Box::pin(async move {
                    let address = format!("{name}@contoso.com");
                    let a = c
                        .post_basic(PATH, &address, PASSWORD, &[], &outlook_request(&address))
                        .await;
                    if a.status != 200 || !a.text().contains("<Action>settings</Action>") {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                })
            },
        )
        .await
    };
    let plain_after = plain_client(dc.dc, names.clone(), length, usize::MAX).await;
    if pinned {
        let all = format!("0-{}", cpus - 1);
        dc.pin(&all);
    }
    // Against the better of the two plain runs: the ratio errs on our side of nothing.
    let plain = plain_before.per_second.max(plain_after.per_second);
    let plain_first = plain_before.first_second.max(plain_after.first_second) as f64;
    let ratio = server.per_second / plain;
    let first = server.first_second as f64 / plain_first.max(1.0);
    let placement = if pinned {
        " (DC on CPU 1, the rest on CPU 0)"
    } else {
        " (one CPU: not pinned)"
    };
    let smoke = if real {
        ""
    } else {
        " (smoke run: figures meaningless)"
    };
    eprintln!(
        "measured: cold logins against the DC{placement}: plain LDAP client (search + bind) \
         {:.0}/s before and {:.0}/s after, autodiscoverd {:.0}/s: ratio {ratio:.2}; first \
         second {} and {} vs {}: ratio {first:.2}{smoke}",
        plain_before.per_second,
        plain_after.per_second,
        server.per_second,
        plain_before.first_second,
        plain_after.first_second,
        server.first_second,
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "{}", d.log_text());
    assert!(server.per_second > 0.0 && plain > 0.0);
}
