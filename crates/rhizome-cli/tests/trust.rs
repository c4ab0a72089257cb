//! Trust: quarantine of bundles from unknown instances, approve/reject, blocked instances and
//! authors. Homes here use trust-on-first-use unless a test says otherwise.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn rz(home: &Path) -> Command {
    let mut c = strict(home);
    c.env("RHIZOME_TRUST_ON_FIRST_USE", "1");
    c
}

/// The default policy: unknown instances' bundles wait in quarantine.
fn strict(home: &Path) -> Command {
    let mut c = Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
        .arg("--home")
        .arg(home);
    c
}

fn strict_json(home: &Path, args: &[&str]) -> serde_json::Value {
    let out = strict(home).args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A school, a ship and a hub, initialised in `dir`.
fn three_homes(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let homes = (dir.join("a"), dir.join("b"), dir.join("c"));
    for (h, n) in [(&homes.0, "school"), (&homes.1, "ship"), (&homes.2, "hub")] {
        rz(h)
            .args(["init", "--name", n, "--no-passphrase", "--no-profile"])
            .assert()
            .success();
    }
    homes
}

#[test]
fn unknown_instances_wait_in_quarantine_until_approved_or_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = three_homes(dir.path());
    rz(&a)
        .args(["post", "secret plans for the garden"])
        .assert()
        .success();
    let author = json(&a, &["whoami"])["authors"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let a_id = json(&a, &["whoami"])["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let bundle = dir.path().join("a.bundle");
    rz(&a)
        .args(["export", "--all", "--to"])
        .arg(&bundle)
        .assert()
        .success();

    let held = strict_json(&b, &["import", bundle.to_str().unwrap()]);
    assert_eq!(held["status"], "quarantined");
    let id = held["held"]["id"].as_str().unwrap().to_string();
    assert_eq!(held["held"]["instance_id"], a_id.as_str());
    assert_eq!(held["held"]["events"], 1);
    // Nothing reaches the log or the views before approval.
    assert_eq!(lines(&b, &["log", "--json"]), 0);
    json(&b, &["follow", &author]);
    assert_eq!(json(&b, &["feed"])["items"].as_array().unwrap().len(), 0);
    let pending = strict_json(&b, &["pending"]);
    assert_eq!(pending.as_array().unwrap().len(), 1);
    assert_eq!(pending[0]["id"], id.as_str());
    // The same stick again is the same held bundle.
    assert_eq!(
        strict_json(&b, &["import", bundle.to_str().unwrap()])["already_held"],
        true
    );

    let report = strict_json(&b, &["approve", &id]);
    assert_eq!(report["new"], 1);
    assert_eq!(json(&b, &["feed"])["items"].as_array().unwrap().len(), 1);
    assert_eq!(strict_json(&b, &["pending"]).as_array().unwrap().len(), 0);
    assert_eq!(json(&b, &["peers"])[0]["trust"], "trusted");
    let again = strict(&b).args(["approve", &id]).output().unwrap();
    assert_eq!(again.status.code(), Some(3), "approving twice");
    // A trusted instance's next bundle goes straight in.
    rz(&a).args(["post", "second"]).assert().success();
    rz(&a)
        .args(["export", "--all", "--to"])
        .arg(&bundle)
        .assert()
        .success();
    assert_eq!(
        strict_json(&b, &["import", bundle.to_str().unwrap()])["new"],
        1
    );

    // Rejecting discards; nothing applied; unknown or malformed ids are refused.
    let held = strict_json(&c, &["import", bundle.to_str().unwrap()]);
    let id = held["held"]["id"].as_str().unwrap().to_string();
    // The held copy is named by its content, under the home.
    let blob = held["held"]["blob"].as_str().unwrap();
    assert!(blob.starts_with(&id), "{held}");
    let copy = c.join("quarantine").join(format!("{blob}.bundle"));
    assert!(copy.exists());
    strict_json(&c, &["reject", &id]);
    assert_eq!(lines(&c, &["log", "--json"]), 0);
    assert!(!copy.exists());
    for bad in ["0000000000000000", "zz"] {
        for cmd in ["approve", "reject"] {
            let out = strict(&c).args([cmd, bad]).output().unwrap();
            assert_eq!(out.status.code(), Some(3), "{cmd} {bad}");
            assert!(String::from_utf8_lossy(&out.stderr).contains("quarantine"));
        }
    }
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

/// `bundle`'s manifest, with its exporter key replaced by `key`'s (the claimed instance id
/// kept) and signed by `key`, and a trailer signed by `key`: a forgery only the derivation of
/// instance ids from keys catches.
fn impostor_bundle(bundle: &Path, key: &rhizome_core::SecretKey) -> Vec<u8> {
    use rhizome_core::bundle::{Trailer, FORMAT, MANIFEST_PREFIX, TRAILER_PREFIX};
    use sha2::{Digest, Sha256};
    let text = std::fs::read_to_string(bundle).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let obj = m.as_object_mut().unwrap();
    obj.remove("sig");
    obj.remove("hosts");
    m["exporter"]["public_key"] = key.public_key().to_hex().into();
    let sign = |v: &serde_json::Value, prefix: &[u8]| {
        let mut msg = prefix.to_vec();
        msg.extend_from_slice(&Sha256::digest(rhizome_core::canonical::to_canonical(v)));
        key.sign(&msg).to_hex()
    };
    m["sig"] = sign(&m, MANIFEST_PREFIX).into();
    let mut out = rhizome_core::canonical::to_canonical(&m);
    out.push(b'\n');
    let t = Trailer {
        trailer: FORMAT.into(),
        events: 0,
        sha256: rhizome_core::Hash::from_bytes(Sha256::digest(&out).into()),
    };
    let mut tv = serde_json::to_value(&t).unwrap();
    tv["sig"] = sign(&tv, TRAILER_PREFIX).into();
    out.extend_from_slice(&rhizome_core::canonical::to_canonical(&tv));
    out.push(b'\n');
    out
}

#[test]
fn a_blocked_instance_is_refused_whole_until_unblocked() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (h, n) in [(&a, "school"), (&b, "ship")] {
        rz(h)
            .args(["init", "--name", n, "--no-passphrase", "--no-profile"])
            .assert()
            .success();
    }
    rz(&a).args(["post", "first"]).assert().success();
    let bundle1 = dir.path().join("1.bundle");
    rz(&a)
        .args(["export", "--all", "--to"])
        .arg(&bundle1)
        .assert()
        .success();
    rz(&b).arg("import").arg(&bundle1).assert().success();
    let a_id = json(&a, &["whoami"])["instance_id"]
        .as_str()
        .unwrap()
        .to_string();

    rz(&a).args(["post", "second"]).assert().success();
    let bundle2 = dir.path().join("2.bundle");
    rz(&a)
        .args(["export", "--all", "--to"])
        .arg(&bundle2)
        .assert()
        .success();

    assert_eq!(json(&b, &["block", &a_id])["trust"], "blocked");
    let log_before = rz(&b).args(["log", "--json"]).output().unwrap().stdout;
    let out = rz(&b).arg("import").arg(&bundle2).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("blocked"));
    assert_eq!(
        rz(&b).args(["log", "--json"]).output().unwrap().stdout,
        log_before
    );
    let peers = json(&b, &["peers"]);
    assert_eq!(peers[0]["trust"], "blocked");

    // A bundle whose manifest claims the blocked instance's id with another key (signed by
    // that key): refused whole, whatever id it claims, nothing stored.
    let impostor = impostor_bundle(&bundle2, &rhizome_core::SecretKey::from_seed(&[9; 32]));
    let fake = dir.path().join("impostor.bundle");
    std::fs::write(&fake, impostor).unwrap();
    let out = rz(&b).arg("import").arg(&fake).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(err.contains("does not belong to its public key"), "{err}");
    assert_eq!(
        rz(&b).args(["log", "--json"]).output().unwrap().stdout,
        log_before
    );
    assert_eq!(json(&b, &["peers"]), peers);

    json(&b, &["unblock", &a_id]);
    let report = json(&b, &["import", bundle2.to_str().unwrap()]);
    assert_eq!(
        (report["new"].as_u64(), report["duplicate"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(json(&b, &["trust", &a_id])["trust"], "trusted");
}

#[test]
fn trust_commands_refuse_unknown_and_malformed_ids() {
    let dir = tempfile::tempdir().unwrap();
    rz(dir.path())
        .args(["init", "--name", "x", "--no-passphrase"])
        .assert()
        .success();
    for args in [
        ["trust", "00000000000000000000000000000000"],
        ["trust", "not-an-id"],
        ["block", "not-an-id"],
        ["unblock", "ABCDEF"],
    ] {
        let out = rz(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("instance") && !err.contains("panicked"),
            "{err}"
        );
    }
}

fn lines(home: &Path, args: &[&str]) -> usize {
    let out = rz(home).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_blocked_author_is_dropped_hidden_not_relayed_and_purgeable() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = three_homes(dir.path());
    let author = json(&a, &["whoami"])["authors"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    rz(&a).args(["post", "one"]).assert().success();
    rz(&a).args(["post", "two"]).assert().success();
    let b1 = dir.path().join("1.bundle");
    rz(&a)
        .args(["export", "--all", "--to"])
        .arg(&b1)
        .assert()
        .success();
    rz(&b).arg("import").arg(&b1).assert().success();
    json(&b, &["follow", &author]);
    assert_eq!(json(&b, &["feed"])["items"].as_array().unwrap().len(), 2);

    assert_eq!(json(&b, &["block-author", &author])["changed"], true);
    assert_eq!(
        json(&b, &["feed"])["items"].as_array().unwrap().len(),
        0,
        "hidden from views"
    );
    assert_eq!(lines(&b, &["log", "--json"]), 2, "kept in the log");
    rz(&b).args(["views", "check"]).assert().success();

    // New events of a blocked author are dropped whoever carries them.
    rz(&a).args(["post", "three"]).assert().success();
    let b2 = dir.path().join("2.bundle");
    rz(&a)
        .args(["export", "--all", "--to"])
        .arg(&b2)
        .assert()
        .success();
    let report = json(&b, &["import", b2.to_str().unwrap()]);
    assert_eq!(
        (report["blocked"].as_u64(), report["new"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(lines(&b, &["log", "--json"]), 2);

    // Not relayed.
    let relay = dir.path().join("relay.bundle");
    rz(&b)
        .args(["export", "--all", "--to"])
        .arg(&relay)
        .assert()
        .success();
    rz(&c).arg("import").arg(&relay).assert().success();
    assert_eq!(lines(&c, &["log", "--json"]), 0);

    // Unblocking shows them again; purging removes them and says how many.
    json(&b, &["unblock-author", &author]);
    assert_eq!(json(&b, &["feed"])["items"].as_array().unwrap().len(), 2);
    let purged = json(&b, &["block-author", &author, "--purge"]);
    assert_eq!(purged["purged_events"], 2);
    assert_eq!(lines(&b, &["log", "--json"]), 0);
    rz(&b).arg("verify").assert().success();
    rz(&b).args(["views", "check"]).assert().success();
    let out = rz(&b).args(["block-author", "not-a-key"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn our_own_bundle_coming_back_is_not_quarantined_nor_a_peer() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    strict(&a)
        .args([
            "init",
            "--name",
            "school",
            "--no-passphrase",
            "--no-profile",
        ])
        .assert()
        .success();
    strict(&a).args(["post", "hi"]).assert().success();
    let bundle = dir.path().join("own.bundle");
    strict(&a)
        .args(["export", "--all", "--to"])
        .arg(&bundle)
        .assert()
        .success();
    let report = strict_json(&a, &["import", bundle.to_str().unwrap()]);
    assert_eq!(
        (report["new"].as_u64(), report["duplicate"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(strict_json(&a, &["peers"]).as_array().unwrap().len(), 0);
    assert_eq!(strict_json(&a, &["pending"]).as_array().unwrap().len(), 0);
}
