//! Materialized views in SQLite: their tables, applying the core's [`Effect`]s inside the
//! transaction that stored the event, rebuilding them from the log, comparing a rebuild with
//! the live tables, and the queries the CLI reads.
//!
//! View tables are `WITHOUT ROWID` with primary keys made only of event data (hashes, keys,
//! seqs, timestamps), never of arrival order, so the same log gives the same rows in the same
//! key order however it arrived. [`digest`] hashes those rows; equal digests mean identical
//! tables. Authors blocked on this instance are hidden at query time, so blocking never changes
//! the tables themselves and a rebuild still matches.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};

use rhizome_core::views::{effects, CircleOp, Effect, Skip};
use rhizome_core::{Event, Hash, PublicKey};

use crate::{Result, StoreError};

/// The view tables: name, DDL (with `{s}` for the schema), primary-key order for digests.
const TABLES: &[(&str, &str, &str)] = &[
    (
        "v_timeline",
        "CREATE TABLE {s}.v_timeline (ts INTEGER NOT NULL, hash BLOB NOT NULL, author BLOB NOT NULL,
            seq INTEGER NOT NULL, kind TEXT NOT NULL, target BLOB, PRIMARY KEY (ts, hash)) WITHOUT ROWID;
         CREATE INDEX {s}.v_timeline_author ON v_timeline (author, ts, hash);",
        "ts, hash",
    ),
    (
        "v_replies",
        "CREATE TABLE {s}.v_replies (target BLOB NOT NULL, hash BLOB NOT NULL, author BLOB NOT NULL,
            seq INTEGER NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (target, hash)) WITHOUT ROWID;",
        "target, hash",
    ),
    (
        "v_likes",
        "CREATE TABLE {s}.v_likes (target BLOB NOT NULL, author BLOB NOT NULL,
            PRIMARY KEY (target, author)) WITHOUT ROWID;",
        "target, author",
    ),
    (
        "v_stars",
        "CREATE TABLE {s}.v_stars (author BLOB NOT NULL, target BLOB NOT NULL, seq INTEGER NOT NULL,
            starred INTEGER NOT NULL, PRIMARY KEY (author, target)) WITHOUT ROWID;",
        "author, target",
    ),
    (
        "v_circles",
        "CREATE TABLE {s}.v_circles (owner BLOB NOT NULL, id BLOB NOT NULL, name TEXT NOT NULL,
            PRIMARY KEY (owner, id)) WITHOUT ROWID;
         CREATE UNIQUE INDEX {s}.v_circles_name ON v_circles (owner, name);",
        "owner, id",
    ),
    (
        "v_circle_members",
        "CREATE TABLE {s}.v_circle_members (owner BLOB NOT NULL, id BLOB NOT NULL, member BLOB NOT NULL,
            PRIMARY KEY (owner, id, member)) WITHOUT ROWID;",
        "owner, id, member",
    ),
    (
        "v_tags",
        "CREATE TABLE {s}.v_tags (tag TEXT NOT NULL, target BLOB NOT NULL, author BLOB NOT NULL,
            PRIMARY KEY (tag, target, author)) WITHOUT ROWID;
         CREATE INDEX {s}.v_tags_target ON v_tags (target);",
        "tag, target, author",
    ),
    (
        "v_profiles",
        "CREATE TABLE {s}.v_profiles (author BLOB NOT NULL PRIMARY KEY, seq INTEGER NOT NULL,
            name TEXT NOT NULL, about TEXT) WITHOUT ROWID;",
        "author",
    ),
    (
        "v_skipped",
        "CREATE TABLE {s}.v_skipped (hash BLOB NOT NULL PRIMARY KEY, author BLOB NOT NULL,
            seq INTEGER NOT NULL, type TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL) WITHOUT ROWID;",
        "hash",
    ),
];

/// Names of the view tables.
pub(crate) fn table_names() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|(name, _, _)| *name)
}

/// DDL creating one view table in `schema` (for a migration that adds it).
pub(crate) fn ddl_of(table: &str, schema: &str) -> String {
    TABLES
        .iter()
        .filter(|(name, _, _)| *name == table)
        .map(|(_, sql, _)| sql.replace("{s}", schema))
        .collect()
}

