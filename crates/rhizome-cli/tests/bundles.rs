#![allow(clippy::unwrap_used)]
//! End-to-end tests of bundles: the real `rhizome` binary exporting and importing between
//! several homes, and importing every kind of damaged, truncated, forged, spliced or hostile
//! bundle. Each test checks exit codes, the `import --json` report, that the log holds exactly
//! what it should (compared byte for byte), that `verify` passes, and that nothing panicked.
//!
//! Some hostile bundles are signed by a test exporter key (see [`craft`]): a bundle whose
//! trailer is valid but whose event lines are bad is what a buggy or malicious exporter
//! produces, and is the only way to reach "some events refused" (exit 9) rather than "trailer
//! invalid" (exit 7), since any change to a line in transit breaks the trailer's hash.

use assert_cmd::Command;
use rhizome_core::bundle::{Exporter, Manifest, Trailer, FORMAT};
use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::{Hash, Header, InstanceId, PublicKey, SecretKey, Seq, Signature, Timestamp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The binary, with no passphrase or home leaking in from the environment.
fn bin() -> Command {
    let mut c = Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        // Bundles of instances never seen before are imported at once (and the instance
        // trusted) instead of being held in quarantine for `rhizome approve`: these tests are
        // about the import itself.
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1");
    c
}

/// The binary, pointed at `home`.
fn rz(home: &Path) -> Command {
    let mut c = bin();
    c.arg("--home").arg(home);
    c
}

fn describe(cmd: &Command, out: &std::process::Output) -> String {
    format!(
        "{cmd:?}\n  status: {:?}\n  stdout: {}\n  stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What a finished command did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    desc: String,
}

/// Runs `cmd`; asserts it exited by itself (not by a signal) and did not panic.
fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    let desc = describe(cmd, &out);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic: {desc}");
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {desc}"));
    Run {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        desc,
    }
}

/// Runs `cmd`, asserts exit 0, returns stdout.
fn ok(cmd: &mut Command) -> String {
    let r = run(cmd);
    assert_eq!(r.code, 0, "expected success: {}", r.desc);
    r.stdout
}

/// Runs `cmd`, asserts exit `code`, an `error:` line and every needle in stderr.
fn fails(cmd: &mut Command, code: i32, needles: &[&str]) -> Run {
    let r = run(cmd);
    assert_eq!(r.code, code, "wrong exit code: {}", r.desc);
    assert!(r.stderr.contains("error: "), "no error line: {}", r.desc);
    for n in needles {
        assert!(
            r.stderr.contains(n),
            "stderr should mention {n:?}: {}",
            r.desc
        );
    }
    r
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

fn init(home: &Path, name: &str, author: &str) {
    ok(rz(home).args([
        "init",
        "--name",
        name,
        "--author",
        author,
        "--no-passphrase",
        // These tests count events; PROFILE events are tested in tests/profiles.rs.
        "--no-profile",
    ]));
}

/// Posts `text` as the default author; returns the event hash.
fn post(home: &Path, text: &str) -> String {
    let v = json_of(&ok(rz(home).args(["--json", "post", text])));
    v["hash"].as_str().unwrap().to_string()
}

fn whoami(home: &Path) -> Value {
    json_of(&ok(rz(home).args(["whoami", "--json"])))
}

fn instance_id(home: &Path) -> String {
    whoami(home)["instance_id"].as_str().unwrap().to_string()
}

/// Public key of the default author.
fn author_key(home: &Path) -> String {
    whoami(home)["authors"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `export --all --json`; returns the export summary.
fn export_all(home: &Path, to: &Path) -> Value {
    let v = json_of(&ok(rz(home)
        .args(["--json", "export", "--all", "--to"])
        .arg(to)));
    assert_eq!(
        v["bytes"].as_u64(),
        Some(std::fs::metadata(to).unwrap().len()),
        "{v}"
    );
    v
}

/// `export --for peer --json` (extra flags appended); returns the export summary.
fn export_for(home: &Path, peer: &str, to: &Path, extra: &[&str]) -> Value {
    json_of(&ok(rz(home)
        .args(["--json", "export", "--for", peer])
        .args(extra)
        .arg("--to")
        .arg(to)))
}

/// An `import --json` run: exit code, parsed report (Null if none) and stderr.
struct Imported {
    code: i32,
    report: Value,
    stderr: String,
    desc: String,
}

impl Imported {
    /// Asserts the exit code and returns the report.
    fn expect(&self, code: i32) -> &Value {
        assert_eq!(self.code, code, "wrong exit code: {}", self.desc);
        if code != 0 {
            assert!(
                self.stderr.contains("error: "),
                "no error line: {}",
                self.desc
            );
        }
        &self.report
    }
}

fn import(home: &Path, file: &Path) -> Imported {
    let r = run(rz(home).args(["import", "--json"]).arg(file));
    let report = if r.stdout.trim().is_empty() {
        Value::Null
    } else {
        json_of(&r.stdout)
    };
    Imported {
        code: r.code,
        report,
        stderr: r.stderr,
        desc: r.desc,
    }
}

fn log(home: &Path) -> String {
    ok(rz(home).args(["log", "--json"]))
}

fn log_of(home: &Path, author: &str) -> String {
    ok(rz(home).args(["log", "--json", "--author", author]))
}

/// `verify --json` must pass; returns its report.
fn verify_ok(home: &Path) -> Value {
    let v = json_of(&ok(rz(home).args(["verify", "--json"])));
    assert_eq!(v["ok"], true, "{v}");
    v
}

fn inspect(file: &Path) -> Run {
    run(bin().args(["bundle", "inspect", "--json"]).arg(file))
}

fn peers(home: &Path) -> Vec<Value> {
    json_of(&ok(rz(home).args(["peers", "--json"])))
        .as_array()
        .unwrap()
        .clone()
}

/// The lines of a bundle, without their newlines.
fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if v.last().is_some_and(Vec::is_empty) {
        v.pop();
    }
    v
}

/// Lines joined, each followed by a newline.
fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn text_lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

/// The lines of a log, sorted: logs of several feeds list the feeds in the order the home
/// first saw them, which differs between homes.
fn sorted_lines(s: &str) -> Vec<String> {
    let mut v = text_lines(s);
    v.sort();
    v
}

/// The vector clock (author -> highest seq) of a log in JSON Lines.
fn clock_of_log(log: &str) -> BTreeMap<String, u64> {
    let mut c = BTreeMap::new();
    for l in log.lines() {
        let v = json_of(l);
        let seq = v["seq"].as_u64().unwrap();
        let e = c
            .entry(v["author"].as_str().unwrap().to_string())
            .or_insert(0);
        *e = seq.max(*e);
    }
    c
}

fn clock_value(c: &BTreeMap<String, u64>) -> Value {
    json!(c)
}

/// The refusals of a report as (line, reason).
fn refusals(report: &Value) -> Vec<(u64, String)> {
    report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Rows in a home's table of events waiting for their predecessors.
fn pending_rows(home: &Path) -> u64 {
    let db = rusqlite::Connection::open_with_flags(
        home.join("rhizome.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row("SELECT count(*) FROM pending", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// An event line by the identity point (a small-order key), with a consistent hash and
/// payload commitment and the signature (R = base point, S = 1), which satisfies the
/// cofactorless verification equation for the identity key whatever the message.
fn small_order_event() -> Vec<u8> {
    let payload = Payload::new(json!({"text": "signed by nobody"})).unwrap();
    let mut key = [0u8; 32];
    key[0] = 1;
    let header = Header {
        author: PublicKey::from_bytes_unchecked(key),
        seq: Seq::FIRST,
        prev: None,
        kind: EventType::new("POST").unwrap(),
        timestamp: Timestamp::new(1_700_000_000_000).unwrap(),
        payload_hash: payload.hash(),
        payload_size: payload.canonical_bytes().len() as u64,
    };
    let mut sig = [0u8; 64];
    sig[0] = 0x58;
    sig[1..32].fill(0x66);
    sig[32] = 1;
    rhizome_core::event::line(
        &header,
        Some(payload.canonical_bytes()),
        &header.hash(),
        &Signature::from_bytes(sig),
    )
}

/// Key of the test exporter that signs hand-made bundles.
fn forger() -> SecretKey {
    SecretKey::from_seed(&[0x42; 32])
}

/// A bundle signed by the test exporter: the manifest of `template` (re-signed as the test
/// exporter's), the given event lines, and a valid trailer counting `trailer_events` events
/// (default: the number of lines given).
fn craft(template: &[u8], events: &[Vec<u8>], trailer_events: Option<u64>) -> Vec<u8> {
    let first = &lines(template)[0];
    let mut m = Manifest::parse(first).unwrap();
    let key = forger();
    m.exporter = Exporter {
        instance_id: InstanceId::of(&key.public_key()),
        public_key: key.public_key(),
        name: "test exporter".into(),
        age_recipient: None,
    };
    // The template's host declarations name its own instance: they would not verify here.
    m.hosts.clear();
    let mut out = m.to_line(&key);
    out.push(b'\n');
    out.extend_from_slice(&join(events));
    let digest: [u8; 32] = Sha256::digest(&out).into();
    let t = Trailer {
        trailer: FORMAT.into(),
        events: trailer_events.unwrap_or(events.len() as u64),
        sha256: Hash::from_bytes(digest),
    };
    out.extend_from_slice(&t.to_line(&key));
    out.push(b'\n');
    out
}

/// Replaces the first occurrence of `from` in `line` by `to`.
fn replace_once(line: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let i = line
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| {
            panic!(
                "{:?} not in {:?}",
                String::from_utf8_lossy(from),
                String::from_utf8_lossy(line)
            )
        });
    let mut out = line[..i].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&line[i + from.len()..]);
    out
}

/// Changes one hex digit in the middle of the value of `"field":"<hex>"` in an event line.
fn flip_hex_field(line: &[u8], field: &str) -> Vec<u8> {
    let tag = format!("\"{field}\":\"");
    let start = line
        .windows(tag.len())
        .position(|w| w == tag.as_bytes())
        .unwrap()
        + tag.len();
    let mut out = line.to_vec();
    let i = start + 40;
    out[i] = if out[i] == b'0' { b'1' } else { b'0' };
    out
}

/// A home called `name` whose default author (`author`) has posted `n` posts.
fn home_with_posts(dir: &Path, name: &str, author: &str, n: usize) -> PathBuf {
    let home = dir.join(name);
    init(&home, name, author);
    for i in 1..=n {
        post(&home, &format!("{name} post {i}"));
    }
    home
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// 1. Relay through a carrier
// ---------------------------------------------------------------------------------------------

#[test]
fn relay_through_a_carrier_keeps_events_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    init(&a, "School", "ana");
    init(&b, "Ship", "bo");
    init(&c, "Clinic", "cy");
    let ana = author_key(&a);
    let (a_id, b_id) = (instance_id(&a), instance_id(&b));

    let p1 = post(&a, "The well is fixed");
    ok(rz(&a).args(["comment", &p1, "Bring buckets"]));
    ok(rz(&a).args(["like", &p1]));
    let p2 = post(&a, "Market on Friday");
    let a_log = log(&a);
    assert_eq!(a_log.lines().count(), 4);

    // A -> B
    let a1 = dir.path().join("a1.bundle");
    let summary = export_all(&a, &a1);
    assert_eq!(summary["events"], 4);
    let r = import(&b, &a1);
    let rep = r.expect(0);
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["events_read"], 4);
    assert_eq!(rep["new"], 4);
    assert_eq!(rep["duplicate"], 0);
    assert_eq!(rep["refused_total"], 0);
    assert_eq!(rep["feeds_touched"], 1);
    assert_eq!(rep["exporter"]["instance_id"], a_id.as_str());
    assert_eq!(log_of(&b, &ana), a_log);

    // B adds its own post and carries everything to C.
    post(&b, "Bo was here");
    let b1 = dir.path().join("b1.bundle");
    assert_eq!(export_all(&b, &b1)["events"], 5);
    // A's event lines travel in B's bundle exactly as A wrote them.
    let a_lines = text_lines(&a_log);
    let b1_text = String::from_utf8(std::fs::read(&b1).unwrap()).unwrap();
    for l in &a_lines {
        assert!(b1_text.lines().any(|x| x == l), "B's bundle lacks {l}");
    }
    let r = import(&c, &b1);
    let rep = r.expect(0);
    assert_eq!(rep["new"], 5, "{rep}");
    assert_eq!(rep["feeds_touched"], 2);
    assert_eq!(rep["exporter"]["instance_id"], b_id.as_str());

    // C holds A's feed byte for byte, verified by A's author key though B carried it.
    assert_eq!(log_of(&c, &ana), a_log);
    let c_log = text_lines(&log(&c));
    assert_eq!(c_log.len(), 5);
    for l in &a_lines {
        assert!(c_log.contains(l), "C's log lacks {l}");
    }
    let v = verify_ok(&c);
    assert_eq!(v["events_checked"], 5);
    assert_eq!(v["feeds"], 2);

    // C only ever exchanged with B.
    let p = peers(&c);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["instance_id"], b_id.as_str());
    assert_eq!(p[0]["name"], "Ship");

    // Following A's author puts A's posts in C's timeline.
    ok(rz(&c).args(["follow", &ana]));
    let feed = json_of(&ok(rz(&c).args(["feed", "--json"])));
    let items = feed["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().filter_map(|i| i["text"].as_str()).collect();
    assert!(texts.contains(&"The well is fixed"), "{feed}");
    assert!(texts.contains(&"Market on Friday"), "{feed}");
    let hashes: Vec<&str> = items.iter().filter_map(|i| i["hash"].as_str()).collect();
    assert!(
        hashes.contains(&p1.as_str()) && hashes.contains(&p2.as_str()),
        "{feed}"
    );
    ok(rz(&c).args(["views", "check"]));
}

// ---------------------------------------------------------------------------------------------
// 2. Importing twice
// ---------------------------------------------------------------------------------------------

/// Lines near the 2 MiB event-line limit, about a chunk each (each goes alone) and, together,
/// more than the bytes allowed in flight: the reader waits for the writer to store earlier
/// ones, and every event arrives.
#[test]
fn large_lines_import_whole() {
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("made");
    ok(bin()
        .args(["bench", "bundle", "--events", "24", "--feeds", "2"])
        .args(["--payload-bytes", "2090000", "--dir"])
        .arg(&made));
    let file = made.join("full.bundle");
    assert!(std::fs::metadata(&file).unwrap().len() > 50_000_000);
    let home = dir.path().join("dest");
    init(&home, "dest", "dora");
    let report = import(&home, &file).expect(0).clone();
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["new"], 24, "{report}");
    assert_eq!(report["refused_total"], 0, "{report}");
    // Stored whole: a second import finds every event a duplicate.
    let again = import(&home, &file).expect(0).clone();
    assert_eq!(again["duplicate"], 24, "{again}");
}

#[test]
fn importing_the_same_bundle_twice_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 3);
    let b = dir.path().join("b");
    init(&b, "b", "bo");
    let file = dir.path().join("a.bundle");
    export_all(&a, &file);

    assert_eq!(import(&b, &file).expect(0)["new"], 3);
    let before = log(&b);
    let rep = import(&b, &file).expect(0).clone();
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["events_read"], 3);
    assert_eq!(rep["new"], 0);
    assert_eq!(rep["duplicate"], 3);
    assert_eq!(rep["pending"], 0);
    assert_eq!(rep["forks"], 0);
    assert_eq!(log(&b), before);
    assert_eq!(log_of(&b, &author_key(&a)), log(&a));
    assert_eq!(peers(&b).len(), 1);
    verify_ok(&b);
}

