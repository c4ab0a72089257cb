//! The SQLite backend: one file per instance, WAL, versioned migrations applied on open.
//!
//! Layout (see ARCHITECTURE.md): authors are mapped to a small integer `feed_id`, and an
//! event's rowid is `(feed_id << 32) | seq`, so (author, seq) needs no second index and a feed
//! is one contiguous rowid range. The hash lookup uses an index on the first 8 bytes of the
//! hash (`h8`); the full hash is compared on a hit.

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rhizome_core::event::{EventType, Header, Payload};
use rhizome_core::ids::prefix_key;
use rhizome_core::privacy::Audience;
use rhizome_core::sealed::StoredSecret;
use rhizome_core::{
    Clock, Event, Hash, InstanceId, PublicKey, Seq, Signature, Timestamp, VerifiedEvent,
};

use crate::views::{self, Circle, Cursor, Profile, Reply, Skipped, TableDigest, TimelineItem};
use crate::{Identity, LocalAuthor, LogStats, Outcome, Result, Store, StoreError};

/// Each entry upgrades the schema by one version; `PRAGMA user_version` records how many ran.
/// A migration may also replay the log (`rebuild`), e.g. to fill new views.
fn migrations() -> Vec<(String, bool)> {
    vec![
        // 1: identity, local authors, feeds, events.
        (
            "CREATE TABLE instance (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL,
        public_key BLOB NOT NULL,
        secret TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE local_authors (
        name TEXT PRIMARY KEY,
        public_key BLOB NOT NULL UNIQUE,
        secret TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE feeds (
        feed_id INTEGER PRIMARY KEY,
        author BLOB NOT NULL UNIQUE,
        head_seq INTEGER NOT NULL DEFAULT 0,
        head_hash BLOB
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,          -- (feed_id << 32) | seq
        h8 INTEGER NOT NULL,             -- first 8 bytes of hash, order-preserving
        hash BLOB NOT NULL,
        prev BLOB,
        type TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        payload_hash BLOB NOT NULL,
        payload_size INTEGER NOT NULL,
        payload BLOB,                    -- canonical JSON; NULL when withheld
        sig BLOB NOT NULL
    );
    CREATE INDEX events_h8 ON events(h8);"
                .to_string(),
            false,
        ),
        // 2: views, and the follow set that decides the timeline (local authors followed).
        (
            format!(
                "CREATE TABLE follows (author BLOB PRIMARY KEY) WITHOUT ROWID;
                 INSERT INTO follows SELECT public_key FROM local_authors;
                 {}",
                // Views added later are created by their own migration (7: v_profiles).
                views::ddl_without("main", &["v_profiles"])
            ),
            true,
        ),
        // 3: ids of records imported by `rhizome migrate`, so a second run adds nothing.
        (
            "CREATE TABLE legacy_ids (legacy TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
                .to_string(),
            false,
        ),
        // 4: peers and their clocks; events waiting for their predecessors; fork evidence.
        (
            "CREATE TABLE peers (
                instance_id BLOB PRIMARY KEY,
                public_key BLOB NOT NULL,
                name TEXT NOT NULL,
                trust TEXT NOT NULL DEFAULT 'unknown',
                sent TEXT NOT NULL DEFAULT '{}',
                acked TEXT NOT NULL DEFAULT '{}',
                last_exchange_at INTEGER,
                last_method TEXT,
                last_direction TEXT
            ) WITHOUT ROWID;
            CREATE TABLE pending (
                author BLOB NOT NULL,
                seq INTEGER NOT NULL,
                hash BLOB NOT NULL,
                line BLOB NOT NULL,
                PRIMARY KEY (author, seq, hash)
            ) WITHOUT ROWID;
            CREATE TABLE forks (
                author BLOB NOT NULL,
                seq INTEGER NOT NULL,
                hash BLOB NOT NULL,       -- the event not in the log
                held BLOB NOT NULL,       -- what the log holds at that seq (or its head)
                kind TEXT NOT NULL,       -- same_seq | prev_mismatch
                carrier BLOB,             -- instance that brought it
                line BLOB NOT NULL,
                PRIMARY KEY (author, seq, hash)
            ) WITHOUT ROWID;"
                .to_string(),
            false,
        ),
        // 5: authors whose events are dropped on import and hidden from the views; bundles
        // from unknown instances held until a person approves them.
        (
            "CREATE TABLE blocked_authors (author BLOB PRIMARY KEY) WITHOUT ROWID;
            CREATE TABLE quarantine (
                id TEXT PRIMARY KEY,          -- first 16 hex of SHA-256 of the bundle file
                instance_id BLOB NOT NULL,
                public_key BLOB NOT NULL,
                name TEXT NOT NULL,
                events INTEGER NOT NULL,
                feeds INTEGER NOT NULL,
                invalid INTEGER NOT NULL,     -- lines that failed verification
                arrived_at INTEGER NOT NULL,
                file TEXT NOT NULL
            ) WITHOUT ROWID;"
                .to_string(),
            false,
        ),
        // 6: circle privacy and encryption. `limited` lists the events whose payload names an
        // audience (PROTOCOL 9; the members as a JSON array of keys), so an export decides
        // what to withhold without reading payloads; `local_hosts` holds this instance's
        // declarations signed by its authors, `peer_hosts` those other instances presented;
        // a peer's age recipient comes from its manifests.
        (
            "CREATE TABLE limited (id INTEGER PRIMARY KEY, members TEXT NOT NULL);
            INSERT INTO limited (id, members)
                SELECT id, COALESCE(json_extract(CAST(payload AS TEXT), '$.audience.members'), '[]')
                FROM events
                WHERE payload IS NOT NULL AND json_type(CAST(payload AS TEXT), '$.audience') IS NOT NULL;
            CREATE TABLE local_hosts (
                author BLOB PRIMARY KEY,
                instance_id BLOB NOT NULL,
                issued_at INTEGER NOT NULL,
                sig BLOB NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE peer_hosts (
                instance_id BLOB NOT NULL,
                author BLOB NOT NULL,
                issued_at INTEGER NOT NULL,
                sig BLOB NOT NULL,
                PRIMARY KEY (instance_id, author)
            ) WITHOUT ROWID;
            ALTER TABLE peers ADD COLUMN age_recipient TEXT;"
                .to_string(),
            false,
        ),
        // 7: each author's latest PROFILE (names shown beside key fingerprints), filled by
        // replaying the log.
        (views::ddl_of("v_profiles", "main"), true),
    ]
}

/// Current schema version of this build: the number of migrations.
pub const SCHEMA_VERSION: u32 = 7;

/// Highest seq this backend stores (the rowid packs it into 32 bits).
pub const SEQ_LIMIT: u64 = u32::MAX as u64;

/// Page cache of a connection, in KiB, unless [`SqliteStore::set_cache_kib`] changes it.
pub const DEFAULT_CACHE_KIB: u32 = 64 * 1024;

pub(crate) const EVENT_COLUMNS: &str = "e.id, f.author, e.hash, e.prev, e.type, e.timestamp, \
     e.payload_hash, e.payload_size, e.payload, e.sig";

/// A Rhizome store in one SQLite file.
pub struct SqliteStore {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

struct FeedState {
    feed_id: i64,
    head_seq: u64,
    head_hash: Option<Hash>,
    dirty: bool,
}

impl SqliteStore {
    /// Opens (creating if absent) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let mut store = Self {
            conn: Connection::open(path).map_err(|e| classify(path, e))?,
            path: path.to_path_buf(),
        };
        store.configure().map_err(|e| store.classify(e))?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing, initialized database. Writes nothing to a file that is empty or
    /// holds no instance: it fails with [`StoreError::NotInitialized`] instead.
    pub fn open_existing(path: &Path) -> Result<Self> {
        let probe = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| classify(path, e))?;
        let version: u32 = probe
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        drop(probe);
        if version == 0 {
            return Err(StoreError::NotInitialized);
        }
        let store = Self::open(path)?;
        store.identity()?;
        Ok(store)
    }

    /// Opens an existing database for reading only, when its directory cannot be written
    /// (a stick mounted read-only): WAL needs to create files, so the file is opened as
    /// immutable. Only safe while no other process writes to it.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        let escaped = path
            .display()
            .to_string()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23");
        let uri = format!("file:{escaped}?immutable=1");
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        let store = Self {
            conn: Connection::open_with_flags(uri, flags).map_err(|e| classify(path, e))?,
            path: path.to_path_buf(),
        };
        let found = store.schema_version().map_err(|e| match e {
            StoreError::Sqlite(e) => classify(path, e),
            other => other,
        })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(StoreError::ReadOnly {
                path: path.display().to_string(),
                detail: format!(
                    "schema version {found} needs an upgrade, which needs write access"
                ),
            });
        }
        store.identity()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets this connection's page cache to `kib` KiB ([`DEFAULT_CACHE_KIB`] until then): for
    /// connections that only scan, where a page is read once and a large cache would only hold
    /// memory, and for work that must fit a memory budget.
    pub fn set_cache_kib(&self, kib: u32) -> Result<()> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))
            .map_err(|e| classify(&self.path, e))
    }

    fn configure(&mut self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(Duration::from_secs(30))?;
        // Views and sync use a few dozen distinct statements; the default cache holds 16.
        self.conn.set_prepared_statement_cache_capacity(256);
        self.conn
            .pragma_update(None, "cache_size", -i64::from(DEFAULT_CACHE_KIB))?;
        // Reading the header first makes a non-database file fail here, clearly.
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
        self.conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
        // FULL: a committed transaction survives power loss; measured as free at batch sizes.
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    fn classify(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }

    fn migrate(&mut self) -> Result<()> {
        let found: u32 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.classify(e))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        // Another process may have migrated while we waited for the lock.
        let now: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        // The views are replayed once, after the last migration: the replay fills every view
        // table this build has, which exist only then.
        let mut replay = false;
        for (i, (sql, replays)) in migrations().iter().enumerate().skip(now as usize) {
            tx.execute_batch(sql).map_err(|e| classify(&path, e))?;
            replay |= *replays;
            tx.pragma_update(None, "user_version", i as u32 + 1)?;
        }
        if replay {
            replay_views(&tx, "main")?;
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(())
    }

    /// The state of `author`'s feed, read (or created) once per transaction.
    fn feed_state<'c>(
        tx: &rusqlite::Transaction<'_>,
        cache: &'c mut HashMap<PublicKey, FeedState>,
        author: &PublicKey,
    ) -> Result<&'c mut FeedState> {
        let slot = match cache.entry(*author) {
            std::collections::hash_map::Entry::Occupied(e) => return Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => v,
        };
        let row = tx
            .prepare_cached("SELECT feed_id, head_seq, head_hash FROM feeds WHERE author = ?1")?
            .query_row([&author.as_bytes()[..]], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            })
            .optional()?;
        let state = match row {
            Some((feed_id, head_seq, head_hash)) => FeedState {
                feed_id,
                head_seq: head_seq as u64,
                head_hash: head_hash
                    .map(|h| hash_col(&h, "feeds.head_hash"))
                    .transpose()?,
                dirty: false,
            },
            None => {
                tx.prepare_cached("INSERT INTO feeds (author) VALUES (?1)")?
                    .execute([&author.as_bytes()[..]])?;
                FeedState {
                    feed_id: tx.last_insert_rowid(),
                    head_seq: 0,
                    head_hash: None,
                    dirty: false,
                }
            }
        };
        if state.feed_id >= 1 << 31 {
            return Err(StoreError::Limit(
                "too many feeds for this store (2^31)".into(),
            ));
        }
        Ok(slot.insert(state))
    }

    fn stored_hash_at(tx: &rusqlite::Transaction<'_>, rowid: i64) -> Result<Hash> {
        let h: Vec<u8> = tx
            .prepare_cached("SELECT hash FROM events WHERE id = ?1")?
            .query_row([rowid], |r| r.get(0))?;
        hash_col(&h, "events.hash")
    }
}

