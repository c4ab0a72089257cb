//! Materialized views in PostgreSQL ([`ViewStore`]): the rows the core's merge rules
//! (`rhizome_core::views::apply`) read and write, buffered per batch and written with one
//! multi-row statement per table; rebuilding them from the log; comparing a rebuild with the
//! live tables; digests; and the queries front-ends read.
//!
//! The tables have SQLite's columns, column order and primary keys, and [`digest`] encodes
//! each row exactly as the SQLite backend does (integers as 8 big-endian bytes with tag 1,
//! text tag 3, blob tag 4, null tag 0, each value length-prefixed, rows in primary-key order),
//! so that the same log gives the same digests on both backends. Byte order is the order of
//! every key here: blobs are bytea, codes are text COLLATE "C", and strings from payloads are
//! bytea holding UTF-8 (digested as text).
//!
//! Every view row belongs to the author of the event that made it, and a batch holds its
//! authors' feed rows locked, so what the buffer read at the start of a batch stays true
//! until it commits. Authors blocked on this instance are hidden at query time.

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use rhizome_core::views::{
    self as rhizome_views, ProfileRow, ReplyRow, SkipRow, StarRow, TimelineRow, ViewRows,
};
use rhizome_core::{Event, Hash, PublicKey};
use rhizome_store::{
    Circle, Cursor, Profile, Reply, Reshare, Result as StoreResult, Skipped, TableDigest,
    TimelineItem, ViewCheck, ViewStore,
};

use crate::log::{decode_event, events_after};
use crate::{hash_col, key_col, text_col, u64_col, Conn, End, Error, PgStore, Result, Retry};

/// How a column is stored and digested.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Col {
    /// bigint (or integer): tag 1.
    Int,
    /// bytea: tag 4.
    Blob,
    /// text COLLATE "C": tag 3.
    Text,
    /// bytea holding UTF-8: tag 3, as SQLite's TEXT.
    TextBytes,
}

struct Table {
    name: &'static str,
    cols: &'static [(&'static str, Col)],
    key: &'static str,
}

use Col::{Blob, Int, Text, TextBytes};

/// The view tables, in SQLite's order, each with its columns in SQLite's order.
const TABLES: &[Table] = &[
    Table {
        name: "v_timeline",
        cols: &[
            ("ts", Int),
            ("hash", Blob),
            ("author", Blob),
            ("seq", Int),
            ("kind", Text),
            ("target", Blob),
        ],
        key: "ts, hash",
    },
    Table {
        name: "v_replies",
        cols: &[
            ("target", Blob),
            ("hash", Blob),
            ("author", Blob),
            ("seq", Int),
            ("ts", Int),
        ],
        key: "target, hash",
    },
    Table {
        name: "v_likes",
        cols: &[("target", Blob), ("author", Blob)],
        key: "target, author",
    },
    Table {
        name: "v_stars",
        cols: &[
            ("author", Blob),
            ("target", Blob),
            ("seq", Int),
            ("starred", Int),
        ],
        key: "author, target",
    },
    Table {
        name: "v_circles",
        cols: &[("owner", Blob), ("id", Blob), ("name", TextBytes)],
        key: "owner, id",
    },
    Table {
        name: "v_circle_members",
        cols: &[("owner", Blob), ("id", Blob), ("member", Blob)],
        key: "owner, id, member",
    },
    Table {
        name: "v_tags",
        cols: &[("tag", TextBytes), ("target", Blob), ("author", Blob)],
        key: "tag, target, author",
    },
    Table {
        name: "v_profiles",
        cols: &[
            ("author", Blob),
            ("seq", Int),
            ("name", TextBytes),
            ("about", TextBytes),
        ],
        key: "author",
    },
    Table {
        name: "v_skipped",
        cols: &[
            ("hash", Blob),
            ("author", Blob),
            ("seq", Int),
            ("type", Text),
            ("reason", Text),
            ("detail", TextBytes),
        ],
        key: "hash",
    },
];

