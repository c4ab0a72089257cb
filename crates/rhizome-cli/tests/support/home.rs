//! Homes made and compared through the real `rhizome` binary, and `rhizome serve` run as a
//! child process in its own process group (always killed when its guard drops).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `rhizome` binary with no inherited home, store, passphrase or trust policy.
pub fn rhizome() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("rhizome"));
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env_remove("RHIZOME_STORE")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
        .stdin(Stdio::null());
    c
}

/// `rhizome --home HOME`, trusting unknown instances on first use (the tests are about the
/// transport, not the trust rules).
pub fn rz(home: &Path) -> Command {
    let mut c = rhizome();
    c.env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("--home")
        .arg(home);
    c
}

pub fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?}\n  status: {:?}\n  stdout: {}\n  stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, asserts exit 0 and no panic, returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let d = describe(cmd, &out);
    assert!(!d.contains("panicked"), "panic: {d}");
    assert_eq!(out.status.code(), Some(0), "expected success: {d}");
    String::from_utf8(out.stdout).unwrap()
}

pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

pub fn init(home: &Path, name: &str) {
    ok(rz(home).args(["init", "--name", name, "--no-passphrase"]));
}

/// `n` posts by the home's author, "NAME post I".
pub fn posts(home: &Path, n: usize, name: &str) {
    for i in 0..n {
        ok(rz(home).args(["post", &format!("{name} post {i}")]));
    }
}

/// The home's instance id (32 hex).
pub fn instance_id(home: &Path) -> String {
    let w = json_of(&ok(rz(home).args(["whoami", "--json"])));
    w["instance_id"].as_str().unwrap().to_string()
}

/// A home holding `events` events in `feeds` feeds, made fast by `rhizome bench bundle`
/// (DIR/source); returns (home, DIR/full.bundle).
pub fn big_home(dir: &Path, events: u64, feeds: u64) -> (PathBuf, PathBuf) {
    ok(rhizome().args([
        "bench",
        "bundle",
        "--events",
        &events.to_string(),
        "--feeds",
        &feeds.to_string(),
        "--dir",
        dir.to_str().unwrap(),
    ]));
    (dir.join("source"), dir.join("full.bundle"))
}

/// Every event of the home, one canonical JSON line each, sorted (feeds are listed in the
/// order a home first saw them, so two homes holding the same events compare equal as sets).
pub fn log_set(home: &Path) -> Vec<String> {
    log_set_of(rz(home))
}

/// `log_set` of any `rhizome` command line naming a home or a store.
pub fn log_set_of(mut c: Command) -> Vec<String> {
    let text = ok(c.args(["log", "--json"]));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort_unstable();
    lines
}

/// Asserts that the home's chains verify and its views equal a rebuild.
pub fn check_home(home: &Path) {
    let v = json_of(&ok(rz(home).args(["verify", "--json"])));
    assert_eq!(v["ok"], true, "{}: {v}", home.display());
    ok(rz(home).args(["views", "check"]));
}

/// Asserts that every home holds exactly the same events, that those are `expected` in
/// number when given, and that each verifies.
pub fn assert_converged(homes: &[&Path], expected: Option<usize>) {
    let sets: Vec<(String, Vec<String>)> = homes
        .iter()
        .map(|h| (h.display().to_string(), log_set(h)))
        .collect();
    assert_same_events(&sets, expected);
    for h in homes {
        check_home(h);
    }
}

/// Asserts that every named log set is the same, and `expected` long when given.
pub fn assert_same_events(sets: &[(String, Vec<String>)], expected: Option<usize>) {
    let (name0, first) = &sets[0];
    if let Some(n) = expected {
        assert_eq!(first.len(), n, "{name0} holds {} events", first.len());
    }
    for (name, other) in &sets[1..] {
        if other != first {
            let a: std::collections::BTreeSet<_> = first.iter().collect();
            let b: std::collections::BTreeSet<_> = other.iter().collect();
            panic!(
                "{name0} ({} events) and {name} ({} events) differ: {} only in the first, {} \
                 only in the second",
                first.len(),
                other.len(),
                a.difference(&b).count(),
                b.difference(&a).count()
            );
        }
    }
}

/// `rhizome --home HOME sync URL ARGS --json`: the output, whatever the exit code.
pub fn sync(home: &Path, url: &str, args: &[&str]) -> Output {
    let mut c = rz(home);
    c.arg("sync").arg(url).args(args).arg("--json");
    c.output().unwrap()
}