// ---------------------------------------------------------------------------------------------
// 3. Clocks: deltas, acked vs sent, dry runs
// ---------------------------------------------------------------------------------------------

#[test]
fn exports_for_a_peer_carry_only_what_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let b = dir.path().join("b");
    init(&b, "b", "bo");
    let (ana, b_id) = (author_key(&a), instance_id(&b));

    // A -> B, then B -> A: A learns what B holds.
    let a1 = dir.path().join("a1.bundle");
    export_all(&a, &a1);
    assert_eq!(import(&b, &a1).expect(0)["new"], 2);
    post(&b, "from b");
    let b1 = dir.path().join("b1.bundle");
    export_all(&b, &b1);
    let rep = import(&a, &b1).expect(0).clone();
    assert_eq!(
        (rep["new"].as_u64(), rep["duplicate"].as_u64()),
        (Some(1), Some(2))
    );

    let b_clock = clock_of_log(&log(&b));
    let p = peers(&a);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["instance_id"], b_id.as_str());
    assert_eq!(p[0]["acked"], clock_value(&b_clock), "{p:?}");
    assert_eq!(p[0]["sent"], json!({}));

    // Nothing new: a delta for B is empty.
    let empty = dir.path().join("empty.bundle");
    assert_eq!(export_for(&a, &b_id, &empty, &[])["events"], 0);

    // A writes three more; the delta for B carries exactly those.
    for i in 3..=5 {
        post(&a, &format!("a post {i}"));
    }
    let d1 = dir.path().join("d1.bundle");
    let s = export_for(&a, &b_id, &d1, &[]);
    assert_eq!(s["events"], 3, "{s}");
    assert_eq!(s["recipient"], b_id.as_str());
    let ins = json_of(&ok(bin().args(["bundle", "inspect", "--json"]).arg(&d1)));
    let m = &ins["manifest"];
    assert_eq!(m["counts"]["events"], 3, "{ins}");
    assert_eq!(m["counts"]["feeds"], 1);
    assert_eq!(m["recipient"], b_id.as_str());
    assert_eq!(m["base"], clock_value(&b_clock));
    assert_eq!(
        m["feeds"],
        json!([{"author": ana, "from": 3, "to": 5, "head": m["feeds"][0]["head"]}])
    );
    assert_eq!(ins["status"], "complete");
    let a_log = log_of(&a, &ana);
    let a_lines = text_lines(&a_log);
    let d1_lines: Vec<String> = String::from_utf8(std::fs::read(&d1).unwrap())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(d1_lines.len(), 5);
    assert_eq!(d1_lines[1..4], a_lines[2..5]);

    // What was sent is remembered.
    let a_clock = clock_of_log(&log(&a));
    let p = peers(&a);
    assert_eq!(p[0]["sent"], clock_value(&a_clock), "{p:?}");
    assert_eq!(p[0]["acked"], clock_value(&b_clock), "{p:?}");

    // The stick is lost. --since-sent has nothing new for B; the default (acked) still
    // carries the three unacknowledged events.
    let d2 = dir.path().join("d2.bundle");
    assert_eq!(export_for(&a, &b_id, &d2, &["--since-sent"])["events"], 0);
    let ins = json_of(&ok(bin().args(["bundle", "inspect", "--json"]).arg(&d2)));
    assert_eq!(ins["manifest"]["counts"]["events"], 0);
    assert_eq!(ins["event_lines"], 0);
    let d3 = dir.path().join("d3.bundle");
    assert_eq!(export_for(&a, &b_id, &d3, &[])["events"], 3);

    // B gets the second stick, answers, and then A has nothing left to send it.
    let rep = import(&b, &d3).expect(0).clone();
    assert_eq!(rep["new"], 3, "{rep}");
    assert_eq!(log_of(&b, &ana), a_log);
    let b2 = dir.path().join("b2.bundle");
    export_all(&b, &b2);
    import(&a, &b2).expect(0);
    let p = peers(&a);
    assert_eq!(p[0]["acked"], clock_value(&clock_of_log(&log(&b))));
    let d4 = dir.path().join("d4.bundle");
    assert_eq!(export_for(&a, &b_id, &d4, &[])["events"], 0);

    // Unknown or malformed peers are invalid input, and nothing is written.
    let x = dir.path().join("x.bundle");
    fails(
        rz(&a)
            .args([
                "export",
                "--for",
                "00000000000000000000000000000000",
                "--to",
            ])
            .arg(&x),
        3,
        &["unknown peer"],
    );
    fails(
        rz(&a)
            .args(["export", "--for", "not-an-id", "--to"])
            .arg(&x),
        3,
        &["not-an-id"],
    );
    assert!(!x.exists());

    // A dry run predicts the exact size of the file, for --all and for a peer.
    post(&a, "one more for the dry run");
    for args in [vec!["--all"], vec!["--for", b_id.as_str()]] {
        let dry = json_of(&ok(rz(&a)
            .args(["--json", "export", "--dry-run"])
            .args(&args)
            .arg("--to")
            .arg(&x)));
        assert_eq!(dry["dry_run"], true);
        assert!(!x.exists(), "a dry run wrote {x:?}");
        let real = json_of(&ok(rz(&a)
            .args(["--json", "export"])
            .args(&args)
            .arg("--to")
            .arg(&x)));
        let size = std::fs::metadata(&x).unwrap().len();
        assert_eq!(
            dry["bytes"].as_u64(),
            Some(size),
            "{args:?}: {dry} vs {real}"
        );
        assert_eq!(dry["events"], real["events"]);
        std::fs::remove_file(&x).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Pending events
// ---------------------------------------------------------------------------------------------

#[test]
fn a_delta_before_its_base_waits_then_joins() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 3);
    let b = dir.path().join("b");
    init(&b, "b", "bo");
    let (ana, b_id) = (author_key(&a), instance_id(&b));

    let bundle1 = dir.path().join("bundle1");
    export_all(&a, &bundle1);
    import(&b, &bundle1).expect(0);
    let from_b = dir.path().join("from_b");
    export_all(&b, &from_b);
    import(&a, &from_b).expect(0);
    post(&a, "a post 4");
    post(&a, "a post 5");
    let delta = dir.path().join("delta");
    assert_eq!(export_for(&a, &b_id, &delta, &[])["events"], 2);

    // The delta arrives first at C: both events wait.
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let rep = import(&c, &delta).expect(0).clone();
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["events_read"], 2);
    assert_eq!(rep["parked"], 2, "{rep}");
    assert_eq!(rep["pending"], 2);
    assert_eq!(rep["new"], 0);
    assert_eq!(rep["promoted"], 0);
    assert_eq!(log_of(&c, &ana), "");
    assert_eq!(log(&c), "");
    assert_eq!(pending_rows(&c), 2);
    verify_ok(&c);

    // The same delta again changes nothing: still waiting, parked once.
    let rep = import(&c, &delta).expect(0).clone();
    assert_eq!(rep["new"], 0, "{rep}");
    assert_eq!(rep["pending"], 2, "{rep}");
    assert_eq!(pending_rows(&c), 2);
    assert_eq!(log(&c), "");

    // Then the base arrives: the waiting events join, in order.
    let rep = import(&c, &bundle1).expect(0).clone();
    assert_eq!(rep["new"], 3, "{rep}");
    assert_eq!(rep["promoted"], 2);
    assert_eq!(rep["parked"], 0);
    assert_eq!(rep["pending"], 0);
    assert_eq!(pending_rows(&c), 0);
    let a_log = log_of(&a, &ana);
    assert_eq!(a_log.lines().count(), 5);
    assert_eq!(log_of(&c, &ana), a_log);
    let v = verify_ok(&c);
    assert_eq!(v["events_checked"], 5);
    ok(rz(&c).args(["views", "check"]));

    // And the delta is now all duplicates.
    let rep = import(&c, &delta).expect(0).clone();
    assert_eq!(
        (rep["new"].as_u64(), rep["duplicate"].as_u64()),
        (Some(0), Some(2))
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Forks
// ---------------------------------------------------------------------------------------------

#[test]
fn an_equivocating_author_is_recorded_as_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let ana = author_key(&a);
    let a_id = instance_id(&a);
    // A copy of A's home: the same author keys, so the same feed.
    let a2 = dir.path().join("a2");
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(&a)
        .arg(&a2)
        .status()
        .unwrap();
    assert!(st.success());
    let held = post(&a, "what A says third");
    let other = post(&a2, "what A2 says third");
    assert_ne!(held, other);
    let fa = dir.path().join("fa.bundle");
    let fa2 = dir.path().join("fa2.bundle");
    export_all(&a, &fa);
    export_all(&a2, &fa2);

    let c = dir.path().join("c");
    init(&c, "c", "cy");
    assert_eq!(import(&c, &fa).expect(0)["new"], 3);
    let r = import(&c, &fa2);
    // A fork is evidence kept, not a refused event: the import completes with exit 0.
    let rep = r.expect(0).clone();
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["forks"], 1);
    assert_eq!(rep["duplicate"], 2);
    assert_eq!(rep["new"], 0);
    assert_eq!(rep["refused_total"], 0);
    let forks = json_of(&ok(rz(&c).args(["forks", "--json"])));
    assert_eq!(
        forks,
        json!([{"author": ana, "seq": 3, "held": held, "other": other,
                "kind": "same_seq", "carrier": a_id}])
    );
    let human = ok(rz(&c).arg("forks"));
    assert!(human.contains(&held) && human.contains(&other), "{human}");
    // C's log keeps the first event it saw.
    assert_eq!(log_of(&c, &ana), log_of(&a, &ana));
    verify_ok(&c);
    // Seeing the same evidence again does not duplicate it.
    assert_eq!(import(&c, &fa2).expect(0)["forks"], 1);
    assert_eq!(
        json_of(&ok(rz(&c).args(["forks", "--json"])))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Carried by a third instance, the evidence names that carrier.
    let b = dir.path().join("b");
    init(&b, "b", "bo");
    import(&b, &fa2).expect(0);
    let via_b = dir.path().join("via_b.bundle");
    export_all(&b, &via_b);
    let d = dir.path().join("d");
    init(&d, "d", "di");
    import(&d, &fa).expect(0);
    let rep = import(&d, &via_b).expect(0).clone();
    assert_eq!(rep["forks"], 1, "{rep}");
    let forks = json_of(&ok(rz(&d).args(["forks", "--json"])));
    assert_eq!(forks[0]["carrier"], instance_id(&b).as_str(), "{forks}");
    assert_eq!(forks[0]["held"], held.as_str());
    assert_eq!(forks[0]["other"], other.as_str());
    verify_ok(&d);

    // The evidence travels: C's bundle carries the conflicting signed header (payload
    // withheld) after its feeds, listed in the manifest, so E, which never saw A2's bundle,
    // marks the feed forked too, with nothing reported missing.
    let via_c = dir.path().join("via_c.bundle");
    export_all(&c, &via_c);
    let text = std::fs::read_to_string(&via_c).unwrap();
    let m: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        m["evidence"],
        json!([{"author": ana, "seq": 3, "hash": other}]),
        "{m}"
    );
    assert!(
        !text.contains("what A2 says third"),
        "evidence carries the header only"
    );
    let e = dir.path().join("e");
    init(&e, "e", "ed");
    let rep = import(&e, &via_c).expect(0).clone();
    assert_eq!(rep["forks"], 1, "{rep}");
    assert_eq!(rep["missing"], json!([]), "{rep}");
    assert_eq!(rep["new"], 3, "{rep}");
    let forks = json_of(&ok(rz(&e).args(["forks", "--json"])));
    assert_eq!(forks[0]["held"], held.as_str(), "{forks}");
    assert_eq!(forks[0]["other"], other.as_str(), "{forks}");
    assert_eq!(forks[0]["carrier"], instance_id(&c).as_str(), "{forks}");
    assert_eq!(log_of(&e, &ana), log_of(&a, &ana));
    verify_ok(&e);
    // And E carries it on.
    let via_e = dir.path().join("via_e.bundle");
    export_all(&e, &via_e);
    let text = std::fs::read_to_string(&via_e).unwrap();
    assert!(text.lines().next().unwrap().contains("\"evidence\""));
}

