//! Materialized views in SQLite ([`ViewStore`]): their tables, the rows the core's merge rules
//! read and write inside the transaction that stored the event, rebuilding them from the log,
//! comparing a rebuild with the live tables, and the queries front-ends read.
//!
//! View tables are `WITHOUT ROWID` with primary keys made only of event data (hashes, keys,
//! seqs, timestamps), never of arrival order, so the same log gives the same rows in the same
//! key order however it arrived. [`digest`] hashes those rows; equal digests mean identical
//! tables. Authors blocked on this instance are hidden at query time, so blocking never changes
//! the tables themselves and a rebuild still matches.

use rusqlite::{params, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};

use rhizome_core::views::{
    self as rhizome_views, ProfileRow, ReplyRow, SkipRow, StarRow, TimelineRow, ViewRows,
};
use rhizome_core::{Event, Hash, PublicKey};
use rhizome_store::{
    Circle, Cursor, Profile, Reply, Reshare, Result as StoreResult, Skipped, TableDigest,
    TimelineItem, ViewCheck, ViewStore,
};

use crate::{key_col, run, Error, Result, SqliteStore};

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

/// The view rows of schema `s` ("main", or "temp" for `views check`) inside a transaction:
/// the plain keyed reads and writes the core's merge rules (`rhizome_core::views::apply`) ask for.
struct Rows<'a, 't> {
    tx: &'a Transaction<'t>,
    s: &'a str,
}

impl ViewRows for Rows<'_, '_> {
    type Error = Error;

    fn insert_timeline(&mut self, r: &TimelineRow) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO {s}.v_timeline (ts, hash, author, seq, kind, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![r.ts as i64, h(&r.hash), b(&r.author), r.seq as i64, r.kind, r.target.as_ref().map(h)])?;
        Ok(())
    }

    fn insert_reply(&mut self, r: &ReplyRow) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO {s}.v_replies (target, hash, author, seq, ts) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))?
            .execute(params![h(&r.target), h(&r.hash), b(&r.author), r.seq as i64, r.ts as i64])?;
        Ok(())
    }

    fn insert_like(&mut self, target: &Hash, author: &PublicKey) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO {s}.v_likes (target, author) VALUES (?1, ?2)"
            ))?
            .execute(params![h(target), b(author)])?;
        Ok(())
    }

    fn insert_tag(&mut self, tag: &str, target: &Hash, author: &PublicKey) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO {s}.v_tags (tag, target, author) VALUES (?1, ?2, ?3)"
            ))?
            .execute(params![tag, h(target), b(author)])?;
        Ok(())
    }

    fn star(&mut self, author: &PublicKey, target: &Hash) -> Result<Option<StarRow>> {
        let s = self.s;
        Ok(self
            .tx
            .prepare_cached(&format!(
                "SELECT seq, starred FROM {s}.v_stars WHERE author = ?1 AND target = ?2"
            ))?
            .query_row(params![b(author), h(target)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
            })
            .optional()?
            .map(|(seq, starred)| StarRow {
                author: *author,
                target: *target,
                seq: seq as u64,
                starred,
            }))
    }

    fn put_star(&mut self, r: &StarRow) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO {s}.v_stars (author, target, seq, starred) VALUES (?1, ?2, ?3, ?4)"
            ))?
            .execute(params![b(&r.author), h(&r.target), r.seq as i64, r.starred])?;
        Ok(())
    }

    fn circle_named(&mut self, owner: &PublicKey, name: &str) -> Result<Option<Hash>> {
        let s = self.s;
        let id: Option<Vec<u8>> = self
            .tx
            .prepare_cached(&format!(
                "SELECT id FROM {s}.v_circles WHERE owner = ?1 AND name = ?2"
            ))?
            .query_row(params![b(owner), name], |r| r.get(0))
            .optional()?;
        id.map(hash).transpose()
    }

    fn insert_circle(&mut self, owner: &PublicKey, id: &Hash, name: &str) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO {s}.v_circles (owner, id, name) VALUES (?1, ?2, ?3)"
            ))?
            .execute(params![b(owner), h(id), name])?;
        Ok(())
    }

    fn rename_circle(&mut self, owner: &PublicKey, id: &Hash, name: &str) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "UPDATE {s}.v_circles SET name = ?1 WHERE owner = ?2 AND id = ?3"
            ))?
            .execute(params![name, b(owner), h(id)])?;
        Ok(())
    }

    fn insert_member(&mut self, owner: &PublicKey, id: &Hash, member: &PublicKey) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO {s}.v_circle_members (owner, id, member) VALUES (?1, ?2, ?3)"
            ))?
            .execute(params![b(owner), h(id), b(member)])?;
        Ok(())
    }

    fn delete_member(&mut self, owner: &PublicKey, id: &Hash, member: &PublicKey) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "DELETE FROM {s}.v_circle_members WHERE owner = ?1 AND id = ?2 AND member = ?3"
            ))?
            .execute(params![b(owner), h(id), b(member)])?;
        Ok(())
    }

    fn profile_seq(&mut self, author: &PublicKey) -> Result<Option<u64>> {
        let s = self.s;
        Ok(self
            .tx
            .prepare_cached(&format!("SELECT seq FROM {s}.v_profiles WHERE author = ?1"))?
            .query_row([b(author)], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|seq| seq as u64))
    }

    fn put_profile(&mut self, r: &ProfileRow) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO {s}.v_profiles (author, seq, name, about) VALUES (?1, ?2, ?3, ?4)"
            ))?
            .execute(params![b(&r.author), r.seq as i64, r.name, r.about])?;
        Ok(())
    }

    fn insert_skip(&mut self, r: &SkipRow) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO {s}.v_skipped (hash, author, seq, type, reason, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![h(&r.hash), b(&r.author), r.seq as i64, r.kind, r.skip.code(), r.skip.detail()])?;
        Ok(())
    }

    fn delete_skip(&mut self, hash: &Hash) -> Result<()> {
        let s = self.s;
        self.tx
            .prepare_cached(&format!("DELETE FROM {s}.v_skipped WHERE hash = ?1"))?
            .execute([h(hash)])?;
        Ok(())
    }
}

