//! Rhizome's storage: the [`Store`] trait (identity, local authors, the event log) and its
//! SQLite backend.
//!
//! The store accepts only [`VerifiedEvent`]s and checks the chain itself: an event is stored
//! only if it extends its feed exactly (seq = head + 1, prev = head hash). Every append runs in
//! one transaction, so two processes racing on one home can never write a gap or a duplicate.
//! Reads return plain [`Event`]s: whoever needs them verified again (`rhizome verify`, a
//! peer's import) verifies them again.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod sqlite;
pub mod sync_state;
pub mod views;

use rhizome_core::sealed::StoredSecret;
use rhizome_core::{Clock, Event, Hash, PublicKey, Seq, VerifiedEvent};

pub use sqlite::{SqliteStore, ViewCheck, DEFAULT_CACHE_KIB, SCHEMA_VERSION, SEQ_LIMIT};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file is not a Rhizome database, or is damaged.
    #[error("database {path} is damaged or not a Rhizome database: {detail}")]
    Corrupt {
        /// File path.
        path: String,
        /// What SQLite said.
        detail: String,
    },
    /// The database was written by a newer Rhizome.
    #[error("database schema version {found} is newer than this rhizome supports ({supported}); upgrade rhizome")]
    NewerSchema {
        /// Version in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The database cannot be written (read-only file or directory, disk full).
    #[error("cannot write to database {path}: {detail}")]
    ReadOnly {
        /// File path.
        path: String,
        /// What SQLite said.
        detail: String,
    },
    /// The instance has no identity yet.
    #[error("this home has no instance yet (run `rhizome init`)")]
    NotInitialized,
    /// `init` on a home that already has an instance.
    #[error("this home already has an instance")]
    AlreadyInitialized,
    /// A local author with that name exists.
    #[error("a local author named {0:?} already exists")]
    AuthorExists(String),
    /// No local author with that name.
    #[error("no local author named {0:?}")]
    UnknownAuthor(String),
    /// A value this backend cannot hold (e.g. seq beyond 2^32-1).
    #[error("{0}")]
    Limit(String),
    /// A stored row that does not decode (damage or tampering), with its location.
    #[error("stored event {location} is unreadable: {detail}")]
    BadRow {
        /// Feed key and seq, or row id.
        location: String,
        /// What is wrong.
        detail: String,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Result alias for this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The instance's own identity.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Human name of the instance.
    pub name: String,
    /// Instance public key.
    pub public_key: PublicKey,
    /// Sealed (or plain) private key.
    pub secret: StoredSecret,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
}

/// A local author (a user of this instance) and their sealed key.
#[derive(Debug, Clone)]
pub struct LocalAuthor {
    /// Local name, unique on this instance.
    pub name: String,
    /// Public key: the feed id.
    pub public_key: PublicKey,
    /// Sealed (or plain) private key.
    pub secret: StoredSecret,
    /// True for the author created by `init`, used when `--as` is not given.
    pub is_default: bool,
}

/// What happened to one event given to [`Store::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored: it extended its feed.
    Inserted,
    /// Already stored (same hash at that position).
    Duplicate,
    /// Already stored with its payload withheld; this copy brought the payload, now stored.
    Filled,
    /// Its seq is beyond the feed's head + 1: earlier events are missing.
    Gap {
        /// Highest contiguous seq held for the feed.
        head: u64,
    },
    /// Another event with the same author and seq is stored: an equivocation.
    Fork {
        /// Hash of the stored event at that position.
        existing: Hash,
    },
    /// Its seq is head + 1 but its prev is not the head's hash.
    PrevMismatch {
        /// Hash of the stored head.
        head_hash: Option<Hash>,
    },
}

/// Counts for `rhizome status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogStats {
    /// Events stored.
    pub events: u64,
    /// Feeds with at least one event.
    pub feeds: u64,
}

/// Storage for one instance. One conformance suite runs against every backend.
pub trait Store {
    /// Schema version of the open database.
    fn schema_version(&self) -> Result<u32>;

    /// Creates the identity and the first author in one transaction; fails if one exists.
    fn init(&mut self, identity: &Identity, first_author: &LocalAuthor) -> Result<()>;
    /// The instance identity.
    fn identity(&self) -> Result<Identity>;
    /// Adds a local author.
    fn add_author(&mut self, author: &LocalAuthor) -> Result<()>;
    /// All local authors, the default first, then by name.
    fn authors(&self) -> Result<Vec<LocalAuthor>>;
    /// The local author called `name`, or the default author when `name` is `None`.
    fn author(&self, name: Option<&str>) -> Result<LocalAuthor>;

    /// Highest contiguous seq and its hash for a feed.
    fn head(&self, feed: &PublicKey) -> Result<Option<(Seq, Hash)>>;
    /// Appends events in one transaction. Each must extend its feed; see [`Outcome`].
    fn append(&mut self, events: &[VerifiedEvent]) -> Result<Vec<Outcome>>;
    /// The event with this hash.
    fn get(&self, hash: &Hash) -> Result<Option<Event>>;
    /// Hashes of stored events starting with this hex prefix (at most `limit`).
    fn find_by_prefix(&self, hex_prefix: &str, limit: usize) -> Result<Vec<Hash>>;
    /// Visits stored events in (feed, seq) order, optionally for one feed only. A row that
    /// does not decode is passed as an error and the walk goes on.
    fn for_each_event(
        &self,
        feed: Option<&PublicKey>,
        visit: &mut dyn FnMut(Result<Event>) -> std::ops::ControlFlow<()>,
    ) -> Result<()>;
    /// The vector clock of everything held.
    fn clock(&self) -> Result<Clock>;
    /// Event and feed counts.
    fn stats(&self) -> Result<LogStats>;
}
