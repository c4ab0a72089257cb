//! `rhizome migrate --from FILE.jsonl`: records from an older app become signed events.
//!
//! Input: JSON Lines, one plain record per line (format in the README and `migrate --help`).
//! Every line is checked before anything is written; with bad lines nothing changes unless
//! `--skip-bad`. A second run adds nothing twice (the node remembers each record's id).

use anyhow::Result;
use rhizome_node::migrate::Bad;
use rhizome_node::{NodeError, StoreLocation};
use serde_json::json;
use std::io::BufReader;
use std::path::Path;

use crate::exit::{fail, INVALID_INPUT};
use crate::home;

/// Runs the migration.
pub fn run(location: &StoreLocation, from: &Path, skip_bad: bool, json: bool) -> Result<()> {
    let mut node = home::open(location)?;
    let open = || {
        std::fs::File::open(from).map(BufReader::new).map_err(|e| {
            fail(
                INVALID_INPUT,
                format!("cannot read {}: {e}", from.display()),
            )
        })
    };
    // Read twice (checked, then imported as it is read again): records are not held.
    let checked = node.check_migration(&mut open()?).map_err(|e| match e {
        NodeError::Invalid(m) => fail(INVALID_INPUT, format!("{}: {m}", from.display())),
        other => other.into(),
    })?;
    let report_bad = |bad: &[Bad], total: u64| {
        for b in bad.iter().take(50) {
            eprintln!(
                "{}: line {}: {}",
                from.display(),
                b.line,
                rhizome_node::text::printable(&b.error)
            );
        }
        if total > 50 {
            eprintln!("... and {} more bad lines", total - 50);
        }
    };
    if checked.bad_total > 0 && !skip_bad {
        report_bad(&checked.bad, checked.bad_total);
        return Err(fail(
            INVALID_INPUT,
            format!(
                "{} bad line(s) in {}; nothing was imported (fix them, or pass --skip-bad)",
                checked.bad_total,
                from.display()
            ),
        ));
    }
    let bar = crate::progress::bar(checked.records() as u64, "migrating");
    let done = node
        .migrate(&checked, &mut open()?, &mut |n| bar.set_position(n))
        .map_err(|e| match e {
            NodeError::Invalid(m) => fail(INVALID_INPUT, format!("{}: {m}", from.display())),
            other => other.into(),
        })?;
    bar.finish_and_clear();
    if checked.bad_total > 0 {
        report_bad(&checked.bad, checked.bad_total);
    }
    if json {
        say!(
            "{}",
            json!({"records": done.records, "users_created": done.users_created,
                   "events_created": done.events_created, "profiles_created": done.profiles_created,
                   "already_imported": done.already_imported,
                   "bad_lines": checked.bad, "bad_lines_total": checked.bad_total})
        );
    } else {
        say!(
            "migrated {}: {} user(s) and {} event(s) created, {} already imported, {} bad line(s) skipped; {} profile(s) published",
            from.display(),
            done.users_created,
            done.events_created,
            done.already_imported,
            checked.bad_total,
            done.profiles_created
        );
    }
    Ok(())
}
