#![allow(clippy::unwrap_used)]
//! Several real `rhizome` processes appending to the same home at once: every append must
//! land, each feed must stay one unbroken chain, and `verify` must pass.

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn rhizome(home: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("rhizome"));
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .arg("--home")
        .arg(home)
        .stdin(Stdio::null());
    c
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn init(home: &Path) -> (String, String) {
    run_ok(rhizome(home).args([
        "init",
        "--name",
        "race",
        "--author",
        "ana",
        "--no-passphrase",
        // Counts seqs; PROFILE events are tested in tests/profiles.rs.
        "--no-profile",
    ]));
    let bo: Value = serde_json::from_str(&run_ok(rhizome(home).args([
        "--json",
        "author",
        "add",
        "bo",
        "--no-profile",
    ])))
    .unwrap();
    let who: Value =
        serde_json::from_str(&run_ok(rhizome(home).args(["--json", "whoami"]))).unwrap();
    let ana = who["authors"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    (ana, bo["public_key"].as_str().unwrap().to_string())
}

/// One racer: `count` sequential `post` invocations as `author`.
fn racer(home: PathBuf, author: &'static str, id: usize, count: usize) -> Vec<(String, Output)> {
    (0..count)
        .map(|i| {
            let text = format!("racer {id} post {i}");
            let out = rhizome(&home)
                .args(["--as", author, "--json", "post", &text])
                .output()
                .unwrap();
            (text, out)
        })
        .collect()
}

/// Runs the racers concurrently, asserts every invocation succeeded, and returns what each
/// `post --json` reported: (text, author, seq, hash).
fn race(home: &Path, racers: &[(&'static str, usize)]) -> Vec<(String, String, u64, String)> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(racers.len()));
    let handles: Vec<_> = racers
        .iter()
        .enumerate()
        .map(|(id, &(author, count))| {
            let home = home.to_path_buf();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                racer(home, author, id, count)
            })
        })
        .collect();
    let mut reported = Vec::new();
    for h in handles {
        for (text, out) in h.join().unwrap() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "post {text:?} exited {:?}: {stderr}",
                out.status.code()
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            let v: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
                .unwrap_or_else(|e| panic!("post {text:?} printed no JSON ({e}): {out:?}"));
            reported.push((
                text,
                v["author"].as_str().unwrap().to_string(),
                v["seq"].as_u64().unwrap(),
                v["hash"].as_str().unwrap().to_string(),
            ));
        }
    }
    reported
}

/// Checks the stored log against what the racers were told, feed by feed.
fn check_log(home: &Path, reported: &[(String, String, u64, String)], expected: &[(&str, usize)]) {
    let log = run_ok(rhizome(home).args(["log", "--json"]));
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total: usize = expected.iter().map(|(_, n)| n).sum();
    assert_eq!(events.len(), total, "events in the log");
    assert_eq!(reported.len(), total, "successful posts");

    let mut feeds: HashMap<&str, Vec<&Value>> = HashMap::new();
    for ev in &events {
        feeds
            .entry(ev["author"].as_str().unwrap())
            .or_default()
            .push(ev);
    }
    assert_eq!(feeds.len(), expected.len());
    for (author, n) in expected {
        let feed = &feeds[author];
        assert_eq!(feed.len(), *n, "events of {author}");
        let mut prev = Value::Null;
        for (i, ev) in feed.iter().enumerate() {
            assert_eq!(
                ev["seq"].as_u64(),
                Some(i as u64 + 1),
                "feed {author}: seqs must run 1..{n} without gap or repeat"
            );
            assert_eq!(ev["prev"], prev, "feed {author} seq {}: broken link", i + 1);
            prev = ev["hash"].clone();
        }
    }

    // Every reported (author, seq, hash) is exactly what is stored, and every text once.
    let stored: HashMap<(&str, u64), (&str, &str)> = events
        .iter()
        .map(|e| {
            (
                (e["author"].as_str().unwrap(), e["seq"].as_u64().unwrap()),
                (
                    e["hash"].as_str().unwrap(),
                    e["payload"]["text"].as_str().unwrap(),
                ),
            )
        })
        .collect();
    let mut texts = HashSet::new();
    for (text, author, seq, hash) in reported {
        let (h, t) = stored
            .get(&(author.as_str(), *seq))
            .unwrap_or_else(|| panic!("{author} seq {seq} reported but not stored"));
        assert_eq!(h, hash, "{author} seq {seq}");
        assert_eq!(t, text, "{author} seq {seq}");
        assert!(texts.insert(text.clone()), "{text:?} stored twice");
    }

    let out = run_ok(rhizome(home).arg("verify"));
    assert!(out.starts_with(&format!("ok: {total} events")), "{out}");
}

#[test]
fn concurrent_posts_to_one_feed_keep_one_chain() {
    const PER_RACER: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (ana, _) = init(home);
    let reported = race(home, &[("ana", PER_RACER); 3]);
    check_log(home, &reported, &[(&ana, 3 * PER_RACER)]);
}

#[test]
fn concurrent_posts_to_several_feeds() {
    const PER_RACER: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (ana, bo) = init(home);
    // bo's first post (creating his feed) races ana's.
    let reported = race(
        home,
        &[("ana", PER_RACER), ("bo", PER_RACER), ("ana", PER_RACER)],
    );
    check_log(home, &reported, &[(&ana, 2 * PER_RACER), (&bo, PER_RACER)]);
}
