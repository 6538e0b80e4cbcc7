//! The LDAP backend end to end: real TLS HTTP against the server, backed by a real slapd
//! (deploy/ldap lab data). Skipped loudly without slapd, failed under CI=true.

use std::time::{Duration, Instant};

use autodiscoverd::directory::{Directory, DirectoryBackend, Login};
use roxmltree::{Document, Node};

use crate::harness::slapd::{example_config, SERVICE_DN};
use crate::harness::{outlook_request, set, Slapd, TestServer};

const PATH: &str = "/autodiscover/autodiscover.xml";
const OUTLOOK: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

fn child<'a>(node: Node<'a, 'a>, name: &str) -> Node<'a, 'a> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .unwrap_or_else(|| panic!("no <{name}> under <{}>", node.tag_name().name()))
}

fn text<'a>(node: Node<'a, 'a>, name: &str) -> &'a str {
    child(node, name).text().unwrap_or("")
}

/// `Response` of a POX answer.
fn response<'a>(doc: &'a Document<'a>) -> Node<'a, 'a> {
    child(doc.root_element(), "Response")
}

/// The ErrorCode of a POX error answer.
fn error_code(body: &str) -> String {
    let doc = Document::parse(body).expect("well-formed XML");
    text(child(response(&doc), "Error"), "ErrorCode").to_string()
}

/// A server on slapd with the cache TTL given and `extra` applied last.
async fn server(
    slapd: &Slapd,
    cache_ttl_secs: i64,
    extra: &dyn Fn(&mut toml::Table),
) -> TestServer {
    TestServer::start_with(&|t| {
        slapd.configure(t);
        set(
            t,
            &["directory", "ldap", "cache_ttl_secs"],
            cache_ttl_secs.into(),
        );
        extra(t);
    })
    .await
}

async fn ask(server: &TestServer, user: &str, password: &str, address: &str) -> (u16, String) {
    let mut c = server.client().await;
    let a = c
        .post_basic(PATH, user, password, &[], &outlook_request(address))
        .await;
    (a.status.as_u16(), a.text())
}

