//! `export`, `import`, `bundle inspect`, `pending`, `approve`, `reject`, `peers`, `forks`,
//! trust and blocks: bundles on a stick, presented. The decisions are the node's.

use anyhow::Result;
use rhizome_core::{Clock, InstanceId};
use rhizome_node::exchange::{Base, ExportRequest, ImportOutcome};
use rhizome_node::text::printable;
use rhizome_node::{ImportReport, Status};
use rhizome_node::{Node, NodeError, StoreLocation, Transport};
use serde_json::json;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::exit::{fail, INVALID_INPUT, PARTIAL, REJECTED, TRUNCATED};
use crate::home;

/// `YYYY-MM-DD HH:MM:SS +HH:MM` in the local time zone (UTC when the zone cannot be read) for
/// a millisecond timestamp.
fn local_time(ms: u64) -> String {
    let Ok(utc) = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64) else {
        return format!("{ms} ms");
    };
    let offset = time::UtcOffset::local_offset_at(utc).unwrap_or(time::UtcOffset::UTC);
    let t = utc.to_offset(offset);
    let (h, m, _) = offset.as_hms();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        if offset.is_negative() { '-' } else { '+' },
        h.unsigned_abs(),
        m.unsigned_abs()
    )
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1_048_576.0)
}

fn parse_instance(text: &str) -> Result<InstanceId> {
    text.parse().map_err(|e| {
        fail(
            INVALID_INPUT,
            format!("{text:?} is not an instance id (32 hex characters): {e}"),
        )
    })
}

