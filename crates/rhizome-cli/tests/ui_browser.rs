//! The web page in a real browser: Debian's chromium driven by chromedriver over WebDriver
//! (fantoccini), headless, against a real `rhizome ui` on a real home made with the CLI.
//! Without /usr/bin/chromium or /usr/bin/chromedriver the tests say loudly that they were
//! skipped (and fail when CI is set). Screenshots of each page at desktop and phone widths
//! go to target/screenshots/.
#![allow(clippy::unwrap_used)]

mod ui_common;

use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ui_common::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// chromedriver in its own process group, killed with all its browsers on drop.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser tests can run here; a loud skip (or, under CI, a failure) if not.
fn browser() -> Option<(Driver, tokio::runtime::Runtime)> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        let why = format!(
            "{} missing (apt-get install chromium chromium-driver)",
            missing.join(" and ")
        );
        if std::env::var_os("CI").is_some() {
            panic!("browser tests cannot run under CI: {why}");
        }
        eprintln!("\n*** SKIPPED browser tests: {why} ***\n");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        port,
        _profile: tempfile::tempdir().unwrap(),
    };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Some((driver, rt))
}

async fn client(driver: &Driver) -> Client {
    client_saving_to(driver, None).await
}

/// A browser session; with `downloads`, files the browser downloads are saved there without
/// asking (Chromium's download preferences, set in the session's capabilities).
async fn client_saving_to(driver: &Driver, downloads: Option<&Path>) -> Client {
    let profile = driver._profile.path().display().to_string();
    let mut caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--user-data-dir={profile}"), "--window-size=1280,900"],
        },
        "unhandledPromptBehavior": "ignore",
    });
    if let Some(dir) = downloads {
        caps["goog:chromeOptions"]["prefs"] = serde_json::json!({
            "download.default_directory": dir.display().to_string(),
            "download.prompt_for_download": false,
            "download.directory_upgrade": true,
            "safebrowsing.enabled": false,
        });
    }
    let caps = caps.as_object().unwrap().clone();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap()
}

/// Saves a screenshot of the current page at desktop and phone widths.
async fn shots(c: &Client, name: &str) {
    shots_at(c, name, DESKTOP).await;
}

/// Saves screenshots at `desktop` (a taller window shows a whole page) and at phone size.
async fn shots_at(c: &Client, name: &str, desktop: (u32, u32)) {
    let dir = screenshots();
    for (label, (w, h)) in [("desktop", desktop), ("phone", PHONE)] {
        c.set_window_size(w, h).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}-{label}.png")), png).unwrap();
    }
    c.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
}

