//! Rhizome's storage contract: the traits a backend implements, one per concern ([`KeyStore`],
//! [`LogStore`], [`ImportStore`] with its [`ImportSession`], [`ViewStore`], [`PeerStore`],
//! [`QuarantineStore`]; together a [`Store`]), the values they exchange, and the
//! backend-neutral [`StoreError`]. No backend lives here: SQLite (`rhizome-store-sqlite`, the
//! embedded default) and PostgreSQL (`rhizome-store-postgres`, for hubs) implement these, and
//! `rhizome-store-tests` is the conformance suite every backend passes.
//!
//! The store accepts only [`VerifiedEvent`]s and applies the chain rules of
//! `rhizome_core::chain` itself, inside the transaction that inserts: an event is stored only
//! if it extends its feed exactly (seq = head + 1, prev = head hash), so processes racing on one
//! database can never write a gap or a duplicate. Views follow the merge rules of
//! `rhizome_core::views::apply`. Reads return plain [`Event`]s: whoever needs them verified
//! again verifies them again.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod traits;

use rhizome_core::sealed::StoredSecret;
use rhizome_core::{Clock, Hash, InstanceId, PublicKey};
use serde::Serialize;

/// Every store trait, for `use rhizome_store::prelude::*` where many are called.
pub mod prelude {
    pub use crate::traits::{
        ImportSession, ImportStore, KeyStore, LogStore, PeerStore, QuarantineStore, Store,
        ViewStore,
    };
}

pub use traits::{
    BlobId, BlobSink, ImportSession, ImportStore, KeyStore, LogStore, PeerStore, QuarantineStore,
    Store, ViewStore,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database is not a Rhizome database, or is damaged.
    #[error("database {path} is damaged or not a Rhizome database: {detail}")]
    Corrupt {
        /// Where (file path or database URL without credentials).
        path: String,
        /// What the backend said.
        detail: String,
    },
    /// The database was written by a newer Rhizome.
    #[error("database schema version {found} is newer than this rhizome supports ({supported}); upgrade rhizome")]
    NewerSchema {
        /// Version in the database.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The database cannot be written (read-only file or directory, disk full).
    #[error("cannot write to database {path}: {detail}")]
    ReadOnly {
        /// Where.
        path: String,
        /// What the backend said.
        detail: String,
    },
    /// The database server cannot be reached, refused the credentials, or dropped the
    /// connection. Every transaction committed before stays; a rerun continues from there.
    #[error("database {location} unavailable: {detail}")]
    Unavailable {
        /// Where (a URL without its password).
        location: String,
        /// What failed.
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
    /// A value this backend cannot hold (e.g. seq beyond 2^32-1 in SQLite).
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
    /// A blob (a held bundle) could not be written or read.
    #[error("{what}: {detail}")]
    Blob {
        /// Which blob, or where.
        what: String,
        /// What failed.
        detail: String,
    },
    /// Any other database error, as the backend reported it.
    #[error("{backend} error: {detail}")]
    Backend {
        /// Which backend (`sqlite`, `postgres`).
        backend: &'static str,
        /// What it said.
        detail: String,
    },
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
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Unknown => "unknown",
            Trust::Trusted => "trusted",
            Trust::Blocked => "blocked",
        }
    }
    /// Reads the stored spelling; anything unknown is `Unknown` (never wider trust).
    pub fn parse(s: &str) -> Trust {
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
    /// The held copy, by content. `None` for a bundle held by a Rhizome before schema 7,
    /// which kept it as the file `<home>/quarantine/<id>.bundle`.
    pub blob: Option<BlobId>,
    /// Why the held copy is not a whole bundle (`truncated: no trailer`, `trailer invalid:
    /// ...`, `unreadable: ...`); `None` when its trailer was valid (or, for a bundle held
    /// before SQLite schema 9 / PostgreSQL schema 4, when nobody recorded it).
    pub incomplete: Option<String>,
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
#[derive(Debug, Clone, Default)]
pub struct RangePlan {
    /// Events in the range.
    pub count: u64,
    /// Exact bytes of their lines.
    pub bytes: u64,
    /// Hash of the last event.
    pub head: Option<Hash>,
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

/// One reshare of an event: a RESHARE whose target it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reshare {
    /// The RESHARE event's hash.
    pub hash: Hash,
    /// Who reshared.
    pub author: PublicKey,
    /// Author's timestamp of the reshare, ms.
    #[serde(rename = "timestamp")]
    pub ts: u64,
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