/// A bundle file, opened once: its reader and its size.
fn open_file(file: &Path) -> Result<(Box<dyn BufRead + Send>, u64)> {
    let f = File::open(file).map_err(|e| {
        fail(
            INVALID_INPUT,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((Box::new(BufReader::with_capacity(1 << 20, f)), len))
}

/// A node error about a bundle file, worded for it: refused bundles name the file.
fn about(file: &Path, e: NodeError) -> anyhow::Error {
    match e {
        NodeError::Rejected(_) | NodeError::Refused(_) => fail(
            REJECTED,
            format!("{}: rejected, nothing stored: {e}", file.display()),
        ),
        other => other.into(),
    }
}

/// Options of `rhizome export`.
pub struct ExportArgs<'a> {
    /// Cut for this peer (instance id), else everything.
    pub for_peer: Option<&'a str>,
    /// Cut against `sent` instead of `acked`.
    pub since_sent: bool,
    /// Only estimate.
    pub dry_run: bool,
    /// zstd.
    pub compress: bool,
    /// Instance ids to encrypt to.
    pub encrypt_to: &'a [String],
}

/// `rhizome export`.
pub fn export(location: &StoreLocation, to: &Path, args: ExportArgs<'_>, json: bool) -> Result<()> {
    let mut node = home::open(location)?;
    let request = ExportRequest {
        peer: args.for_peer.map(parse_instance).transpose()?,
        base: match (args.for_peer, args.since_sent) {
            (None, _) => Base::Nothing,
            (Some(_), false) => Base::Acked,
            (Some(_), true) => Base::Sent,
        },
        compress: args.compress,
        encrypt_to: args
            .encrypt_to
            .iter()
            .map(|t| parse_instance(t))
            .collect::<Result<_>>()?,
        transport: Transport::Usb,
    };
    let prepared = node.prepare_export(&request, args.dry_run)?;
    let preview = prepared.preview();
    if !json {
        let wrapped = match (args.compress, args.encrypt_to.is_empty()) {
            (false, true) => "",
            _ => " before compression and encryption",
        };
        eprintln!(
            "{} {} events in {} feeds, {} ({} bytes{wrapped}) to {}",
            if args.dry_run {
                "Would export"
            } else {
                "Exporting"
            },
            preview.events,
            preview.feeds,
            mib(preview.bytes),
            preview.bytes,
            to.display()
        );
        if preview.withheld_payloads > 0 {
            let why = match prepared.peer() {
                Some(_) => "the recipient hosts no one they are meant for",
                None => "a bundle for anyone carries no circle-only payload",
            };
            eprintln!(
                "  {} circle-only payload(s) withheld (signed headers only): {why}",
                preview.withheld_payloads
            );
        }
    }
    if args.dry_run {
        if json {
            say!(
                "{}",
                json!({"dry_run": true, "events": preview.events, "feeds": preview.feeds, "bytes": preview.bytes,
                       "withheld_payloads": preview.withheld_payloads, "to": to})
            );
        }
        return Ok(());
    }
    let bar = crate::progress::bar(preview.events, "exporting");
    let report = node.export_file(&prepared, to, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    if json {
        say!(
            "{}",
            json!({"to": to, "events": report.events, "feeds": report.feeds, "bytes": size,
                   "sha256": report.sha256, "recipient": report.recipient,
                   "withheld_payloads": report.withheld_payloads, "compressed": args.compress,
                   "encrypted_to": args.encrypt_to})
        );
    } else {
        let sealed = if args.encrypt_to.is_empty() {
            String::new()
        } else {
            format!(", encrypted to {}", args.encrypt_to.join(", "))
        };
        say!(
            "wrote {} events in {} feeds ({}{sealed}) to {}",
            report.events,
            report.feeds,
            mib(size),
            to.display()
        );
    }
    Ok(())
}

/// `rhizome import`: trusted (or first-use-trusted) exporters are imported now; unknown ones
/// are verified and held in quarantine; blocked ones are refused. One pass over the file.
pub fn import(location: &StoreLocation, file: &Path, json: bool) -> Result<()> {
    let mut node = home::open(location)?;
    let (reader, len) = open_file(file)?;
    let bar = crate::progress::bar(len, "importing");
    let outcome = node
        .import(reader, Some(len), Transport::Usb, &mut |b| {
            bar.set_position(b)
        })
        .map_err(|e| about(file, e))?;
    bar.finish_and_clear();
    match outcome {
        ImportOutcome::Imported(report) => print_import(&report, file, json),
        ImportOutcome::Held(h) => {
            let held = &h.held;
            if json {
                say!(
                    "{}",
                    json!({"status": "quarantined", "already_held": !h.new, "held": held})
                );
            } else {
                let again = if h.new { "" } else { " (already held)" };
                say!(
                    "Held in quarantine{again}: bundle {} from {:?}",
                    held.id,
                    held.name
                );
                say!(
                    "  instance {}  key fingerprint {}",
                    held.instance_id,
                    held.public_key.fingerprint()
                );
                say!(
                    "  {} events in {} feeds, {} invalid; nothing applied yet",
                    held.events,
                    held.feeds,
                    held.invalid
                );
                if let Some(why) = &held.incomplete {
                    say!(
                        "  INCOMPLETE ({}): approving it applies only the valid events read",
                        printable(why)
                    );
                }
                say!("  This instance is new here. Check the fingerprint with its owner, then:");
                say!(
                    "    rhizome approve {}     (trust it and apply the events)",
                    held.id
                );
                say!("    rhizome reject {}      (discard the bundle)", held.id);
            }
            // The same exit code as a trusted bundle that arrived incomplete.
            match &held.incomplete {
                Some(why) => Err(fail(
                    TRUNCATED,
                    format!(
                        "{}: {why}; held in quarantine as it is, nothing applied",
                        file.display()
                    ),
                )),
                None => Ok(()),
            }
        }
    }
}

/// Prints an import report and turns its ending into the exit code.
fn print_import(report: &ImportReport, file: &Path, json: bool) -> Result<()> {
    if json {
        say!("{}", serde_json::to_string(report)?);
    } else {
        let e = &report.exporter;
        let status = match &report.status {
            Status::Complete => "complete".to_string(),
            Status::Truncated => "TRUNCATED (no trailer: a half-copied file?)".to_string(),
            Status::TrailerInvalid(why) => format!("TRAILER INVALID ({why})"),
            Status::Unreadable(why) => format!("UNREADABLE ({why})"),
        };
        say!(
            "Bundle from {:?} (instance {}, key {}): {status}",
            e.name,
            e.instance_id,
            e.public_key.fingerprint()
        );
        say!(
            "  events  {} read: {} new, {} duplicate, {} waiting for earlier events, {} fork(s), {} refused",
            report.events_read,
            report.new,
            report.duplicate,
            report.parked,
            report.forks,
            report.refused_total
        );
        if report.blocked > 0 {
            say!(
                "  blocked {} event(s) of blocked authors dropped",
                report.blocked
            );
        }
        if report.promoted > 0 {
            say!(
                "  pending {} earlier event(s) joined their feeds",
                report.promoted
            );
        }
        for r in report.refused.iter().take(20) {
            say!(
                "  refused line {} ({}): {}",
                r.line,
                r.code,
                printable(&r.reason)
            );
        }
        for m in report.missing.iter().take(10) {
            say!("  missing {m}");
        }
        if report.missing.len() > 10 {
            say!(
                "  missing ... and {} more feed ranges (see --json)",
                report.missing.len() - 10
            );
        }
        say!(
            "  {} feed(s) touched, {} in {:.2} s ({:.0} events/s)",
            report.feeds_touched,
            mib(report.bytes),
            report.seconds,
            report.events_per_second
        );
    }
    match &report.status {
        Status::Truncated => Err(fail(
            TRUNCATED,
            format!(
                "{} is truncated: kept every valid event read",
                file.display()
            ),
        )),
        Status::TrailerInvalid(why) => Err(fail(
            TRUNCATED,
            format!(
                "{}: trailer invalid ({why}); kept every valid event",
                file.display()
            ),
        )),
        Status::Unreadable(why) => Err(fail(
            TRUNCATED,
            format!(
                "{}: unreadable {why}; kept every valid event read before",
                file.display()
            ),
        )),
        Status::Complete if report.refused_total > 0 => Err(fail(
            PARTIAL,
            format!(
                "{} event(s) refused; the valid rest was kept",
                report.refused_total
            ),
        )),
        Status::Complete => Ok(()),
    }
}

/// `rhizome pending`.
pub fn pending(location: &StoreLocation, json: bool) -> Result<()> {
    let held = home::open_for_reading(location)?.pending()?;
    if json {
        say!("{}", serde_json::to_string(&held)?);
    } else if held.is_empty() {
        say!("nothing in quarantine");
    } else {
        for h in &held {
            let incomplete = h
                .incomplete
                .as_ref()
                .map(|why| format!("; INCOMPLETE ({})", printable(why)))
                .unwrap_or_default();
            say!(
                "{}  {:?} (instance {}, key {}): {} events in {} feeds, {} invalid{incomplete}",
                h.id,
                h.name,
                h.instance_id,
                h.public_key.fingerprint(),
                h.events,
                h.feeds,
                h.invalid
            );
        }
    }
    Ok(())
}

/// `rhizome approve`: apply the held bundle and trust its exporter.
pub fn approve(location: &StoreLocation, id: &str, json: bool) -> Result<()> {
    let mut node = home::open(location)?;
    let report = node
        .approve(id, &mut |_| {})
        .map_err(|e| about(Path::new(id), e))?;
    print_import(&report, Path::new(id), json)
}

/// `rhizome reject`: discard a held bundle.
pub fn reject(location: &StoreLocation, id: &str, json: bool) -> Result<()> {
    let held = home::open(location)?.reject(id)?;
    if json {
        say!(
            "{}",
            json!({"rejected": id, "instance_id": held.instance_id})
        );
    } else {
        say!(
            "discarded bundle {id} from {:?}; nothing of it was applied",
            held.name
        );
    }
    Ok(())
}

/// `rhizome bundle inspect`. A home is needed only to decrypt.
pub fn inspect(location: Option<&StoreLocation>, file: &Path, json: bool) -> Result<()> {
    let (reader, len) = open_file(file)?;
    let node = match location {
        Some(l) => Node::open_for_reading(l.clone(), home::keys()).ok(),
        None => None,
    };
    let (ins, layers) = match &node {
        Some(node) => node.inspect(reader, Some(len)),
        None => Node::inspect_without_keys(reader, Some(len)),
    }
    .map_err(|e| match e {
        NodeError::Rejected(why) => fail(REJECTED, format!("{}: {why}", file.display())),
        other => other.into(),
    })?;
    if json {
        let mut v = serde_json::to_value(&ins)?;
        v["layers"] = serde_json::to_value(layers)?;
        say!("{v}");
    } else {
        let wrapping = match (layers.encrypted, layers.compressed) {
            (false, false) => "none (plain JSON Lines)",
            (true, false) => "age-encrypted (opened with this instance's key)",
            (false, true) => "zstd-compressed",
            (true, true) => "age-encrypted (opened with this instance's key), zstd-compressed",
        };
        say!("wrapping    {wrapping}");
        match (&ins.manifest, &ins.manifest_error) {
            (Some(m), _) => {
                say!("format      {}", m.format);
                say!(
                    "exporter    {:?} (instance {}, key {})",
                    m.exporter.name,
                    m.exporter.instance_id,
                    m.exporter.public_key.fingerprint()
                );
                say!("manifest    signature valid");
                say!(
                    "recipient   {}",
                    m.recipient.map_or("anyone".to_string(), |r| r.to_string())
                );
                say!(
                    "carries     {} events in {} feeds ({} of event lines)",
                    m.counts.events,
                    m.counts.feeds,
                    mib(m.counts.bytes)
                );
                say!(
                    "exporter clock covers {} feeds; base clock {} feeds",
                    m.clock.len(),
                    m.base.len()
                );
                if !m.hosts.is_empty() {
                    say!(
                        "hosts       {} author(s), each declaration signed by its author",
                        m.hosts.len()
                    );
                }
            }
            (None, err) => say!(
                "manifest    INVALID: {}",
                printable(err.as_deref().unwrap_or("unknown"))
            ),
        }
        say!(
            "lines       {} event lines ({} malformed), {}",
            ins.event_lines,
            ins.malformed_lines,
            mib(ins.bytes)
        );
        match &ins.status {
            Status::Complete => say!("trailer     valid: the bundle is complete"),
            Status::Truncated => say!("trailer     MISSING: truncated"),
            Status::TrailerInvalid(why) => say!("trailer     INVALID: {why}"),
            Status::Unreadable(why) => say!("stream      UNREADABLE: {why}"),
        }
    }
    match (&ins.manifest, &ins.status) {
        (None, _) => Err(fail(
            REJECTED,
            format!("{}: manifest invalid", file.display()),
        )),
        (_, Status::Complete) => Ok(()),
        _ => Err(fail(
            TRUNCATED,
            format!("{}: no valid trailer", file.display()),
        )),
    }
}

/// `rhizome peers`.
pub fn peers(location: &StoreLocation, json: bool) -> Result<()> {
    let peers = home::open_for_reading(location)?.peers()?;
    if json {
        say!("{}", serde_json::to_string(&peers)?);
        return Ok(());
    }
    if peers.is_empty() {
        say!("(no peers yet: import a bundle from another instance)");
    }
    let total = |c: &Clock| c.iter().map(|(_, s)| s.get()).sum::<u64>();
    for p in &peers {
        say!(
            "{:<20} {}  {:?}",
            printable(&p.name),
            p.instance_id,
            p.trust
        );
        say!(
            "  acked {} events in {} feeds; sent {} events in {} feeds; last {} {} at {}",
            total(&p.acked),
            p.acked.len(),
            total(&p.sent),
            p.sent.len(),
            printable(p.last_direction.as_deref().unwrap_or("-")),
            printable(p.last_method.as_deref().unwrap_or("-")),
            p.last_exchange_at.map_or("-".to_string(), local_time)
        );
    }
    Ok(())
}

/// `rhizome forks`.
pub fn forks(location: &StoreLocation, json: bool) -> Result<()> {
    let forks = home::open_for_reading(location)?.forks()?;
    if json {
        say!("{}", serde_json::to_string(&forks)?);
    } else if forks.is_empty() {
        say!("no forks");
    } else {
        for f in &forks {
            say!(
                "{} seq {} ({}): held {} / other {} carried by {}",
                f.author,
                f.seq,
                f.kind,
                f.held,
                f.other,
                f.carrier.map_or("-".to_string(), |c| c.to_string())
            );
        }
    }
    Ok(())
}

/// What a person asks of an instance's trust.
pub enum TrustChange {
    /// `trust`.
    Trust,
    /// `block`.
    Block,
    /// `unblock`.
    Unblock,
}

/// `rhizome trust|block|unblock`.
pub fn set_trust(
    location: &StoreLocation,
    instance_id: &str,
    change: TrustChange,
    json: bool,
) -> Result<()> {
    let mut node = home::open(location)?;
    let id = parse_instance(instance_id)?;
    let (state, rejected) = match change {
        TrustChange::Trust => {
            node.trust(&id)?;
            ("trusted", Vec::new())
        }
        TrustChange::Unblock => {
            node.unblock(&id)?;
            ("unknown", Vec::new())
        }
        TrustChange::Block => ("blocked", node.block(&id)?.rejected),
    };
    if json {
        say!(
            "{}",
            json!({"instance_id": id, "trust": state, "rejected_held": rejected.iter().map(|h| &h.id).collect::<Vec<_>>()})
        );
    } else {
        say!("{id} is now {state}");
        for h in &rejected {
            say!(
                "  discarded held bundle {} from {:?} ({} events); nothing of it was applied",
                h.id,
                h.name,
                h.events
            );
        }
    }
    Ok(())
}

/// `rhizome block-author` / `unblock-author`.
pub fn block_author(
    location: &StoreLocation,
    author: &str,
    block: bool,
    purge: bool,
    json: bool,
) -> Result<()> {
    let done = home::open(location)?.block_author(author, block, purge)?;
    let key = done.author;
    if json {
        say!(
            "{}",
            json!({"author": key, "blocked": block, "changed": done.changed, "purged_events": done.purged_events})
        );
    } else {
        let state = if block { "blocked" } else { "unblocked" };
        let note = if done.changed { "" } else { " (already)" };
        say!("{key} {state}{note}");
        if purge {
            say!(
                "purged {} event(s) of {key} from the log; views rebuilt",
                done.purged_events
            );
        }
    }
    Ok(())
}
