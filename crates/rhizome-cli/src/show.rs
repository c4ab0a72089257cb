//! Reading the views: `feed`, `thread`, `starred`, `circles`, `tags`, `status`, `follow`,
//! `views rebuild|check`.

use anyhow::Result;
use rhizome_core::{Hash, PublicKey};
use rhizome_store::views::Cursor;
use rhizome_store::{SqliteStore, Store};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use crate::exit::{fail, INVALID_INPUT, VERIFY_FAILED};
use crate::home;
use crate::read::resolve_feed;
use crate::write::resolve_target;

/// How a person is named in human output: the name they go by beside the fingerprint of
/// their key, since names are not unique (anyone may publish any name); the fingerprint alone
/// when no name is known. Every name printed for people goes through here.
pub(crate) fn author_label(name: Option<&str>, key: &PublicKey) -> String {
    match name {
        Some(name) => format!("{name} ({})", key.fingerprint()),
        None => key.fingerprint(),
    }
}

/// Names for keys, to show people rather than hex: an author's latest PROFILE (PROTOCOL 5),
/// else, for a local author who has none, the local name. Looked up once per key.
pub(crate) struct Names<'s> {
    store: &'s SqliteStore,
    local: HashMap<PublicKey, String>,
    seen: RefCell<HashMap<PublicKey, Option<String>>>,
}

impl<'s> Names<'s> {
    pub(crate) fn load(store: &'s SqliteStore) -> Result<Self> {
        Ok(Self {
            store,
            local: store
                .authors()?
                .into_iter()
                .map(|a| (a.public_key, a.name))
                .collect(),
            seen: RefCell::default(),
        })
    }
    /// The name `k` goes by, if one is known.
    pub(crate) fn name(&self, k: &PublicKey) -> Result<Option<String>> {
        if let Some(n) = self.seen.borrow().get(k) {
            return Ok(n.clone());
        }
        let n = match self.store.profile(k)? {
            Some(p) => Some(p.name),
            None => self.local.get(k).cloned(),
        };
        self.seen.borrow_mut().insert(*k, n.clone());
        Ok(n)
    }
    /// The label of `k` for people (see [`author_label`]).
    pub(crate) fn of(&self, k: &PublicKey) -> Result<String> {
        Ok(author_label(self.name(k)?.as_deref(), k))
    }
    fn local(&self, k: &PublicKey) -> Option<&str> {
        self.local.get(k).map(String::as_str)
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) for a millisecond timestamp.
fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
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
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The text an event shows: its `text` or `comment` field, if its payload is here.
fn text_of(store: &SqliteStore, hash: &Hash) -> Result<Option<String>> {
    Ok(store.get(hash)?.and_then(|e| {
        let v = e.payload?.value().clone();
        ["text", "comment"]
            .iter()
            .find_map(|f| v.get(*f).and_then(Value::as_str).map(str::to_string))
    }))
}

/// The text of an event for people: marked when only a circle may read it (PROTOCOL 9.1).
fn shown_text(store: &SqliteStore, hash: &Hash) -> Result<String> {
    let Some(e) = store.get(hash)? else {
        return Ok(String::new());
    };
    let Some(v) = e.payload.as_ref().map(|p| p.value()) else {
        return Ok("(payload withheld)".into());
    };
    let text = ["text", "comment"]
        .iter()
        .find_map(|f| v.get(*f).and_then(Value::as_str))
        .unwrap_or_default();
    Ok(
        match v.pointer("/audience/circle").and_then(Value::as_str) {
            Some(circle) => format!("[circle {circle}] {text}"),
            None => text.to_string(),
        },
    )
}

/// `rhizome feed`.
pub fn feed(
    home_dir: &Path,
    author: Option<&str>,
    limit: u32,
    before: Option<&str>,
    json: bool,
) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    let author = author.map(|a| resolve_feed(&store, a)).transpose()?;
    let cursor = before
        .map(|c| c.parse::<Cursor>().map_err(|e| fail(INVALID_INPUT, e)))
        .transpose()?;
    let items = store.timeline(author.as_ref(), cursor, limit as usize)?;
    let next = (items.len() == limit as usize)
        .then(|| {
            items.last().map(|i| {
                Cursor {
                    ts: i.ts,
                    hash: i.hash,
                }
                .to_string()
            })
        })
        .flatten();
    let names = Names::load(&store)?;
    if json {
        let list = items
            .iter()
            .map(|i| {
                let mut v = serde_json::to_value(i)?;
                v["text"] = json!(text_of(&store, &i.hash)?);
                v["author_name"] = json!(names.local(&i.author));
                v["name"] = json!(names.name(&i.author)?);
                v["cursor"] = json!(Cursor {
                    ts: i.ts,
                    hash: i.hash
                }
                .to_string());
                Ok(v)
            })
            .collect::<Result<Vec<_>>>()?;
        say!("{}", json!({"items": list, "next": next}));
        return Ok(());
    }
    if items.is_empty() {
        say!("(nothing here yet: post something, or follow authors and import their events)");
    }
    for i in &items {
        let text = shown_text(&store, &i.hash)?;
        let what = match (&i.kind[..], i.target) {
            ("RESHARE", Some(t)) => format!("reshared {}: {text}", &t.to_hex()[..12]),
            _ => text,
        };
        say!(
            "{}  {:<14} {}  {what}",
            when(i.ts),
            names.of(&i.author)?,
            &i.hash.to_hex()[..12]
        );
        if i.likes + i.replies > 0 {
            say!("{:>32} {} like(s), {} repl(ies)", "", i.likes, i.replies);
        }
    }
    if let Some(n) = next {
        say!("-- more: rhizome feed --before {n}");
    }
    Ok(())
}

