//! What the sync layer keeps in the store: peers with their `sent` and `acked` clocks and trust,
//! events waiting for their predecessors (pending), fork evidence, and the range reads that
//! make export cost O(delta).

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use rhizome_core::bundle::line_len;
use rhizome_core::event::{self, EventType, Header};
use rhizome_core::privacy::{Audience, HostDeclaration};
use rhizome_core::{
    Clock, Event, Hash, InstanceId, PublicKey, Seq, Signature, Timestamp, VerifiedEvent,
};

use crate::sqlite::{append_in, classify, hash_col, instance_col, key_col};
use crate::{Outcome, Result, SqliteStore, StoreError};

/// How much an instance is trusted as a carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Seen, not yet approved.
    Unknown,
    /// Approved: its bundles are applied.
    Trusted,
    /// Refused: its bundles are not imported.
    Blocked,
}

impl Trust {
    fn as_str(self) -> &'static str {
        match self {
            Trust::Unknown => "unknown",
            Trust::Trusted => "trusted",
            Trust::Blocked => "blocked",
        }
    }
    fn parse(s: &str) -> Trust {
        match s {
            "trusted" => Trust::Trusted,
            "blocked" => Trust::Blocked,
            _ => Trust::Unknown,
        }
    }
}

/// A remote instance and what we know it holds.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    /// Its id.
    pub instance_id: InstanceId,
    /// Its key.
    pub public_key: PublicKey,
    /// Its name, as its last manifest said.
    pub name: String,
    /// Trust state.
    pub trust: Trust,
    /// What we have put in bundles for it.
    pub sent: Clock,
    /// What its own latest bundle said it holds.
    pub acked: Clock,
    /// Last exchange, ms since the epoch.
    pub last_exchange_at: Option<u64>,
    /// Last method: usb (or https later).
    pub last_method: Option<String>,
    /// Last direction: export or import.
    pub last_direction: Option<String>,
    /// The age recipient its manifests publish, if any.
    pub age_recipient: Option<String>,
}

/// A bundle from an unknown instance, verified and held until approved or rejected.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    /// Short id: the first 16 hex characters of the SHA-256 of the bundle file.
    pub id: String,
    /// Exporter instance id.
    pub instance_id: InstanceId,
    /// Exporter key.
    pub public_key: PublicKey,
    /// Exporter name, as its manifest says.
    pub name: String,
    /// Event lines.
    pub events: u64,
    /// Feeds.
    pub feeds: u64,
    /// Lines that failed verification (they will be refused on approval).
    pub invalid: u64,
    /// When it arrived, ms since the epoch.
    pub arrived_at: u64,
    /// Where the held copy is.
    pub file: String,
}

/// Direction of an exchange with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We wrote a bundle for it.
    Export,
    /// We read a bundle from it.
    Import,
}

/// Result of one import batch.
#[derive(Debug, Clone, Default)]
pub struct BatchResult {
    /// One outcome per event given.
    pub outcomes: Vec<Outcome>,
    /// Pending events that the batch let join their feeds.
    pub promoted: u64,
}

/// One piece of fork evidence.
#[derive(Debug, Clone, Serialize)]
pub struct ForkRecord {
    /// The equivocating author.
    pub author: PublicKey,
    /// The seq where the feed forks.
    pub seq: u64,
    /// The event the log holds there.
    pub held: Hash,
    /// The conflicting event.
    pub other: Hash,
    /// `same_seq` or `prev_mismatch`.
    pub kind: String,
    /// The instance that carried the conflicting event.
    pub carrier: Option<InstanceId>,
}

/// Planned slice of one feed for an export.
#[derive(Debug, Clone)]
pub struct RangePlan {
    /// Events in the range.
    pub count: u64,
    /// Exact bytes of their lines.
    pub bytes: u64,
    /// Hash of the last event.
    pub head: Option<Hash>,
}

fn clock_col(text: &str, what: &str) -> Result<Clock> {
    serde_json::from_str(text).map_err(|e| StoreError::BadRow {
        location: what.into(),
        detail: e.to_string(),
    })
}

fn clock_text(c: &Clock) -> String {
    serde_json::to_string(c).unwrap_or_else(|_| "{}".into())
}

impl SqliteStore {
    /// All known peers.
    pub fn peers(&self) -> Result<Vec<Peer>> {
        self.peers_where("1", &[])
    }

