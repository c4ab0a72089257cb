//! Issue 10 hardening, end to end through the `rhizome` binary: private file modes, no raw
//! control characters from stored text in human output, exclusive temporary files, one read of
//! every input, truncated bundles held in quarantine, dates in `peers`.
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The default policy: unknown instances' bundles wait in quarantine.
fn rz(home: &Path) -> Command {
    let mut c = Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
        .env_remove("RHIZOME_BUNDLE_PASSPHRASE")
        .arg("--home")
        .arg(home);
    c
}

/// `rhizome --home HOME ARGS` under `umask 022`, as a person's shell usually has it.
fn rz_umask022(home: &Path, args: &[&str]) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("rhizome");
    std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(bin)
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
        .output()
        .unwrap()
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

fn init(home: &Path, name: &str) {
    rz(home)
        .args(["init", "--name", name, "--no-passphrase"])
        .assert()
        .success();
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Every file and directory under `dir` (not following links).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            all.extend(walk(&p));
        }
        all.push(p);
    }
    all
}

fn assert_private(home: &Path) {
    assert_eq!(mode(home), 0o700, "{}", home.display());
    for p in walk(home) {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
    }
}

fn export_all(home: &Path, to: &Path) {
    rz(home)
        .args(["export", "--all", "--to"])
        .arg(to)
        .assert()
        .success();
}

fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", p.display());
}