/// Runs `sync` until one run exits 0, at most `runs` times; returns how many runs it took.
/// Panics (with every run's stderr) when none succeeded, or on a panic in any run.
pub fn sync_until_ok(home: &Path, url: &str, args: &[&str], runs: usize) -> usize {
    let mut failures = Vec::new();
    for run in 1..=runs {
        let mut c = rz(home);
        c.arg("sync").arg(url).args(args).arg("--json");
        let out = c.output().unwrap();
        let d = describe(&c, &out);
        assert!(!d.contains("panicked"), "panic: {d}");
        if out.status.success() {
            return run;
        }
        failures.push(d);
    }
    panic!(
        "{runs} sync runs, none succeeded:\n{}",
        failures.join("\n---\n")
    );
}

/// A running `rhizome serve`, killed (SIGKILL to its process group) when dropped.
pub struct Server {
    child: Option<Child>,
    pub pid: u32,
    pub url: String,
    pub addr: SocketAddr,
    pub instance: String,
    stderr: PathBuf,
}

impl Server {
    /// `rhizome --home HOME serve --listen 127.0.0.1:0 ARGS`, with trust on first use.
    pub fn start(home: &Path, args: &[&str]) -> Server {
        let mut c = rz(home);
        c.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Server::spawn(c, &home.with_extension(format!("serve{n}.stderr")))
    }

    /// Starts `cmd` (a `rhizome ... serve ...` command line, possibly behind `ip netns exec`),
    /// stderr to `stderr`, and waits up to 60 s for its line
    /// `listening on https://ADDR:PORT instance ID`.
    pub fn spawn(mut cmd: Command, stderr: &Path) -> Server {
        let err = std::fs::File::create(stderr).unwrap();
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The first line is the address; the rest is drained so the server never blocks
            // on a full pipe.
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let mut server = Server {
            child: Some(child),
            pid,
            url: String::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
            instance: String::new(),
            stderr: stderr.to_path_buf(),
        };
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(e) => panic!(
                "{cmd:?}: no `listening on` line ({e}); stderr: {}",
                server.stderr_text()
            ),
        };
        let (url, instance) = parse_listening(&line)
            .unwrap_or_else(|| panic!("unexpected first line of serve: {line:?}"));
        server.addr = url
            .strip_prefix("https://")
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("address in {line:?}: {e}"));
        server.url = url;
        server.instance = instance;
        server
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Peak resident set (VmHWM) so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmHWM:")
            .unwrap_or_else(|| panic!("no VmHWM for pid {}", self.pid))
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_some(),
            None => true,
        }
    }

    /// SIGKILL to the process group, then reaps the server.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.pid)])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `listening on https://ADDR:PORT instance <32 hex>` into (`https://ADDR:PORT`, id).
pub fn parse_listening(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("listening on ")?;
    let (url, id) = rest.split_once(" instance ")?;
    if !url.starts_with("https://") || id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    Some((url.to_string(), id.to_string()))
}

/// A `/proc/PID/status` field in KiB (e.g. "VmHWM:", "VmRSS:").
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Waits until `f` holds, at most `max`; returns whether it did.
pub fn wait_for(max: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < max {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A home named `name` whose instance migrated `users` users with `posts` posts each (plus a
/// PROFILE per user): many events of its own, fast, under a fresh instance key.
pub fn migrated_home(dir: &Path, name: &str, users: usize, posts: usize) -> PathBuf {
    use std::io::Write;
    let home = dir.join(name);
    init(&home, name);
    let records = dir.join(format!("{name}.records.jsonl"));
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&records).unwrap());
        for u in 0..users {
            writeln!(
                w,
                r#"{{"kind":"user","id":"u{u}","name":"{name} user {u}"}}"#
            )
            .unwrap();
        }
        for i in 0..posts {
            for u in 0..users {
                writeln!(
                    w,
                    r#"{{"kind":"post","id":"p{u}-{i}","user":"u{u}","text":"{name}: post {i} by user {u}","at":{}}}"#,
                    1_700_000_000_000u64 + i as u64
                )
                .unwrap();
            }
        }
        w.flush().unwrap();
    }
    ok(rz(&home)
        .args(["--json", "migrate", "--from"])
        .arg(&records));
    std::fs::remove_file(&records).unwrap();
    home
}