/// Which set of view tables: the live ones, or the temporary copies `views check` rebuilds.
#[derive(Clone, Copy)]
pub(crate) struct Tables(&'static str);

/// The live view tables (in the store's schema).
pub(crate) const LIVE: Tables = Tables("");
/// The temporary tables of `views check`.
const CHECK: Tables = Tables("pg_temp.check_");

impl Tables {
    fn t(self, name: &str) -> String {
        format!("{}{name}", self.0)
    }
}

fn b(k: &PublicKey) -> &[u8] {
    &k.as_bytes()[..]
}
fn h(x: &Hash) -> &[u8] {
    &x.as_bytes()[..]
}

/// The view writes of one batch, and what it has read or written of the rows the merge rules
/// read back (stars, circles), so that those reads cost no round trip after [`prefetch`].
///
/// [`prefetch`]: ViewBuf::prefetch
pub(crate) struct ViewBuf {
    tables: Tables,
    timeline: Vec<TimelineRow>,
    replies: Vec<ReplyRow>,
    likes: Vec<(Hash, PublicKey)>,
    tags: Vec<(String, Hash, PublicKey)>,
    skips: Vec<SkipRow>,
    unskip: Vec<Hash>,
    /// Star rows as the batch sees them: read from the table (None: absent) or written.
    stars: HashMap<(PublicKey, Hash), Option<StarRow>>,
    stars_dirty: BTreeSet<(PublicKey, Hash)>,
    /// Each owner's circles (id, name) as the batch sees them, read whole.
    circles: HashMap<PublicKey, Vec<(Hash, String)>>,
    circles_dirty: BTreeSet<(PublicKey, Hash)>,
    /// Membership changes: true to add, false to remove (the last change wins).
    members: BTreeMap<(PublicKey, Hash, PublicKey), bool>,
    /// Profile rows as the batch sees them (None: absent), and those written.
    profiles: HashMap<PublicKey, Option<ProfileRow>>,
    profiles_dirty: BTreeSet<PublicKey>,
}

impl ViewBuf {
    pub(crate) fn new(tables: Tables) -> Self {
        Self {
            tables,
            timeline: Vec::new(),
            replies: Vec::new(),
            likes: Vec::new(),
            tags: Vec::new(),
            skips: Vec::new(),
            unskip: Vec::new(),
            stars: HashMap::new(),
            stars_dirty: BTreeSet::new(),
            circles: HashMap::new(),
            circles_dirty: BTreeSet::new(),
            members: BTreeMap::new(),
            profiles: HashMap::new(),
            profiles_dirty: BTreeSet::new(),
        }
    }

    /// Reads, in one query per table, the star and circle rows that `events` may read back.
    /// A row missed here is read when asked for: this only saves round trips.
    pub(crate) fn prefetch<'e>(
        &mut self,
        c: &mut Conn,
        events: impl Iterator<Item = &'e Event>,
    ) -> Result<()> {
        let mut stars: BTreeSet<(PublicKey, Hash)> = BTreeSet::new();
        let mut owners: BTreeSet<PublicKey> = BTreeSet::new();
        let mut profiles: BTreeSet<PublicKey> = BTreeSet::new();
        for ev in events {
            let author = ev.header.author;
            match ev.header.kind.as_str() {
                "STAR" => {
                    let target = ev
                        .payload
                        .as_ref()
                        .and_then(|p| p.value().get("target")?.as_str()?.parse::<Hash>().ok());
                    if let Some(t) = target {
                        if !self.stars.contains_key(&(author, t)) {
                            stars.insert((author, t));
                        }
                    }
                }
                "CIRCLE_UPDATE" if !self.circles.contains_key(&author) => {
                    owners.insert(author);
                }
                "PROFILE" if !self.profiles.contains_key(&author) => {
                    profiles.insert(author);
                }
                _ => {}
            }
        }
        if !stars.is_empty() {
            let a: Vec<&[u8]> = stars.iter().map(|(a, _)| b(a)).collect();
            let t: Vec<&[u8]> = stars.iter().map(|(_, t)| h(t)).collect();
            let sql = format!(
                "SELECT s.author, s.target, s.seq, s.starred FROM {} s
                 JOIN unnest($1::bytea[], $2::bytea[]) AS k(a, t) ON s.author = k.a AND s.target = k.t",
                self.tables.t("v_stars")
            );
            for key in &stars {
                self.stars.insert(*key, None);
            }
            for r in c.query(&sql, &[&a, &t])? {
                let row = StarRow {
                    author: key_col(r.get(0), "v_stars.author")?,
                    target: hash_col(r.get(1), "v_stars.target")?,
                    seq: u64_col(r.get(2)),
                    starred: r.get::<_, i32>(3) != 0,
                };
                self.stars.insert((row.author, row.target), Some(row));
            }
        }
        if !profiles.is_empty() {
            let a: Vec<&[u8]> = profiles.iter().map(b).collect();
            let sql = format!(
                "SELECT author, seq, name, about FROM {} WHERE author = ANY($1)",
                self.tables.t("v_profiles")
            );
            for author in &profiles {
                self.profiles.insert(*author, None);
            }
            for r in c.query(&sql, &[&a])? {
                let row = profile_row(&r)?;
                self.profiles.insert(row.author, Some(row));
            }
        }
        if !owners.is_empty() {
            let o: Vec<&[u8]> = owners.iter().map(b).collect();
            let sql = format!(
                "SELECT owner, id, name FROM {} WHERE owner = ANY($1) ORDER BY owner, id",
                self.tables.t("v_circles")
            );
            for owner in &owners {
                self.circles.insert(*owner, Vec::new());
            }
            for r in c.query(&sql, &[&o])? {
                let owner = key_col(r.get(0), "v_circles.owner")?;
                let id = hash_col(r.get(1), "v_circles.id")?;
                let name = text_col(r.get(2), "v_circles.name")?;
                self.circles.entry(owner).or_default().push((id, name));
            }
        }
        Ok(())
    }

    fn owner_circles(
        &mut self,
        c: &mut Conn,
        owner: &PublicKey,
    ) -> Result<&mut Vec<(Hash, String)>> {
        if !self.circles.contains_key(owner) {
            let sql = format!(
                "SELECT id, name FROM {} WHERE owner = $1 ORDER BY id",
                self.tables.t("v_circles")
            );
            let list = c
                .query(&sql, &[&b(owner)])?
                .into_iter()
                .map(|r| {
                    Ok((
                        hash_col(r.get(0), "v_circles.id")?,
                        text_col(r.get(1), "v_circles.name")?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            self.circles.insert(*owner, list);
        }
        Ok(self.circles.entry(*owner).or_default())
    }

    /// Writes everything buffered, one statement per table (deletions first), and forgets
    /// what was read: the tables now hold it.
    pub(crate) fn flush(&mut self, c: &mut Conn) -> Result<()> {
        let tables = self.tables;
        let t = |name: &str| tables.t(name);
        if !self.unskip.is_empty() {
            let hs: Vec<&[u8]> = self.unskip.iter().map(h).collect();
            c.execute(
                &format!("DELETE FROM {} WHERE hash = ANY($1)", t("v_skipped")),
                &[&hs],
            )?;
        }
        for rows in self.timeline.chunks(CHUNK) {
            let ts: Vec<i64> = rows.iter().map(|r| r.ts as i64).collect();
            let hs: Vec<&[u8]> = rows.iter().map(|r| h(&r.hash)).collect();
            let au: Vec<&[u8]> = rows.iter().map(|r| b(&r.author)).collect();
            let seq: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
            let kind: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
            let target: Vec<Option<&[u8]>> =
                rows.iter().map(|r| r.target.as_ref().map(h)).collect();
            c.execute(
                &format!(
                    "INSERT INTO {} (ts, hash, author, seq, kind, target)
                     SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bigint[], $5::text[], $6::bytea[])
                     ON CONFLICT DO NOTHING",
                    t("v_timeline")
                ),
                &[&ts, &hs, &au, &seq, &kind, &target],
            )?;
        }
        for rows in self.replies.chunks(CHUNK) {
            let target: Vec<&[u8]> = rows.iter().map(|r| h(&r.target)).collect();
            let hs: Vec<&[u8]> = rows.iter().map(|r| h(&r.hash)).collect();
            let au: Vec<&[u8]> = rows.iter().map(|r| b(&r.author)).collect();
            let seq: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
            let ts: Vec<i64> = rows.iter().map(|r| r.ts as i64).collect();
            c.execute(
                &format!(
                    "INSERT INTO {} (target, hash, author, seq, ts)
                     SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bigint[], $5::bigint[])
                     ON CONFLICT DO NOTHING",
                    t("v_replies")
                ),
                &[&target, &hs, &au, &seq, &ts],
            )?;
        }
        for rows in self.likes.chunks(CHUNK) {
            let target: Vec<&[u8]> = rows.iter().map(|(x, _)| h(x)).collect();
            let au: Vec<&[u8]> = rows.iter().map(|(_, a)| b(a)).collect();
            c.execute(
                &format!(
                    "INSERT INTO {} (target, author) SELECT * FROM unnest($1::bytea[], $2::bytea[])
                     ON CONFLICT DO NOTHING",
                    t("v_likes")
                ),
                &[&target, &au],
            )?;
        }
        for rows in self.tags.chunks(CHUNK) {
            let tag: Vec<&[u8]> = rows.iter().map(|(g, _, _)| g.as_bytes()).collect();
            let target: Vec<&[u8]> = rows.iter().map(|(_, x, _)| h(x)).collect();
            let au: Vec<&[u8]> = rows.iter().map(|(_, _, a)| b(a)).collect();
            c.execute(
                &format!(
                    "INSERT INTO {} (tag, target, author)
                     SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[]) ON CONFLICT DO NOTHING",
                    t("v_tags")
                ),
                &[&tag, &target, &au],
            )?;
        }
        for rows in self.skips.chunks(CHUNK) {
            let hs: Vec<&[u8]> = rows.iter().map(|r| h(&r.hash)).collect();
            let au: Vec<&[u8]> = rows.iter().map(|r| b(&r.author)).collect();
            let seq: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
            let kind: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
            let reason: Vec<&str> = rows.iter().map(|r| r.skip.code()).collect();
            let detail: Vec<String> = rows.iter().map(|r| r.skip.detail()).collect();
            let detail: Vec<&[u8]> = detail.iter().map(|d| d.as_bytes()).collect();
            c.execute(
                &format!(
                    "INSERT INTO {} (hash, author, seq, type, reason, detail)
                     SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::text[], $5::text[], $6::bytea[])
                     ON CONFLICT DO NOTHING",
                    t("v_skipped")
                ),
                &[&hs, &au, &seq, &kind, &reason, &detail],
            )?;
        }
        let stars: Vec<&StarRow> = self
            .stars_dirty
            .iter()
            .filter_map(|k| self.stars.get(k).and_then(Option::as_ref))
            .collect();
        for rows in stars.chunks(CHUNK) {
            let au: Vec<&[u8]> = rows.iter().map(|r| b(&r.author)).collect();
            let target: Vec<&[u8]> = rows.iter().map(|r| h(&r.target)).collect();
            let seq: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
            let starred: Vec<i32> = rows.iter().map(|r| i32::from(r.starred)).collect();
            c.execute(
                &format!(
                    "INSERT INTO {} (author, target, seq, starred)
                     SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::integer[])
                     ON CONFLICT (author, target) DO UPDATE SET seq = excluded.seq, starred = excluded.starred",
                    t("v_stars")
                ),
                &[&au, &target, &seq, &starred],
            )?;
        }
        let profiles: Vec<&ProfileRow> = self
            .profiles_dirty
            .iter()
            .filter_map(|k| self.profiles.get(k).and_then(Option::as_ref))
            .collect();
        for rows in profiles.chunks(CHUNK) {
            let au: Vec<&[u8]> = rows.iter().map(|r| b(&r.author)).collect();
            let seq: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
            let name: Vec<&[u8]> = rows.iter().map(|r| r.name.as_bytes()).collect();
            let about: Vec<Option<&[u8]>> = rows
                .iter()
                .map(|r| r.about.as_ref().map(|a| a.as_bytes()))
                .collect();
            c.execute(
                &format!(
                    "INSERT INTO {} (author, seq, name, about)
                     SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[])
                     ON CONFLICT (author) DO UPDATE
                         SET seq = excluded.seq, name = excluded.name, about = excluded.about",
                    t("v_profiles")
                ),
                &[&au, &seq, &name, &about],
            )?;
        }
        if !self.circles_dirty.is_empty() {
            // Deleted, then inserted as they end: renames within the batch never collide on
            // the unique (owner, name) index half way.
            let o: Vec<&[u8]> = self.circles_dirty.iter().map(|(o, _)| b(o)).collect();
            let i: Vec<&[u8]> = self.circles_dirty.iter().map(|(_, i)| h(i)).collect();
            c.execute(
                &format!(
                    "DELETE FROM {} c USING unnest($1::bytea[], $2::bytea[]) AS d(o, i)
                     WHERE c.owner = d.o AND c.id = d.i",
                    t("v_circles")
                ),
                &[&o, &i],
            )?;
            let mut rows: Vec<(&PublicKey, &Hash, &str)> = Vec::new();
            for (owner, id) in &self.circles_dirty {
                if let Some(list) = self.circles.get(owner) {
                    for (cid, name) in list.iter().filter(|(cid, _)| cid == id) {
                        rows.push((owner, cid, name));
                    }
                }
            }
            let o: Vec<&[u8]> = rows.iter().map(|(o, _, _)| b(o)).collect();
            let i: Vec<&[u8]> = rows.iter().map(|(_, i, _)| h(i)).collect();
            let n: Vec<&[u8]> = rows.iter().map(|(_, _, n)| n.as_bytes()).collect();
            c.execute(
                &format!(
                    "INSERT INTO {} (owner, id, name) SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[])",
                    t("v_circles")
                ),
                &[&o, &i, &n],
            )?;
        }
        for add in [false, true] {
            let rows: Vec<&(PublicKey, Hash, PublicKey)> = self
                .members
                .iter()
                .filter(|(_, a)| **a == add)
                .map(|(k, _)| k)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let o: Vec<&[u8]> = rows.iter().map(|(o, _, _)| b(o)).collect();
            let i: Vec<&[u8]> = rows.iter().map(|(_, i, _)| h(i)).collect();
            let m: Vec<&[u8]> = rows.iter().map(|(_, _, m)| b(m)).collect();
            let sql = if add {
                "INSERT INTO {} (owner, id, member) SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[])
                 ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM {} c USING unnest($1::bytea[], $2::bytea[], $3::bytea[]) AS d(o, i, m)
                 WHERE c.owner = d.o AND c.id = d.i AND c.member = d.m"
            };
            c.execute(&sql.replace("{}", &t("v_circle_members")), &[&o, &i, &m])?;
        }
        *self = ViewBuf::new(self.tables);
        Ok(())
    }
}

