//! `log` and `verify`: reading the log back, and checking all of it again.

use anyhow::Result;
use rhizome_core::Event;
use rhizome_node::text::printable;
use rhizome_node::StoreLocation;
use serde_json::json;
use std::io::Write;
use std::ops::ControlFlow;

use crate::exit::{fail, VERIFY_FAILED};
use crate::home;

fn summary(ev: &Event) -> String {
    let Some(p) = &ev.payload else {
        return "(payload withheld)".into();
    };
    let v = p.value();
    if ev.header.kind.as_str() == "PROFILE" {
        if let Some(name) = v.get("name").and_then(|x| x.as_str()) {
            return rhizome_node::read::label(Some(name), &ev.header.author);
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
    // One line per event: line feeds and controls escaped.
    printable(&s).into_owned()
}

/// `rhizome log`.
pub fn log(location: &StoreLocation, author: Option<&str>, json: bool) -> Result<()> {
    let node = home::open_for_reading(location)?;
    let names = node.names()?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut result = Ok(());
    node.log(author, &mut |item| {
        let written = match item {
            Ok(ev) if json => out
                .write_all(&ev.to_line())
                .and_then(|_| out.write_all(b"\n")),
            Ok(ev) => {
                let who = names.of(&ev.header.author);
                writeln!(
                    out,
                    "{:<12} {:>5}  {}  {:<13} {}",
                    who,
                    ev.header.seq,
                    &ev.hash.to_hex()[..16],
                    printable(ev.header.kind.as_str()),
                    summary(&ev)
                )
            }
            Err(e) => {
                eprintln!("warning: {}", printable(&e.to_string()));
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

/// `rhizome verify`.
pub fn verify(location: &StoreLocation, json: bool) -> Result<()> {
    let node = home::open_for_reading(location)?;
    let bar = crate::progress::bar(node.stats()?.events, "verifying");
    let report = node.verify(&mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let (checked, failures) = (report.events_checked, &report.failures);
    if json {
        say!(
            "{}",
            json!({"ok": failures.is_empty(), "events_checked": checked, "feeds": report.feeds, "failures": failures})
        );
    } else if failures.is_empty() {
        say!(
            "ok: {checked} events in {} feeds verified (hashes, payloads, signatures, chains)",
            report.feeds
        );
    } else {
        for f in failures {
            eprintln!("FAIL {}: {}", f.location, printable(&f.error));
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