    /// One peer.
    pub fn peer(&self, id: &InstanceId) -> Result<Option<Peer>> {
        let id = id.as_bytes().to_vec();
        Ok(self.peers_where("instance_id = ?1", &[&id])?.pop())
    }

    fn peers_where(&self, cond: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Peer>> {
        let sql = format!(
            "SELECT instance_id, public_key, name, trust, sent, acked, last_exchange_at, last_method, last_direction, age_recipient
             FROM peers WHERE {cond} ORDER BY name, instance_id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(
                |(id, key, name, trust, sent, acked, at, method, dir, age)| {
                    Ok(Peer {
                        instance_id: instance_col(&id, "peers.instance_id")?,
                        public_key: key_col(&key, "peers.public_key")?,
                        name,
                        trust: Trust::parse(&trust),
                        sent: clock_col(&sent, "peers.sent")?,
                        acked: clock_col(&acked, "peers.acked")?,
                        last_exchange_at: at.map(|a| a as u64),
                        last_method: method,
                        last_direction: dir,
                        age_recipient: age,
                    })
                },
            )
            .collect()
    }

    /// Records an exchange with a peer: creates it if new, refreshes its name, and raises
    /// `sent` (export) or replaces `acked` (import) with `clock`.
    pub fn record_exchange(
        &mut self,
        key: &PublicKey,
        name: &str,
        dir: Direction,
        clock: &Clock,
        at: u64,
        method: &str,
    ) -> Result<()> {
        let id = InstanceId::of(key);
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO peers (instance_id, public_key, name) VALUES (?1, ?2, ?3)
             ON CONFLICT (instance_id) DO UPDATE SET name = excluded.name",
            params![&id.as_bytes()[..], &key.as_bytes()[..], name],
        )?;
        let (column, value, direction) = match dir {
            Direction::Export => {
                let old: String = tx.query_row(
                    "SELECT sent FROM peers WHERE instance_id = ?1",
                    [&id.as_bytes()[..]],
                    |r| r.get(0),
                )?;
                let mut sent = clock_col(&old, "peers.sent")?;
                sent.merge(clock);
                ("sent", clock_text(&sent), "export")
            }
            Direction::Import => ("acked", clock_text(clock), "import"),
        };
        tx.execute(
            &format!(
                "UPDATE peers SET {column} = ?1, last_exchange_at = ?2, last_method = ?3, last_direction = ?4
                 WHERE instance_id = ?5"
            ),
            params![value, at as i64, method, direction, &id.as_bytes()[..]],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Keeps what a peer's manifest publishes: its age recipient and the authors it hosts
    /// (declarations already verified by `Manifest::parse`; the newest per author wins).
    pub fn record_publications(
        &mut self,
        id: &InstanceId,
        age_recipient: Option<&str>,
        hosts: &[HostDeclaration],
    ) -> Result<()> {
        let tx = self.write_tx()?;
        if let Some(r) = age_recipient {
            tx.execute(
                "UPDATE peers SET age_recipient = ?1 WHERE instance_id = ?2",
                params![r, &id.as_bytes()[..]],
            )?;
        }
        for d in hosts.iter().filter(|d| d.instance_id == *id) {
            tx.prepare_cached(
                "INSERT INTO peer_hosts (instance_id, author, issued_at, sig) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (instance_id, author) DO UPDATE SET issued_at = excluded.issued_at, sig = excluded.sig
                 WHERE excluded.issued_at > peer_hosts.issued_at",
            )?
            .execute(params![
                &id.as_bytes()[..],
                &d.author.as_bytes()[..],
                d.issued_at as i64,
                &d.sig.as_bytes()[..]
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Authors an instance has shown (by their signed declarations) that it hosts.
    pub fn peer_hosts(&self, id: &InstanceId) -> Result<std::collections::HashSet<PublicKey>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT author FROM peer_hosts WHERE instance_id = ?1")?;
        let rows = stmt
            .query_map([&id.as_bytes()[..]], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.iter()
            .map(|k| key_col(k, "peer_hosts.author"))
            .collect()
    }

    /// This instance's host declarations, signed by its local authors.
    pub fn local_hosts(&self) -> Result<Vec<HostDeclaration>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT author, instance_id, issued_at, sig FROM local_hosts ORDER BY author",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(a, i, at, sig)| {
                Ok(HostDeclaration {
                    author: key_col(&a, "local_hosts.author")?,
                    instance_id: instance_col(&i, "local_hosts.instance_id")?,
                    issued_at: at as u64,
                    sig: Signature::try_from(&sig[..]).map_err(|e| StoreError::BadRow {
                        location: "local_hosts.sig".into(),
                        detail: e.to_string(),
                    })?,
                })
            })
            .collect()
    }

    /// Stores a declaration by a local author that this instance hosts it.
    pub fn add_local_host(&mut self, d: &HostDeclaration) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO local_hosts (author, instance_id, issued_at, sig) VALUES (?1, ?2, ?3, ?4)",
                params![
                    &d.author.as_bytes()[..],
                    &d.instance_id.as_bytes()[..],
                    d.issued_at as i64,
                    &d.sig.as_bytes()[..]
                ],
            )
            .map_err(|e| classify(&self.path, e))?;
        Ok(())
    }

    /// Seqs of a feed's range `from..=to` whose payloads are limited to an audience, with it.
    pub fn limited(&self, author: &PublicKey, from: u64, to: u64) -> Result<Vec<(u64, Audience)>> {
        let Some(feed_id) = self.feed_id(author)? else {
            return Ok(Vec::new());
        };
        let (lo, hi) = range_ids(feed_id, from, to);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, members FROM limited WHERE id BETWEEN ?1 AND ?2")?;
        let rows = stmt
            .query_map([lo, hi], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .map(|(id, members)| {
                // Unreadable members limit the payload to its author (never wider).
                let audience = match serde_json::from_str::<serde_json::Value>(&members) {
                    Ok(m) => {
                        Audience::of_value(&serde_json::json!({ "audience": { "members": m } }))
                    }
                    Err(_) => Audience::Limited(Vec::new()),
                };
                ((id & 0xffff_ffff) as u64, audience)
            })
            .collect())
    }

    /// Records a held bundle. False if one with that id is already held.
    pub fn hold(&mut self, h: &Held) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO quarantine (id, instance_id, public_key, name, events, feeds, invalid, arrived_at, file)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                h.id,
                &h.instance_id.as_bytes()[..],
                &h.public_key.as_bytes()[..],
                h.name,
                h.events as i64,
                h.feeds as i64,
                h.invalid as i64,
                h.arrived_at as i64,
                h.file
            ],
        ).map_err(|e| classify(&self.path, e))?;
        Ok(n == 1)
    }

    /// Held bundles, oldest first.
    pub fn held(&self) -> Result<Vec<Held>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, instance_id, public_key, name, events, feeds, invalid, arrived_at, file FROM quarantine ORDER BY arrived_at, id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(id, inst, key, name, events, feeds, invalid, at, file)| {
                Ok(Held {
                    id,
                    instance_id: instance_col(&inst, "quarantine.instance_id")?,
                    public_key: key_col(&key, "quarantine.public_key")?,
                    name,
                    events: events as u64,
                    feeds: feeds as u64,
                    invalid: invalid as u64,
                    arrived_at: at as u64,
                    file,
                })
            })
            .collect()
    }

    /// Forgets a held bundle. False if none has that id.
    pub fn release(&mut self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM quarantine WHERE id = ?1", [id])
            .map_err(|e| classify(&self.path, e))?
            == 1)
    }

    /// Makes a peer known (or renames it) and sets its trust.
    pub fn add_peer(&mut self, key: &PublicKey, name: &str, trust: Trust) -> Result<()> {
        let id = InstanceId::of(key);
        self.conn
            .execute(
                "INSERT INTO peers (instance_id, public_key, name, trust) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (instance_id) DO UPDATE SET name = excluded.name, trust = excluded.trust",
                params![&id.as_bytes()[..], &key.as_bytes()[..], name, trust.as_str()],
            )
            .map_err(|e| classify(&self.path, e))?;
        Ok(())
    }

    /// Sets a known peer's trust. False if the peer is unknown.
    pub fn set_trust(&mut self, id: &InstanceId, trust: Trust) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE peers SET trust = ?1 WHERE instance_id = ?2",
                params![trust.as_str(), &id.as_bytes()[..]],
            )
            .map_err(|e| classify(&self.path, e))?;
        Ok(n == 1)
    }

    /// Blocks an author: its events are refused on import and hidden from the views. False if
    /// it was already blocked.
    pub fn block_author(&mut self, author: &PublicKey) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO blocked_authors (author) VALUES (?1)",
                [&author.as_bytes()[..]],
            )
            .map_err(|e| classify(&self.path, e))?;
        Ok(n == 1)
    }

    /// Unblocks an author. False if it was not blocked.
    pub fn unblock_author(&mut self, author: &PublicKey) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "DELETE FROM blocked_authors WHERE author = ?1",
                [&author.as_bytes()[..]],
            )
            .map_err(|e| classify(&self.path, e))?;
        Ok(n == 1)
    }

    /// Blocked authors.
    pub fn blocked_authors(&self) -> Result<std::collections::BTreeSet<PublicKey>> {
        let mut stmt = self.conn.prepare("SELECT author FROM blocked_authors")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.iter()
            .map(|k| key_col(k, "blocked_authors.author"))
            .collect()
    }

    /// Removes every stored event of `author` (and its pending events and fork evidence) from
    /// the log, then rebuilds the views. Returns the number of log events removed.
    pub fn purge_author(&mut self, author: &PublicKey) -> Result<u64> {
        let feed_id = self.feed_id(author)?;
        let tx = self.write_tx()?;
        let key = &author.as_bytes()[..];
        let mut removed = 0;
        if let Some(id) = feed_id {
            let (lo, hi) = range_ids(id, 0, u32::MAX as u64);
            removed = tx.execute("DELETE FROM events WHERE id BETWEEN ?1 AND ?2", [lo, hi])? as u64;
            tx.execute(
                "UPDATE feeds SET head_seq = 0, head_hash = NULL WHERE feed_id = ?1",
                [id],
            )?;
        }
        tx.execute("DELETE FROM pending WHERE author = ?1", [key])?;
        tx.execute("DELETE FROM forks WHERE author = ?1", [key])?;
        crate::sqlite::replay_views(&tx, "main")?;
        tx.commit()?;
        Ok(removed)
    }

    /// Stored (seq, hash) of a feed between `from` and `to` inclusive, in seq order, for the
    /// events stored with their payload.
    pub fn stored_hashes(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Hash)>> {
        let Some(feed_id) = self.feed_id(author)? else {
            return Ok(Vec::new());
        };
        let (lo, hi) = range_ids(feed_id, from, to);
        let mut stmt = self
            .conn
            // Withheld rows are left out: a copy that brings the payload must not be skipped.
            .prepare_cached("SELECT id, hash FROM events WHERE id BETWEEN ?1 AND ?2 AND payload IS NOT NULL ORDER BY id")?;
        let rows = stmt
            .query_map([lo, hi], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(id, h)| Ok(((id & 0xffff_ffff) as u64, hash_col(&h, "events.hash")?)))
            .collect()
    }

    fn feed_id(&self, author: &PublicKey) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT feed_id FROM feeds WHERE author = ?1")?
            .query_row([&author.as_bytes()[..]], |r| r.get(0))
            .optional()?)
    }

    /// Stores a batch of imported events in one transaction: appends those that extend their
    /// feeds, parks those whose predecessors are missing, keeps fork evidence, then lets
    /// parked events whose gap has filled join their feeds.
    pub fn import_batch(
        &mut self,
        events: &[VerifiedEvent],
        carrier: Option<&InstanceId>,
    ) -> Result<BatchResult> {
        let mut tx = self.begin_import(carrier)?;
        let result = tx.add(events)?;
        tx.commit()?;
        Ok(result)
    }

    /// Opens one write transaction for many import batches (see [`ImportTx`]).
    pub fn begin_import(&mut self, carrier: Option<&InstanceId>) -> Result<ImportTx<'_>> {
        let path = self.path.clone();
        Ok(ImportTx {
            tx: self.write_tx()?,
            path,
            carrier: carrier.copied(),
            events: 0,
        })
    }

    /// Events waiting for their predecessors.
    pub fn pending_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM pending", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// The evidence events kept for `author`'s feed, as (seq, hash, stored line), by seq.
    pub fn fork_lines(&self, author: &PublicKey) -> Result<Vec<(u64, Hash, Vec<u8>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, hash, line FROM forks WHERE author = ?1 ORDER BY seq, hash",
        )?;
        let rows = stmt
            .query_map([&author.as_bytes()[..]], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(seq, h, line)| Ok((seq as u64, hash_col(&h, "forks.hash")?, line)))
            .collect()
    }

    /// Authors with fork evidence.
    pub fn forked_authors(&self) -> Result<Vec<PublicKey>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT author FROM forks ORDER BY author")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.iter().map(|a| key_col(a, "forks.author")).collect()
    }

    /// All fork evidence.
    pub fn forks(&self) -> Result<Vec<ForkRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT author, seq, held, hash, kind, carrier FROM forks ORDER BY author, seq",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<Vec<u8>>>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(a, seq, held, other, kind, carrier)| {
                Ok(ForkRecord {
                    author: key_col(&a, "forks.author")?,
                    seq: seq as u64,
                    held: hash_col(&held, "forks.held")?,
                    other: hash_col(&other, "forks.hash")?,
                    kind,
                    carrier: carrier.and_then(|c| InstanceId::try_from(&c[..]).ok()),
                })
            })
            .collect()
    }

    /// Count, exact line bytes and head of a feed's stored range `from..=to` (payloads withheld
    /// where `withhold` says so).
    pub fn plan_range(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
        withhold: &dyn Fn(u64) -> bool,
    ) -> Result<RangePlan> {
        let Some(feed_id) = self.feed_id(author)? else {
            return Ok(RangePlan {
                count: 0,
                bytes: 0,
                head: None,
            });
        };
        let (lo, hi) = range_ids(feed_id, from, to);
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, timestamp, payload_size, prev IS NOT NULL, type, payload IS NOT NULL, hash
             FROM events WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
        )?;
        let mut rows = stmt.query([lo, hi])?;
        let mut plan = RangePlan {
            count: 0,
            bytes: 0,
            head: None,
        };
        while let Some(r) = rows.next()? {
            let seq = (r.get::<_, i64>(0)? & 0xffff_ffff) as u64;
            let size = r.get::<_, i64>(2)? as u64;
            let kind: String = r.get(4)?;
            let has_payload = r.get::<_, bool>(5)? && !withhold(seq);
            plan.count += 1;
            plan.bytes += line_len(
                kind.len() as u64,
                seq,
                r.get::<_, i64>(1)? as u64,
                size,
                r.get(3)?,
                has_payload.then_some(size),
            );
            plan.head = Some(hash_col(&r.get::<_, Vec<u8>>(6)?, "events.hash")?);
        }
        Ok(plan)
    }

    /// Writes the lines of a feed's stored range `from..=to`, each followed by a newline,
    /// straight from the stored canonical bytes (payloads withheld where `withhold` says so).
    pub fn write_range(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
        withhold: &dyn Fn(u64) -> bool,
        out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64> {
        let Some(feed_id) = self.feed_id(author)? else {
            return Ok(0);
        };
        let (lo, hi) = range_ids(feed_id, from, to);
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, prev, type, timestamp, payload_hash, payload_size, payload, hash, sig
             FROM events WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
        )?;
        let mut rows = stmt.query([lo, hi])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let seq = (r.get::<_, i64>(0)? & 0xffff_ffff) as u64;
            let bad = |detail: String| StoreError::BadRow {
                location: format!("{author} seq {seq}"),
                detail,
            };
            let kind: String = r.get(2)?;
            let header = Header {
                author: *author,
                seq: Seq::new(seq).map_err(|e| bad(e.to_string()))?,
                prev: r
                    .get::<_, Option<Vec<u8>>>(1)?
                    .map(|p| hash_col(&p, "events.prev"))
                    .transpose()?,
                kind: EventType::new(&kind).map_err(|e| bad(e.to_string()))?,
                timestamp: Timestamp::new(r.get::<_, i64>(3)? as u64)
                    .map_err(|e| bad(e.to_string()))?,
                payload_hash: hash_col(&r.get::<_, Vec<u8>>(4)?, "events.payload_hash")?,
                payload_size: r.get::<_, i64>(5)? as u64,
            };
            let payload: Option<Vec<u8>> = if withhold(seq) { None } else { r.get(6)? };
            let hash = hash_col(&r.get::<_, Vec<u8>>(7)?, "events.hash")?;
            let sig = Signature::try_from(&r.get::<_, Vec<u8>>(8)?[..])
                .map_err(|e| bad(e.to_string()))?;
            let mut line = event::line(&header, payload.as_deref(), &hash, &sig);
            line.push(b'\n');
            out(&line).map_err(|e| bad(format!("writing: {e}")))?;
            n += 1;
        }
        Ok(n)
    }
}

