//! Names for people (issue 10): signed PROFILE events, published by `init`, `author add`,
//! `rhizome profile` and `migrate`, travelling in bundles like any event, and shown in human
//! output beside a fingerprint of the key (names are not unique). Run on the real binary.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn rz(home: &Path) -> Command {
    let mut c = Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("--home")
        .arg(home);
    c
}

/// Runs a command that must succeed; its stdout.
fn ok(home: &Path, args: &[&str]) -> String {
    let out = rz(home).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(home, &all)).unwrap()
}

/// Runs a command that must fail; (exit code, stderr).
fn fails(home: &Path, args: &[&str]) -> (i32, String) {
    let out = rz(home).args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (out.status.code().unwrap(), err)
}

fn log(home: &Path) -> Vec<Value> {
    ok(home, &["log", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn profiles(home: &Path) -> Vec<Value> {
    log(home)
        .into_iter()
        .filter(|e| e["type"] == "PROFILE")
        .collect()
}

fn init(home: &Path, name: &str, author: &str) -> String {
    let v = json(
        home,
        &[
            "init",
            "--name",
            name,
            "--author",
            author,
            "--no-passphrase",
        ],
    );
    v["author"]["public_key"].as_str().unwrap().to_string()
}

/// The 16-hex fingerprint shown beside names.
fn fp(key: &str) -> &str {
    &key[..16]
}

fn carry(from: &Path, to: &Path, file: &Path) {
    ok(from, &["export", "--all", "--to", file.to_str().unwrap()]);
    ok(to, &["import", file.to_str().unwrap()]);
}

#[test]
fn init_and_author_add_publish_a_profile_and_profile_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("school");
    let created = json(
        &home,
        &[
            "init",
            "--name",
            "school",
            "--author",
            "ana",
            "--no-passphrase",
        ],
    );
    let ana = created["author"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let ps = profiles(&home);
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0]["author"], ana.as_str());
    assert_eq!(ps[0]["seq"], 1);
    assert_eq!(ps[0]["payload"], json!({"name": "ana"}));
    assert_eq!(created["author"]["profile_event"], ps[0]["hash"]);

    let bo = json(&home, &["author", "add", "bo"]);
    let bo_key = bo["public_key"].as_str().unwrap().to_string();
    assert_eq!(profiles(&home).len(), 2);
    let human = ok(&home, &["author", "add", "cy", "--no-profile"]);
    assert!(human.contains("none published"), "{human}");
    assert_eq!(profiles(&home).len(), 2, "--no-profile publishes nothing");

    // A person changes their name; the latest wins, everywhere names are shown.
    let p = json(
        &home,
        &[
            "profile",
            "--name",
            "Ana Lima",
            "--about",
            "Teacher at the school",
        ],
    );
    assert_eq!(p["type"], "PROFILE");
    assert_eq!(p["seq"], 2);
    ok(&home, &["--as", "bo", "profile", "--name", "Bo"]);
    let who = json(&home, &["whoami"]);
    assert_eq!(
        who["authors"][0]["profile"],
        json!({"name": "Ana Lima", "about": "Teacher at the school"})
    );
    assert_eq!(who["authors"][2]["profile"], Value::Null);
    let human = ok(&home, &["whoami"]);
    assert!(
        human.contains(&format!("others see Ana Lima ({})", fp(&ana))),
        "{human}"
    );
    assert!(human.contains("(no profile published)"), "{human}");
    ok(&home, &["post", "the well is fixed"]);
    let feed = ok(&home, &["feed"]);
    assert!(feed.contains(&format!("Ana Lima ({})", fp(&ana))), "{feed}");
    let log_human = ok(&home, &["log"]);
    assert!(
        log_human.contains(&format!("Bo ({})", fp(&bo_key))),
        "{log_human}"
    );
    let f = json(&home, &["feed"]);
    assert_eq!(f["items"][0]["name"], "Ana Lima");
    assert_eq!(f["items"][0]["author_name"], "ana", "the local name stays");

    // The view is rebuilt identically, and checked.
    ok(&home, &["views", "rebuild"]);
    let check = json(&home, &["views", "check"]);
    assert_eq!(check["ok"], true, "{check}");
    assert!(check["live"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["table"] == "v_profiles" && t["rows"] == 2));
    ok(&home, &["verify"]);
}

#[test]
fn bad_names_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    init(&home, "h", "ana");
    let before = log(&home);
    let long = "x".repeat(65);
    let about = "y".repeat(1001);
    for args in [
        vec!["profile", "--name", ""],
        vec!["profile", "--name", &long],
        vec!["profile", "--name", " padded"],
        vec!["profile", "--name", "evil\u{1b}]0;pwned\u{7}"],
        vec!["profile", "--name", "ana\u{202e}fed"],
        vec!["profile", "--name", "a\u{200b}b"],
        vec!["profile", "--name", "ok", "--about", &about],
        vec!["profile", "--name", "ok", "--about", ""],
    ] {
        let (code, err) = fails(&home, &args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains("profile"), "{args:?}: {err}");
    }
    assert_eq!(log(&home), before);
    // init refuses, before creating anything, an author name a profile cannot carry.
    let other = dir.path().join("other");
    let (code, err) = fails(
        &other,
        &[
            "init",
            "--name",
            "x",
            "--author",
            "a\u{2066}b",
            "--no-passphrase",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(!other.join("rhizome.db").exists());
}

/// Other instances' authors appear by name, beside their fingerprint, wherever the human
/// output names them; an impostor taking the same name is told apart by the fingerprint.
#[test]
fn names_travel_in_bundles_and_show_beside_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (school, ship, liar): (PathBuf, PathBuf, PathBuf) =
        (root.join("school"), root.join("ship"), root.join("liar"));
    let ana = init(&school, "school", "ana");
    let bob = init(&ship, "ship", "bob");
    let fake = init(&liar, "liar", "mallory");
    ok(&school, &["profile", "--name", "Ana Lima"]);
    ok(&liar, &["profile", "--name", "Ana Lima"]);
    let post = json(&school, &["post", "the well is fixed"])["hash"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&school, &["tag", &post[..16], "water"]);
    ok(&school, &["star", &post[..16]]);
    carry(&school, &ship, &root.join("s.bundle"));
    carry(&ship, &school, &root.join("b.bundle"));
    ok(&liar, &["post", "trust me"]);
    carry(&liar, &ship, &root.join("l.bundle"));

    ok(&ship, &["follow", &ana]);
    ok(&ship, &["follow", &fake]);
    ok(&ship, &["comment", &post[..16], "great"]);
    ok(&ship, &["like", &post[..16]]);
    ok(&ship, &["circle", "create", "crew", &ana]);
    let real = format!("Ana Lima ({})", fp(&ana));
    let impostor = format!("Ana Lima ({})", fp(&fake));
    let feed = ok(&ship, &["feed"]);
    assert!(feed.contains(&real), "{feed}");
    assert!(feed.contains(&impostor), "{feed}");
    let thread = ok(&ship, &["thread", &post[..16]]);
    assert!(thread.contains(&real), "{thread}");
    assert!(
        thread.contains(&format!("bob ({})", fp(&bob))),
        "replies and likes by name: {thread}"
    );
    for (args, want) in [
        (vec!["log"], &real),
        (vec!["circles"], &real),
        (vec!["tags", "water"], &real),
        (vec!["status"], &impostor),
    ] {
        let out = ok(&ship, &args);
        assert!(out.contains(want.as_str()), "{args:?}: {out}");
    }
    let t = json(&ship, &["thread", &post[..16]]);
    assert_eq!(t["root"]["name"], "Ana Lima");
    assert_eq!(t["replies"][0]["name"], "bob");
    // The school reads back the ship's names the same way.
    ok(&school, &["follow", &bob]);
    let starred = ok(&school, &["starred"]);
    assert!(starred.contains(&real), "{starred}");
    ok(&ship, &["views", "check"]);

    // A later profile replaces the name on the other side too.
    ok(&school, &["profile", "--name", "Ana L."]);
    carry(&school, &ship, &root.join("s2.bundle"));
    let feed = ok(&ship, &["feed"]);
    assert!(feed.contains(&format!("Ana L. ({})", fp(&ana))), "{feed}");
    assert!(!feed.contains(&real), "{feed}");
}

#[test]
fn migrate_maps_user_names_to_profiles_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    init(&home, "h", "admin");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/migrate.jsonl");
    let r = json(&home, &["migrate", "--from", example]);
    assert_eq!(r["profiles_created"], 2, "{r}");
    let names: Vec<Value> = profiles(&home)
        .iter()
        .map(|p| p["payload"]["name"].clone())
        .collect();
    for n in ["alice", "bruno"] {
        assert!(names.contains(&json!(n)), "{names:?}");
    }
    let again = json(&home, &["migrate", "--from", example]);
    assert_eq!(again["profiles_created"], 0, "{again}");
    assert_eq!(profiles(&home).len(), 3, "admin, alice, bruno");
    // A user whose name a profile cannot carry is a bad line, named.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"kind\":\"user\",\"id\":\"z\",\"name\":\"z\\u200bz\"}\n",
    )
    .unwrap();
    let (code, err) = fails(&home, &["migrate", "--from", bad.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("line 1") && err.contains("`name`"), "{err}");
}
