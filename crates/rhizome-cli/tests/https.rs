//! HTTPS sync end to end through the `rhizome` binary: real `rhizome serve` processes on
//! 127.0.0.1 ephemeral ports, real TLS, `rhizome sync` between two homes.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;

fn rz(home: &Path) -> Command {
    let mut c = Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env_remove("RHIZOME_STORE")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
        .arg("--home")
        .arg(home);
    c
}

fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    let out = rz(home).args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn init(dir: &Path, name: &str) -> PathBuf {
    let home = dir.join(name);
    rz(&home)
        .args(["init", "--name", name, "--no-passphrase"])
        .assert()
        .success();
    home
}

/// A running `rhizome serve`, killed when dropped.
struct Serving {
    child: Child,
    url: String,
    id: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(home: &Path, extra: &[&str]) -> Serving {
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("rhizome"))
        .env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
        .env_remove("RHIZOME_STORE")
        .arg("--home")
        .arg(home)
        .args(["serve", "--listen", "127.0.0.1:0", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("serve printed {line:?}: {e}"));
    Serving {
        child,
        url: v["url"].as_str().unwrap().to_string(),
        id: v["instance_id"].as_str().unwrap().to_string(),
    }
}

fn texts(home: &Path) -> Vec<String> {
    let out = rz(home).args(["log", "--json"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["payload"]["text"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn two_homes_sync_both_ways_over_tls_and_again_with_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let school = init(dir.path(), "school");
    let hub = init(dir.path(), "hub");
    rz(&school)
        .args(["post", "from the school"])
        .assert()
        .success();
    rz(&hub).args(["post", "from the hub"]).assert().success();
    let server = serve(&hub, &["--trust-on-first-use"]);
    let report = {
        let out = rz(&school)
            .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
            .args(["sync", &server.url, "--peer", &server.id, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(report["server"]["instance_id"], server.id.as_str());
    assert_eq!(report["server"]["proven_by"], "instance-key");
    assert_eq!(report["pull"]["outcome"], "imported");
    assert_eq!(report["push"]["outcome"]["outcome"], "imported");
    assert!(texts(&school).contains(&"from the hub".to_string()));
    assert!(texts(&hub).contains(&"from the school".to_string()));
    // The peer record says https.
    let peers = json(&school, &["peers"]);
    let p = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["instance_id"] == server.id.as_str())
        .unwrap();
    assert_eq!(p["last_method"], "https");
    assert!(p["last_exchange_at"].as_u64().unwrap() > 0);
    // Again: nothing new either way. The pull is answered 204 (no bundle), so neither side
    // records an exchange.
    let last = |home: &std::path::Path| {
        let peers = json(home, &["peers"]);
        peers
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["last_exchange_at"].clone())
            .collect::<Vec<_>>()
    };
    let (school_before, hub_before) = (last(&school), last(&hub));
    let again = json(&school, &["sync", &server.url, "--peer", &server.id]);
    assert_eq!(last(&school), school_before);
    assert_eq!(last(&hub), hub_before);
    assert!(again["pull"].is_null(), "{again}");
    assert!(again["push"].is_null(), "{again}");
    let words = rz(&school).args(["sync", &server.url]).output().unwrap();
    let words = String::from_utf8_lossy(&words.stdout).into_owned();
    assert!(
        words.contains("pulled  nothing: this instance lacks nothing there"),
        "{words}"
    );
    assert!(
        words.contains("pushed  nothing: the server lacks nothing"),
        "{words}"
    );
    // Pulled sealed to the school's key (the hub knows it from the push): the same import.
    rz(&hub)
        .args(["post", "sealed for the school"])
        .assert()
        .success();
    let sealed = json(&school, &["sync", &server.url, "--pull-only", "--encrypt"]);
    assert_eq!(sealed["pull"]["outcome"], "imported", "{sealed}");
    assert_eq!(sealed["pull"]["new"], 1, "{sealed}");
    assert!(texts(&school).contains(&"sealed for the school".to_string()));
}

#[test]
fn a_wrong_pin_is_refused_before_any_data_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let school = init(dir.path(), "school");
    let hub = init(dir.path(), "hub");
    rz(&school)
        .args(["post", "not for strangers"])
        .assert()
        .success();
    let server = serve(&hub, &["--trust-on-first-use"]);
    let wrong = "0123456789abcdef0123456789abcdef";
    let out = rz(&school)
        .args(["sync", &server.url, "--peer", wrong])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wrong instance") && err.contains(&server.id),
        "{err}"
    );
    // The hub got nothing: no new event, no peer.
    assert!(!texts(&hub).contains(&"not for strangers".to_string()));
    assert_eq!(json(&hub, &["peers"]).as_array().unwrap().len(), 0);
}

#[test]
fn first_contact_is_held_in_quarantine_both_ways_without_trust_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let school = init(dir.path(), "school");
    let hub = init(dir.path(), "hub");
    rz(&school).args(["post", "school news"]).assert().success();
    rz(&hub).args(["post", "hub news"]).assert().success();
    let server = serve(&hub, &[]);
    let out = rz(&school).args(["sync", &server.url]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("First contact") && said.contains("fingerprint"),
        "{said}"
    );
    assert!(said.contains("held in quarantine"), "{said}");
    // Nothing applied on either side; one bundle waits on each.
    assert!(!texts(&school).contains(&"hub news".to_string()));
    assert!(!texts(&hub).contains(&"school news".to_string()));
    assert_eq!(json(&school, &["pending"]).as_array().unwrap().len(), 1);
    assert_eq!(json(&hub, &["pending"]).as_array().unwrap().len(), 1);
}

#[test]
fn the_link_down_is_a_clear_message_and_exit_code_11() {
    let dir = tempfile::tempdir().unwrap();
    let school = init(dir.path(), "school");
    // A port nobody listens on: bind one, learn it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = rz(&school)
        .args([
            "sync",
            &format!("https://127.0.0.1:{port}"),
            "--attempts",
            "2",
            "--backoff-ms",
            "10",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(11));
    assert!(String::from_utf8_lossy(&out.stderr).contains("link down"));
}

#[test]
fn a_circle_only_payload_is_pulled_only_by_a_caller_whose_host_declarations_allow_it() {
    const SECRET: &str = "the key is under the third stone";
    let dir = tempfile::tempdir().unwrap();
    let init_as = |name: &str, who: &str| {
        let home = dir.path().join(name);
        rz(&home)
            .args(["init", "--name", name, "--author", who, "--no-passphrase"])
            .assert()
            .success();
        home
    };
    let school = init_as("school", "alice");
    let ship = init_as("ship", "bob");
    let outsider = init_as("outsider", "carl");
    let server = serve(&school, &["--trust-on-first-use"]);
    // Ship and outsider introduce themselves: their pushes carry their host declarations.
    for home in [&ship, &outsider] {
        rz(home).args(["post", "hello"]).assert().success();
        let out = rz(home)
            .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
            .args(["sync", &server.url, "--peer", &server.id, "--push-only"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bob = json(&ship, &["whoami"])["authors"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    rz(&school)
        .args(["circle", "create", "crew", &bob])
        .assert()
        .success();
    let secret = json(&school, &["post", "--circle", "crew", SECRET])["hash"]
        .as_str()
        .unwrap()
        .to_string();
    for home in [&ship, &outsider] {
        let out = rz(home)
            .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
            .args(["sync", &server.url, "--peer", &server.id, "--pull-only"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = |home: &Path| {
        let out = rz(home).args(["log", "--json"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // The ship hosts bob, a member: it has the payload.
    assert!(log(&ship).contains(SECRET));
    // The outsider has the signed header (the feed stays whole), never the payload.
    let outsider_log = log(&outsider);
    assert!(outsider_log.contains(&secret));
    assert!(!outsider_log.contains(SECRET));
}