/// One write transaction that takes import batches one after another, each applied exactly as
/// [`SqliteStore::import_batch`] applies it; nothing is durable until [`ImportTx::commit`], and
/// dropping it rolls everything back.
///
/// Why: a bundle sorted by author inserts into the hash index and the timeline at random
/// places, so each commit rewrites most of their pages (to the WAL, then to the database). A
/// commit every 4,096 events wrote about 8 KiB per event; committing tens of thousands at once
/// writes each such page once for many events (BENCHMARKS.md, B6).
pub struct ImportTx<'a> {
    tx: rusqlite::Transaction<'a>,
    path: std::path::PathBuf,
    carrier: Option<InstanceId>,
    events: usize,
}

impl ImportTx<'_> {
    /// Applies one batch: appends the events that extend their feeds, parks those whose
    /// predecessors are missing, keeps fork evidence, then lets parked events whose gap has
    /// filled join their feeds.
    pub fn add(&mut self, events: &[VerifiedEvent]) -> Result<BatchResult> {
        let (tx, path, carrier) = (&self.tx, &self.path, self.carrier.as_ref());
        let outcomes = append_in(tx, path, events)?;
        let mut touched = std::collections::BTreeSet::new();
        for (ev, outcome) in events.iter().zip(&outcomes) {
            touched.insert(ev.header.author);
            record_side_effects(tx, ev, outcome, carrier)?;
        }
        let mut promoted = 0;
        for author in touched {
            promoted += promote_pending(tx, path, &author, carrier)?;
        }
        self.events += events.len();
        Ok(BatchResult { outcomes, promoted })
    }

    /// Events given to [`ImportTx::add`] so far.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Commits everything added: durable once this returns.
    pub fn commit(self) -> Result<()> {
        self.tx.commit().map_err(|e| classify(&self.path, e))
    }
}