/// Rows per statement when a buffer is written.
const CHUNK: usize = 8192;

/// The view rows of one batch, for the core's merge rules: writes go to the buffer, reads
/// come from it (or from the tables, for rows it has not seen).
struct Rows<'a> {
    c: &'a mut Conn,
    buf: &'a mut ViewBuf,
}

impl ViewRows for Rows<'_> {
    type Error = Error;

    fn insert_timeline(&mut self, r: &TimelineRow) -> Result<()> {
        self.buf.timeline.push(r.clone());
        Ok(())
    }

    fn insert_reply(&mut self, r: &ReplyRow) -> Result<()> {
        self.buf.replies.push(r.clone());
        Ok(())
    }

    fn insert_like(&mut self, target: &Hash, author: &PublicKey) -> Result<()> {
        self.buf.likes.push((*target, *author));
        Ok(())
    }

    fn insert_tag(&mut self, tag: &str, target: &Hash, author: &PublicKey) -> Result<()> {
        self.buf.tags.push((tag.to_string(), *target, *author));
        Ok(())
    }

    fn star(&mut self, author: &PublicKey, target: &Hash) -> Result<Option<StarRow>> {
        let key = (*author, *target);
        if let Some(known) = self.buf.stars.get(&key) {
            return Ok(known.clone());
        }
        let sql = format!(
            "SELECT seq, starred FROM {} WHERE author = $1 AND target = $2",
            self.buf.tables.t("v_stars")
        );
        let row = self
            .c
            .query_opt(&sql, &[&b(author), &h(target)])?
            .map(|r| StarRow {
                author: *author,
                target: *target,
                seq: u64_col(r.get(0)),
                starred: r.get::<_, i32>(1) != 0,
            });
        self.buf.stars.insert(key, row.clone());
        Ok(row)
    }

    fn put_star(&mut self, r: &StarRow) -> Result<()> {
        let key = (r.author, r.target);
        self.buf.stars.insert(key, Some(r.clone()));
        self.buf.stars_dirty.insert(key);
        Ok(())
    }

    fn circle_named(&mut self, owner: &PublicKey, name: &str) -> Result<Option<Hash>> {
        let list = self.buf.owner_circles(self.c, owner)?;
        Ok(list.iter().find(|(_, n)| n == name).map(|(id, _)| *id))
    }

    fn insert_circle(&mut self, owner: &PublicKey, id: &Hash, name: &str) -> Result<()> {
        let list = self.buf.owner_circles(self.c, owner)?;
        list.retain(|(cid, _)| cid != id);
        list.push((*id, name.to_string()));
        self.buf.circles_dirty.insert((*owner, *id));
        Ok(())
    }

    fn rename_circle(&mut self, owner: &PublicKey, id: &Hash, name: &str) -> Result<()> {
        let list = self.buf.owner_circles(self.c, owner)?;
        for (cid, n) in list.iter_mut() {
            if cid == id {
                *n = name.to_string();
            }
        }
        self.buf.circles_dirty.insert((*owner, *id));
        Ok(())
    }

    fn insert_member(&mut self, owner: &PublicKey, id: &Hash, member: &PublicKey) -> Result<()> {
        self.buf.members.insert((*owner, *id, *member), true);
        Ok(())
    }

    fn delete_member(&mut self, owner: &PublicKey, id: &Hash, member: &PublicKey) -> Result<()> {
        self.buf.members.insert((*owner, *id, *member), false);
        Ok(())
    }

    fn profile_seq(&mut self, author: &PublicKey) -> Result<Option<u64>> {
        if let Some(known) = self.buf.profiles.get(author) {
            return Ok(known.as_ref().map(|p| p.seq));
        }
        let sql = format!(
            "SELECT author, seq, name, about FROM {} WHERE author = $1",
            self.buf.tables.t("v_profiles")
        );
        let row = self
            .c
            .query_opt(&sql, &[&b(author)])?
            .map(|r| profile_row(&r))
            .transpose()?;
        let seq = row.as_ref().map(|p| p.seq);
        self.buf.profiles.insert(*author, row);
        Ok(seq)
    }

    fn put_profile(&mut self, r: &ProfileRow) -> Result<()> {
        self.buf.profiles.insert(r.author, Some(r.clone()));
        self.buf.profiles_dirty.insert(r.author);
        Ok(())
    }

    fn insert_skip(&mut self, r: &SkipRow) -> Result<()> {
        self.buf.skips.push(r.clone());
        Ok(())
    }

    fn delete_skip(&mut self, hash: &Hash) -> Result<()> {
        // Deletions are written before insertions: a buffered insertion of this row goes.
        self.buf.skips.retain(|s| s.hash != *hash);
        self.buf.unskip.push(*hash);
        Ok(())
    }
}