// ---------------------------------------------------------------------------------------------
// 6. Truncated bundles
// ---------------------------------------------------------------------------------------------

#[test]
fn a_truncated_bundle_keeps_every_complete_event() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 5);
    let ana = author_key(&a);
    let full = dir.path().join("full.bundle");
    export_all(&a, &full);
    let bytes = std::fs::read(&full).unwrap();
    let ls = lines(&bytes);
    assert_eq!(ls.len(), 7);
    let a_lines = text_lines(&log_of(&a, &ana));

    // Cut in the middle of the fourth event line.
    let mut cut = join(&ls[..4]);
    cut.extend_from_slice(&ls[4][..ls[4].len() / 2]);
    let cut = write(&dir.path().join("cut.bundle"), &cut);
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let r = import(&c, &cut);
    let rep = r.expect(7).clone();
    assert!(r.stderr.contains("truncated"), "{}", r.desc);
    assert_eq!(rep["status"], "truncated", "{rep}");
    assert_eq!(rep["new"], 3);
    assert_eq!(rep["events_read"], 3);
    assert_eq!(
        rep["refused_total"], 0,
        "the cut line is the truncation, not a bad event"
    );
    assert_eq!(rep["missing"].as_array().unwrap().len(), 1, "{rep}");
    assert_eq!(text_lines(&log(&c)), a_lines[..3]);
    verify_ok(&c);
    assert_eq!(inspect(&cut).code, 7);

    // The whole bundle afterwards completes with the rest.
    let rep = import(&c, &full).expect(0).clone();
    assert_eq!(rep["new"], 2, "{rep}");
    assert_eq!(rep["duplicate"], 3);
    assert_eq!(text_lines(&log(&c)), a_lines);
    verify_ok(&c);

    // Cut at a line boundary just before the trailer: every event, still truncated.
    let cut2 = write(&dir.path().join("cut2.bundle"), &join(&ls[..6]));
    let d = dir.path().join("d");
    init(&d, "d", "di");
    let rep = import(&d, &cut2).expect(7).clone();
    assert_eq!(rep["status"], "truncated", "{rep}");
    assert_eq!(rep["new"], 5);
    assert_eq!(rep["missing"], json!([]));
    assert_eq!(text_lines(&log(&d)), a_lines);
    let rep = import(&d, &full).expect(0).clone();
    assert_eq!(
        (rep["new"].as_u64(), rep["duplicate"].as_u64()),
        (Some(0), Some(5))
    );

    // Cut inside the manifest: not a bundle at all.
    let cut3 = write(&dir.path().join("cut3.bundle"), &ls[0][..100]);
    let e = dir.path().join("e");
    init(&e, "e", "el");
    assert_eq!(import(&e, &cut3).expect(8), &Value::Null);
    assert_eq!(log(&e), "");
}

