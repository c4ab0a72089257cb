//! `rhizome demo` runs end to end and leaves two explorable homes that really exchanged data.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;

fn rz() -> Command {
    let mut c = Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE");
    c
}

#[test]
fn the_demo_exchanges_posts_through_quarantine_and_leaves_the_homes() {
    let dir = tempfile::tempdir().unwrap();
    let out = rz()
        .arg("demo")
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "Held in quarantine",
        "approve",
        "Good news reaches us at sea.",
        "age-encrypted (opened with this instance's key), zstd-compressed",
        "Would export 1 events",
        "listening on https://127.0.0.1:",
        "/school ui",
        "/ship ui",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // The ship holds the school's post; the school's thread holds the ship's reply.
    let home = |h: &str| dir.path().join(h);
    let ship_log = rz()
        .arg("--home")
        .arg(home("ship"))
        .args(["log", "--json"])
        .output()
        .unwrap();
    let ship_log = String::from_utf8_lossy(&ship_log.stdout);
    assert!(ship_log.contains("The well is fixed!"));
    // Step 9: the post written after the last stick reached the ship over HTTPS.
    assert!(ship_log.contains("Football match on Saturday."));
    // The circle-only post reached the ship (it hosts Ben) inside an encrypted stick: the
    // stick's bytes hold neither it nor any other text.
    assert!(ship_log.contains("parcel is waiting"));
    for stick in ["for-ship.bundle", "for-school.bundle"] {
        let raw = std::fs::read(dir.path().join("stick").join(stick)).unwrap();
        assert!(raw.starts_with(b"age-encryption.org/v1\n"), "{stick}");
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !text.contains("parcel") && !text.contains("Good news"),
            "{stick}"
        );
    }
    for h in ["school", "ship"] {
        rz().arg("--home")
            .arg(home(h))
            .arg("verify")
            .assert()
            .success();
        rz().arg("--home")
            .arg(home(h))
            .args(["views", "check"])
            .assert()
            .success();
    }
    // A second run refuses to overwrite the first.
    let again = rz()
        .arg("demo")
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a demo"));
}