pub(crate) fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    let shown = path.display().to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: shown,
            detail: e.to_string(),
        },
        Some(
            ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::DiskFull,
        ) => StoreError::ReadOnly {
            path: shown,
            detail: e.to_string(),
        },
        _ => StoreError::Sqlite(e),
    }
}

pub(crate) fn hash_col(bytes: &[u8], what: &str) -> Result<Hash> {
    Hash::try_from(bytes).map_err(|e| StoreError::BadRow {
        location: what.into(),
        detail: e.to_string(),
    })
}

pub(crate) fn instance_col(bytes: &[u8], what: &str) -> Result<InstanceId> {
    InstanceId::try_from(bytes).map_err(|e| StoreError::BadRow {
        location: what.into(),
        detail: e.to_string(),
    })
}

fn secret_col(text: &str, what: &str) -> Result<StoredSecret> {
    serde_json::from_str(text).map_err(|e| StoreError::BadRow {
        location: what.into(),
        detail: format!("sealed key record: {e}"),
    })
}

/// A key column: rows were written from checked keys, so only the length is checked here
/// (verification re-checks the point; see `PublicKey::from_bytes_unchecked`).
pub(crate) fn key_col(bytes: &[u8], what: &str) -> Result<PublicKey> {
    <[u8; 32]>::try_from(bytes)
        .map(PublicKey::from_bytes_unchecked)
        .map_err(|_| StoreError::BadRow {
            location: what.into(),
            detail: format!("public key of {} bytes", bytes.len()),
        })
}