// ---------------------------------------------------------------------------------------------
// 7. Bad input
// ---------------------------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (splitmix64).
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

#[test]
fn bundles_rejected_whole_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let ls = lines(&std::fs::read(&good).unwrap());

    let c = dir.path().join("c");
    init(&c, "c", "cy");
    post(&c, "c's own post");
    let before = log(&c);

    let forged_manifest = {
        let m = String::from_utf8(ls[0].clone()).unwrap();
        assert!(m.contains("\"name\":\"a\""));
        let mut v = ls.clone();
        v[0] = m.replace("\"name\":\"a\"", "\"name\":\"b\"").into_bytes();
        join(&v)
    };
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "not-json",
            b"hello, this is not a bundle\n".to_vec(),
            vec!["line 1", "manifest", "invalid JSON"],
        ),
        ("garbage", noise(5000, 7), vec!["line 1", "manifest"]),
        ("empty", Vec::new(), vec!["empty"]),
        (
            "no-manifest",
            join(&ls[1..]),
            vec!["line 1", "manifest", "format"],
        ),
        (
            "json-array",
            b"[1,2,3]\n".to_vec(),
            vec!["line 1", "manifest"],
        ),
        (
            "other-format",
            b"{\"format\":\"rhizome-bundle/9\"}\n".to_vec(),
            vec!["line 1", "unsupported format"],
        ),
        (
            "forged-manifest",
            forged_manifest,
            vec!["line 1", "signature"],
        ),
    ];
    for (name, bytes, needles) in cases {
        let file = write(&dir.path().join(name), &bytes);
        let r = import(&c, &file);
        assert_eq!(r.code, 8, "{name}: {}", r.desc);
        assert!(r.stderr.contains("nothing stored"), "{name}: {}", r.desc);
        for n in &needles {
            assert!(
                r.stderr.contains(n),
                "{name}: stderr should mention {n:?}: {}",
                r.desc
            );
        }
        assert_eq!(r.report, Value::Null, "{name}");
        assert_eq!(log(&c), before, "{name} changed the log");
        assert_eq!(peers(&c), Vec::<Value>::new(), "{name} recorded a peer");
        // inspect agrees: rejected (8), never a panic.
        let ins = inspect(&file);
        assert_eq!(ins.code, 8, "{name}: {}", ins.desc);
    }
    verify_ok(&c);
}

#[test]
fn trailer_problems_keep_every_valid_event() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 3);
    let ana = author_key(&a);
    let a_log = log_of(&a, &ana);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);
    let n = ls.len();

    let forged_trailer = {
        let mut v = ls.clone();
        v[n - 1] = flip_hex_field(&v[n - 1], "sha256");
        join(&v)
    };
    let events = ls[1..n - 1].to_vec();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("no-trailer", join(&ls[..n - 1]), "truncated", "truncated"),
        (
            "forged-trailer",
            forged_trailer,
            "trailer_invalid",
            "signature",
        ),
        (
            "count-mismatch",
            craft(&bytes, &events, Some(4)),
            "trailer_invalid",
            "trailer counts 4 events but 3 were read",
        ),
        (
            "after-trailer",
            {
                let mut b = bytes.clone();
                b.extend_from_slice(b"{\"extra\":1}\n");
                b
            },
            "trailer_invalid",
            "after the trailer",
        ),
    ];
    for (name, bytes, status, needle) in cases {
        let c = dir.path().join(format!("home-{name}"));
        init(&c, "c", "cy");
        let file = write(&dir.path().join(name), &bytes);
        let r = import(&c, &file);
        let rep = r.expect(7);
        assert_eq!(rep["status"], status, "{name}: {rep}");
        let detail = rep["detail"].as_str().unwrap_or("truncated");
        assert!(
            detail.contains(needle) || r.stderr.contains(needle),
            "{name}: should mention {needle:?}: {}",
            r.desc
        );
        if status == "trailer_invalid" {
            assert!(r.stderr.contains("trailer invalid"), "{}", r.desc);
        }
        assert_eq!(rep["new"], 3, "{name}: {rep}");
        assert_eq!(rep["refused_total"], 0, "{name}: {rep}");
        assert_eq!(log_of(&c, &ana), a_log, "{name}");
        verify_ok(&c);
        assert_eq!(inspect(&file).code, 7, "{name}");
    }
}