/// DDL creating every view table in `schema` except those named in `later` (the tables a later
/// migration creates, for the migration that created the first views).
pub(crate) fn ddl_without(schema: &str, later: &[&str]) -> String {
    TABLES
        .iter()
        .filter(|(name, _, _)| !later.contains(name))
        .map(|(_, sql, _)| sql.replace("{s}", schema))
        .collect::<Vec<_>>()
        .join("\n")
}

/// DDL creating every view table in `schema` ("main" or "temp").
pub(crate) fn ddl(schema: &str) -> String {
    TABLES
        .iter()
        .map(|(_, sql, _)| sql.replace("{s}", schema))
        .collect::<Vec<_>>()
        .join("\n")
}

fn b(k: &PublicKey) -> &[u8] {
    &k.as_bytes()[..]
}
fn h(x: &Hash) -> &[u8] {
    &x.as_bytes()[..]
}

/// Applies the view effects of one stored event, in schema `s`.
/// Drops the record that an event was skipped (its payload was withheld and has now arrived).
pub(crate) fn forget_skip(tx: &Transaction<'_>, s: &str, hash: &Hash) -> Result<()> {
    tx.prepare_cached(&format!("DELETE FROM {s}.v_skipped WHERE hash = ?1"))?
        .execute([h(hash)])?;
    Ok(())
}

