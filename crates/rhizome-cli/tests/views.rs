#![allow(clippy::unwrap_used)]
//! End-to-end tests of the materialized views through the real `rhizome` binary: `feed` (with
//! cursors), `follow`/`unfollow`, `thread`, `starred`, `circles`, `tags`, `status`,
//! `views rebuild|check` (including a tampered view table), and `migrate`.

use assert_cmd::Command;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The binary, with no passphrase or home leaking in from the environment.
fn bin() -> Command {
    let mut c = Command::cargo_bin("rhizome").unwrap();
    c.env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME");
    c
}

/// The binary, pointed at `home`.
fn rz(home: &Path) -> Command {
    let mut c = bin();
    c.arg("--home").arg(home);
    c
}

fn describe(cmd: &Command, out: &std::process::Output) -> String {
    format!(
        "{cmd:?}\n  status: {:?}\n  stdout: {}\n  stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, asserts exit `code` and no panic, returns (stdout, stderr).
fn exits(cmd: &mut Command, code: i32) -> (String, String) {
    let out = cmd.output().unwrap();
    let d = describe(cmd, &out);
    assert_eq!(out.status.code(), Some(code), "wrong exit code: {d}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic: {d}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Runs `cmd`, asserts exit 0 and no panic, returns stdout.
fn ok(cmd: &mut Command) -> String {
    exits(cmd, 0).0
}

/// Runs `cmd`, asserts exit `code`, that stderr names the problem (every needle), that it
/// carries an `error:` line (except for usage errors), and that nothing panicked.
fn fails(cmd: &mut Command, code: i32, needles: &[&str]) -> String {
    let (_, stderr) = exits(cmd, code);
    for n in needles {
        assert!(
            stderr.contains(n),
            "stderr should mention {n:?}: {cmd:?}\n{stderr}"
        );
    }
    if code != 2 {
        assert!(stderr.contains("error: "), "no error line: {stderr}");
    }
    stderr
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Runs `rhizome --json ARGS` (must succeed) and parses its one JSON document.
fn jrun(home: &Path, args: &[&str]) -> Value {
    json_of(&ok(rz(home).arg("--json").args(args)))
}

/// A fresh home with the default author `ana` (keys unencrypted).
fn new_home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    ok(rz(&home).args([
        "init",
        "--name",
        "Village school",
        "--author",
        "ana",
        "--no-passphrase",
        // These tests count events; PROFILE events are tested in tests/profiles.rs.
        "--no-profile",
    ]));
    (dir, home)
}

/// Adds a local author and returns its public key.
fn add_author(home: &Path, name: &str) -> String {
    let v = jrun(home, &["author", "add", name, "--no-profile"]);
    assert_eq!(v["name"], name);
    v["public_key"].as_str().unwrap().to_string()
}

/// The public key of a local author.
fn key_of(home: &Path, name: &str) -> String {
    let list = jrun(home, &["author", "list"]);
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no author {name}: {list}"))["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs a writing command with `--json` and returns the new event's hash.
fn write(home: &Path, args: &[&str]) -> String {
    let v = jrun(home, args);
    let h = v["hash"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(is_hex(h, 64), "{v}");
    h.to_string()
}

fn log_json(home: &Path) -> String {
    ok(rz(home).args(["log", "--json"]))
}

fn log_events(home: &Path) -> Vec<Value> {
    log_json(home)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn authors_json(home: &Path) -> String {
    ok(rz(home).args(["author", "list", "--json"]))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The hashes of a list of JSON objects.
fn hashes(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| s(&i["hash"]).to_string()).collect()
}

/// Items of one `feed --json` call with extra arguments.
fn feed(home: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["feed"];
    args.extend_from_slice(extra);
    jrun(home, &args)
}

fn feed_items(home: &Path, extra: &[&str]) -> Vec<Value> {
    feed(home, extra)["items"].as_array().unwrap().clone()
}

/// Follows `next` cursors from the first page until `next` is null; returns every page.
fn feed_pages(home: &Path, extra: &[&str], limit: u32) -> Vec<Vec<Value>> {
    let limit_s = limit.to_string();
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend_from_slice(&["--limit", &limit_s]);
        if let Some(b) = &before {
            args.extend_from_slice(&["--before", b]);
        }
        let page = feed(home, &args);
        let items = page["items"].as_array().unwrap().clone();
        assert!(items.len() <= limit as usize, "page over limit: {page}");
        match &page["next"] {
            Value::Null => {
                assert!(
                    items.len() < limit as usize,
                    "a full page has no next: {page}"
                );
                pages.push(items);
                return pages;
            }
            Value::String(n) => {
                assert_eq!(
                    items.len(),
                    limit as usize,
                    "a short page has a next: {page}"
                );
                let last = items.last().unwrap();
                assert_eq!(n, s(&last["cursor"]), "next is the last item's cursor");
                pages.push(items);
                before = Some(n.clone());
            }
            other => panic!("next is neither null nor a string: {other}"),
        }
        assert!(pages.len() < 100, "paging does not terminate");
    }
}

/// Asserts newest first: timestamps non-increasing, ties by hash descending, no duplicates.
fn assert_newest_first(items: &[Value]) {
    for w in items.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (ta, tb) = (
            a["timestamp"].as_u64().unwrap(),
            b["timestamp"].as_u64().unwrap(),
        );
        assert!(ta >= tb, "timestamps increase: {a} then {b}");
        if ta == tb {
            assert!(
                s(&a["hash"]) > s(&b["hash"]),
                "ties must be ordered by hash descending: {a} then {b}"
            );
        }
    }
    let set: HashSet<_> = hashes(items).into_iter().collect();
    assert_eq!(set.len(), items.len(), "duplicate items");
}

/// What the feed should be, computed from the log: POSTs and RESHAREs of `authors`, sorted by
/// (timestamp, hash) descending.
fn expected_feed(home: &Path, authors: &[&str]) -> Vec<String> {
    let mut evs: Vec<(u64, String)> = log_events(home)
        .into_iter()
        .filter(|e| e["type"] == "POST" || e["type"] == "RESHARE")
        .filter(|e| authors.contains(&s(&e["author"])))
        .map(|e| (e["timestamp"].as_u64().unwrap(), s(&e["hash"]).to_string()))
        .collect();
    evs.sort();
    evs.reverse();
    evs.into_iter().map(|(_, h)| h).collect()
}

fn item<'a>(items: &'a [Value], hash: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["hash"] == hash)
        .unwrap_or_else(|| panic!("{hash} not in {items:?}"))
}

fn db_path(home: &Path) -> PathBuf {
    home.join("rhizome.db")
}

/// Runs `sql` on the home's database directly (the program is not running) and returns the
/// number of changed rows.
fn tamper_sql(home: &Path, sql: &str) -> usize {
    let conn = rusqlite::Connection::open(db_path(home)).unwrap();
    let n = conn.execute(sql, []).unwrap();
    drop(conn);
    n
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/migrate.jsonl");

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn migrate(home: &Path, file: &Path, extra: &[&str]) -> Value {
    let mut c = rz(home);
    c.args(["--json", "migrate", "--from"])
        .arg(file)
        .args(extra);
    json_of(&ok(&mut c))
}

// ---------------------------------------------------------------------------------------------
// 1. feed
// ---------------------------------------------------------------------------------------------

#[test]
fn feed_is_newest_first_with_counts_reshares_and_author_filter() {
    let (_d, home) = new_home();
    let ana = key_of(&home, "ana");
    let bo = add_author(&home, "bo");

    let p1 = write(&home, &["post", "ana one"]);
    let b1 = write(&home, &["--as", "bo", "post", "bo one"]);
    let p2 = write(&home, &["post", "ana two"]);
    let b2 = write(&home, &["--as", "bo", "post", "bo two"]);
    let rs = write(&home, &["--as", "bo", "reshare", &p1, "read this"]);
    let rs2 = write(&home, &["reshare", &b1]);
    // Likes: two distinct authors on p1 (bo twice counts once), one on b2.
    write(&home, &["like", &p1]);
    write(&home, &["--as", "bo", "like", &p1]);
    write(&home, &["--as", "bo", "like", &p1]);
    write(&home, &["like", &b2]);
    // Replies: a comment and a reply post on p1, a comment on b1, a comment on a comment.
    let c1 = write(&home, &["--as", "bo", "comment", &p1, "nice one"]);
    let rp = write(&home, &["post", "--reply-to", &p1, "replying to myself"]);
    write(&home, &["comment", &b1, "hello bo"]);
    write(&home, &["comment", &c1, "deeper, not direct"]);
    // Other event types never enter the timeline.
    write(&home, &["star", &p2]);
    write(&home, &["tag", &p2, "news"]);

    let items = feed_items(&home, &[]);
    assert_newest_first(&items);
    let expected = expected_feed(&home, &[&ana, &bo]);
    assert_eq!(expected.len(), 7, "{expected:?}");
    assert_eq!(
        hashes(&items),
        expected,
        "feed differs from the log's posts/reshares"
    );
    let set: HashSet<String> = hashes(&items).into_iter().collect();
    let want: HashSet<String> = [&p1, &b1, &p2, &b2, &rs, &rs2, &rp]
        .iter()
        .map(|h| h.to_string())
        .collect();
    assert_eq!(set, want);

    let log = log_events(&home);
    for i in &items {
        let ev = log.iter().find(|e| e["hash"] == i["hash"]).unwrap();
        assert_eq!(i["timestamp"], ev["timestamp"], "{i}");
        assert_eq!(i["seq"], ev["seq"], "{i}");
        assert_eq!(i["author"], ev["author"], "{i}");
        assert_eq!(i["type"], ev["type"], "{i}");
        assert_eq!(
            s(&i["cursor"]),
            format!("{}-{}", i["timestamp"].as_u64().unwrap(), s(&i["hash"])),
            "{i}"
        );
    }

    let i = item(&items, &p1);
    assert_eq!(i["text"], "ana one");
    assert_eq!(i["author_name"], "ana");
    assert_eq!(i["author"], ana.as_str());
    assert_eq!(i["type"], "POST");
    assert_eq!(i["target"], Value::Null);
    assert_eq!(i["likes"], 2, "two distinct likers: {i}");
    assert_eq!(i["replies"], 2, "a comment and a reply post: {i}");

    let i = item(&items, &b1);
    assert_eq!(i["text"], "bo one");
    assert_eq!(i["author_name"], "bo");
    assert_eq!(i["author"], bo.as_str());
    assert_eq!(i["likes"], 0);
    assert_eq!(i["replies"], 1);

    let i = item(&items, &b2);
    assert_eq!(i["likes"], 1);
    assert_eq!(i["replies"], 0);

    let i = item(&items, &p2);
    assert_eq!(
        (i["likes"].as_u64(), i["replies"].as_u64()),
        (Some(0), Some(0))
    );

    let i = item(&items, &rs);
    assert_eq!(i["type"], "RESHARE");
    assert_eq!(i["target"], p1.as_str());
    assert_eq!(i["text"], "read this");
    assert_eq!(i["author_name"], "bo");

    let i = item(&items, &rs2);
    assert_eq!(i["type"], "RESHARE");
    assert_eq!(i["target"], b1.as_str());
    assert_eq!(i["text"], Value::Null);

    let i = item(&items, &rp);
    assert_eq!(i["text"], "replying to myself");

    assert_eq!(feed(&home, &[])["next"], Value::Null, "one page holds all");

    // --author filters, by name or by key, keeping the order.
    let only_bo = feed_items(&home, &["--author", "bo"]);
    let bo_expected: Vec<String> = expected
        .iter()
        .filter(|h| [&b1, &b2, &rs].contains(h))
        .cloned()
        .collect();
    assert_eq!(hashes(&only_bo), bo_expected);
    assert!(only_bo.iter().all(|i| i["author"] == bo.as_str()));
    assert_eq!(hashes(&feed_items(&home, &["--author", &bo])), bo_expected);
    let only_ana = feed_items(&home, &["--author", "ana"]);
    assert_eq!(only_ana.len(), 4);
    assert!(only_ana.iter().all(|i| i["author"] == ana.as_str()));
    fails(
        rz(&home).args(["feed", "--author", "nobody"]),
        3,
        &["nobody"],
    );

    // Human output: the texts, the reshare, the counts.
    let human = ok(rz(&home).arg("feed"));
    for t in [
        "ana one",
        "bo one",
        "ana two",
        "bo two",
        "replying to myself",
    ] {
        assert!(human.contains(t), "{t}: {human}");
    }
    assert!(
        human.contains(&format!("reshared {}: read this", &p1[..12])),
        "{human}"
    );
    assert!(human.contains("2 like(s), 2 repl(ies)"), "{human}");
    assert!(!human.contains("-- more"), "{human}");
    let page = ok(rz(&home).args(["feed", "--limit", "2"]));
    assert!(page.contains("-- more: rhizome feed --before "), "{page}");
}

#[test]
fn feed_pages_cover_the_feed_exactly() {
    let (_d, home) = new_home();
    add_author(&home, "bo");
    for i in 0..4 {
        write(&home, &["post", &format!("ana {i}")]);
        write(&home, &["--as", "bo", "post", &format!("bo {i}")]);
    }
    let bo1 = feed_items(&home, &["--author", "bo"]);
    write(&home, &["--as", "bo", "reshare", s(&bo1[0]["hash"])]);

    let full = feed_items(&home, &[]);
    assert_eq!(full.len(), 9);
    assert_newest_first(&full);

    for limit in [1u32, 2, 3, 4, 9, 10] {
        let pages = feed_pages(&home, &[], limit);
        let all: Vec<Value> = pages.iter().flatten().cloned().collect();
        assert_eq!(
            hashes(&all),
            hashes(&full),
            "limit {limit}: pages differ from the full feed"
        );
        // Every full page but the last; at most one empty trailing page.
        let expected_pages = 9 / limit as usize + 1;
        assert_eq!(pages.len(), expected_pages, "limit {limit}");
        // The union has no duplicates and no gaps.
        let set: HashSet<_> = hashes(&all).into_iter().collect();
        assert_eq!(set.len(), full.len());
    }
    let first = feed(&home, &["--limit", "2"]);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert!(first["next"].is_string(), "{first}");

    // Paging with an author filter.
    let bo_full = feed_items(&home, &["--author", "bo"]);
    assert_eq!(bo_full.len(), 5);
    let pages = feed_pages(&home, &["--author", "bo"], 2);
    let all: Vec<Value> = pages.into_iter().flatten().collect();
    assert_eq!(hashes(&all), hashes(&bo_full));

    // A cursor taken from the middle continues strictly after that item.
    let mid = s(&full[3]["cursor"]).to_string();
    let rest = feed_items(&home, &["--before", &mid]);
    assert_eq!(hashes(&rest), hashes(&full[4..]));

    // Malformed cursors and limits.
    for bad in ["garbage", "12-zz", "abc-", "-", "x-0000"] {
        fails(rz(&home).args(["feed", "--before", bad]), 3, &["cursor"]);
    }
    let hash = s(&full[0]["hash"]).to_string();
    fails(
        rz(&home).args(["feed", "--before", &format!("notanumber-{hash}")]),
        3,
        &["cursor"],
    );
    fails(
        rz(&home).args(["feed", "--before", &format!("12-{}", &hash[..20])]),
        3,
        &["cursor"],
    );
    fails(rz(&home).args(["feed", "--limit", "0"]), 2, &["limit"]);
    fails(rz(&home).args(["feed", "--limit", "1001"]), 2, &["limit"]);
    fails(rz(&home).args(["feed", "--limit", "-1"]), 2, &[]);
}

#[test]
fn feed_ties_are_ordered_by_hash_and_page_cleanly() {
    // Imported posts carry the timestamps of the file: several share one millisecond.
    let (d, home) = new_home();
    let mut text = String::from(
        "{\"kind\":\"user\",\"id\":\"u1\",\"name\":\"alice\"}\n\
         {\"kind\":\"user\",\"id\":\"u2\",\"name\":\"bruno\"}\n",
    );
    let ats = [
        1_700_000_000_000u64,
        1_700_000_000_000,
        1_700_000_000_001,
        1_700_000_000_000,
        1_699_999_999_999,
        1_700_000_000_000,
        1_700_000_000_001,
    ];
    for (i, at) in ats.iter().enumerate() {
        let user = if i % 2 == 0 { "u1" } else { "u2" };
        text.push_str(&format!(
            "{{\"kind\":\"post\",\"id\":\"p{i}\",\"user\":\"{user}\",\"text\":\"tie {i}\",\"at\":{at}}}\n"
        ));
    }
    let file = write_file(d.path(), "ties.jsonl", &text);
    let r = migrate(&home, &file, &[]);
    assert_eq!(r["events_created"], 7, "{r}");

    let full = feed_items(&home, &[]);
    assert_eq!(full.len(), 7);
    assert_newest_first(&full);
    let alice = key_of(&home, "alice");
    let bruno = key_of(&home, "bruno");
    assert_eq!(hashes(&full), expected_feed(&home, &[&alice, &bruno]));
    let ts: Vec<u64> = full
        .iter()
        .map(|i| i["timestamp"].as_u64().unwrap())
        .collect();
    let mut want = ats.to_vec();
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ts, want);

    for limit in [1u32, 2, 3] {
        let pages = feed_pages(&home, &[], limit);
        let all: Vec<Value> = pages.into_iter().flatten().collect();
        assert_eq!(hashes(&all), hashes(&full), "limit {limit} across ties");
    }
}

#[test]
fn feed_cursor_beyond_the_timestamp_range_is_not_silently_empty() {
    let (_d, home) = new_home();
    write(&home, &["post", "one"]);
    write(&home, &["post", "two"]);
    let full = feed_items(&home, &[]);
    let ff = "f".repeat(64);
    for ts in ["18446744073709551615", "9223372036854775808"] {
        let cursor = format!("{ts}-{ff}");
        let out = rz(&home)
            .args(["--json", "feed", "--before", &cursor])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        match out.status.code() {
            // Refusing the cursor is fine ...
            Some(3) => assert!(stderr.contains("cursor"), "{stderr}"),
            // ... and so is treating it as "after everything"; an empty page is not.
            Some(0) => {
                let v = json_of(&String::from_utf8_lossy(&out.stdout));
                assert_eq!(
                    hashes(v["items"].as_array().unwrap()),
                    hashes(&full),
                    "cursor {cursor} hides the whole feed"
                );
            }
            other => panic!("unexpected exit {other:?}: {stderr}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. follow / unfollow
// ---------------------------------------------------------------------------------------------

#[test]
fn unfollow_hides_an_author_from_the_feed_only() {
    let (_d, home) = new_home();
    let carol = add_author(&home, "carol");
    let c1 = write(&home, &["--as", "carol", "post", "carol one"]);
    let a1 = write(&home, &["post", "ana one"]);
    let c2 = write(&home, &["--as", "carol", "post", "carol two"]);

    let before = feed_items(&home, &[]);
    assert_eq!(before.len(), 3);
    let log_before = log_json(&home);
    assert_eq!(jrun(&home, &["status"])["follows"], 2);

    let v = jrun(&home, &["unfollow", "carol"]);
    assert_eq!(
        v,
        json!({"author": carol, "following": false, "changed": true})
    );
    let after = feed_items(&home, &[]);
    assert_eq!(hashes(&after), vec![a1.clone()]);
    assert!(feed_items(&home, &["--author", "ana"]).len() == 1);
    // The log keeps carol's events.
    assert_eq!(log_json(&home), log_before);
    let carol_log = ok(rz(&home).args(["log", "--author", "carol", "--json"]));
    assert_eq!(carol_log.lines().count(), 2);
    assert!(carol_log.contains(&c1) && carol_log.contains(&c2));
    assert_eq!(jrun(&home, &["status"])["follows"], 1);

    // Unfollowing again changes nothing, and says so.
    let v = jrun(&home, &["unfollow", "carol"]);
    assert_eq!(v["changed"], false, "{v}");
    assert_eq!(v["following"], false, "{v}");
    let human = ok(rz(&home).args(["unfollow", &carol]));
    assert!(human.contains("(already)"), "{human}");
    assert!(human.contains(&carol), "{human}");

    // Following by key brings the posts back, in place.
    let v = jrun(&home, &["follow", &carol]);
    assert_eq!(
        v,
        json!({"author": carol, "following": true, "changed": true})
    );
    assert_eq!(hashes(&feed_items(&home, &[])), hashes(&before));
    let v = jrun(&home, &["follow", "carol"]);
    assert_eq!(v["changed"], false, "{v}");
    assert!(ok(rz(&home).args(["follow", "carol"])).contains("(already)"));
    assert_eq!(log_json(&home), log_before);

    // Bad authors.
    fails(rz(&home).args(["follow", "not-a-key"]), 3, &["not-a-key"]);
    fails(rz(&home).args(["unfollow", "not-a-key"]), 3, &["not-a-key"]);
    fails(rz(&home).args(["follow", &"z".repeat(64)]), 3, &[]);
    fails(rz(&home).args(["follow", &carol[..40]]), 3, &[]);
    assert_eq!(jrun(&home, &["status"])["follows"], 2);
}

// ---------------------------------------------------------------------------------------------
// 3. thread
// ---------------------------------------------------------------------------------------------

#[test]
fn thread_nests_comments_and_replies() {
    let (_d, home) = new_home();
    let ana = key_of(&home, "ana");
    let bo = add_author(&home, "bo");
    let p = write(&home, &["post", "root post"]);
    let c1 = write(&home, &["--as", "bo", "comment", &p, "first comment"]);
    let c2 = write(&home, &["comment", &c1, "second level"]);
    let r = write(
        &home,
        &["--as", "bo", "post", "--reply-to", &p, "reply post"],
    );
    write(&home, &["--as", "bo", "like", &p]);
    write(&home, &["tag", &p, "garden"]);
    let other = write(&home, &["post", "unrelated"]);
    write(&home, &["comment", &other, "elsewhere"]);

    let t = jrun(&home, &["thread", &p]);
    let root = &t["root"];
    assert_eq!(root["hash"], p.as_str());
    assert_eq!(root["text"], "root post");
    assert_eq!(root["type"], "POST");
    assert_eq!(root["author"], ana.as_str());
    let log = log_events(&home);
    let p_ev = log.iter().find(|e| e["hash"] == p.as_str()).unwrap();
    assert_eq!(root["timestamp"], p_ev["timestamp"]);
    assert_eq!(root["likes"], json!([bo]));
    assert_eq!(root["tags"], json!(["garden"]));

    let replies = t["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 3, "{t}");
    let by: BTreeMap<String, &Value> = replies
        .iter()
        .map(|x| (s(&x["hash"]).to_string(), x))
        .collect();
    let check = |h: &str, depth: u64, target: &str, text: &str, author: &str| {
        let x = by.get(h).unwrap_or_else(|| panic!("{h} missing from {t}"));
        assert_eq!(x["depth"], depth, "{x}");
        assert_eq!(x["target"], target, "{x}");
        assert_eq!(x["text"], text, "{x}");
        assert_eq!(x["author"], author, "{x}");
    };
    check(&c1, 1, &p, "first comment", &bo);
    check(&c2, 2, &c1, "second level", &ana);
    check(&r, 1, &p, "reply post", &bo);
    // Oldest first.
    assert_eq!(hashes(replies), vec![c1.clone(), c2.clone(), r.clone()]);
    for w in replies.windows(2) {
        assert!(w[0]["timestamp"].as_u64() <= w[1]["timestamp"].as_u64());
    }

    // A unique prefix works the same.
    assert_eq!(jrun(&home, &["thread", &p[..10]]), t);

    // A sub-thread: depths count from its own root.
    let sub = jrun(&home, &["thread", &c1]);
    assert_eq!(sub["root"]["text"], "first comment");
    assert_eq!(sub["root"]["type"], "COMMENT");
    let sr = sub["replies"].as_array().unwrap();
    assert_eq!(hashes(sr), vec![c2.clone()]);
    assert_eq!(sr[0]["depth"], 1);
    // A leaf has no replies.
    assert_eq!(jrun(&home, &["thread", &c2])["replies"], json!([]));

    // Human output: depth-first, indented by depth.
    let human = ok(rz(&home).args(["thread", &p]));
    let lines: Vec<&str> = human.lines().collect();
    assert!(
        lines[0].contains("root post") && lines[0].contains(&p[..12]),
        "{human}"
    );
    assert!(human.contains("liked by bo"), "{human}");
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in {human}"))
    };
    let (l1, l2, l3) = (pos("first comment"), pos("second level"), pos("reply post"));
    assert!(l1 < l2 && l2 < l3, "depth-first order: {human}");
    assert!(lines[l1].starts_with("  └ bo"), "{:?}", lines[l1]);
    assert!(lines[l2].starts_with("    └ ana"), "{:?}", lines[l2]);
    assert!(lines[l3].starts_with("  └ bo"), "{:?}", lines[l3]);
    assert!(lines[l1].contains(&c1[..12]), "{human}");
    assert!(
        !human.contains("elsewhere") && !human.contains("unrelated"),
        "{human}"
    );

    // Unknown or malformed hashes.
    fails(
        rz(&home).args(["thread", "deadbeefdeadbeef"]),
        3,
        &["unknown target"],
    );
    fails(
        rz(&home).args(["--json", "thread", &"0".repeat(64)]),
        3,
        &["unknown target"],
    );
    fails(rz(&home).args(["thread", "xyz"]), 3, &["xyz"]);
}

// ---------------------------------------------------------------------------------------------
// 4. starred
// ---------------------------------------------------------------------------------------------

#[test]
fn starred_keeps_the_latest_star_per_author() {
    let (_d, home) = new_home();
    add_author(&home, "bo");
    let p = write(&home, &["post", "text of p"]);
    let q = write(&home, &["post", "text of q"]);
    assert_eq!(
        jrun(&home, &["starred"]),
        json!({"author": "ana", "starred": []})
    );

    write(&home, &["star", &p]);
    write(&home, &["star", &q]);
    write(&home, &["unstar", &p]);
    assert_eq!(
        jrun(&home, &["starred"]),
        json!({"author": "ana", "starred": [{"hash": q, "text": "text of q"}]})
    );
    // Per author.
    assert_eq!(
        jrun(&home, &["--as", "bo", "starred"]),
        json!({"author": "bo", "starred": []})
    );
    write(&home, &["--as", "bo", "star", &p]);
    assert_eq!(
        jrun(&home, &["--as", "bo", "starred"]),
        json!({"author": "bo", "starred": [{"hash": p, "text": "text of p"}]})
    );
    let ana = jrun(&home, &["starred"]);
    assert_eq!(hashes(ana["starred"].as_array().unwrap()), vec![q.clone()]);

    // Starring again: most recent first.
    write(&home, &["star", &p]);
    let ana = jrun(&home, &["starred"]);
    assert_eq!(
        hashes(ana["starred"].as_array().unwrap()),
        vec![p.clone(), q.clone()]
    );
    // Unstarring something never starred changes nothing visible.
    let other = write(&home, &["post", "other"]);
    write(&home, &["unstar", &other]);
    let ana2 = jrun(&home, &["starred"]);
    assert_eq!(ana2, ana);

    let human = ok(rz(&home).arg("starred"));
    assert!(
        human.contains(&p[..12]) && human.contains("text of q"),
        "{human}"
    );
    fails(
        rz(&home).args(["--as", "nobody", "starred"]),
        3,
        &["nobody"],
    );
    fails(
        rz(&home).args(["star", "0123456789abcdef"]),
        3,
        &["unknown target"],
    );
}

// ---------------------------------------------------------------------------------------------
// 5. circles
// ---------------------------------------------------------------------------------------------

#[test]
fn circles_follow_create_add_remove_rename() {
    let (_d, home) = new_home();
    add_author(&home, "bo");
    let carol = add_author(&home, "carol");
    let bo = key_of(&home, "bo");

    let fam = write(&home, &["circle", "create", "fam", "bo"]);
    let v = jrun(&home, &["circles"]);
    assert_eq!(
        v,
        json!({"owner": "ana", "circles": [{"name": "fam", "id": fam, "members": [bo]}]})
    );
    write(&home, &["circle", "add", "fam", &carol]);
    let v = jrun(&home, &["circles"]);
    let mut both = vec![bo.clone(), carol.clone()];
    both.sort();
    assert_eq!(v["circles"][0]["members"], json!(both));
    write(&home, &["circle", "remove", "fam", "bo"]);
    write(&home, &["circle", "rename", "fam", "kin"]);
    let v = jrun(&home, &["circles"]);
    assert_eq!(
        v,
        json!({"owner": "ana", "circles": [{"name": "kin", "id": fam, "members": [carol]}]})
    );
    assert!(jrun(&home, &["status"])["skipped"]
        .as_array()
        .unwrap()
        .is_empty());

    // Circles belong to their author.
    assert_eq!(
        jrun(&home, &["--as", "bo", "circles"]),
        json!({"owner": "bo", "circles": []})
    );
    let bos = write(&home, &["--as", "bo", "circle", "create", "kin"]);
    let v = jrun(&home, &["--as", "bo", "circles"]);
    assert_eq!(
        v,
        json!({"owner": "bo", "circles": [{"name": "kin", "id": bos, "members": []}]})
    );

    // Operations that do not apply are stored events, skipped by the views.
    let log_len = log_events(&home).len();
    let ghost = write(&home, &["circle", "rename", "nope", "other"]);
    let dup = write(&home, &["circle", "create", "kin"]);
    let ghost_add = write(&home, &["circle", "add", "nope", "bo"]);
    assert_eq!(log_events(&home).len(), log_len + 3);
    let skipped = jrun(&home, &["status"])["skipped"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for (h, needle) in [(&ghost, "nope"), (&dup, "kin"), (&ghost_add, "nope")] {
        let sk = item(&skipped, h);
        assert_eq!(sk["reason"], "circle", "{sk}");
        assert_eq!(sk["type"], "CIRCLE_UPDATE", "{sk}");
        assert!(s(&sk["detail"]).contains(needle), "{sk}");
        assert_eq!(sk["author"], key_of(&home, "ana").as_str());
    }
    assert_eq!(
        jrun(&home, &["circles"]),
        json!({"owner": "ana", "circles": [{"name": "kin", "id": fam, "members": [carol]}]})
    );

    let human = ok(rz(&home).arg("circles"));
    assert!(
        human.contains("kin") && human.contains("1 member(s): carol"),
        "{human}"
    );

    // Members must be local names or keys; nothing is written otherwise.
    let before = log_json(&home);
    fails(
        rz(&home).args(["circle", "add", "kin", "nobody"]),
        3,
        &["nobody"],
    );
    fails(rz(&home).args(["circle", "add", "kin"]), 2, &[]);
    assert_eq!(log_json(&home), before);
    ok(rz(&home).args(["views", "check"]));
}

// ---------------------------------------------------------------------------------------------
// 6. tags
// ---------------------------------------------------------------------------------------------

#[test]
fn tags_count_events_not_taggers() {
    let (_d, home) = new_home();
    add_author(&home, "bo");
    let p = write(&home, &["post", "the well"]);
    let q = write(&home, &["post", "the bread"]);
    assert_eq!(jrun(&home, &["tags"]), json!({"tags": []}));

    write(&home, &["tag", &p, "water"]);
    write(&home, &["--as", "bo", "tag", &p, "water"]);
    write(&home, &["tag", &p, "water"]);
    write(&home, &["tag", &q, "food"]);
    assert_eq!(
        jrun(&home, &["tags"]),
        json!({"tags": [{"tag": "food", "events": 1}, {"tag": "water", "events": 1}]})
    );
    assert_eq!(
        jrun(&home, &["tags", "water"]),
        json!({"tag": "water", "events": [{"hash": p, "text": "the well"}]})
    );
    assert_eq!(
        jrun(&home, &["tags", "food"]),
        json!({"tag": "food", "events": [{"hash": q, "text": "the bread"}]})
    );
    assert_eq!(
        jrun(&home, &["tags", "none"]),
        json!({"tag": "none", "events": []})
    );
    // Tags are case-sensitive names.
    assert_eq!(jrun(&home, &["tags", "Water"])["events"], json!([]));

    write(&home, &["--as", "bo", "tag", &q, "water"]);
    let v = jrun(&home, &["tags"]);
    assert_eq!(v["tags"][1], json!({"tag": "water", "events": 2}));
    let mut both = vec![p.clone(), q.clone()];
    both.sort();
    assert_eq!(
        hashes(
            jrun(&home, &["tags", "water"])["events"]
                .as_array()
                .unwrap()
        ),
        both
    );
    assert_eq!(
        jrun(&home, &["thread", &p])["root"]["tags"],
        json!(["water"])
    );
    assert_eq!(
        jrun(&home, &["thread", &q])["root"]["tags"],
        json!(["food", "water"])
    );

    let human = ok(rz(&home).arg("tags"));
    assert!(human.contains("water") && human.contains("food"), "{human}");
    let human = ok(rz(&home).args(["tags", "food"]));
    assert!(
        human.contains(&q[..12]) && human.contains("the bread"),
        "{human}"
    );

    // Invalid tags are refused before anything is written.
    let before = log_json(&home);
    for bad in ["two words", "#hash", "a,b"] {
        fails(rz(&home).args(["tag", &p, bad]), 3, &[]);
    }
    assert_eq!(log_json(&home), before);
}

// ---------------------------------------------------------------------------------------------
// 7. status
// ---------------------------------------------------------------------------------------------

#[test]
fn status_counts_types_authors_and_skipped_events() {
    let (_d, home) = new_home();
    let ana = key_of(&home, "ana");
    let bo = add_author(&home, "bo");
    let a = write(&home, &["post", "a"]);
    write(&home, &["post", "b"]);
    write(&home, &["like", &a]);
    let recipe = write(
        &home,
        &["append", "--type", "RECIPE", "--payload", "{\"x\":1}"],
    );
    write(&home, &["comment", &a, "hi"]);
    write(&home, &["--as", "bo", "post", "c"]);
    write(&home, &["--as", "bo", "star", &a]);

    let st = jrun(&home, &["status"]);
    assert_eq!(st["events"], 7, "{st}");
    assert_eq!(st["feeds"], 2, "{st}");
    assert_eq!(st["follows"], 2, "{st}");
    assert_eq!(
        st["per_type"],
        json!({"POST": 3, "LIKE": 1, "RECIPE": 1, "COMMENT": 1, "STAR": 1}),
        "{st}"
    );
    let per_author = st["per_author"].as_array().unwrap();
    assert_eq!(per_author.len(), 2, "{st}");
    let pa = |k: &str| {
        per_author
            .iter()
            .find(|x| x["author"] == k)
            .unwrap_or_else(|| panic!("{k} not in {st}"))
    };
    assert_eq!(pa(&ana)["events"], 5);
    assert_eq!(pa(&ana)["name"], "ana");
    assert_eq!(pa(&bo)["events"], 2);
    assert_eq!(pa(&bo)["name"], "bo");

    let skipped = st["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{st}");
    let sk = &skipped[0];
    assert_eq!(sk["hash"], recipe.as_str());
    assert_eq!(sk["reason"], "unknown_type");
    assert_eq!(sk["type"], "RECIPE");
    assert_eq!(sk["author"], ana.as_str());
    assert_eq!(sk["seq"], 4);

    let version = st["schema_version"]
        .as_u64()
        .expect("schema_version is an integer");
    assert!(version >= 3, "{st}");
    assert!(st["store_bytes"].as_u64().unwrap() > 0, "{st}");
    let views = st["views"].as_array().unwrap();
    let tables: Vec<&str> = views.iter().map(|v| s(&v["table"])).collect();
    for t in [
        "v_timeline",
        "v_replies",
        "v_likes",
        "v_stars",
        "v_circles",
        "v_circle_members",
        "v_tags",
        "v_skipped",
    ] {
        assert!(tables.contains(&t), "{t} missing: {st}");
    }
    let rows = |t: &str| {
        views.iter().find(|v| v["table"] == t).unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("v_timeline"), 3);
    assert_eq!(rows("v_likes"), 1);
    assert_eq!(rows("v_replies"), 1);
    assert_eq!(rows("v_stars"), 1);
    assert_eq!(rows("v_skipped"), 1);
    assert_eq!(rows("v_tags"), 0);
    for v in views {
        assert!(is_hex(s(&v["sha256"]), 64), "{v}");
    }

    // A schema-invalid known type cannot be appended locally; an unknown one can.
    fails(
        rz(&home).args(["append", "--type", "POST", "--payload", "{\"x\":1}"]),
        3,
        &[],
    );
    assert_eq!(jrun(&home, &["status"])["events"], 7);

    let human = ok(rz(&home).arg("status"));
    assert!(human.contains("RECIPE"), "{human}");
    assert!(human.contains("unknown_type"), "{human}");
    assert!(human.contains("schema version"), "{human}");
}

// ---------------------------------------------------------------------------------------------
// 8. views rebuild / check
// ---------------------------------------------------------------------------------------------

fn check_json(home: &Path, code: i32) -> (Value, String) {
    let (out, err) = exits(rz(home).args(["--json", "views", "check"]), code);
    (json_of(&out), err)
}

#[test]
fn views_check_detects_tampering_and_rebuild_repairs_it() {
    let (_d, home) = new_home();
    add_author(&home, "bo");
    let p = write(&home, &["post", "p"]);
    let q = write(&home, &["--as", "bo", "post", "q"]);
    write(&home, &["--as", "bo", "like", &p]);
    write(&home, &["star", &q]);
    write(&home, &["tag", &p, "x"]);
    write(&home, &["comment", &q, "c"]);
    write(&home, &["circle", "create", "fam", "bo"]);
    write(&home, &["append", "--type", "RECIPE", "--payload", "{}"]);
    let log0 = log_json(&home);
    let n_events = log0.lines().count() as u64;

    let (c, _) = check_json(&home, 0);
    assert_eq!(c["ok"], true, "{c}");
    assert_eq!(c["differences"], json!([]));
    assert_eq!(c["live"], c["rebuilt"]);
    let live0 = c["live"].clone();
    // Nine views: v_profiles joined the eight in schema 8.
    assert_eq!(live0.as_array().unwrap().len(), 9);
    assert_eq!(jrun(&home, &["status"])["views"], live0);
    let human = ok(rz(&home).args(["views", "check"]));
    assert!(human.starts_with("ok:"), "{human}");
    assert!(human.contains("v_likes"), "{human}");

    // Rebuilding from the log gives exactly the incrementally maintained views.
    let r = jrun(&home, &["views", "rebuild"]);
    assert_eq!(r["views"], live0, "{r}");
    assert_eq!(r["events"], n_events);
    assert!(ok(rz(&home).args(["views", "rebuild"])).contains(&format!("from {n_events} events")));
    assert_eq!(log_json(&home), log0);

    // Tamper 1: a like disappears from the view.
    assert_eq!(tamper_sql(&home, "DELETE FROM v_likes"), 1);
    assert_eq!(item(&feed_items(&home, &[]), &p)["likes"], 0);
    let (c, err) = check_json(&home, 6);
    assert_eq!(c["ok"], false, "{c}");
    let diffs = c["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{c}");
    assert_eq!(diffs[0]["table"], "v_likes");
    assert_eq!(diffs[0]["only_in"], "rebuilt");
    assert!(s(&diffs[0]["row"]).contains(&p), "{c}");
    assert!(err.contains("rebuild"), "{err}");
    assert_ne!(c["live"], c["rebuilt"]);
    assert_eq!(c["rebuilt"], live0);
    let changed: Vec<&Value> = c["live"]
        .as_array()
        .unwrap()
        .iter()
        .zip(live0.as_array().unwrap())
        .filter(|(a, b)| a != b)
        .map(|(a, _)| &a["table"])
        .collect();
    assert_eq!(changed, vec!["v_likes"]);
    let err = fails(
        rz(&home).args(["views", "check"]),
        6,
        &["v_likes", "rebuilt"],
    );
    assert!(err.contains("DIFF"), "{err}");
    assert_eq!(log_json(&home), log0);

    let r = jrun(&home, &["views", "rebuild"]);
    assert_eq!(r["views"], live0);
    let (c, _) = check_json(&home, 0);
    assert_eq!(c["ok"], true, "{c}");
    assert_eq!(item(&feed_items(&home, &[]), &p)["likes"], 1);
    assert_eq!(log_json(&home), log0);

    // Tamper 2: a star flips.
    assert_eq!(tamper_sql(&home, "UPDATE v_stars SET starred = 0"), 1);
    assert_eq!(jrun(&home, &["starred"])["starred"], json!([]));
    let (c, _) = check_json(&home, 6);
    let diffs = c["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 2, "{c}");
    assert!(diffs.iter().all(|d| d["table"] == "v_stars"), "{c}");
    let sides: HashSet<&str> = diffs.iter().map(|d| s(&d["only_in"])).collect();
    assert_eq!(sides, HashSet::from(["live", "rebuilt"]));
    fails(rz(&home).args(["views", "check"]), 6, &["v_stars"]);
    ok(rz(&home).args(["views", "rebuild"]));
    assert_eq!(
        hashes(jrun(&home, &["starred"])["starred"].as_array().unwrap()),
        vec![q.clone()]
    );
    assert_eq!(check_json(&home, 0).0["live"], live0);

    // Tamper 3: a row the log does not justify, and a skipped event forgotten.
    let fake = format!(
        "INSERT INTO v_timeline (ts, hash, author, seq, kind, target) VALUES (1, x'{}', x'{}', 9, 'POST', NULL)",
        "ab".repeat(32),
        "cd".repeat(32)
    );
    assert_eq!(tamper_sql(&home, &fake), 1);
    assert_eq!(tamper_sql(&home, "DELETE FROM v_skipped"), 1);
    let (c, _) = check_json(&home, 6);
    let diffs = c["differences"].as_array().unwrap();
    assert!(
        diffs
            .iter()
            .any(|d| d["table"] == "v_timeline" && d["only_in"] == "live"),
        "{c}"
    );
    assert!(
        diffs
            .iter()
            .any(|d| d["table"] == "v_skipped" && d["only_in"] == "rebuilt"),
        "{c}"
    );
    ok(rz(&home).args(["views", "rebuild"]));
    assert_eq!(check_json(&home, 0).0["live"], live0);

    // None of this touched the log, and the log still verifies.
    assert_eq!(log_json(&home), log0);
    ok(rz(&home).arg("verify"));
}

// ---------------------------------------------------------------------------------------------
// 9. migrate
// ---------------------------------------------------------------------------------------------

#[test]
fn migrate_example_imports_once_with_threads_likes_and_stars() {
    let (_d, home) = new_home();
    let file = PathBuf::from(EXAMPLE);

    let r = migrate(&home, &file, &[]);
    assert_eq!(r["users_created"], 2, "{r}");
    assert_eq!(r["events_created"], 6, "{r}");
    assert_eq!(r["already_imported"], 0, "{r}");
    assert_eq!(r["records"], 8, "{r}");
    assert_eq!(r["bad_lines"], json!([]), "{r}");

    let log1 = log_json(&home);
    let authors1 = authors_json(&home);
    let alice = key_of(&home, "alice");
    let bruno = key_of(&home, "bruno");
    let events = log_events(&home);
    // The six records' events, and each user's PROFILE (its name), first in its feed.
    assert_eq!(events.len(), 8);
    for (key, name) in [(&alice, "alice"), (&bruno, "bruno")] {
        let profile = events
            .iter()
            .find(|e| e["type"] == "PROFILE" && e["author"] == key.as_str())
            .unwrap_or_else(|| panic!("no PROFILE for {name}"));
        assert_eq!(profile["payload"], json!({ "name": name }));
        assert_eq!(profile["seq"], 1);
    }
    assert_eq!(r["profiles_created"], 2, "{r}");

    // Each event is by the right user, at the record's time.
    let find = |ty: &str, text: Option<&str>, author: &str| -> Value {
        events
            .iter()
            .find(|e| {
                e["type"] == ty
                    && e["author"] == author
                    && text.is_none_or(|t| e["payload"]["text"] == t)
            })
            .unwrap_or_else(|| panic!("no {ty} {text:?} by {author}"))
            .clone()
    };
    let p1 = find("POST", Some("Seeds for the school garden arrived"), &alice);
    let p2 = find("POST", Some("Rain expected on Thursday"), &bruno);
    let c1 = find("COMMENT", Some("Tomatoes first, please"), &bruno);
    let c2 = find("COMMENT", Some("Agreed"), &alice);
    let like = find("LIKE", None, &bruno);
    let star = find("STAR", None, &alice);
    for (e, at) in [
        (&p1, 1_700_000_000_000u64),
        (&p2, 1_700_000_100_000),
        (&c1, 1_700_000_200_000),
        (&c2, 1_700_000_300_000),
        (&like, 1_700_000_400_000),
        (&star, 1_700_000_500_000),
    ] {
        assert_eq!(e["timestamp"], at, "{e}");
    }
    let h = |e: &Value| s(&e["hash"]).to_string();
    assert_eq!(c1["payload"]["target"], h(&p1).as_str());
    assert_eq!(c2["payload"]["target"], h(&c1).as_str());
    assert_eq!(like["payload"]["target"], h(&p1).as_str());
    assert_eq!(star["payload"], json!({"target": h(&p2), "starred": true}));
    // Chains: alice profile, p1, c2, star; bruno profile, p2, c1, like.
    assert_eq!(
        (p1["seq"].as_u64(), c2["seq"].as_u64(), star["seq"].as_u64()),
        (Some(2), Some(3), Some(4))
    );
    assert_eq!(
        (p2["seq"].as_u64(), c1["seq"].as_u64(), like["seq"].as_u64()),
        (Some(2), Some(3), Some(4))
    );
    ok(rz(&home).arg("verify"));

    // Twice: nothing new, byte for byte.
    let r = migrate(&home, &file, &[]);
    assert_eq!(r["users_created"], 0, "{r}");
    assert_eq!(r["events_created"], 0, "{r}");
    assert_eq!(r["profiles_created"], 0, "{r}");
    assert_eq!(r["already_imported"], 8, "{r}");
    assert_eq!(log_json(&home), log1);
    assert_eq!(authors_json(&home), authors1);
    let human = ok(rz(&home).args(["migrate", "--from", EXAMPLE]));
    assert!(
        human.contains("0 user(s) and 0 event(s) created, 8 already imported"),
        "{human}"
    );
    assert_eq!(log_json(&home), log1);

    // The views see the imported conversation.
    let t = jrun(&home, &["thread", &h(&p1)]);
    assert_eq!(t["root"]["text"], "Seeds for the school garden arrived");
    assert_eq!(t["root"]["likes"], json!([bruno]));
    let replies = t["replies"].as_array().unwrap();
    assert_eq!(hashes(replies), vec![h(&c1), h(&c2)]);
    assert_eq!(replies[0]["author"], bruno.as_str());
    assert_eq!(replies[0]["depth"], 1);
    assert_eq!(replies[0]["text"], "Tomatoes first, please");
    assert_eq!(replies[1]["author"], alice.as_str());
    assert_eq!(replies[1]["depth"], 2);
    assert_eq!(replies[1]["text"], "Agreed");
    assert_eq!(
        jrun(&home, &["--as", "alice", "starred"]),
        json!({"author": "alice", "starred": [{"hash": h(&p2), "text": "Rain expected on Thursday"}]})
    );
    assert_eq!(
        jrun(&home, &["--as", "bruno", "starred"])["starred"],
        json!([])
    );
    let f = feed_items(&home, &[]);
    assert_eq!(hashes(&f), vec![h(&p2), h(&p1)]);
    assert_eq!(f[1]["likes"], 1);
    assert_eq!(f[1]["replies"], 1);
    assert_eq!(f[1]["author_name"], "alice");
    assert_eq!(check_json(&home, 0).0["ok"], true);
}

const BAD_FILE: &str = r#"{"kind":"user","id":"u1","name":"alice"}
this is not json
{"kind":"post","id":"p1","user":"u9","text":"who am I"}
{"kind":"poke","id":"k1","user":"u1"}
{"kind":"user","id":"u1","name":"alice2"}
{"kind":"post","id":"p2","user":"u1"}
{"kind":"post","id":"p3","user":"u1","text":"good one","at":1700000000000}
{"kind":"user","id":"u7","name":"ana"}
{"kind":"post","id":"p4","user":"u1","text":"when?","at":"yesterday"}
{"kind":"comment","id":"c1","user":"u1","target":"p1","text":"on a bad line"}
"#;

#[test]
fn migrate_with_bad_lines_changes_nothing_unless_skip_bad() {
    let (d, home) = new_home();
    write(&home, &["post", "already here"]);
    let file = write_file(d.path(), "bad.jsonl", BAD_FILE);
    let log0 = log_json(&home);
    let authors0 = authors_json(&home);

    let mut c = rz(&home);
    c.args(["migrate", "--from"]).arg(&file);
    let err = fails(
        &mut c,
        3,
        &["bad.jsonl", "nothing was imported", "8 bad line(s)"],
    );
    let line = |n: usize| -> &str {
        err.lines()
            .find(|l| l.contains(&format!(": line {n}: ")))
            .unwrap_or_else(|| panic!("line {n} not reported: {err}"))
    };
    assert!(line(2).contains("JSON"), "{err}");
    assert!(
        line(3).contains("`user`") && line(3).contains("u9"),
        "{err}"
    );
    assert!(
        line(4).contains("`kind`") && line(4).contains("poke"),
        "{err}"
    );
    assert!(line(5).contains("u1") && line(5).contains("twice"), "{err}");
    assert!(line(6).contains("`text`"), "{err}");
    assert!(line(8).contains("ana"), "{err}");
    assert!(line(9).contains("`at`"), "{err}");
    assert!(
        line(10).contains("`target`") && line(10).contains("p1"),
        "{err}"
    );
    for good in [1, 7] {
        assert!(
            !err.contains(&format!(": line {good}: ")),
            "good line {good} reported: {err}"
        );
    }
    assert_eq!(
        log_json(&home),
        log0,
        "a failed migrate must not write events"
    );
    assert_eq!(
        authors_json(&home),
        authors0,
        "a failed migrate must not add authors"
    );

    // --json without --skip-bad also fails and writes nothing.
    let mut c = rz(&home);
    c.args(["--json", "migrate", "--from"]).arg(&file);
    fails(&mut c, 3, &["line 2"]);
    assert_eq!(log_json(&home), log0);
    assert_eq!(authors_json(&home), authors0);

    // --skip-bad imports the good lines and reports the bad ones.
    let mut c = rz(&home);
    c.args(["--json", "migrate", "--skip-bad", "--from"])
        .arg(&file);
    let (out, err) = exits(&mut c, 0);
    let r = json_of(&out);
    assert_eq!(r["users_created"], 1, "{r}");
    assert_eq!(r["events_created"], 1, "{r}");
    assert_eq!(r["already_imported"], 0, "{r}");
    assert_eq!(r["records"], 2, "{r}");
    let bad = r["bad_lines"].as_array().unwrap();
    let lines: Vec<u64> = bad.iter().map(|b| b["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6, 8, 9, 10], "{r}");
    assert!(s(&bad[1]["error"]).contains("`user`"), "{r}");
    assert!(s(&bad[2]["error"]).contains("`kind`"), "{r}");
    assert!(s(&bad[4]["error"]).contains("`text`"), "{r}");
    assert!(
        err.contains(": line 2: "),
        "bad lines are also listed on stderr: {err}"
    );

    let alice = key_of(&home, "alice");
    let events = log_events(&home);
    // The good post, and alice's PROFILE.
    assert_eq!(events.len(), 3);
    let good = events
        .iter()
        .find(|e| e["author"] == alice.as_str() && e["type"] == "POST")
        .unwrap();
    assert_eq!(good["payload"], json!({"text": "good one"}));
    assert_eq!(good["timestamp"], 1_700_000_000_000u64);
    assert!(!authors_json(&home).contains("alice2"));

    // Again with --skip-bad: the good lines are already there.
    let log1 = log_json(&home);
    let mut c = rz(&home);
    c.args(["--json", "migrate", "--skip-bad", "--from"])
        .arg(&file);
    let r = json_of(&ok(&mut c));
    assert_eq!(r["users_created"], 0, "{r}");
    assert_eq!(r["events_created"], 0, "{r}");
    assert_eq!(r["already_imported"], 2, "{r}");
    assert_eq!(r["bad_lines"].as_array().unwrap().len(), 8, "{r}");
    assert_eq!(log_json(&home), log1);
}

#[test]
fn migrate_from_a_missing_file_is_invalid_input() {
    let (d, home) = new_home();
    let log0 = log_json(&home);
    let missing = d.path().join("no-such-dir").join("old-app.jsonl");
    let mut c = rz(&home);
    c.args(["migrate", "--from"]).arg(&missing);
    fails(&mut c, 3, &[missing.to_str().unwrap()]);
    assert_eq!(log_json(&home), log0);
    // A directory is not a file of records either.
    let mut c = rz(&home);
    c.args(["migrate", "--from"]).arg(d.path());
    let out = c.output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    // migrate needs a home.
    let nohome = d.path().join("nohome");
    let mut c = rz(&nohome);
    c.args(["migrate", "--from", EXAMPLE]);
    fails(&mut c, 5, &[]);
    fails(bin().args(["migrate"]), 2, &["--from"]);
}

#[test]
fn migrate_overlong_text_is_a_bad_line_and_changes_nothing() {
    let (d, home) = new_home();
    let long = "a".repeat(10_001);
    let text = format!(
        "{{\"kind\":\"user\",\"id\":\"u1\",\"name\":\"alice\"}}\n\
         {{\"kind\":\"post\",\"id\":\"p1\",\"user\":\"u1\",\"text\":\"fine\"}}\n\
         {{\"kind\":\"post\",\"id\":\"p2\",\"user\":\"u1\",\"text\":\"{long}\"}}\n"
    );
    let file = write_file(d.path(), "long.jsonl", &text);
    let log0 = log_json(&home);
    let authors0 = authors_json(&home);
    let mut c = rz(&home);
    c.args(["migrate", "--from"]).arg(&file);
    fails(&mut c, 3, &["line 3", "`text`"]);
    assert_eq!(authors_json(&home), authors0, "no author may be created");
    assert_eq!(log_json(&home), log0, "no event may be written");
    // With --skip-bad the long post is skipped and the rest imported.
    let r = migrate(&home, &file, &["--skip-bad"]);
    assert_eq!(r["events_created"], 1, "{r}");
    assert_eq!(r["bad_lines"][0]["line"], 3, "{r}");
}

#[test]
fn migrate_duplicate_comment_ids_are_bad_lines() {
    let (d, home) = new_home();
    let text = "{\"kind\":\"user\",\"id\":\"u1\",\"name\":\"alice\"}\n\
                {\"kind\":\"post\",\"id\":\"p1\",\"user\":\"u1\",\"text\":\"post\"}\n\
                {\"kind\":\"comment\",\"id\":\"c1\",\"user\":\"u1\",\"target\":\"p1\",\"text\":\"first\"}\n\
                {\"kind\":\"comment\",\"id\":\"c1\",\"user\":\"u1\",\"target\":\"p1\",\"text\":\"second\"}\n\
                {\"kind\":\"comment\",\"id\":\"p1\",\"user\":\"u1\",\"target\":\"p1\",\"text\":\"third\"}\n";
    let file = write_file(d.path(), "dup.jsonl", text);
    let log0 = log_json(&home);
    let mut c = rz(&home);
    c.args(["migrate", "--from"]).arg(&file);
    let err = fails(&mut c, 3, &["line 4", "line 5"]);
    assert!(err.contains("c1") && err.contains("twice"), "{err}");
    assert_eq!(log_json(&home), log0);
}

#[test]
fn migrate_rejects_user_names_author_add_would_refuse() {
    let (d, home) = new_home();
    let long = "n".repeat(65);
    let text = format!(
        "{{\"kind\":\"user\",\"id\":\"u1\",\"name\":\"{long}\"}}\n\
         {{\"kind\":\"user\",\"id\":\"u2\",\"name\":\" spaced \"}}\n\
         {{\"kind\":\"user\",\"id\":\"u3\",\"name\":\"tab\\there\"}}\n"
    );
    let file = write_file(d.path(), "names.jsonl", &text);
    // The same names are refused by `author add`.
    fails(rz(&home).args(["author", "add", &long]), 3, &[]);
    fails(rz(&home).args(["author", "add", " spaced "]), 3, &[]);
    let authors0 = authors_json(&home);
    let mut c = rz(&home);
    c.args(["migrate", "--from"]).arg(&file);
    fails(&mut c, 3, &["line 1", "line 2", "line 3"]);
    assert_eq!(authors_json(&home), authors0);
}

/// Peak resident set (VmHWM, kB) of a running process, if the platform tells.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `rhizome --home HOME migrate --from FILE` (and `extra`), sampling the peak RSS (kB):
/// exit code, stdout, stderr, peak.
fn migrate_peak(home: &Path, file: &Path, extra: &[&str]) -> (i32, String, String, u64) {
    let d = tempfile::tempdir().unwrap();
    let (out, err) = (d.path().join("out"), d.path().join("err"));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("rhizome"))
        .env_remove("RHIZOME_PASSPHRASE")
        .env_remove("RHIZOME_HOME")
        .arg("--home")
        .arg(home)
        .args(extra)
        .args(["migrate", "--from"])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        if let Some(p) = peak_rss_kb(child.id()) {
            peak = peak.max(p);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        status.code().unwrap(),
        std::fs::read_to_string(&out).unwrap(),
        stderr,
        peak,
    )
}

/// A 40 MB line is a bad line, read without being held, and its error quotes 80 characters
/// of it; long values in other errors are quoted as short. Before: the whole line was read,
/// parsed and echoed (a 300 MB line: 1.77 GB of memory, 300 MB of error text).
#[test]
fn migrate_quotes_a_short_prefix_of_a_huge_line_in_bounded_memory() {
    let (d, home) = new_home();
    let file = d.path().join("huge.jsonl");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        w.write_all(b"{\"kind\":\"user\",\"id\":\"u1\",\"name\":\"alice\"}\n")
            .unwrap();
        w.write_all(b"{\"kind\":\"post\",\"id\":\"p1\",\"user\":\"u1\",\"text\":\"")
            .unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..40 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"\"}\n").unwrap();
        let long = "k".repeat(5000);
        writeln!(w, "{{\"kind\":\"{long}\"}}").unwrap();
        writeln!(w, "{{\"kind\":\"user\",\"id\":\"u2\",\"name\":\"{long}\"}}").unwrap();
        writeln!(
            w,
            "{{\"kind\":\"like\",\"user\":\"{long}\",\"target\":\"p\"}}"
        )
        .unwrap();
        writeln!(w, "{{\"{long}\":1,\"{long}\":2}}").unwrap();
        writeln!(
            w,
            "{{\"kind\":\"post\",\"id\":\"p2\",\"user\":\"u1\",\"text\":\"{}\"}}",
            "t".repeat(20_000)
        )
        .unwrap();
        w.flush().unwrap();
    }
    let log0 = log_json(&home);
    let (code, _, err, peak) = migrate_peak(&home, &file, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.len() < 4000,
        "{} bytes of errors: {}",
        err.len(),
        &err[..4000.min(err.len())]
    );
    let line = |n: usize| -> &str {
        err.lines()
            .find(|l| l.contains(&format!(": line {n}: ")))
            .unwrap_or_else(|| panic!("line {n} not reported: {err}"))
    };
    assert!(line(2).contains("longer than 1048576 bytes"), "{err}");
    assert!(
        line(2).contains("\"{\\\"kind\\\":\\\"post\\\",\\\"id\\\":\\\"p1\\\",\\\"user\\\":\\\"u1\\\",\\\"text\\\":\\\"xxxxxxx"),
        "{err}"
    );
    for n in 2..=7 {
        assert!(line(n).len() < 400, "line {n}: {}", line(n));
    }
    assert!(line(3).contains("`kind`"), "{err}");
    assert!(line(4).contains("`name`"), "{err}");
    assert!(line(5).contains("`user`"), "{err}");
    assert!(line(6).contains("duplicate"), "{err}");
    assert!(
        line(7).contains("`text`") && line(7).contains("longer than 10000"),
        "{err}"
    );
    assert!(peak < 100 * 1024, "peak {peak} kB");
    assert_eq!(log_json(&home), log0);
}

/// Valid records are not held in memory: 100 MB of posts (10,000 of 10,000 characters) are
/// checked and imported in about 80 MB, as 300 MB are. Before: the records were held (this
/// file: 185 MB; a 300 MB one: 391 MB).
#[test]
fn migrate_does_not_hold_the_records() {
    let (d, home) = new_home();
    let made = d.path().join("made");
    let out = ok(bin()
        .args([
            "bench",
            "hostile",
            "--case",
            "migrate-records",
            "--bytes",
            "100000000",
            "--dir",
        ])
        .arg(&made));
    let file = PathBuf::from(out.trim());
    let (code, stdout, err, peak) = migrate_peak(&home, &file, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let r = json_of(&stdout);
    assert_eq!(r["users_created"], 100, "{r}");
    assert!(r["events_created"].as_u64().unwrap() >= 9_900, "{r}");
    assert!(peak < 130 * 1024, "peak {peak} kB");
}

/// The input is read twice (checked, then imported): a file that changed in between stops
/// the import with a clear error, and a run on the file as it now is finishes the job.
#[test]
fn migrate_reads_what_it_checked() {
    let (d, home) = new_home();
    let text = "{\"kind\":\"user\",\"id\":\"u1\",\"name\":\"alice\"}\n\
                {\"kind\":\"post\",\"id\":\"p1\",\"user\":\"u1\",\"text\":\"one\"}\n";
    let file = write_file(d.path(), "a.jsonl", text);
    let r = migrate(&home, &file, &[]);
    assert_eq!(r["events_created"], 1, "{r}");
    assert_eq!(r["records"], 2, "{r}");
    let r = migrate(&home, &file, &[]);
    assert_eq!(r["already_imported"], 2, "{r}");
}