/// The raw columns of one event row, decoded outside the SQLite callback.
pub(crate) struct RawRow {
    id: i64,
    author: Vec<u8>,
    hash: Vec<u8>,
    prev: Option<Vec<u8>>,
    kind: String,
    timestamp: i64,
    payload_hash: Vec<u8>,
    payload_size: i64,
    payload: Option<Vec<u8>>,
    sig: Vec<u8>,
}

impl RawRow {
    pub(crate) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            author: r.get(1)?,
            hash: r.get(2)?,
            prev: r.get(3)?,
            kind: r.get(4)?,
            timestamp: r.get(5)?,
            payload_hash: r.get(6)?,
            payload_size: r.get(7)?,
            payload: r.get(8)?,
            sig: r.get(9)?,
        })
    }

    pub(crate) fn decode(self) -> Result<Event> {
        let seq = (self.id & 0xffff_ffff) as u64;
        let location = match key_col(&self.author, "author") {
            Ok(a) => format!("{a} seq {seq}"),
            Err(_) => format!("row {}", self.id),
        };
        let bad = |detail: String| StoreError::BadRow {
            location: location.clone(),
            detail,
        };
        let author = key_col(&self.author, "author").map_err(|e| bad(format!("author: {e}")))?;
        let header = Header {
            author,
            seq: Seq::new(seq).map_err(|e| bad(e.to_string()))?,
            prev: self
                .prev
                .map(|p| Hash::try_from(&p[..]))
                .transpose()
                .map_err(|e| bad(format!("prev: {e}")))?,
            kind: EventType::new(&self.kind).map_err(|e| bad(e.to_string()))?,
            timestamp: Timestamp::new(self.timestamp as u64).map_err(|e| bad(e.to_string()))?,
            payload_hash: Hash::try_from(&self.payload_hash[..])
                .map_err(|e| bad(format!("payload_hash: {e}")))?,
            payload_size: self.payload_size as u64,
        };
        let payload = self
            .payload
            .map(|p| Payload::from_canonical(&p))
            .transpose()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Event {
            header,
            payload,
            hash: Hash::try_from(&self.hash[..]).map_err(|e| bad(format!("hash: {e}")))?,
            sig: Signature::try_from(&self.sig[..]).map_err(|e| bad(format!("sig: {e}")))?,
        })
    }
}