/// `rhizome thread`.
pub fn thread(home_dir: &Path, hash: &str, json: bool) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    let root = resolve_target(&store, hash)?;
    let names = Names::load(&store)?;
    let replies = store.thread(&root)?;
    let root_ev = store
        .get(&root)?
        .ok_or_else(|| fail(INVALID_INPUT, format!("unknown event {root}")))?;
    if json {
        let list = replies
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r)?;
                v["text"] = json!(text_of(&store, &r.hash)?);
                v["name"] = json!(names.name(&r.author)?);
                Ok(v)
            })
            .collect::<Result<Vec<_>>>()?;
        say!(
            "{}",
            json!({"root": {"hash": root, "author": root_ev.header.author, "name": names.name(&root_ev.header.author)?, "type": root_ev.header.kind.as_str(),
                            "timestamp": root_ev.header.timestamp, "text": text_of(&store, &root)?,
                            "likes": store.likers(&root)?, "tags": store.tags_of(&root)?},
                   "replies": list})
        );
        return Ok(());
    }
    let text = shown_text(&store, &root)?;
    say!(
        "{}  {}  {}  {text}",
        when(root_ev.header.timestamp.get()),
        names.of(&root_ev.header.author)?,
        &root.to_hex()[..12]
    );
    let likers = store.likers(&root)?;
    if !likers.is_empty() {
        let who = likers
            .iter()
            .map(|k| names.of(k))
            .collect::<Result<Vec<_>>>()?;
        say!("  liked by {}", who.join(", "));
    }
    // Print depth-first: children of each node in time order.
    let mut children: HashMap<Hash, Vec<&rhizome_store::views::Reply>> = HashMap::new();
    for r in &replies {
        children.entry(r.target).or_default().push(r);
    }
    let mut stack: Vec<(&rhizome_store::views::Reply, usize)> = children
        .get(&root)
        .map(|c| c.iter().rev().map(|r| (*r, 1)).collect())
        .unwrap_or_default();
    while let Some((r, depth)) = stack.pop() {
        let text = shown_text(&store, &r.hash)?;
        say!(
            "{}└ {}  {}  {text}",
            "  ".repeat(depth),
            names.of(&r.author)?,
            &r.hash.to_hex()[..12]
        );
        if let Some(c) = children.get(&r.hash) {
            stack.extend(c.iter().rev().map(|x| (*x, depth + 1)));
        }
    }
    Ok(())
}

/// Prints events by hash with their texts: human lines, or a JSON document with `key: [...]`
/// beside the `extra` members.
fn print_events(
    store: &SqliteStore,
    hashes: &[Hash],
    json: bool,
    key: &str,
    mut extra: serde_json::Map<String, Value>,
) -> Result<()> {
    let names = Names::load(store)?;
    let items = hashes
        .iter()
        .map(|h| {
            let author = store.get(h)?.map(|e| e.header.author);
            Ok((h, author, text_of(store, h)?))
        })
        .collect::<Result<Vec<_>>>()?;
    if json {
        let v: Vec<_> = items
            .iter()
            .map(|(h, _, t)| json!({"hash": h, "text": t}))
            .collect();
        extra.insert(key.to_string(), json!(v));
        say!("{}", Value::Object(extra));
    } else {
        for (h, a, _) in &items {
            match a {
                Some(a) => say!(
                    "{}  {}  {}",
                    &h.to_hex()[..12],
                    names.of(a)?,
                    shown_text(store, h)?
                ),
                None => say!("{}  (not here yet)", &h.to_hex()[..12]),
            }
        }
    }
    Ok(())
}

/// `rhizome starred`.
pub fn starred(home_dir: &Path, as_author: Option<&str>, json: bool) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    let author = store.author(as_author)?;
    let list = store.starred(&author.public_key)?;
    let mut extra = serde_json::Map::new();
    extra.insert("author".into(), json!(author.name));
    print_events(&store, &list, json, "starred", extra)
}

