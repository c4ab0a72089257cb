#![allow(clippy::unwrap_used)]
//! The `rhizome` binary on a PostgreSQL store (`--store postgres://...`), as a hub runs it:
//! several real processes importing overlapping bundles into one database at once must end
//! with no duplicate, no gap, no lost event and the same views as one import into SQLite;
//! an unreachable server and a newer schema are refused clearly.
//!
//! Runs on the server `RHIZOME_TEST_POSTGRES` names (default: 127.0.0.1:5432, trust auth) and
//! fails when it cannot reach it, unless `RHIZOME_TEST_POSTGRES=skip`. Each test works in a
//! schema of its own, dropped after.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

use rhizome_store_postgres::testing::{server, Schema};

fn rhizome() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("rhizome"));
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env_remove("RHIZOME_STORE")
        .stdin(Stdio::null());
    c
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(cmd: &mut Command) -> Value {
    serde_json::from_str(&ok(cmd.arg("--json"))).unwrap()
}

/// A home with `posts` posts and likes of its own posts, exported whole to `to`.
fn source(dir: &Path, name: &str, posts: usize, to: &Path) {
    let home = dir.join(name);
    ok(rhizome()
        .arg("--home")
        .arg(&home)
        .args(["init", "--name", name, "--no-passphrase"]));
    for i in 0..posts {
        let out = json(
            rhizome()
                .arg("--home")
                .arg(&home)
                .args(["post", &format!("{name} says {i}")]),
        );
        if i % 3 == 0 {
            let hash = out["hash"].as_str().unwrap().to_string();
            ok(rhizome().arg("--home").arg(&home).args(["like", &hash]));
        }
    }
    ok(rhizome()
        .arg("--home")
        .arg(&home)
        .args(["export", "--all", "--to"])
        .arg(to));
}

#[test]
fn racing_hub_processes_end_as_one_import() {
    let Some(server) = server("racing_hub_processes_end_as_one_import") else {
        return;
    };
    let schema = Schema::new(&server, "rz_cli_race");
    let dir = tempfile::tempdir().unwrap();
    let hub = |c: &mut Command| {
        c.arg("--store")
            .arg(&schema.url)
            .arg("--home")
            .arg(dir.path().join("unused"));
    };

    // Three instances, and a relay that holds all three: every bundle overlaps another.
    let bundles: Vec<_> = ["school", "ship", "clinic"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let b = dir.path().join(format!("{name}.bundle"));
            source(dir.path(), name, 40 + 10 * i, &b);
            b
        })
        .collect();
    let relay = dir.path().join("relay");
    ok(rhizome()
        .arg("--home")
        .arg(&relay)
        .args(["init", "--name", "relay", "--no-passphrase"]));
    for b in &bundles {
        ok(rhizome()
            .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
            .arg("--home")
            .arg(&relay)
            .arg("import")
            .arg(b));
    }
    let relayed = dir.path().join("relay.bundle");
    ok(rhizome()
        .arg("--home")
        .arg(&relay)
        .args(["export", "--all", "--to"])
        .arg(&relayed));

    let mut c = rhizome();
    hub(&mut c);
    ok(c.args(["init", "--name", "hub", "--no-passphrase"]));

    // Six processes at once: each bundle, the relay's twice.
    let mut all = bundles.clone();
    all.push(relayed.clone());
    all.push(relayed.clone());
    all.push(bundles[0].clone());
    let children: Vec<_> = all
        .iter()
        .map(|b| {
            let mut c = rhizome();
            hub(&mut c);
            c.env("RHIZOME_TRUST_ON_FIRST_USE", "1")
                .arg("import")
                .arg(b)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "an import failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The same bundles into SQLite, one after another: the reference.
    let reference = dir.path().join("reference");
    ok(rhizome().arg("--home").arg(&reference).args([
        "init",
        "--name",
        "reference",
        "--no-passphrase",
        "--no-profile",
    ]));
    for b in &all {
        ok(rhizome()
            .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
            .arg("--home")
            .arg(&reference)
            .arg("import")
            .arg(b));
    }

    let mut c = rhizome();
    hub(&mut c);
    let on_pg = json(c.arg("status"));
    let on_sqlite = json(rhizome().arg("--home").arg(&reference).arg("status"));
    let feeds_of = |status: &Value, skip: &str| -> Vec<(String, u64)> {
        let mut v: Vec<_> = status["per_author"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"].as_str() != Some(skip))
            .map(|a| {
                (
                    a["author"].as_str().unwrap().to_string(),
                    a["events"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    // Everything the four instances wrote, each event once, each feed unbroken.
    let expected = feeds_of(&on_sqlite, "reference");
    assert_eq!(expected.len(), 4, "{on_sqlite}");
    let got = feeds_of(&on_pg, "hub");
    assert_eq!(got, expected, "the hub's feeds differ from one import");
    let own: u64 = 1; // the hub's own profile
    assert_eq!(
        on_pg["events"].as_u64().unwrap(),
        expected.iter().map(|(_, n)| n).sum::<u64>() + own
    );
    let mut c = rhizome();
    hub(&mut c);
    ok(c.arg("verify"));
    let mut c = rhizome();
    hub(&mut c);
    let check = json(c.args(["views", "check"]));
    assert_eq!(check["ok"], true, "{check}");

    // Same views as the one-by-one SQLite import, apart from the rows of the two instances'
    // own authors: compare the rows every reader shows, the timeline.
    let feed = |c: &mut Command| -> Vec<String> {
        let v = json(c.args(["feed", "--limit", "1000"]));
        let mut items: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| format!("{} {} {}", i["hash"], i["likes"], i["replies"]))
            .collect();
        items.sort();
        items
    };
    // Follow the four instances' authors on both, then compare the feeds.
    for (author, _) in &expected {
        let mut c = rhizome();
        hub(&mut c);
        ok(c.args(["follow", author]));
        ok(rhizome()
            .arg("--home")
            .arg(&reference)
            .args(["follow", author]));
    }
    let mut c = rhizome();
    hub(&mut c);
    let pg_feed = feed(&mut c);
    let sqlite_feed = feed(rhizome().arg("--home").arg(&reference));
    assert!(!pg_feed.is_empty());
    assert_eq!(pg_feed, sqlite_feed);
}

#[test]
fn an_unreachable_server_or_a_newer_schema_is_refused_clearly() {
    // No server needed for this half: a closed port.
    let dir = tempfile::tempdir().unwrap();
    let out = rhizome()
        .arg("--home")
        .arg(dir.path())
        .args([
            "--store",
            "postgres://hub:s3cret@127.0.0.1:1/rhizome",
            "status",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unavailable"), "{err}");
    assert!(!err.contains("s3cret"), "the password was shown: {err}");

    let Some(server) = server("an_unreachable_server_or_a_newer_schema_is_refused_clearly") else {
        return;
    };
    let mut schema = Schema::new(&server, "rz_cli_newer");
    ok(rhizome().args([
        "--store",
        &schema.url,
        "init",
        "--name",
        "hub",
        "--no-passphrase",
    ]));
    let name = schema.name.clone();
    schema
        .admin
        .batch_execute(&format!(
            "UPDATE {name}.rhizome_schema SET version = version + 100"
        ))
        .unwrap();
    let out = rhizome()
        .args(["--store", &schema.url, "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer"), "{err}");
}
