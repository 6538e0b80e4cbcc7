//! `bench_client`: the load driver for what a generic HTTP load tool cannot do, run as its
//! own process by `benches/run.sh` (wrk drives the plain request/response scenarios).
//!
//! - `ntlm`: full NTLM handshakes (Type 1 → Type 2 challenge → Type 3 → 200 with settings)
//!   on keep-alive TLS connections; each handshake is two HTTP requests on one connection,
//!   and its latency is measured from the Type 1 to the 200.
//! - `idle`: opens N TLS keep-alive connections, sends one request on each (the health
//!   check, or with `--pox` an authenticated POX request: every connection is then a served,
//!   idle keep-alive connection like an Outlook client's), prints `READY <open> <failed>` and holds
//!   them until standard input closes or `--hold-secs` pass.
//! - `soak`: the load of `benches/soak.sh` for a given time: keep-alive clients sending a mix
//!   of POX (Basic), SOAP GetUserSettings (Basic), AutodiscoverV2 and full NTLM handshakes;
//!   clients that abort mid-handshake (a real ClientHello, then the socket closes) and
//!   mid-request (half a body, then the socket closes); idle connections opened, held for
//!   1–30 s and closed. Prints one JSON line of counts; every request that is not one of the
//!   deliberate aborts must succeed.
//!
//! The server's certificate is verified against `--ca` (the benchmark's self-signed
//! certificate, which nginx serves too in the benchmark).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use autodiscoverd::auth::ntlm::client::{self as ntlm, ClientOptions};
use base64::Engine;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

const HOST: &str = "autodiscover.contoso.com";
const POX: &str = "/autodiscover/autodiscover.xml";

#[derive(Parser)]
struct Args {
    /// The server's HTTPS address.
    #[arg(long)]
    addr: SocketAddr,
    /// The certificate (PEM) to trust: the benchmark's self-signed one, for autodiscover.contoso.com.
    #[arg(long)]
    ca: PathBuf,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Full NTLM handshakes on keep-alive connections.
    Ntlm {
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        #[arg(long, default_value = "alice")]
        user: String,
        #[arg(long, default_value = "CONTOSO")]
        domain: String,
        #[arg(long, default_value = "Alice-Demo-2026!")]
        password: String,
    },
    /// Mixed load with aborting clients and idle connections coming and going.
    Soak {
        #[arg(long, default_value_t = 60)]
        duration_secs: u64,
        /// Keep-alive clients sending the mixed requests.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Pause of each client between requests (keeps the load to a share of the machine).
        #[arg(long, default_value_t = 10)]
        pause_ms: u64,
    },
    /// Opens and holds idle keep-alive connections.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Handshakes in flight at once while opening.
        #[arg(long, default_value_t = 64)]
        parallel: usize,
        #[arg(long, default_value_t = 120)]
        hold_secs: u64,
        /// The one request per connection: an authenticated POX settings request (Basic,
        /// like an Outlook client that now idles), not the anonymous health check.
        #[arg(long)]
        pox: bool,
    },
}

fn connector() -> TlsConnector {
    TlsConnector::from(connector_config())
}

/// The client configuration, trusting only the certificate given with `--ca`.
static CLIENT_CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

fn connector_config() -> Arc<rustls::ClientConfig> {
    Arc::clone(CLIENT_CONFIG.get().expect("set in main"))
}

fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read --ca") {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("trust anchor");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn connect(
    addr: SocketAddr,
    tls: &TlsConnector,
) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = tls
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &'static str,
) -> Result<(u16, Vec<String>), hyper::Error> {
    send_bytes(
        sender,
        method,
        path,
        authorization,
        Bytes::from_static(body.as_bytes()),
    )
    .await
}

async fn send_bytes(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Bytes,
) -> Result<(u16, Vec<String>), hyper::Error> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("Host", HOST)
        .header("Content-Type", "text/xml");
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let req = req.body(Full::new(body)).unwrap();
    sender.ready().await?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    let challenges = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    response.into_body().collect().await?;
    Ok((status, challenges))
}

const BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@contoso.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// One handshake; `Ok(true)` when it ended in 200.
async fn handshake(
    sender: &mut SendRequest<Full<Bytes>>,
    opts: &ClientOptions,
) -> Result<bool, hyper::Error> {
    let t1 = ntlm::negotiate_message(ntlm::DEFAULT_FLAGS);
    let (status, challenges) = send(
        sender,
        "POST",
        POX,
        Some(&format!("NTLM {}", b64(&t1))),
        BODY,
    )
    .await?;
    let Some(t2) = challenges
        .iter()
        .find_map(|c| c.strip_prefix("NTLM "))
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
    else {
        return Ok(false);
    };
    if status != 401 {
        return Ok(false);
    }
    let Ok((t3, _)) = ntlm::authenticate_message(opts, &t1, &t2) else {
        return Ok(false);
    };
    let (status, _) = send(
        sender,
        "POST",
        POX,
        Some(&format!("NTLM {}", b64(&t3))),
        BODY,
    )
    .await?;
    Ok(status == 200)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

async fn run_ntlm(addr: SocketAddr, connections: usize, duration: Duration, opts: ClientOptions) {
    let tls = connector();
    let opts = Arc::new(opts);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let tls = tls.clone();
        let opts = Arc::clone(&opts);
        tasks.spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::new();
            let mut errors = 0u64;
            let mut sender = None;
            while Instant::now() < deadline {
                if sender.is_none() {
                    match connect(addr, &tls).await {
                        Ok(s) => sender = Some(s),
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(s) = sender.as_mut() else { continue };
                let t = Instant::now();
                match handshake(s, &opts).await {
                    Ok(true) => latencies_us.push(t.elapsed().as_micros() as u32),
                    Ok(false) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        sender = None;
                    }
                }
            }
            (latencies_us, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r.unwrap();
        all.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "{{\"scenario\":\"ntlm\",\"handshakes\":{},\"seconds\":{secs:.3},\"handshakes_per_sec\":{:.1},\"requests_per_sec\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"errors\":{errors}}}",
        all.len(),
        all.len() as f64 / secs,
        2.0 * all.len() as f64 / secs,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
    );
}

async fn run_idle(
    addr: SocketAddr,
    connections: usize,
    parallel: usize,
    hold: Duration,
    pox: bool,
) {
    let basic = format!("Basic {}", b64(b"alice@contoso.com:Alice-Demo-2026!"));
    let tls = connector();
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let tls = tls.clone();
        let gate = Arc::clone(&gate);
        let basic = basic.clone();
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            let mut sender = connect(addr, &tls).await.ok()?;
            let (status, _) = if pox {
                send(&mut sender, "POST", POX, Some(&basic), BODY).await
            } else {
                send(
                    &mut sender,
                    "GET",
                    "/autodiscover/healthcheck.htm",
                    None,
                    "",
                )
                .await
            }
            .ok()?;
            drop(permit);
            (status == 200).then_some(sender)
        });
    }
    let mut held = Vec::with_capacity(connections);
    let mut failed = 0usize;
    while let Some(r) = tasks.join_next().await {
        match r.ok().flatten() {
            Some(s) => held.push(s),
            None => failed += 1,
        }
    }
    println!("READY {} {failed}", held.len());
    // Hold until the script closes our standard input, or the time is up.
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = closed.send(());
    });
    let _ = tokio::time::timeout(hold, on_close).await;
    let still_open = held.iter().filter(|s| !s.is_closed()).count();
    println!("RELEASED {still_open}");
}

/// What the soak load counted.
#[derive(Default)]
struct SoakCounts {
    ok: [AtomicU64; 4],
    failed: [AtomicU64; 4],
    handshake_aborts: AtomicU64,
    request_aborts: AtomicU64,
    idle_opened: AtomicU64,
    idle_failed: AtomicU64,
}

const SOAK_KINDS: [&str; 4] = ["pox", "soap", "v2", "ntlm"];