/// The page's text; empty while a navigation replaces the page.
async fn text(c: &Client) -> String {
    match c.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the page's text contains `needle`.
async fn wait_for(c: &Client, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let t = text(c).await;
        if t.contains(needle) {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "waited for {needle:?}; the page says:\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most 30 s) until the browser has finished downloading `name` into `dir`: the file
/// is there and no partial download (`.crdownload`) is left. Returns its path.
async fn downloaded(dir: &Path, name: &str) -> std::path::PathBuf {
    let start = Instant::now();
    let file = dir.join(name);
    loop {
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let partial = names.iter().any(|n| n.ends_with(".crdownload"));
        if file.is_file() && !partial {
            return file;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the browser did not finish downloading {name}; the folder holds {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn no_alert(c: &Client) {
    assert!(
        c.get_alert_text().await.is_err(),
        "a dialog opened: content ran as script"
    );
}

#[test]
fn a_person_reads_the_feed_opens_a_thread_comments_and_sees_it() {
    let Some((driver, rt)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "school");
    rz(&home)
        .args(["author", "add", "teacher"])
        .assert()
        .success();
    rz(&home)
        .args(["circle", "create", "staff", "teacher"])
        .assert()
        .success();
    let first = json(&home, &["post", "The well is fixed. Water for everyone!"]);
    let hash = first["hash"].as_str().unwrap().to_string();
    rz(&home)
        .args(["--as", "teacher", "comment", &hash, "Thank you!"])
        .assert()
        .success();
    rz(&home)
        .args(["--as", "teacher", "like", &hash])
        .assert()
        .success();
    rz(&home).args(["tag", &hash, "village"]).assert().success();
    rz(&home)
        .args([
            "--as",
            "teacher",
            "reshare",
            &hash,
            "Everyone should read this",
        ])
        .assert()
        .success();
    rz(&home)
        .args(["post", "--circle", "staff", "Staff meeting at noon"])
        .assert()
        .success();
    let teacher = json(&home, &["whoami"])["authors"][1]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    rz(&home).args(["follow", &teacher]).assert().success();
    let ui = Ui::start(&home);
    rt.block_on(async {
        let c = client(&driver).await;
        c.goto(&ui.url).await.unwrap();
        let page = wait_for(&c, "The well is fixed").await;
        assert!(
            page.contains("circle: staff"),
            "circle-only posts are marked: {page}"
        );
        assert_eq!(
            c.current_url().await.unwrap().as_str(),
            format!("{}/", ui.base())
        );
        shots(&c, "feed").await;
        c.find(Locator::Css("ol.feed li:last-child a[href^='/thread/']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let page = wait_for(&c, "Thank you!").await;
        assert!(page.contains("Liked by"), "{page}");
        assert!(page.contains("village"));
        assert!(page.contains("Reshared by teacher"), "{page}");
        shots(&c, "thread").await;
        let area = c.find(Locator::Id("comment-text")).await.unwrap();
        area.send_keys("Written in the browser").await.unwrap();
        c.find(Locator::Css("form[action='/comment'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let page = wait_for(&c, "Written in the browser").await;
        assert!(page.contains("Replies (2)"), "{page}");
        for (path, name, desktop) in [
            ("/people", "people", DESKTOP),
            // Tall enough for every form: export, import and sync with a URL.
            ("/carry", "carry", (DESKTOP.0, 1200)),
            ("/starred", "starred", DESKTOP),
        ] {
            c.goto(&format!("{}{path}", ui.base())).await.unwrap();
            wait_for(&c, "Rhizome").await;
            shots_at(&c, name, desktop).await;
            if path == "/carry" {
                // The address field is styled like the others: as wide as its form.
                let ratio = c
                    .execute(
                        "const f = document.getElementById('sync-url');
                         return f.getBoundingClientRect().width / f.form.getBoundingClientRect().width;",
                        vec![],
                    )
                    .await
                    .unwrap();
                assert!(ratio.as_f64().unwrap() > 0.95, "sync address field width: {ratio}");
            }
        }
        // A post from the page, to a circle.
        c.goto(&format!("{}/", ui.base())).await.unwrap();
        c.find(Locator::Id("post-text"))
            .await
            .unwrap()
            .send_keys("Posted from the page")
            .await
            .unwrap();
        c.find(Locator::Css("form[action='/post'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "Posted from the page").await;
        // Events that arrive by another path (here the CLI) are announced on the open feed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rz(&home)
            .args(["post", "from the terminal"])
            .assert()
            .success();
        let page = wait_for(&c, "arrived: refresh").await;
        assert!(page.contains("1 new event"), "{page}");
        c.find(Locator::Id("live-refresh"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "from the terminal").await;
        c.close().await.unwrap();
    });
    // The CLI sees what the page wrote.
    let log = rz(&home).args(["log"]).output().unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.contains("Written in the browser") && log.contains("Posted from the page"),
        "{log}"
    );
}

#[test]
fn a_stick_from_an_unknown_school_waits_for_approval_then_shows() {
    let Some((driver, rt)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    init(&a, "school");
    init(&b, "ship");
    rz(&b)
        .args(["post", "Greetings from the ship"])
        .assert()
        .success();
    let ship = json(&b, &["whoami"]);
    let fp = ship["public_key"].as_str().unwrap()[..16].to_string();
    let author = ship["authors"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let stick = dir.path().join("ship.bundle");
    rz(&b)
        .args(["export", "--all", "--to"])
        .arg(&stick)
        .assert()
        .success();
    rz(&a).args(["follow", &author]).assert().success();
    let ui = Ui::start(&a);
    rt.block_on(async {
        let c = client(&driver).await;
        c.goto(&ui.url).await.unwrap();
        c.goto(&format!("{}/carry", ui.base())).await.unwrap();
        let input = c.find(Locator::Id("import-file")).await.unwrap();
        input.send_keys(stick.to_str().unwrap()).await.unwrap();
        c.find(Locator::Css("#upload button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let page = wait_for(&c, "Held for your approval").await;
        assert!(page.contains(&fp), "the fingerprint is shown: {page}");
        assert!(page.contains("ship"));
        c.goto(&format!("{}/", ui.base())).await.unwrap();
        let page = wait_for(&c, "Feed").await;
        assert!(
            !page.contains("Greetings from the ship"),
            "nothing shown before approval"
        );
        c.goto(&format!("{}/trust", ui.base())).await.unwrap();
        let page = wait_for(&c, "Waiting for approval (1)").await;
        assert!(page.contains(&fp));
        shots(&c, "trust").await;
        c.find(Locator::Css("button.approve"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "new events").await;
        c.goto(&format!("{}/", ui.base())).await.unwrap();
        wait_for(&c, "Greetings from the ship").await;
        c.goto(&format!("{}/trust", ui.base())).await.unwrap();
        let page = wait_for(&c, "Homes met (1)").await;
        assert!(page.contains("trusted"), "{page}");
        c.close().await.unwrap();
    });
}

#[test]
fn an_export_for_a_peer_downloads_in_the_browser_a_bundle_the_cli_accepts() {
    let Some((driver, rt)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    init(&a, "school");
    init(&b, "ship");
    rz(&b).args(["post", "ahoy"]).assert().success();
    let b_id = json(&b, &["whoami"])["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
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
    rz(&a).args(["post", "news from school"]).assert().success();
    // What the ship lacks: everything here but its own events.
    let expected = events(&a) - events(&b);
    assert!(expected >= 2, "the school's profile and post at least");
    let out = dir.path().join("for-ship.bundle");
    let downloads = dir.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let ui = Ui::start(&a);
    let got = rt.block_on(async {
        let c = client_saving_to(&driver, Some(&downloads)).await;
        c.goto(&ui.url).await.unwrap();
        c.goto(&format!("{}/carry", ui.base())).await.unwrap();
        c.find(Locator::Css(&format!(
            "#export-peer option[value='{b_id}']"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        c.find(Locator::Css("form[action='/export'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let page = wait_for(&c, "before compression").await;
        assert!(page.contains("For ship"), "{page}");
        assert!(
            page.contains(&format!("{expected} events in")),
            "the size before writing: {page}"
        );
        shots(&c, "export").await;
        // The browser itself downloads the bundle, into the folder its session was given.
        c.find(Locator::Css("form[action='/export/download'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let got = downloaded(&downloads, &format!("rhizome-for-{b_id}.bundle")).await;
        c.find(Locator::Id("export-path"))
            .await
            .unwrap()
            .send_keys(out.to_str().unwrap())
            .await
            .unwrap();
        c.find(Locator::Css("form[action='/export/file'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "Wrote").await;
        c.close().await.unwrap();
        got
    });
    // The real CLI accepts the downloaded file: whole, signed for the ship, every event there.
    let inspected = json(&b, &["bundle", "inspect", got.to_str().unwrap()]);
    assert_eq!(
        inspected["manifest"]["recipient"],
        b_id.as_str(),
        "{inspected}"
    );
    assert_eq!(inspected["event_lines"], expected, "{inspected}");
    assert_eq!(inspected["malformed_lines"], 0, "{inspected}");
    assert_eq!(inspected["status"], "complete", "{inspected}");
    let inspected = json(&a, &["bundle", "inspect", out.to_str().unwrap()]);
    assert_eq!(
        inspected["manifest"]["recipient"],
        b_id.as_str(),
        "{inspected}"
    );
    rz(&b)
        .arg("import")
        .arg(&out)
        .env("RHIZOME_TRUST_ON_FIRST_USE", "1")
        .assert()
        .success();
    let log = String::from_utf8_lossy(&rz(&b).arg("log").output().unwrap().stdout).into_owned();
    assert!(log.contains("news from school"));
}

#[test]
fn without_the_token_the_browser_gets_nothing_and_a_foreign_site_cannot_post() {
    let Some((driver, rt)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "school");
    rz(&home).args(["post", "private words"]).assert().success();
    let ui = Ui::start(&home);
    // A page on another origin that posts a form to the Rhizome page as soon as it loads.
    let evil = TcpListener::bind("127.0.0.1:0").unwrap();
    let evil_port = evil.local_addr().unwrap().port();
    let target = format!("{}/post", ui.base());
    std::thread::spawn(move || {
        for s in evil.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let page = format!(
                "<!doctype html><form id=f method=post action='{target}'>\
                 <input name=text value=forged><input name=csrf value=guess></form>\
                 <script>document.getElementById('f').submit()</script>"
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    let before = events(&home);
    rt.block_on(async {
        let c = client(&driver).await;
        c.goto(&format!("{}/", ui.base())).await.unwrap();
        let page = text(&c).await;
        assert!(
            page.contains("Forbidden") && !page.contains("private words"),
            "{page}"
        );
        c.goto(&format!("{}/?token={}", ui.base(), "f".repeat(64)))
            .await
            .unwrap();
        let page = text(&c).await;
        assert!(
            page.contains("Forbidden") && !page.contains("private words"),
            "{page}"
        );
        // Logged in, then lured to the foreign page.
        c.goto(&ui.url).await.unwrap();
        wait_for(&c, "private words").await;
        c.goto(&format!("http://localhost:{evil_port}/"))
            .await
            .unwrap();
        let page = wait_for(&c, "Forbidden").await;
        assert!(!page.contains("private words"));
        c.close().await.unwrap();
    });
    assert_eq!(events(&home), before, "the forged post was not written");
}

#[test]
fn hostile_content_from_another_home_stays_text() {
    let Some((driver, rt)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    init(&a, "school");
    rz(&b)
        .args([
            "init",
            "--name",
            "<img src=x onerror=alert(1)>\u{202e}evil",
            "--author",
            "\"><svg onload=alert(1)>",
            "--no-passphrase",
        ])
        .assert()
        .success();
    // The POST schema allows 10,000 characters: the longest word a post can carry.
    let long = "W".repeat(10_000);
    let hostile = [
        "<script>alert(1)</script><script>window.__pwned=1</script>",
        "<img src=x onerror=\"window.__pwned=1;alert(1)\">",
        "\"><svg onload=alert(1)><svg/onload=window.__pwned=1>",
        "<a href=\"javascript:alert(1)\">click me</a> javascript:alert(1)",
        long.as_str(),
        "\u{202e}txt.exe right-to-left override",
        "\u{1b}[2J\u{1b}[31mterminal escapes",
    ];
    let mut first = String::new();
    for t in hostile {
        let w = json(&b, &["post", t]);
        if first.is_empty() {
            first = w["hash"].as_str().unwrap().to_string();
        }
    }
    rz(&b)
        .args([
            "comment",
            &first,
            "<iframe src=javascript:alert(1)></iframe>",
        ])
        .assert()
        .success();
    rz(&b)
        .args(["tag", &first, "<b>tag</b>"])
        .assert()
        .success();
    let author = json(&b, &["whoami"])["authors"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let stick = dir.path().join("b.bundle");
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
    rz(&a).args(["follow", &author]).assert().success();
    let ui = Ui::start(&a);
    rt.block_on(async {
        let c = client(&driver).await;
        c.goto(&ui.url).await.unwrap();
        let page = wait_for(&c, "terminal escapes").await;
        assert!(page.contains("<script>alert(1)</script>"), "shown as text");
        assert!(page.contains("onload=alert(1)"));
        assert!(!page.contains('\u{202e}'), "direction overrides are neutralised");
        assert!(page.contains("\\u001b[2J"), "terminal escapes shown escaped");
        for (label, (w, h)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            c.set_window_size(w, h).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            no_alert(&c).await;
            let verdict = c
                .execute(
                    "const posts = Array.from(document.querySelectorAll('.post'));
                     return {
                       pwned: window.__pwned === 1,
                       injected: document.querySelectorAll('main script, main svg, main img, main iframe, .post a[href^=\"javascript\"]').length,
                       posts: posts.length,
                       widest: Math.max(...posts.map(p => p.getBoundingClientRect().right)),
                       viewport: document.documentElement.clientWidth,
                       scroll: document.documentElement.scrollWidth,
                     };",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(verdict["pwned"], false, "{label}: {verdict}");
            assert_eq!(verdict["injected"], 0, "{label}: {verdict}");
            assert!(verdict["posts"].as_u64().unwrap() >= 7, "{verdict}");
            let vw = verdict["viewport"].as_f64().unwrap();
            assert!(verdict["widest"].as_f64().unwrap() <= vw + 0.5, "{label}: layout held: {verdict}");
            assert!(verdict["scroll"].as_f64().unwrap() <= vw + 0.5, "{label}: no sideways scroll: {verdict}");
        }
        shots(&c, "hostile-feed").await;
        c.goto(&format!("{}/thread/{first}", ui.base())).await.unwrap();
        wait_for(&c, "<iframe").await;
        no_alert(&c).await;
        let n = c.execute("return document.querySelectorAll('main iframe, main script, main svg').length + (window.__pwned ? 100 : 0)", vec![]).await.unwrap();
        assert_eq!(n, 0);
        c.goto(&format!("{}/trust", ui.base())).await.unwrap();
        let page = wait_for(&c, "Homes met").await;
        assert!(page.contains("<img src=x onerror=alert(1)>"), "{page}");
        no_alert(&c).await;
        c.close().await.unwrap();
    });
}