#[test]
fn a_new_home_and_every_file_in_it_are_private_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b").join("nested"));
    for (h, n) in [(&a, "school"), (&b, "ship")] {
        let out = rz_umask022(h, &["init", "--name", n, "--no-passphrase"]);
        assert!(out.status.success(), "{out:?}");
        // Nothing to tighten in a home just made: no notice.
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("private"),
            "{out:?}"
        );
    }
    let out = rz_umask022(&a, &["post", "hello"]);
    assert!(out.status.success(), "{out:?}");
    assert_private(&a);
    assert_eq!(mode(&a.join("rhizome.db")), 0o600);

    // A held bundle (quarantine) is private too.
    let bundle = dir.path().join("a.bundle");
    export_all(&a, &bundle);
    let out = rz_umask022(&b, &["import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(b.join("quarantine").is_dir());
    assert!(walk(&b.join("quarantine")).iter().any(|p| p.is_file()));
    assert_private(&b);

    // The WAL and shared-memory files SQLite makes while a command runs take the database's
    // mode: an import blocked reading a FIFO holds the store open.
    let fifo = dir.path().join("slow.fifo");
    mkfifo(&fifo);
    let bin = assert_cmd::cargo::cargo_bin("rhizome");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(bin)
        .arg("--home")
        .arg(&b)
        .arg("import")
        .arg(&fifo)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (wal, shm) = (b.join("rhizome.db-wal"), b.join("rhizome.db-shm"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(wal.exists() && shm.exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no -wal/-shm appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(mode(&shm), 0o600);
    // Serve the bundle and let the import finish.
    std::fs::write(&fifo, std::fs::read(&bundle).unwrap()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_private(&b);
}

#[test]
fn an_existing_home_with_looser_modes_is_tightened_on_open_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    init(&a, "school");
    init(&b, "ship");
    let bundle = dir.path().join("a.bundle");
    export_all(&a, &bundle);
    rz(&b).arg("import").arg(&bundle).assert().success();
    let blob = walk(&b.join("quarantine"))
        .into_iter()
        .find(|p| p.is_file())
        .unwrap();
    // As an older rhizome (or a copy) left it.
    chmod(&b, 0o755);
    chmod(&b.join("rhizome.db"), 0o644);
    chmod(&b.join("quarantine"), 0o755);
    chmod(&blob, 0o644);

    let out = rz(&b).arg("pending").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for p in [&b, &b.join("rhizome.db"), &b.join("quarantine"), &blob] {
        assert!(err.contains(&p.display().to_string()), "{err}");
    }
    assert_private(&b);
    // Once tightened, nothing more to say.
    let out = rz(&b).arg("pending").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Human output of `args` in `home` (must succeed): stdout and stderr.
fn human(home: &Path, args: &[&str]) -> String {
    let out = rz(home).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = out.stdout;
    all.extend(out.stderr);
    String::from_utf8(all).unwrap()
}

fn assert_no_raw_controls(what: &str, text: &str) {
    for bad in ['\x1b', '\x07', '\u{202e}', '\u{2066}', '\r'] {
        assert!(
            !text.contains(bad),
            "{what}: raw {:?} in output:\n{text}",
            bad
        );
    }
}

#[test]
fn stored_text_from_another_home_never_reaches_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    // An instance name may not hold controls, but a bidi override passes its check.
    rz(&a)
        .args([
            "init",
            "--name",
            "evil\u{202e}gpj.exe",
            "--author",
            "eve",
            "--no-passphrase",
        ])
        .assert()
        .success();
    init(&b, "ship");
    let hostile = "hi\x1b]0;pwned\x07\x1b[2J \u{202e}txet\u{2066}\r\n2026-01-01 00:00  fake (0000)  forged line";
    let post = json(&a, &["post", hostile])["hash"]
        .as_str()
        .unwrap()
        .to_string();
    json(&a, &["comment", &post, "reply \x1b[31mred\x1b[0m"]);
    let author = json(&a, &["whoami"])["authors"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let bundle = dir.path().join("a.bundle");
    export_all(&a, &bundle);
    rz(&b)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("import")
        .arg(&bundle)
        .assert()
        .success();
    json(&b, &["follow", &author]);

    for args in [&["feed"][..], &["thread", &post], &["log"], &["peers"]] {
        let shown = human(&b, args);
        assert_no_raw_controls(&format!("{args:?}"), &shown);
        if args[0] == "peers" {
            assert!(shown.contains("evil\\u202egpj.exe"), "{shown}");
        } else {
            assert!(
                shown.contains("hi\\u001b]0;pwned\\u0007\\u001b[2J"),
                "{args:?}: {shown}"
            );
            assert!(shown.contains("\\u202etxet\\u2066"), "{args:?}: {shown}");
        }
        // The forged line never starts a line of its own.
        assert!(
            !shown.lines().any(|l| l.starts_with("2026-01-01")),
            "{args:?}: {shown}"
        );
    }
    assert!(human(&b, &["thread", &post]).contains("\\u001b[31mred\\u001b[0m"));
    // JSON keeps the exact text.
    let feed = json(&b, &["feed"]);
    assert_eq!(feed["items"][0]["text"], hostile, "{feed}");
    let thread = json(&b, &["thread", &post]);
    assert_eq!(thread["root"]["text"], hostile);
    assert_eq!(thread["replies"][0]["text"], "reply \x1b[31mred\x1b[0m");
    let peers = json(&b, &["peers"]);
    assert_eq!(peers[0]["name"], "evil\u{202e}gpj.exe");
}

/// `bundle` without its last line (the trailer): a half-copied file.
fn truncate_trailer(bundle: &Path, to: &Path) {
    let bytes = std::fs::read(bundle).unwrap();
    let body = &bytes[..bytes.len() - 1];
    let cut = body.iter().rposition(|&b| b == b'\n').unwrap() + 1;
    std::fs::write(to, &bytes[..cut]).unwrap();
}

#[test]
fn a_truncated_bundle_from_an_unknown_instance_is_held_and_said_to_be_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    init(&a, "school");
    init(&b, "ship");
    init(&c, "hub");
    for i in 0..3 {
        json(&a, &["post", &format!("post {i}")]);
    }
    let (whole, cut) = (dir.path().join("a.bundle"), dir.path().join("cut.bundle"));
    export_all(&a, &whole);
    truncate_trailer(&whole, &cut);

    // The trusted path: the exit code a truncated bundle gets.
    let trusted = rz(&c)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("import")
        .arg(&cut)
        .output()
        .unwrap();
    let truncated_code = trusted.status.code().unwrap();
    assert_eq!(truncated_code, 7, "{trusted:?}");

    // Held: the same code, and the summary says so.
    let out = rz(&b).arg("import").arg(&cut).output().unwrap();
    assert_eq!(out.status.code(), Some(truncated_code), "{out:?}");
    let shown = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(shown.contains("Held in quarantine"), "{shown}");
    assert!(shown.contains("truncated: no trailer"), "{shown}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("truncated: no trailer"),
        "{out:?}"
    );
    let pending = human(&b, &["pending"]);
    assert!(
        pending.contains("INCOMPLETE (truncated: no trailer)"),
        "{pending}"
    );
    let listed = json(&b, &["pending"]);
    assert_eq!(listed[0]["incomplete"], "truncated: no trailer", "{listed}");

    // --json of the import says it too, with the same exit code.
    let d = dir.path().join("d");
    init(&d, "dock");
    let out = rz(&d)
        .args(["import", "--json"])
        .arg(&cut)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(truncated_code), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "quarantined");
    assert_eq!(v["held"]["incomplete"], "truncated: no trailer", "{v}");

    // A whole bundle is held with nothing to say, and exit 0.
    let out = rz(&d)
        .args(["import", "--json"])
        .arg(&whole)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["held"]["incomplete"], serde_json::Value::Null, "{v}");
}

/// `YYYY-MM-DD HH:MM:SS` for seconds since the epoch (civil date, Howard Hinnant's algorithm).
fn civil(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn peers_shows_the_last_exchange_as_a_local_date_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    init(&a, "school");
    init(&b, "ship");
    let bundle = dir.path().join("a.bundle");
    export_all(&a, &bundle);
    rz(&b)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("import")
        .arg(&bundle)
        .assert()
        .success();
    // JSON keeps milliseconds.
    let peers = json(&b, &["peers"]);
    let ms = peers[0]["last_exchange_at"].as_u64().unwrap();
    assert!(ms > 1_600_000_000_000, "{peers}");
    let secs = (ms / 1000) as i64;
    for (tz, offset, shown) in [
        ("UTC0", 0, "+00:00"),
        ("<+0530>-5:30", 5 * 3600 + 1800, "+05:30"),
        ("<-03>3", -3 * 3600, "-03:00"),
    ] {
        let out = rz(&b).env("TZ", tz).arg("peers").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let want = format!("at {} {shown}", civil(secs + offset));
        assert!(text.contains(&want), "TZ={tz}: want {want:?} in\n{text}");
        assert!(!text.contains(&ms.to_string()), "{text}");
    }
}

/// Waits for `child` at most `secs` seconds; kills it and fails when it does not finish (an
/// import that opened its input a second time would wait for a writer forever).
fn wait_or_kill(mut child: std::process::Child, secs: u64) -> std::process::Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {secs} s (a second open of its input?): {out:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `rz(home)` as a `std::process::Command`, started with its output captured.
fn spawn(home: &Path, env: &[(&str, &str)], args: &[&std::ffi::OsStr]) -> std::process::Child {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("rhizome"));
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
        .env_remove("RHIZOME_BUNDLE_PASSPHRASE")
        .envs(env.iter().copied())
        .arg("--home")
        .arg(home)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn texts(home: &Path) -> Vec<String> {
    let out = rz(home).args(["log", "--json"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["payload"]["text"].as_str().map(str::to_string)
        })
        .collect()
}

#[test]
fn an_import_from_a_fifo_reads_one_bundle_once_and_decides_on_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let (a, u, b) = (
        dir.path().join("a"),
        dir.path().join("u"),
        dir.path().join("b"),
    );
    init(&a, "school");
    init(&u, "stranger");
    init(&b, "ship");
    json(&a, &["post", "from the school"]);
    json(&u, &["post", "from a stranger"]);
    let (first, second) = (dir.path().join("a1.bundle"), dir.path().join("u.bundle"));
    export_all(&a, &first);
    export_all(&u, &second);
    // B trusts the school.
    rz(&b)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("import")
        .arg(&first)
        .assert()
        .success();
    json(&a, &["post", "more from the school"]);
    let trusted = dir.path().join("a2.bundle");
    export_all(&a, &trusted);

    // The FIFO serves the trusted bundle to its first reader, and the stranger's to a second
    // one if the import ever opens it again (it would wait for a writer until then).
    let fifo = dir.path().join("swap.fifo");
    mkfifo(&fifo);
    let (fifo_w, trusted_bytes) = (fifo.clone(), std::fs::read(&trusted).unwrap());
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo_w)
            .unwrap();
        std::io::Write::write_all(&mut f, &trusted_bytes).unwrap();
    });
    let mut child = spawn(&b, &[], &["import".as_ref(), fifo.as_os_str()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    writer.join().unwrap();
    let opened_again = child.try_wait().unwrap().is_none();
    if opened_again {
        // Still running: it opened the FIFO again. Serve it the stranger's bundle.
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let _ = std::io::Write::write_all(&mut f, &std::fs::read(&second).unwrap());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        !opened_again,
        "the import opened its input a second time: {out:?}"
    );
    assert!(out.status.success(), "{out:?}");
    // Nobody has the FIFO open for reading any more (a non-blocking open for writing fails
    // with ENXIO).
    let probe = std::os::unix::fs::OpenOptionsExt::custom_flags(
        std::fs::OpenOptions::new().write(true),
        0o4000, // O_NONBLOCK
    )
    .open(&fifo);
    assert_eq!(probe.err().and_then(|e| e.raw_os_error()), Some(6), "ENXIO");

    let stored = texts(&b);
    assert!(
        stored.contains(&"more from the school".to_string()),
        "{stored:?}"
    );
    assert!(
        !stored.contains(&"from a stranger".to_string()),
        "{stored:?}"
    );
    assert_eq!(json(&b, &["pending"]), serde_json::json!([]));
}

#[test]
fn a_passphrase_encrypted_bundle_imports_from_a_fifo() {
    use age::secrecy::SecretString;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    init(&a, "school");
    init(&b, "ship");
    json(&a, &["post", "sealed with a passphrase"]);
    let plain = dir.path().join("a.bundle");
    export_all(&a, &plain);
    let mut recipient = age::scrypt::Recipient::new(SecretString::from("correct horse".to_owned()));
    recipient.set_work_factor(12);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let mut sealed = Vec::new();
    let mut w = encryptor.wrap_output(&mut sealed).unwrap();
    std::io::Write::write_all(&mut w, &std::fs::read(&plain).unwrap()).unwrap();
    w.finish().unwrap();

    // Served once: a second open would wait for a writer that never comes.
    let fifo = dir.path().join("sealed.fifo");
    mkfifo(&fifo);
    let fifo_w = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo_w)
            .unwrap();
        let _ = std::io::Write::write_all(&mut f, &sealed);
    });
    let out = wait_or_kill(
        spawn(
            &b,
            &[
                ("RHIZOME_TRUST_ON_FIRST_USE", "1"),
                ("RHIZOME_BUNDLE_PASSPHRASE", "correct horse"),
            ],
            &["import".as_ref(), fifo.as_os_str()],
        ),
        120,
    );
    writer.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(texts(&b).contains(&"sealed with a passphrase".to_string()));
}

