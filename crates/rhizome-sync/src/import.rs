//! Import: read a bundle as a stream, verify everything, store what is new, and say exactly
//! what happened. Never holds the whole bundle in memory; each batch is its own durable
//! transaction, so an interrupted import re-run ends where one clean run would.

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Instant;

use rhizome_core::bundle::{BundleError, Exporter, Manifest, Trailer};
use rhizome_core::canonical::parse_strict;
use rhizome_core::event::{verify_batch, EventError};
use rhizome_core::{Event, Hash, PublicKey, VerifiedEvent};
use rhizome_store::sync_state::{Direction, Trust};
use rhizome_store::{Outcome, SqliteStore, Store, StoreError};

use crate::lines::{Line, LineReader};

pub use rhizome_core::bundle::MAX_LINE;
/// Events verified and committed together.
const BATCH: usize = 4096;

/// Why a whole bundle was refused (nothing stored).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file is empty.
    #[error("empty file: not a bundle")]
    Empty,
    /// Line 1 is not a valid, signed manifest.
    #[error("line 1 (manifest): {0}")]
    Manifest(BundleError),
    /// Line 1 is longer than any manifest may be.
    #[error("line 1 (manifest): longer than {MAX_LINE} bytes")]
    ManifestTooLong,
    /// The exporting instance is blocked on this instance.
    #[error("instance {0} is blocked here (`rhizome unblock {0}` to accept its bundles)")]
    Blocked(rhizome_core::InstanceId),
    /// Reading failed.
    #[error("reading the bundle: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How an import ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum Status {
    /// Trailer present and valid: the bundle arrived whole.
    Complete,
    /// The stream ended without a trailer: a half-copied file. Every valid event read was kept.
    Truncated,
    /// A trailer is there but does not match what was read (forged, altered, or spliced).
    TrailerInvalid(String),
    /// Reading failed part way (damaged compressed stream, bomb, I/O error). Every valid event
    /// read before was kept.
    Unreadable(String),
}

/// An event line that was refused.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// 1-based line number in the bundle.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Who made the bundle.
    pub exporter: Exporter,
    /// How it ended.
    #[serde(flatten)]
    pub status: Status,
    /// Event lines read.
    pub events_read: u64,
    /// Newly stored.
    pub new: u64,
    /// Already held.
    pub duplicate: u64,
    /// Held without their payload until now: this bundle brought it (PROTOCOL 3.6).
    pub filled: u64,
    /// Events of this bundle that had to wait for earlier events of their feeds.
    pub parked: u64,
    /// Events the store holds waiting for their predecessors after this import (all bundles).
    pub pending: u64,
    /// Earlier pending events that now joined their feeds.
    pub promoted: u64,
    /// Events dropped because their author is blocked here.
    pub blocked: u64,
    /// Fork evidence kept (same author and seq, different event).
    pub forks: u64,
    /// Refused lines (at most 1,000 listed; `refused_total` counts all).
    pub refused: Vec<Refusal>,
    /// All refused lines.
    pub refused_total: u64,
    /// Feeds that received events.
    pub feeds_touched: u64,
    /// Manifest ranges that the bundle did not deliver in full.
    pub missing: Vec<String>,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Event lines per second.
    pub events_per_second: f64,
}

/// Import settings.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Time of the import, ms since the epoch (recorded as the peer's last exchange).
    pub now: u64,
    /// How the bundle travelled: "usb" or "https".
    pub method: String,
}

/// A parsed event line, before signatures are checked. Readers decide which line is the
/// trailer (`Trailer::detect`) before parsing event lines.
enum Parsed {
    /// Line number, the event, and its header hash recomputed from the line.
    Event(u64, Box<Event>, Hash),
    Refused(u64, String),
}

fn parse_event_line(n: u64, bytes: &[u8]) -> Parsed {
    match parse_strict(bytes) {
        Err(e) => Parsed::Refused(n, EventError::Json(e).to_string()),
        Ok(Value::Object(m)) => match Event::from_map(m) {
            Ok(e) => {
                let computed = e.header.hash();
                Parsed::Event(n, Box::new(e), computed)
            }
            Err(e) => Parsed::Refused(n, e.to_string()),
        },
        Ok(_) => Parsed::Refused(n, EventError::NotAnObject.to_string()),
    }
}

/// What the writer thread stored.
#[derive(Default)]
struct Written {
    new: u64,
    duplicate: u64,
    filled: u64,
    pending: u64,
    forks: u64,
    promoted: u64,
}

