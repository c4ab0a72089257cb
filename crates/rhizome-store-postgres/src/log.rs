//! The identity, local authors and the log ([`KeyStore`], [`LogStore`]): reads, and appends
//! through the batch writer of [`crate::batch`] (chain rules under row locks, views in the same
//! transaction).

use postgres::Row;
use std::ops::ControlFlow;

use rhizome_core::bundle::line_len;
use rhizome_core::event::{self, EventType, Header, Payload};
use rhizome_core::privacy::{Audience, HostDeclaration};
use rhizome_core::sealed::StoredSecret;
use rhizome_core::VerifiedEvent;
use rhizome_core::{Clock, Event, Hash, InstanceId, PublicKey, Seq, Signature, Timestamp};
use rhizome_store::{
    ForkRecord, Identity, KeyStore, LocalAuthor, LogStats, LogStore, Outcome, RangePlan,
    Result as StoreResult, StoreError,
};

use crate::batch::{self, Mode};
use crate::{
    bad_row, hash_col, i64_bound, instance_col, key_col, text_col, u64_col, views, Conn, End,
    PgStore, Result, Retry, SEQ_LIMIT,
};

fn secret_col(text: &str, what: &str) -> Result<StoredSecret> {
    serde_json::from_str(text).map_err(|e| bad_row(what, format!("sealed key record: {e}")))
}

fn secret_text(s: &StoredSecret) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl KeyStore for PgStore {
    fn schema_version(&self) -> StoreResult<u32> {
        self.with(|c| {
            let v: i32 = c
                .query_one("SELECT version FROM rhizome_schema WHERE id = 1", &[])?
                .get(0);
            Ok(v as u32)
        })
    }

    fn init(&mut self, identity: &Identity, first_author: &LocalAuthor) -> StoreResult<()> {
        self.write(Retry::Conflicts, |c| {
            let n = c.execute(
                "INSERT INTO instance (id, name, public_key, secret, created_at)
                 VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                &[
                    &identity.name.as_bytes(),
                    &&identity.public_key.as_bytes()[..],
                    &secret_text(&identity.secret),
                    &(identity.created_at as i64),
                ],
            )?;
            if n == 0 {
                return Err(StoreError::AlreadyInitialized.into());
            }
            insert_author(c, first_author)?;
            Ok(End::Commit(()))
        })
    }

    fn identity(&self) -> StoreResult<Identity> {
        self.with(|c| {
            let row = c
                .query_opt(
                    "SELECT name, public_key, secret, created_at FROM instance WHERE id = 1",
                    &[],
                )?
                .ok_or(StoreError::NotInitialized)?;
            Ok(Identity {
                name: text_col(row.get(0), "instance.name")?,
                public_key: key_col(row.get(1), "instance.public_key")?,
                secret: secret_col(row.get(2), "instance.secret")?,
                created_at: u64_col(row.get(3)),
            })
        })
    }

    fn add_author(&mut self, author: &LocalAuthor) -> StoreResult<()> {
        self.write(Retry::Conflicts, |c| {
            insert_author(c, author)?;
            Ok(End::Commit(()))
        })
    }

    fn authors(&self) -> StoreResult<Vec<LocalAuthor>> {
        self.with(|c| {
            c.query(
                "SELECT name, public_key, secret, is_default FROM local_authors
                 ORDER BY is_default DESC, name",
                &[],
            )?
            .into_iter()
            .map(|r| {
                let name = text_col(r.get(0), "local_authors.name")?;
                let what = format!("local author {name:?}");
                Ok(LocalAuthor {
                    public_key: key_col(r.get(1), &what)?,
                    secret: secret_col(r.get(2), &what)?,
                    name,
                    is_default: r.get(3),
                })
            })
            .collect()
        })
    }

    fn local_hosts(&self) -> StoreResult<Vec<HostDeclaration>> {
        self.with(|c| {
            c.query(
                "SELECT author, instance_id, issued_at, sig FROM local_hosts ORDER BY author",
                &[],
            )?
            .into_iter()
            .map(|r| {
                Ok(HostDeclaration {
                    author: key_col(r.get(0), "local_hosts.author")?,
                    instance_id: instance_col(r.get(1), "local_hosts.instance_id")?,
                    issued_at: u64_col(r.get(2)),
                    sig: Signature::try_from(r.get::<_, &[u8]>(3))
                        .map_err(|e| bad_row("local_hosts.sig", e))?,
                })
            })
            .collect()
        })
    }

    fn add_local_host(&mut self, d: &HostDeclaration) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO local_hosts (author, instance_id, issued_at, sig) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (author) DO UPDATE SET instance_id = excluded.instance_id,
                     issued_at = excluded.issued_at, sig = excluded.sig",
                &[
                    &&d.author.as_bytes()[..],
                    &&d.instance_id.as_bytes()[..],
                    &(d.issued_at as i64),
                    &&d.sig.as_bytes()[..],
                ],
            )?;
            Ok(())
        })
    }
}