#[test]
fn approve_uses_the_held_blob_under_the_home_and_refuses_an_altered_one() {
    let dir = tempfile::tempdir().unwrap();
    let (work, elsewhere) = (dir.path().join("work"), dir.path().join("elsewhere"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(elsewhere.join("quarantine")).unwrap();
    let (a, u, c) = (
        dir.path().join("a"),
        dir.path().join("u"),
        dir.path().join("c"),
    );
    init(&a, "school");
    init(&u, "stranger");
    init(&c, "hub");
    json(&a, &["post", "held then approved"]);
    json(&u, &["post", "planted by a stranger"]);
    json(&c, &["post", "from the hub"]);
    let (ab, ub, cb) = (
        dir.path().join("a.bundle"),
        dir.path().join("u.bundle"),
        dir.path().join("c.bundle"),
    );
    export_all(&a, &ab);
    export_all(&u, &ub);
    export_all(&c, &cb);

    // A relative home, used from `work`.
    let rel = |cwd: &Path, home: &str| {
        let mut c = Command::cargo_bin("rhizome").unwrap();
        c.env_remove("RHIZOME_PASSPHRASE")
            .env_remove("RHIZOME_HOME")
            .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
            .current_dir(cwd)
            .args(["--home", home]);
        c
    };
    rel(&work, "h")
        .args(["init", "--name", "ship", "--no-passphrase"])
        .assert()
        .success();
    let held_id = |bundle: &Path| {
        let out = rel(&work, "h")
            .args(["import", "--json"])
            .arg(bundle)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["held"]["id"].as_str().unwrap().to_string()
    };
    let (a_id, c_id) = (held_id(&ab), held_id(&cb));
    let home = work.join("h");
    let blobs: Vec<PathBuf> = walk(&home.join("quarantine"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(blobs.len(), 2, "{blobs:?}");

    // From elsewhere, files planted under every name a held copy has or once had.
    let planted = std::fs::read(&ub).unwrap();
    for name in [format!("{a_id}.bundle"), format!("{c_id}.bundle")]
        .into_iter()
        .chain(
            blobs
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned()),
        )
    {
        std::fs::write(elsewhere.join("quarantine").join(&name), &planted).unwrap();
        std::fs::write(elsewhere.join(&name), &planted).unwrap();
    }
    let out = rel(&elsewhere, "../work/h")
        .args(["approve", &a_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stored = texts(&home);
    assert!(
        stored.contains(&"held then approved".to_string()),
        "{stored:?}"
    );
    assert!(
        !stored.contains(&"planted by a stranger".to_string()),
        "{stored:?}"
    );

    // The hub's held copy altered on disk: refused, nothing applied, the hub not trusted.
    let c_blob = walk(&home.join("quarantine"))
        .into_iter()
        .find(|p| p.is_file())
        .unwrap();
    let mut bytes = std::fs::read(&c_blob).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&c_blob, &bytes).unwrap();
    let out = rel(&elsewhere, "../work/h")
        .args(["approve", &c_id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("altered"), "{err}");
    let stored = texts(&home);
    assert!(!stored.contains(&"from the hub".to_string()), "{stored:?}");
    let peers = json(&home, &["peers"]);
    assert!(
        !peers
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "hub" && p["trust"] == "trusted"),
        "{peers}"
    );
    // Still held, for a person to reject.
    assert_eq!(json(&home, &["pending"])[0]["id"], c_id.as_str());
}