/// Applies one stored event to the views of schema `s`, inside `tx`.
pub(crate) fn apply(tx: &Transaction<'_>, s: &str, ev: &Event) -> Result<()> {
    rhizome_views::apply(&mut Rows { tx, s }, ev)
}

/// Drops the record that an event was skipped (its withheld payload has now arrived).
pub(crate) fn forget_skip(tx: &Transaction<'_>, s: &str, hash: &Hash) -> Result<()> {
    Rows { tx, s }.delete_skip(hash)
}

/// Empties the view tables of schema `s`.
pub(crate) fn clear(tx: &Transaction<'_>, s: &str) -> Result<()> {
    for (name, _, _) in TABLES {
        tx.execute(&format!("DELETE FROM {s}.{name}"), [])?;
    }
    Ok(())
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
    key_col(&bytes, "view")
}
fn hash(bytes: Vec<u8>) -> Result<Hash> {
    crate::hash_col(&bytes, "view")
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

pub(crate) fn reshares(conn: &rusqlite::Connection, target: &Hash) -> Result<Vec<Reshare>> {
    // Served by the index v_timeline_target (migration 10), not a scan of the timeline.
    let mut stmt = conn.prepare_cached(
        "SELECT hash, author, ts FROM v_timeline WHERE target = ?1 AND kind = 'RESHARE'
         AND author NOT IN (SELECT author FROM blocked_authors) ORDER BY ts, hash",
    )?;
    let rows = stmt
        .query_map([h(target)], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(hs, a, ts)| {
            Ok(Reshare {
                hash: hash(hs)?,
                author: key(a)?,
                ts: ts as u64,
            })
        })
        .collect()
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

impl ViewStore for SqliteStore {
    fn rebuild_views(&mut self) -> StoreResult<u64> {
        run(|| {
            let tx = self.write_tx()?;
            let n = crate::log::replay_views(&tx, "main")?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn check_views(&mut self) -> StoreResult<ViewCheck> {
        run(|| {
            self.conn.execute_batch(&ddl("temp"))?;
            let result = (|| {
                let tx = self.conn.transaction()?;
                crate::log::replay_views(&tx, "temp")?;
                tx.commit()?;
                let mut differences = Vec::new();
                for (side, a, b) in [("live", "main", "temp"), ("rebuilt", "temp", "main")] {
                    for (table, row) in rows_missing(&self.conn, a, b, 20)? {
                        differences.push((table, side.to_string(), row));
                    }
                }
                Ok(ViewCheck {
                    live: digest(&self.conn, "main")?,
                    rebuilt: digest(&self.conn, "temp")?,
                    differences,
                })
            })();
            for t in table_names() {
                self.conn
                    .execute(&format!("DROP TABLE IF EXISTS temp.{t}"), [])?;
            }
            result
        })
    }

    fn view_digests(&self) -> StoreResult<Vec<TableDigest>> {
        run(|| digest(&self.conn, "main"))
    }

    fn follow(&mut self, author: &PublicKey) -> StoreResult<bool> {
        run(|| {
            let n = self
                .conn
                .execute(
                    "INSERT OR IGNORE INTO follows (author) VALUES (?1)",
                    [&author.as_bytes()[..]],
                )
                .map_err(|e| self.classify(e))?;
            Ok(n == 1)
        })
    }

    fn unfollow(&mut self, author: &PublicKey) -> StoreResult<bool> {
        run(|| {
            let n = self
                .conn
                .execute(
                    "DELETE FROM follows WHERE author = ?1",
                    [&author.as_bytes()[..]],
                )
                .map_err(|e| self.classify(e))?;
            Ok(n == 1)
        })
    }

    fn follows(&self) -> StoreResult<Vec<PublicKey>> {
        run(|| {
            let mut stmt = self
                .conn
                .prepare("SELECT author FROM follows ORDER BY author")?;
            let rows = stmt
                .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.iter().map(|k| key_col(k, "follows.author")).collect()
        })
    }

    fn timeline(
        &self,
        author: Option<&PublicKey>,
        before: Option<Cursor>,
        limit: usize,
    ) -> StoreResult<Vec<TimelineItem>> {
        run(|| timeline(&self.conn, author, before, limit))
    }

    fn thread(&self, root: &Hash) -> StoreResult<Vec<Reply>> {
        run(|| thread(&self.conn, root))
    }

    fn likers(&self, target: &Hash) -> StoreResult<Vec<PublicKey>> {
        run(|| likers(&self.conn, target))
    }

    fn reshares(&self, target: &Hash) -> StoreResult<Vec<Reshare>> {
        run(|| reshares(&self.conn, target))
    }

    fn starred(&self, author: &PublicKey) -> StoreResult<Vec<Hash>> {
        run(|| starred(&self.conn, author))
    }

    fn circles(&self, owner: &PublicKey) -> StoreResult<Vec<Circle>> {
        run(|| circles(&self.conn, owner))
    }

    fn tag_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        run(|| tag_counts(&self.conn))
    }

    fn tagged(&self, tag: &str) -> StoreResult<Vec<Hash>> {
        run(|| tagged(&self.conn, tag))
    }

    fn tags_of(&self, target: &Hash) -> StoreResult<Vec<String>> {
        run(|| tags_of(&self.conn, target))
    }

    fn profile(&self, author: &PublicKey) -> StoreResult<Option<Profile>> {
        run(|| profile(&self.conn, author))
    }

    fn skipped(&self) -> StoreResult<Vec<Skipped>> {
        run(|| skipped(&self.conn))
    }
}
