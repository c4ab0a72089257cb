//! The batch writer: every write of the log (an `append`, an import batch, a migrated record)
//! is one transaction that
//!
//! 1. takes the store lock FOR UPDATE: batches commit one at a time across every process on
//!    the database, as SQLite's single writer does. Feed row locks alone were not enough: a
//!    batch's view rules read other feeds' rows (a reply's target, a reshare's original), and
//!    two batches each not yet seeing the other's uncommitted rows left events skipped in the
//!    views that one import would have shown (racing importers, seen in
//!    `tests/concurrency.rs`). Verification, the costly part, stays parallel outside it;
//! 2. inserts the batch's new feeds (`ON CONFLICT DO NOTHING`, in author-key order) and locks
//!    the rows of all its feeds (`SELECT ... ORDER BY author FOR UPDATE`): one global order,
//!    so two writers never wait on each other in a cycle;
//! 3. reads, in one query, the stored hashes of the positions the batch claims at or below
//!    those heads (duplicates, forks, withheld payloads to fill), and the star and circle rows
//!    its events may read back;
//! 4. applies the chain rules of `rhizome_core::chain` and the view merge rules of
//!    `rhizome_core::views` in memory, event by event, against heads read under the locks;
//! 5. for an import, parks events whose predecessors are missing, keeps fork evidence, and
//!    promotes parked events whose gap has filled;
//! 6. writes everything with one multi-row statement per table (`INSERT ... SELECT * FROM
//!    unnest($1::bigint[], ...)`), then the new heads.
//!
//! A few thousand events thus cost about a dozen round trips. The caller retries the whole
//! transaction on a serialization failure, a deadlock or a unique violation (see
//! [`crate::Retry`]), with all this state rebuilt from the database.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rhizome_core::chain::{self, AtHeld, Link};
use rhizome_core::privacy::Audience;
use rhizome_core::{Event, Hash, InstanceId, PublicKey, VerifiedEvent};
use rhizome_store::{Outcome, Result as StoreResult, StoreError};

use crate::views::{self, ViewBuf, LIVE};
use crate::{bad_row, hash_col, u64_col, Conn, End, PgStore, Result, Retry, SEQ_LIMIT};

/// What the batch is.
#[derive(Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// `LogStore::append`: outcomes only.
    Append,
    /// `LogStore::append_legacy`: one event, kept with its record id only if inserted.
    Legacy(&'a str),
    /// An import batch, carried by this instance: parks gaps, keeps forks, promotes.
    Import(Option<InstanceId>),
}

/// What a committed batch did.
#[derive(Default)]
pub(crate) struct Written {
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) promoted: u64,
}

/// Rows per statement when the buffers are written.
const CHUNK: usize = 8192;
/// Parked events read back per round of promotion (a line may be up to 16 MiB).
const PROMOTE_PAGE: i64 = 256;

/// Writes one batch in its own transaction (retried as a whole on conflicts).
pub(crate) fn write(
    store: &PgStore,
    events: &[VerifiedEvent],
    mode: Mode<'_>,
) -> StoreResult<Written> {
    if events.is_empty() {
        return Ok(Written::default());
    }
    let (written, created) = store.write(Retry::ConflictsAndUnique, |c| {
        let mut batch = Batch::begin(c, events.iter().map(|e| &**e))?;
        let mut outcomes = Vec::with_capacity(events.len());
        let carrier = match mode {
            Mode::Import(carrier) => Some(carrier),
            _ => None,
        };
        for ev in events {
            let outcome = batch.step(ev)?;
            if let Some(carrier) = carrier {
                batch.record(ev, &outcome, carrier.as_ref());
            }
            outcomes.push(outcome);
        }
        let promoted = match carrier {
            Some(carrier) => batch.promote(carrier.as_ref())?,
            None => 0,
        };
        let keep = match mode {
            Mode::Legacy(_) => outcomes.first() == Some(&Outcome::Inserted),
            _ => true,
        };
        if !keep {
            return Ok(End::Rollback((Written { outcomes, promoted }, Vec::new())));
        }
        batch.flush()?;
        if let (Mode::Legacy(legacy), Some(ev)) = (mode, events.first()) {
            batch.c.execute(
                "INSERT INTO legacy_ids (legacy, value) VALUES ($1, $2)",
                &[&legacy.as_bytes(), &&ev.hash.as_bytes()[..]],
            )?;
        }
        let created = std::mem::take(&mut batch.created);
        Ok(End::Commit((Written { outcomes, promoted }, created)))
    })?;
    // Committed: these feed rows exist for good (they are never deleted).
    if !created.is_empty() {
        if let Ok(mut c) = store.borrow() {
            c.known_feeds.extend(created);
        }
    }
    Ok(written)
}

