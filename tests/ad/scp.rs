//! Domain-joined Outlook's first step (MS-OXDISCO §3.1.5.1), for real, against the Samba AD
//! DC: `autodiscoverd scp publish|show|remove` write and read the Autodiscover service
//! connection point in the configuration partition, an LDAP search as a plain user with
//! Outlook's filter finds it, and `autodiscoverd probe --scp` walks from it (and from
//! pointer SCPs, in site order) to the daemon, which answers from the same AD.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::dc::{ADMIN_PASSWORD, ALICE_PASSWORD};
use crate::{daemon, Dc};

const CONFIG_NC: &str = "CN=Configuration,DC=contoso,DC=com";
const CONTAINER_DN: &str = "CN=autodiscoverd,CN=Services,CN=Configuration,DC=contoso,DC=com";
const EX01_DN: &str = "CN=EX01-Autodiscover,CN=Services,CN=Configuration,DC=contoso,DC=com";
const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=contoso,DC=com";
const SITE: &str = "Default-First-Site-Name";
/// Outlook's search (MS-OXDISCO §3.1.5.1), as the issue and the specification spell it.
const OUTLOOK_FILTER: &str = "(&(objectcategory=serviceConnectionPoint)(|(keywords=67661D7F-8FC4-4fa7-BFAC-E1D7794C1F68)(keywords=77378F46-2C66-4aa9-A6A6-3E7A48B19596)))";

fn scp_dn(name: &str) -> String {
    format!("CN={name},{CONTAINER_DN}")
}

/// One `autodiscoverd scp ...` run: (exit code, stdout, stderr).
fn scp(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
        .arg("scp")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run autodiscoverd scp");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(ADMIN_PASSWORD) && !text.contains(ALICE_PASSWORD),
            "a password leaked: {text}"
        );
    }
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// A password file in `dir`.
fn password_file(dir: &Path, name: &str, password: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    path
}

