#![allow(clippy::unwrap_used)]
//! End-to-end tests of the `rhizome` binary: every test runs the real program against its own
//! temporary home and checks exit codes, messages, and that failed commands leave the stored
//! data exactly as it was.

use assert_cmd::Command;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The binary, with no passphrase or home leaking in from the environment.
fn bin() -> Command {
    let mut c = Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME");
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

/// Runs `cmd`, asserts exit 0 and no panic, returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let d = describe(cmd, &out);
    assert_eq!(out.status.code(), Some(0), "expected success: {d}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "panic: {d}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd`, asserts exit `code`, that stderr names the problem (every needle), that it
/// starts with `error:`, and that nothing panicked. Returns stderr.
fn fails(cmd: &mut Command, code: i32, needles: &[&str]) -> String {
    let out = cmd.output().unwrap();
    let d = describe(cmd, &out);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "wrong exit code: {d}");
    assert!(!stderr.contains("panicked"), "panic: {d}");
    for n in needles {
        assert!(stderr.contains(n), "stderr should mention {n:?}: {d}");
    }
    if code != 2 {
        assert!(
            stderr.contains("error: "),
            "stderr should carry an error line: {d}"
        );
    }
    stderr
}

fn init_plain(home: &Path) {
    ok(rz(home).args([
        "init",
        "--name",
        "Village school",
        "--author",
        "ana",
        "--no-passphrase",
        // These tests count events and seqs; PROFILE events are tested in tests/profiles.rs.
        "--no-profile",
    ]));
}

fn db_path(home: &Path) -> PathBuf {
    home.join("rhizome.db")
}

/// The database and its side files, raw (absent files as `None`).
fn db_raw(home: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    ["rhizome.db", "rhizome.db-wal", "rhizome.db-shm"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(home.join(f)).ok()))
        .collect()
}

/// A digest of `bytes` that prints readably when an assertion fails.
fn fingerprint(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("{} bytes, sha256 {hex}", bytes.len())
}

/// The database and its side files, byte for byte (as size + SHA-256; absent as `None`).
fn db_files(home: &Path) -> Vec<(String, Option<String>)> {
    db_raw(home)
        .into_iter()
        .map(|(f, b)| (f, b.as_deref().map(fingerprint)))
        .collect()
}

fn log_json(home: &Path) -> String {
    ok(rz(home).args(["log", "--json"]))
}

fn log_events(home: &Path) -> Vec<Value> {
    parse_lines(&log_json(home))
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Posts `text` as the default author and returns the new event's hash.
fn post(home: &Path, text: &str) -> String {
    let v = json_of(&ok(rz(home).args(["--json", "post", text])));
    v["hash"].as_str().unwrap().to_string()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks the shape of every log line and that each feed runs 1..n with prev links.
fn check_chains(events: &[Value]) -> HashMap<String, Vec<Value>> {
    let mut feeds: HashMap<String, Vec<Value>> = HashMap::new();
    for ev in events {
        let obj = ev.as_object().unwrap();
        for k in [
            "author",
            "seq",
            "hash",
            "sig",
            "type",
            "prev",
            "timestamp",
            "payload_hash",
        ] {
            assert!(obj.contains_key(k), "event lacks {k}: {ev}");
        }
        assert!(is_hex(ev["author"].as_str().unwrap(), 64), "{ev}");
        assert!(is_hex(ev["hash"].as_str().unwrap(), 64), "{ev}");
        assert!(is_hex(ev["sig"].as_str().unwrap(), 128), "{ev}");
        feeds
            .entry(ev["author"].as_str().unwrap().to_string())
            .or_default()
            .push(ev.clone());
    }
    for (author, evs) in &feeds {
        let mut prev = Value::Null;
        for (i, ev) in evs.iter().enumerate() {
            assert_eq!(
                ev["seq"].as_u64(),
                Some(i as u64 + 1),
                "feed {author}: {ev}"
            );
            assert_eq!(ev["prev"], prev, "feed {author} seq {}: bad prev", i + 1);
            prev = ev["hash"].clone();
        }
    }
    feeds
}

// ---------------------------------------------------------------------------------------------
// 1. Happy path
// ---------------------------------------------------------------------------------------------

#[test]
fn happy_path_tour() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");

    // init creates the home directory and says where the keys are.
    let created = json_of(&ok(rz(&home).args([
        "--json",
        "init",
        "--name",
        "Village school",
        "--author",
        "ana",
        "--no-passphrase",
        // The tour counts seqs; PROFILE events are tested in tests/profiles.rs.
        "--no-profile",
    ])));
    assert!(db_path(&home).is_file());
    assert_eq!(created["keys_encrypted"], false);
    assert_eq!(created["author"]["name"], "ana");

    // whoami
    let who = json_of(&ok(rz(&home).args(["whoami", "--json"])));
    let instance_key = who["public_key"].as_str().unwrap().to_string();
    assert!(is_hex(&instance_key, 64), "{who}");
    let digest = Sha256::digest(unhex(&instance_key));
    let expected_id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(who["instance_id"].as_str().unwrap(), expected_id);
    assert_eq!(created["instance_id"], who["instance_id"]);
    assert_eq!(who["name"], "Village school");
    assert_eq!(who["keys_encrypted"], false);
    let authors = who["authors"].as_array().unwrap();
    assert_eq!(authors.len(), 1);
    assert_eq!(authors[0]["name"], "ana");
    assert_eq!(authors[0]["default"], true);
    let ana = authors[0]["public_key"].as_str().unwrap().to_string();
    assert!(is_hex(&ana, 64));
    assert_ne!(
        ana, instance_key,
        "author key must differ from the instance key"
    );
    assert_eq!(created["author"]["public_key"], ana.as_str());

    // Human-readable whoami says the keys are not encrypted.
    let human = ok(rz(&home).arg("whoami"));
    assert!(human.contains("NOT encrypted"), "{human}");
    assert!(human.contains(&expected_id), "{human}");

    // author add / list
    let added = json_of(&ok(rz(&home).args([
        "--json",
        "author",
        "add",
        "bo",
        "--no-profile",
    ])));
    assert_eq!(added["name"], "bo");
    let bo = added["public_key"].as_str().unwrap().to_string();
    assert!(is_hex(&bo, 64));
    let list = json_of(&ok(rz(&home).args(["author", "list", "--json"])));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["name"], "ana");
    assert_eq!(list[0]["default"], true);
    assert_eq!(list[1]["name"], "bo");
    assert_eq!(list[1]["default"], false);
    assert_eq!(list[1]["public_key"], bo.as_str());
    // A duplicate name is refused.
    fails(
        rz(&home).args(["author", "add", "bo"]),
        3,
        &["bo", "already exists"],
    );

    // Writing commands.
    let p1 = json_of(&ok(rz(&home).args(["--json", "post", "The well is fixed"])));
    assert_eq!(p1["seq"], 1);
    assert_eq!(p1["type"], "POST");
    assert_eq!(p1["author"], ana.as_str());
    let h1 = p1["hash"].as_str().unwrap().to_string();
    let prefix = &h1[..10];

    let human_post = ok(rz(&home).args(["comment", prefix, "Great news"]));
    assert!(human_post.contains("COMMENT"), "{human_post}");
    ok(rz(&home).args(["like", prefix]));
    ok(rz(&home).args(["reshare", prefix]));
    ok(rz(&home).args(["reshare", &h1, "Everyone should read this"]));
    ok(rz(&home).args(["star", prefix]));
    ok(rz(&home).args(["unstar", &h1.to_uppercase()[..12]]));
    ok(rz(&home).args(["tag", prefix, "water"]));
    ok(rz(&home).args(["circle", "create", "fam", "bo"]));
    ok(rz(&home).args(["circle", "add", "fam", &ana]));
    ok(rz(&home).args(["circle", "remove", "fam", "bo"]));
    ok(rz(&home).args(["circle", "rename", "fam", "kin"]));
    ok(rz(&home).args([
        "append",
        "--type",
        "RECIPE",
        "--payload",
        r#"{"name":"bread","minutes":90}"#,
    ]));
    ok(rz(&home).args(["post", "--lang", "en", "--reply-to", prefix, "Thanks!"]));
    let bo_post = json_of(&ok(rz(&home).args([
        "--as",
        "bo",
        "--json",
        "post",
        "Written by Bo",
    ])));
    assert_eq!(bo_post["author"], bo.as_str());
    assert_eq!(bo_post["seq"], 1);
    ok(rz(&home).args(["--as", "bo", "like", prefix]));

    // The log: JSON Lines, chained per author.
    let text = log_json(&home);
    assert!(text.ends_with('\n'));
    let events = parse_lines(&text);
    assert_eq!(events.len(), 16, "{text}");
    let feeds = check_chains(&events);
    assert_eq!(feeds.len(), 2);
    let a = &feeds[&ana];
    let b = &feeds[&bo];
    assert_eq!(a.len(), 14);
    assert_eq!(b.len(), 2);

    let types: Vec<&str> = a.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "POST",
            "COMMENT",
            "LIKE",
            "RESHARE",
            "RESHARE",
            "STAR",
            "STAR",
            "TAG_ADD",
            "CIRCLE_UPDATE",
            "CIRCLE_UPDATE",
            "CIRCLE_UPDATE",
            "CIRCLE_UPDATE",
            "RECIPE",
            "POST"
        ]
    );
    let payloads: Vec<&Value> = a.iter().map(|e| &e["payload"]).collect();
    assert_eq!(a[0]["hash"], h1.as_str());
    assert_eq!(
        *payloads[0],
        serde_json::json!({"text": "The well is fixed"})
    );
    assert_eq!(
        *payloads[1],
        serde_json::json!({"target": h1, "text": "Great news"})
    );
    assert_eq!(*payloads[2], serde_json::json!({"target": h1}));
    assert_eq!(*payloads[3], serde_json::json!({"target": h1}));
    assert_eq!(
        *payloads[4],
        serde_json::json!({"target": h1, "comment": "Everyone should read this"})
    );
    assert_eq!(
        *payloads[5],
        serde_json::json!({"target": h1, "starred": true})
    );
    assert_eq!(
        *payloads[6],
        serde_json::json!({"target": h1, "starred": false})
    );
    assert_eq!(
        *payloads[7],
        serde_json::json!({"target": h1, "tag": "water"})
    );
    assert_eq!(
        *payloads[8],
        serde_json::json!({"circle": "fam", "op": "create", "members": [bo]})
    );
    assert_eq!(
        *payloads[9],
        serde_json::json!({"circle": "fam", "op": "add", "members": [ana]})
    );
    assert_eq!(
        *payloads[10],
        serde_json::json!({"circle": "fam", "op": "remove", "members": [bo]})
    );
    assert_eq!(
        *payloads[11],
        serde_json::json!({"circle": "fam", "op": "rename", "new_name": "kin"})
    );
    assert_eq!(
        *payloads[12],
        serde_json::json!({"name": "bread", "minutes": 90})
    );
    assert_eq!(
        *payloads[13],
        serde_json::json!({"text": "Thanks!", "lang": "en", "reply_to": h1})
    );
    assert_eq!(
        b[0]["payload"],
        serde_json::json!({"text": "Written by Bo"})
    );
    assert_eq!(b[1]["payload"], serde_json::json!({"target": h1}));
    assert_eq!(b[0]["hash"], bo_post["hash"]);

    // Filtering by local name and by key.
    let only_bo = parse_lines(&ok(rz(&home).args(["log", "--json", "--author", "bo"])));
    assert_eq!(only_bo, *b);
    let only_ana = parse_lines(&ok(rz(&home).args(["log", "--json", "--author", &ana])));
    assert_eq!(only_ana, *a);
    // A valid key with no feed: empty, not an error.
    let nobody = ok(rz(&home).args(["log", "--json", "--author", &instance_key]));
    assert_eq!(nobody, "");
    fails(
        rz(&home).args(["log", "--author", "nobody"]),
        3,
        &["nobody"],
    );

    // Human log: one line per event, with author names.
    let human_log = ok(rz(&home).arg("log"));
    assert_eq!(human_log.lines().count(), 16, "{human_log}");
    assert!(human_log.contains("ana"));
    assert!(human_log.contains("bo"));
    assert!(human_log.contains("The well is fixed"));

    // verify
    let v = ok(rz(&home).arg("verify"));
    assert!(v.starts_with("ok: 16 events in 2 feeds"), "{v}");
    let v = json_of(&ok(rz(&home).args(["verify", "--json"])));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events_checked"], 16);
    assert_eq!(v["feeds"], 2);
    assert_eq!(v["failures"], serde_json::json!([]));
}

#[test]
fn home_from_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("envhome");
    let mut c = bin();
    c.env("RHIZOME_HOME", &home)
        .args(["init", "--name", "env", "--no-passphrase", "--no-profile"]);
    ok(&mut c);
    assert!(db_path(&home).is_file());
    let mut c = bin();
    c.env("RHIZOME_HOME", &home).args(["post", "via env"]);
    ok(&mut c);
    assert_eq!(log_events(&home).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 2. Second init
// ---------------------------------------------------------------------------------------------

#[test]
fn second_init_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    init_plain(home);
    post(home, "first");
    let before_files = db_files(home);
    let before_log = log_json(home);
    let before_who = ok(rz(home).args(["whoami", "--json"]));

    fails(
        rz(home).args(["init", "--name", "other", "--no-passphrase"]),
        5,
        &["already", "nothing was changed"],
    );
    // Without --no-passphrase and without any passphrase source: still refused as "already"
    // (exit 5), before asking for a passphrase (which would be exit 4).
    fails(rz(home).args(["init", "--name", "other"]), 5, &["already"]);

    assert_eq!(db_files(home), before_files, "init rewrote the database");
    assert_eq!(log_json(home), before_log);
    assert_eq!(ok(rz(home).args(["whoami", "--json"])), before_who);
}

#[test]
fn init_rejects_bad_names_without_creating_the_home() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    fails(
        rz(&home).args(["init", "--name", "", "--no-passphrase"]),
        3,
        &["instance name"],
    );
    fails(
        rz(&home).args([
            "init",
            "--name",
            "ok",
            "--author",
            " padded",
            "--no-passphrase",
        ]),
        3,
        &["author name"],
    );
    assert!(!home.exists(), "a refused init created {}", home.display());
}

// ---------------------------------------------------------------------------------------------
// 3. Passphrase
// ---------------------------------------------------------------------------------------------

/// Unusual enough that it cannot appear in the database by accident (the word "secret" is a
/// column name in the schema, so it would).
const PASSPHRASE: &str = "tumbleweed-Quokka-4127";

#[test]
fn passphrase_protects_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("sealed");

    // No passphrase source at all: refused before anything is created.
    fails(
        rz(&home).args(["init", "--name", "hub"]),
        4,
        &["RHIZOME_PASSPHRASE"],
    );
    let mut c = rz(&home);
    c.env("RHIZOME_PASSPHRASE", "")
        .args(["init", "--name", "hub"]);
    fails(&mut c, 4, &["RHIZOME_PASSPHRASE", "empty"]);
    assert!(!home.exists(), "a refused init created the home");

    let mut c = rz(&home);
    c.env("RHIZOME_PASSPHRASE", PASSPHRASE).args([
        "--json",
        "init",
        "--name",
        "hub",
        "--author",
        "ana",
        "--no-profile",
    ]);
    let created = json_of(&ok(&mut c));
    assert_eq!(created["keys_encrypted"], true);

    let who = json_of(&ok(rz(&home).args(["whoami", "--json"])));
    assert_eq!(who["keys_encrypted"], true);
    assert!(ok(rz(&home).arg("whoami")).contains("sealed with a passphrase"));

    // Cheap failures first (no key derivation): no passphrase, or an empty one.
    let before_files = db_files(&home);
    fails(
        rz(&home).args(["post", "x"]),
        4,
        &["RHIZOME_PASSPHRASE", "passphrase"],
    );
    let mut c = rz(&home);
    c.env("RHIZOME_PASSPHRASE", "").args(["post", "x"]);
    fails(&mut c, 4, &["RHIZOME_PASSPHRASE", "empty"]);
    assert_eq!(db_files(&home), before_files);
    assert_eq!(log_json(&home), "");

    // The key derivation is slow in debug builds: run the three unlocking commands in
    // parallel, each on its own copy of the instance.
    let copy = |name: &str| {
        let h = dir.path().join(name);
        std::fs::create_dir(&h).unwrap();
        for (f, bytes) in db_raw(&home) {
            if let Some(bytes) = bytes {
                std::fs::write(h.join(f), bytes).unwrap();
            }
        }
        h
    };
    let right = copy("right");
    let wrong = copy("wrong");
    let wrong_author = copy("wrong_author");
    let wrong_before = db_files(&wrong);
    let wrong_author_before = db_files(&wrong_author);
    let authors_before = ok(rz(&wrong_author).args(["author", "list", "--json"]));

    std::thread::scope(|s| {
        s.spawn(|| {
            let mut c = rz(&right);
            c.env("RHIZOME_PASSPHRASE", PASSPHRASE)
                .args(["--json", "post", "sealed hello"]);
            let p = json_of(&ok(&mut c));
            assert_eq!(p["seq"], 1);
        });
        s.spawn(|| {
            let mut c = rz(&wrong);
            c.env("RHIZOME_PASSPHRASE", "not-the-passphrase")
                .args(["post", "x"]);
            fails(&mut c, 4, &["wrong passphrase", "nothing was written"]);
        });
        s.spawn(|| {
            let mut c = rz(&wrong_author);
            c.env("RHIZOME_PASSPHRASE", "not-the-passphrase")
                .args(["author", "add", "bo"]);
            fails(&mut c, 4, &["wrong passphrase"]);
        });
    });

    let events = log_events(&right);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["payload"]["text"], "sealed hello");
    assert_eq!(ok(rz(&right).arg("verify")).lines().count(), 1);

    assert_eq!(
        db_files(&wrong),
        wrong_before,
        "wrong passphrase changed the db"
    );
    assert_eq!(log_json(&wrong), "");
    assert_eq!(db_files(&wrong_author), wrong_author_before);
    assert_eq!(
        ok(rz(&wrong_author).args(["author", "list", "--json"])),
        authors_before,
        "author add with a wrong passphrase added an author"
    );

    // Neither the passphrase nor a plain key record is stored.
    for h in [&home, &right, &wrong, &wrong_author] {
        for (f, bytes) in db_raw(h) {
            let Some(bytes) = bytes else { continue };
            assert!(
                !contains_bytes(&bytes, PASSPHRASE.as_bytes()),
                "passphrase stored in {}/{f}",
                h.display()
            );
            assert!(
                !contains_bytes(&bytes, br#""scheme":"plain""#),
                "unsealed key in {}/{f}",
                h.display()
            );
        }
        let db = std::fs::read(db_path(h)).unwrap();
        assert!(contains_bytes(&db, b"argon2id-xchacha20poly1305"));
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Bad input to writing commands
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    init_plain(home);
    let h = post(home, "target post");
    let unknown = "f".repeat(64);
    let before_files = db_files(home);
    let before_log = log_json(home);
    let before_authors = ok(rz(home).args(["author", "list", "--json"]));

    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["append", "--type", "POST", "--payload", "not json"],
            vec!["--payload", "not valid JSON"],
        ),
        (
            vec![
                "append",
                "--type",
                "X",
                "--payload",
                r#"{"text":"a","text":"b"}"#,
            ],
            vec!["duplicate key", "text"],
        ),
        (
            vec!["append", "--type", "POST", "--payload", r#"{"text":5}"#],
            vec!["POST schema", "/text"],
        ),
        (
            vec!["append", "--type", "POST", "--payload", r#"{"text":""}"#],
            vec!["POST schema", "/text"],
        ),
        (
            vec![
                "append",
                "--type",
                "POST",
                "--payload",
                r#"{"text":"x","n":9007199254740993}"#,
            ],
            vec!["9007199254740993", "2^53"],
        ),
        (
            vec![
                "append",
                "--type",
                "X",
                "--payload",
                r#"{"n":-9007199254740993}"#,
            ],
            vec!["-9007199254740993", "2^53"],
        ),
        (
            vec!["append", "--type", "bad type!", "--payload", "{}"],
            vec!["type", "bad type!"],
        ),
        (
            vec!["append", "--type", "", "--payload", "{}"],
            vec!["type"],
        ),
        (
            vec!["append", "--type", "X", "--payload", "[1,2]"],
            vec!["payload", "JSON object"],
        ),
        (
            vec!["append", "--type", "X", "--payload", r#""text""#],
            vec!["payload", "JSON object"],
        ),
        (
            vec!["append", "--type", "X", "--payload", r#"{"a":1} trailing"#],
            vec!["not valid JSON"],
        ),
        (
            vec!["comment", &unknown, "hi"],
            vec!["unknown target", &unknown],
        ),
        (vec!["like", &unknown], vec!["unknown target"]),
        (vec!["star", &unknown], vec!["unknown target"]),
        (vec!["unstar", &unknown], vec!["unknown target"]),
        (vec!["reshare", &unknown, "look"], vec!["unknown target"]),
        (vec!["tag", &unknown, "water"], vec!["unknown target"]),
        (
            vec!["like", "ffffffff00"],
            vec!["unknown target", "ffffffff00"],
        ),
        (
            vec!["post", "--reply-to", &unknown, "reply"],
            vec!["unknown target"],
        ),
        (
            vec![
                "append",
                "--type",
                "LIKE",
                "--payload",
                r#"{"target":"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}"#,
            ],
            vec!["unknown target", "target"],
        ),
        (vec!["like", "abc"], vec!["\"abc\"", "8 to 64 hex"]),
        (vec!["like", &h[..7]], vec!["8 to 64 hex"]),
        (vec!["like", "zzzzzzzzzz"], vec!["\"zzzzzzzzzz\"", "hex"]),
        (vec!["tag", &h, "two words"], vec!["TAG_ADD schema", "/tag"]),
        (vec!["tag", &h, "#hash"], vec!["/tag"]),
        (vec!["comment", &h, ""], vec!["COMMENT schema", "/text"]),
        (vec!["post", "--lang", "english!", "x"], vec!["/lang"]),
        (
            vec!["circle", "add", "fam", "not-a-key"],
            vec!["not-a-key", "public key"],
        ),
        (
            vec!["circle", "create", "fam", "ana", &h[..63]],
            vec!["public key"],
        ),
        (vec!["circle", "rename", "fam", " kin"], vec!["/new_name"]),
        (vec!["--as", "nobody", "post", "x"], vec!["nobody"]),
    ];

    for (args, needles) in &cases {
        fails(rz(home).args(args), 3, needles);
        assert_eq!(
            db_files(home),
            before_files,
            "`rhizome {}` changed the database",
            args.join(" ")
        );
    }
    assert_eq!(log_json(home), before_log);
    assert_eq!(
        ok(rz(home).args(["author", "list", "--json"])),
        before_authors
    );
    // Still writable and intact afterwards.
    post(home, "after");
    assert_eq!(log_events(home).len(), 2);
    ok(rz(home).arg("verify"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    init_plain(home);
    let before = db_files(home);
    fails(rz(home).arg("frobnicate"), 2, &["frobnicate"]);
    fails(rz(home).arg("like"), 2, &["TARGET"]);
    fails(rz(home).args(["append", "--type", "X"]), 2, &["--payload"]);
    fails(rz(home).args(["circle", "add", "fam"]), 2, &["MEMBERS"]);
    fails(rz(home).args(["post", "x", "--bogus"]), 2, &["--bogus"]);
    assert_eq!(db_files(home), before);
}

// ---------------------------------------------------------------------------------------------
// 5. Missing home
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_home_is_reported_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("does").join("not").join("exist");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let unknown = "f".repeat(64);

    let commands: Vec<Vec<&str>> = vec![
        vec!["post", "x"],
        vec!["log"],
        vec!["log", "--json"],
        vec!["whoami"],
        vec!["verify"],
        vec!["author", "list"],
        vec!["author", "add", "bo"],
        vec!["like", &unknown],
        vec!["append", "--type", "X", "--payload", "{}"],
        vec!["circle", "create", "fam"],
    ];
    for args in &commands {
        fails(
            rz(&missing).args(args),
            5,
            &["no Rhizome instance", "rhizome init"],
        );
        assert!(
            !dir.path().join("does").exists(),
            "`rhizome {}` created the missing home",
            args.join(" ")
        );
        fails(rz(&empty).args(args), 5, &["no Rhizome instance"]);
        assert_eq!(
            std::fs::read_dir(&empty).unwrap().count(),
            0,
            "`rhizome {}` wrote into an empty directory",
            args.join(" ")
        );
    }
}

/// `home::open` documents "Opens the store of an existing instance. Never creates anything."
#[test]
fn failing_command_on_empty_db_file_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    std::fs::write(db_path(home), b"").unwrap();
    fails(rz(home).args(["post", "x"]), 5, &["no instance"]);
    fails(rz(home).arg("log"), 5, &["no instance"]);
    assert_eq!(
        std::fs::read(db_path(home)).unwrap(),
        b"",
        "rhizome.db was written"
    );
}

#[test]
fn empty_db_file_is_a_home_without_instance() {
    // The part of the behaviour above that is right today: clear message, exit 5, and `init`
    // can then reuse the file.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    std::fs::write(db_path(home), b"").unwrap();
    fails(
        rz(home).args(["post", "x"]),
        5,
        &["no instance", "rhizome init"],
    );
    init_plain(home);
    post(home, "works");
    assert_eq!(log_events(home).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 6. Corrupted database
// ---------------------------------------------------------------------------------------------

fn garbage(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_database_is_reported_as_damaged_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    init_plain(home);
    post(home, "soon lost");
    let bytes = garbage(16 * 1024);
    std::fs::write(db_path(home), &bytes).unwrap();
    let _ = std::fs::remove_file(home.join("rhizome.db-wal"));
    let _ = std::fs::remove_file(home.join("rhizome.db-shm"));
    let before = db_files(home);

    let commands: Vec<Vec<&str>> = vec![
        vec!["log"],
        vec!["log", "--json"],
        vec!["post", "x"],
        vec!["verify"],
        vec!["whoami"],
        vec!["author", "list"],
        vec!["author", "add", "bo"],
        vec!["init", "--name", "again", "--no-passphrase"],
    ];
    for args in &commands {
        fails(
            rz(home).args(args),
            5,
            &["damaged or not a Rhizome database", "rhizome.db"],
        );
        assert_eq!(
            db_files(home),
            before,
            "`rhizome {}` modified the damaged database",
            args.join(" ")
        );
    }
    assert_eq!(
        fingerprint(&std::fs::read(db_path(home)).unwrap()),
        fingerprint(&bytes)
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Tampered rows
// ---------------------------------------------------------------------------------------------

/// A home with three posts by the default author; returns (home dir, author, hashes).
fn three_posts() -> (tempfile::TempDir, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    init_plain(home);
    let hashes = vec![
        post(home, "first"),
        post(home, "second"),
        post(home, "third"),
    ];
    let author = log_events(home)[0]["author"].as_str().unwrap().to_string();
    (dir, author, hashes)
}

fn tamper(home: &Path, hash: &str, column: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let conn = rusqlite::Connection::open(db_path(home)).unwrap();
    let mut value: Vec<u8> = conn
        .query_row(
            &format!("SELECT {column} FROM events WHERE hex(hash) = ?1"),
            [hash.to_uppercase()],
            |r| r.get(0),
        )
        .unwrap();
    let original = value.clone();
    change(&mut value);
    assert_ne!(value, original, "tamper did not change anything");
    let n = conn
        .execute(
            &format!("UPDATE events SET {column} = ?1 WHERE hex(hash) = ?2"),
            rusqlite::params![value, hash.to_uppercase()],
        )
        .unwrap();
    assert_eq!(n, 1);
    conn.close().unwrap();
}

/// Runs verify both ways and checks it blames exactly `location` for `what`.
fn assert_verify_blames(home: &Path, location: &str, what: &str) {
    let stderr = fails(
        rz(home).arg("verify"),
        6,
        &["verification failed", "1 problem(s) in 3 events"],
    );
    let fail_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(fail_lines.len(), 1, "{stderr}");
    assert!(
        fail_lines[0].starts_with(&format!("FAIL {location}: ")),
        "{stderr}"
    );
    assert!(fail_lines[0].contains(what), "{stderr}");

    let out = rz(home).args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    let v = json_of(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["events_checked"], 3, "{v}");
    let failures = v["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{v}");
    assert_eq!(failures[0]["location"], location, "{v}");
    assert!(failures[0]["error"].as_str().unwrap().contains(what), "{v}");
}

#[test]
fn verify_detects_a_tampered_payload() {
    let (dir, author, hashes) = three_posts();
    let home = dir.path();
    tamper(home, &hashes[1], "payload", |p| {
        let s = String::from_utf8(p.clone())
            .unwrap()
            .replace("second", "sEcond");
        *p = s.into_bytes();
    });
    assert_verify_blames(home, &format!("{author} seq 2"), "payload");

    // The log still reads, shows the stored (tampered) text, and is untouched by verify.
    let events = log_events(home);
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["payload"]["text"], "sEcond");
    assert_eq!(events[1]["hash"], hashes[1].as_str());
}

#[test]
fn verify_detects_a_tampered_signature() {
    let (dir, author, hashes) = three_posts();
    let home = dir.path();
    tamper(home, &hashes[0], "sig", |s| s[5] ^= 0x01);
    assert_verify_blames(home, &format!("{author} seq 1"), "sig");
    let events = log_events(home);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["hash"], hashes[0].as_str());
}

#[test]
fn verify_detects_a_missing_event() {
    let (dir, author, hashes) = three_posts();
    let home = dir.path();
    let conn = rusqlite::Connection::open(db_path(home)).unwrap();
    let n = conn
        .execute(
            "DELETE FROM events WHERE hex(hash) = ?1",
            [hashes[1].to_uppercase()],
        )
        .unwrap();
    assert_eq!(n, 1);
    conn.close().unwrap();
    let stderr = fails(rz(home).arg("verify"), 6, &["verification failed"]);
    assert!(
        stderr.contains(&format!("FAIL {author} seq 3: seq 3 follows seq 1")),
        "{stderr}"
    );
    assert_eq!(log_events(home).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 8. Read-only home
// ---------------------------------------------------------------------------------------------

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Undoes whatever made the home read-only, even if the test fails.
struct Restore {
    immutable: Vec<PathBuf>,
    modes: Vec<(PathBuf, u32)>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        for p in &self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(p)
                .status();
        }
        for (p, mode) in &self.modes {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(*mode));
        }
    }
}

fn chattr_immutable(path: &Path, guard: &mut Restore) -> bool {
    let ok = std::process::Command::new("chattr")
        .arg("+i")
        .arg(path)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        return false;
    }
    guard.immutable.push(path.to_path_buf());
    std::process::Command::new("lsattr")
        .arg("-d")
        .arg(path)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .is_some_and(|flags| flags.contains('i'))
        })
        .unwrap_or(false)
}

/// Makes `home` read-only; `None` if this environment cannot.
fn make_read_only(home: &Path) -> Option<Restore> {
    let mut guard = Restore {
        immutable: Vec::new(),
        modes: Vec::new(),
    };
    let db = db_path(home);
    if chattr_immutable(&db, &mut guard) && chattr_immutable(home, &mut guard) {
        return Some(guard);
    }
    drop(guard);
    if is_root() {
        return None; // root ignores permission bits
    }
    use std::os::unix::fs::PermissionsExt;
    let mut guard = Restore {
        immutable: Vec::new(),
        modes: Vec::new(),
    };
    for (p, mode) in [(home.to_path_buf(), 0o555), (db, 0o444)] {
        let old = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        guard.modes.push((p.clone(), old));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    Some(guard)
}

#[test]
fn read_only_home_refuses_writes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ro");
    init_plain(&home);
    post(&home, "before");
    let before_files = db_files(&home);
    let before_log = log_json(&home);

    let Some(guard) = make_read_only(&home) else {
        let msg = "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                   !! read_only_home_refuses_writes_cleanly: running as root and `chattr +i` is  !!\n\
                   !! unavailable or unsupported here, so a read-only home cannot be simulated.  !!\n\
                   !! Set RHIZOME_SKIP_READONLY_TEST=1 to skip this test knowingly.              !!\n\
                   !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n";
        eprintln!("{msg}");
        if std::env::var("RHIZOME_SKIP_READONLY_TEST").as_deref() == Ok("1") {
            eprintln!(
                "SKIPPED read_only_home_refuses_writes_cleanly (RHIZOME_SKIP_READONLY_TEST=1)"
            );
            return;
        }
        panic!("{msg}");
    };

    // Writing: exit 5 with a message naming the database; nothing changes.
    fails(
        rz(&home).args(["post", "x"]),
        5,
        &["cannot write to database", "rhizome.db"],
    );
    fails(
        rz(&home).args(["author", "add", "bo"]),
        5,
        &["cannot write to database"],
    );
    // Reading a read-only home: today it fails too (exit 5, same message) because opening
    // the store needs the WAL files; if that is ever made to work, it must show the same log.
    let out = rz(&home).args(["log", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    match out.status.code() {
        Some(0) => assert_eq!(String::from_utf8_lossy(&out.stdout), before_log),
        Some(5) => assert!(stderr.contains("cannot write to database"), "{stderr}"),
        other => panic!("log on a read-only home: exit {other:?}, {stderr}"),
    }
    assert_eq!(db_files(&home), before_files);

    drop(guard);
    assert_eq!(db_files(&home), before_files);
    assert_eq!(log_json(&home), before_log);
    // Restored: writable again.
    post(&home, "after");
    assert_eq!(log_events(&home).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 9. Help
// ---------------------------------------------------------------------------------------------

#[test]
fn help_documents_exit_codes_and_examples() {
    let top = ok(bin().arg("--help"));
    assert!(top.contains("EXIT CODES"), "{top}");
    for code in [
        "0  success",
        "3  invalid input",
        "4  passphrase",
        "5  home",
        "6  verification",
    ] {
        assert!(top.contains(code), "top-level help lacks {code:?}");
    }
    assert!(top.contains("RHIZOME_PASSPHRASE"));

    let subcommands: &[&[&str]] = &[
        &["init"],
        &["author", "add"],
        &["author", "list"],
        &["whoami"],
        &["post"],
        &["comment"],
        &["like"],
        &["reshare"],
        &["star"],
        &["unstar"],
        &["tag"],
        &["circle", "create"],
        &["circle", "add"],
        &["circle", "remove"],
        &["circle", "rename"],
        &["append"],
        &["log"],
        &["verify"],
    ];
    for sub in subcommands {
        let help = ok(bin().args(*sub).arg("--help"));
        assert!(
            help.contains("EXAMPLES"),
            "`rhizome {} --help` has no EXAMPLES:\n{help}",
            sub.join(" ")
        );
        assert!(
            help.contains(&format!("rhizome {}", sub.join(" "))),
            "`rhizome {} --help` has no example of itself",
            sub.join(" ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Closed stdout (`rhizome ... | head`)
// ---------------------------------------------------------------------------------------------

/// Runs the command with stdout a pipe whose reading end is closed at once.
fn run_with_closed_stdout(home: &Path, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("rhizome"));
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn log_into_a_closed_pipe_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    init_plain(home);
    for i in 0..3 {
        post(home, &format!("post {i}"));
    }
    for args in [&["log"][..], &["log", "--json"][..]] {
        let out = run_with_closed_stdout(home, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn commands_into_a_closed_pipe_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    init_plain(home);
    let cases: &[&[&str]] = &[
        &["whoami"],
        &["whoami", "--json"],
        &["author", "list"],
        &["verify"],
        &["post", "written while nobody listens"],
        &["--json", "post", "again"],
    ];
    for args in cases {
        let out = run_with_closed_stdout(home, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    // The posts were written: a caller seeing a failure would post them again.
    assert_eq!(log_events(home).len(), 2);
}

/// `log` summarises a payload's `target`; a non-hex, non-ASCII one (unknown types are not
/// schema-checked) must not be cut inside a character.
#[test]
fn log_summarises_non_ascii_targets_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    init_plain(home);
    rz(home)
        .args([
            "append",
            "--type",
            "RECIPE",
            "--payload",
            r#"{"target":"ééééééééééééé","text":"soup"}"#,
        ])
        .assert()
        .success();
    let out = rz(home).arg("log").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("-> éééééééééééé soup"), "{stdout}");
}