/// A feed as the batch sees it, its row locked.
struct Feed {
    id: i64,
    head_seq: u64,
    head_hash: Option<Hash>,
    /// The head when the batch began: positions up to it are in the table.
    initial: u64,
    dirty: bool,
}

/// What the log holds at a position.
#[derive(Clone, Copy)]
struct Stored {
    hash: Hash,
    withheld: bool,
}

/// An event row to insert.
struct EventRow {
    feed_id: i64,
    seq: i64,
    hash: [u8; 32],
    prev: Option<[u8; 32]>,
    kind: String,
    ts: i64,
    payload_hash: [u8; 32],
    payload_size: i64,
    payload: Option<Vec<u8>>,
    sig: [u8; 64],
}

struct PendingRow {
    author: PublicKey,
    seq: i64,
    hash: Hash,
    line: Vec<u8>,
}

struct ForkRow {
    author: PublicKey,
    seq: i64,
    hash: Hash,
    held: Hash,
    kind: &'static str,
    carrier: Option<InstanceId>,
    line: Vec<u8>,
}

pub(crate) struct Batch<'c> {
    pub(crate) c: &'c mut Conn,
    feeds: HashMap<PublicKey, Feed>,
    /// Feeds this transaction found that the connection did not know (cached on commit).
    created: Vec<(PublicKey, i64)>,
    held: HashMap<(i64, u64), Stored>,
    rows: Vec<EventRow>,
    row_at: HashMap<(i64, u64), usize>,
    fills: Vec<(i64, i64, Vec<u8>)>,
    limited: BTreeMap<(i64, i64), String>,
    views: ViewBuf,
    pending: Vec<PendingRow>,
    forks: Vec<ForkRow>,
}