#[tokio::test]
async fn local_mailbox_gets_settings_with_values_read_from_ldap() {
    let Some(slapd) = Slapd::start() else { return };
    let server = server(&slapd, 0, &|_| {}).await;
    let (status, body) = ask(
        &server,
        "alice@contoso.com",
        "alice-pw",
        "alice@contoso.com",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let doc = Document::parse(&body).unwrap();
    let r = response(&doc);
    assert_eq!(r.tag_name().namespace(), Some(OUTLOOK), "{body}");
    let user = child(r, "User");
    assert_eq!(text(user, "DisplayName"), "Alice <Example> & Co");
    assert_eq!(text(user, "AutoDiscoverSMTPAddress"), "alice@contoso.com");
    assert!(text(user, "LegacyDN").ends_with("-alice"));
    let account = child(r, "Account");
    assert_eq!(text(account, "Action"), "settings");
    let exch = account
        .children()
        .find(|n| n.tag_name().name() == "Protocol" && text(*n, "Type") == "EXCH")
        .expect("EXCH");
    // msExchMailboxGuid, read as .NET-ordered bytes from slapd.
    assert_eq!(
        text(exch, "Server"),
        "9d0b7c2e-4f1a-4e6b-8a3c-5b2d1e0f7a64@contoso.com"
    );
}

#[tokio::test]
async fn migrated_mailbox_gets_redirect_addr_with_its_target_address() {
    let Some(slapd) = Slapd::start() else { return };
    let server = server(&slapd, 0, &|_| {}).await;
    let (status, body) = ask(&server, "CONTOSO\\bob", "bob-pw", "bob@contoso.com").await;
    assert_eq!(status, 200);
    let doc = Document::parse(&body).unwrap();
    let account = child(response(&doc), "Account");
    assert_eq!(text(account, "Action"), "redirectAddr");
    assert_eq!(
        text(account, "RedirectAddr"),
        "bob@contoso.mail.onmicrosoft.com"
    );
}

#[tokio::test]
async fn alias_in_proxy_addresses_answers_for_the_shared_mailbox() {
    let Some(slapd) = Slapd::start() else { return };
    let server = server(&slapd, 0, &|_| {}).await;
    let (status, body) = ask(&server, "alice", "alice-pw", "SALES@contoso.com").await;
    assert_eq!(status, 200);
    let doc = Document::parse(&body).unwrap();
    let r = response(&doc);
    assert_eq!(text(child(r, "Account"), "Action"), "settings");
    assert_eq!(
        text(child(r, "User"), "AutoDiscoverSMTPAddress"),
        "carol.jones@contoso.com"
    );
    assert_eq!(text(child(r, "User"), "DisplayName"), "Carol Jones (Sales)");
    // And the broken objects keep their error codes through LDAP.
    for (address, code) in [
        ("frank@contoso.com", "602"),
        ("grace@contoso.com", "602"),
        ("dave@contoso.com", "501"),
        ("partner@contoso.com", "500"),
        ("nobody@contoso.com", "500"),
    ] {
        let (status, body) = ask(&server, "alice", "alice-pw", address).await;
        assert_eq!(status, 200);
        assert_eq!(error_code(&body), code, "{address}");
    }
}

#[tokio::test]
async fn disabled_account_and_wrong_or_empty_password_get_401() {
    let Some(slapd) = Slapd::start() else { return };
    let server = server(&slapd, 60, &|_| {}).await;
    for (user, password) in [
        ("eve@contoso.com", "eve-pw"),
        ("alice@contoso.com", "wrong"),
        ("alice@contoso.com", ""),
        ("nobody@contoso.com", "alice-pw"),
    ] {
        let (status, body) = ask(&server, user, password, "alice@contoso.com").await;
        assert_eq!(status, 401, "{user}: {body}");
        assert!(body.is_empty());
    }
    // Eve's password is right: only userAccountControl keeps her out, and she was never
    // even bound (OpenLDAP would have accepted the bind). Empty passwords never bind.
    let binds = slapd.bind_dns();
    assert!(!binds.iter().any(|dn| dn.contains("eve")), "{binds:?}");
    assert!(
        !binds.iter().any(|dn| dn.is_empty()),
        "anonymous bind: {binds:?}"
    );
}

#[tokio::test]
async fn filter_injection_in_addresses_and_logins_finds_nothing_and_binds_nothing() {
    let Some(slapd) = Slapd::start() else { return };
    let server = server(&slapd, 0, &|_| {}).await;
    for address in [
        "*",
        "*@contoso.com",
        "a*@contoso.com",
        "alice@contoso.com)(mail=*",
        "*)(|(objectClass=*",
        "\\2a@contoso.com",
        "\\",
    ] {
        let (status, body) = ask(&server, "alice", "alice-pw", address).await;
        assert_eq!(status, 200);
        assert_eq!(error_code(&body), "500", "{address}: {body}");
    }
    for login in [
        "*",
        "al*",
        "*lice",
        "alice)(sAMAccountName=*",
        "*)(|(sAMAccountName=*",
        "CONTOSO\\a*",
        "*@contoso.com",
        "alice@contoso.com)(userPrincipalName=*",
        "\\61lice",
    ] {
        let (status, _) = ask(&server, login, "alice-pw", "alice@contoso.com").await;
        assert_eq!(status, 401, "{login}");
    }
    // Only the service account and the 7 legitimate alice requests bound a real entry;
    // refused logins spent their bind on the timing-equalising dummy DN.
    let binds = slapd.bind_dns();
    let alice = binds
        .iter()
        .filter(|dn| dn.starts_with("cn=alice example,"))
        .count();
    assert_eq!(alice, 7, "{binds:?}");
    let dummy = binds
        .iter()
        .filter(|dn| dn.starts_with("cn=autodiscoverd-no-such-user,"))
        .count();
    // 8, not 9: `\61lice` has an empty domain part, so Basic parsing refuses it before
    // the directory is asked at all.
    assert_eq!(dummy, 8, "each refused login costs one bind: {binds:?}");
    assert!(
        binds.iter().all(|dn| dn.eq_ignore_ascii_case(SERVICE_DN)
            || dn.starts_with("cn=alice example,")
            || dn.starts_with("cn=autodiscoverd-no-such-user,")),
        "{binds:?}"
    );
    // slapd saw the metacharacters as escaped values.
    let filters = slapd.search_filters().join("\n").to_ascii_lowercase();
    assert!(filters.contains("(samaccountname=al\\2a)"), "{filters}");
    assert!(
        filters.contains("(mail=alice@contoso.com\\29\\28mail=\\2a)"),
        "{filters}"
    );
}

#[tokio::test]
async fn logins_with_filter_metacharacters_work_because_they_are_escaped() {
    let Some(slapd) = Slapd::start() else { return };
    let server = server(&slapd, 0, &|_| {}).await;
    let (status, body) = ask(&server, "par(en)*", "paren-pw", "paren@contoso.com").await;
    assert_eq!(status, 200, "{body}");
    let doc = Document::parse(&body).unwrap();
    assert_eq!(text(child(response(&doc), "Account"), "Action"), "settings");
    let (status, _) = ask(&server, "par(en)*", "alice-pw", "paren@contoso.com").await;
    assert_eq!(status, 401);
}

/// Collects everything logged on this thread (the test runtime is single-threaded, so
/// the in-process server's tasks log here too).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn directory_outage_answers_603_within_the_timeout_and_recovers_after_restart() {
    let Some(mut slapd) = Slapd::start() else {
        return;
    };
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Cache off: every request must reach the directory.
    let server = server(&slapd, 0, &|_| {}).await;
    let (status, _) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
    assert_eq!(status, 200);

    slapd.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{body}");
        assert_eq!(error_code(&body), "603");
        // timeout_ms is 2000; a refused connection answers at once.
        assert!(took < Duration::from_millis(2000 + 1000), "took {took:?}");
    }

    slapd.restart();
    // The background probe (every 250 ms) sees it back: well within a second.
    let back = Instant::now();
    loop {
        let (_, body) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
        if !body.contains("<ErrorCode>603") {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(1),
            "not back after a second"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..2 {
        let (status, body) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
        assert_eq!(status, 200);
        let doc = Document::parse(&body).unwrap();
        assert_eq!(text(child(response(&doc), "Account"), "Action"), "settings");
    }

    // One line per state change, not one per request; no secret in any log line.
    let logs = logs.text();
    assert_eq!(
        logs.matches("LDAP directory unavailable").count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches("LDAP directory reachable again").count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("WARN"), "{logs}");
    for secret in ["alice-pw", "svc-pw"] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
}

/// Accepts TCP connections and never answers (a hung or black-holed directory).
async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

#[tokio::test]
async fn an_unresponsive_directory_costs_one_connect_timeout_then_answers_603_at_once() {
    let Some(slapd) = Slapd::start() else { return };
    let (port, task) = silent_listener().await;
    let server = server(&slapd, 0, &|t| {
        set(
            t,
            &["directory", "ldap", "urls"],
            toml::Value::Array(vec![format!("ldap://127.0.0.1:{port}").into()]),
        );
        set(t, &["directory", "ldap", "timeout_ms"], 800.into());
        set(t, &["directory", "ldap", "connect_timeout_ms"], 400.into());
    })
    .await;
    let started = Instant::now();
    let (status, body) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(error_code(&body), "603");
    // The service bind went unanswered for connect_timeout_ms: the only URL is abandoned.
    assert!(took >= Duration::from_millis(350), "took {took:?}");
    assert!(took < Duration::from_millis(2000), "took {took:?}");
    // Every URL is known unreachable: the next answers do not wait (the circuit is open).
    for _ in 0..5 {
        let started = Instant::now();
        let (status, body) = ask(&server, "bob", "bob-pw", "bob@contoso.com").await;
        assert_eq!((status, error_code(&body)), (200, "603".to_string()));
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
    task.abort();
}

/// Copies `from` to `to`, holding what it read while `frozen`.
async fn pipe(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while frozen.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// True for a POX Error 603 answer (any other answer has no ErrorCode 603).
fn is_603(body: &str) -> bool {
    body.contains("<ErrorCode>603</ErrorCode>")
}

/// A TCP relay to `target` that can be frozen: it then passes nothing on in either direction
/// (a directory server that hangs with connections open, as a stopped process does).
struct FreezableRelay {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezableRelay {
    async fn start(target: std::net::SocketAddr) -> FreezableRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pipe(ri, wo, flag.clone()));
                tokio::spawn(pipe(ro, wi, flag.clone()));
            }
        });
        FreezableRelay { port, frozen, task }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_server_that_hangs_mid_pool_is_abandoned_for_the_next_url_within_one_connect_timeout() {
    let Some(slapd) = Slapd::start() else { return };
    let direct = slapd.url();
    let target: std::net::SocketAddr = direct
        .trim_start_matches("ldap://")
        .replace("localhost", "127.0.0.1")
        .parse()
        .unwrap();
    let relay = FreezableRelay::start(target).await;
    let server = server(&slapd, 0, &|t| {
        set(
            t,
            &["directory", "ldap", "urls"],
            toml::Value::Array(vec![
                format!("ldap://127.0.0.1:{}", relay.port).into(),
                direct.clone().into(),
            ]),
        );
        set(t, &["directory", "ldap", "timeout_ms"], 3000.into());
        set(t, &["directory", "ldap", "connect_timeout_ms"], 500.into());
    })
    .await;
    // Pooled connections to the first URL, then it hangs with them open.
    for _ in 0..3 {
        let (status, body) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
        assert_eq!(status, 200, "{body}");
        assert!(!is_603(&body), "{body}");
    }
    relay.freeze(true);
    let started = Instant::now();
    let (status, body) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert!(!is_603(&body), "{body}");
    // One unanswered operation (500 ms) and the rest on the second URL.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    // The hung server's other pooled connections are not tried again.
    for _ in 0..5 {
        let started = Instant::now();
        let (status, body) = ask(&server, "bob", "bob-pw", "bob@contoso.com").await;
        assert_eq!(status, 200);
        assert!(!is_603(&body), "{body}");
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
    }
    relay.freeze(false);
    relay.task.abort();
}

#[tokio::test]
async fn during_an_outage_cached_users_are_served_stale_and_never_with_another_password() {
    let Some(mut slapd) = Slapd::start() else {
        return;
    };
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = server(&slapd, 1, &|t| {
        set(t, &["directory", "ldap", "serve_stale_secs"], 3600.into());
    })
    .await;
    let (status, body) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
    assert_eq!((status, is_603(&body)), (200, false), "{body}");
    // Past the TTL, then the directory goes away.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    slapd.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
        assert_eq!(status, 200, "{body}");
        let doc = Document::parse(&body).unwrap();
        assert_eq!(text(child(response(&doc), "Account"), "Action"), "settings");
        assert!(started.elapsed() < Duration::from_millis(1000));
    }
    // A password the directory never accepted is not accepted from stale data ...
    let (status, body) = ask(&server, "alice", "guess", "alice@contoso.com").await;
    assert_eq!(
        (status, error_code(&body)),
        (200, "603".to_string()),
        "{body}"
    );
    // ... nor is a user never seen.
    let (status, body) = ask(&server, "bob", "bob-pw", "bob@contoso.com").await;
    assert_eq!(
        (status, error_code(&body)),
        (200, "603".to_string()),
        "{body}"
    );
    let text_of_logs = logs.text();
    let stale_lines = text_of_logs
        .lines()
        .filter(|l| l.contains("access") && l.contains("stale=true"))
        .count();
    assert_eq!(stale_lines, 3, "{text_of_logs}");
    // Back: the stale lookup is refreshed in the background, new users are answered.
    slapd.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = ask(&server, "bob", "bob-pw", "bob@contoso.com").await;
        if status == 200 && !is_603(&body) {
            break;
        }
        assert!(Instant::now() < deadline, "not back: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !logs.text().contains("lookups served stale were refreshed") {
        assert!(Instant::now() < deadline, "{}", logs.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failover_moves_to_the_next_url_when_the_first_is_down() {
    let Some(slapd) = Slapd::start() else { return };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = slapd.url();
    let server = server(&slapd, 0, &|t| {
        set(
            t,
            &["directory", "ldap", "urls"],
            toml::Value::Array(vec![
                format!("ldap://127.0.0.1:{closed}").into(),
                url.clone().into(),
            ]),
        );
    })
    .await;
    let (status, body) = ask(&server, "alice", "alice-pw", "bob@contoso.com").await;
    assert_eq!(status, 200);
    let doc = Document::parse(&body).unwrap();
    assert_eq!(
        text(child(response(&doc), "Account"), "Action"),
        "redirectAddr"
    );
}

#[tokio::test]
async fn ldaps_and_starttls_verify_the_directory_certificate_against_ca_file() {
    let Some(slapd) = Slapd::start() else { return };
    let ca = slapd.ca_file.display().to_string();
    for (url, starttls) in [(slapd.ldaps_url(), false), (slapd.starttls_url(), true)] {
        let server = server(&slapd, 0, &|t| {
            set(
                t,
                &["directory", "ldap", "urls"],
                toml::Value::Array(vec![url.clone().into()]),
            );
            set(t, &["directory", "ldap", "starttls"], starttls.into());
            set(t, &["directory", "ldap", "ca_file"], ca.clone().into());
        })
        .await;
        let (status, body) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
        assert_eq!(status, 200, "{url}");
        let doc = Document::parse(&body).unwrap();
        assert_eq!(
            text(child(response(&doc), "Account"), "Action"),
            "settings",
            "{url}"
        );

        // Without our CA (system roots only) the certificate is refused: 603, no bind.
        let untrusting = server_without_ca(&slapd, &url, starttls).await;
        let (status, body) = ask(&untrusting, "alice", "alice-pw", "alice@contoso.com").await;
        assert_eq!(status, 200);
        assert_eq!(error_code(&body), "603", "{url}");
    }
}

async fn server_without_ca(slapd: &Slapd, url: &str, starttls: bool) -> TestServer {
    server(slapd, 0, &|t| {
        set(
            t,
            &["directory", "ldap", "urls"],
            toml::Value::Array(vec![url.into()]),
        );
        set(t, &["directory", "ldap", "starttls"], starttls.into());
    })
    .await
}

#[tokio::test]
async fn the_cache_spares_the_directory_repeated_binds_but_never_caches_failures() {
    let Some(slapd) = Slapd::start() else { return };
    let server = server(&slapd, 60, &|_| {}).await;
    for _ in 0..3 {
        let (status, _) = ask(&server, "alice", "alice-pw", "alice@contoso.com").await;
        assert_eq!(status, 200);
        let (status, _) = ask(&server, "alice", "not-it", "alice@contoso.com").await;
        assert_eq!(status, 401);
    }
    let binds = slapd.bind_dns();
    let alice = binds
        .iter()
        .filter(|dn| dn.starts_with("cn=alice example,"))
        .count();
    // One bind for the good password (then cached), one per wrong attempt.
    assert_eq!(alice, 1 + 3, "{binds:?}");
}

#[tokio::test]
async fn nt_credentials_come_from_the_configured_hash_attribute() {
    let Some(slapd) = Slapd::start() else { return };
    let dir = slapd.directory(60, &|_| {});
    assert!(dir.supports_nt_hashes());
    let cred = dir
        .nt_credential(&Login::UserPrincipalName("alice@contoso.com".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        cred.nt_hash,
        [
            0xd0, 0x61, 0xef, 0x15, 0xe9, 0x49, 0x4b, 0x45, 0x80, 0x16, 0xfa, 0x76, 0x0c, 0xec,
            0xdd, 0x63
        ]
    );
    assert_eq!(cred.account, "alice");
    assert_eq!(cred.identity.user_principal_name, "alice@contoso.com");
    assert!(!format!("{cred:?}").contains("d061"));
    let down_level = Login::DownLevel {
        domain: "CONTOSO".into(),
        user: "bob".into(),
    };
    assert!(dir.nt_credential(&down_level).await.unwrap().is_some());
    // Disabled, unknown, injected: nothing.
    for login in ["eve", "nobody", "*", "a*"] {
        let login = Login::SamAccountName(login.into());
        assert_eq!(dir.nt_credential(&login).await.unwrap(), None, "{login:?}");
    }

    // Without the attribute configured the backend offers no NT hashes at all.
    let plain = slapd.directory(0, &|t| {
        if let Some(attrs) = t["directory"]["ldap"]
            .as_table_mut()
            .and_then(|l| l.get_mut("attributes"))
            .and_then(|a| a.as_table_mut())
        {
            attrs.remove("nt_password");
        }
    });
    assert!(!plain.supports_nt_hashes());
    let alice = Login::SamAccountName("alice".into());
    assert_eq!(plain.nt_credential(&alice).await.unwrap(), None);
    assert!(matches!(plain, DirectoryBackend::Ldap(_)));
}

#[test]
fn check_config_binds_as_the_service_account_and_never_prints_its_password() {
    let Some(mut slapd) = Slapd::start() else {
        return;
    };
    let config = example_config(slapd.path(), &|t| slapd.configure(t));
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
            .args(["check-config", "--config"])
            .arg(&config.source)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap()
    };
    let out = run();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("directory:          ldap ldap://127.0.0.1:"),
        "{all}"
    );
    assert!(all.contains("directory bind:     OK"), "{all}");
    assert!(!all.contains("svc-pw"), "{all}");

    slapd.stop();
    let out = run();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("directory bind:     FAILED"), "{all}");
    assert!(!all.contains("svc-pw"), "{all}");
}

/// A SOAP GetUserSettings envelope for one user.
fn soap_get_user_settings(user: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:wsa="http://www.w3.org/2005/08/addressing"><s:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action></s:Header><s:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{user}</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></s:Body></s:Envelope>"#
    )
}

