//! One real Samba Active Directory domain controller per test process, built by
//! tests/ad/samba-ad-lab.sh (domain CONTOSO.COM on 127.0.0.1, about 12 s) the first time a
//! test asks for it.
//!
//! The DC's ports are fixed, so it may only run in a private network namespace:
//! tests/ad/run.sh provides one (and sets AUTODISCOVERD_AD_NAMESPACE=1). Anywhere else the
//! tests skip with a reason, and with CI=true they fail.
//!
//! Tests take [`Dc::shared`] (the DC stays up while they run) or [`Dc::exclusive`] (they
//! stop and start it, or change domain-wide settings).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The domain's Administrator password (set by the lab script).
pub const ADMIN_PASSWORD: &str = "Adm1n-Pass!23";
/// The lab users' passwords. alice and bob are every test's: a test that sends wrong
/// passwords does so for an account it creates, since the domain's bad-password count
/// (which autodiscoverd reads before each check) is shared by all tests in the run.
pub const ALICE_PASSWORD: &str = "Alice-Pass!123";
pub const BOB_PASSWORD: &str = "Bob-Pass!123";
/// The domain naming context.
pub const BASE_DN: &str = "DC=contoso,DC=com";
/// The mailbox database of the lab's local mailboxes (homeMDB).
pub const MAILBOX_DATABASE: &str =
    "CN=DB01,CN=Databases,CN=Contoso,CN=Microsoft Exchange,CN=Services,CN=Configuration,DC=contoso,DC=com";
/// The service account the lab creates (read rights only).
pub const SERVICE_DN: &str = "CN=svc-autodiscover,CN=Users,DC=contoso,DC=com";

/// The running domain controller.
pub struct Dc {
    /// The lab script's DIR: pki/ca.pem, svc-password, http.keytab, krb5.conf, dc/...
    pub dir: PathBuf,
    /// The samba process started by [`Dc::start`] after a [`Dc::stop`] (the lab script's
    /// own one is not our child).
    restarted: Mutex<Option<Child>>,
    /// Held while checking and restarting, so that two tests never start two DCs.
    starting: Mutex<()>,
}

/// Serialises the tests that stop the DC or change the domain against all others.
static USE: RwLock<()> = RwLock::const_new(());
static DC: OnceLock<Result<Dc, String>> = OnceLock::new();

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when this process has a network namespace of its own: nothing but loopback.
fn private_network() -> bool {
    let Ok(dev) = std::fs::read_to_string("/proc/self/net/dev") else {
        return false;
    };
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .all(|name| name.trim() == "lo")
}

/// Why this process cannot run a DC, if it cannot.
fn unavailable() -> Option<String> {
    if std::env::var("AUTODISCOVERD_AD_NAMESPACE").as_deref() != Ok("1") || !private_network() {
        return Some(
            "the AD tests run only inside the private namespaces of `bash tests/ad/run.sh` \
             (a Samba DC's ports are fixed)"
                .into(),
        );
    }
    if !rustix::process::geteuid().is_root() {
        return Some("a Samba AD DC needs root".into());
    }
    for tool in ["samba", "samba-tool", "ldbsearch", "ldbmodify"] {
        if which(tool).is_none() {
            return Some(format!(
                "`{tool}` is not installed (Debian: samba samba-ad-provision samba-dsdb-modules winbind krb5-user ldb-tools)"
            ));
        }
    }
    None
}

/// The full path of an installed program.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Runs a command to completion; panics with its output when it fails; its stdout.
fn run(command: &mut Command) -> String {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// LDIF lines with their continuations (lines that start with a space, RFC 2849) joined.
pub fn unfold_ldif(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix(' '), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => lines.push(line.to_string()),
        }
    }
    lines
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A guard that keeps the DC in the state the test needs.
pub struct Use<G> {
    pub dc: &'static Dc,
    _guard: G,
}

impl<G> std::ops::Deref for Use<G> {
    type Target = Dc;
    fn deref(&self) -> &Dc {
        self.dc
    }
}