#[test]
fn tampered_event_lines_are_refused_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 3);
    ok(rz(&a).args(["author", "add", "bo", "--no-profile"]));
    for i in 1..=2 {
        ok(rz(&a).args(["--as", "bo", "post", &format!("bo post {i}")]));
    }
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);
    assert_eq!(ls.len(), 7);
    // Events of the feed listed first, then of the second feed.
    let first_author = json_of(std::str::from_utf8(&ls[1]).unwrap())["author"]
        .as_str()
        .unwrap()
        .to_string();
    let first_len = ls[1..6]
        .iter()
        .take_while(|l| json_of(std::str::from_utf8(l).unwrap())["author"] == first_author.as_str())
        .count();
    // The last event of the first feed: line 1 + first_len (1-based, manifest is line 1).
    let last_of_first = first_len; // index into ls
    let a_log = log(&a);

    struct Case {
        name: &'static str,
        index: usize,
        change: fn(&[u8]) -> Vec<u8>,
        reason: &'static str,
    }
    let cases = [
        Case {
            name: "sig",
            index: last_of_first,
            change: |l| flip_hex_field(l, "sig"),
            reason: "`sig`",
        },
        Case {
            name: "payload",
            index: last_of_first,
            change: |l| replace_once(l, b"post ", b"pest "),
            reason: "`payload`",
        },
        Case {
            name: "hash",
            index: last_of_first,
            change: |l| flip_hex_field(l, "hash"),
            reason: "`hash`",
        },
    ];
    for case in &cases {
        let mut tampered = ls.clone();
        tampered[case.index] = (case.change)(&ls[case.index]);
        let line_no = case.index as u64 + 1;
        let expected_log: Vec<String> = sorted_lines(&a_log)
            .into_iter()
            .filter(|l| l.as_bytes() != ls[case.index].as_slice())
            .collect();

        // Changed in transit: the trailer no longer matches (7), the line is refused, the
        // rest kept.
        let c = dir.path().join(format!("transit-{}", case.name));
        init(&c, "c", "cy");
        let file = write(
            &dir.path().join(format!("transit-{}.bundle", case.name)),
            &join(&tampered),
        );
        let r = import(&c, &file);
        let rep = r.expect(7).clone();
        assert_eq!(rep["status"], "trailer_invalid", "{}: {rep}", case.name);
        let refused = refusals(&rep);
        assert_eq!(refused.len(), 1, "{}: {rep}", case.name);
        assert_eq!(refused[0].0, line_no, "{}: {rep}", case.name);
        assert!(refused[0].1.contains(case.reason), "{}: {rep}", case.name);
        assert_eq!(rep["new"], 4, "{}: {rep}", case.name);
        assert_eq!(sorted_lines(&log(&c)), expected_log, "{}", case.name);
        verify_ok(&c);

        // Made so by its exporter (valid trailer): exit 9, the line named, the rest kept.
        let d = dir.path().join(format!("exporter-{}", case.name));
        init(&d, "d", "di");
        let file = write(
            &dir.path().join(format!("exporter-{}.bundle", case.name)),
            &craft(&bytes, &tampered[1..6], None),
        );
        let r = import(&d, &file);
        let rep = r.expect(9).clone();
        assert!(r.stderr.contains("1 event(s) refused"), "{}", r.desc);
        assert_eq!(rep["status"], "complete", "{}: {rep}", case.name);
        assert_eq!(refusals(&rep), refused, "{}", case.name);
        assert_eq!(rep["refused_total"], 1);
        assert_eq!(sorted_lines(&log(&d)), expected_log, "{}", case.name);
        verify_ok(&d);
    }

    // A bad event in the middle of a feed: the events after it wait for it.
    let mut tampered = ls.clone();
    tampered[1] = flip_hex_field(&ls[1], "sig");
    let c = dir.path().join("middle");
    init(&c, "c", "cy");
    let file = write(
        &dir.path().join("middle.bundle"),
        &craft(&bytes, &tampered[1..6], None),
    );
    let rep = import(&c, &file).expect(9).clone();
    assert_eq!(refusals(&rep)[0].0, 2, "{rep}");
    assert_eq!(rep["parked"].as_u64(), Some(first_len as u64 - 1), "{rep}");
    assert_eq!(rep["pending"].as_u64(), Some(first_len as u64 - 1), "{rep}");
    assert_eq!(rep["new"].as_u64(), Some(5 - first_len as u64), "{rep}");
    assert_eq!(log_of(&c, &first_author), "");
    verify_ok(&c);
    assert_eq!(pending_rows(&c), first_len as u64 - 1);
    // The genuine bundle fills the gap (it carries the waiting events again, so they arrive
    // as new events and the parked copies are dropped).
    let rep = import(&c, &good).expect(0).clone();
    assert_eq!(rep["new"].as_u64(), Some(first_len as u64), "{rep}");
    assert_eq!(
        rep["duplicate"].as_u64(),
        Some(5 - first_len as u64),
        "{rep}"
    );
    assert_eq!(rep["pending"], 0, "{rep}");
    assert_eq!(pending_rows(&c), 0);
    assert_eq!(sorted_lines(&log(&c)), sorted_lines(&a_log));
    assert_eq!(log_of(&c, &first_author), log_of(&a, &first_author));
    verify_ok(&c);
}

#[test]
fn malformed_and_hostile_event_lines_are_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let ana = author_key(&a);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);
    let (e1, e2) = (ls[1].clone(), ls[2].clone());
    let small_order = "01".to_string() + &"00".repeat(31);

    let bad: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "deep nesting",
            "[".repeat(100_000).into_bytes(),
            vec!["invalid JSON"],
        ),
        (
            "duplicate key",
            replace_once(&e1, b"{", b"{\"seq\":1,"),
            vec!["duplicate key \"seq\""],
        ),
        (
            "non-UTF-8",
            replace_once(&e1, b"a post 1", b"a p\xffst 1"),
            vec!["invalid JSON"],
        ),
        (
            "beyond 2^53",
            replace_once(
                &e1,
                b"\"payload\":{",
                b"\"payload\":{\"n\":9007199254740993,",
            ),
            vec!["2^53"],
        ),
        (
            // A forged event for the identity point (order 1): its signature (R = B, S = 1)
            // satisfies the cofactorless equation for any message; only the key check stops it.
            "small-order author",
            small_order_event(),
            vec!["`author`", "small-order"],
        ),
        (
            // Someone else's event with the author swapped: caught by the header hash first.
            "swapped author",
            replace_once(&e1, ana.as_bytes(), small_order.as_bytes()),
            vec!["`hash`"],
        ),
        ("not an object", b"[1,2]".to_vec(), vec!["object"]),
        ("blank", Vec::new(), vec!["invalid JSON"]),
        (
            "unknown field",
            replace_once(&e1, b"{", b"{\"zzz\":1,"),
            vec!["unknown field"],
        ),
        (
            "garbage",
            noise(300, 3).into_iter().filter(|b| *b != b'\n').collect(),
            vec![],
        ),
    ];
    // Each bad line right after the manifest, then the two genuine events.
    let mut event_lines: Vec<Vec<u8>> = bad.iter().map(|(_, l, _)| l.clone()).collect();
    event_lines.push(e1.clone());
    event_lines.push(e2.clone());
    let file = write(
        &dir.path().join("hostile.bundle"),
        &craft(&bytes, &event_lines, None),
    );

    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let r = import(&c, &file);
    let rep = r.expect(9).clone();
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["new"], 2, "{rep}");
    assert_eq!(
        rep["refused_total"].as_u64(),
        Some(bad.len() as u64),
        "{rep}"
    );
    let refused = refusals(&rep);
    for (i, (name, _, needles)) in bad.iter().enumerate() {
        let line = i as u64 + 2;
        let reason = &refused
            .iter()
            .find(|(l, _)| *l == line)
            .unwrap_or_else(|| panic!("{name} (line {line}) not refused: {rep}"))
            .1;
        for n in needles {
            assert!(
                reason.contains(n),
                "{name}: reason {reason:?} should mention {n:?}"
            );
        }
    }
    assert_eq!(log_of(&c, &ana), log(&a));
    assert_eq!(text_lines(&log(&c)).len(), 2);
    verify_ok(&c);
    ok(rz(&c).args(["views", "check"]));

    // inspect counts them as malformed event lines and finds the trailer valid.
    let ins = json_of(&ok(bin().args(["bundle", "inspect", "--json"]).arg(&file)));
    assert_eq!(ins["status"], "complete", "{ins}");
    assert_eq!(ins["event_lines"].as_u64(), Some(bad.len() as u64 + 2));
    // (inspect does not verify: the two lines that are well-formed events are not malformed.)
    assert_eq!(
        ins["malformed_lines"].as_u64(),
        Some(bad.len() as u64 - 2),
        "{ins}"
    );
}

/// Peak resident set (VmHWM, kB) of a running process, if the platform tells.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn a_100_mb_line_is_skipped_in_bounded_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let ana = author_key(&a);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let ls = lines(&std::fs::read(&good).unwrap());

    // The genuine manifest, a 100 MB line, the genuine events, no trailer.
    let file = dir.path().join("huge.bundle");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        w.write_all(&ls[0]).unwrap();
        w.write_all(b"\n").unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"\n").unwrap();
        w.write_all(&join(&ls[1..3])).unwrap();
        w.flush().unwrap();
    }

    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let out_path = dir.path().join("out.json");
    let err_path = dir.path().join("err.txt");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rhizome"))
        .env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("--home")
        .arg(&c)
        .args(["import", "--json"])
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        if let Some(p) = peak_rss_kb(child.id()) {
            peak = peak.max(p);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(7), "{stdout}\n{stderr}");
    let rep = json_of(&stdout);
    assert_eq!(rep["status"], "truncated", "{rep}");
    assert_eq!(rep["new"], 2, "{rep}");
    let refused = refusals(&rep);
    assert_eq!(refused.len(), 1, "{rep}");
    assert_eq!(refused[0].0, 2);
    assert!(refused[0].1.contains("longer than"), "{rep}");
    assert!(refused[0].1.contains(&(100u64 << 20).to_string()), "{rep}");
    assert_eq!(log_of(&c, &ana), log(&a));
    verify_ok(&c);
    eprintln!("peak RSS importing a 100 MB line: {peak} kB");
    assert!(peak < 200 * 1024, "import used {peak} kB of memory");
}

