//! Reading the views: `feed`, `thread`, `starred`, `circles`, `tags`, `status`, `follow`,
//! `views rebuild|check`.

use anyhow::Result;
use rhizome_core::Hash;
use rhizome_node::read::{when, Names, Shown};
use rhizome_node::text::{printable, printable_body};
use rhizome_node::StoreLocation;
use serde_json::{json, Value};
use std::collections::HashMap;

use crate::exit::{fail, VERIFY_FAILED};
use crate::home;

/// The text of an event for people: marked when only a circle may read it (PROTOCOL 9.1).
/// Escaped for a terminal, each line after the first behind `continuation`, so a post can
/// neither drive the terminal nor fake a record of its own.
fn shown_text(s: &Shown, continuation: &str) -> String {
    if s.withheld {
        return "(payload withheld)".into();
    }
    let text = printable_body(s.text.as_deref().unwrap_or_default(), continuation);
    match &s.circle {
        Some(circle) => format!("[circle {}] {text}", printable(circle)),
        None => text,
    }
}

/// Where the continuation lines of a body start in `feed`, `thread` (at depth 0) and lists.
const CONTINUED: &str = "    | ";

/// `rhizome feed`.
pub fn feed(
    location: &StoreLocation,
    author: Option<&str>,
    limit: u32,
    before: Option<&str>,
    json: bool,
) -> Result<()> {
    let node = home::open_for_reading(location)?;
    let page = node.feed(author, before, limit as usize)?;
    let names = node.names()?;
    let next = page.next.map(|c| c.to_string());
    if json {
        let list = page
            .items
            .iter()
            .map(|i| {
                let mut v = serde_json::to_value(i)?;
                v["text"] = json!(i.shown.text);
                v["author_name"] = json!(names.local(&i.item.author));
                v["name"] = json!(names.name(&i.item.author));
                v["cursor"] = json!(i.cursor.to_string());
                Ok(v)
            })
            .collect::<Result<Vec<_>>>()?;
        say!("{}", json!({"items": list, "next": next}));
        return Ok(());
    }
    if page.items.is_empty() {
        say!("(nothing here yet: post something, or follow authors and import their events)");
    }
    for i in &page.items {
        let text = shown_text(&i.shown, CONTINUED);
        let what = match (&i.item.kind[..], i.item.target) {
            ("RESHARE", Some(t)) => format!("reshared {}: {text}", &t.to_hex()[..12]),
            _ => text,
        };
        say!(
            "{}  {:<14} {}  {what}",
            when(i.item.ts),
            names.of(&i.item.author),
            &i.item.hash.to_hex()[..12]
        );
        if i.item.likes + i.item.replies > 0 {
            say!(
                "{:>32} {} like(s), {} repl(ies)",
                "",
                i.item.likes,
                i.item.replies
            );
        }
    }
    if let Some(n) = next {
        say!("-- more: rhizome feed --before {n}");
    }
    Ok(())
}

