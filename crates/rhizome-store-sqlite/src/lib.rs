//! The SQLite backend, Rhizome's embedded default: one file per instance (`<home>/rhizome.db`),
//! WAL, `synchronous=FULL`, versioned migrations (`migrations/*.sql`) applied on open; held
//! bundles are files beside it (`<home>/quarantine/<sha256>.bundle`).
//!
//! Layout (see ARCHITECTURE.md): authors are mapped to a small integer `feed_id`, and an
//! event's rowid is `(feed_id << 32) | seq`, so (author, seq) needs no second index and a feed
//! is one contiguous rowid range. The hash lookup uses an index on the first 8 bytes of the
//! hash (`h8`); the full hash is compared on a hit.
//!
//! Every trait of `rhizome-store` is implemented here, one module per concern: [`log`] (keys
//! and the log), [`import`] (bulk sessions, pending, forks), [`views`], [`peers`],
//! [`quarantine`].
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod import;
mod log;
mod peers;
mod quarantine;
mod views;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rhizome_core::event::{EventType, Header, Payload};
use rhizome_core::sealed::StoredSecret;
use rhizome_core::{Event, Hash, InstanceId, PublicKey, Seq, Signature, Timestamp};
use rhizome_store::{KeyStore, Result as StoreResult, StoreError};

/// The migrations, in order: migration N upgrades the schema from version N-1 to N, and
/// `PRAGMA user_version` records how many ran. When a file that ran contains the line
/// `-- rhizome: replay-views`, the log is replayed into the views once, after the last
/// migration (a replay fills every view table of this build, which all exist only then).
/// Files are history: they are never edited once released, only added.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_views.sql"),
    include_str!("../migrations/0003_legacy_ids.sql"),
    include_str!("../migrations/0004_peers_pending_forks.sql"),
    include_str!("../migrations/0005_blocked_quarantine.sql"),
    include_str!("../migrations/0006_privacy.sql"),
    include_str!("../migrations/0007_quarantine_blobs_blocked_ids.sql"),
    include_str!("../migrations/0008_profiles.sql"),
    include_str!("../migrations/0009_quarantine_incomplete.sql"),
    include_str!("../migrations/0010_reshares_index.sql"),
];

/// Current schema version of this build: the number of migrations.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

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
    /// A new file is made readable by its owner only (0600, whatever the umask), before SQLite
    /// opens it: SQLite gives its `-wal` and `-shm` files the database file's mode.
    pub fn open(path: &Path) -> StoreResult<Self> {
        create_private(path);
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
    pub fn open_existing(path: &Path) -> StoreResult<Self> {
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
    pub fn open_read_only(path: &Path) -> StoreResult<Self> {
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
        let found: u32 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
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
    pub fn set_cache_kib(&self, kib: u32) -> StoreResult<()> {
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

    fn migrate(&mut self) -> StoreResult<()> {
        run(|| {
            let found: u32 = self
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| self.classify(e))?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    found,
                    supported: SCHEMA_VERSION,
                }
                .into());
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
            let mut replay = false;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(now as usize) {
                tx.execute_batch(sql).map_err(|e| classify(&path, e))?;
                replay |= sql.lines().any(|l| l.trim() == "-- rhizome: replay-views");
                tx.pragma_update(None, "user_version", i as u32 + 1)?;
            }
            if replay {
                log::replay_views(&tx, "main")?;
            }
            tx.commit().map_err(|e| classify(&path, e))?;
            Ok(())
        })
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
            return Err(StoreError::Limit("too many feeds for this store (2^31)".into()).into());
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

/// Creates `path` empty with mode 0600 if nothing is there. Any failure is left for SQLite's
/// own open to report (a missing directory, a read-only one).
fn create_private(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = options.open(path);
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
        _ => Error::Sql(e).into(),
    }
}

/// A stored value that does not decode, with where it was.
pub(crate) fn bad_row(location: &str, detail: impl std::fmt::Display) -> Error {
    Error::Store(StoreError::BadRow {
        location: location.into(),
        detail: detail.to_string(),
    })
}

pub(crate) fn hash_col(bytes: &[u8], what: &str) -> Result<Hash> {
    Hash::try_from(bytes).map_err(|e| bad_row(what, e))
}

pub(crate) fn instance_col(bytes: &[u8], what: &str) -> Result<InstanceId> {
    InstanceId::try_from(bytes).map_err(|e| bad_row(what, e))
}

pub(crate) fn secret_col(text: &str, what: &str) -> Result<StoredSecret> {
    serde_json::from_str(text).map_err(|e| bad_row(what, format!("sealed key record: {e}")))
}

/// A key column: rows were written from checked keys, so only the length is checked here
/// (verification re-checks the point; see `PublicKey::from_bytes_unchecked`).
pub(crate) fn key_col(bytes: &[u8], what: &str) -> Result<PublicKey> {
    <[u8; 32]>::try_from(bytes)
        .map(PublicKey::from_bytes_unchecked)
        .map_err(|_| bad_row(what, format!("public key of {} bytes", bytes.len())))
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
/// Rowids of a feed's seqs `from..=to` (clamped to the 32 bits a rowid keeps for seq).
pub(crate) fn range_ids(feed_id: i64, from: u64, to: u64) -> (i64, i64) {
    let clamp = |s: u64| s.min(u32::MAX as u64) as i64;
    ((feed_id << 32) | clamp(from), (feed_id << 32) | clamp(to))
}

/// The error of this crate's internals: SQLite's, or one already in the store's terms. Trait
/// methods turn it into a [`StoreError`] at the boundary (`?`), so no `rusqlite` type leaves
/// the crate.
#[derive(Debug)]
pub(crate) enum Error {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sql(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Sql(e) => e.fmt(f),
            Error::Store(e) => e.fmt(f),
        }
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(s) => s,
            Error::Sql(e) => StoreError::Backend {
                backend: "sqlite",
                detail: e.to_string(),
            },
        }
    }
}

/// Result of this crate's internals.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs a body written in this crate's terms and answers in the store's.
pub(crate) fn run<T>(body: impl FnOnce() -> Result<T>) -> rhizome_store::Result<T> {
    body().map_err(StoreError::from)
}