/// A random duration in `[low, high)` milliseconds.
fn random_ms(low: u64, high: u64) -> Duration {
    Duration::from_millis(low + rand::random::<u64>() % (high - low).max(1))
}

async fn run_soak(addr: SocketAddr, duration: Duration, clients: usize, pause: Duration) {
    let tls = connector();
    let counts = Arc::new(SoakCounts::default());
    let deadline = Instant::now() + duration;
    let basic = Arc::new(format!(
        "Basic {}",
        b64(b"alice@contoso.com:Alice-Demo-2026!")
    ));
    let soap = Bytes::from(autodiscoverd::probe::answer::soap_request(
        "alice@contoso.com",
        "https://autodiscover.contoso.com/autodiscover/autodiscover.svc",
    ));
    let opts = Arc::new(ClientOptions::new("alice", "CONTOSO", "Alice-Demo-2026!"));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (tls, counts, basic, soap, opts) = (
            tls.clone(),
            Arc::clone(&counts),
            Arc::clone(&basic),
            soap.clone(),
            Arc::clone(&opts),
        );
        tasks.spawn(async move {
            let mut sender = None;
            let mut served_here = 0u32;
            let mut turn = client;
            while Instant::now() < deadline {
                // A new connection now and then, so handshakes are part of the mix.
                if served_here >= 50 {
                    sender = None;
                    served_here = 0;
                }
                if sender.is_none() {
                    match connect(addr, &tls).await {
                        Ok(s) => sender = Some(s),
                        Err(e) => {
                            eprintln!("soak: connect failed: {e}");
                            counts.failed[turn % 4].fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(pause).await;
                            continue;
                        }
                    }
                }
                let Some(s) = sender.as_mut() else { continue };
                let kind = turn % 4;
                let outcome = match kind {
                    0 => send(s, "POST", POX, Some(&basic), BODY)
                        .await
                        .map(|(status, _)| status == 200),
                    1 => send_bytes(
                        s,
                        "POST",
                        "/autodiscover/autodiscover.svc",
                        Some(&basic),
                        soap.clone(),
                    )
                    .await
                    .map(|(status, _)| status == 200),
                    2 => send(
                        s,
                        "GET",
                        "/autodiscover/autodiscover.json/v1.0/alice@contoso.com?Protocol=EWS",
                        None,
                        "",
                    )
                    .await
                    .map(|(status, _)| status == 200),
                    _ => handshake(s, &opts).await,
                };
                match outcome {
                    Ok(true) => {
                        counts.ok[kind].fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {
                        eprintln!("soak: {} answered unexpectedly", SOAK_KINDS[kind]);
                        counts.failed[kind].fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("soak: {} failed: {e}", SOAK_KINDS[kind]);
                        counts.failed[kind].fetch_add(1, Ordering::Relaxed);
                        sender = None;
                    }
                }
                served_here += 1;
                turn += 1;
                tokio::time::sleep(pause).await;
            }
        });
    }
    // Clients that send a real ClientHello (all of it or a part) and close.
    {
        let counts = Arc::clone(&counts);
        tasks.spawn(async move {
            let config = connector_config();
            while Instant::now() < deadline {
                tokio::time::sleep(random_ms(50, 150)).await;
                let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
                    continue;
                };
                let mut conn = rustls::ClientConnection::new(
                    Arc::clone(&config),
                    ServerName::try_from(HOST).unwrap(),
                )
                .unwrap();
                let mut hello = Vec::new();
                conn.write_tls(&mut hello).unwrap();
                let cut = if rand::random::<bool>() {
                    hello.len()
                } else {
                    1 + rand::random::<usize>() % hello.len().max(1)
                };
                let _ = tcp.write_all(&hello[..cut.min(hello.len())]).await;
                tokio::time::sleep(random_ms(0, 50)).await;
                counts.handshake_aborts.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // Clients that close mid-request: in the head or in the body.
    {
        let (tls, counts, basic) = (tls.clone(), Arc::clone(&counts), Arc::clone(&basic));
        tasks.spawn(async move {
            while Instant::now() < deadline {
                tokio::time::sleep(random_ms(100, 300)).await;
                let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                    continue;
                };
                let Ok(mut stream) = tls.connect(ServerName::try_from(HOST).unwrap(), tcp).await
                else {
                    continue;
                };
                let head = format!(
                    "POST {POX} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {basic}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                    BODY.len()
                );
                let request = format!("{head}{BODY}");
                let cut = 1 + rand::random::<usize>() % (request.len() - 1);
                let _ = stream.write_all(&request.as_bytes()[..cut]).await;
                let _ = stream.flush().await;
                tokio::time::sleep(random_ms(0, 100)).await;
                counts.request_aborts.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // Idle connections coming and going: one health check each, then held 1–30 s (past the
    // server's idle timeout some of the time, when the server closes them).
    {
        let (tls, counts) = (tls.clone(), Arc::clone(&counts));
        tasks.spawn(async move {
            let mut holders = tokio::task::JoinSet::new();
            while Instant::now() < deadline {
                tokio::time::sleep(random_ms(20, 80)).await;
                let (tls, counts) = (tls.clone(), Arc::clone(&counts));
                holders.spawn(async move {
                    let opened = match connect(addr, &tls).await {
                        Ok(mut s) => send(&mut s, "GET", "/autodiscover/healthcheck.htm", None, "")
                            .await
                            .ok()
                            .filter(|(status, _)| *status == 200)
                            .map(|_| s),
                        Err(_) => None,
                    };
                    match opened {
                        Some(s) => {
                            counts.idle_opened.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(random_ms(1_000, 30_000)).await;
                            drop(s);
                        }
                        None => {
                            eprintln!("soak: an idle connection could not be opened");
                            counts.idle_failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                while holders.try_join_next().is_some() {}
            }
            holders.abort_all();
            while holders.join_next().await.is_some() {}
        });
    }
    while tasks.join_next().await.is_some() {}
    let load =
        |a: &[AtomicU64; 4]| -> Vec<u64> { a.iter().map(|c| c.load(Ordering::Relaxed)).collect() };
    let (ok, failed) = (load(&counts.ok), load(&counts.failed));
    let per_kind: Vec<String> = SOAK_KINDS
        .iter()
        .enumerate()
        .map(|(i, k)| format!("\"{k}\":{{\"ok\":{},\"failed\":{}}}", ok[i], failed[i]))
        .collect();
    println!(
        "{{\"scenario\":\"soak\",{},\"handshake_aborts\":{},\"request_aborts\":{},\"idle_opened\":{},\"idle_failed\":{}}}",
        per_kind.join(","),
        counts.handshake_aborts.load(Ordering::Relaxed),
        counts.request_aborts.load(Ordering::Relaxed),
        counts.idle_opened.load(Ordering::Relaxed),
        counts.idle_failed.load(Ordering::Relaxed),
    );
}

fn main() {
    let args = Args::parse();
    let _ = CLIENT_CONFIG.set(client_config(&args.ca));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        match args.mode {
            Mode::Ntlm {
                connections,
                duration_secs,
                user,
                domain,
                password,
            } => {
                let opts = ClientOptions::new(&user, &domain, &password);
                run_ntlm(
                    args.addr,
                    connections,
                    Duration::from_secs(duration_secs),
                    opts,
                )
                .await
            }
            Mode::Soak {
                duration_secs,
                clients,
                pause_ms,
            } => {
                run_soak(
                    args.addr,
                    Duration::from_secs(duration_secs),
                    clients,
                    Duration::from_millis(pause_ms),
                )
                .await
            }
            Mode::Idle {
                connections,
                parallel,
                hold_secs,
                pox,
            } => {
                run_idle(
                    args.addr,
                    connections,
                    parallel,
                    Duration::from_secs(hold_secs),
                    pox,
                )
                .await
            }
        }
    });
}
