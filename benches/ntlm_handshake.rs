//! Full NTLM handshakes per second through the sans-IO acceptor (Type 1 → Type 2,
//! Type 3 → verify with the NT hash), compared within the same run with one Basic
//! verification against an argon2 `password_hash` (the production Basic path of the
//! embedded directory) and a Basic check against a lab plaintext password.
//!
//! `cargo bench --bench ntlm_handshake` measures; under `cargo test` it runs a short smoke
//! pass so that it keeps compiling and working.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use autodiscoverd::auth::ntlm::client::{self, ClientOptions};
use autodiscoverd::auth::ntlm::crypto;
use autodiscoverd::auth::ntlm::{Acceptor, NtlmStep, Policy, ServerNames};
use autodiscoverd::auth::parse_basic;
use autodiscoverd::directory::{Directory, EmbeddedDirectory};

const NOW: u64 = 134_116_128_000_000_000;

fn per_second(iterations: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations.min(50) {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    f64::from(iterations) / start.elapsed().max(Duration::from_nanos(1)).as_secs_f64()
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (ntlm_n, basic_n) = if measuring { (200_000, 40) } else { (200, 2) };

    let names = ServerNames {
        nb_domain: "CONTOSO".into(),
        nb_computer: "AUTODISCOVER".into(),
        dns_domain: "contoso.com".into(),
        dns_computer: "autodiscover.contoso.com".into(),
        dns_tree: "contoso.com".into(),
    };
    let policy = Policy::default();
    let hash = crypto::nt_hash("alice-pw");
    let challenge = [0x5a; 8];
    let t1 = client::negotiate_message(client::DEFAULT_FLAGS);
    let mut acc = Acceptor::new();
    let NtlmStep::SendChallenge(t2) = acc.negotiate(&t1, &names, challenge, NOW) else {
        panic!("no challenge");
    };
    let (t3, _) = client::authenticate_message(
        &ClientOptions::new("alice", "CONTOSO", "alice-pw"),
        &t1,
        &t2,
    )
    .expect("type 3");

    let ntlm = per_second(ntlm_n, || {
        let mut acc = Acceptor::new();
        let _ = acc.negotiate(&t1, &names, challenge, NOW);
        let NtlmStep::NeedCredential { .. } = acc.authenticate(&t3, &policy, NOW) else {
            panic!("type 3 refused");
        };
        let NtlmStep::Authenticated(_) = acc.credential(Some(&hash), &policy, None) else {
            panic!("not authenticated");
        };
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let argon2_phc = autodiscoverd::directory::embedded::hash_password("alice-pw").expect("hash");
    let user = |secret: &str| {
        format!(
            "netbios_domain = \"CONTOSO\"\nlab = true\n[[user]]\nupn = \"alice@contoso.com\"\nsam_account_name = \"alice\"\n\
             display_name = \"Alice\"\nprimary_smtp = \"alice@contoso.com\"\nrecipient_type = \"UserMailbox\"\n{secret}\n"
        )
    };
    let hashed = EmbeddedDirectory::from_toml(
        Path::new("bench.toml"),
        &user(&format!("password_hash = \"{argon2_phc}\"")),
    )
    .expect("directory");
    let lab =
        EmbeddedDirectory::from_toml(Path::new("bench.toml"), &user("password = \"alice-pw\""))
            .expect("directory");
    let header = "YWxpY2VAY29udG9zby5jb206YWxpY2UtcHc="; // alice@contoso.com:alice-pw
    let basic = |dir: &EmbeddedDirectory| {
        let creds = parse_basic(header).expect("basic");
        let ok = runtime
            .block_on(dir.verify_password(&creds.login, &creds.password))
            .expect("verify");
        assert!(ok.is_some());
    };
    let basic_argon2 = per_second(basic_n, || basic(&hashed));
    let basic_lab = per_second(ntlm_n / 10, || basic(&lab));

    println!("ntlm_handshake: {ntlm:.0} full NTLMv2 handshakes/s (server side, one core)");
    println!("basic_argon2:   {basic_argon2:.1} Basic verifications/s (argon2id password_hash)");
    println!("basic_lab:      {basic_lab:.0} Basic verifications/s (lab plaintext)");
    println!(
        "ratio: one NTLM handshake costs {:.5} of an argon2 Basic check ({:.0}x cheaper), {:.2}x a lab Basic check",
        basic_argon2 / ntlm,
        ntlm / basic_argon2,
        basic_lab / ntlm
    );
}