/// Per-feed tally against the manifest's ranges.
#[derive(Default)]
struct Seen {
    count: u64,
}

/// Stored hashes of the feed being read, to recognise duplicates without verifying them.
struct DupCache {
    author: Option<PublicKey>,
    hashes: BTreeMap<u64, Hash>,
}

impl DupCache {
    /// True when the store holds, at `author`/`seq`, the event whose header hashes to
    /// `computed`, and the line claims that same hash.
    fn is_duplicate(
        &mut self,
        store: &SqliteStore,
        manifest: &Manifest,
        (author, seq, computed, claimed): (PublicKey, u64, Hash, Hash),
    ) -> Result<bool, StoreError> {
        if self.author != Some(author) {
            let (from, to) = manifest
                .feeds
                .iter()
                .find(|f| f.author == author)
                .map_or((seq, seq), |f| (f.from, f.to));
            self.hashes = store
                .stored_hashes(&author, from.min(seq), to.max(seq))?
                .into_iter()
                .collect();
            self.author = Some(author);
        }
        // A duplicate is confirmed by the hash recomputed from the line, never by its claim.
        Ok(self.hashes.get(&seq) == Some(&computed) && claimed == computed)
    }
}

/// The header fields of an event line, borrowed, the payload skipped: enough to recognise a
/// duplicate without building the whole JSON value (most of a re-import's cost).
#[derive(serde::Deserialize)]
struct QuickHeader<'a> {
    author: &'a str,
    seq: u64,
    prev: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: u64,
    payload_hash: &'a str,
    payload_size: u64,
    hash: &'a str,
}

/// (author, seq, recomputed header hash, claimed hash) of a well-formed line, or `None` when
/// the quick reading does not apply (the full strict parse then decides).
fn quick_header(bytes: &[u8]) -> Option<(PublicKey, u64, Hash, Hash)> {
    let q: QuickHeader<'_> = serde_json::from_slice(bytes).ok()?;
    let header = rhizome_core::Header {
        author: PublicKey::from_bytes_unchecked(rhizome_core::ids::decode_hex(q.author).ok()?),
        seq: rhizome_core::Seq::new(q.seq).ok()?,
        prev: q.prev.map(str::parse).transpose().ok()?,
        kind: rhizome_core::event::EventType::new(q.kind).ok()?,
        timestamp: rhizome_core::Timestamp::new(q.timestamp).ok()?,
        payload_hash: q.payload_hash.parse().ok()?,
        payload_size: q.payload_size,
    };
    Some((header.author, q.seq, header.hash(), q.hash.parse().ok()?))
}

/// Reads and verifies only the manifest line of a bundle.
pub fn read_manifest<R: BufRead>(input: R) -> Result<Manifest, ImportError> {
    match LineReader::new(input, MAX_LINE).next_line()? {
        Line::End => Err(ImportError::Empty),
        Line::TooLong { .. } => Err(ImportError::ManifestTooLong),
        Line::Text { bytes, .. } => Manifest::parse(&bytes).map_err(ImportError::Manifest),
    }
}