fn range_ids(feed_id: i64, from: u64, to: u64) -> (i64, i64) {
    let clamp = |s: u64| s.min(u32::MAX as u64) as i64;
    ((feed_id << 32) | clamp(from), (feed_id << 32) | clamp(to))
}

fn record_side_effects(
    tx: &rusqlite::Transaction<'_>,
    ev: &VerifiedEvent,
    outcome: &Outcome,
    carrier: Option<&InstanceId>,
) -> Result<()> {
    let (author, seq) = (&ev.header.author.as_bytes()[..], ev.header.seq.get() as i64);
    let (kind, held) = match outcome {
        Outcome::Gap { .. } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO pending (author, seq, hash, line) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![author, seq, &ev.hash.as_bytes()[..], ev.to_line()])?;
            return Ok(());
        }
        Outcome::Fork { existing } => ("same_seq", *existing),
        Outcome::PrevMismatch { head_hash: Some(h) } => ("prev_mismatch", *h),
        _ => return Ok(()),
    };
    tx.prepare_cached(
        "INSERT OR IGNORE INTO forks (author, seq, hash, held, kind, carrier, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        author,
        seq,
        &ev.hash.as_bytes()[..],
        &held.as_bytes()[..],
        kind,
        carrier.map(|c| c.as_bytes().to_vec()),
        ev.to_line()
    ])?;
    Ok(())
}

