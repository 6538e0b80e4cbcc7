//! A real HAProxy in front of the server (deploy/haproxy/*.cfg, trimmed to the lines a test
//! needs), and TCP connections from chosen loopback addresses. Killed on Drop.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

/// The haproxy binary, or `None` (allowed only outside CI: a skip is never a pass in CI).
pub fn haproxy() -> Option<&'static str> {
    let found = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "haproxy is not installed (CI=true): .ci/run installs it"
        );
        eprintln!("SKIPPED: haproxy is not installed; install it to run this test");
    }
    found
}

/// A running HAProxy; killed on drop.
pub struct Haproxy {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts HAProxy with `body` (frontend/backend sections) listening on a fresh port.
/// The port is found by binding :0 and releasing it: HAProxy cannot report a kernel-chosen
/// port, and the window is a few milliseconds on loopback.
pub async fn start_haproxy(bin: &str, dir: &std::path::Path, body: &str) -> Haproxy {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "defaults\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n{}",
            body.replace("@LISTEN@", &addr.to_string())
        ),
    )
    .unwrap();
    let child = std::process::Command::new(bin)
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn haproxy");
    // Owned by the guard from here on: a failure below still kills and reaps it.
    let lb = Haproxy { child, addr };
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return lb;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("haproxy did not start listening on {addr}");
}

/// A TCP connection from another loopback address, so the client is distinguishable from
/// the proxy (127.0.0.1) in autodiscoverd's log.
pub async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}