/// A row of `v_profiles` (author, seq, name, about).
fn profile_row(r: &postgres::Row) -> Result<ProfileRow> {
    Ok(ProfileRow {
        author: key_col(r.get(0), "v_profiles.author")?,
        seq: u64_col(r.get(1)),
        name: text_col(r.get(2), "v_profiles.name")?,
        about: r
            .get::<_, Option<Vec<u8>>>(3)
            .map(|a| text_col(a, "v_profiles.about"))
            .transpose()?,
    })
}

/// Applies one stored event to the views, into the batch's buffer.
pub(crate) fn apply(c: &mut Conn, buf: &mut ViewBuf, ev: &Event) -> Result<()> {
    rhizome_views::apply(&mut Rows { c, buf }, ev)
}

/// Drops the record that an event was skipped (its withheld payload has now arrived).
pub(crate) fn forget_skip(c: &mut Conn, buf: &mut ViewBuf, hash: &Hash) -> Result<()> {
    Rows { c, buf }.delete_skip(hash)
}

/// Empties the view tables `tables` and applies every stored event to them, in (feed, seq)
/// order, a page at a time. Returns the events replayed.
pub(crate) fn replay(c: &mut Conn, tables: Tables) -> Result<u64> {
    for t in TABLES {
        c.client
            .batch_execute(&format!("DELETE FROM {}", tables.t(t.name)))?;
    }
    let mut buf = ViewBuf::new(tables);
    let mut after = (i64::MIN, i64::MIN);
    let mut n = 0;
    loop {
        let rows = events_after(c, after, None, 4096)?;
        let Some(last) = rows.last() else {
            return Ok(n);
        };
        after = (last.get(0), last.get(1));
        let events = rows.iter().map(decode_event).collect::<Result<Vec<_>>>()?;
        drop(rows);
        buf.prefetch(c, events.iter())?;
        for ev in &events {
            apply(c, &mut buf, ev)?;
            n += 1;
        }
        buf.flush(c)?;
    }
}

