//! Import: read a bundle as a stream, verify everything, store what is new, and say exactly
//! what happened. Never holds the whole bundle in memory; each committed transaction is
//! durable, so an interrupted import re-run ends where one clean run would.
//!
//! The import is a pipeline of threads, so that both cores stay busy:
//!
//! - a **reader** reads lines (hashing every byte for the trailer), finds the trailer, and cuts
//!   the event lines into chunks of up to [`CHUNK_LINES`];
//! - **workers** (one per core) take chunks in turn and do all the work a line needs alone:
//!   recognise duplicates from a borrowed reading of the header and its recomputed hash (no
//!   signature work), parse the others strictly, check hashes, and verify signatures
//!   (`event::verify_batch`, which shares each author's key work within the chunk);
//! - the **calling thread** takes the results back in line order, keeps the report, and hands
//!   verified events to
//! - one **writer**, which owns the store and applies them (`ImportTx`), committing every
//!   [`TX_EVENTS`] events or [`TX_MAX_OPEN`].
//!
//! Chunks in flight are bounded (a few per worker, and [`WRITER_QUEUE`]), so memory does not
//! grow with the bundle.

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rhizome_core::bundle::{is_blank, BundleError, Exporter, Manifest, Trailer};
use rhizome_core::event::verify_batch;
use rhizome_core::{Event, Hash, Header, PublicKey, VerifiedEvent};
use rhizome_store::{Direction, Outcome, Store, StoreError, Trust};

use crate::lines::{Line, LineReader};
pub use crate::rejection::{Refusal, Rejection};

pub use rhizome_core::bundle::{MAX_EVENT_LINE, MAX_LINE};
/// Events verified together when a bundle is only checked (`check_bundle`), and most bytes of
/// their lines (so that large lines do not pile up in memory).
const BATCH: usize = 4096;
const BATCH_BYTES: usize = 8 << 20;
/// Most event lines per chunk of work. Large enough that most authors' runs in a chunk pay for
/// a verification table (`keys::TABLE_MIN_ITEMS`), small enough to bound memory.
const CHUNK_LINES: usize = 2048;
/// Most bytes of lines per chunk (one line may still be up to [`MAX_LINE`]).
const CHUNK_BYTES: usize = 2 << 20;
/// Most bytes of event lines in flight between the reader and the writer (raw, parsed or
/// waiting to be stored; one line longer than this still goes, alone). Chunks are counted too,
/// but a chunk of one 16 MiB line weighs what 10,000 ordinary ones do: measured on 40 lines of
/// 15 MB, the import peaked at 591 MB before this bound. Ordinary bundles stay below it
/// (B6 holds at most about 15 MiB of lines in flight).
const IN_FLIGHT_BYTES: usize = 24 << 20;
/// Verified chunks queued for the writer. The writer is the slower stage, so a deeper queue
/// only holds more memory (each chunk is a few MiB of parsed events): 8 cost 10 MB of peak RSS
/// on B6 for no gain in throughput.
const WRITER_QUEUE: usize = 4;
/// Events per writer transaction. Committing writes every page the transaction touched (to
/// the WAL, then the database), and a bundle sorted by author touches hash-index and timeline
/// pages at random, so small transactions rewrite the same pages again and again. Measured on
/// 1,000,000 events, the writer alone: ~50 µs per event committing every 4,096 events, ~14 µs
/// every 65,536, ~10 µs every 262,144 (BENCHMARKS.md, B6). Memory does not grow with it: SQLite
/// spills dirty pages beyond its cache to the WAL.
const TX_EVENTS: usize = 262_144;
/// Longest a writer transaction stays open (it then commits after the chunk in hand), so that
/// a slow source never keeps other writers (a `post` meanwhile) waiting long, and an import
/// killed part way loses at most this much work.
const TX_MAX_OPEN: Duration = Duration::from_secs(5);
/// Most worker threads (one per core up to this).
const MAX_WORKERS: usize = 16;

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

impl Status {
    /// Why a bundle is not whole, in words (`truncated: no trailer`); `None` when complete.
    /// Kept with a held bundle, so that `pending` says it too.
    pub fn incomplete(&self) -> Option<String> {
        match self {
            Status::Complete => None,
            Status::Truncated => Some("truncated: no trailer".into()),
            Status::TrailerInvalid(why) => Some(format!("trailer invalid: {why}")),
            Status::Unreadable(why) => Some(format!("unreadable: {why}")),
        }
    }
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
    /// All refused lines, counted by reason code (PROTOCOL 4.1).
    pub refused_by_code: BTreeMap<&'static str, u64>,
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
    /// Line number and the event.
    Event(u64, Box<Event>),
    Refused(u64, Rejection),
}