#[test]
fn an_over_long_line_counts_as_an_event_line_for_the_trailer() {
    // An exporter counts every event line in its trailer; a line over the reader's limit is
    // one of them, refused like any other bad line (exit 9), not a broken trailer (exit 7).
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let ana = author_key(&a);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);
    let long = vec![b'a'; (16 << 20) + 1];
    let file = write(
        &dir.path().join("long.bundle"),
        &craft(&bytes, &[ls[1].clone(), long, ls[2].clone()], None),
    );

    // inspect counts it as a (malformed) event line and the trailer as valid.
    let ins = json_of(&ok(bin().args(["bundle", "inspect", "--json"]).arg(&file)));
    assert_eq!(ins["status"], "complete", "{ins}");
    assert_eq!(ins["event_lines"], 3);
    assert_eq!(ins["malformed_lines"], 1);

    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let r = import(&c, &file);
    // Whatever the exit code, the valid events are kept and the line is refused.
    assert_eq!(r.report["new"], 2, "{}", r.desc);
    assert_eq!(refusals(&r.report).len(), 1, "{}", r.desc);
    assert_eq!(log_of(&c, &ana), log(&a));
    let rep = r.expect(9);
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["events_read"], 3, "{rep}");
}

#[test]
fn an_event_beyond_the_store_seq_limit_is_refused_alone() {
    // A valid, signed event whose seq (2^32) the SQLite store cannot hold must be refused as
    // one line; the rest of the bundle is still stored.
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let ana = author_key(&a);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);

    let mallory = SecretKey::from_seed(&[0x66; 32]);
    let far = sign(
        &mallory,
        Seq::new(1 << 32).unwrap(),
        Some(Hash::from_bytes([7; 32])),
        EventType::new("POST").unwrap(),
        Timestamp::new(1_700_000_000_000).unwrap(),
        Payload::new(json!({"text": "far away"})).unwrap(),
    )
    .unwrap();
    let file = write(
        &dir.path().join("far.bundle"),
        &craft(&bytes, &[far.to_line(), ls[1].clone(), ls[2].clone()], None),
    );
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let r = import(&c, &file);
    let rep = r.expect(9).clone();
    assert_eq!(rep["new"], 2, "{rep}");
    let refused = refusals(&rep);
    assert_eq!(refused.len(), 1, "{rep}");
    assert_eq!(refused[0].0, 2);
    assert!(refused[0].1.contains("seq"), "{rep}");
    // PROTOCOL 2.4: refused as that line, with its own code; nothing of it kept.
    assert_eq!(rep["refused"][0]["code"], "seq_beyond_store_limit", "{rep}");
    assert_eq!(rep["refused"][0]["field"], "seq", "{rep}");
    assert_eq!(rep["parked"], 0, "{rep}");
    assert_eq!(pending_rows(&c), 0);
    assert_eq!(log_of(&c, &ana), log(&a));
    verify_ok(&c);
}

#[test]
fn a_reordered_bundle_keeps_every_event_in_chain_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 4);
    let ana = author_key(&a);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let mut ls = lines(&std::fs::read(&good).unwrap());
    ls.swap(2, 3); // seq 3 now comes before seq 2
    let file = write(&dir.path().join("swapped.bundle"), &join(&ls));

    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let r = import(&c, &file);
    let rep = r.expect(7).clone();
    assert_eq!(rep["status"], "trailer_invalid", "{rep}");
    assert!(
        rep["detail"]
            .as_str()
            .unwrap()
            .contains("do not hash to its sha256"),
        "{rep}"
    );
    assert_eq!(rep["events_read"], 4);
    assert_eq!(rep["refused_total"], 0);
    // seq 3 waited for seq 2 and joined within the same import.
    assert_eq!(
        rep["new"].as_u64().unwrap() + rep["promoted"].as_u64().unwrap(),
        4,
        "{rep}"
    );
    assert!(rep["promoted"].as_u64().unwrap() >= 1, "{rep}");
    assert_eq!(rep["parked"], rep["promoted"], "{rep}");
    assert_eq!(rep["pending"], 0, "{rep}");
    assert_eq!(pending_rows(&c), 0);
    assert_eq!(log_of(&c, &ana), log(&a));
    verify_ok(&c);
    ok(rz(&c).args(["views", "check"]));
}

#[test]
fn a_line_spliced_from_another_bundle_is_judged_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let b = home_with_posts(dir.path(), "b", "bo", 2);
    let (ana, bo) = (author_key(&a), author_key(&b));
    let (x, y) = (dir.path().join("x.bundle"), dir.path().join("y.bundle"));
    export_all(&a, &x);
    export_all(&b, &y);
    let xl = lines(&std::fs::read(&x).unwrap());
    let mut yl = lines(&std::fs::read(&y).unwrap());
    // A's first event goes into B's bundle, A's second one too but before it (it waits for
    // its predecessor and joins in the same import).
    yl.insert(2, xl[2].clone());
    yl.insert(3, xl[1].clone());
    let spliced = write(&dir.path().join("spliced.bundle"), &join(&yl));

    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let r = import(&c, &spliced);
    let rep = r.expect(7).clone();
    assert_eq!(rep["status"], "trailer_invalid", "{rep}");
    assert_eq!(rep["events_read"], 4);
    assert_eq!(rep["refused_total"], 0);
    assert_eq!(rep["feeds_touched"], 2);
    assert_eq!(log_of(&c, &ana), log(&a));
    assert_eq!(log_of(&c, &bo), log(&b));
    verify_ok(&c);

    // Alone (without its predecessor), A's second event is held back, not stored.
    let mut yl = lines(&std::fs::read(&y).unwrap());
    yl.insert(1, xl[2].clone());
    let spliced2 = write(&dir.path().join("spliced2.bundle"), &join(&yl));
    let d = dir.path().join("d");
    init(&d, "d", "di");
    let rep = import(&d, &spliced2).expect(7).clone();
    assert_eq!(rep["parked"], 1, "{rep}");
    assert_eq!(rep["pending"], 1, "{rep}");
    assert_eq!(rep["new"], 2, "{rep}");
    assert_eq!(log_of(&d, &ana), "");
    assert_eq!(log_of(&d, &bo), log(&b));
    verify_ok(&d);
}

#[test]
fn bundle_inspect_tells_complete_truncated_and_forged_apart() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);
    let before = log(&a);

    let r = inspect(&good);
    assert_eq!(r.code, 0, "{}", r.desc);
    let ins = json_of(&r.stdout);
    assert_eq!(ins["status"], "complete");
    assert_eq!(ins["event_lines"], 2);
    assert_eq!(ins["malformed_lines"], 0);
    assert_eq!(ins["manifest_error"], Value::Null);
    assert_eq!(
        ins["manifest"]["exporter"]["instance_id"],
        instance_id(&a).as_str()
    );
    assert_eq!(ins["bytes"].as_u64(), Some(bytes.len() as u64));
    let human = ok(bin().args(["bundle", "inspect"]).arg(&good));
    assert!(human.contains("complete"), "{human}");

    let truncated = write(&dir.path().join("t.bundle"), &bytes[..bytes.len() - 50]);
    let r = inspect(&truncated);
    assert_eq!(r.code, 7, "{}", r.desc);
    assert_eq!(json_of(&r.stdout)["status"], "truncated");
    assert!(r.stderr.contains("no valid trailer"), "{}", r.desc);

    let mut forged = ls.clone();
    forged[0] = replace_once(&ls[0], b"\"name\":\"a\"", b"\"name\":\"z\"");
    let forged = write(&dir.path().join("f.bundle"), &join(&forged));
    let r = inspect(&forged);
    assert_eq!(r.code, 8, "{}", r.desc);
    let ins = json_of(&r.stdout);
    assert_eq!(ins["manifest"], Value::Null);
    assert!(
        ins["manifest_error"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{ins}"
    );

    let mut bad_trailer = ls.clone();
    bad_trailer[3] = flip_hex_field(&ls[3], "sha256");
    let bad_trailer = write(&dir.path().join("bt.bundle"), &join(&bad_trailer));
    let r = inspect(&bad_trailer);
    assert_eq!(r.code, 7, "{}", r.desc);
    assert_eq!(json_of(&r.stdout)["status"], "trailer_invalid");

    fails(
        bin()
            .args(["bundle", "inspect"])
            .arg(dir.path().join("nope")),
        3,
        &["nope"],
    );
    // inspecting touches no home.
    assert_eq!(log(&a), before);
}

// ---------------------------------------------------------------------------------------------
// 8. Export atomicity
// ---------------------------------------------------------------------------------------------

