//! `rhizome demo`: two instances that never meet on a network exchange posts on a "stick",
//! then sync over HTTPS on loopback when a network appears, narrated step by step with the
//! commands a person would type. Runs the real binary for every step, so what it shows is what
//! the commands do.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Demo {
    exe: PathBuf,
    dir: PathBuf,
}

impl Demo {
    /// Runs `rhizome --home DIR/<home> args...`, printing the command and its output.
    fn run(&self, home: &str, args: &[&str]) -> Result<String> {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(' ') || a.contains('!') {
                    format!("\"{a}\"")
                } else {
                    a.to_string()
                }
            })
            .collect();
        say!("  $ rhizome --home {home} {}", shown.join(" "));
        let out = self.raw(home, args)?;
        for line in out.lines() {
            say!("    {line}");
        }
        Ok(out)
    }

    /// Runs quietly and parses `--json` output.
    fn json(&self, home: &str, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.push("--json");
        Ok(serde_json::from_str(&self.raw(home, &all)?)?)
    }

    fn raw(&self, home: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.exe)
            .current_dir(&self.dir)
            .env_remove("RHIZOME_PASSPHRASE")
            .env_remove("RHIZOME_HOME")
            .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
            .arg("--home")
            .arg(self.dir.join(home))
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.exe.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(
            out.status.success(),
            "demo step `rhizome {}` failed:\n{text}",
            args.join(" ")
        );
        Ok(text.trim_end().to_string())
    }

    /// Approves the one bundle `home` holds in quarantine, as a person would after
    /// `rhizome pending`.
    fn approve_held(&self, home: &str) -> Result<()> {
        let held = self.json(home, &["pending"])?;
        let id = held
            .get(0)
            .and_then(|h| h.get("id"))
            .and_then(Value::as_str)
            .context("nothing held in quarantine")?
            .to_string();
        self.run(home, &["approve", &id])?;
        Ok(())
    }

    /// Starts `rhizome serve` for `home` on a free loopback port: the child and its URL.
    fn serve(&self, home: &str) -> Result<(std::process::Child, String)> {
        use std::io::BufRead as _;
        let mut child = Command::new(&self.exe)
            .current_dir(&self.dir)
            .env_remove("RHIZOME_PASSPHRASE")
            .env_remove("RHIZOME_HOME")
            .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
            .arg("--home")
            .arg(self.dir.join(home))
            .args(["serve", "--listen", "127.0.0.1:0", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("running {}", self.exe.display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let url = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("url").and_then(Value::as_str).map(str::to_string));
        match url {
            Some(u) => Ok((child, u)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("`rhizome serve` did not start: {line:?}")
            }
        }
    }

    fn step(&self, title: &str) -> Result<()> {
        say!();
        say!("== {title}");
        Ok(())
    }
}

fn first_hash(v: &Value) -> Result<String> {
    v.get("hash")
        .and_then(Value::as_str)
        .map(str::to_string)
        .context("no hash in output")
}

/// Runs the demo in `dir` (created; must not hold a previous demo).
pub fn run(dir: Option<&Path>) -> Result<()> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("rhizome-demo-{}", std::process::id())),
    };
    anyhow::ensure!(
        !dir.join("school").exists() && !dir.join("ship").exists(),
        "{} already holds a demo; pass another --dir",
        dir.display()
    );
    std::fs::create_dir_all(dir.join("stick"))?;
    let d = Demo {
        exe: std::env::current_exe()?,
        dir: dir.clone(),
    };
    say!(
        "Rhizome demo in {} (homes `school` and `ship`, a `stick` folder)",
        dir.display()
    );

    d.step("1. Two instances: a village school and a ship. Keys stay unencrypted for the demo.")?;
    d.run(
        "school",
        &[
            "init",
            "--name",
            "Village school",
            "--author",
            "ana",
            "--no-passphrase",
        ],
    )?;
    d.run(
        "ship",
        &[
            "init",
            "--name",
            "Ship Aurora",
            "--author",
            "ben",
            "--no-passphrase",
        ],
    )?;

    let id_of = |home: &str| -> Result<String> {
        Ok(d.json(home, &["whoami"])?["instance_id"]
            .as_str()
            .context("no instance id")?
            .to_string())
    };
    let (school_id, ship_id) = (id_of("school")?, id_of("ship")?);
    let ben = d.json("ship", &["whoami"])?["authors"][0]["public_key"]
        .as_str()
        .context("no author")?
        .to_string();

    d.step("2. The ship introduces itself: a first stick with its news. Its manifest carries the ship's encryption key and proves that it hosts Ben.")?;
    d.run(
        "ship",
        &["post", "Leaving port tomorrow, back in three weeks."],
    )?;
    d.run("ship", &["export", "--all", "--to", "stick/hello.bundle"])?;
    d.run("school", &["import", "stick/hello.bundle"])?;
    d.approve_held("school")?;

    d.step("3. The school writes: a post, a comment by a second author, a star, and a post only the circle `sailors` (Ben) may read.")?;
    let post = first_hash(&d.json(
        "school",
        &["post", "The well is fixed! Water for everyone from Monday."],
    )?)?;
    d.run("school", &["author", "add", "caro"])?;
    d.run(
        "school",
        &["--as", "caro", "comment", &post[..12], "Thank you, Ana!"],
    )?;
    d.run("school", &["star", &post[..12]])?;
    d.run("school", &["circle", "create", "sailors", &ben])?;
    d.run(
        "school",
        &[
            "post",
            "--circle",
            "sailors",
            "Ben, your sister's parcel is waiting here.",
        ],
    )?;

    d.step("4. Export for the ship, compressed and encrypted to it: whoever finds the stick reads nothing. The ship looks at it without importing.")?;
    d.run(
        "school",
        &[
            "export",
            "--for",
            &ship_id,
            "--encrypt-to",
            &ship_id,
            "--compress",
            "--to",
            "stick/for-ship.bundle",
        ],
    )?;
    d.run("ship", &["bundle", "inspect", "stick/for-ship.bundle"])?;

    d.step("5. On the ship: the school is new there, so its bundle waits in quarantine until approved.")?;
    d.run("ship", &["import", "stick/for-ship.bundle"])?;
    d.approve_held("ship")?;
    let ana = d.json("school", &["whoami"])?["authors"][0]["public_key"]
        .as_str()
        .context("no author")?
        .to_string();
    d.run("ship", &["follow", &ana])?;
    d.run("ship", &["feed"])?;

    d.step(
        "6. The ship replies and sends back, encrypted to the school, only what the school lacks.",
    )?;
    d.run(
        "ship",
        &["comment", &post[..12], "Good news reaches us at sea."],
    )?;
    d.run(
        "ship",
        &[
            "export",
            "--for",
            &school_id,
            "--encrypt-to",
            &school_id,
            "--to",
            "stick/for-school.bundle",
        ],
    )?;

    d.step(
        "7. Back at the school (the ship is trusted since step 2): read the thread with its reply.",
    )?;
    d.run("school", &["import", "stick/for-school.bundle"])?;
    d.run("school", &["thread", &post[..12]])?;
    d.run("school", &["peers"])?;

    d.step("8. The next stick for the ship carries only the delta (acknowledged by its bundle).")?;
    d.run("school", &["post", "Football match on Saturday."])?;
    d.run(
        "school",
        &[
            "export",
            "--for",
            &ship_id,
            "--to",
            "stick/next.bundle",
            "--dry-run",
        ],
    )?;

    d.step("9. A network appears: the school serves over HTTPS on loopback, and the ship syncs with it, pinned to the school's instance id (no accounts: the TLS key is the school's instance key, every request is signed by the ship's).")?;
    let (mut server, url) = d.serve("school")?;
    say!("  $ rhizome --home school serve --listen 127.0.0.1:0");
    say!("    listening on {url} instance {school_id}");
    let synced = d.run("ship", &["sync", &url, "--peer", &school_id]);
    let _ = server.kill();
    let _ = server.wait();
    synced?;

    say!();
    say!(
        "Done. Explore:  rhizome --home {}/school log   (or feed, thread, status, verify)",
        dir.display()
    );
    say!("Open either home in a browser (prints the address to open):");
    say!("  rhizome --home {}/school ui", dir.display());
    say!("  rhizome --home {}/ship ui", dir.display());
    Ok(())
}
