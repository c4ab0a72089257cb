//! The identity, local authors and the log ([`KeyStore`], [`LogStore`]): appends under the
//! chain rules of `rhizome_core::chain`, with the views updated in the same transaction.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use rhizome_core::bundle::line_len;
use rhizome_core::chain::{self, AtHeld, Link};
use rhizome_core::event::{self, EventType, Header};
use rhizome_core::ids::prefix_key;
use rhizome_core::privacy::{Audience, HostDeclaration};
use rhizome_core::{
    Clock, Event, Hash, InstanceId, PublicKey, Seq, Signature, Timestamp, VerifiedEvent,
};
use rhizome_store::{
    ForkRecord, Identity, KeyStore, LocalAuthor, LogStats, LogStore, Outcome, RangePlan,
    Result as StoreResult, StoreError,
};

use crate::{
    classify, hash_col, instance_col, key_col, range_ids, run, secret_col, views, Error, FeedState,
    RawRow, Result, SqliteStore, EVENT_COLUMNS, SEQ_LIMIT,
};

impl KeyStore for SqliteStore {
    fn schema_version(&self) -> StoreResult<u32> {
        run(|| {
            Ok(self
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))?)
        })
    }

    fn init(&mut self, identity: &Identity, first_author: &LocalAuthor) -> StoreResult<()> {
        run(|| {
            let path = self.path.clone();
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| classify(&path, e))?;
            let exists: bool =
                tx.query_row("SELECT EXISTS (SELECT 1 FROM instance)", [], |r| r.get(0))?;
            if exists {
                return Err(StoreError::AlreadyInitialized.into());
            }
            tx.execute(
            "INSERT INTO instance (id, name, public_key, secret, created_at) VALUES (1, ?1, ?2, ?3, ?4)",
            params![
                identity.name,
                &identity.public_key.as_bytes()[..],
                serde_json::to_string(&identity.secret).unwrap_or_default(),
                identity.created_at as i64
            ],
        )
        .map_err(|e| classify(&path, e))?;
            insert_author(&tx, first_author)?;
            tx.commit().map_err(|e| classify(&path, e))?;
            Ok(())
        })
    }

    fn identity(&self) -> StoreResult<Identity> {
        run(|| {
            let row = self
                .conn
                .query_row(
                    "SELECT name, public_key, secret, created_at FROM instance WHERE id = 1",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()
                .map_err(|e| self.classify(e))?;
            let (name, key, secret, created_at) = row.ok_or(StoreError::NotInitialized)?;
            Ok(Identity {
                name,
                public_key: key_col(&key, "instance.public_key")?,
                secret: secret_col(&secret, "instance.secret")?,
                created_at: created_at as u64,
            })
        })
    }

    fn add_author(&mut self, author: &LocalAuthor) -> StoreResult<()> {
        run(|| {
            let path = self.path.clone();
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| classify(&path, e))?;
            insert_author(&tx, author)?;
            tx.commit().map_err(|e| classify(&path, e))?;
            Ok(())
        })
    }

    fn authors(&self) -> StoreResult<Vec<LocalAuthor>> {
        run(|| {
            let mut stmt = self.conn.prepare(
            "SELECT name, public_key, secret, is_default FROM local_authors ORDER BY is_default DESC, name",
        )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(name, key, secret, is_default)| {
                    let what = format!("local author {name:?}");
                    Ok(LocalAuthor {
                        public_key: key_col(&key, &what)?,
                        secret: secret_col(&secret, &what)?,
                        name,
                        is_default,
                    })
                })
                .collect()
        })
    }

    fn local_hosts(&self) -> StoreResult<Vec<HostDeclaration>> {
        run(|| {
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
        })
    }

    fn add_local_host(&mut self, d: &HostDeclaration) -> StoreResult<()> {
        run(|| {
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
        })
    }
}