/// Reads, verifies and stores a bundle. See the module docs.
pub fn import_bundle<R: BufRead>(
    store: &mut SqliteStore,
    input: R,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let mut reader = LineReader::new(input, MAX_LINE);
    let manifest = match reader.next_line()? {
        Line::End => return Err(ImportError::Empty),
        Line::TooLong { .. } => return Err(ImportError::ManifestTooLong),
        Line::Text { bytes, .. } => Manifest::parse(&bytes).map_err(ImportError::Manifest)?,
    };
    let carrier = manifest.exporter.instance_id;
    if store
        .peer(&carrier)?
        .is_some_and(|p| p.trust == Trust::Blocked)
    {
        return Err(ImportError::Blocked(carrier));
    }
    let blocked_authors = store.blocked_authors()?;
    let mut report = ImportReport {
        exporter: manifest.exporter.clone(),
        status: Status::Truncated,
        events_read: 0,
        new: 0,
        duplicate: 0,
        filled: 0,
        parked: 0,
        pending: 0,
        promoted: 0,
        blocked: 0,
        forks: 0,
        refused: Vec::new(),
        refused_total: 0,
        feeds_touched: 0,
        missing: Vec::new(),
        bytes: 0,
        seconds: 0.0,
        events_per_second: 0.0,
    };
    let refuse = |report: &mut ImportReport, line: u64, reason: String| {
        report.refused_total += 1;
        if report.refused.len() < 1000 {
            report.refused.push(Refusal { line, reason });
        }
    };
    let mut seen: BTreeMap<PublicKey, Seen> = BTreeMap::new();
    let mut dups = DupCache {
        author: None,
        hashes: BTreeMap::new(),
    };
    let mut line_no = 1u64;
    let mut unreadable: Option<String> = None;
    let mut trailer: Option<(u64, Value, [u8; 32])> = None;
    let mut after_trailer = false;
    // One writer thread owns the store; reading, parsing and verifying go on meanwhile.
    let reader_store = SqliteStore::open(store.path())?;
    let (to_writer, batches) = std::sync::mpsc::sync_channel::<Vec<VerifiedEvent>>(2);
    let writer_store = &mut *store;
    let written = std::thread::scope(|scope| -> Result<Written, ImportError> {
        let writer = scope.spawn(move || -> Result<Written, StoreError> {
            let mut w = Written::default();
            for batch in batches {
                let result = writer_store.import_batch(&batch, Some(&carrier))?;
                w.promoted += result.promoted;
                for o in &result.outcomes {
                    match o {
                        Outcome::Inserted => w.new += 1,
                        Outcome::Duplicate => w.duplicate += 1,
                        Outcome::Filled => w.filled += 1,
                        Outcome::Gap { .. } => w.pending += 1,
                        Outcome::Fork { .. } | Outcome::PrevMismatch { .. } => w.forks += 1,
                    }
                }
            }
            Ok(w)
        });
        let read = (|| -> Result<(), ImportError> {
            loop {
                // Read a batch of raw lines (bounded memory), stopping at the trailer.
                let mut raw: Vec<(u64, Vec<u8>, bool)> = Vec::with_capacity(BATCH);
                let mut ended = false;
                while raw.len() < BATCH {
                    match reader.next_line().unwrap_or_else(|e| {
                        unreadable = Some(e.to_string());
                        Line::End
                    }) {
                        Line::End => {
                            ended = true;
                            break;
                        }
                        Line::TooLong { len } => {
                            line_no += 1;
                            if trailer.is_some() {
                                after_trailer = true;
                            } else {
                                report.events_read += 1;
                                let why = format!(
                                    "line of {len} bytes is longer than the {MAX_LINE}-byte limit"
                                );
                                refuse(&mut report, line_no, why);
                            }
                        }
                        Line::Text { bytes, terminated } => {
                            line_no += 1;
                            if trailer.is_some() {
                                after_trailer |= !bytes.iter().all(u8::is_ascii_whitespace);
                                continue;
                            }
                            if let Some(v) = Trailer::detect(&bytes) {
                                trailer = Some((line_no, v, reader.digest_before_last_line()));
                                continue;
                            }
                            raw.push((line_no, bytes, terminated));
                        }
                    }
                }
                // Parse and check commitments on all cores.
                // Recognise duplicates from their headers alone, on all cores.
                let quick: Vec<_> = raw
                    .into_par_iter()
                    .map(|(n, bytes, terminated)| {
                        let q = quick_header(&bytes);
                        (n, bytes, terminated, q)
                    })
                    .collect();
                let mut raw = Vec::with_capacity(quick.len());
                for (n, bytes, terminated, q) in quick {
                    if let Some(key) = q.filter(|(a, ..)| !blocked_authors.contains(a)) {
                        if dups.is_duplicate(&reader_store, &manifest, key)? {
                            report.events_read += 1;
                            report.duplicate += 1;
                            seen.entry(key.0).or_default().count += 1;
                            continue;
                        }
                    }
                    raw.push((n, bytes, terminated));
                }
                let parsed: Vec<Parsed> = raw
                    .into_par_iter()
                    .map(|(n, bytes, terminated)| match parse_event_line(n, &bytes) {
                        // A cut last line is the truncation itself, not a bad event.
                        Parsed::Refused(..) if !terminated => Parsed::Refused(n, String::new()),
                        p => p,
                    })
                    .collect();
                let mut to_verify: Vec<(u64, Event)> = Vec::new();
                for p in parsed {
                    match p {
                        Parsed::Refused(_, reason) if reason.is_empty() => {}
                        Parsed::Refused(n, reason) => {
                            report.events_read += 1;
                            refuse(&mut report, n, reason);
                        }
                        Parsed::Event(n, ev, _)
                            if ev.header.seq.get() > rhizome_store::SEQ_LIMIT =>
                        {
                            report.events_read += 1;
                            let why = format!(
                                "field `seq`: {} is beyond this store's limit of 2^32-1",
                                ev.header.seq
                            );
                            refuse(&mut report, n, why);
                        }
                        Parsed::Event(_, ev, _) if blocked_authors.contains(&ev.header.author) => {
                            report.events_read += 1;
                            report.blocked += 1;
                        }
                        Parsed::Event(n, ev, computed) => {
                            report.events_read += 1;
                            seen.entry(ev.header.author).or_default().count += 1;
                            let key = (ev.header.author, ev.header.seq.get(), computed, ev.hash);
                            if dups.is_duplicate(&reader_store, &manifest, key)? {
                                report.duplicate += 1;
                            } else {
                                to_verify.push((n, *ev));
                            }
                        }
                    }
                }
                // Verify signatures on all cores, keeping line order.
                let chunk = to_verify
                    .len()
                    .div_ceil(rayon::current_num_threads().max(1))
                    .max(1);
                let (lines, events): (Vec<u64>, Vec<Event>) = to_verify.into_iter().unzip();
                let results: Vec<_> = events
                    .par_chunks(chunk)
                    .flat_map_iter(|c| verify_batch(c.to_vec()))
                    .collect();
                let mut verified: Vec<VerifiedEvent> = Vec::with_capacity(results.len());
                for (n, r) in lines.into_iter().zip(results) {
                    match r {
                        Ok(ev) => verified.push(ev),
                        Err(rej) => refuse(&mut report, n, rej.error.to_string()),
                    }
                }
                if !verified.is_empty() && to_writer.send(verified).is_err() {
                    break; // the writer failed; its error is reported below
                }
                progress(reader.bytes);
                if ended {
                    break;
                }
            }
            Ok(())
        })();
        drop(to_writer);
        let written = writer.join().map_err(|_| {
            ImportError::Store(StoreError::Limit("the writer thread panicked".into()))
        })??;
        read?;
        Ok(written)
    })?;
    report.new = written.new;
    report.duplicate += written.duplicate;
    report.filled = written.filled;
    report.parked = written.pending;
    report.forks = written.forks;
    report.promoted = written.promoted;
    report.pending = store.pending_count()?;
    report.feeds_touched = seen.len() as u64;
    report.status = match (trailer, unreadable) {
        (_, Some(e)) => Status::Unreadable(format!("after {} bytes: {e}", reader.bytes)),
        (None, None) => Status::Truncated,
        (Some(_), None) if after_trailer => {
            Status::TrailerInvalid("data after the trailer line".into())
        }
        (Some((n, v, digest)), None) => match Trailer::verify(v, &manifest.exporter.public_key) {
            Err(e) => Status::TrailerInvalid(format!("line {n}: {e}")),
            Ok(t) if t.sha256.as_bytes() != &digest => Status::TrailerInvalid(format!(
                "line {n}: the bytes before the trailer do not hash to its sha256"
            )),
            Ok(t) if t.events != report.events_read => Status::TrailerInvalid(format!(
                "line {n}: trailer counts {} events but {} were read",
                t.events, report.events_read
            )),
            Ok(_) => Status::Complete,
        },
    };
    for f in manifest
        .feeds
        .iter()
        .filter(|f| !blocked_authors.contains(&f.author))
    {
        // Fork evidence lines of this author are counted apart from its range.
        let evidence = manifest
            .evidence
            .iter()
            .filter(|e| e.author == f.author)
            .count() as u64;
        let got = seen
            .get(&f.author)
            .map_or(0, |s| s.count)
            .saturating_sub(evidence);
        let want = f.to - f.from + 1;
        if got != want {
            report.missing.push(format!(
                "feed {} seq {}..{}: manifest lists {want} events, bundle had {got}",
                f.author, f.from, f.to
            ));
        }
    }
    // Our own bundle coming back is not an exchange with a peer.
    let own = store.identity().ok().map(|i| i.public_key);
    if own != Some(manifest.exporter.public_key) {
        store.record_exchange(
            &manifest.exporter.public_key,
            &manifest.exporter.name,
            Direction::Import,
            &manifest.clock,
            opts.now,
            &opts.method,
        )?;
        store.record_publications(
            &manifest.exporter.instance_id,
            manifest.exporter.age_recipient.as_deref(),
            &manifest.hosts,
        )?;
    }
    report.bytes = reader.bytes;
    report.seconds = started.elapsed().as_secs_f64();
    report.events_per_second = report.events_read as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// What `bundle inspect` finds, without importing.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The manifest, if line 1 is a valid one.
    pub manifest: Option<Manifest>,
    /// Why line 1 is not, otherwise.
    pub manifest_error: Option<String>,
    /// Event lines.
    pub event_lines: u64,
    /// Event lines that do not parse as events.
    pub malformed_lines: u64,
    /// Well-formed events whose hash, payload or signature fails (only counted when asked).
    pub invalid_events: u64,
    /// Trailer state.
    #[serde(flatten)]
    pub status: Status,
    /// Bytes read.
    pub bytes: u64,
}