/// The serviceBindingInformation values an LDAP search as `user` with Outlook's filter
/// finds in the configuration partition (ldbsearch: SASL, signed, like a domain member).
fn outlook_search(user: &str, password: &str) -> Vec<String> {
    let out = Command::new("ldbsearch")
        .args(["-H", "ldap://127.0.0.1", "-U"])
        .arg(format!("{user}%{password}"))
        .args(["-b", CONFIG_NC, "-s", "sub", OUTLOOK_FILTER])
        .args(["serviceBindingInformation", "keywords"])
        .output()
        .expect("run ldbsearch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::dc::unfold_ldif(&String::from_utf8_lossy(&out.stdout))
        .iter()
        .filter_map(|l| l.strip_prefix("serviceBindingInformation: "))
        .map(str::to_string)
        .collect()
}

/// Whether an entry exists at `dn` (read from the DC's own database).
fn exists(dc: &Dc, dn: &str) -> bool {
    let out = Command::new("ldbsearch")
        .arg("-H")
        .arg(dc.dir.join("dc/private/sam.ldb"))
        .args(["-s", "base", "-b", dn, "objectClass"])
        .output()
        .expect("run ldbsearch");
    String::from_utf8_lossy(&out.stdout).contains("\ndn: ")
        || String::from_utf8_lossy(&out.stdout).starts_with("dn: ")
}

/// Deletes what an earlier failed run of these tests may have left in the directory.
fn reset(dc: &Dc) {
    let leftovers = ["mail1", "foreign", "base", "svc1", "alice1"]
        .map(scp_dn)
        .into_iter()
        .chain([CONTAINER_DN.to_string(), EX01_DN.to_string()])
        .chain(
            ["EX02-Autodiscover", "Contoso-Pointer"]
                .map(|cn| format!("CN={cn},CN=Services,{CONFIG_NC}")),
        );
    for dn in leftovers {
        if exists(dc, &dn) {
            dc.modify(&format!("dn: {dn}\nchangetype: delete\n"));
        }
    }
}

fn probe(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_autodiscoverd"))
        .arg("probe")
        .args(["--json", "--no-dns", "--timeout", "10"])
        .args(args)
        .output()
        .expect("run the probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(ALICE_PASSWORD), "the password leaked");
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

/// The daemon's HTTPS port, its trust anchors plus the DC's, and probe arguments that reach
/// it as autodiscover.contoso.com and bind to the DC as alice.
struct Client {
    url: String,
    resolve: String,
    ca: PathBuf,
}

impl Client {
    fn new(dc: &Dc, d: &crate::Daemon) -> Client {
        let port = d.addr("https").port();
        let ca = d.dir.path().join("trusted.pem");
        let dc_ca = std::fs::read_to_string(dc.ca_pem()).unwrap();
        std::fs::write(&ca, format!("{dc_ca}\n{}", d.pki.ca_pem())).unwrap();
        Client {
            url: format!("https://autodiscover.contoso.com:{port}/autodiscover/autodiscover.xml"),
            resolve: format!("autodiscover.contoso.com:{port}:127.0.0.1"),
            ca,
        }
    }

    fn probe(&self, password: &str, extra: &[&str]) -> (i32, Value) {
        let mut args = vec![
            "--scp",
            "ldaps://127.0.0.1:636",
            "--ca-file",
            self.ca.to_str().unwrap(),
            "--resolve",
            &self.resolve,
            "--user",
            "alice@contoso.com",
            "--password",
            password,
        ];
        args.extend(extra);
        args.push("alice@contoso.com");
        probe(&args)
    }
}

fn steps(attempt: &Value) -> Vec<Value> {
    attempt["steps"].as_array().unwrap().clone()
}

fn titles(attempt: &Value) -> Vec<String> {
    steps(attempt)
        .iter()
        .map(|s| s["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The daemon against the DC (its configuration is what `scp` reads) after [`reset`].
struct Scene {
    d: crate::Daemon,
    config: PathBuf,
}

impl Scene {
    fn new(dc: &Dc) -> Scene {
        reset(dc);
        let d = daemon(dc, &|_| {});
        let config = d.dir.path().join("autodiscoverd.toml");
        Scene { d, config }
    }

    /// `--bind-dn BIND --password-file FILE` with `password` in FILE.
    fn account(&self, bind: &str, password: &str) -> Vec<String> {
        let file = password_file(self.d.dir.path(), &format!("{bind}.pw"), password);
        vec![
            "--bind-dn".into(),
            bind.into(),
            "--password-file".into(),
            file.display().to_string(),
        ]
    }

    /// `scp ARGS ACCOUNT`: (exit code, stdout, stderr).
    fn run(&self, account: &[String], args: &[&str]) -> (i32, String, String) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(account.iter().map(String::as_str));
        scp(&self.config, &all)
    }

    /// [`Scene::run`] that must succeed: its stdout.
    fn ok(&self, account: &[String], args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(account, args);
        assert_eq!(code, 0, "scp {args:?}: {stdout}{stderr}");
        stdout
    }
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn scp_publish_is_found_by_outlooks_search_and_walked_to_alices_settings() {
    let Some(dc) = Dc::exclusive().await else {
        return;
    };
    let scene = Scene::new(&dc);
    let d = &scene.d;
    let client = Client::new(&dc, d);
    let admin = scene.account(ADMIN_DN, ADMIN_PASSWORD);
    let dn = scp_dn("mail1");

    // Publish as Administrator: our container and the SCP, as Exchange writes it.
    let out = scene.ok(
        &admin,
        &["publish", "--name", "mail1", "--url", &client.url],
    );
    assert!(
        out.contains(&format!("created container {CONTAINER_DN}")),
        "{out}"
    );
    assert!(out.contains(&format!("created {dn}")), "{out}");
    assert_eq!(
        dc.attribute(&dn, "serviceBindingInformation"),
        [client.url.as_str()]
    );
    assert_eq!(
        dc.attribute(&dn, "serviceClassName"),
        ["ms-Exchange-AutoDiscover-Service"]
    );
    assert_eq!(
        dc.attribute(&dn, "serviceDNSName"),
        ["autodiscover.contoso.com"]
    );
    let mut keywords = dc.attribute(&dn, "keywords");
    keywords.sort();
    assert_eq!(
        keywords,
        [
            "77378F46-2C66-4aa9-A6A6-3E7A48B19596",
            "Publisher=autodiscoverd"
        ]
    );

    // A plain user's search with Outlook's filter finds exactly our URL.
    assert_eq!(
        outlook_search("CONTOSO\\alice", ALICE_PASSWORD),
        [client.url.as_str()]
    );

    // The probe, as alice's domain-joined Outlook, walks from it to her settings.
    let (code, report) = client.probe(ALICE_PASSWORD, &[]);
    assert_eq!(code, 0, "{report:#}");
    let attempts = report["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["method"], "scp");
    let found = steps(&attempts[0]).last().unwrap().clone();
    assert_eq!(found["title"], "1 Autodiscover SCP URL(s)", "{report:#}");
    assert_eq!(found["details"][0], format!("{} ({dn})", client.url));
    assert!(titles(&attempts[0])
        .iter()
        .any(|t| t.contains("(objectcategory=serviceConnectionPoint)(|(keywords=67661D7F")));
    assert_eq!(report["obtained"]["url"], client.url.as_str());
    assert_eq!(
        report["obtained"]["settings"]["smtp_address"],
        "alice@contoso.com"
    );
    assert_eq!(attempts.len(), 2, "no DNS candidate was needed: {report:#}");
    // A wrong password: the DC refuses the bind, and the verdict names that step.
    let (code, report) = client.probe("not-the-password", &[]);
    assert_eq!(code, 1);
    assert_eq!(report["verdict"]["failing_kind"], "scp", "{report:#}");
    assert!(
        report["verdict"]["summary"]
            .as_str()
            .unwrap()
            .contains("bind as alice@contoso.com refused: rc 49"),
        "{report:#}"
    );

    // Publishing again changes nothing: not one write (uSNChanged stays).
    let usn = dc.number(&dn, "uSNChanged");
    let guid = dc.attribute(&dn, "objectGUID");
    let out = scene.ok(
        &admin,
        &["publish", "--name", "mail1", "--url", &client.url],
    );
    assert!(out.contains(&format!("unchanged {dn}")), "{out}");
    assert_eq!(dc.number(&dn, "uSNChanged"), usn);

    // A new URL and a site: only those values change, on the same object.
    let other_url = client.url.replace(
        "/autodiscover/autodiscover.xml",
        "/Autodiscover/Autodiscover.xml",
    );
    let out = scene.ok(
        &admin,
        &[
            "publish", "--name", "mail1", "--url", &other_url, "--site", SITE, "--site", "Paris",
        ],
    );
    assert!(out.contains(&format!("updated {dn}")), "{out}");
    assert!(
        out.contains("keywords: added Site=Default-First-Site-Name, Site=Paris"),
        "{out}"
    );
    assert!(
        !out.contains("serviceDNSName"),
        "the host did not change: {out}"
    );
    assert_eq!(dc.attribute(&dn, "objectGUID"), guid);
    assert!(dc.number(&dn, "uSNChanged") > usn);
    assert_eq!(
        dc.attribute(&dn, "serviceBindingInformation"),
        [other_url.as_str()]
    );
    let with_site = [
        "publish",
        "--name",
        "mail1",
        "--url",
        &client.url,
        "--site",
        SITE,
    ];
    let out = scene.ok(&admin, &with_site);
    assert!(out.contains("serviceBindingInformation: now"), "{out}");
    assert!(out.contains("keywords: removed Site=Paris"), "{out}");
    assert!(!out.contains("added"), "{out}");
    let usn = dc.number(&dn, "uSNChanged");
    let out = scene.ok(&admin, &with_site);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(dc.number(&dn, "uSNChanged"), usn);
    // Back to no site: an SCP for every site.
    let out = scene.ok(
        &admin,
        &["publish", "--name", "mail1", "--url", &client.url],
    );
    assert!(
        out.contains("keywords: removed Site=Default-First-Site-Name"),
        "{out}"
    );

    // What the last Exchange server left behind: an SCP tagged with the client's site whose
    // server no longer answers, and one without a URL. `show` puts it first and flags it.
    dc.modify(&format!(
        "dn: {EX01_DN}\nchangetype: add\nobjectClass: serviceConnectionPoint\n\
         serviceClassName: ms-Exchange-AutoDiscover-Service\nserviceDNSName: ex01.contoso.com\n\
         keywords: 77378F46-2C66-4aa9-A6A6-3E7A48B19596\nkeywords: Site={SITE}\n\
         serviceBindingInformation: https://ex01.contoso.com/Autodiscover/Autodiscover.xml\n\n\
         dn: CN=EX02-Autodiscover,CN=Services,{CONFIG_NC}\nchangetype: add\n\
         objectClass: serviceConnectionPoint\nkeywords: 77378F46-2C66-4aa9-A6A6-3E7A48B19596\n"
    ));
    let out = scene.ok(
        &admin,
        &[
            "show",
            "--site",
            SITE,
            "--name",
            "mail1",
            "--resolve",
            &client.resolve,
        ],
    );
    let ex01 = out.find(EX01_DN).expect("EX01 listed");
    let ours = out.find(&dn).expect("ours listed");
    let ex02 = out.find("CN=EX02-Autodiscover").expect("EX02 listed");
    assert!(
        ex01 < ours,
        "the stale SCP with the client's site comes first: {out}"
    );
    let ex01_block = &out[ex01..ours];
    assert!(ex01_block.contains("STALE: does not answer"), "{out}");
    assert!(ex01_block.contains("OUTRANKS OURS"), "{out}");
    assert!(
        ex01_block.contains(&format!("fix: if its Exchange server is gone, delete the object: Windows: Remove-ADObject -Identity \"{EX01_DN}\"")),
        "{out}"
    );
    assert!(
        ex01_block.contains(&format!("-AutoDiscoverServiceInternalUri {}", client.url)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{} (ours)\n    URL, rank: no site; no Site= keyword\n    {dn}\n",
            client.url
        )),
        "{out}"
    );
    assert!(
        !out[ours..ex02.max(ours)].contains("STALE"),
        "ours answers: {out}"
    );
    assert!(out[ex02..].contains("STALE: no URL"), "{out}");

    // The probe in that site tries the stale SCP first, then ours.
    let (code, report) = client.probe(ALICE_PASSWORD, &["--site", SITE]);
    assert_eq!(code, 0, "{report:#}");
    let attempts = report["attempts"].as_array().unwrap();
    let found = steps(&attempts[0])
        .iter()
        .find(|s| s["title"] == "2 Autodiscover SCP URL(s)")
        .cloned();
    let found = found.unwrap_or_else(|| panic!("{report:#}"));
    assert!(found["details"][0]
        .as_str()
        .unwrap()
        .starts_with("https://ex01.contoso.com/"));
    assert_eq!(
        found["details"][1],
        format!("  serves AD sites: {SITE}; rank: the client's site")
    );
    assert!(
        titles(&attempts[0])
            .iter()
            .any(|t| t == "1 SCP(s) passed over"),
        "{report:#}"
    );
    assert_eq!(
        attempts[1]["url"],
        "https://ex01.contoso.com/Autodiscover/Autodiscover.xml"
    );
    assert_eq!(report["obtained"]["url"], client.url.as_str());

    // A pointer SCP for the user's domain is followed before any URL (here to the same DC
    // by another name; there the pointer would loop, so its URLs are used).
    dc.modify(&format!(
        "dn: CN=Contoso-Pointer,CN=Services,{CONFIG_NC}\nchangetype: add\n\
         objectClass: serviceConnectionPoint\nkeywords: 67661D7F-8FC4-4fa7-BFAC-E1D7794C1F68\n\
         keywords: Domain=contoso.com\nserviceBindingInformation: LDAP://localhost\n"
    ));
    let (code, report) = client.probe(ALICE_PASSWORD, &["--site", SITE]);
    assert_eq!(code, 0, "{report:#}");
    let attempts = report["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["url"], "ldaps://127.0.0.1:636");
    assert!(
        titles(&attempts[0]).contains(
            &"pointer SCP for contoso.com: following it to ldaps://localhost:636".to_string()
        ),
        "{report:#}"
    );
    assert_eq!(attempts[1]["method"], "scp");
    assert_eq!(attempts[1]["url"], "ldaps://localhost:636");
    assert!(
        titles(&attempts[1]).iter().any(|t| t
            .starts_with("pointer SCP for contoso.com not followed: localhost was asked already")),
        "{report:#}"
    );
    assert_eq!(report["obtained"]["url"], client.url.as_str());
    let out = scene.ok(
        &admin,
        &["show", "--site", SITE, "--resolve", &client.resolve],
    );
    assert!(
        out.contains(" 1. LDAP://localhost\n    pointer for contoso.com"),
        "{out}"
    );

    // Someone else's object under our name is never touched.
    let foreign = scp_dn("foreign");
    dc.modify(&format!(
        "dn: {foreign}\nchangetype: add\nobjectClass: serviceConnectionPoint\n\
         keywords: 77378F46-2C66-4aa9-A6A6-3E7A48B19596\n"
    ));
    for verb in ["publish", "remove"] {
        let (code, _, stderr) = scene.run(&admin, &[verb, "--name", "foreign"]);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("was not published by autodiscoverd"),
            "{stderr}"
        );
    }
    let out = scene.ok(&admin, &["remove", "--name", "mail1"]);
    assert!(out.contains("kept the container"), "{out}");
    assert!(exists(&dc, &foreign) && exists(&dc, CONTAINER_DN));
    dc.modify(&format!("dn: {foreign}\nchangetype: delete\n"));
    dc.modify(&format!(
        "dn: CN=Contoso-Pointer,CN=Services,{CONFIG_NC}\nchangetype: delete\n\n\
         dn: {EX01_DN}\nchangetype: delete\n\n\
         dn: CN=EX02-Autodiscover,CN=Services,{CONFIG_NC}\nchangetype: delete\n"
    ));

    // Remove: ours went above (the container stayed for the foreign object); now the
    // empty container goes too; twice is a no-op.
    assert!(!exists(&dc, &dn));
    let out = scene.ok(&admin, &["remove", "--name", "mail1"]);
    assert!(
        out.contains(&format!("removed the empty container {CONTAINER_DN}")),
        "{out}"
    );
    assert!(!exists(&dc, CONTAINER_DN));
    let out = scene.ok(&admin, &["remove", "--name", "mail1"]);
    assert!(
        out.contains(&format!("nothing to remove: no {dn}")),
        "{out}"
    );
    assert!(!out.contains("container"), "{out}");
    assert!(outlook_search("CONTOSO\\alice", ALICE_PASSWORD).is_empty());
    // With the service account of [directory.ldap]: every user may read SCPs.
    let out = scene.ok(&[], &["show"]);
    assert!(
        out.contains("  none: domain-joined Outlook goes straight to DNS"),
        "{out}"
    );
    assert!(out.contains("no SCP published by autodiscoverd"), "{out}");
}

/// The account SID a rights error names.
fn sid_in(message: &str) -> String {
    let start = message
        .find(";;;S-1-5-21-")
        .unwrap_or_else(|| panic!("no SID in: {message}"))
        + 3;
    let end = message[start..].find(')').unwrap() + start;
    message[start..end].to_string()
}

/// The `samba-tool dsacl set --objectdn='X' --sddl='Y'` command a rights error names, as
/// arguments after `samba-tool`.
fn dsacl_command(message: &str) -> Vec<String> {
    let line = message
        .lines()
        .find_map(|l| l.trim().strip_prefix("Samba:   samba-tool "))
        .unwrap_or_else(|| panic!("no samba-tool command in: {message}"));
    let parts: Vec<&str> = line.split('\'').collect();
    assert_eq!(parts.len(), 5, "{line}");
    let mut args: Vec<String> = parts[0].split_whitespace().map(str::to_string).collect();
    let objectdn = args.pop().unwrap();
    assert_eq!(objectdn, "--objectdn=");
    args.push(format!("--objectdn={}", parts[1]));
    assert_eq!(parts[2].trim(), "--sddl=");
    args.push(format!("--sddl={}", parts[3]));
    args
}

#[tokio::test]
#[ignore = "needs a Samba AD DC in a private namespace: bash tests/ad/run.sh"]
async fn scp_publish_without_rights_writes_nothing_and_names_the_delegation_that_works() {
    let Some(dc) = Dc::exclusive().await else {
        return;
    };
    let scene = Scene::new(&dc);
    let url = "https://autodiscover.contoso.com/Autodiscover/Autodiscover.xml";
    let alice = scene.account("alice@contoso.com", ALICE_PASSWORD);
    let admin = scene.account(ADMIN_DN, ADMIN_PASSWORD);
    let service: Vec<String> = Vec::new();

    // alice, an ordinary user, may not create the container: refused, nothing written,
    // and the message says what an administrator runs.
    let (code, stdout, stderr) = scene.run(&alice, &["publish", "--name", "alice1", "--url", url]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "insufficientAccessRights (LDAP result 50) while creating {CONTAINER_DN}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("first create the container"), "{stderr}");
    assert!(stderr.contains("samba-tool dsacl set --objectdn='CN=autodiscoverd,CN=Services,CN=Configuration,DC=contoso,DC=com' --sddl='(A;CI;RPWPCCDCLCLOSDDTRC;;;S-1-5-21-"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "dsacls \"{CONTAINER_DN}\" /I:T /G \"alice@contoso.com:GA\""
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing was written."), "{stderr}");
    assert!(!exists(&dc, CONTAINER_DN));

    // An account allowed to create containers under CN=Services but nothing inside them
    // creates ours, is refused the SCP, and deletes the container again: nothing stays.
    dc.samba_tool(&["user", "create", "scpwriter", "Scp-Writer!123"]);
    let writer = scene.account("scpwriter@contoso.com", "Scp-Writer!123");
    let (_, _, refused) = scene.run(&writer, &["publish", "--name", "alice1", "--url", url]);
    let sid = sid_in(&refused);
    let services = format!("CN=Services,{CONFIG_NC}");
    // Create and delete children of class container (bf967a8b-…: its schemaIDGUID).
    let sddl = format!("--sddl=(OA;;CCDC;bf967a8b-0de6-11d0-a285-00aa003049e2;;{sid})");
    dc.samba_tool(&["dsacl", "set", &format!("--objectdn={services}"), &sddl]);
    let (code, stdout, stderr) = scene.run(&writer, &["publish", "--name", "alice1", "--url", url]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("while creating {}", scp_dn("alice1"))),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing was written."), "{stderr}");
    assert!(
        !exists(&dc, CONTAINER_DN),
        "the container was deleted again"
    );

    // With the container there (an administrator published), alice still may not add hers.
    let (code, out, err) = scene.run(&admin, &["publish", "--name", "base", "--url", url]);
    assert_eq!(code, 0, "{out}{err}");
    let usn = dc.number(CONTAINER_DN, "uSNChanged");
    let (code, _, stderr) = scene.run(&alice, &["publish", "--name", "alice1", "--url", url]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("while creating {}", scp_dn("alice1"))),
        "{stderr}"
    );
    assert!(!stderr.contains("first create the container"), "{stderr}");
    assert!(!exists(&dc, &scp_dn("alice1")));
    assert_eq!(
        dc.number(CONTAINER_DN, "uSNChanged"),
        usn,
        "nothing was written"
    );
    // Nor change or delete the administrator's.
    let (code, _, stderr) = scene.run(
        &alice,
        &[
            "publish",
            "--name",
            "base",
            "--url",
            "https://evil.contoso.com/x",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("while modifying {}", scp_dn("base"))),
        "{stderr}"
    );
    let (code, _, stderr) = scene.run(&alice, &["remove", "--name", "base"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("while deleting {}", scp_dn("base"))),
        "{stderr}"
    );
    assert_eq!(
        dc.attribute(&scp_dn("base"), "serviceBindingInformation"),
        [url]
    );

    // The service account of [directory.ldap] (no --bind-dn) is refused the same way; the
    // samba-tool command its message names is the delegation that lets it publish.
    let (code, _, stderr) = scene.run(&service, &["publish", "--name", "svc1", "--url", url]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("/G \"svc-autodiscover@contoso.com:GA\""),
        "{stderr}"
    );
    let command = dsacl_command(&stderr);
    assert_eq!(command[..2], ["dsacl", "set"], "{command:?}");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    dc.samba_tool(&command);
    let (code, out, err) = scene.run(
        &service,
        &["publish", "--name", "svc1", "--url", url, "--site", SITE],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("created {}", scp_dn("svc1"))),
        "{out}"
    );
    let (code, out, _) = scene.run(
        &service,
        &["publish", "--name", "svc1", "--url", url, "--site", SITE],
    );
    assert_eq!(code, 0);
    assert!(out.contains("unchanged"), "{out}");
    let (code, out, err) = scene.run(&service, &["publish", "--name", "svc1", "--url", url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("keywords: removed Site=Default-First-Site-Name"),
        "{out}"
    );
    let (code, out, err) = scene.run(&service, &["remove", "--name", "svc1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("removed {}", scp_dn("svc1"))),
        "{out}"
    );
    assert!(
        out.contains("kept the container"),
        "the administrator's SCP is still in it: {out}"
    );
    assert!(!exists(&dc, &scp_dn("svc1")));

    // The administrator's goes last, with the container; a second remove does nothing.
    let (code, out, _) = scene.run(&admin, &["remove", "--name", "base"]);
    assert_eq!(code, 0);
    assert!(out.contains("removed the empty container"), "{out}");
    let (code, out, _) = scene.run(&admin, &["remove", "--name", "base"]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to remove"), "{out}");
    assert!(!exists(&dc, CONTAINER_DN));
}
