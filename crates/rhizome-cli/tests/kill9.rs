#![allow(clippy::unwrap_used)]
//! Crash safety of `rhizome import`: an import killed with SIGKILL at a random moment, then
//! run again to completion, must leave the home exactly as one clean import does: the same
//! log byte for byte, every event verifying, no event waiting, and views equal to a rebuild.
//!
//! Home A gets its events from `rhizome migrate` (far faster than one `post` process per
//! event) and exports them all. The kill delays come from a fixed-seed PRNG, so a failure
//! replays; they range from 20 ms to the duration of a clean import (at least 400 ms), so
//! kills land before the first batch commits, between batches and during a commit.
//!
//! The homes live on /dev/shm when there is one: SIGKILL tests process death, not power loss,
//! so fsync costs nothing to the test's meaning and would otherwise dominate its runtime.

use assert_cmd::Command;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Authors and posts per author in home A.
const USERS: usize = 20;
const POSTS_PER_USER: usize = 1000;
/// Kill-and-rerun rounds.
const ROUNDS: usize = 5;

fn bin() -> Command {
    let mut c = Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        // Import a first bundle from an unknown instance at once, not into quarantine.
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1");
    c
}

fn rz(home: &Path) -> Command {
    let mut c = bin();
    c.arg("--home").arg(home);
    c
}

/// Runs `cmd`, asserts exit 0 and no panic, returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let d = format!(
        "{cmd:?}\n  status: {:?}\n  stdout: {}\n  stderr: {stderr}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "panic: {d}");
    assert_eq!(out.status.code(), Some(0), "expected success: {d}");
    String::from_utf8(out.stdout).unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

fn init(home: &Path, name: &str) {
    // Counts events; PROFILE events are tested in tests/profiles.rs.
    ok(rz(home).args(["init", "--name", name, "--no-passphrase", "--no-profile"]));
}

fn log(home: &Path) -> String {
    ok(rz(home).args(["log", "--json"]))
}

fn import(home: &Path, bundle: &Path) -> Value {
    json_of(&ok(rz(home).args(["import", "--json"]).arg(bundle)))
}

/// splitmix64: a small deterministic PRNG.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("rhizome-kill9-")
            .tempdir_in(shm)
        {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn an_import_killed_anywhere_then_rerun_equals_one_clean_import() {
    let started = Instant::now();
    let dir = scratch();
    // Every migrated user also publishes a PROFILE with its name.
    let events = USERS * POSTS_PER_USER + USERS;

    // Home A: USERS authors with POSTS_PER_USER posts each, by migration.
    let records = dir.path().join("old.jsonl");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&records).unwrap());
        for u in 0..USERS {
            writeln!(w, r#"{{"kind":"user","id":"u{u}","name":"user{u}"}}"#).unwrap();
        }
        for i in 0..POSTS_PER_USER {
            for u in 0..USERS {
                writeln!(
                    w,
                    r#"{{"kind":"post","id":"p{u}-{i}","user":"u{u}","text":"post {i} by user {u}","at":{}}}"#,
                    1_700_000_000_000u64 + i as u64
                )
                .unwrap();
            }
        }
        w.flush().unwrap();
    }
    let a = dir.path().join("a");
    init(&a, "a");
    let m = json_of(&ok(rz(&a)
        .args(["--json", "migrate", "--from"])
        .arg(&records)));
    assert_eq!(
        m["events_created"].as_u64(),
        Some((USERS * POSTS_PER_USER) as u64),
        "{m}"
    );
    assert_eq!(m["profiles_created"].as_u64(), Some(USERS as u64), "{m}");
    let bundle = dir.path().join("a.bundle");
    ok(rz(&a).args(["export", "--all", "--to"]).arg(&bundle));
    let setup = started.elapsed();

    // Home C: one clean import, the reference.
    let c = dir.path().join("c");
    init(&c, "c");
    let t = Instant::now();
    let rep = import(&c, &bundle);
    let clean = t.elapsed();
    assert_eq!(rep["new"].as_u64(), Some(events as u64), "{rep}");
    let reference = log(&c);
    assert_eq!(reference.lines().count(), events);
    // (Feeds are listed in the order a home first saw them, so compare A's log as a set.)
    let mut ours: Vec<&str> = reference.lines().collect();
    let a_log = log(&a);
    let mut theirs: Vec<&str> = a_log.lines().collect();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert!(ours == theirs, "C's log holds other events than A's");

    let mut rng = Prng(0x5eed_0f4b_1100);
    let max_delay = (clean.as_millis() as u64).max(400);
    let mut partial_rounds = 0;
    for round in 0..ROUNDS {
        let b = dir.path().join(format!("b{round}"));
        init(&b, "b");
        let delay = rng.between(20, max_delay);
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rhizome"))
            .env_remove("RHIZOME_PASSPHRASE")
            .env_remove("RHIZOME_HOME")
            .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
            .arg("--home")
            .arg(&b)
            .arg("import")
            .arg(&bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL; an error only means it had already exited
        let status = child.wait().unwrap();
        // Killed (no exit code), or it finished just before the signal (exit 0).
        assert!(
            status.code().is_none() || status.success(),
            "round {round}: the import failed by itself: {status:?}"
        );
        let stored = log(&b).lines().count();
        if stored > 0 && stored < events {
            partial_rounds += 1;
        }
        eprintln!(
            "round {round}: kill after {delay} ms ({}): {stored} of {events} events stored",
            if status.success() {
                "it had already finished"
            } else {
                "killed mid-import"
            }
        );

        // The rerun completes and adds exactly what the killed run did not commit.
        let rep = import(&b, &bundle);
        assert_eq!(rep["status"], "complete", "round {round}: {rep}");
        assert_eq!(
            rep["new"].as_u64(),
            Some((events - stored) as u64),
            "round {round}: {rep}"
        );
        assert_eq!(rep["duplicate"].as_u64(), Some(stored as u64), "{rep}");
        assert_eq!(rep["pending"], 0, "{rep}");
        assert_eq!(rep["forks"], 0, "{rep}");
        assert_eq!(rep["refused_total"], 0, "{rep}");

        assert!(
            log(&b) == reference,
            "round {round}: B's log differs from C's"
        );
        let v = json_of(&ok(rz(&b).args(["verify", "--json"])));
        assert_eq!(v["ok"], true, "round {round}: {v}");
        assert_eq!(v["events_checked"].as_u64(), Some(events as u64));
        ok(rz(&b).args(["views", "check"]));
        std::fs::remove_dir_all(&b).unwrap();
    }
    eprintln!(
        "{events} events: setup {setup:?}, clean import {clean:?}, {partial_rounds} of {ROUNDS} \
         kills left a partial import, total {:?}",
        started.elapsed()
    );
}