pub(crate) fn apply(tx: &Transaction<'_>, s: &str, ev: &Event) -> Result<()> {
    let hd = &ev.header;
    let (author, seq, ts) = (
        b(&hd.author),
        hd.seq.get() as i64,
        hd.timestamp.get() as i64,
    );
    for effect in effects(ev) {
        let skip = match effect {
            Effect::Timeline { target } => {
                tx.prepare_cached(&format!(
                    "INSERT OR IGNORE INTO {s}.v_timeline (ts, hash, author, seq, kind, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ))?
                .execute(params![ts, h(&ev.hash), author, seq, hd.kind.as_str(), target.as_ref().map(h)])?;
                None
            }
            Effect::Reply { target } => {
                tx.prepare_cached(&format!(
                    "INSERT OR IGNORE INTO {s}.v_replies (target, hash, author, seq, ts) VALUES (?1, ?2, ?3, ?4, ?5)"
                ))?
                .execute(params![h(&target), h(&ev.hash), author, seq, ts])?;
                None
            }
            Effect::Like { target } => {
                tx.prepare_cached(&format!(
                    "INSERT OR IGNORE INTO {s}.v_likes (target, author) VALUES (?1, ?2)"
                ))?
                .execute(params![h(&target), author])?;
                None
            }
            Effect::Star { target, starred } => {
                // Last by seq wins, whatever order the events were applied in.
                tx.prepare_cached(&format!(
                    "INSERT INTO {s}.v_stars (author, target, seq, starred) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (author, target) DO UPDATE SET seq = excluded.seq, starred = excluded.starred
                     WHERE excluded.seq > v_stars.seq"
                ))?
                .execute(params![author, h(&target), seq, starred])?;
                None
            }
            Effect::Tag { target, tag } => {
                tx.prepare_cached(&format!(
                    "INSERT OR IGNORE INTO {s}.v_tags (tag, target, author) VALUES (?1, ?2, ?3)"
                ))?
                .execute(params![tag, h(&target), author])?;
                None
            }
            Effect::Circle(op) => apply_circle(tx, s, &hd.author, &ev.hash, op)?,
            Effect::Profile { name, about } => {
                // Last by seq wins, whatever order the events (or late payloads) came in.
                tx.prepare_cached(&format!(
                    "INSERT INTO {s}.v_profiles (author, seq, name, about) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (author) DO UPDATE SET seq = excluded.seq, name = excluded.name, about = excluded.about
                     WHERE excluded.seq > v_profiles.seq"
                ))?
                .execute(params![author, seq, name, about])?;
                None
            }
            Effect::Skip(skip) => Some(skip),
        };
        if let Some(skip) = skip {
            tx.prepare_cached(&format!(
                "INSERT OR IGNORE INTO {s}.v_skipped (hash, author, seq, type, reason, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![h(&ev.hash), author, seq, hd.kind.as_str(), skip.code(), skip.detail()])?;
        }
    }
    Ok(())
}

fn apply_circle(
    tx: &Transaction<'_>,
    s: &str,
    owner: &PublicKey,
    hash: &Hash,
    op: CircleOp,
) -> Result<Option<Skip>> {
    let find = |name: &str| -> Result<Option<Vec<u8>>> {
        Ok(tx
            .prepare_cached(&format!(
                "SELECT id FROM {s}.v_circles WHERE owner = ?1 AND name = ?2"
            ))?
            .query_row(params![b(owner), name], |r| r.get(0))
            .optional()?)
    };
    let add = |id: &[u8], members: &[PublicKey]| -> Result<()> {
        let mut stmt = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {s}.v_circle_members (owner, id, member) VALUES (?1, ?2, ?3)"
        ))?;
        for m in members {
            stmt.execute(params![b(owner), id, b(m)])?;
        }
        Ok(())
    };
    let missing = |name: &str| Ok(Some(Skip::Circle(format!("no circle named {name:?}"))));
    match op {
        CircleOp::Create { circle, members } => {
            if find(&circle)?.is_some() {
                return Ok(Some(Skip::Circle(format!(
                    "circle {circle:?} already exists"
                ))));
            }
            tx.prepare_cached(&format!(
                "INSERT INTO {s}.v_circles (owner, id, name) VALUES (?1, ?2, ?3)"
            ))?
            .execute(params![b(owner), h(hash), circle])?;
            add(h(hash), &members)?;
        }
        CircleOp::Add { circle, members } => match find(&circle)? {
            Some(id) => add(&id, &members)?,
            None => return missing(&circle),
        },
        CircleOp::Remove { circle, members } => match find(&circle)? {
            Some(id) => {
                let mut stmt = tx.prepare_cached(&format!(
                    "DELETE FROM {s}.v_circle_members WHERE owner = ?1 AND id = ?2 AND member = ?3"
                ))?;
                for m in &members {
                    stmt.execute(params![b(owner), id, b(m)])?;
                }
            }
            None => return missing(&circle),
        },
        CircleOp::Rename { circle, new_name } => {
            let Some(id) = find(&circle)? else {
                return missing(&circle);
            };
            if find(&new_name)?.is_some() {
                return Ok(Some(Skip::Circle(format!(
                    "circle {new_name:?} already exists"
                ))));
            }
            tx.prepare_cached(&format!(
                "UPDATE {s}.v_circles SET name = ?1 WHERE owner = ?2 AND id = ?3"
            ))?
            .execute(params![new_name, b(owner), id])?;
        }
    }
    Ok(None)
}

/// Empties the view tables of schema `s`.
pub(crate) fn clear(tx: &Transaction<'_>, s: &str) -> Result<()> {
    for (name, _, _) in TABLES {
        tx.execute(&format!("DELETE FROM {s}.{name}"), [])?;
    }
    Ok(())
}

/// Digest of one view table: row count and SHA-256 over its rows in primary-key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDigest {
    /// Table name.
    pub table: String,
    /// Rows.
    pub rows: u64,
    /// SHA-256 of the rows, each column length-prefixed.
    pub sha256: String,
}

/// Digests every view table of schema `s`.
pub(crate) fn digest(conn: &rusqlite::Connection, s: &str) -> Result<Vec<TableDigest>> {
    let mut out = Vec::new();
    for (name, _, order) in TABLES {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {s}.{name} ORDER BY {order}"))?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            n += 1;
            for i in 0..cols {
                use rusqlite::types::ValueRef;
                let (tag, bytes): (u8, Vec<u8>) = match r.get_ref(i)? {
                    ValueRef::Null => (0, vec![]),
                    ValueRef::Integer(v) => (1, v.to_be_bytes().to_vec()),
                    ValueRef::Real(v) => (2, v.to_be_bytes().to_vec()),
                    ValueRef::Text(t) => (3, t.to_vec()),
                    ValueRef::Blob(bl) => (4, bl.to_vec()),
                };
                hasher.update([tag]);
                hasher.update((bytes.len() as u64).to_be_bytes());
                hasher.update(&bytes);
            }
        }
        out.push(TableDigest {
            table: name.to_string(),
            rows: n,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    Ok(out)
}

/// Rows present in one view table of `a` but not `b` (schemas), up to `limit`, as text.
pub(crate) fn rows_missing(
    conn: &rusqlite::Connection,
    a: &str,
    bb: &str,
    limit: usize,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (name, _, _) in TABLES {
        let mut stmt = conn.prepare(&format!(
            "SELECT * FROM {a}.{name} EXCEPT SELECT * FROM {bb}.{name} LIMIT {limit}"
        ))?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let mut cells = Vec::new();
            for i in 0..cols {
                use rusqlite::types::ValueRef;
                cells.push(match r.get_ref(i)? {
                    ValueRef::Null => "null".to_string(),
                    ValueRef::Integer(v) => v.to_string(),
                    ValueRef::Real(v) => v.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(bl) => hex::encode(bl),
                });
            }
            out.push((name.to_string(), cells.join(" ")));
        }
    }
    Ok(out)
}

fn key(bytes: Vec<u8>) -> Result<PublicKey> {
    crate::sqlite::key_col(&bytes, "view")
}
fn hash(bytes: Vec<u8>) -> Result<Hash> {
    Hash::try_from(&bytes[..]).map_err(|e| StoreError::BadRow {
        location: "view".into(),
        detail: e.to_string(),
    })
}

/// A position in the timeline: strictly before (timestamp, hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Timestamp of the last item seen.
    pub ts: u64,
    /// Hash of the last item seen.
    pub hash: Hash,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ts, self.hash)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad =
            || format!("malformed cursor {s:?}: expected TIMESTAMP-HASH as printed by `feed`");
        let (ts, hsh) = s.split_once('-').ok_or_else(bad)?;
        let ts: u64 = ts.parse().map_err(|_| bad())?;
        if ts > rhizome_core::ids::MAX_SAFE_INTEGER {
            return Err(bad());
        }
        Ok(Cursor {
            ts,
            hash: hsh.parse().map_err(|_| bad())?,
        })
    }
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineItem {
    /// Event hash.
    pub hash: Hash,
    /// Author key.
    pub author: PublicKey,
    /// Seq in the author's feed.
    pub seq: u64,
    /// Author's timestamp, ms.
    #[serde(rename = "timestamp")]
    pub ts: u64,
    /// POST or RESHARE.
    #[serde(rename = "type")]
    pub kind: String,
    /// Reshared event, for reshares.
    pub target: Option<Hash>,
    /// Number of distinct authors who liked it.
    pub likes: u64,
    /// Number of direct replies.
    pub replies: u64,
}