impl Store for SqliteStore {
    fn schema_version(&self) -> Result<u32> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn init(&mut self, identity: &Identity, first_author: &LocalAuthor) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        let exists: bool =
            tx.query_row("SELECT EXISTS (SELECT 1 FROM instance)", [], |r| r.get(0))?;
        if exists {
            return Err(StoreError::AlreadyInitialized);
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
    }

    fn identity(&self) -> Result<Identity> {
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
    }

    fn add_author(&mut self, author: &LocalAuthor) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        insert_author(&tx, author)?;
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(())
    }

    fn authors(&self) -> Result<Vec<LocalAuthor>> {
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
    }

    fn author(&self, name: Option<&str>) -> Result<LocalAuthor> {
        let all = self.authors()?;
        let found = match name {
            Some(n) => all.into_iter().find(|a| a.name == n),
            None => all.into_iter().find(|a| a.is_default),
        };
        found.ok_or_else(|| match name {
            Some(n) => StoreError::UnknownAuthor(n.into()),
            None => StoreError::NotInitialized,
        })
    }

    fn head(&self, feed: &PublicKey) -> Result<Option<(Seq, Hash)>> {
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
    }

    fn append(&mut self, events: &[VerifiedEvent]) -> Result<Vec<Outcome>> {
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let outcomes = append_in(&tx, &path, events)?;
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(outcomes)
    }

    fn get(&self, hash: &Hash) -> Result<Option<Event>> {
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
    }

    fn find_by_prefix(&self, hex_prefix: &str, limit: usize) -> Result<Vec<Hash>> {
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
    }

    fn for_each_event(
        &self,
        feed: Option<&PublicKey>,
        visit: &mut dyn FnMut(Result<Event>) -> ControlFlow<()>,
    ) -> Result<()> {
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
                .map_err(StoreError::from)
                .and_then(RawRow::decode);
            if visit(item).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn clock(&self) -> Result<Clock> {
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
    }

    fn stats(&self) -> Result<LogStats> {
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
    }
}