/// Every file under `dir` whose name looks like an export's temporary file.
fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .contains(".partial")
            {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn exports_are_atomic_and_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();

    // Into a directory that does not exist: a clean failure.
    let missing = out.join("no/such/dir/x.bundle");
    let r = run(rz(&a).args(["export", "--all", "--to"]).arg(&missing));
    assert_ne!(r.code, 0, "{}", r.desc);
    assert!(r.stderr.contains("error: "), "{}", r.desc);
    assert!(r.stderr.contains("x.bundle"), "{}", r.desc);
    assert!(!missing.exists());
    assert_eq!(partials(dir.path()), Vec::<PathBuf>::new());

    // Onto a path that is a directory: the rename fails, the temporary file is removed.
    let taken = out.join("taken");
    std::fs::create_dir(&taken).unwrap();
    let r = run(rz(&a).args(["export", "--all", "--to"]).arg(&taken));
    assert_ne!(r.code, 0, "{}", r.desc);
    assert!(r.stderr.contains("error: "), "{}", r.desc);
    assert!(taken.is_dir());
    assert_eq!(partials(dir.path()), Vec::<PathBuf>::new());
    // A failed export for a peer records nothing as sent.
    assert_eq!(peers(&a), Vec::<Value>::new());

    // A successful export: the file and nothing else.
    let file = out.join("a.bundle");
    export_all(&a, &file);
    assert_eq!(partials(dir.path()), Vec::<PathBuf>::new());
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.bundle", "taken"]);
    assert_eq!(inspect(&file).code, 0);

    // Overwriting an existing bundle replaces it whole.
    post(&a, "third");
    export_all(&a, &file);
    let ins = json_of(&inspect(&file).stdout);
    assert_eq!(ins["event_lines"], 3);
    assert_eq!(partials(dir.path()), Vec::<PathBuf>::new());

    // A relative path (no directory part) works too.
    let r = run(rz(&a)
        .current_dir(&out)
        .args(["export", "--all", "--to", "rel.bundle"]));
    assert_eq!(r.code, 0, "{}", r.desc);
    assert!(out.join("rel.bundle").is_file());
    assert_eq!(partials(dir.path()), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------------------------
// Issue 10: limits and memory bounds, refusal codes, rules an implementation could read two ways
// ---------------------------------------------------------------------------------------------

/// Runs `args` on the binary (environment as [`bin`]), sampling its peak RSS (VmHWM, kB).
/// Returns the run and the peak.
fn run_peak(args: &[std::ffi::OsString]) -> (Run, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("rhizome"));
    cmd.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let desc = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap();
    let mut peak = 0;
    let status = loop {
        if let Some(p) = peak_rss_kb(child.id()) {
            peak = peak.max(p);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert!(!stderr.contains("panicked"), "{desc}: {stderr}");
    let code = status.code().unwrap_or_else(|| panic!("killed: {desc}"));
    let desc =
        format!("{desc}\n  status {code}, peak {peak} kB\n  stdout: {stdout}\n  stderr: {stderr}");
    (
        Run {
            code,
            stdout,
            stderr,
            desc,
        },
        peak,
    )
}

/// `rhizome bench hostile --case CASE --bytes BYTES --dir DIR`: the path written.
fn hostile(case: &str, bytes: u64, dir: &Path) -> PathBuf {
    let out = ok(bin()
        .args([
            "bench",
            "hostile",
            "--case",
            case,
            "--bytes",
            &bytes.to_string(),
            "--dir",
        ])
        .arg(dir));
    PathBuf::from(out.trim())
}

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(std::ffi::OsString::from).collect()
}

/// Ten valid event lines of 2 MB whose payloads are objects of tiny members (about 200,000
/// members each): a JSON tree of one takes about 50 MB. The import, `verify`, `views rebuild`
/// and `log` stay within bounds. Before: the import peaked at 236 MB and `verify` at 352 MB
/// (BENCHMARKS.md, "Issue 10: memory bounds").
#[test]
fn event_lines_of_tiny_members_are_handled_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = hostile("member-lines", 2_000_000, &dir.path().join("made"));
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let home = |rest: &[&str]| {
        let mut a = os(&["--home"]);
        a.push(c.clone().into_os_string());
        a.extend(os(rest));
        a
    };
    let mut args = home(&["import", "--json"]);
    args.push(file.into_os_string());
    let (r, peak) = run_peak(&args);
    assert_eq!(r.code, 0, "{}", r.desc);
    let rep = json_of(&r.stdout);
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["new"], 10, "{rep}");
    assert!(peak < 150 * 1024, "import: {}", r.desc);
    for (what, limit_mb) in [
        (&["verify"][..], 150),
        (&["views", "rebuild"][..], 150),
        (&["log"][..], 200),
    ] {
        let (r, peak) = run_peak(&home(what));
        assert_eq!(r.code, 0, "{}", r.desc);
        assert!(peak < limit_mb * 1024, "{what:?}: {}", r.desc);
    }
}

/// A rejected manifest line of 15 MB of tiny members is read without a tree. Before: 522 MB.
#[test]
fn a_manifest_of_tiny_members_is_rejected_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = hostile("manifest", 15_000_000, &dir.path().join("made"));
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let mut args = os(&["--home"]);
    args.push(c.clone().into_os_string());
    args.extend(os(&["import", "--json"]));
    args.push(file.clone().into_os_string());
    let (r, peak) = run_peak(&args);
    assert_eq!(r.code, 8, "{}", r.desc);
    assert!(r.stderr.contains("line 1 (manifest)"), "{}", r.desc);
    assert!(peak < 150 * 1024, "{}", r.desc);
    let mut args = os(&["bundle", "inspect"]);
    args.push(file.into_os_string());
    let (r, peak) = run_peak(&args);
    assert_eq!(r.code, 8, "{}", r.desc);
    assert!(peak < 150 * 1024, "{}", r.desc);
}

/// PROTOCOL 8.10: valid data may expand thousands of times. 24 events of 1 MiB of one letter,
/// compressed (about 4,500:1), import whole; then `export --compress` of them imports whole
/// too. Before: refused after 16 MiB ("expands more than 64 times its size", exit 7).
#[test]
fn export_compress_of_repetitive_events_imports_complete() {
    let dir = tempfile::tempdir().unwrap();
    let file = hostile("repetitive", 0, &dir.path().join("made"));
    let a = dir.path().join("a");
    init(&a, "a", "ann");
    let rep = import(&a, &file).expect(0).clone();
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["new"], 24, "{rep}");
    let again = dir.path().join("again.bundle");
    ok(rz(&a)
        .args(["export", "--all", "--compress", "--to"])
        .arg(&again));
    let (plain, packed) = (24 * (1u64 << 20), std::fs::metadata(&again).unwrap().len());
    assert!(packed * 1000 < plain, "{packed} bytes: not that repetitive");
    let b = dir.path().join("b");
    init(&b, "b", "bea");
    let rep = import(&b, &again).expect(0).clone();
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["new"], 24, "{rep}");
    let blob_author = log(&a)
        .lines()
        .map(json_of)
        .find(|e| e["type"] == "BLOB")
        .unwrap()["author"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(log_of(&b, &blob_author), log_of(&a, &blob_author));
}

/// An event line one byte over 2 MiB is refused alone (`line_too_long`), one at the limit is
/// read. Before: the limit was 16 MiB for every line.
#[test]
fn event_lines_are_limited_to_2_mib() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 1);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);
    // An unknown type whose line is exactly `len` bytes.
    let key = SecretKey::from_seed(&[0x51; 32]);
    let at = |seq: u64, prev: Option<Hash>, len: usize| {
        let make = |n: usize| {
            sign(
                &key,
                Seq::new(seq).unwrap(),
                prev,
                EventType::new("BLOB").unwrap(),
                Timestamp::new(1_764_000_000_000).unwrap(),
                Payload::new(json!({"data": "x".repeat(n)})).unwrap(),
            )
            .unwrap()
        };
        // The digits of `payload_size` grow with it: adjust until the length is exact.
        let mut n = len - make(0).to_line().len();
        let mut ev = make(n);
        while ev.to_line().len() != len {
            n = n + len - ev.to_line().len();
            ev = make(n);
        }
        ev
    };
    let max = 2 << 20;
    let fits = at(1, None, max);
    let over = at(2, Some(fits.hash), max + 1);
    let file = write(
        &dir.path().join("limit.bundle"),
        &craft(
            &bytes,
            &[ls[1].clone(), fits.to_line(), over.to_line()],
            None,
        ),
    );
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let rep = import(&c, &file).expect(9).clone();
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["new"], 2, "{rep}");
    assert_eq!(rep["refused"][0]["line"], 4, "{rep}");
    assert_eq!(rep["refused"][0]["code"], "line_too_long", "{rep}");
    assert_eq!(rep["refused_by_code"], json!({"line_too_long": 1}), "{rep}");
    let ins = json_of(&ok(bin().args(["bundle", "inspect", "--json"]).arg(&file)));
    assert_eq!(ins["refused_by_code"], json!({"line_too_long": 1}), "{ins}");
}