/// One reply in a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    /// Reply event hash.
    pub hash: Hash,
    /// What it replies to.
    pub target: Hash,
    /// Author.
    pub author: PublicKey,
    /// Author's timestamp.
    #[serde(rename = "timestamp")]
    pub ts: u64,
    /// Depth below the root (1 = direct reply).
    pub depth: u32,
}

/// A circle and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Circle {
    /// Current name.
    pub name: String,
    /// Hash of the event that created it.
    pub id: Hash,
    /// Members, by key.
    pub members: Vec<PublicKey>,
}

pub(crate) fn timeline(
    conn: &rusqlite::Connection,
    author: Option<&PublicKey>,
    before: Option<Cursor>,
    limit: usize,
) -> Result<Vec<TimelineItem>> {
    let (cts, chash) = match before {
        Some(c) => (c.ts as i64, c.hash.as_bytes().to_vec()),
        None => (i64::MAX, vec![0xff; 33]),
    };
    let sql = "SELECT t.hash, t.author, t.seq, t.ts, t.kind, t.target,
            (SELECT count(*) FROM v_likes l WHERE l.target = t.hash AND l.author NOT IN (SELECT author FROM blocked_authors)),
            (SELECT count(*) FROM v_replies r WHERE r.target = t.hash AND r.author NOT IN (SELECT author FROM blocked_authors))
         FROM v_timeline t
         WHERE (t.ts, t.hash) < (?1, ?2)
           AND t.author IN (SELECT author FROM follows)
           AND t.author NOT IN (SELECT author FROM blocked_authors)
           AND (?3 IS NULL OR t.author = ?3)
         ORDER BY t.ts DESC, t.hash DESC LIMIT ?4";
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(params![cts, chash, author.map(b), limit as i64], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<Vec<u8>>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(hs, a, seq, ts, kind, target, likes, replies)| {
            Ok(TimelineItem {
                hash: hash(hs)?,
                author: key(a)?,
                seq: seq as u64,
                ts: ts as u64,
                kind,
                target: target.map(hash).transpose()?,
                likes: likes as u64,
                replies: replies as u64,
            })
        })
        .collect()
}