impl Dc {
    /// The DC for a test that only reads and logs in; `None` (after a printed reason) when
    /// the machine cannot run it outside CI. Panics under CI=true when it cannot.
    pub async fn shared() -> Option<Use<RwLockReadGuard<'static, ()>>> {
        let dc = Dc::get()?;
        let guard = USE.read().await;
        dc.ensure_up();
        Some(Use { dc, _guard: guard })
    }

    /// The DC for a test that stops it or changes domain-wide settings (no other AD test
    /// runs meanwhile).
    pub async fn exclusive() -> Option<Use<RwLockWriteGuard<'static, ()>>> {
        let dc = Dc::get()?;
        let guard = USE.write().await;
        dc.ensure_up();
        Some(Use { dc, _guard: guard })
    }

    fn get() -> Option<&'static Dc> {
        let result = DC.get_or_init(|| match unavailable() {
            Some(reason) => Err(reason),
            None => Ok(Dc::build()),
        });
        match result {
            Ok(dc) => Some(dc),
            Err(reason) if ci() => panic!("the Active Directory tests cannot run: {reason}"),
            Err(reason) => {
                eprintln!("\n*** SKIPPED: this AD test did not run: {reason}. ***\n");
                None
            }
        }
    }

    fn build() -> Dc {
        let work = std::env::var_os("AUTODISCOVERD_AD_WORK")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = work.join(format!("ad-lab-{}", std::process::id()));
        let script = super::repo_root().join("tests/ad/samba-ad-lab.sh");
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run samba-ad-lab.sh");
        assert!(
            out.status.success(),
            "samba-ad-lab.sh failed ({}):\n{}\n{}\nprovision.log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("provision.log")).unwrap_or_default()
        );
        eprintln!(
            "AD lab DC built in {:.1} s in {}",
            started.elapsed().as_secs_f64(),
            dir.display()
        );
        Dc {
            dir,
            restarted: Mutex::new(None),
            starting: Mutex::new(()),
        }
    }

    /// The test CA that issued the DC's certificate (PEM).
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.join("pki/ca.pem")
    }

    /// The file holding the service account's password.
    pub fn svc_password_file(&self) -> PathBuf {
        self.dir.join("svc-password")
    }

    /// The AES keytab of `HTTP/autodiscover.contoso.com`.
    pub fn http_keytab(&self) -> PathBuf {
        self.dir.join("http.keytab")
    }

    /// krb5.conf for Kerberos clients of this realm (`KRB5_CONFIG`).
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir.join("krb5.conf")
    }

    /// The DC's smb.conf (for samba-tool and winbind clients).
    pub fn smb_conf(&self) -> PathBuf {
        self.dir.join("dc/etc/smb.conf")
    }

    fn sam_ldb(&self) -> PathBuf {
        self.dir.join("dc/private/sam.ldb")
    }

    /// Runs `samba-tool ARGS -s smb.conf`; panics with its output when it fails.
    pub fn samba_tool(&self, args: &[&str]) -> String {
        run(Command::new("samba-tool")
            .args(args)
            .arg("-s")
            .arg(self.smb_conf()))
    }

    /// Creates a user with a mail address (`NAME@contoso.com`) and a primary SMTP proxy
    /// address, as an Exchange mailbox would have; returns its DN.
    pub fn create_user(&self, name: &str, password: &str) -> String {
        self.samba_tool(&[
            "user",
            "create",
            name,
            password,
            &format!("--mail-address={name}@contoso.com"),
            &format!("--given-name={name}"),
            "--surname=Test",
        ]);
        let dn = format!("CN={name} Test,CN=Users,{BASE_DN}");
        self.modify(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: proxyAddresses\nproxyAddresses: SMTP:{name}@contoso.com\n-\nreplace: msExchRecipientTypeDetails\nmsExchRecipientTypeDetails: 1\n-\nreplace: homeMDB\nhomeMDB: {MAILBOX_DATABASE}\n-\nreplace: legacyExchangeDN\nlegacyExchangeDN: /o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={name}\n"
        ));
        dn
    }

    /// Creates `count` mailbox users `PREFIXnnnn` (as [`Dc::create_user`] shapes them) with
    /// one LDIF over LDAP as the Administrator (sealed SASL, so the password may be set):
    /// seconds for a thousand, where samba-tool takes one each. Returns their names.
    pub fn create_users(&self, prefix: &str, count: usize, password: &str) -> Vec<String> {
        use base64::Engine as _;
        let quoted: Vec<u8> = format!("\"{password}\"")
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let unicode_pwd = base64::engine::general_purpose::STANDARD.encode(quoted);
        let mut ldif = String::new();
        let mut names = Vec::new();
        for i in 0..count {
            let name = format!("{prefix}{i:04}");
            ldif.push_str(&format!(
                "dn: CN={name},CN=Users,{BASE_DN}\nobjectClass: user\nsAMAccountName: {name}\n\
                 userPrincipalName: {name}@contoso.com\nmail: {name}@contoso.com\n\
                 proxyAddresses: SMTP:{name}@contoso.com\nmsExchRecipientTypeDetails: 1\n\
                 homeMDB: {MAILBOX_DATABASE}\n\
                 legacyExchangeDN: /o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={name}\n\
                 unicodePwd:: {unicode_pwd}\nuserAccountControl: 512\n\n"
            ));
            names.push(name);
        }
        self.ldif_as_administrator("ldbadd", &ldif);
        names
    }

    /// Runs `tool` (ldbadd, ldbmodify) on an LDIF over LDAP as the domain Administrator
    /// (SASL, signed and sealed).
    fn ldif_as_administrator(&self, tool: &str, ldif: &str) {
        let file = tempfile::NamedTempFile::new().expect("ldif file");
        std::fs::write(file.path(), ldif).expect("write ldif");
        run(Command::new(tool)
            .args(["-H", "ldap://127.0.0.1", "-U"])
            .arg(format!("CONTOSO\\Administrator%{ADMIN_PASSWORD}"))
            .arg(file.path()));
    }

    /// Every samba process of the DC on CPU `cpus` (`taskset` list syntax), so that a
    /// benchmark gives the DC a core of its own.
    pub fn pin(&self, cpus: &str) {
        for pid in Self::samba_processes() {
            run(Command::new("taskset")
                .args(["-a", "-p", "-c", cpus])
                .arg(pid.as_raw_nonzero().get().to_string()));
        }
    }

    /// Applies an LDIF change over LDAP as the domain Administrator (SASL, signed).
    pub fn modify(&self, ldif: &str) {
        self.ldif_as_administrator("ldbmodify", ldif);
    }

    /// Whether `user` (`DOMAIN\\name`) can log on at the DC itself with `password`
    /// (an authenticated LDAP search, SASL with NTLM), as any other client of the domain.
    pub fn ldap_bind_works(&self, user: &str, password: &str) -> bool {
        Command::new("ldbsearch")
            .args(["-H", "ldap://127.0.0.1", "-U"])
            .arg(format!("{user}%{password}"))
            .args(["-s", "base", "-b", "", "dn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run ldbsearch")
            .success()
    }

    /// The values of `attribute` of the entry at `dn`, read from the DC's own database
    /// (what the DC itself believes, e.g. badPwdCount and lockoutTime).
    pub fn attribute(&self, dn: &str, attribute: &str) -> Vec<String> {
        let out = run(Command::new("ldbsearch")
            .arg("-H")
            .arg(self.sam_ldb())
            .args(["-s", "base", "-b", dn, attribute]));
        let prefix = format!("{}: ", attribute.to_ascii_lowercase());
        unfold_ldif(&out)
            .iter()
            .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].to_string())
            .collect()
    }

    /// The first value of `attribute` as a number (absent: 0).
    pub fn number(&self, dn: &str, attribute: &str) -> i64 {
        self.attribute(dn, attribute)
            .first()
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(0)
    }

    /// True while LDAPS and the KDC answer.
    pub fn is_up(&self) -> bool {
        port_open(636) && port_open(88)
    }

    /// Kills the DC (as a crash or power loss would) and waits until its ports are closed.
    pub fn stop(&self) {
        let pid = std::fs::read_to_string(self.dir.join("samba.pid")).expect("samba.pid");
        let pid = rustix::process::Pid::from_raw(pid.trim().parse().expect("pid")).expect("pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        if let Some(mut child) = self.restarted.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while port_open(636) || port_open(389) {
            assert!(Instant::now() < deadline, "the DC did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every samba process of this namespace (the DC and its workers: their executable
    /// is samba, whatever name they give themselves).
    fn samba_processes() -> Vec<rustix::process::Pid> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
                continue;
            };
            if exe.file_name().is_some_and(|n| n == "samba") {
                pids.extend(rustix::process::Pid::from_raw(pid));
            }
        }
        pids
    }

    /// Hangs the DC: SIGSTOP to every samba process. Its ports still accept TCP connections
    /// (the kernel does that), nothing answers on them.
    pub fn pause(&self) {
        let pids = Self::samba_processes();
        assert!(!pids.is_empty(), "no samba process to stop");
        for pid in pids {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::STOP);
        }
    }

    /// Resumes a DC [`Dc::pause`] hung: SIGCONT to every samba process.
    pub fn resume(&self) {
        for pid in Self::samba_processes() {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
        }
    }

    /// Starts the DC again on the same database and waits for LDAPS and the KDC.
    pub fn start(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("samba.out"))
            .expect("samba.out");
        let child = Command::new("samba")
            .args(["-i", "-M", "single", "--debug-stdout", "-s"])
            .arg(self.smb_conf())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn samba");
        std::fs::write(self.dir.join("samba.pid"), child.id().to_string()).expect("samba.pid");
        *self.restarted.lock().unwrap() = Some(child);
        self.wait_up();
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.is_up() {
            assert!(
                Instant::now() < deadline,
                "the DC did not come up; samba.out:\n{}",
                std::fs::read_to_string(self.dir.join("samba.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Restarts a DC a test left stopped (after a failed assertion), so later tests run.
    fn ensure_up(&self) {
        let _starting = self.starting.lock().unwrap();
        // A test that failed while the DC was paused leaves it paused.
        self.resume();
        if !self.is_up() {
            self.start();
        }
    }

    /// The lab directory as the ad-example configuration expects it: `ad-lab` next to the
    /// configuration file.
    pub fn link_as_ad_lab(&self, config_dir: &Path) {
        std::os::unix::fs::symlink(&self.dir, config_dir.join("ad-lab")).expect("symlink ad-lab");
    }
}
