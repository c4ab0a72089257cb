//! The web page's guards over plain HTTP against a real `rhizome ui`: the token, the session
//! cookie, the Host header, CSRF and Origin checks, and the security headers.
#![allow(clippy::unwrap_used)]

mod ui_common;
use ui_common::*;

#[test]
fn without_the_token_nothing_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "school");
    rz(&home).args(["post", "private words"]).assert().success();
    let ui = Ui::start(&home);
    for path in ["/", "/trust", "/carry", "/static/app.js", "/events/feed"] {
        let r = ui.send(&format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n",
            ui.host()
        ));
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert!(!r.body.contains("private words"));
        assert!(r.body.len() < 200, "a tiny page: {}", r.body);
        assert!(r.header("set-cookie").is_none());
    }
    // A wrong token, and a wrong session cookie.
    let wrong = "0".repeat(64);
    let r = ui.send(&format!(
        "GET /?token={wrong} HTTP/1.1\r\nHost: {}\r\n\r\n",
        ui.host()
    ));
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());
    let r = ui.send(&format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nCookie: rhizome_session={wrong}\r\n\r\n",
        ui.host()
    ));
    assert_eq!(r.status, 403);
    assert!(!r.body.contains("private words"));
}

#[test]
fn the_token_sets_a_strict_cookie_and_the_cookie_opens_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "school");
    rz(&home).args(["post", "hello hills"]).assert().success();
    let ui = Ui::start(&home);
    let r = ui.send(&format!(
        "GET /?token={} HTTP/1.1\r\nHost: {}\r\n\r\n",
        ui.token,
        ui.host()
    ));
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/"),
        "the token leaves the address bar"
    );
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = ui.send(&format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n",
        ui.host()
    ));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("hello hills"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(r.header("access-control-allow-origin").is_none(), "no CORS");
    // localhost is the same page.
    let r = ui.send(&format!(
        "GET / HTTP/1.1\r\nHost: localhost:{}\r\nCookie: {cookie}\r\n\r\n",
        ui.port
    ));
    assert_eq!(r.status, 200);
}

#[test]
fn another_host_name_is_refused_even_with_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "school");
    let ui = Ui::start(&home);
    let cookie = ui.login();
    for host in [
        "evil.example",
        "evil.example:80",
        "127.0.0.1",
        "127.0.0.1:1",
    ] {
        let r = ui.send(&format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n"
        ));
        assert_eq!(r.status, 421, "{host}: {r:?}");
        // Even with the token: a rebinding page must not get a cookie.
        let r = ui.send(&format!(
            "GET /?token={} HTTP/1.1\r\nHost: {host}\r\n\r\n",
            ui.token
        ));
        assert_eq!(r.status, 421);
        assert!(r.header("set-cookie").is_none());
    }
}

#[test]
fn a_cross_site_or_tokenless_form_post_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "school");
    let ui = Ui::start(&home);
    let cookie = ui.login();
    let page = ui.send(&format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n",
        ui.host()
    ));
    let csrf = csrf_of(&page.body);
    let before = events(&home);
    let origin = ui.base();
    let ok_body = format!("csrf={csrf}&back=%2F&as=school&text=forged&circle=");
    let cases = [
        (
            Some("http://evil.example"),
            ok_body.clone(),
            "another origin",
        ),
        (None, ok_body.clone(), "no origin"),
        (Some("null"), ok_body.clone(), "opaque origin"),
        (
            Some(origin.as_str()),
            "back=%2F&as=school&text=forged".to_string(),
            "no CSRF token",
        ),
        (
            Some(origin.as_str()),
            format!("csrf={}&back=%2F&as=school&text=forged", "1".repeat(64)),
            "wrong CSRF token",
        ),
    ];
    for (origin, body, what) in &cases {
        let r = post(&ui, "/post", &cookie, *origin, body);
        assert_eq!(r.status, 403, "{what}: {r:?}");
    }
    // Without the cookie, even with everything else right.
    let r = post(&ui, "/post", "rhizome_session=x", Some(&origin), &ok_body);
    assert_eq!(r.status, 403);
    // A same-origin request that says it is cross-site.
    let r = ui.send(&format!(
        "POST /post HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nOrigin: {origin}\r\nSec-Fetch-Site: cross-site\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{ok_body}",
        ui.host(),
        ok_body.len()
    ));
    assert_eq!(r.status, 403);
    assert_eq!(events(&home), before, "nothing was written");
    // The same form, sent properly, writes.
    let r = post(&ui, "/post", &cookie, Some(&origin), &ok_body);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(events(&home), before + 1);
}