fn insert_author(tx: &rusqlite::Transaction<'_>, a: &LocalAuthor) -> Result<()> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM local_authors WHERE name = ?1)",
        [&a.name],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StoreError::AuthorExists(a.name.clone()));
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
                return Err(StoreError::Limit(format!(
                    "seq {seq} of feed {} is beyond this store's limit of 2^32-1",
                    h.author
                )));
            }
            let feed = SqliteStore::feed_state(tx, &mut feeds, &h.author)?;
            let rowid = (feed.feed_id << 32) | seq as i64;
            let outcome = if seq <= feed.head_seq {
                let existing = SqliteStore::stored_hash_at(tx, rowid)?;
                if existing == ev.hash {
                    fill_payload(tx, rowid, ev)?
                } else {
                    Outcome::Fork { existing }
                }
            } else if seq > feed.head_seq + 1 {
                Outcome::Gap {
                    head: feed.head_seq,
                }
            } else if h.prev != feed.head_hash {
                Outcome::PrevMismatch {
                    head_hash: feed.head_hash,
                }
            } else {
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

/// What `views check` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewCheck {
    /// Digests of the live view tables.
    pub live: Vec<TableDigest>,
    /// Digests of the views recomputed from the log.
    pub rebuilt: Vec<TableDigest>,
    /// Rows that differ: (table, "live" or "rebuilt" side that has it, the row).
    pub differences: Vec<(String, String, String)>,
}

impl ViewCheck {
    /// True when live and rebuilt views are identical.
    pub fn ok(&self) -> bool {
        self.live == self.rebuilt && self.differences.is_empty()
    }
}