impl LogStore for SqliteStore {
    fn head(&self, feed: &PublicKey) -> StoreResult<Option<(Seq, Hash)>> {
        run(|| {
            let row = self
                .conn
                .prepare_cached(
                    "SELECT head_seq, head_hash FROM feeds WHERE author = ?1 AND head_seq > 0",
                )?
                .query_row([&feed.as_bytes()[..]], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .optional()?;
            row.map(|(seq, h)| {
                let seq = Seq::new(seq as u64).map_err(|e| StoreError::BadRow {
                    location: format!("feed {feed}"),
                    detail: e.to_string(),
                })?;
                Ok((seq, hash_col(&h, "feeds.head_hash")?))
            })
            .transpose()
        })
    }

    fn append(&mut self, events: &[VerifiedEvent]) -> StoreResult<Vec<Outcome>> {
        run(|| {
            let path = self.path.clone();
            let tx = self.write_tx()?;
            let outcomes = append_in(&tx, &path, events)?;
            tx.commit().map_err(|e| classify(&path, e))?;
            Ok(outcomes)
        })
    }

    fn get(&self, hash: &Hash) -> StoreResult<Option<Event>> {
        run(|| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN feeds f ON f.feed_id = (e.id >> 32)
             WHERE e.h8 = ?1 AND e.hash = ?2"
            );
            let raw = self
                .conn
                .prepare_cached(&sql)?
                .query_row(
                    params![hash.prefix_i64(), &hash.as_bytes()[..]],
                    RawRow::read,
                )
                .optional()
                .map_err(|e| self.classify(e))?;
            raw.map(RawRow::decode).transpose()
        })
    }

    fn find_by_prefix(&self, hex_prefix: &str, limit: usize) -> StoreResult<Vec<Hash>> {
        run(|| {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let p = hex_prefix.as_bytes();
            if p.is_empty()
                || p.len() > 64
                || !p
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            {
                return Ok(Vec::new());
            }
            let bound = |fill: u8| -> i64 {
                let mut s = [fill; 16];
                let n = p.len().min(16);
                s[..n].copy_from_slice(&p[..n]);
                let mut b = [0u8; 8];
                // Lowercase hex by construction: decoding cannot fail.
                let _ = hex::decode_to_slice(s, &mut b);
                prefix_key(b)
            };
            let mut stmt = self
                .conn
                .prepare_cached("SELECT hash FROM events WHERE h8 BETWEEN ?1 AND ?2 ORDER BY h8")?;
            let mut out = Vec::new();
            let mut rows = stmt.query(params![bound(b'0'), bound(b'f')])?;
            while let Some(r) = rows.next()? {
                let h = hash_col(&r.get::<_, Vec<u8>>(0)?, "events.hash")?;
                if h.to_hex().starts_with(hex_prefix) {
                    out.push(h);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    fn for_each_event(
        &self,
        feed: Option<&PublicKey>,
        visit: &mut dyn FnMut(StoreResult<Event>) -> ControlFlow<()>,
    ) -> StoreResult<()> {
        run(|| {
            let (lo, hi) = match feed {
                None => (i64::MIN, i64::MAX),
                Some(k) => {
                    let id: Option<i64> = self
                        .conn
                        .query_row(
                            "SELECT feed_id FROM feeds WHERE author = ?1",
                            [&k.as_bytes()[..]],
                            |r| r.get(0),
                        )
                        .optional()?;
                    match id {
                        Some(id) => (id << 32, (id << 32) | 0xffff_ffff),
                        None => return Ok(()),
                    }
                }
            };
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN feeds f ON f.feed_id = (e.id >> 32)
             WHERE e.id BETWEEN ?1 AND ?2 ORDER BY e.id"
            );
            let mut stmt = self.conn.prepare(&sql)?;
            let mut rows = stmt.query([lo, hi]).map_err(|e| self.classify(e))?;
            while let Some(r) = rows.next().map_err(|e| self.classify(e))? {
                let item = RawRow::read(r)
                    .map_err(Error::from)
                    .and_then(RawRow::decode)
                    .map_err(StoreError::from);
                if visit(item).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    fn clock(&self) -> StoreResult<Clock> {
        run(|| {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT author, head_seq FROM feeds WHERE head_seq > 0")?;
            let mut clock = Clock::new();
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let key = key_col(&r.get::<_, Vec<u8>>(0)?, "feeds.author")?;
                let seq = Seq::new(r.get::<_, i64>(1)? as u64).map_err(|e| StoreError::BadRow {
                    location: format!("feed {key}"),
                    detail: e.to_string(),
                })?;
                clock.set(key, seq);
            }
            Ok(clock)
        })
    }

    fn stats(&self) -> StoreResult<LogStats> {
        run(|| {
            Ok(self.conn.query_row(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM feeds WHERE head_seq > 0)",
            [],
            |r| {
                Ok(LogStats {
                    events: r.get::<_, i64>(0)? as u64,
                    feeds: r.get::<_, i64>(1)? as u64,
                })
            },
        )?)
        })
    }

    fn type_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        run(|| {
            let mut stmt = self
                .conn
                .prepare("SELECT type, count(*) FROM events GROUP BY type ORDER BY type")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn legacy(&self, legacy: &str) -> StoreResult<Option<Vec<u8>>> {
        run(|| {
            Ok(self
                .conn
                .prepare_cached("SELECT value FROM legacy_ids WHERE legacy = ?1")?
                .query_row([legacy], |r| r.get(0))
                .optional()?)
        })
    }

    fn append_legacy(&mut self, event: &VerifiedEvent, legacy: &str) -> StoreResult<Outcome> {
        run(|| {
            let path = self.path.clone();
            let tx = self.write_tx()?;
            let outcome = append_in(&tx, &path, std::slice::from_ref(event))?
                .pop()
                .unwrap_or(Outcome::Duplicate);
            if outcome == Outcome::Inserted {
                tx.execute(
                    "INSERT INTO legacy_ids (legacy, value) VALUES (?1, ?2)",
                    params![legacy, &event.hash.as_bytes()[..]],
                )?;
                tx.commit().map_err(|e| classify(&path, e))?;
            }
            Ok(outcome)
        })
    }

    fn add_author_legacy(&mut self, author: &LocalAuthor, legacy: &str) -> StoreResult<()> {
        run(|| {
            let path = self.path.clone();
            let tx = self.write_tx()?;
            insert_author(&tx, author)?;
            tx.execute(
                "INSERT INTO legacy_ids (legacy, value) VALUES (?1, ?2)",
                params![legacy, &author.public_key.as_bytes()[..]],
            )?;
            tx.commit().map_err(|e| classify(&path, e))?;
            Ok(())
        })
    }

    fn max_seq(&self) -> u64 {
        SEQ_LIMIT
    }

    fn size_on_disk(&self) -> Option<u64> {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum::<u64>()
            .into()
    }

    fn stored_hashes(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<(u64, Hash)>> {
        run(|| {
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
        })
    }

    fn plan_range(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
        withhold: &dyn Fn(u64) -> bool,
    ) -> StoreResult<RangePlan> {
        run(|| {
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
        })
    }

    fn write_range(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
        withhold: &dyn Fn(u64) -> bool,
        out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> StoreResult<u64> {
        run(|| {
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
        })
    }

    fn limited(&self, author: &PublicKey, from: u64, to: u64) -> StoreResult<Vec<(u64, Audience)>> {
        run(|| {
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
        })
    }

    fn pending_count(&self) -> StoreResult<u64> {
        run(|| {
            Ok(self
                .conn
                .query_row("SELECT count(*) FROM pending", [], |r| r.get::<_, i64>(0))?
                as u64)
        })
    }

    fn fork_lines(&self, author: &PublicKey) -> StoreResult<Vec<(u64, Hash, Vec<u8>)>> {
        run(|| {
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
        })
    }

    fn forked_authors(&self) -> StoreResult<Vec<PublicKey>> {
        run(|| {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT DISTINCT author FROM forks ORDER BY author")?;
            let rows = stmt
                .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.iter().map(|a| key_col(a, "forks.author")).collect()
        })
    }

    fn forks(&self) -> StoreResult<Vec<ForkRecord>> {
        run(|| {
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
        })
    }

    fn purge_author(&mut self, author: &PublicKey) -> StoreResult<u64> {
        run(|| {
            let feed_id = self.feed_id(author)?;
            let tx = self.write_tx()?;
            let key = &author.as_bytes()[..];
            let mut removed = 0;
            if let Some(id) = feed_id {
                let (lo, hi) = range_ids(id, 0, u32::MAX as u64);
                removed =
                    tx.execute("DELETE FROM events WHERE id BETWEEN ?1 AND ?2", [lo, hi])? as u64;
                tx.execute(
                    "UPDATE feeds SET head_seq = 0, head_hash = NULL WHERE feed_id = ?1",
                    [id],
                )?;
            }
            tx.execute("DELETE FROM pending WHERE author = ?1", [key])?;
            tx.execute("DELETE FROM forks WHERE author = ?1", [key])?;
            replay_views(&tx, "main")?;
            tx.commit()?;
            Ok(removed)
        })
    }
}

impl SqliteStore {
    fn feed_id(&self, author: &PublicKey) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT feed_id FROM feeds WHERE author = ?1")?
            .query_row([&author.as_bytes()[..]], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        let path = self.path.clone();
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?)
    }
}

fn insert_author(tx: &rusqlite::Transaction<'_>, a: &LocalAuthor) -> Result<()> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM local_authors WHERE name = ?1)",
        [&a.name],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StoreError::AuthorExists(a.name.clone()).into());
    }
    tx.execute(
        "INSERT INTO local_authors (name, public_key, secret, is_default) VALUES (?1, ?2, ?3, ?4)",
        params![
            a.name,
            &a.public_key.as_bytes()[..],
            serde_json::to_string(&a.secret).unwrap_or_default(),
            a.is_default
        ],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO follows (author) VALUES (?1)",
        [&a.public_key.as_bytes()[..]],
    )?;
    Ok(())
}

/// Appends events inside `tx`, applying the chain rules and the views.
pub(crate) fn append_in(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    events: &[VerifiedEvent],
) -> Result<Vec<Outcome>> {
    let mut feeds: HashMap<PublicKey, FeedState> = HashMap::new();
    let mut outcomes = Vec::with_capacity(events.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (id, h8, hash, prev, type, timestamp, payload_hash, payload_size, payload, sig)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for ev in events {
            let h = &ev.header;
            let seq = h.seq.get();
            if seq > SEQ_LIMIT {
                return Err(Error::Store(StoreError::Limit(format!(
                    "seq {seq} of feed {} is beyond this store's limit of 2^32-1",
                    h.author
                ))));
            }
            let feed = SqliteStore::feed_state(tx, &mut feeds, &h.author)?;
            let rowid = (feed.feed_id << 32) | seq as i64;
            let outcome = match chain::link(feed.head_seq, feed.head_hash.as_ref(), h) {
                Link::Held => {
                    let stored = SqliteStore::stored_hash_at(tx, rowid)?;
                    match chain::at_held_position(stored, &ev.hash) {
                        AtHeld::Same => fill_payload(tx, rowid, ev)?,
                        AtHeld::Fork { existing } => Outcome::Fork { existing },
                    }
                }
                Link::Gap { head } => Outcome::Gap { head },
                Link::PrevMismatch { head_hash } => Outcome::PrevMismatch { head_hash },
                Link::Extends => {
                    insert
                        .execute(params![
                            rowid,
                            ev.hash.prefix_i64(),
                            &ev.hash.as_bytes()[..],
                            h.prev.as_ref().map(|p| &p.as_bytes()[..]),
                            h.kind.as_str(),
                            h.timestamp.get() as i64,
                            &h.payload_hash.as_bytes()[..],
                            h.payload_size as i64,
                            ev.payload.as_ref().map(|p| p.canonical_bytes()),
                            &ev.sig.as_bytes()[..],
                        ])
                        .map_err(|e| classify(path, e))?;
                    views::apply(tx, "main", ev)?;
                    index_audience(tx, rowid, ev)?;
                    feed.head_seq = seq;
                    feed.head_hash = Some(ev.hash);
                    feed.dirty = true;
                    Outcome::Inserted
                }
            };
            outcomes.push(outcome);
        }
        let mut update =
            tx.prepare_cached("UPDATE feeds SET head_seq = ?1, head_hash = ?2 WHERE feed_id = ?3")?;
        for f in feeds.values().filter(|f| f.dirty) {
            update.execute(params![
                f.head_seq as i64,
                f.head_hash.as_ref().map(|h| &h.as_bytes()[..]),
                f.feed_id
            ])?;
        }
    }
    Ok(outcomes)
}

/// A payload arriving for an event stored withheld (PROTOCOL 3.6) is added, and the event
/// reaches the views as if it had come whole: the verified hash already ties it to the header.
fn fill_payload(tx: &rusqlite::Transaction<'_>, rowid: i64, ev: &VerifiedEvent) -> Result<Outcome> {
    let Some(payload) = &ev.payload else {
        return Ok(Outcome::Duplicate);
    };
    let filled = tx
        .prepare_cached("UPDATE events SET payload = ?1 WHERE id = ?2 AND payload IS NULL")?
        .execute(params![payload.canonical_bytes(), rowid])?;
    if filled == 0 {
        return Ok(Outcome::Duplicate);
    }
    views::forget_skip(tx, "main", &ev.hash)?;
    views::apply(tx, "main", ev)?;
    index_audience(tx, rowid, ev)?;
    Ok(Outcome::Filled)
}

/// Records the audience of a limited payload (PROTOCOL 9.1) for exports.
fn index_audience(tx: &rusqlite::Transaction<'_>, rowid: i64, ev: &VerifiedEvent) -> Result<()> {
    let Some(payload) = &ev.payload else {
        return Ok(());
    };
    if let Audience::Limited(members) = Audience::of(payload) {
        tx.prepare_cached("INSERT OR REPLACE INTO limited (id, members) VALUES (?1, ?2)")?
            .execute(params![rowid, members_json(&members)])?;
    }
    Ok(())
}

/// `["<hex>",...]`: keys need no escaping.
fn members_json(members: &[PublicKey]) -> String {
    let quoted: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    format!("[{}]", quoted.join(","))
}

/// Re-applies every stored event to the views of schema `s`, in (feed, seq) order.
pub(crate) fn replay_views(tx: &rusqlite::Transaction<'_>, s: &str) -> Result<u64> {
    views::clear(tx, s)?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN feeds f ON f.feed_id = (e.id >> 32) ORDER BY e.id"
    );
    let mut stmt = tx.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let ev = RawRow::read(r)?.decode()?;
        views::apply(tx, s, &ev)?;
        n += 1;
    }
    Ok(n)
}