/// The SELECT list of a table: its columns, integers as bigint.
fn select_list(t: &Table) -> String {
    t.cols
        .iter()
        .map(|(n, k)| match k {
            Int => format!("{n}::bigint"),
            _ => n.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One value of a row as SQLite's digest sees it: (tag, bytes).
fn cell(r: &postgres::Row, i: usize, kind: Col) -> (u8, Vec<u8>) {
    let some = |tag: u8, v: Option<Vec<u8>>| match v {
        Some(v) => (tag, v),
        None => (0, Vec::new()),
    };
    match kind {
        Int => some(
            1,
            r.get::<_, Option<i64>>(i).map(|v| v.to_be_bytes().to_vec()),
        ),
        Text => some(
            3,
            r.get::<_, Option<&str>>(i).map(|s| s.as_bytes().to_vec()),
        ),
        TextBytes => some(3, r.get::<_, Option<&[u8]>>(i).map(<[u8]>::to_vec)),
        Blob => some(4, r.get::<_, Option<&[u8]>>(i).map(<[u8]>::to_vec)),
    }
}

/// Digests every view table of `tables`, streaming each in primary-key order.
fn digest(c: &mut Conn, tables: Tables) -> Result<Vec<TableDigest>> {
    let mut out = Vec::new();
    for t in TABLES {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            select_list(t),
            tables.t(t.name),
            t.key
        );
        let stmt = c.prep(&sql)?;
        let mut rows = c
            .client
            .query_raw(&stmt, std::iter::empty::<&dyn ToSql>())?;
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            n += 1;
            for (i, (_, kind)) in t.cols.iter().enumerate() {
                let (tag, bytes) = cell(&r, i, *kind);
                hasher.update([tag]);
                hasher.update((bytes.len() as u64).to_be_bytes());
                hasher.update(&bytes);
            }
        }
        out.push(TableDigest {
            table: t.name.to_string(),
            rows: n,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    Ok(out)
}

/// Rows present in a view table of `a` but not of `b`, up to `limit` per table, as text.
fn rows_missing(c: &mut Conn, a: Tables, bb: Tables, limit: i64) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for t in TABLES {
        let cols = select_list(t);
        let sql = format!(
            "SELECT {cols} FROM {} EXCEPT SELECT {cols} FROM {} LIMIT {limit}",
            a.t(t.name),
            bb.t(t.name)
        );
        for r in c.query(&sql, &[])? {
            let cells: Vec<String> = t
                .cols
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| match cell(&r, i, *kind) {
                    (0, _) => "null".to_string(),
                    (1, v) => {
                        let mut be = [0u8; 8];
                        be.copy_from_slice(&v);
                        i64::from_be_bytes(be).to_string()
                    }
                    (3, v) => String::from_utf8_lossy(&v).into_owned(),
                    (_, v) => hex::encode(v),
                })
                .collect();
            out.push((t.name.to_string(), cells.join(" ")));
        }
    }
    Ok(out)
}

fn key(bytes: &[u8]) -> Result<PublicKey> {
    key_col(bytes, "view")
}
fn hash(bytes: &[u8]) -> Result<Hash> {
    hash_col(bytes, "view")
}

const NOT_BLOCKED: &str = "NOT IN (SELECT author FROM blocked_authors)";

fn timeline(
    c: &mut Conn,
    author: Option<&PublicKey>,
    before: Option<Cursor>,
    limit: usize,
) -> Result<Vec<TimelineItem>> {
    let (cts, chash) = match before {
        Some(cur) => (
            cur.ts.min(i64::MAX as u64) as i64,
            cur.hash.as_bytes().to_vec(),
        ),
        None => (i64::MAX, vec![0xff; 33]),
    };
    let limit = limit.min(i64::MAX as usize) as i64;
    // Two statements rather than `($4 IS NULL OR author = $4)`: each gets the plan that
    // suits it (the author's index, or the timeline's key order).
    let only = if author.is_some() {
        "AND t.author = $4"
    } else {
        ""
    };
    let sql = format!(
        "SELECT t.hash, t.author, t.seq, t.ts, t.kind, t.target,
            (SELECT count(*) FROM v_likes l WHERE l.target = t.hash AND l.author {NOT_BLOCKED}),
            (SELECT count(*) FROM v_replies r WHERE r.target = t.hash AND r.author {NOT_BLOCKED})
         FROM v_timeline t
         WHERE (t.ts, t.hash) < ($1, $2)
           AND t.author IN (SELECT author FROM follows)
           AND t.author {NOT_BLOCKED}
           {only}
         ORDER BY t.ts DESC, t.hash DESC LIMIT $3"
    );
    let rows = match author {
        Some(a) => c.query(&sql, &[&cts, &chash, &limit, &b(a)])?,
        None => c.query(&sql, &[&cts, &chash, &limit])?,
    };
    rows.into_iter()
        .map(|r| {
            Ok(TimelineItem {
                hash: hash(r.get(0))?,
                author: key(r.get(1))?,
                seq: u64_col(r.get(2)),
                ts: u64_col(r.get(3)),
                kind: r.get(4),
                target: r.get::<_, Option<&[u8]>>(5).map(hash).transpose()?,
                likes: u64_col(r.get(6)),
                replies: u64_col(r.get(7)),
            })
        })
        .collect()
}

fn thread(c: &mut Conn, root: &Hash) -> Result<Vec<Reply>> {
    let sql = format!(
        "WITH RECURSIVE t(hash, depth) AS (
            SELECT $1::bytea, 0
            UNION
            SELECT r.hash, t.depth + 1 FROM v_replies r JOIN t ON r.target = t.hash
            WHERE t.depth < 256 AND r.author {NOT_BLOCKED}
         )
         SELECT r.hash, r.target, r.author, r.ts, t.depth FROM t JOIN v_replies r ON r.hash = t.hash
         WHERE t.depth > 0 ORDER BY r.ts, r.hash, t.depth"
    );
    c.query(&sql, &[&h(root)])?
        .into_iter()
        .map(|r| {
            Ok(Reply {
                hash: hash(r.get(0))?,
                target: hash(r.get(1))?,
                author: key(r.get(2))?,
                ts: u64_col(r.get(3)),
                depth: r.get::<_, i32>(4).max(0) as u32,
            })
        })
        .collect()
}

impl ViewStore for PgStore {
    fn rebuild_views(&mut self) -> StoreResult<u64> {
        self.write(Retry::Conflicts, |c| {
            // No log writer runs meanwhile: each holds this row FOR SHARE.
            c.query("SELECT id FROM store_lock WHERE id = 1 FOR UPDATE", &[])?;
            Ok(End::Commit(replay(c, LIVE)?))
        })
    }

    fn check_views(&mut self) -> StoreResult<ViewCheck> {
        let checked = self.write(Retry::Conflicts, |c| {
            // One snapshot for the log, the live views and the rebuild.
            c.client
                .batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
            for t in TABLES {
                c.client.batch_execute(&format!(
                    "CREATE TEMP TABLE check_{0} (LIKE {0} INCLUDING ALL) ON COMMIT DROP",
                    t.name
                ))?;
            }
            replay(c, CHECK)?;
            let mut differences = Vec::new();
            for (side, a, bb) in [("live", LIVE, CHECK), ("rebuilt", CHECK, LIVE)] {
                for (table, row) in rows_missing(c, a, bb, 20)? {
                    differences.push((table, side.to_string(), row));
                }
            }
            let check = ViewCheck {
                live: digest(c, LIVE)?,
                rebuilt: digest(c, CHECK)?,
                differences,
            };
            // Nothing to keep: the rollback drops the temporary tables.
            Ok(End::Rollback(check))
        });
        // Statements on the dropped temporary tables are of no further use.
        self.borrow()?.forget("pg_temp.check_");
        checked
    }

    fn view_digests(&self) -> StoreResult<Vec<TableDigest>> {
        self.write(Retry::Conflicts, |c| {
            // Every table from one snapshot.
            c.client
                .batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
            Ok(End::Rollback(digest(c, LIVE)?))
        })
    }

    fn follow(&mut self, author: &PublicKey) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "INSERT INTO follows (author) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&b(author)],
            )? == 1)
        })
    }

    fn unfollow(&mut self, author: &PublicKey) -> StoreResult<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM follows WHERE author = $1", &[&b(author)])? == 1))
    }

    fn follows(&self) -> StoreResult<Vec<PublicKey>> {
        self.with(|c| {
            c.query("SELECT author FROM follows ORDER BY author", &[])?
                .into_iter()
                .map(|r| key_col(r.get(0), "follows.author"))
                .collect()
        })
    }

    fn timeline(
        &self,
        author: Option<&PublicKey>,
        before: Option<Cursor>,
        limit: usize,
    ) -> StoreResult<Vec<TimelineItem>> {
        self.with(|c| timeline(c, author, before, limit))
    }

    fn thread(&self, root: &Hash) -> StoreResult<Vec<Reply>> {
        self.with(|c| thread(c, root))
    }

    fn likers(&self, target: &Hash) -> StoreResult<Vec<PublicKey>> {
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT author FROM v_likes WHERE target = $1 AND author {NOT_BLOCKED} ORDER BY author"
                ),
                &[&h(target)],
            )?
            .into_iter()
            .map(|r| key(r.get(0)))
            .collect()
        })
    }

    fn reshares(&self, target: &Hash) -> StoreResult<Vec<Reshare>> {
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT hash, author, ts FROM v_timeline WHERE target = $1 AND kind = 'RESHARE'
                     AND author {NOT_BLOCKED} ORDER BY ts, hash"
                ),
                &[&h(target)],
            )?
            .into_iter()
            .map(|r| {
                Ok(Reshare {
                    hash: hash(r.get(0))?,
                    author: key(r.get(1))?,
                    ts: u64_col(r.get(2)),
                })
            })
            .collect()
        })
    }

    fn starred(&self, author: &PublicKey) -> StoreResult<Vec<Hash>> {
        self.with(|c| {
            c.query(
                "SELECT target FROM v_stars WHERE author = $1 AND starred = 1 ORDER BY seq DESC, target",
                &[&b(author)],
            )?
            .into_iter()
            .map(|r| hash(r.get(0)))
            .collect()
        })
    }

    fn circles(&self, owner: &PublicKey) -> StoreResult<Vec<Circle>> {
        self.with(|c| {
            let list = c.query(
                "SELECT id, name FROM v_circles WHERE owner = $1 ORDER BY name",
                &[&b(owner)],
            )?;
            list.into_iter()
                .map(|r| {
                    let id: &[u8] = r.get(0);
                    let members = c
                        .query(
                            "SELECT member FROM v_circle_members WHERE owner = $1 AND id = $2 ORDER BY member",
                            &[&b(owner), &id],
                        )?
                        .into_iter()
                        .map(|m| key(m.get(0)))
                        .collect::<Result<_>>()?;
                    Ok(Circle {
                        name: text_col(r.get(1), "v_circles.name")?,
                        id: hash(id)?,
                        members,
                    })
                })
                .collect()
        })
    }

    fn tag_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT tag, count(DISTINCT target) FROM v_tags WHERE author {NOT_BLOCKED}
                     GROUP BY tag ORDER BY tag"
                ),
                &[],
            )?
            .into_iter()
            .map(|r| Ok((text_col(r.get(0), "v_tags.tag")?, u64_col(r.get(1)))))
            .collect()
        })
    }

    fn tagged(&self, tag: &str) -> StoreResult<Vec<Hash>> {
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT DISTINCT target FROM v_tags WHERE tag = $1 AND author {NOT_BLOCKED} ORDER BY target"
                ),
                &[&tag.as_bytes()],
            )?
            .into_iter()
            .map(|r| hash(r.get(0)))
            .collect()
        })
    }

    fn tags_of(&self, target: &Hash) -> StoreResult<Vec<String>> {
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT DISTINCT tag FROM v_tags WHERE target = $1 AND author {NOT_BLOCKED} ORDER BY tag"
                ),
                &[&h(target)],
            )?
            .into_iter()
            .map(|r| text_col(r.get(0), "v_tags.tag"))
            .collect()
        })
    }

    fn profile(&self, author: &PublicKey) -> StoreResult<Option<Profile>> {
        self.with(|c| {
            c.query_opt(
                "SELECT author, seq, name, about FROM v_profiles WHERE author = $1",
                &[&b(author)],
            )?
            .map(|r| {
                let p = profile_row(&r)?;
                Ok(Profile {
                    author: p.author,
                    seq: p.seq,
                    name: p.name,
                    about: p.about,
                })
            })
            .transpose()
        })
    }

    fn skipped(&self) -> StoreResult<Vec<Skipped>> {
        self.with(|c| {
            c.query(
                "SELECT hash, author, seq, type, reason, detail FROM v_skipped ORDER BY author, seq, hash",
                &[],
            )?
            .into_iter()
            .map(|r| {
                Ok(Skipped {
                    hash: hash(r.get(0))?,
                    author: key(r.get(1))?,
                    seq: u64_col(r.get(2)),
                    kind: r.get(3),
                    reason: r.get(4),
                    detail: text_col(r.get(5), "v_skipped.detail")?,
                })
            })
            .collect()
        })
    }
}