/// Every refused line carries a stable code (and the member it is about), and the report
/// counts refusals by code: reasons whose texts look alike ("field `prev`: ...") differ.
#[test]
fn refusals_carry_codes_and_are_counted_by_code() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 3);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);
    let e2 = &ls[2];
    let bad = vec![
        flip_hex_field(e2, "sig"),
        flip_hex_field(e2, "hash"),
        replace_once(e2, b"\"prev\":\"", b"\"prev\":null,\"x\":\""),
        replace_once(e2, b"\"seq\":2", b"\"seq\":2.0"),
        replace_once(&ls[1], b"\"prev\":null", b"\"prev\":\"00\""),
        b"{\"author\":".to_vec(),
        b"[]".to_vec(),
    ];
    let file = write(&dir.path().join("bad.bundle"), &craft(&bytes, &bad, None));
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let rep = import(&c, &file).expect(9).clone();
    let got: Vec<(u64, String, Value)> = rep["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["code"].as_str().unwrap().to_owned(),
                r.get("field").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    let want = [
        (2, "bad_signature", json!("sig")),
        (3, "hash_mismatch", json!("hash")),
        (4, "prev_shape", json!("prev")),
        (5, "invalid_field", json!("seq")),
        (6, "invalid_field", json!("prev")),
        (7, "invalid_json", Value::Null),
        (8, "not_an_object", Value::Null),
    ];
    let want: Vec<(u64, String, Value)> = want
        .iter()
        .map(|(l, c, f)| (*l, c.to_string(), f.clone()))
        .collect();
    assert_eq!(got, want, "{rep}");
    assert_eq!(
        rep["refused_by_code"],
        json!({"bad_signature": 1, "hash_mismatch": 1, "invalid_field": 2, "invalid_json": 1,
               "not_an_object": 1, "prev_shape": 1}),
        "{rep}"
    );
}

/// PROTOCOL 8.8 rule 3: a line whose `trailer` member name is escaped is an event line (and
/// refused), even when the 9 bytes `"trailer"` appear elsewhere in it; the real trailer after
/// it ends the bundle. Before: it was taken as the trailer, and the bundle as spliced.
#[test]
fn an_escaped_trailer_name_is_an_event_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let ana = author_key(&a);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);
    let fake = br#"{"\u0074railer":"rhizome-bundle/1","note":"trailer"}"#.to_vec();
    let file = write(
        &dir.path().join("escaped.bundle"),
        &craft(&bytes, &[ls[1].clone(), fake, ls[2].clone()], None),
    );
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let rep = import(&c, &file).expect(9).clone();
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["new"], 2, "{rep}");
    assert_eq!(rep["events_read"], 3, "{rep}");
    assert_eq!(rep["refused"][0]["line"], 3, "{rep}");
    assert_eq!(rep["refused"][0]["code"], "missing_field", "{rep}");
    assert_eq!(log_of(&c, &ana), log(&a));
    let ins = json_of(&ok(bin().args(["bundle", "inspect", "--json"]).arg(&file)));
    assert_eq!(ins["status"], "complete", "{ins}");
    assert_eq!(ins["event_lines"], 3, "{ins}");
}

/// PROTOCOL 8.8 rule 9 (a): after the trailer, only JSON whitespace (space, tab, carriage
/// return, empty lines). A form feed, which Rust's `is_ascii_whitespace` counts and JSON does
/// not, makes the trailer invalid, like a vertical tab. Before: a form feed was accepted.
#[test]
fn only_json_whitespace_may_follow_the_trailer() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 1);
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    for (name, tail, status) in [
        ("blank", &b" \t\r\n\n \n"[..], "complete"),
        ("form-feed", b"\x0c\n", "trailer_invalid"),
        ("vertical-tab", b"\x0b\n", "trailer_invalid"),
        ("nbsp", b"\xc2\xa0\n", "trailer_invalid"),
    ] {
        let mut b = bytes.clone();
        b.extend_from_slice(tail);
        let file = write(&dir.path().join(name), &b);
        let c = dir.path().join(format!("home-{name}"));
        init(&c, "c", "cy");
        let r = import(&c, &file);
        let rep = r.expect(if status == "complete" { 0 } else { 7 }).clone();
        assert_eq!(rep["status"], status, "{name}: {rep}");
        assert_eq!(rep["new"], 1, "{name}: {rep}");
        let ins = json_of(&run(bin().args(["bundle", "inspect", "--json"]).arg(&file)).stdout);
        assert_eq!(ins["status"], status, "{name}: {ins}");
    }
}

/// PROTOCOL 8.2 and 8.4: a writer writes feed by feed, in the order of `feeds`; a reader
/// accepts feeds interleaved all the same (and does not check the order).
#[test]
fn writers_group_feeds_and_readers_accept_them_interleaved() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    init(&a, "a", "ana");
    ok(rz(&a).args(["author", "add", "bo"]));
    for i in 1..=3 {
        post(&a, &format!("ana {i}"));
        ok(rz(&a).args(["--as", "bo", "post", &format!("bo {i}")]));
    }
    let good = dir.path().join("good.bundle");
    export_all(&a, &good);
    let bytes = std::fs::read(&good).unwrap();
    let ls = lines(&bytes);
    let manifest = json_of(std::str::from_utf8(&ls[0]).unwrap());
    let order: Vec<String> = manifest["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["author"].as_str().unwrap().to_owned())
        .collect();
    let authors: Vec<String> = ls[1..ls.len() - 1]
        .iter()
        .map(|l| {
            json_of(std::str::from_utf8(l).unwrap())["author"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut grouped = authors.clone();
    grouped.dedup();
    assert_eq!(
        grouped, order,
        "lines feed by feed, in the order of `feeds`"
    );
    assert!(order.len() >= 2, "{manifest}");

    // The same events, the feeds interleaved line by line.
    let events = &ls[1..ls.len() - 1];
    let (first, second): (Vec<_>, Vec<_>) = events
        .iter()
        .partition(|l| json_of(std::str::from_utf8(l).unwrap())["author"] == order[0].as_str());
    let mut mixed = Vec::new();
    for i in 0..first.len().max(second.len()) {
        mixed.extend(second.get(i).map(|l| (*l).clone()));
        mixed.extend(first.get(i).map(|l| (*l).clone()));
    }
    let file = write(
        &dir.path().join("mixed.bundle"),
        &craft(&bytes, &mixed, None),
    );
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    let rep = import(&c, &file).expect(0).clone();
    assert_eq!(rep["status"], "complete", "{rep}");
    assert_eq!(rep["new"].as_u64().unwrap() as usize, events.len(), "{rep}");
    assert_eq!(rep["missing"], json!([]), "{rep}");
    assert_eq!(rep["pending"], 0, "{rep}");
    for author in &order {
        assert_eq!(log_of(&c, author), log_of(&a, author));
    }
}

/// PROTOCOL 8.2/8.8: an `evidence` entry whose line is not in the bundle is reported, and does
/// not make its feed's range look short. Before: the entry was subtracted from the feed's
/// lines whether its line came or not, so the complete range was reported missing.
#[test]
fn an_evidence_entry_without_its_line_is_reported_alone() {
    let dir = tempfile::tempdir().unwrap();
    let a = home_with_posts(dir.path(), "a", "ana", 2);
    let ana = author_key(&a);
    let a2 = dir.path().join("a2");
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(&a)
        .arg(&a2)
        .status()
        .unwrap();
    assert!(st.success());
    post(&a, "what A says third");
    post(&a2, "what A2 says third");
    let (fa, fa2) = (dir.path().join("fa.bundle"), dir.path().join("fa2.bundle"));
    export_all(&a, &fa);
    export_all(&a2, &fa2);
    let c = dir.path().join("c");
    init(&c, "c", "cy");
    import(&c, &fa).expect(0);
    assert_eq!(import(&c, &fa2).expect(0)["forks"], 1);
    // C's export carries the evidence line after the feed's lines, and lists it.
    let fc = dir.path().join("fc.bundle");
    export_all(&c, &fc);
    let bytes = std::fs::read(&fc).unwrap();
    let ls = lines(&bytes);
    let manifest = json_of(std::str::from_utf8(&ls[0]).unwrap());
    assert_eq!(
        manifest["evidence"].as_array().unwrap().len(),
        1,
        "{manifest}"
    );
    let ana_lines: Vec<Vec<u8>> = ls[1..ls.len() - 1]
        .iter()
        .filter(|l| json_of(std::str::from_utf8(l).unwrap())["author"] == ana.as_str())
        .cloned()
        .collect();
    assert_eq!(ana_lines.len(), 4, "three events and the evidence");

    // Whole, then without the evidence line.
    for (name, events, missing) in [
        ("whole", ana_lines.clone(), 0),
        ("no-evidence", ana_lines[..3].to_vec(), 1),
    ] {
        let file = write(&dir.path().join(name), &craft(&bytes, &events, None));
        let d = dir.path().join(format!("d-{name}"));
        init(&d, "d", "di");
        let rep = import(&d, &file).expect(0).clone();
        assert_eq!(rep["status"], "complete", "{name}: {rep}");
        let listed = rep["missing"].as_array().unwrap();
        let about_ana: Vec<&Value> = listed
            .iter()
            .filter(|m| m.as_str().unwrap().contains(ana.as_str()))
            .collect();
        assert_eq!(about_ana.len(), missing, "{name}: {rep}");
        if missing == 1 {
            assert!(
                about_ana[0]
                    .as_str()
                    .unwrap()
                    .starts_with("evidence of feed"),
                "{name}: {rep}"
            );
        }
        assert_eq!(log_of(&d, &ana), log_of(&c, &ana), "{name}");
    }
}
