//! `rhizome sync URL`: arguments in, the HTTPS client (crate `rhizome-https`) run, progress
//! bars on a terminal, the report out, and its ending turned into an exit code.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rhizome_core::InstanceId;
use rhizome_https::client::{self, Local, Progress, SyncOptions};
use rhizome_https::HttpsError;
use rhizome_node::exchange::ImportOutcome;
use rhizome_node::text::printable;
use rhizome_node::{StoreLocation, Trust};

use crate::cli::SyncArgs;
use crate::exit::{fail, INVALID_INPUT, LINK_DOWN, PARTIAL, REFUSED_BY_PEER, WRONG_PEER};
use crate::home;

fn bars() -> (indicatif::ProgressBar, indicatif::ProgressBar) {
    let pull = crate::progress::bytes("pulling");
    let push = crate::progress::bytes("pushing");
    (pull, push)
}

/// `rhizome sync`.
pub fn run(at: &StoreLocation, args: &SyncArgs, json: bool) -> Result<()> {
    let pin = args
        .peer
        .as_deref()
        .map(|p| {
            p.parse::<InstanceId>().map_err(|e| {
                fail(
                    INVALID_INPUT,
                    format!("--peer {p:?} is not an instance id (32 hex characters): {e}"),
                )
            })
        })
        .transpose()?;
    let mut opts = SyncOptions::new(args.url.clone());
    opts.pin = pin;
    opts.pull = !args.push_only;
    opts.push = !args.pull_only;
    opts.encrypt = args.encrypt;
    opts.ca_file = args.ca_file.clone();
    opts.attempts = args.attempts.max(1);
    opts.backoff = Duration::from_millis(args.backoff_ms);
    opts.timeout = Duration::from_secs(args.timeout.max(1));
    let local = Local {
        location: at.clone(),
        keys: home::keys(),
        policy: home::policy(),
    };
    let (pull_bar, push_bar) = bars();
    let (pb, sb) = (pull_bar.clone(), push_bar.clone());
    let on: client::OnProgress = Arc::new(move |p| match p {
        Progress::Pulled(b) => pb.set_position(b),
        Progress::Pushed(sent, total) => {
            sb.set_length(total);
            sb.set_position(sent);
        }
        Progress::Retrying(n, wait) => {
            pb.suspend(|| eprintln!("link broken; attempt {n} in {:.1} s", wait.as_secs_f64()));
        }
    });
    let result = crate::serve::runtime()?.block_on(client::sync(local, opts, on));
    pull_bar.finish_and_clear();
    push_bar.finish_and_clear();
    let report = result.map_err(|e| match e {
        HttpsError::Link(m) => fail(
            LINK_DOWN,
            format!("{}: link down after retries: {m} (everything verified so far is kept; run `rhizome sync` again to continue)", args.url),
        ),
        HttpsError::Peer(m) => fail(WRONG_PEER, format!("{}: {}", args.url, printable(&m))),
        e @ HttpsError::Refused { .. } => fail(
            REFUSED_BY_PEER,
            format!("{}: {}", args.url, printable(&e.to_string())),
        ),
        e @ HttpsError::Protocol(_) => fail(REFUSED_BY_PEER, format!("{}: {e}", args.url)),
        HttpsError::Node(n) => n.into(),
        other => other.into(),
    })?;
    // As for a bundle on a stick: refused lines make the exit code 9 (PARTIAL).
    let verdict = match &report.pull {
        Some(ImportOutcome::Imported(r)) if r.refused_total > 0 => Err(fail(
            PARTIAL,
            format!(
                "{} pulled event(s) refused; the valid rest was kept",
                r.refused_total
            ),
        )),
        _ => Ok(()),
    };
    if json {
        say!("{}", serde_json::to_string(&report)?);
        return verdict;
    }
    let s = &report.server;
    if s.standing.is_none() {
        say!(
            "First contact with \"{}\": instance {}, key fingerprint {}",
            printable(&s.name),
            s.instance_id,
            s.fingerprint
        );
        say!("  Check the fingerprint with its owner before approving what it sent.");
    }
    match &report.pull {
        None if !args.push_only => say!("pulled  nothing: this instance lacks nothing there"),
        None => {}
        Some(ImportOutcome::Imported(r)) => say!(
            "pulled  {} events: {} new, {} duplicate, {} waiting for earlier events, {} fork(s), {} refused",
            r.events_read,
            r.new,
            r.duplicate,
            r.parked,
            r.forks,
            r.refused_total
        ),
        Some(ImportOutcome::Held(h)) => {
            say!(
                "pulled  {} events from \"{}\", held in quarantine{} (nothing applied yet)",
                h.held.events,
                printable(&h.held.name),
                if h.new { "" } else { " (already held)" }
            );
            say!(
                "    rhizome approve {}     (trust it and apply the events)",
                h.held.id
            );
            say!("    rhizome reject {}      (discard them)", h.held.id);
        }
    }
    match &report.push {
        None if !args.pull_only => say!("pushed  nothing: the server lacks nothing"),
        None => {}
        Some(p) => {
            let pieces = if p.pieces > 1 {
                format!(" in {} pieces", p.pieces)
            } else {
                String::new()
            };
            if p.held {
                say!(
                    "pushed  {} events ({} bytes{pieces}): held in quarantine there until its owner approves this instance",
                    p.events,
                    p.bytes
                );
            } else {
                say!(
                    "pushed  {} events ({} bytes{pieces}): {} new there",
                    p.events,
                    p.bytes,
                    p.new
                );
            }
        }
    }
    if report.retries > 0 {
        say!("({} retries after a broken link)", report.retries);
    }
    if s.standing == Some(Trust::Blocked) {
        say!("(this instance is blocked here)");
    }
    verdict
}