pub(crate) fn thread(conn: &rusqlite::Connection, root: &Hash) -> Result<Vec<Reply>> {
    let sql = "WITH RECURSIVE t(hash, depth) AS (
            SELECT ?1, 0
            UNION
            SELECT r.hash, t.depth + 1 FROM v_replies r JOIN t ON r.target = t.hash
            WHERE t.depth < 256 AND r.author NOT IN (SELECT author FROM blocked_authors)
         )
         SELECT r.hash, r.target, r.author, r.ts, t.depth FROM t JOIN v_replies r ON r.hash = t.hash
         WHERE t.depth > 0 ORDER BY r.ts, r.hash";
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map([h(root)], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(hs, t, a, ts, d)| {
            Ok(Reply {
                hash: hash(hs)?,
                target: hash(t)?,
                author: key(a)?,
                ts: ts as u64,
                depth: d as u32,
            })
        })
        .collect()
}

pub(crate) fn likers(conn: &rusqlite::Connection, target: &Hash) -> Result<Vec<PublicKey>> {
    let mut stmt =
        conn.prepare_cached("SELECT author FROM v_likes WHERE target = ?1 AND author NOT IN (SELECT author FROM blocked_authors) ORDER BY author")?;
    let rows = stmt
        .query_map([h(target)], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(key).collect()
}

pub(crate) fn starred(conn: &rusqlite::Connection, author: &PublicKey) -> Result<Vec<Hash>> {
    let mut stmt = conn.prepare_cached(
        "SELECT target FROM v_stars WHERE author = ?1 AND starred = 1 ORDER BY seq DESC",
    )?;
    let rows = stmt
        .query_map([b(author)], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(hash).collect()
}

pub(crate) fn circles(conn: &rusqlite::Connection, owner: &PublicKey) -> Result<Vec<Circle>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, name FROM v_circles WHERE owner = ?1 ORDER BY name")?;
    let list = stmt
        .query_map([b(owner)], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut members = conn.prepare_cached(
        "SELECT member FROM v_circle_members WHERE owner = ?1 AND id = ?2 ORDER BY member",
    )?;
    list.into_iter()
        .map(|(id, name)| {
            let ms = members
                .query_map(params![b(owner), id], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Circle {
                name,
                id: hash(id)?,
                members: ms.into_iter().map(key).collect::<Result<_>>()?,
            })
        })
        .collect()
}

/// Tag names with how many events carry each.
pub(crate) fn tag_counts(conn: &rusqlite::Connection) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT tag, count(DISTINCT target) FROM v_tags WHERE author NOT IN (SELECT author FROM blocked_authors) GROUP BY tag ORDER BY tag",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn tagged(conn: &rusqlite::Connection, tag: &str) -> Result<Vec<Hash>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT target FROM v_tags WHERE tag = ?1 AND author NOT IN (SELECT author FROM blocked_authors) ORDER BY target")?;
    let rows = stmt
        .query_map([tag], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(hash).collect()
}

pub(crate) fn tags_of(conn: &rusqlite::Connection, target: &Hash) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT tag FROM v_tags WHERE target = ?1 AND author NOT IN (SELECT author FROM blocked_authors) ORDER BY tag")?;
    let rows = stmt
        .query_map([h(target)], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// An author's latest profile (PROTOCOL 5, `PROFILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The author.
    pub author: PublicKey,
    /// Seq of the PROFILE event shown.
    pub seq: u64,
    /// The name the author goes by (not unique).
    pub name: String,
    /// A few words about the author.
    pub about: Option<String>,
}

pub(crate) fn profile(conn: &rusqlite::Connection, author: &PublicKey) -> Result<Option<Profile>> {
    let row = conn
        .prepare_cached("SELECT seq, name, about FROM v_profiles WHERE author = ?1")?
        .query_row([b(author)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()?;
    Ok(row.map(|(seq, name, about)| Profile {
        author: *author,
        seq: seq as u64,
        name,
        about,
    }))
}

/// An event the views skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Event hash.
    pub hash: Hash,
    /// Author.
    pub author: PublicKey,
    /// Seq.
    pub seq: u64,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Reason code: unknown_type, schema, withheld, circle.
    pub reason: String,
    /// Detail.
    pub detail: String,
}

pub(crate) fn skipped(conn: &rusqlite::Connection) -> Result<Vec<Skipped>> {
    let mut stmt = conn.prepare_cached(
        "SELECT hash, author, seq, type, reason, detail FROM v_skipped ORDER BY author, seq",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(hs, a, seq, kind, reason, detail)| {
            Ok(Skipped {
                hash: hash(hs)?,
                author: key(a)?,
                seq: seq as u64,
                kind,
                reason,
                detail,
            })
        })
        .collect()
}