/// `rhizome thread`.
pub fn thread(location: &StoreLocation, hash: &str, json: bool) -> Result<()> {
    let node = home::open_for_reading(location)?;
    let t = node.thread(hash)?;
    let names = node.names()?;
    let root = &t.root;
    if json {
        let list = t
            .replies
            .iter()
            .map(|(r, shown)| {
                let mut v = serde_json::to_value(r)?;
                v["text"] = json!(shown.text);
                v["name"] = json!(names.name(&r.author));
                Ok(v)
            })
            .collect::<Result<Vec<_>>>()?;
        let reshares = t
            .reshares
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r)?;
                v["name"] = json!(names.name(&r.author));
                Ok(v)
            })
            .collect::<Result<Vec<_>>>()?;
        say!(
            "{}",
            json!({"root": {"hash": root.hash, "author": root.header.author, "name": names.name(&root.header.author), "type": root.header.kind.as_str(),
                            "timestamp": root.header.timestamp, "text": t.shown.text,
                            "likes": t.likers, "tags": t.tags, "reshares": reshares},
                   "replies": list})
        );
        return Ok(());
    }
    say!(
        "{}  {}  {}  {}",
        when(root.header.timestamp.get()),
        names.of(&root.header.author),
        &root.hash.to_hex()[..12],
        shown_text(&t.shown, CONTINUED)
    );
    if !t.likers.is_empty() {
        let who: Vec<String> = t.likers.iter().map(|k| names.of(k)).collect();
        say!("  liked by {}", who.join(", "));
    }
    for r in &t.reshares {
        say!(
            "  reshared by {} at {}  {}",
            names.of(&r.author),
            when(r.ts),
            &r.hash.to_hex()[..12]
        );
    }
    // Print depth-first: children of each node in time order.
    let mut children: HashMap<Hash, Vec<&(rhizome_node::Reply, Shown)>> = HashMap::new();
    for r in &t.replies {
        children.entry(r.0.target).or_default().push(r);
    }
    let mut stack: Vec<(&(rhizome_node::Reply, Shown), usize)> = children
        .get(&root.hash)
        .map(|c| c.iter().rev().map(|r| (*r, 1)).collect())
        .unwrap_or_default();
    while let Some(((r, shown), depth)) = stack.pop() {
        say!(
            "{}└ {}  {}  {}",
            "  ".repeat(depth),
            names.of(&r.author),
            &r.hash.to_hex()[..12],
            shown_text(shown, &format!("{}{CONTINUED}", "  ".repeat(depth)))
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
    names: &Names<'_>,
    items: &[(Hash, Shown)],
    json: bool,
    key: &str,
    mut extra: serde_json::Map<String, Value>,
) -> Result<()> {
    if json {
        let v: Vec<_> = items
            .iter()
            .map(|(h, s)| json!({"hash": h, "text": s.text}))
            .collect();
        extra.insert(key.to_string(), json!(v));
        say!("{}", Value::Object(extra));
    } else {
        for (h, s) in items {
            match &s.author {
                Some(a) => say!(
                    "{}  {}  {}",
                    &h.to_hex()[..12],
                    names.of(a),
                    shown_text(s, CONTINUED)
                ),
                None => say!("{}  (not here yet)", &h.to_hex()[..12]),
            }
        }
    }
    Ok(())
}

/// `rhizome starred`.
pub fn starred(location: &StoreLocation, as_author: Option<&str>, json: bool) -> Result<()> {
    let node = home::open_for_reading(location)?;
    let (author, list) = node.starred(as_author)?;
    let mut extra = serde_json::Map::new();
    extra.insert("author".into(), json!(author.name));
    print_events(&node.names()?, &list, json, "starred", extra)
}

/// `rhizome circles`.
pub fn circles(location: &StoreLocation, as_author: Option<&str>, json: bool) -> Result<()> {
    let node = home::open_for_reading(location)?;
    let (author, circles) = node.circles(as_author)?;
    let names = node.names()?;
    if json {
        say!("{}", json!({"owner": author.name, "circles": circles}));
    } else {
        for c in &circles {
            let ms: Vec<String> = c.members.iter().map(|m| names.of(m)).collect();
            say!(
                "{:<16} {} member(s): {}",
                printable(&c.name),
                ms.len(),
                ms.join(", ")
            );
        }
    }
    Ok(())
}

/// `rhizome tags`.
pub fn tags(location: &StoreLocation, tag: Option<&str>, json: bool) -> Result<()> {
    let node = home::open_for_reading(location)?;
    match tag {
        None => {
            let counts = node.tag_counts()?;
            if json {
                let v: Vec<_> = counts
                    .iter()
                    .map(|(t, n)| json!({"tag": t, "events": n}))
                    .collect();
                say!("{}", json!({"tags": v}));
            } else {
                for (t, n) in &counts {
                    say!("{:<24} {n}", printable(t));
                }
            }
        }
        Some(tag) => {
            let events = node.tagged(tag)?;
            let mut extra = serde_json::Map::new();
            extra.insert("tag".into(), json!(tag));
            print_events(&node.names()?, &events, json, "events", extra)?;
        }
    }
    Ok(())
}

/// `rhizome status`.
pub fn status(location: &StoreLocation, json: bool) -> Result<()> {
    let node = home::open_for_reading(location)?;
    let names = node.names()?;
    let st = node.status()?;
    if json {
        let per_type: serde_json::Map<String, Value> = st
            .per_type
            .iter()
            .map(|(t, n)| (t.clone(), json!(n)))
            .collect();
        let per_author: Vec<_> = st
            .per_author
            .iter()
            .map(|(k, s)| json!({"author": k, "name": names.local(k), "events": s}))
            .collect();
        say!(
            "{}",
            json!({"events": st.events, "feeds": st.feeds, "follows": st.follows, "per_type": per_type,
                   "per_author": per_author, "skipped": st.skipped, "store_bytes": st.store_bytes,
                   "schema_version": st.schema_version, "views": st.views})
        );
        return Ok(());
    }
    say!(
        "events         {} in {} feeds ({} followed)",
        st.events,
        st.feeds,
        st.follows
    );
    match st.store_bytes {
        Some(size) => say!(
            "store          {:.1} MiB, schema version {}",
            size as f64 / 1_048_576.0,
            st.schema_version
        ),
        None => say!("store          schema version {}", st.schema_version),
    }
    say!("per type");
    for (t, n) in &st.per_type {
        say!("  {:<16} {n}", printable(t));
    }
    say!("per author");
    for (k, s) in &st.per_author {
        say!("  {:<16} {s}", names.of(k));
    }
    say!("skipped by views {}", st.skipped.len());
    for s in &st.skipped {
        say!(
            "  {} seq {} {} ({}): {}",
            names.of(&s.author),
            s.seq,
            printable(&s.kind),
            s.reason,
            printable(&s.detail)
        );
    }
    Ok(())
}

/// `rhizome follow` / `unfollow`.
pub fn follow(location: &StoreLocation, author: &str, on: bool, json: bool) -> Result<()> {
    let (key, changed) = home::open(location)?.follow(author, on)?;
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
pub fn rebuild(location: &StoreLocation, json: bool) -> Result<()> {
    let (n, secs, views) = home::open(location)?.rebuild_views()?;
    if json {
        say!("{}", json!({"events": n, "seconds": secs, "views": views}));
    } else {
        say!("rebuilt views from {n} events in {secs:.2} s");
    }
    Ok(())
}

/// `rhizome views check`.
pub fn check(location: &StoreLocation, json: bool) -> Result<()> {
    let report = home::open(location)?.check_views()?;
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
            let diff = format!("DIFF {t}: only in {side}: {row}");
            eprintln!("{}", printable(&diff));
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
