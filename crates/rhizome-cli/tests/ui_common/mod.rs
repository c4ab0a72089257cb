//! What the web page tests share: homes made with the real CLI, a running `rhizome ui`
//! process (killed on drop), and plain HTTP/1.1 over a TCP socket.
#![allow(dead_code)]

use assert_cmd::cargo::CommandCargoExt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `rhizome --home HOME` with no passphrase or policy from the environment.
pub fn rz(home: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
        .arg("--home")
        .arg(home);
    c
}

/// Runs and parses `--json` output.
pub fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    let out = rz(home).args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A new home with an author of the same name, keys unsealed.
pub fn init(home: &Path, name: &str) {
    rz(home)
        .args(["init", "--name", name, "--no-passphrase"])
        .assert()
        .success();
}

/// Events in the log.
pub fn events(home: &Path) -> usize {
    let out = rz(home).args(["log", "--json"]).output().unwrap();
    assert!(out.status.success());
    out.stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

/// A running `rhizome ui`.
pub struct Ui {
    child: Child,
    pub url: String,
    pub port: u16,
    pub token: String,
}

impl Ui {
    pub fn start(home: &Path) -> Ui {
        let mut child = Command::cargo_bin("rhizome")
            .unwrap()
            .env_remove("RHIZOME_PASSPHRASE")
            .env_remove("RHIZOME_HOME")
            .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
            .arg("--home")
            .arg(home)
            .arg("ui")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("open ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
        let (port, token) = rest.split_once("/?token=").unwrap();
        assert_eq!(token.len(), 64, "32 bytes of hex");
        Ui {
            port: port.parse().unwrap(),
            token: token.to_string(),
            url,
            child,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Logs in with the token: the session cookie (`name=value`).
    pub fn login(&self) -> String {
        let r = self.send(&format!(
            "GET /?token={} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.token,
            self.host()
        ));
        assert_eq!(r.status, 303, "{r:?}");
        let cookie = r.header("set-cookie").unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        cookie.split(';').next().unwrap().to_string()
    }

    /// Sends a raw request (Connection: close is added).
    pub fn send(&self, request: &str) -> Reply {
        send(self.port, request)
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection; reads the answer to the end.
pub fn send(port: u16, request: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    let req = format!("{head}\r\nConnection: close\r\n\r\n{body}");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The value of `<meta name="csrf" content="...">` in a page.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" content=\"").unwrap() + 21;
    page[at..at + 64].to_string()
}

/// A form POST with a cookie and an Origin (or none).
pub fn post(ui: &Ui, path: &str, cookie: &str, origin: Option<&str>, body: &str) -> Reply {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    ui.send(&format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n{origin}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        ui.host(),
        body.len()
    ))
}

/// Where test artefacts go: `target/screenshots` of the workspace.
pub fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