/// `rhizome circles`.
pub fn circles(home_dir: &Path, as_author: Option<&str>, json: bool) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    let author = store.author(as_author)?;
    let names = Names::load(&store)?;
    let circles = store.circles(&author.public_key)?;
    if json {
        say!("{}", json!({"owner": author.name, "circles": circles}));
    } else {
        for c in &circles {
            let ms = c
                .members
                .iter()
                .map(|m| names.of(m))
                .collect::<Result<Vec<_>>>()?;
            say!("{:<16} {} member(s): {}", c.name, ms.len(), ms.join(", "));
        }
    }
    Ok(())
}

/// `rhizome tags`.
pub fn tags(home_dir: &Path, tag: Option<&str>, json: bool) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    match tag {
        None => {
            let counts = store.tag_counts()?;
            if json {
                let v: Vec<_> = counts
                    .iter()
                    .map(|(t, n)| json!({"tag": t, "events": n}))
                    .collect();
                say!("{}", json!({"tags": v}));
            } else {
                for (t, n) in &counts {
                    say!("{t:<24} {n}");
                }
            }
        }
        Some(tag) => {
            let events = store.tagged(tag)?;
            let mut extra = serde_json::Map::new();
            extra.insert("tag".into(), json!(tag));
            print_events(&store, &events, json, "events", extra)?;
        }
    }
    Ok(())
}

/// `rhizome status`.
pub fn status(home_dir: &Path, json: bool) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    let names = Names::load(&store)?;
    let types = store.type_counts()?;
    let clock = store.clock()?;
    let skipped = store.skipped()?;
    let stats = store.stats()?;
    let size = store.size_on_disk();
    let version = store.schema_version()?;
    let follows = store.follows()?.len();
    if json {
        let per_type: serde_json::Map<String, Value> =
            types.iter().map(|(t, n)| (t.clone(), json!(n))).collect();
        let per_author: Vec<_> = clock
            .iter()
            .map(|(k, s)| json!({"author": k, "name": names.local(k), "events": s}))
            .collect();
        say!(
            "{}",
            json!({"events": stats.events, "feeds": stats.feeds, "follows": follows, "per_type": per_type,
                   "per_author": per_author, "skipped": skipped, "store_bytes": size,
                   "schema_version": version, "views": store.view_digests()?})
        );
        return Ok(());
    }
    say!(
        "events         {} in {} feeds ({follows} followed)",
        stats.events,
        stats.feeds
    );
    say!(
        "store          {:.1} MiB, schema version {version}",
        size as f64 / 1_048_576.0
    );
    say!("per type");
    for (t, n) in &types {
        say!("  {t:<16} {n}");
    }
    say!("per author");
    for (k, s) in clock.iter() {
        say!("  {:<16} {s}", names.of(k)?);
    }
    say!("skipped by views {}", skipped.len());
    for s in &skipped {
        say!(
            "  {} seq {} {} ({}): {}",
            names.of(&s.author)?,
            s.seq,
            s.kind,
            s.reason,
            s.detail
        );
    }
    Ok(())
}

/// `rhizome follow` / `unfollow`.
pub fn follow(home_dir: &Path, author: &str, on: bool, json: bool) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let key = resolve_feed(&store, author)?;
    let changed = if on {
        store.follow(&key)?
    } else {
        store.unfollow(&key)?
    };
    if json {
        say!(
            "{}",
            json!({"author": key, "following": on, "changed": changed})
        );
    } else {
        let verb = if on { "following" } else { "not following" };
        let note = if changed { "" } else { " (already)" };
        say!("{verb} {key}{note}");
    }
    Ok(())
}

/// `rhizome views rebuild`.
pub fn rebuild(home_dir: &Path, json: bool) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let t = Instant::now();
    let n = store.rebuild_views()?;
    let secs = t.elapsed().as_secs_f64();
    if json {
        say!(
            "{}",
            json!({"events": n, "seconds": secs, "views": store.view_digests()?})
        );
    } else {
        say!("rebuilt views from {n} events in {secs:.2} s");
    }
    Ok(())
}

/// `rhizome views check`.
pub fn check(home_dir: &Path, json: bool) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let report = store.check_views()?;
    if json {
        say!(
            "{}",
            json!({"ok": report.ok(), "live": report.live, "rebuilt": report.rebuilt,
                           "differences": report.differences.iter().map(|(t, side, row)| json!({"table": t, "only_in": side, "row": row})).collect::<Vec<_>>()})
        );
    } else if report.ok() {
        say!("ok: views match a rebuild from the log");
        for d in &report.live {
            say!("  {:<18} {:>8} rows  {}", d.table, d.rows, &d.sha256[..16]);
        }
    } else {
        for (t, side, row) in &report.differences {
            eprintln!("DIFF {t}: only in {side}: {row}");
        }
    }
    if report.ok() {
        Ok(())
    } else {
        Err(fail(
            VERIFY_FAILED,
            "views differ from a rebuild of the log (run `rhizome views rebuild`)",
        ))
    }
}
