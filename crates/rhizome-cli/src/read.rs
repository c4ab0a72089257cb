//! `log` and `verify`: reading the log back, and checking all of it again.

use anyhow::Result;
use rhizome_core::event::verify_batch;
use rhizome_core::{Event, Hash, PublicKey};
use rhizome_store::{SqliteStore, Store};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use crate::exit::{fail, INVALID_INPUT, VERIFY_FAILED};
use crate::home;

/// A feed named by a local author name or a public key.
pub fn resolve_feed(store: &SqliteStore, text: &str) -> Result<PublicKey> {
    if let Some(a) = store.authors()?.into_iter().find(|a| a.name == text) {
        return Ok(a.public_key);
    }
    text.parse::<PublicKey>().map_err(|e| {
        fail(
            INVALID_INPUT,
            format!("author {text:?} is neither a local author nor a valid public key: {e}"),
        )
    })
}

fn summary(ev: &Event) -> String {
    let Some(p) = &ev.payload else {
        return "(payload withheld)".into();
    };
    let v = p.value();
    if ev.header.kind.as_str() == "PROFILE" {
        if let Some(name) = v.get("name").and_then(|x| x.as_str()) {
            return crate::show::author_label(Some(name), &ev.header.author);
        }
    }
    let text = ["text", "comment", "tag", "circle"]
        .iter()
        .find_map(|f| v.get(*f).and_then(|x| x.as_str()))
        .unwrap_or("");
    let target = v
        .get("target")
        .and_then(|x| x.as_str())
        .map(|t| format!("-> {} ", t.chars().take(12).collect::<String>()))
        .unwrap_or_default();
    let mut s = format!("{target}{text}");
    if s.chars().count() > 60 {
        s = s.chars().take(59).collect::<String>() + "…";
    }
    s
}

/// `rhizome log`.
pub fn log(home_dir: &Path, author: Option<&str>, json: bool) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    let feed = author.map(|a| resolve_feed(&store, a)).transpose()?;
    let names = crate::show::Names::load(&store)?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut result = Ok(());
    store.for_each_event(feed.as_ref(), &mut |item| {
        let written = match item {
            Ok(ev) if json => out
                .write_all(&ev.to_line())
                .and_then(|_| out.write_all(b"\n")),
            Ok(ev) => {
                let who = match names.of(&ev.header.author) {
                    Ok(who) => who,
                    Err(e) => {
                        result = Err(std::io::Error::other(format!("{e:#}")));
                        return ControlFlow::Break(());
                    }
                };
                writeln!(
                    out,
                    "{:<12} {:>5}  {}  {:<13} {}",
                    who,
                    ev.header.seq,
                    &ev.hash.to_hex()[..16],
                    ev.header.kind,
                    summary(&ev)
                )
            }
            Err(e) => {
                eprintln!("warning: {e}");
                Ok(())
            }
        };
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                result = Err(e);
                ControlFlow::Break(())
            }
        }
    })?;
    result?;
    out.flush()?;
    Ok(())
}

/// One problem found by `verify`.
struct Failure {
    location: String,
    error: String,
}

/// Walks one feed's events in seq order and checks the chain links.
#[derive(Default)]
struct ChainCheck {
    feed: Option<PublicKey>,
    last_seq: u64,
    last_hash: Option<Hash>,
}

impl ChainCheck {
    fn next(&mut self, ev: &Event) -> Option<String> {
        let h = &ev.header;
        if self.feed != Some(h.author) {
            *self = ChainCheck {
                feed: Some(h.author),
                ..Default::default()
            };
        }
        let expected = self.last_seq + 1;
        let problem = if h.seq.get() != expected {
            Some(format!(
                "seq {} follows seq {} (gap or repeat)",
                h.seq, self.last_seq
            ))
        } else if h.prev != self.last_hash {
            Some(format!(
                "prev is {} but the event before it has hash {}",
                h.prev.map_or("null".into(), |p| p.to_hex()),
                self.last_hash.map_or("null".into(), |p| p.to_hex())
            ))
        } else {
            None
        };
        self.last_seq = h.seq.get();
        self.last_hash = Some(ev.hash);
        problem
    }
}

/// `rhizome verify`.
pub fn verify(home_dir: &Path, json: bool) -> Result<()> {
    const BATCH: usize = 1024;
    let store = home::open_for_reading(home_dir)?;
    let total = store.stats()?;
    let bar = crate::progress::bar(total.events, "verifying");
    let mut failures: Vec<Failure> = Vec::new();
    let mut chain = ChainCheck::default();
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
    let mut checked = 0u64;
    let mut ends: HashMap<PublicKey, u64> = HashMap::new();

    let flush = |batch: &mut Vec<Event>, failures: &mut Vec<Failure>| {
        let n = batch.len() as u64;
        for r in verify_batch(std::mem::take(batch)) {
            if let Err(r) = r {
                failures.push(Failure {
                    location: format!("{} seq {}", r.event.header.author, r.event.header.seq),
                    error: r.error.to_string(),
                });
            }
        }
        bar.inc(n);
        n
    };
    store.for_each_event(None, &mut |item| {
        match item {
            Ok(ev) => {
                ends.insert(ev.header.author, ev.header.seq.get());
                if let Some(problem) = chain.next(&ev) {
                    failures.push(Failure {
                        location: format!("{} seq {}", ev.header.author, ev.header.seq),
                        error: problem,
                    });
                }
                batch.push(ev);
                if batch.len() == BATCH {
                    checked += flush(&mut batch, &mut failures);
                }
            }
            Err(e) => failures.push(Failure {
                location: "store".into(),
                error: e.to_string(),
            }),
        }
        ControlFlow::Continue(())
    })?;
    checked += flush(&mut batch, &mut failures);
    bar.finish_and_clear();

    // Heads recorded per feed must match the log itself.
    let clock = store.clock()?;
    for (feed, seq) in clock.iter() {
        let actual = ends.get(feed).copied().unwrap_or(0);
        if actual != seq.get() {
            failures.push(Failure {
                location: format!("{feed}"),
                error: format!("recorded head seq {seq} but the log ends at seq {actual}"),
            });
        }
    }

    if json {
        let list: Vec<_> = failures
            .iter()
            .map(|f| json!({"location": f.location, "error": f.error}))
            .collect();
        say!(
            "{}",
            json!({"ok": failures.is_empty(), "events_checked": checked, "feeds": clock.len(), "failures": list})
        );
    } else if failures.is_empty() {
        say!(
            "ok: {checked} events in {} feeds verified (hashes, payloads, signatures, chains)",
            clock.len()
        );
    } else {
        for f in &failures {
            eprintln!("FAIL {}: {}", f.location, f.error);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(fail(
            VERIFY_FAILED,
            format!(
                "verification failed: {} problem(s) in {checked} events",
                failures.len()
            ),
        ))
    }
}