const EVENT_COLUMNS: &str = "e.feed_id, e.seq, f.author, e.hash, e.prev, e.type, e.ts, \
     e.payload_hash, e.payload_size, e.payload, e.sig";

/// Decodes a row of [`EVENT_COLUMNS`] (the author may be NULL when its feed row is missing).
pub(crate) fn decode_event(r: &Row) -> Result<Event> {
    let seq: i64 = r.get(1);
    let author: Option<&[u8]> = r.get(2);
    let location = match author.map(|a| key_col(a, "author")) {
        Some(Ok(a)) => format!("{a} seq {seq}"),
        _ => format!("feed {} seq {seq}", r.get::<_, i64>(0)),
    };
    let bad = |detail: String| StoreError::BadRow {
        location: location.clone(),
        detail,
    };
    let author =
        key_col(author.unwrap_or_default(), "author").map_err(|e| bad(format!("author: {e:?}")))?;
    let header = Header {
        author,
        seq: Seq::new(u64_col(seq)).map_err(|e| bad(e.to_string()))?,
        prev: r
            .get::<_, Option<&[u8]>>(4)
            .map(Hash::try_from)
            .transpose()
            .map_err(|e| bad(format!("prev: {e}")))?,
        kind: EventType::new(r.get(5)).map_err(|e| bad(e.to_string()))?,
        timestamp: Timestamp::new(u64_col(r.get(6))).map_err(|e| bad(e.to_string()))?,
        payload_hash: Hash::try_from(r.get::<_, &[u8]>(7))
            .map_err(|e| bad(format!("payload_hash: {e}")))?,
        payload_size: u64_col(r.get(8)),
    };
    let payload = r
        .get::<_, Option<&[u8]>>(9)
        .map(Payload::from_canonical)
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    Ok(Event {
        header,
        payload,
        hash: Hash::try_from(r.get::<_, &[u8]>(3)).map_err(|e| bad(format!("hash: {e}")))?,
        sig: Signature::try_from(r.get::<_, &[u8]>(10)).map_err(|e| bad(format!("sig: {e}")))?,
    })
}

/// Events after position (`feed_id`, `seq`) in (feed, seq) order, at most `limit`.
pub(crate) fn events_after(
    c: &mut Conn,
    after: (i64, i64),
    feed: Option<i64>,
    limit: i64,
) -> Result<Vec<Row>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN feeds f ON f.feed_id = e.feed_id
         WHERE (e.feed_id, e.seq) > ($1, $2) AND ($3::bigint IS NULL OR e.feed_id = $3)
         ORDER BY e.feed_id, e.seq LIMIT $4"
    );
    c.query(&sql, &[&after.0, &after.1, &feed, &limit])
}

fn feed_id(c: &mut Conn, author: &PublicKey) -> Result<Option<i64>> {
    Ok(c.query_opt(
        "SELECT feed_id FROM feeds WHERE author = $1",
        &[&&author.as_bytes()[..]],
    )?
    .map(|r| r.get(0)))
}

impl LogStore for PgStore {
    fn head(&self, feed: &PublicKey) -> StoreResult<Option<(Seq, Hash)>> {
        self.with(|c| {
            let row = c.query_opt(
                "SELECT head_seq, head_hash FROM feeds WHERE author = $1 AND head_seq > 0",
                &[&&feed.as_bytes()[..]],
            )?;
            row.map(|r| {
                let seq = Seq::new(u64_col(r.get(0))).map_err(|e| bad_row(&feed.to_hex(), e))?;
                let h: Option<&[u8]> = r.get(1);
                Ok((seq, hash_col(h.unwrap_or_default(), "feeds.head_hash")?))
            })
            .transpose()
        })
    }

    fn append(&mut self, events: &[VerifiedEvent]) -> StoreResult<Vec<Outcome>> {
        Ok(batch::write(self, events, Mode::Append)?.outcomes)
    }