#[test]
fn oversized_form_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "school");
    let ui = Ui::start(&home);
    let cookie = ui.login();
    let page = ui.send(&format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n",
        ui.host()
    ));
    let csrf = csrf_of(&page.body);
    let before = events(&home);
    let body = format!(
        "csrf={csrf}&back=%2F&as=school&text={}",
        "a".repeat(300_000)
    );
    let r = post(&ui, "/post", &cookie, Some(&ui.base()), &body);
    assert_eq!(r.status, 413, "{}", r.status);
    assert_eq!(events(&home), before);
}

#[test]
fn the_page_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "school");
    let out = rz(&home)
        .args(["ui", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    assert!(out.stdout.is_empty(), "no address printed");
}

#[test]
fn a_download_for_a_peer_streams_a_bundle_the_cli_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    init(&a, "school");
    init(&b, "ship");
    let stick = dir.path().join("ship.bundle");
    rz(&b)
        .args(["export", "--all", "--to"])
        .arg(&stick)
        .assert()
        .success();
    rz(&a)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("import")
        .arg(&stick)
        .assert()
        .success();
    rz(&a).args(["post", "for the ship"]).assert().success();
    let b_id = json(&b, &["whoami"])["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ui = Ui::start(&a);
    let cookie = ui.login();
    let page = ui.send(&format!(
        "GET /export?peer={b_id} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n",
        ui.host()
    ));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("before compression"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    let r = post(
        &ui,
        "/export/download",
        &cookie,
        Some(&ui.base()),
        &format!("csrf={csrf}&peer={b_id}&compress="),
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-disposition")
        .unwrap()
        .contains("attachment"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "streamed");
    let bundle = dechunk(&r.body);
    assert!(
        bundle.lines().count() >= 3,
        "manifest, events, trailer: {bundle}"
    );
    let file = dir.path().join("download.bundle");
    std::fs::write(&file, bundle).unwrap();
    let inspected = json(&b, &["bundle", "inspect", file.to_str().unwrap()]);
    assert_eq!(
        inspected["manifest"]["recipient"],
        b_id.as_str(),
        "{inspected}"
    );
    let out = rz(&b)
        .arg("import")
        .arg(&file)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&rz(&b).arg("log").output().unwrap().stdout).into_owned();
    assert!(log.contains("for the ship"));
}

/// The body of a chunked transfer.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
}

/// A running `rhizome serve` (trust on first use, so the page's push is taken), killed on drop.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(home: &std::path::Path) -> (Serving, String, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rhizome"))
        .env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_TRUST_ON_FIRST_USE")
        .arg("--home")
        .arg(home)
        .args(["serve", "--listen", "127.0.0.1:0", "--json"])
        .arg("--trust-on-first-use")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let (url, id) = (
        v["url"].as_str().unwrap(),
        v["instance_id"].as_str().unwrap(),
    );
    (Serving(child), url.to_string(), id.to_string())
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_page_syncs_with_a_home_over_https_with_the_same_trust_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (ship, school) = (dir.path().join("ship"), dir.path().join("school"));
    init(&ship, "ship");
    init(&school, "school");
    rz(&school)
        .args(["post", "hello over https"])
        .assert()
        .success();
    rz(&ship)
        .args(["post", "hello from the ship"])
        .assert()
        .success();
    let (_server, url, school_id) = serve(&school);
    let ui = Ui::start(&ship);
    let cookie = ui.login();
    let carry = ui.send(&format!(
        "GET /carry HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n",
        ui.host()
    ));
    assert!(
        carry.body.contains("action=\"/sync\""),
        "the carry page has the sync form"
    );
    let csrf = csrf_of(&carry.body);
    let origin = ui.base();
    let sync = |peer: &str| {
        let body = format!("csrf={csrf}&url={}&peer={peer}", form_encode(&url));
        post(&ui, "/sync", &cookie, Some(&origin), &body)
    };

    // A wrong pin: refused before anything is sent or stored.
    let before = events(&ship);
    let wrong = sync("00000000000000000000000000000000");
    assert_eq!(wrong.status, 200, "{wrong:?}");
    assert!(wrong.body.contains("Not synced"), "{}", wrong.body);
    assert_eq!(events(&ship), before);
    assert_eq!(json(&ship, &["pending"]).as_array().unwrap().len(), 0);
    assert_eq!(
        events(&school),
        2,
        "the school got nothing: its init profile and its post"
    );

    // The right pin: the school is new to the ship, so its bundle is held for approval (as a
    // stick would be), and the ship's events are pushed to the school (trust on first use).
    let ok = sync(&school_id);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(
        ok.body.contains("Synced with <bdi>school</bdi>"),
        "{}",
        ok.body
    );
    assert!(ok.body.contains("Held for your approval"), "{}", ok.body);
    assert!(ok.body.contains("that home stored"), "{}", ok.body);
    assert_eq!(
        events(&ship),
        before,
        "nothing of the school stored before approval"
    );
    assert_eq!(
        events(&school),
        4,
        "the ship's profile and post reached the school"
    );
    let pending = json(&ship, &["pending"]);
    let held = &pending.as_array().unwrap()[0];
    assert_eq!(held["instance_id"].as_str().unwrap(), school_id);

    // Approved from the page: the school's post arrives.
    let body = format!(
        "csrf={csrf}&back=%2Ftrust&id={}&instance={school_id}&action=approve",
        held["id"].as_str().unwrap()
    );
    let approved = post(&ui, "/trust/decide", &cookie, Some(&origin), &body);
    assert!(approved.status < 400, "{approved:?}");
    assert_eq!(events(&ship), before + 2);
    let log = rz(&ship).args(["log", "--json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&log.stdout).contains("hello over https"));
}

#[test]
fn the_thread_page_shows_who_reshared_a_post_from_another_home() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    init(&a, "school");
    // The resharer's name is markup, to show it is escaped like every remote text.
    rz(&b)
        .args([
            "init",
            "--name",
            "ship",
            "--author",
            "Cap <b>tain</b>",
            "--no-passphrase",
        ])
        .assert()
        .success();
    let hash = json(&a, &["post", "Water for everyone"])["hash"]
        .as_str()
        .unwrap()
        .to_string();
    // A's post travels to B, B reshares it, the reshare travels back: two real imports.
    let to_b = dir.path().join("to-b.bundle");
    rz(&a)
        .args(["export", "--all", "--to"])
        .arg(&to_b)
        .assert()
        .success();
    rz(&b)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("import")
        .arg(&to_b)
        .assert()
        .success();
    let reshare = json(&b, &["reshare", &hash, "read this"])["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let captain = json(&b, &["whoami"])["authors"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let to_a = dir.path().join("to-a.bundle");
    rz(&b)
        .args(["export", "--all", "--to"])
        .arg(&to_a)
        .assert()
        .success();
    rz(&a)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .arg("import")
        .arg(&to_a)
        .assert()
        .success();

    let ui = Ui::start(&a);
    let cookie = ui.login();
    let page = ui.send(&format!(
        "GET /thread/{hash} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\r\n",
        ui.host()
    ));
    assert_eq!(page.status, 200, "{page:?}");
    let at = page
        .body
        .find("Reshared by")
        .unwrap_or_else(|| panic!("no reshare on the thread page: {}", page.body));
    let entry = &page.body[at..];
    let entry = &entry[..entry.find("</li>").unwrap()];
    assert!(
        entry.contains("Cap &lt;b&gt;tain&lt;/b&gt;"),
        "the resharer's name, escaped: {entry}"
    );
    assert!(!page.body.contains("<b>tain"), "markup from another home");
    assert!(
        entry.contains(&captain[..16]),
        "the resharer's fingerprint: {entry}"
    );
    assert!(entry.contains(" at <time"), "when: {entry}");
    assert!(
        entry.contains(&format!("href=\"/thread/{reshare}\"")),
        "a link to the reshare: {entry}"
    );
    assert_eq!(page.body.matches("Reshared by").count(), 1);

    // The CLI's thread shows the same reshare, from the same node read.
    let t = json(&a, &["thread", &hash]);
    let listed = t["root"]["reshares"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{t}");
    assert_eq!(listed[0]["hash"], reshare.as_str());
    assert_eq!(listed[0]["author"], captain.as_str());
    assert_eq!(listed[0]["name"], "Cap <b>tain</b>");
}