impl SqliteStore {
    pub(crate) fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))
    }

    /// Drops and recomputes every view from the log. Returns the number of events replayed.
    pub fn rebuild_views(&mut self) -> Result<u64> {
        let tx = self.write_tx()?;
        let n = replay_views(&tx, "main")?;
        tx.commit()?;
        Ok(n)
    }

    /// Recomputes the views into a scratch copy and compares them with the live ones.
    pub fn check_views(&mut self) -> Result<ViewCheck> {
        self.conn.execute_batch(&views::ddl("temp"))?;
        let result = (|| {
            let tx = self.conn.transaction()?;
            replay_views(&tx, "temp")?;
            tx.commit()?;
            let mut differences = Vec::new();
            for (side, a, b) in [("live", "main", "temp"), ("rebuilt", "temp", "main")] {
                for (table, row) in views::rows_missing(&self.conn, a, b, 20)? {
                    differences.push((table, side.to_string(), row));
                }
            }
            Ok(ViewCheck {
                live: views::digest(&self.conn, "main")?,
                rebuilt: views::digest(&self.conn, "temp")?,
                differences,
            })
        })();
        for t in views::table_names() {
            self.conn
                .execute(&format!("DROP TABLE IF EXISTS temp.{t}"), [])?;
        }
        result
    }

    /// What a record imported by `rhizome migrate` became, if it was imported.
    pub fn legacy(&self, legacy: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM legacy_ids WHERE legacy = ?1")?
            .query_row([legacy], |r| r.get(0))
            .optional()?)
    }

    /// Appends one event for an imported record, and records the record's id, atomically.
    pub fn append_legacy(&mut self, event: &VerifiedEvent, legacy: &str) -> Result<Outcome> {
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
    }

    /// Adds a local author for an imported user record, and records the record's id, atomically.
    pub fn add_author_legacy(&mut self, author: &LocalAuthor, legacy: &str) -> Result<()> {
        let path = self.path.clone();
        let tx = self.write_tx()?;
        insert_author(&tx, author)?;
        tx.execute(
            "INSERT INTO legacy_ids (legacy, value) VALUES (?1, ?2)",
            params![legacy, &author.public_key.as_bytes()[..]],
        )?;
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(())
    }

    /// SHA-256 digests of the live view tables.
    pub fn view_digests(&self) -> Result<Vec<TableDigest>> {
        views::digest(&self.conn, "main")
    }

    /// Adds `author` to the follow set. False if already followed.
    pub fn follow(&mut self, author: &PublicKey) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO follows (author) VALUES (?1)",
                [&author.as_bytes()[..]],
            )
            .map_err(|e| self.classify(e))?;
        Ok(n == 1)
    }

    /// Removes `author` from the follow set. False if not followed.
    pub fn unfollow(&mut self, author: &PublicKey) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "DELETE FROM follows WHERE author = ?1",
                [&author.as_bytes()[..]],
            )
            .map_err(|e| self.classify(e))?;
        Ok(n == 1)
    }

    /// The follow set.
    pub fn follows(&self) -> Result<Vec<PublicKey>> {
        let mut stmt = self
            .conn
            .prepare("SELECT author FROM follows ORDER BY author")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.iter().map(|k| key_col(k, "follows.author")).collect()
    }

    /// A timeline page: posts and reshares of followed authors, newest first.
    pub fn timeline(
        &self,
        author: Option<&PublicKey>,
        before: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<TimelineItem>> {
        views::timeline(&self.conn, author, before, limit)
    }

    /// Every reply below `root`, oldest first, with its depth.
    pub fn thread(&self, root: &Hash) -> Result<Vec<Reply>> {
        views::thread(&self.conn, root)
    }

    /// Who liked `target`.
    pub fn likers(&self, target: &Hash) -> Result<Vec<PublicKey>> {
        views::likers(&self.conn, target)
    }

    /// Events `author` has starred (and not unstarred), most recent first.
    pub fn starred(&self, author: &PublicKey) -> Result<Vec<Hash>> {
        views::starred(&self.conn, author)
    }

    /// `owner`'s circles with their members.
    pub fn circles(&self, owner: &PublicKey) -> Result<Vec<Circle>> {
        views::circles(&self.conn, owner)
    }

    /// Every tag with its number of events.
    pub fn tag_counts(&self) -> Result<Vec<(String, u64)>> {
        views::tag_counts(&self.conn)
    }

    /// Events carrying `tag`.
    pub fn tagged(&self, tag: &str) -> Result<Vec<Hash>> {
        views::tagged(&self.conn, tag)
    }

    /// Tags on `target`.
    pub fn tags_of(&self, target: &Hash) -> Result<Vec<String>> {
        views::tags_of(&self.conn, target)
    }

    /// `author`'s latest profile, if one is held (whatever its author's block status: names
    /// only label keys).
    pub fn profile(&self, author: &PublicKey) -> Result<Option<Profile>> {
        views::profile(&self.conn, author)
    }

    /// Events the views skipped, with reasons.
    pub fn skipped(&self) -> Result<Vec<Skipped>> {
        views::skipped(&self.conn)
    }

    /// Events per type.
    pub fn type_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT type, count(*) FROM events GROUP BY type ORDER BY type")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Bytes on disk: the database file and its WAL.
    pub fn size_on_disk(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_version_counts_the_migrations() {
        assert_eq!(super::SCHEMA_VERSION as usize, super::migrations().len());
    }
}