#[tokio::test]
async fn soap_and_v2_answer_from_ldap_and_fail_cleanly_in_an_outage() {
    let Some(mut slapd) = Slapd::start() else {
        return;
    };
    let server = server(&slapd, 0, &|_| {}).await;
    let mut c = server.client().await;
    let soap = soap_get_user_settings("bob@contoso.com");
    let a = c
        .post_basic(
            "/autodiscover/autodiscover.svc",
            "bob",
            "bob-pw",
            &[],
            &soap,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let body = a.text();
    let doc = Document::parse(&body).unwrap();
    let target = doc
        .descendants()
        .find(|n| n.tag_name().name() == "RedirectTarget")
        .and_then(|n| n.text());
    assert_eq!(target, Some("bob@contoso.mail.onmicrosoft.com"), "{body}");
    let v2 = "/autodiscover/autodiscover.json/v1.0/bob@contoso.com?Protocol=Ews";
    let a = c.send("GET", v2, &[], b"").await;
    assert_eq!(a.status, 302);
    assert!(a
        .header("location")
        .is_some_and(|l| l.contains("bob%40contoso.mail.onmicrosoft.com")
            || l.contains("bob@contoso.mail.onmicrosoft.com")));

    slapd.stop();
    let a = c
        .post_basic(
            "/autodiscover/autodiscover.svc",
            "bob",
            "bob-pw",
            &[],
            &soap,
        )
        .await;
    assert_eq!(a.status, 500, "SOAP fault: {}", a.text());
    let a = c.send("GET", v2, &[], b"").await;
    assert_eq!(a.status, 503, "{}", a.text());
}

/// Requests/s of authenticated POX requests, every request carrying Basic credentials,
/// against slapd with the cache off (search + bind + search per request) and on.
/// Not a timed test: run it on purpose and read the figures.
/// `cargo test --release --test it benchmark_ -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --release -- --ignored --nocapture"]
async fn benchmark_basic_auth_requests_per_second_cold_and_cached() {
    let Some(slapd) = Slapd::start() else { return };
    const CLIENTS: usize = 8;
    let mut rates = Vec::new();
    // More requests with the cache, so that both runs last long enough to measure.
    for (label, ttl, per_client) in [("cache off", 0, 500), ("cache on (60 s)", 60, 5000)] {
        let server = server(&slapd, ttl, &|_| {}).await;
        let body = outlook_request("alice@contoso.com");
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let mut c = server.client().await;
            // Warm-up: TLS session, pooled LDAP connections (and, when on, the cache).
            let a = c.post_basic(PATH, "alice", "alice-pw", &[], &body).await;
            assert_eq!(a.status, 200);
            clients.push(c);
        }
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut c in clients {
            let body = body.clone();
            tasks.spawn(async move {
                for _ in 0..per_client {
                    let a = c.post_basic(PATH, "alice", "alice-pw", &[], &body).await;
                    assert_eq!(a.status, 200);
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = (CLIENTS * per_client) as f64 / secs;
        println!(
            "ldap basic auth, {label}: {} requests over {CLIENTS} connections in {secs:.2} s = {rate:.0} req/s",
            CLIENTS * per_client
        );
        rates.push(rate);
        server.stop().await;
    }
    println!("cache speed-up: {:.1}x", rates[1] / rates[0]);
}

/// `curl --ntlm` (an independent NTLM client) against the server backed by slapd: the NT
/// hash comes from sambaNTPassword through `nt_credential`.
#[tokio::test]
async fn curl_ntlm_authenticates_with_the_nt_hash_from_slapd() {
    let curl_ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("NTLM"));
    if !curl_ok {
        crate::harness::slapd::missing("curl with NTLM support");
        return;
    }
    let Some(slapd) = Slapd::start() else { return };
    let server = server(&slapd, 0, &|t| {
        set(t, &["auth", "basic"], false.into());
    })
    .await;
    let ca = server.pki.write_ca(server.dir.path());
    let port = server.https.port();
    let run = |user: &'static str, password: &'static str| {
        let ca = ca.clone();
        let body = outlook_request("bob@contoso.com");
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args([
                    "-sS",
                    "--ntlm",
                    "-u",
                    &format!("{user}:{password}"),
                    "--cacert",
                ])
                .arg(&ca)
                .args([
                    "--resolve",
                    &format!("autodiscover.contoso.com:{port}:127.0.0.1"),
                    "-H",
                    "Content-Type: text/xml",
                    "--data-binary",
                    &body,
                    "-w",
                    "\n@@%{http_code}",
                    &format!("https://autodiscover.contoso.com:{port}{PATH}"),
                ])
                .output()
                .unwrap()
        })
    };
    for user in ["CONTOSO\\alice", "alice@contoso.com"] {
        let out = run(user, "alice-pw").await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stdout.ends_with("@@200"), "{user}: {stdout}");
        assert!(
            stdout.contains("<RedirectAddr>bob@contoso.mail.onmicrosoft.com</RedirectAddr>"),
            "{stdout}"
        );
    }
    for (user, password) in [("alice", "wrong"), ("eve", "eve-pw")] {
        let out = run(user, password).await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stdout.ends_with("@@401"), "{user}: {stdout}");
    }
    // NTLM never binds as the user: only the service account bound.
    assert!(slapd
        .bind_dns()
        .iter()
        .all(|dn| dn.eq_ignore_ascii_case(SERVICE_DN)));
}

#[tokio::test]
async fn readiness_probes_bypass_the_cache_and_see_an_outage_at_once() {
    let Some(mut slapd) = Slapd::start() else {
        return;
    };
    let dir = slapd.directory(60, &|_| {});
    // The address /readyz looks up (server::endpoints::health).
    let probe =
        autodiscoverd::directory::Lookup::Address("readyz-probe@autodiscoverd.invalid".into());
    let alice = autodiscoverd::directory::Lookup::Address("alice@contoso.com".into());
    assert_eq!(dir.find(&probe).await.unwrap(), None);
    assert!(dir.find(&alice).await.unwrap().is_some());
    slapd.stop();
    assert!(dir.find(&probe).await.is_err());
    // Ordinary lookups keep being answered from the cache meanwhile.
    assert!(dir.find(&alice).await.unwrap().is_some());
}