/// Moves parked events of `author` into the log while they extend it.
fn promote_pending(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    author: &PublicKey,
    carrier: Option<&InstanceId>,
) -> Result<u64> {
    let mut promoted = 0;
    loop {
        let head: i64 = tx
            .prepare_cached("SELECT head_seq FROM feeds WHERE author = ?1")?
            .query_row([&author.as_bytes()[..]], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let lines: Vec<(i64, Vec<u8>, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT seq, hash, line FROM pending WHERE author = ?1 AND seq <= ?2 ORDER BY seq, hash",
            )?
            .query_map(params![&author.as_bytes()[..], head + 1], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if lines.is_empty() {
            return Ok(promoted);
        }
        let mut progressed = false;
        for (seq, hash, line) in lines {
            tx.prepare_cached("DELETE FROM pending WHERE author = ?1 AND seq = ?2 AND hash = ?3")?
                .execute(params![&author.as_bytes()[..], seq, hash])?;
            // Parked lines were verified on the way in; verify again rather than trust a table.
            let Ok(ev) = Event::parse(&line).and_then(Event::verify) else {
                continue;
            };
            let outcome = append_in(tx, path, std::slice::from_ref(&ev))?;
            if let Some(o) = outcome.first() {
                if *o == Outcome::Inserted {
                    promoted += 1;
                    progressed = true;
                }
                record_side_effects(tx, &ev, o, carrier)?;
            }
        }
        if !progressed {
            return Ok(promoted);
        }
    }
}