fn parse_event_line(n: u64, bytes: &[u8]) -> Parsed {
    match Event::parse(bytes) {
        Ok(e) => Parsed::Event(n, Box::new(e)),
        Err(e) => Parsed::Refused(n, Rejection::Event(e)),
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

/// A line as the reader hands it to a worker.
enum RawLine {
    /// An event line (or what should be one): its number, bytes, and whether a newline ended it.
    Text(u64, Vec<u8>, bool),
    /// A line longer than [`MAX_EVENT_LINE`]: its number and length.
    TooLong(u64, u64),
}

impl RawLine {
    /// Bytes held.
    fn len(&self) -> usize {
        match self {
            RawLine::Text(_, bytes, _) => bytes.len(),
            RawLine::TooLong(..) => 0,
        }
    }

    /// The author's key as written at the start of a canonical event line (`{"author":"…`),
    /// unparsed. Only a hint for cutting chunks: lines are parsed for real by the workers.
    fn author(&self) -> Option<[u8; 64]> {
        match self {
            RawLine::Text(_, bytes, _) => bytes
                .strip_prefix(b"{\"author\":\"")
                .and_then(|rest| rest.get(..64))
                .and_then(|hex| hex.try_into().ok()),
            RawLine::TooLong(..) => None,
        }
    }
}

/// A chunk of lines for a worker, and where to send what became of them.
struct Job {
    lines: Vec<RawLine>,
    /// Bytes read up to the end of this chunk (for the progress bar).
    bytes: u64,
    done: SyncSender<Result<Done, StoreError>>,
    /// The chunk's share of [`IN_FLIGHT_BYTES`], held until its events are stored.
    permit: Permit,
}

/// What became of a chunk's lines, in line order.
struct Done {
    lines: Vec<Fate>,
    bytes: u64,
    permit: Permit,
}

/// Bytes of event lines between the reader and the writer, shared by every stage: a chunk is
/// read only when its lines fit in [`IN_FLIGHT_BYTES`] with those already in flight (or when
/// none are), and its share is given back when the chunk is dropped, stored or not.
#[derive(Default)]
struct Budget {
    used: Mutex<usize>,
    freed: Condvar,
}

impl Budget {
    fn take(self: &Arc<Self>, bytes: usize) -> Permit {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        while *used > 0 && *used + bytes > IN_FLIGHT_BYTES {
            used = self
                .freed
                .wait(used)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *used += bytes;
        Permit {
            budget: Arc::clone(self),
            bytes,
        }
    }
}

/// A chunk's share of the [`Budget`], given back on drop.
struct Permit {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut used = self
            .budget
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// What became of one line.
// Most lines of a chunk are `Verified`: boxing it would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Fate {
    /// Already stored (the same header hash at the same place): counted, not verified.
    Duplicate(PublicKey, Hash),
    /// Verified: for the writer.
    Verified(VerifiedEvent),
    /// An event of this author that failed verification (line, reason).
    Invalid(PublicKey, u64, Rejection),
    /// Refused before it was an event (line, reason).
    Refused(u64, Rejection),
    /// An event of a blocked author: dropped.
    Blocked,
    /// A cut last line that does not parse: the truncation itself, not a bad event.
    Cut,
}

/// How the reader ended.
struct ReadEnd {
    /// Line number, parsed trailer, and SHA-256 of everything before it.
    trailer: Option<(u64, Value, [u8; 32])>,
    /// Something other than whitespace came after the trailer.
    after_trailer: bool,
    /// Reading failed part way.
    unreadable: Option<String>,
    /// Bytes read.
    bytes: u64,
}

/// Stored hashes of the (author, seq) places some lines claim, read with one range query per
/// author: to recognise duplicates without verifying them.
struct Stored(HashMap<(PublicKey, u64), Hash>);

impl Stored {
    fn load(
        store: &dyn Store,
        places: impl Iterator<Item = (PublicKey, u64)>,
    ) -> Result<Self, StoreError> {
        let mut ranges: BTreeMap<PublicKey, (u64, u64)> = BTreeMap::new();
        for (author, seq) in places {
            let r = ranges.entry(author).or_insert((seq, seq));
            r.0 = r.0.min(seq);
            r.1 = r.1.max(seq);
        }
        let mut map = HashMap::new();
        for (author, (from, to)) in ranges {
            for (seq, hash) in store.stored_hashes(&author, from, to)? {
                map.insert((author, seq), hash);
            }
        }
        Ok(Self(map))
    }

    /// True when the store holds, at the header's author and seq, an event with the hash the
    /// line claims, and the header really hashes to it: a duplicate is confirmed by the hash
    /// recomputed from the line, never by its claim. (Hashed only when the claim matches.)
    fn is_duplicate(&self, header: &Header, claimed: &Hash) -> bool {
        self.0.get(&(header.author, header.seq.get())) == Some(claimed) && header.hash() == *claimed
    }
}

/// The order in which a worker tries the two readings of a line. Both orders give every line
/// the same fate (see [`work`]); which one is cheaper depends on how many lines are duplicates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    /// The quick header reading first: a duplicate costs one borrowed parse and one hash, and
    /// a new event pays for the quick reading on top of the full one. For re-imports.
    QuickFirst,
    /// The full strict parse first, the quick reading only for lines it refuses. For new events.
    FullFirst,
}

/// The quick header reading of a line, unless its author is blocked here.
fn quick_unblocked(bytes: &[u8], blocked: &BTreeSet<PublicKey>) -> Option<(Header, Hash)> {
    quick_header(bytes).filter(|(h, _)| !blocked.contains(&h.author))
}

/// A line the full parse refused, in full-first order: its duplicate check is still to come.
struct RefusedLine {
    /// Index in the chunk's fates.
    i: usize,
    /// Line number.
    n: u64,
    /// Why the full parse refused it.
    reason: Rejection,
    /// False for a cut last line.
    terminated: bool,
    /// Its quick header reading, if that applies.
    quick: Option<(Header, Hash)>,
}

/// A worker's work on one chunk: every line's fate, in line order.
///
/// The fate of a line, whatever `order`:
/// 1. longer than [`MAX_EVENT_LINE`]: refused;
/// 2. its header (read quickly, payload skipped, or fully) is that of an event stored at the
///    same author and seq, recomputed hash equal to the claimed one, author not blocked:
///    duplicate, not verified (even if the full parse would refuse the line);
/// 3. the full strict parse refuses it: refused, or nothing if it is a cut last line;
/// 4. seq beyond the store's limit: refused; author blocked: dropped;
/// 5. otherwise verified: valid for the writer, or refused (invalid).
///
/// The two orders agree on 2: when both readings of a line succeed they give the same header
/// and claimed hash (the quick one only succeeds on lines without escapes in those fields, and
/// both read the same integers), and when only one succeeds, that one decides.
fn work(
    store: &dyn Store,
    blocked: &BTreeSet<PublicKey>,
    lines: Vec<RawLine>,
    order: Order,
) -> Result<Vec<Fate>, StoreError> {
    let quick: Vec<Option<(Header, Hash)>> = lines
        .iter()
        .map(|l| match l {
            RawLine::Text(_, bytes, _) if order == Order::QuickFirst => {
                quick_unblocked(bytes, blocked)
            }
            _ => None,
        })
        .collect();
    let places = quick.iter().flatten().map(|(h, _)| (h.author, h.seq.get()));
    let stored = Stored::load(store, places)?;
    let mut fates: Vec<Option<Fate>> = Vec::with_capacity(lines.len());
    // Still to check for duplicates, each as (index in `fates`, line number, ...): events (the
    // quick reading was not tried or did not apply), and lines the full parse refused, with
    // their quick reading (full-first order only).
    let mut unchecked: Vec<(usize, u64, Event)> = Vec::with_capacity(lines.len());
    let mut refused: Vec<RefusedLine> = Vec::new();
    let mut to_verify: Vec<(usize, u64, Event)> = Vec::with_capacity(lines.len());
    for (line, q) in lines.into_iter().zip(quick) {
        let i = fates.len();
        let (n, bytes, terminated) = match line {
            RawLine::TooLong(n, len) => {
                let why = Rejection::LineTooLong {
                    len,
                    max: MAX_EVENT_LINE,
                };
                fates.push(Some(Fate::Refused(n, why)));
                continue;
            }
            RawLine::Text(n, bytes, terminated) => (n, bytes, terminated),
        };
        if let Some((header, claimed)) = &q {
            if stored.is_duplicate(header, claimed) {
                fates.push(Some(Fate::Duplicate(header.author, *claimed)));
                continue;
            }
        }
        fates.push(match parse_event_line(n, &bytes) {
            Parsed::Refused(n, reason) if order == Order::FullFirst => {
                let quick = quick_unblocked(&bytes, blocked);
                refused.push(RefusedLine {
                    i,
                    n,
                    reason,
                    terminated,
                    quick,
                });
                None
            }
            Parsed::Refused(..) if !terminated => Some(Fate::Cut),
            Parsed::Refused(n, reason) => Some(Fate::Refused(n, reason)),
            Parsed::Event(n, ev) if ev.header.seq.get() > store.max_seq() => {
                let why = Rejection::SeqBeyondStore {
                    seq: ev.header.seq.get(),
                    max: store.max_seq(),
                };
                Some(Fate::Refused(n, why))
            }
            Parsed::Event(_, ev) if blocked.contains(&ev.header.author) => Some(Fate::Blocked),
            Parsed::Event(n, ev) => {
                if q.is_some() {
                    to_verify.push((i, n, *ev)); // checked above: not stored
                } else {
                    unchecked.push((i, n, *ev));
                }
                None
            }
        });
    }
    // One lookup for both (none at all when neither has any).
    let events = unchecked
        .iter()
        .map(|(_, _, ev)| (ev.header.author, ev.header.seq.get()));
    let lines = refused.iter().flat_map(|r| &r.quick);
    let lines = lines.map(|(h, _)| (h.author, h.seq.get()));
    let stored = Stored::load(store, events.chain(lines))?;
    for (i, n, ev) in unchecked {
        if stored.is_duplicate(&ev.header, &ev.hash) {
            fates[i] = Some(Fate::Duplicate(ev.header.author, ev.hash));
        } else {
            to_verify.push((i, n, ev));
        }
    }
    for r in refused {
        fates[r.i] = Some(match r.quick {
            Some((h, claimed)) if stored.is_duplicate(&h, &claimed) => {
                Fate::Duplicate(h.author, claimed)
            }
            _ if !r.terminated => Fate::Cut,
            _ => Fate::Refused(r.n, r.reason),
        });
    }
    // Signatures: one call for the chunk, so each author's key work is shared.
    to_verify.sort_unstable_by_key(|(i, ..)| *i);
    let places: Vec<(usize, u64)> = to_verify.iter().map(|(i, n, _)| (*i, *n)).collect();
    let events: Vec<Event> = to_verify.into_iter().map(|(_, _, ev)| ev).collect();
    for ((i, n), result) in places.into_iter().zip(verify_batch(events)) {
        fates[i] = Some(match result {
            Ok(ev) => Fate::Verified(ev),
            Err(rej) => Fate::Invalid(rej.event.header.author, n, Rejection::Event(rej.error)),
        });
    }
    // Every slot was filled above; an empty one would be a bug, reported as a refusal.
    Ok(fates
        .into_iter()
        .map(|f| f.unwrap_or(Fate::Refused(0, Rejection::Internal)))
        .collect())
}

/// The reader thread: lines into chunks for the workers, in order, until the end of the
/// stream; the trailer is kept aside, and what follows it only checked for being blank.
fn read_lines<R: BufRead>(
    reader: &mut LineReader<R>,
    jobs: &SyncSender<Job>,
    order: &SyncSender<Receiver<Result<Done, StoreError>>>,
    budget: &Arc<Budget>,
) -> ReadEnd {
    let mut end = ReadEnd {
        trailer: None,
        after_trailer: false,
        unreadable: None,
        bytes: 0,
    };
    let mut line_no = 1u64;
    let mut ended = false;
    // A line read but left for the next chunk (it starts a new author's run).
    let mut carry: Option<RawLine> = None;
    while !ended {
        let mut lines: Vec<RawLine> = carry.take().into_iter().collect();
        let mut size: usize = lines.iter().map(RawLine::len).sum();
        let mut author: Option<[u8; 64]> = lines.first().and_then(RawLine::author);
        while lines.len() < CHUNK_LINES && size < CHUNK_BYTES {
            let line = reader.next_line().unwrap_or_else(|e| {
                end.unreadable = Some(e.to_string());
                Line::End
            });
            match line {
                Line::End => {
                    ended = true;
                    break;
                }
                Line::TooLong { len } => {
                    line_no += 1;
                    if end.trailer.is_some() {
                        end.after_trailer = true;
                    } else {
                        lines.push(RawLine::TooLong(line_no, len));
                    }
                }
                Line::Text { bytes, terminated } => {
                    line_no += 1;
                    if end.trailer.is_some() {
                        end.after_trailer |= !is_blank(&bytes);
                    } else if let Some(v) = Trailer::detect(&bytes) {
                        end.trailer = Some((line_no, v, reader.digest_before_last_line()));
                    } else {
                        let line = RawLine::Text(line_no, bytes, terminated);
                        // Past half a chunk, a new author starts the next chunk, so that an
                        // author's run is seldom split (each piece builds its own key table).
                        let next = line.author();
                        if lines.len() >= CHUNK_LINES / 2 && next.is_some() && next != author {
                            carry = Some(line);
                            break;
                        }
                        author = next.or(author);
                        size += line.len();
                        lines.push(line);
                    }
                }
            }
        }
        if lines.is_empty() {
            continue;
        }
        let permit = budget.take(size);
        let (done, result) = mpsc::sync_channel(1);
        let job = Job {
            lines,
            bytes: reader.bytes,
            done,
            permit,
        };
        // Either send fails only when the import stopped early (its error is reported).
        if order.send(result).is_err() || jobs.send(job).is_err() {
            break;
        }
    }
    end.bytes = reader.bytes;
    end
}

/// The writer thread: applies verified chunks in order, committing every [`TX_EVENTS`] events,
/// after [`TX_MAX_OPEN`], and at the end.
fn write_chunks(
    store: &mut dyn Store,
    carrier: &rhizome_core::InstanceId,
    chunks: &Receiver<(Vec<VerifiedEvent>, Permit)>,
) -> Result<Written, StoreError> {
    let mut w = Written::default();
    // No transaction is open while waiting for the first chunk of the next one.
    while let Ok(first) = chunks.recv() {
        let opened = Instant::now();
        let mut tx = store.begin_import(Some(carrier))?;
        let mut next = Some(first);
        while let Some((chunk, permit)) = next.take() {
            let result = tx.add(&chunk)?;
            // Stored: its share of the budget goes back before waiting for the next chunk.
            drop((chunk, permit));
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
            let open = opened.elapsed();
            if tx.events() >= TX_EVENTS || open >= TX_MAX_OPEN {
                break;
            }
            // Nothing within the time left (or no more chunks): commit now.
            next = chunks.recv_timeout(TX_MAX_OPEN - open).ok();
        }
        tx.commit()?;
    }
    Ok(w)
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

/// The header of a well-formed line and the hash it claims, or `None` when the quick reading
/// does not apply (the full strict parse then decides).
fn quick_header(bytes: &[u8]) -> Option<(Header, Hash)> {
    let q: QuickHeader<'_> = serde_json::from_slice(bytes).ok()?;
    let header = Header {
        author: PublicKey::from_bytes_unchecked(rhizome_core::ids::decode_hex(q.author).ok()?),
        seq: rhizome_core::Seq::new(q.seq).ok()?,
        prev: q.prev.map(str::parse).transpose().ok()?,
        kind: rhizome_core::event::EventType::new(q.kind).ok()?,
        timestamp: rhizome_core::Timestamp::new(q.timestamp).ok()?,
        payload_hash: q.payload_hash.parse().ok()?,
        payload_size: q.payload_size,
    };
    Some((header, q.hash.parse().ok()?))
}

/// Reads and verifies only the manifest line of a bundle.
pub fn read_manifest<R: BufRead>(input: R) -> Result<Manifest, ImportError> {
    match LineReader::new(input, MAX_LINE).next_line()? {
        Line::End => Err(ImportError::Empty),
        Line::TooLong { .. } => Err(ImportError::ManifestTooLong),
        Line::Text { bytes, .. } => Manifest::parse(&bytes).map_err(ImportError::Manifest),
    }
}

/// A worker thread: takes chunks until there are none, and sends back each one's fates.
fn run_worker(lookup: &dyn Store, blocked: &BTreeSet<PublicKey>, jobs: &Mutex<Receiver<Job>>) {
    let mut order = Order::QuickFirst;
    loop {
        // The lock is held only while waiting for the next job.
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let done = work(lookup, blocked, job.lines, order).map(|lines| Done {
            lines,
            bytes: job.bytes,
            permit: job.permit,
        });
        // Whichever order suits this chunk likely suits the next: bundles are re-imported
        // whole or not at all, mostly.
        if let Ok(d) = &done {
            order = if d.lines.iter().any(|f| matches!(f, Fate::Duplicate(..))) {
                Order::QuickFirst
            } else {
                Order::FullFirst
            };
        }
        // The receiver is gone only when the import stopped early.
        let _ = job.done.send(done);
    }
}

fn panicked(who: &str) -> ImportError {
    ImportError::Store(StoreError::Limit(format!("{who} thread panicked")))
}

/// Reads, verifies and stores a bundle. See the module docs.
pub fn import_bundle<R: BufRead + Send>(
    store: &mut dyn Store,
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
    reader.set_max(MAX_EVENT_LINE);
    let carrier = manifest.exporter.instance_id;
    if store.trust_of(&carrier)? == Some(Trust::Blocked) {
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
        refused_by_code: BTreeMap::new(),
        feeds_touched: 0,
        missing: Vec::new(),
        bytes: 0,
        seconds: 0.0,
        events_per_second: 0.0,
    };
    let refuse = |report: &mut ImportReport, line: u64, why: Rejection| {
        report.refused_total += 1;
        *report.refused_by_code.entry(why.code()).or_default() += 1;
        if report.refused.len() < 1000 {
            report.refused.push(Refusal::new(line, &why));
        }
    };
    let mut seen: BTreeMap<PublicKey, u64> = BTreeMap::new();
    // Fork evidence lines the manifest lists (8.4), by hash: those found are counted apart
    // from their author's range, those not found are reported.
    let mut evidence: HashMap<Hash, bool> =
        manifest.evidence.iter().map(|e| (e.hash, false)).collect();
    let mut evidence_seen: BTreeMap<PublicKey, u64> = BTreeMap::new();
    // Each worker looks up duplicates through its own connection (opened here, so that a
    // failure to open stops the import before anything is read).
    let workers = rayon::current_num_threads().clamp(1, MAX_WORKERS);
    let lookups = (0..workers)
        .map(|_| store.reader())
        .collect::<Result<Vec<_>, StoreError>>()?;
    // Chunks in flight: at most `workers` waiting for a worker, one per worker being worked on,
    // `workers` done and waiting for their turn, the one the calling thread takes, and
    // `WRITER_QUEUE` verified ones for the writer.
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(workers);
    let jobs_rx = Mutex::new(jobs_rx);
    let (order_tx, order_rx) = mpsc::sync_channel(workers);
    let (to_writer, chunks) = mpsc::sync_channel::<(Vec<VerifiedEvent>, Permit)>(WRITER_QUEUE);
    let budget = Arc::new(Budget::default());
    store.bulk_mode(true)?;
    let writer_store = &mut *store;
    let blocked = &blocked_authors;
    let piped = std::thread::scope(|scope| -> Result<(Written, ReadEnd), ImportError> {
        let writer = scope.spawn(move || write_chunks(writer_store, &carrier, &chunks));
        let budget = &budget;
        let reader = scope.spawn(move || read_lines(&mut reader, &jobs_tx, &order_tx, budget));
        let jobs = &jobs_rx;
        let pool: Vec<_> = lookups
            .into_iter()
            .map(|lookup| scope.spawn(move || run_worker(&*lookup, blocked, jobs)))
            .collect();
        // Results in line order; anything that stops this loop early drops `order_rx` and
        // `to_writer`, which stops the reader, then the workers, then the writer (after it has
        // committed what it had).
        let collected = (|| -> Result<(), ImportError> {
            for result in order_rx {
                let done = result.recv().map_err(|_| panicked("an import worker"))??;
                let mut verified = Vec::with_capacity(done.lines.len());
                for fate in done.lines {
                    match fate {
                        Fate::Cut => continue,
                        Fate::Duplicate(author, hash) => {
                            report.duplicate += 1;
                            *seen.entry(author).or_default() += 1;
                            if let Some(found @ false) = evidence.get_mut(&hash) {
                                *found = true;
                                *evidence_seen.entry(author).or_default() += 1;
                            }
                        }
                        Fate::Verified(ev) => {
                            *seen.entry(ev.header.author).or_default() += 1;
                            if let Some(found @ false) = evidence.get_mut(&ev.hash) {
                                *found = true;
                                *evidence_seen.entry(ev.header.author).or_default() += 1;
                            }
                            verified.push(ev);
                        }
                        Fate::Invalid(author, n, why) => {
                            *seen.entry(author).or_default() += 1;
                            refuse(&mut report, n, why);
                        }
                        Fate::Refused(n, why) => refuse(&mut report, n, why),
                        Fate::Blocked => report.blocked += 1,
                    }
                    report.events_read += 1;
                }
                // A chunk with nothing to store gives its share back here.
                if !verified.is_empty() && to_writer.send((verified, done.permit)).is_err() {
                    break; // the writer failed; its error is reported below
                }
                progress(done.bytes);
            }
            Ok(())
        })();
        drop(to_writer);
        let end = reader.join().map_err(|_| panicked("the reader"))?;
        for worker in pool {
            worker.join().map_err(|_| panicked("an import worker"))?;
        }
        let written = writer.join().map_err(|_| panicked("the writer"))??;
        collected?;
        Ok((written, end))
    });
    store.bulk_mode(false)?;
    let (written, end) = piped?;
    report.new = written.new;
    report.duplicate += written.duplicate;
    report.filled = written.filled;
    report.parked = written.pending;
    report.forks = written.forks;
    report.promoted = written.promoted;
    report.pending = store.pending_count()?;
    report.feeds_touched = seen.len() as u64;
    report.status = match (end.trailer, end.unreadable) {
        (_, Some(e)) => Status::Unreadable(format!("after {} bytes: {e}", end.bytes)),
        (None, None) => Status::Truncated,
        (Some(_), None) if end.after_trailer => {
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
        let got = seen
            .get(&f.author)
            .copied()
            .unwrap_or(0)
            .saturating_sub(evidence_seen.get(&f.author).copied().unwrap_or(0));
        let want = f.to - f.from + 1;
        if got != want {
            report.missing.push(format!(
                "feed {} seq {}..{}: manifest lists {want} events, bundle had {got}",
                f.author, f.from, f.to
            ));
        }
    }
    for e in manifest
        .evidence
        .iter()
        .filter(|e| !blocked_authors.contains(&e.author) && evidence.get(&e.hash) == Some(&false))
    {
        report.missing.push(format!(
            "evidence of feed {} seq {}: event {} is listed, the bundle did not have it",
            e.author, e.seq, e.hash
        ));
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
    report.bytes = end.bytes;
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
    /// Malformed lines and invalid events, by reason code (PROTOCOL 4.1).
    pub refused_by_code: BTreeMap<&'static str, u64>,
    /// Trailer state.
    #[serde(flatten)]
    pub status: Status,
    /// Bytes read.
    pub bytes: u64,
}

/// Verifies events on all cores; counts the ones that fail by reason code into `by_code`
/// and returns how many fail.
fn count_invalid(events: Vec<Event>, by_code: &mut BTreeMap<&'static str, u64>) -> u64 {
    let chunk = events
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1);
    let codes: Vec<&'static str> = events
        .par_chunks(chunk)
        .flat_map_iter(|c| {
            verify_batch(c.to_vec())
                .into_iter()
                .filter_map(|r| r.err().map(|rej| rej.error.code()))
        })
        .collect();
    for code in &codes {
        *by_code.entry(code).or_default() += 1;
    }
    codes.len() as u64
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
    reader.set_max(MAX_EVENT_LINE);
    let mut out = Inspection {
        manifest,
        manifest_error,
        event_lines: 0,
        malformed_lines: 0,
        invalid_events: 0,
        refused_by_code: BTreeMap::new(),
        status: Status::Truncated,
        bytes: 0,
    };
    let mut batch: Vec<Event> = Vec::new();
    let mut batch_bytes = 0;
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
                after |= !is_blank(&bytes);
            }
            _ if trailer.is_some() => after = true,
            Line::TooLong { .. } => {
                out.event_lines += 1;
                out.malformed_lines += 1;
                *out.refused_by_code.entry("line_too_long").or_default() += 1;
            }
            Line::Text { bytes, terminated } => {
                if let Some(v) = Trailer::detect(&bytes) {
                    trailer = Some((v, reader.digest_before_last_line()));
                    continue;
                }
                match parse_event_line(0, &bytes) {
                    // A cut last line is the truncation itself (8.8 rule 9), as on import.
                    Parsed::Refused(..) if !terminated => {}
                    Parsed::Event(_, ev) => {
                        out.event_lines += 1;
                        if verify_events {
                            batch.push(*ev);
                            batch_bytes += bytes.len();
                            if batch.len() == BATCH || batch_bytes >= BATCH_BYTES {
                                let batch = std::mem::take(&mut batch);
                                out.invalid_events +=
                                    count_invalid(batch, &mut out.refused_by_code);
                                batch_bytes = 0;
                            }
                        }
                    }
                    Parsed::Refused(_, why) => {
                        out.event_lines += 1;
                        out.malformed_lines += 1;
                        *out.refused_by_code.entry(why.code()).or_default() += 1;
                    }
                }
            }
        }
    }
    out.invalid_events += count_invalid(batch, &mut out.refused_by_code);
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

#[cfg(test)]
mod tests {
    use super::*;
    use rhizome_core::event::{sign, EventType, Payload};
    use rhizome_core::{SecretKey, Seq, Timestamp};
    use rhizome_store::LogStore;
    use serde_json::json;

    fn signed(key: &SecretKey, seq: u64, prev: Option<Hash>, kind: &str) -> VerifiedEvent {
        sign(
            key,
            Seq::new(seq).unwrap(),
            prev,
            EventType::new(kind).unwrap(),
            Timestamp::new(1_700_000_000_000 + seq).unwrap(),
            Payload::new(json!({"text": format!("post {seq}")})).unwrap(),
        )
        .unwrap()
    }

    fn describe(f: &Fate) -> String {
        match f {
            Fate::Duplicate(a, _) => format!("duplicate {}", a.fingerprint()),
            Fate::Verified(ev) => format!("verified {}", ev.hash),
            Fate::Invalid(a, n, why) => format!("invalid {} line {n}: {why}", a.fingerprint()),
            Fate::Refused(n, why) => format!("refused line {n}: {why}"),
            Fate::Blocked => "blocked".into(),
            Fate::Cut => "cut".into(),
        }
    }

    /// A chunk larger than the whole budget goes alone; the next waits until it is dropped.
    #[test]
    fn budget_admits_an_oversize_chunk_alone_then_waits_for_room() {
        let budget = Arc::new(Budget::default());
        let big = budget.take(IN_FLIGHT_BYTES * 2);
        let (sent, got) = mpsc::channel();
        let waiter = {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || {
                let small = budget.take(1);
                sent.send(()).unwrap();
                drop(small);
            })
        };
        assert!(
            got.recv_timeout(Duration::from_millis(300)).is_err(),
            "admitted while the budget was over"
        );
        drop(big);
        got.recv_timeout(Duration::from_secs(10))
            .expect("admitted once the big chunk was dropped");
        waiter.join().unwrap();
        assert_eq!(*budget.used.lock().unwrap(), 0, "every share given back");
        // Within the budget, chunks go together.
        let (a, b) = (
            budget.take(IN_FLIGHT_BYTES / 2),
            budget.take(IN_FLIGHT_BYTES / 2),
        );
        assert_eq!(*budget.used.lock().unwrap(), IN_FLIGHT_BYTES);
        drop((a, b));
    }

    /// Both orders of reading give every line the same fate, on lines made to tell them apart.
    #[test]
    fn quick_first_and_full_first_agree() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = rhizome_store_sqlite::SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let (alice, bob) = (
            SecretKey::from_seed(&[1; 32]),
            SecretKey::from_seed(&[2; 32]),
        );
        let a1 = signed(&alice, 1, None, "POST");
        let a2 = signed(&alice, 2, Some(a1.hash), "POST");
        let a3 = signed(&alice, 3, Some(a2.hash), "POST");
        let b1 = signed(&bob, 1, None, "POST");
        store.append(&[a1.clone(), a2.clone(), b1.clone()]).unwrap();
        let blocked: BTreeSet<PublicKey> = [bob.public_key()].into();

        let line = |ev: &VerifiedEvent| String::from_utf8(ev.to_line()).unwrap();
        let a1_line = line(&a1);
        let mut lines: Vec<(String, bool)> = vec![
            (a1_line.clone(), true),                                       // stored
            (line(&a3), true),                                             // new
            (line(&b1), true),                                             // stored, author blocked
            (a1_line.replace("}", ",\"extra\":1}"), true), // stored header, unknown field
            (a1_line.replace("post 1", "post one"), true), // stored header, payload changed
            (a1_line.replace("\"POST\"", "\"P\\u004fST\""), true), // stored, escaped type
            (a1_line.replace(&a1.hash.to_hex(), &a3.hash.to_hex()), true), // wrong claimed hash
            (a1_line[..a1_line.len() - 5].to_string(), false), // cut
            (a1_line.clone(), false),                      // whole, no newline after it
            ("{\"not\": \"an event\"}".into(), true),
            ("[1, 2]".into(), true),
        ];
        // A stored event's line whose seq is beyond the store's limit.
        lines.push((
            line(&a2).replace("\"seq\":2", &format!("\"seq\":{}", 1u64 << 40)),
            true,
        ));
        let raw = || {
            let mut out: Vec<RawLine> = lines
                .iter()
                .enumerate()
                .map(|(i, (t, term))| RawLine::Text(i as u64 + 2, t.clone().into_bytes(), *term))
                .collect();
            out.push(RawLine::TooLong(99, 20 << 20));
            out
        };
        let quick = work(&store, &blocked, raw(), Order::QuickFirst).unwrap();
        let full = work(&store, &blocked, raw(), Order::FullFirst).unwrap();
        let quick: Vec<String> = quick.iter().map(describe).collect();
        let full: Vec<String> = full.iter().map(describe).collect();
        assert_eq!(quick, full);
        // And they are the fates the rules say.
        let starts: Vec<&str> = quick
            .iter()
            .map(|d| d.split(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(
            starts,
            [
                "duplicate",
                "verified",
                "blocked",
                "duplicate",
                "duplicate",
                "duplicate",
                "invalid",
                "cut",
                "duplicate",
                "refused",
                "refused",
                "refused",
                "refused"
            ],
            "{quick:#?}"
        );
    }
}