    fn get(&self, hash: &Hash) -> StoreResult<Option<Event>> {
        self.with(|c| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN feeds f ON f.feed_id = e.feed_id
                 WHERE e.hash = $1 ORDER BY e.feed_id, e.seq LIMIT 1"
            );
            c.query_opt(&sql, &[&&hash.as_bytes()[..]])?
                .map(|r| decode_event(&r))
                .transpose()
        })
    }

    fn find_by_prefix(&self, hex_prefix: &str, limit: usize) -> StoreResult<Vec<Hash>> {
        let p = hex_prefix.as_bytes();
        if limit == 0
            || p.is_empty()
            || p.len() > 64
            || !p
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            return Ok(Vec::new());
        }
        // Every hash between the prefix padded with 0s and with fs starts with the prefix.
        let bound = |fill: u8| -> Vec<u8> {
            let mut s = [fill; 64];
            s[..p.len()].copy_from_slice(p);
            let mut b = [0u8; 32];
            // Lowercase hex by construction: decoding cannot fail.
            let _ = hex::decode_to_slice(s, &mut b);
            b.to_vec()
        };
        self.with(|c| {
            c.query(
                "SELECT DISTINCT hash FROM events WHERE hash BETWEEN $1 AND $2 ORDER BY hash LIMIT $3",
                &[&bound(b'0'), &bound(b'f'), &(limit.min(i64::MAX as usize) as i64)],
            )?
            .into_iter()
            .map(|r| hash_col(r.get(0), "events.hash"))
            .filter(|h| h.as_ref().map_or(true, |h| h.to_hex().starts_with(hex_prefix)))
            .collect()
        })
    }

    fn for_each_event(
        &self,
        feed: Option<&PublicKey>,
        visit: &mut dyn FnMut(StoreResult<Event>) -> ControlFlow<()>,
    ) -> StoreResult<()> {
        let only = match feed {
            Some(k) => match self.with(|c| feed_id(c, k))? {
                Some(id) => Some(id),
                None => return Ok(()),
            },
            None => None,
        };
        // Pages by position, the connection released between pages: memory stays bounded
        // and the visitor may read the store.
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let rows = self.with(|c| events_after(c, after, only, 512))?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = (last.get(0), last.get(1));
            for r in &rows {
                let item = decode_event(r).map_err(|e| e.into_store(self.location()));
                if visit(item).is_break() {
                    return Ok(());
                }
            }
        }
    }

    fn clock(&self) -> StoreResult<Clock> {
        self.with(|c| {
            let mut clock = Clock::new();
            for r in c.query("SELECT author, head_seq FROM feeds WHERE head_seq > 0", &[])? {
                let key = key_col(r.get(0), "feeds.author")?;
                let seq = Seq::new(u64_col(r.get(1))).map_err(|e| bad_row(&key.to_hex(), e))?;
                clock.set(key, seq);
            }
            Ok(clock)
        })
    }

    fn stats(&self) -> StoreResult<LogStats> {
        self.with(|c| {
            let r = c.query_one(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM feeds WHERE head_seq > 0)",
                &[],
            )?;
            Ok(LogStats {
                events: u64_col(r.get(0)),
                feeds: u64_col(r.get(1)),
            })
        })
    }

    fn type_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        self.with(|c| {
            Ok(c.query(
                "SELECT type, count(*) FROM events GROUP BY type ORDER BY type",
                &[],
            )?
            .into_iter()
            .map(|r| (r.get(0), u64_col(r.get(1))))
            .collect())
        })
    }

    fn stored_hashes(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
    ) -> StoreResult<Vec<(u64, Hash)>> {
        self.with(|c| {
            // Withheld rows are left out: a copy that brings the payload must not be skipped.
            c.query(
                "SELECT e.seq, e.hash FROM events e JOIN feeds f ON f.feed_id = e.feed_id
                 WHERE f.author = $1 AND e.seq BETWEEN $2 AND $3 AND e.payload IS NOT NULL
                 ORDER BY e.seq",
                &[&&author.as_bytes()[..], &i64_bound(from), &i64_bound(to)],
            )?
            .into_iter()
            .map(|r| Ok((u64_col(r.get(0)), hash_col(r.get(1), "events.hash")?)))
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
        let mut plan = RangePlan {
            count: 0,
            bytes: 0,
            head: None,
        };
        let Some(id) = self.with(|c| feed_id(c, author))? else {
            return Ok(plan);
        };
        let mut next = i64_bound(from);
        loop {
            let rows = self.with(|c| {
                c.query(
                    "SELECT seq, ts, payload_size, prev IS NOT NULL, type, payload IS NOT NULL, hash
                     FROM events WHERE feed_id = $1 AND seq >= $2 AND seq <= $3
                     ORDER BY seq LIMIT 4096",
                    &[&id, &next, &i64_bound(to)],
                )
            })?;
            let Some(last) = rows.last() else {
                return Ok(plan);
            };
            next = last.get::<_, i64>(0).saturating_add(1);
            for r in &rows {
                let seq = u64_col(r.get(0));
                let size = u64_col(r.get(2));
                let kind: &str = r.get(4);
                let has_payload = r.get::<_, bool>(5) && !withhold(seq);
                plan.count += 1;
                plan.bytes += line_len(
                    kind.len() as u64,
                    seq,
                    u64_col(r.get(1)),
                    size,
                    r.get(3),
                    has_payload.then_some(size),
                );
                plan.head = Some(
                    hash_col(r.get(6), "events.hash").map_err(|e| e.into_store(self.location()))?,
                );
            }
        }
    }

    fn write_range(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
        withhold: &dyn Fn(u64) -> bool,
        out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> StoreResult<u64> {
        let Some(id) = self.with(|c| feed_id(c, author))? else {
            return Ok(0);
        };
        let mut n = 0;
        let mut next = i64_bound(from);
        loop {
            // Pages of 256 lines (a line may be up to 16 MiB).
            let rows = self.with(|c| {
                c.query(
                    "SELECT seq, prev, type, ts, payload_hash, payload_size, payload, hash, sig
                     FROM events WHERE feed_id = $1 AND seq >= $2 AND seq <= $3
                     ORDER BY seq LIMIT 256",
                    &[&id, &next, &i64_bound(to)],
                )
            })?;
            let Some(last) = rows.last() else {
                return Ok(n);
            };
            next = last.get::<_, i64>(0).saturating_add(1);
            for r in rows {
                let seq = u64_col(r.get(0));
                let bad = |detail: String| StoreError::BadRow {
                    location: format!("{author} seq {seq}"),
                    detail,
                };
                let hash_of = |i: usize, what: &str| {
                    Hash::try_from(r.get::<_, &[u8]>(i)).map_err(|e| bad(format!("{what}: {e}")))
                };
                let header = Header {
                    author: *author,
                    seq: Seq::new(seq).map_err(|e| bad(e.to_string()))?,
                    prev: r
                        .get::<_, Option<&[u8]>>(1)
                        .map(Hash::try_from)
                        .transpose()
                        .map_err(|e| bad(format!("prev: {e}")))?,
                    kind: EventType::new(r.get(2)).map_err(|e| bad(e.to_string()))?,
                    timestamp: Timestamp::new(u64_col(r.get(3))).map_err(|e| bad(e.to_string()))?,
                    payload_hash: hash_of(4, "payload_hash")?,
                    payload_size: u64_col(r.get(5)),
                };
                let payload: Option<&[u8]> = if withhold(seq) { None } else { r.get(6) };
                let sig = Signature::try_from(r.get::<_, &[u8]>(8))
                    .map_err(|e| bad(format!("sig: {e}")))?;
                let mut line = event::line(&header, payload, &hash_of(7, "hash")?, &sig);
                line.push(b'\n');
                out(&line).map_err(|e| bad(format!("writing: {e}")))?;
                n += 1;
            }
        }
    }

    fn limited(&self, author: &PublicKey, from: u64, to: u64) -> StoreResult<Vec<(u64, Audience)>> {
        self.with(|c| {
            let Some(id) = feed_id(c, author)? else {
                return Ok(Vec::new());
            };
            Ok(c.query(
                "SELECT seq, members FROM limited WHERE feed_id = $1 AND seq BETWEEN $2 AND $3
                     ORDER BY seq",
                &[&id, &i64_bound(from), &i64_bound(to)],
            )?
            .into_iter()
            .map(|r| {
                let members: &str = r.get(1);
                // Unreadable members limit the payload to its author (never wider).
                let audience = match serde_json::from_str::<serde_json::Value>(members) {
                    Ok(m) => {
                        Audience::of_value(&serde_json::json!({ "audience": { "members": m } }))
                    }
                    Err(_) => Audience::Limited(Vec::new()),
                };
                (u64_col(r.get(0)), audience)
            })
            .collect())
        })
    }

    fn pending_count(&self) -> StoreResult<u64> {
        self.with(|c| {
            Ok(u64_col(
                c.query_one("SELECT count(*) FROM pending", &[])?.get(0),
            ))
        })
    }

    fn fork_lines(&self, author: &PublicKey) -> StoreResult<Vec<(u64, Hash, Vec<u8>)>> {
        self.with(|c| {
            c.query(
                "SELECT seq, hash, line FROM forks WHERE author = $1 ORDER BY seq, hash",
                &[&&author.as_bytes()[..]],
            )?
            .into_iter()
            .map(|r| {
                Ok((
                    u64_col(r.get(0)),
                    hash_col(r.get(1), "forks.hash")?,
                    r.get(2),
                ))
            })
            .collect()
        })
    }

    fn forked_authors(&self) -> StoreResult<Vec<PublicKey>> {
        self.with(|c| {
            c.query("SELECT DISTINCT author FROM forks ORDER BY author", &[])?
                .into_iter()
                .map(|r| key_col(r.get(0), "forks.author"))
                .collect()
        })
    }

    fn forks(&self) -> StoreResult<Vec<ForkRecord>> {
        self.with(|c| {
            c.query(
                "SELECT author, seq, held, hash, kind, carrier FROM forks ORDER BY author, seq, hash",
                &[],
            )?
            .into_iter()
            .map(|r| {
                Ok(ForkRecord {
                    author: key_col(r.get(0), "forks.author")?,
                    seq: u64_col(r.get(1)),
                    held: hash_col(r.get(2), "forks.held")?,
                    other: hash_col(r.get(3), "forks.hash")?,
                    kind: r.get(4),
                    carrier: r
                        .get::<_, Option<&[u8]>>(5)
                        .and_then(|c| InstanceId::try_from(c).ok()),
                })
            })
            .collect()
        })
    }

    fn purge_author(&mut self, author: &PublicKey) -> StoreResult<u64> {
        self.write(Retry::Conflicts, |c| {
            // Every log writer holds the store lock FOR SHARE: none runs while the views are
            // rebuilt.
            c.query("SELECT id FROM store_lock WHERE id = 1 FOR UPDATE", &[])?;
            let key = &author.as_bytes()[..];
            let mut removed = 0;
            if let Some(id) = c
                .query_opt(
                    "SELECT feed_id FROM feeds WHERE author = $1 FOR UPDATE",
                    &[&key],
                )?
                .map(|r| r.get::<_, i64>(0))
            {
                removed = c.execute("DELETE FROM events WHERE feed_id = $1", &[&id])?;
                c.execute("DELETE FROM limited WHERE feed_id = $1", &[&id])?;
                c.execute(
                    "UPDATE feeds SET head_seq = 0, head_hash = NULL WHERE feed_id = $1",
                    &[&id],
                )?;
            }
            c.execute("DELETE FROM pending WHERE author = $1", &[&key])?;
            c.execute("DELETE FROM forks WHERE author = $1", &[&key])?;
            views::replay(c, views::LIVE)?;
            Ok(End::Commit(removed))
        })
    }

    fn legacy(&self, legacy: &str) -> StoreResult<Option<Vec<u8>>> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT value FROM legacy_ids WHERE legacy = $1",
                &[&legacy.as_bytes()],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn append_legacy(&mut self, event: &VerifiedEvent, legacy: &str) -> StoreResult<Outcome> {
        Ok(
            batch::write(self, std::slice::from_ref(event), Mode::Legacy(legacy))?
                .outcomes
                .pop()
                .unwrap_or(Outcome::Duplicate),
        )
    }

    fn add_author_legacy(&mut self, author: &LocalAuthor, legacy: &str) -> StoreResult<()> {
        self.write(Retry::Conflicts, |c| {
            insert_author(c, author)?;
            c.execute(
                "INSERT INTO legacy_ids (legacy, value) VALUES ($1, $2)",
                &[&legacy.as_bytes(), &&author.public_key.as_bytes()[..]],
            )?;
            Ok(End::Commit(()))
        })
    }

    fn size_on_disk(&self) -> Option<u64> {
        self.with(|c| {
            let r = c.query_one(
                "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )?;
            Ok(r.get::<_, Option<i64>>(0).map(u64_col))
        })
        .ok()
        .flatten()
    }

    fn max_seq(&self) -> u64 {
        SEQ_LIMIT
    }
}

fn insert_author(c: &mut Conn, a: &LocalAuthor) -> Result<()> {
    let taken = c
        .query_opt(
            "SELECT 1 FROM local_authors WHERE name = $1",
            &[&a.name.as_bytes()],
        )?
        .is_some();
    if taken {
        return Err(StoreError::AuthorExists(a.name.clone()).into());
    }
    let key = &a.public_key.as_bytes()[..];
    let inserted = c.execute(
        "INSERT INTO local_authors (name, public_key, secret, is_default) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING",
        &[
            &a.name.as_bytes(),
            &key,
            &secret_text(&a.secret),
            &a.is_default,
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::AuthorExists(a.name.clone()).into());
    }
    c.execute(
        "INSERT INTO follows (author) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&key],
    )?;
    Ok(())
}