impl<'c> Batch<'c> {
    /// Steps 1 to 3 of the module docs, for the authors of `events`.
    fn begin<'e>(c: &'c mut Conn, events: impl Iterator<Item = &'e Event> + Clone) -> Result<Self> {
        c.query("SELECT id FROM store_lock WHERE id = 1 FOR UPDATE", &[])?;
        let authors: BTreeSet<PublicKey> = events.clone().map(|e| e.header.author).collect();
        let unknown: Vec<&[u8]> = authors
            .iter()
            .filter(|a| !c.known_feeds.contains_key(*a))
            .map(|a| &a.as_bytes()[..])
            .collect();
        if !unknown.is_empty() {
            c.execute(
                "INSERT INTO feeds (author) SELECT a FROM unnest($1::bytea[]) AS u(a) ORDER BY a
                 ON CONFLICT (author) DO NOTHING",
                &[&unknown],
            )?;
        }
        let keys: Vec<&[u8]> = authors.iter().map(|a| &a.as_bytes()[..]).collect();
        let mut feeds = HashMap::with_capacity(authors.len());
        let mut created = Vec::new();
        for r in c.query(
            "SELECT feed_id, author, head_seq, head_hash FROM feeds WHERE author = ANY($1)
             ORDER BY author FOR UPDATE",
            &[&keys],
        )? {
            let author = crate::key_col(r.get(1), "feeds.author")?;
            let id: i64 = r.get(0);
            let head_seq = u64_col(r.get(2));
            let head_hash = r
                .get::<_, Option<&[u8]>>(3)
                .map(|h| hash_col(h, "feeds.head_hash"))
                .transpose()?;
            if !c.known_feeds.contains_key(&author) {
                created.push((author, id));
            }
            feeds.insert(
                author,
                Feed {
                    id,
                    head_seq,
                    head_hash,
                    initial: head_seq,
                    dirty: false,
                },
            );
        }
        if feeds.len() != authors.len() {
            // A feed row this connection believed in is gone (the table was edited by hand):
            // forget what it knew; the retry inserts the rows again.
            c.known_feeds.clear();
            return Err(crate::Error::Store(StoreError::Backend {
                backend: "postgres",
                detail: "feed rows disappeared during the write; run it again".into(),
            }));
        }
        // Positions the batch claims at or below their heads: one query for all.
        let (mut pf, mut ps) = (Vec::new(), Vec::new());
        for ev in events.clone() {
            let seq = ev.header.seq.get();
            if let Some(f) = feeds.get(&ev.header.author) {
                if seq <= f.initial {
                    pf.push(f.id);
                    ps.push(seq as i64);
                }
            }
        }
        let mut held = HashMap::new();
        if !pf.is_empty() {
            for r in c.query(
                "SELECT e.feed_id, e.seq, e.hash, e.payload IS NULL FROM events e
                 JOIN unnest($1::bigint[], $2::bigint[]) AS p(f, s) ON e.feed_id = p.f AND e.seq = p.s",
                &[&pf, &ps],
            )? {
                held.insert(
                    (r.get::<_, i64>(0), u64_col(r.get(1))),
                    Stored {
                        hash: hash_col(r.get(2), "events.hash")?,
                        withheld: r.get(3),
                    },
                );
            }
        }
        let mut views = ViewBuf::new(LIVE);
        views.prefetch(c, events)?;
        Ok(Self {
            c,
            feeds,
            created,
            held,
            rows: Vec::new(),
            row_at: HashMap::new(),
            fills: Vec::new(),
            limited: BTreeMap::new(),
            views,
            pending: Vec::new(),
            forks: Vec::new(),
        })
    }

    /// What the log holds at (feed, seq), which is at or below the feed's head.
    fn stored_at(&mut self, feed_id: i64, seq: u64) -> Result<Stored> {
        if let Some(&i) = self.row_at.get(&(feed_id, seq)) {
            let row = &self.rows[i];
            return Ok(Stored {
                hash: Hash::from_bytes(row.hash),
                withheld: row.payload.is_none(),
            });
        }
        if let Some(s) = self.held.get(&(feed_id, seq)) {
            return Ok(*s);
        }
        // Not prefetched (a parked event behind the head): read it.
        let row = self
            .c
            .query_opt(
                "SELECT hash, payload IS NULL FROM events WHERE feed_id = $1 AND seq = $2",
                &[&feed_id, &(seq as i64)],
            )?
            .ok_or_else(|| {
                bad_row(
                    &format!("feed {feed_id} seq {seq}"),
                    "the feed's head is beyond its stored events",
                )
            })?;
        let stored = Stored {
            hash: hash_col(row.get(0), "events.hash")?,
            withheld: row.get(1),
        };
        self.held.insert((feed_id, seq), stored);
        Ok(stored)
    }

    /// Where one event falls, and its effects (step 4).
    fn step(&mut self, ev: &Event) -> Result<Outcome> {
        let h = &ev.header;
        let seq = h.seq.get();
        if seq > SEQ_LIMIT {
            return Err(StoreError::Limit(format!(
                "seq {seq} of feed {} is beyond this store's limit of 2^53-1",
                h.author
            ))
            .into());
        }
        let Some(feed) = self.feeds.get(&h.author) else {
            return Err(bad_row(&h.author.to_hex(), "feed not locked by this batch"));
        };
        let (id, head_seq, head_hash) = (feed.id, feed.head_seq, feed.head_hash);
        Ok(match chain::link(head_seq, head_hash.as_ref(), h) {
            Link::Held => {
                let stored = self.stored_at(id, seq)?;
                match chain::at_held_position(stored.hash, &ev.hash) {
                    AtHeld::Same => self.fill(id, seq, ev, stored)?,
                    AtHeld::Fork { existing } => Outcome::Fork { existing },
                }
            }
            Link::Gap { head } => Outcome::Gap { head },
            Link::PrevMismatch { head_hash } => Outcome::PrevMismatch { head_hash },
            Link::Extends => {
                self.row_at.insert((id, seq), self.rows.len());
                self.rows.push(EventRow {
                    feed_id: id,
                    seq: seq as i64,
                    hash: *ev.hash.as_bytes(),
                    prev: h.prev.map(|p| *p.as_bytes()),
                    kind: h.kind.as_str().to_string(),
                    ts: h.timestamp.get() as i64,
                    payload_hash: *h.payload_hash.as_bytes(),
                    payload_size: h.payload_size as i64,
                    payload: ev.payload.as_ref().map(|p| p.canonical_bytes().to_vec()),
                    sig: *ev.sig.as_bytes(),
                });
                views::apply(self.c, &mut self.views, ev)?;
                self.index_audience(id, seq, ev);
                if let Some(feed) = self.feeds.get_mut(&h.author) {
                    feed.head_seq = seq;
                    feed.head_hash = Some(ev.hash);
                    feed.dirty = true;
                }
                Outcome::Inserted
            }
        })
    }

    /// A payload arriving for an event stored withheld (PROTOCOL 3.6) is added, and the event
    /// reaches the views as if it had come whole: the verified hash ties it to the header.
    fn fill(&mut self, id: i64, seq: u64, ev: &Event, stored: Stored) -> Result<Outcome> {
        let Some(payload) = &ev.payload else {
            return Ok(Outcome::Duplicate);
        };
        if !stored.withheld {
            return Ok(Outcome::Duplicate);
        }
        let bytes = payload.canonical_bytes().to_vec();
        match self.row_at.get(&(id, seq)) {
            Some(&i) => self.rows[i].payload = Some(bytes),
            None => {
                self.fills.push((id, seq as i64, bytes));
                self.held.insert(
                    (id, seq),
                    Stored {
                        hash: stored.hash,
                        withheld: false,
                    },
                );
            }
        }
        views::forget_skip(self.c, &mut self.views, &ev.hash)?;
        views::apply(self.c, &mut self.views, ev)?;
        self.index_audience(id, seq, ev);
        Ok(Outcome::Filled)
    }

    /// Records the audience of a limited payload (PROTOCOL 9.1) for exports.
    fn index_audience(&mut self, id: i64, seq: u64, ev: &Event) {
        let Some(payload) = &ev.payload else {
            return;
        };
        if let Audience::Limited(members) = Audience::of(payload) {
            let quoted: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
            self.limited
                .insert((id, seq as i64), format!("[{}]", quoted.join(",")));
        }
    }

    /// An import's side effects of one outcome: a gap is parked, a fork kept as evidence.
    fn record(&mut self, ev: &Event, outcome: &Outcome, carrier: Option<&InstanceId>) {
        let (author, seq) = (ev.header.author, ev.header.seq.get() as i64);
        let (kind, held) = match outcome {
            Outcome::Gap { .. } => {
                self.pending.push(PendingRow {
                    author,
                    seq,
                    hash: ev.hash,
                    line: ev.to_line(),
                });
                return;
            }
            Outcome::Fork { existing } => ("same_seq", *existing),
            Outcome::PrevMismatch { head_hash: Some(h) } => ("prev_mismatch", *h),
            _ => return,
        };
        self.forks.push(ForkRow {
            author,
            seq,
            hash: ev.hash,
            held,
            kind,
            carrier: carrier.copied(),
            line: ev.to_line(),
        });
    }

    /// Moves parked events of the batch's feeds into the log while they extend it (step 5).
    fn promote(&mut self, carrier: Option<&InstanceId>) -> Result<u64> {
        let mut authors: Vec<PublicKey> = {
            let mut a: Vec<PublicKey> = self.feeds.keys().copied().collect();
            a.sort();
            a
        };
        let mut promoted = 0;
        while !authors.is_empty() {
            self.flush_pending()?;
            let keys: Vec<&[u8]> = authors.iter().map(|a| &a.as_bytes()[..]).collect();
            let heads: Vec<i64> = authors
                .iter()
                .map(|a| self.feeds.get(a).map_or(0, |f| f.head_seq as i64))
                .collect();
            let rows = self.c.query(
                "SELECT p.author, p.seq, p.hash, p.line FROM pending p
                 JOIN unnest($1::bytea[], $2::bigint[]) AS h(author, head) ON p.author = h.author
                 WHERE p.seq <= h.head + 1 ORDER BY p.author, p.seq, p.hash LIMIT $3",
                &[&keys, &heads, &PROMOTE_PAGE],
            )?;
            if rows.is_empty() {
                break;
            }
            let full = rows.len() as i64 == PROMOTE_PAGE;
            let da: Vec<&[u8]> = rows.iter().map(|r| r.get::<_, &[u8]>(0)).collect();
            let ds: Vec<i64> = rows.iter().map(|r| r.get::<_, i64>(1)).collect();
            let dh: Vec<&[u8]> = rows.iter().map(|r| r.get::<_, &[u8]>(2)).collect();
            self.c.execute(
                "DELETE FROM pending p USING unnest($1::bytea[], $2::bigint[], $3::bytea[]) AS d(a, s, h)
                 WHERE p.author = d.a AND p.seq = d.s AND p.hash = d.h",
                &[&da, &ds, &dh],
            )?;
            let mut progressed = BTreeSet::new();
            for r in &rows {
                // Parked lines were verified on the way in; verify again rather than trust a
                // table, and only for the feed the row is filed under.
                let Ok(ev) = Event::parse(r.get::<_, &[u8]>(3)).and_then(Event::verify) else {
                    continue;
                };
                if &ev.header.author.as_bytes()[..] != r.get::<_, &[u8]>(0) {
                    continue;
                }
                let outcome = self.step(&ev)?;
                if outcome == Outcome::Inserted {
                    promoted += 1;
                    progressed.insert(ev.header.author);
                }
                self.record(&ev, &outcome, carrier);
            }
            if !full {
                authors = progressed.into_iter().collect();
            }
        }
        self.flush_pending()?;
        Ok(promoted)
    }

    fn flush_pending(&mut self) -> Result<()> {
        for rows in self.pending.chunks(CHUNK) {
            let a: Vec<&[u8]> = rows.iter().map(|r| &r.author.as_bytes()[..]).collect();
            let s: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let h: Vec<&[u8]> = rows.iter().map(|r| &r.hash.as_bytes()[..]).collect();
            let l: Vec<&[u8]> = rows.iter().map(|r| &r.line[..]).collect();
            self.c.execute(
                "INSERT INTO pending (author, seq, hash, line)
                 SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[])
                 ON CONFLICT DO NOTHING",
                &[&a, &s, &h, &l],
            )?;
        }
        self.pending.clear();
        Ok(())
    }

    /// Writes everything the batch buffered (step 6).
    fn flush(&mut self) -> Result<()> {
        for rows in self.rows.chunks(CHUNK) {
            let f: Vec<i64> = rows.iter().map(|r| r.feed_id).collect();
            let s: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let h: Vec<&[u8]> = rows.iter().map(|r| &r.hash[..]).collect();
            let p: Vec<Option<&[u8]>> = rows
                .iter()
                .map(|r| r.prev.as_ref().map(|p| &p[..]))
                .collect();
            let k: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
            let t: Vec<i64> = rows.iter().map(|r| r.ts).collect();
            let ph: Vec<&[u8]> = rows.iter().map(|r| &r.payload_hash[..]).collect();
            let ps: Vec<i64> = rows.iter().map(|r| r.payload_size).collect();
            let pl: Vec<Option<&[u8]>> = rows.iter().map(|r| r.payload.as_deref()).collect();
            let sg: Vec<&[u8]> = rows.iter().map(|r| &r.sig[..]).collect();
            self.c.execute(
                "INSERT INTO events (feed_id, seq, hash, prev, type, ts, payload_hash, payload_size, payload, sig)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[], $5::text[],
                     $6::bigint[], $7::bytea[], $8::bigint[], $9::bytea[], $10::bytea[])",
                &[&f, &s, &h, &p, &k, &t, &ph, &ps, &pl, &sg],
            )?;
        }
        for rows in self.fills.chunks(CHUNK) {
            let f: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let s: Vec<i64> = rows.iter().map(|r| r.1).collect();
            let p: Vec<&[u8]> = rows.iter().map(|r| &r.2[..]).collect();
            self.c.execute(
                "UPDATE events SET payload = u.p FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS u(f, s, p)
                 WHERE events.feed_id = u.f AND events.seq = u.s AND events.payload IS NULL",
                &[&f, &s, &p],
            )?;
        }
        if !self.limited.is_empty() {
            let f: Vec<i64> = self.limited.keys().map(|k| k.0).collect();
            let s: Vec<i64> = self.limited.keys().map(|k| k.1).collect();
            let m: Vec<&str> = self.limited.values().map(String::as_str).collect();
            self.c.execute(
                "INSERT INTO limited (feed_id, seq, members)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])
                 ON CONFLICT (feed_id, seq) DO UPDATE SET members = excluded.members",
                &[&f, &s, &m],
            )?;
        }
        self.views.flush(self.c)?;
        self.flush_pending()?;
        for rows in self.forks.chunks(CHUNK) {
            let a: Vec<&[u8]> = rows.iter().map(|r| &r.author.as_bytes()[..]).collect();
            let s: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let h: Vec<&[u8]> = rows.iter().map(|r| &r.hash.as_bytes()[..]).collect();
            let held: Vec<&[u8]> = rows.iter().map(|r| &r.held.as_bytes()[..]).collect();
            let k: Vec<&str> = rows.iter().map(|r| r.kind).collect();
            let cr: Vec<Option<&[u8]>> = rows
                .iter()
                .map(|r| r.carrier.as_ref().map(|c| &c.as_bytes()[..]))
                .collect();
            let l: Vec<&[u8]> = rows.iter().map(|r| &r.line[..]).collect();
            self.c.execute(
                "INSERT INTO forks (author, seq, hash, held, kind, carrier, line)
                 SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[], $5::text[],
                     $6::bytea[], $7::bytea[])
                 ON CONFLICT DO NOTHING",
                &[&a, &s, &h, &held, &k, &cr, &l],
            )?;
        }
        let dirty: Vec<&Feed> = self.feeds.values().filter(|f| f.dirty).collect();
        if !dirty.is_empty() {
            let id: Vec<i64> = dirty.iter().map(|f| f.id).collect();
            let s: Vec<i64> = dirty.iter().map(|f| f.head_seq as i64).collect();
            let h: Vec<Option<&[u8]>> = dirty
                .iter()
                .map(|f| f.head_hash.as_ref().map(|h| &h.as_bytes()[..]))
                .collect();
            self.c.execute(
                "UPDATE feeds SET head_seq = u.s, head_hash = u.h
                 FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS u(id, s, h)
                 WHERE feeds.feed_id = u.id",
                &[&id, &s, &h],
            )?;
        }
        Ok(())
    }
}