/// Verifies events on all cores; returns how many fail.
fn count_invalid(events: Vec<Event>) -> u64 {
    let chunk = events
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1);
    events
        .par_chunks(chunk)
        .map(|c| {
            verify_batch(c.to_vec())
                .iter()
                .filter(|r| r.is_err())
                .count() as u64
        })
        .sum()
}

/// Reads a whole bundle and checks manifest and trailer (not each event's signature).
pub fn inspect_bundle<R: BufRead>(input: R) -> Result<Inspection, ImportError> {
    inspect(input, false)
}

/// [`inspect_bundle`], and also checks every event's hash, payload and signature (storing
/// nothing): what quarantine does before it holds a bundle.
pub fn check_bundle<R: BufRead>(input: R) -> Result<Inspection, ImportError> {
    inspect(input, true)
}

fn inspect<R: BufRead>(input: R, verify_events: bool) -> Result<Inspection, ImportError> {
    let mut reader = LineReader::new(input, MAX_LINE);
    let (manifest, manifest_error) = match reader.next_line()? {
        Line::End => return Err(ImportError::Empty),
        Line::TooLong { .. } => (None, Some(format!("longer than {MAX_LINE} bytes"))),
        Line::Text { bytes, .. } => match Manifest::parse(&bytes) {
            Ok(m) => (Some(m), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    let mut out = Inspection {
        manifest,
        manifest_error,
        event_lines: 0,
        malformed_lines: 0,
        invalid_events: 0,
        status: Status::Truncated,
        bytes: 0,
    };
    let mut batch: Vec<Event> = Vec::new();
    let mut unreadable: Option<String> = None;
    let mut trailer: Option<(Value, [u8; 32])> = None;
    let mut after = false;
    loop {
        match reader.next_line().unwrap_or_else(|e| {
            unreadable = Some(e.to_string());
            Line::End
        }) {
            Line::End => break,
            Line::Text { bytes, .. } if trailer.is_some() => {
                after |= !bytes.iter().all(u8::is_ascii_whitespace);
            }
            _ if trailer.is_some() => after = true,
            Line::TooLong { .. } => {
                out.event_lines += 1;
                out.malformed_lines += 1;
            }
            Line::Text { bytes, terminated } => {
                if let Some(v) = Trailer::detect(&bytes) {
                    trailer = Some((v, reader.digest_before_last_line()));
                    continue;
                }
                match parse_event_line(0, &bytes) {
                    // A cut last line is the truncation itself (8.8 rule 9), as on import.
                    Parsed::Refused(..) if !terminated => {}
                    Parsed::Event(_, ev, _) => {
                        out.event_lines += 1;
                        if verify_events {
                            batch.push(*ev);
                            if batch.len() == BATCH {
                                out.invalid_events += count_invalid(std::mem::take(&mut batch));
                            }
                        }
                    }
                    Parsed::Refused(..) => {
                        out.event_lines += 1;
                        out.malformed_lines += 1;
                    }
                }
            }
        }
    }
    out.invalid_events += count_invalid(batch);
    out.bytes = reader.bytes;
    if let Some(e) = unreadable {
        out.status = Status::Unreadable(format!("after {} bytes: {e}", reader.bytes));
        return Ok(out);
    }
    out.status = match (trailer, &out.manifest) {
        (None, _) => Status::Truncated,
        (Some(_), _) if after => Status::TrailerInvalid("data after the trailer line".into()),
        (Some(_), None) => {
            Status::TrailerInvalid("no valid manifest to check the trailer against".into())
        }
        (Some((v, digest)), Some(m)) => match Trailer::verify(v, &m.exporter.public_key) {
            Err(e) => Status::TrailerInvalid(e.to_string()),
            Ok(t) if t.sha256.as_bytes() != &digest => Status::TrailerInvalid(
                "the bytes before the trailer do not hash to its sha256".into(),
            ),
            Ok(t) if t.events != out.event_lines => Status::TrailerInvalid(format!(
                "trailer counts {} events but the bundle has {}",
                t.events, out.event_lines
            )),
            Ok(_) => Status::Complete,
        },
    };
    Ok(out)
}
