//! The store, split by concern: one trait per kind of state, so that a backend (SQLite,
//! PostgreSQL, ...) implements each against the same contract and one conformance suite checks
//! them all. The rules themselves (chain links, view merges) are decided in `rhizome-core`;
//! a backend stores rows and answers reads.
//!
//! Every method is blocking: callers on an async runtime run them on blocking threads.

use std::io::{Read, Write};
use std::ops::ControlFlow;

use rhizome_core::privacy::{Audience, HostDeclaration};
use rhizome_core::{Clock, Event, Hash, InstanceId, PublicKey, Seq, VerifiedEvent};

use crate::{
    BatchResult, Circle, Cursor, Direction, ForkRecord, Held, Identity, LocalAuthor, LogStats,
    Outcome, Peer, Profile, RangePlan, Reply, Reshare, Result, Skipped, TableDigest, TimelineItem,
    Trust, ViewCheck,
};

/// The instance identity, local authors and their host declarations. A local author is
/// followed from the moment `init` or `add_author` adds it.
pub trait KeyStore {
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
    fn author(&self, name: Option<&str>) -> Result<LocalAuthor> {
        let all = self.authors()?;
        let found = match name {
            Some(n) => all.into_iter().find(|a| a.name == n),
            None => all.into_iter().find(|a| a.is_default),
        };
        found.ok_or_else(|| match name {
            Some(n) => crate::StoreError::UnknownAuthor(n.into()),
            None => crate::StoreError::NotInitialized,
        })
    }
    /// This instance's host declarations, signed by its local authors.
    fn local_hosts(&self) -> Result<Vec<HostDeclaration>>;
    /// Stores (or replaces) a local author's declaration that this instance hosts them.
    fn add_local_host(&mut self, d: &HostDeclaration) -> Result<()>;
}

/// The event log: append with the chain rules, reads, and the range reads exports use.
pub trait LogStore {
    /// Highest contiguous seq and its hash for a feed.
    fn head(&self, feed: &PublicKey) -> Result<Option<(Seq, Hash)>>;
    /// Appends events in one transaction. Each must extend its feed; see [`Outcome`].
    fn append(&mut self, events: &[VerifiedEvent]) -> Result<Vec<Outcome>>;
    /// The event with this hash.
    fn get(&self, hash: &Hash) -> Result<Option<Event>>;
    /// Hashes of stored events starting with this lowercase hex prefix (at most `limit`). A
    /// prefix that is empty, longer than 64 or not lowercase hex matches nothing (no error).
    fn find_by_prefix(&self, hex_prefix: &str, limit: usize) -> Result<Vec<Hash>>;
    /// Visits stored events in (feed, seq) order, optionally for one feed only: each feed's
    /// events together, in seq order; the order of the feeds is the backend's. A row that
    /// does not decode is passed as an error and the walk goes on.
    fn for_each_event(
        &self,
        feed: Option<&PublicKey>,
        visit: &mut dyn FnMut(Result<Event>) -> ControlFlow<()>,
    ) -> Result<()>;
    /// The vector clock of everything held.
    fn clock(&self) -> Result<Clock>;
    /// Event and feed counts.
    fn stats(&self) -> Result<LogStats>;
    /// Events per type, by type name.
    fn type_counts(&self) -> Result<Vec<(String, u64)>>;
    /// Stored (seq, hash) of a feed between `from` and `to` inclusive, in seq order, for the
    /// events stored with their payload (a withheld one may still be filled by a copy).
    fn stored_hashes(&self, author: &PublicKey, from: u64, to: u64) -> Result<Vec<(u64, Hash)>>;
    /// Count, exact line bytes and head of a feed's stored range `from..=to`, payloads
    /// withheld where `withhold(seq)` says so.
    fn plan_range(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
        withhold: &dyn Fn(u64) -> bool,
    ) -> Result<RangePlan>;
    /// Writes the canonical lines of a feed's stored range `from..=to`, each followed by a
    /// line feed (payloads withheld where `withhold(seq)` says so). Returns the lines written.
    fn write_range(
        &self,
        author: &PublicKey,
        from: u64,
        to: u64,
        withhold: &dyn Fn(u64) -> bool,
        out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64>;
    /// Seqs of a feed's range `from..=to` whose payloads are limited to an audience, in seq
    /// order.
    fn limited(&self, author: &PublicKey, from: u64, to: u64) -> Result<Vec<(u64, Audience)>>;
    /// Events waiting for their predecessors.
    fn pending_count(&self) -> Result<u64>;
    /// The fork evidence kept for `author`, as (seq, hash, stored line), by seq then hash.
    fn fork_lines(&self, author: &PublicKey) -> Result<Vec<(u64, Hash, Vec<u8>)>>;
    /// Authors with fork evidence, in key order.
    fn forked_authors(&self) -> Result<Vec<PublicKey>>;
    /// All fork evidence, by author and seq.
    fn forks(&self) -> Result<Vec<ForkRecord>>;
    /// Removes every stored event of `author` (pending events and fork evidence too), then
    /// rebuilds the views. Returns the number of log events removed.
    fn purge_author(&mut self, author: &PublicKey) -> Result<u64>;
    /// What a record imported by `rhizome migrate` became, if it was imported: the 32 bytes of
    /// the event hash ([`LogStore::append_legacy`]) or of the author key
    /// ([`LogStore::add_author_legacy`]).
    fn legacy(&self, legacy: &str) -> Result<Option<Vec<u8>>>;
    /// Appends one event for an imported record and records the record's id, atomically (the
    /// id only when the outcome is `Inserted`).
    fn append_legacy(&mut self, event: &VerifiedEvent, legacy: &str) -> Result<Outcome>;
    /// Adds a local author for an imported user record and records its id, atomically.
    fn add_author_legacy(&mut self, author: &LocalAuthor, legacy: &str) -> Result<()>;
    /// Bytes the store takes on disk, when the backend can tell.
    fn size_on_disk(&self) -> Option<u64>;
    /// Highest seq this backend can store (PROTOCOL 2.4 allows up to 2^53 - 1; a backend may
    /// hold less, and an import refuses an event beyond it per line). `append` given an event
    /// beyond it fails with [`crate::StoreError::Limit`] and stores nothing of the batch.
    fn max_seq(&self) -> u64;
}

/// Import batches taken one after another. Each batch is applied whole or not at all, and
/// everything added is durable once [`ImportSession::commit`] returns. Before that, a backend
/// chooses: SQLite keeps one long transaction (dropping the session rolls every batch back),
/// PostgreSQL commits each batch on its own (several processes share the database, and
/// feed locks must not be held for a whole import), so a dropped session keeps the batches
/// already added. Either way an interrupted import, run again, ends as one clean import.
pub trait ImportSession {
    /// Applies one batch: appends what extends its feed, parks events whose predecessors are
    /// missing (pending), keeps fork evidence, fills withheld payloads, then promotes pending
    /// events whose gap has filled. The same event parked twice, or the same fork evidence
    /// twice, is kept once; a parked event that no longer links when promoted becomes fork
    /// evidence.
    fn add(&mut self, events: &[VerifiedEvent]) -> Result<BatchResult>;
    /// Events given to [`ImportSession::add`] so far.
    fn events(&self) -> usize;
    /// Commits everything added: durable once this returns.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Bulk import: sessions, and the second handles the import's workers read through.
pub trait ImportStore {
    /// Opens an import session for events carried by `carrier` (recorded with fork evidence).
    fn begin_import(&mut self, carrier: Option<&InstanceId>)
        -> Result<Box<dyn ImportSession + '_>>;
    /// Applies one batch in a session of its own (see [`ImportSession::add`]) and commits it.
    fn import_batch(
        &mut self,
        events: &[VerifiedEvent],
        carrier: Option<&InstanceId>,
    ) -> Result<BatchResult> {
        let mut session = self.begin_import(carrier)?;
        let result = session.add(events)?;
        session.commit()?;
        Ok(result)
    }
    /// Another handle on the same database, for point lookups on another thread while this
    /// one writes (an import's workers recognise duplicates through it).
    fn reader(&self) -> Result<Box<dyn Store>>;
    /// Tunes the connection for a bulk import (`true`) and back (`false`). Default: nothing.
    fn bulk_mode(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
}

/// The materialized views: follows, and the queries every front-end reads.
///
/// Authors blocked on this instance ([`PeerStore::block_author`]) are left out of every query
/// (in a thread, the replies below a blocked author's reply go with it); the view tables do
/// not change, so digests and checks ignore blocking.
pub trait ViewStore {
    /// Adds `author` to the follow set. False if already followed.
    fn follow(&mut self, author: &PublicKey) -> Result<bool>;
    /// Removes `author` from the follow set. False if not followed.
    fn unfollow(&mut self, author: &PublicKey) -> Result<bool>;
    /// The follow set, in key order.
    fn follows(&self) -> Result<Vec<PublicKey>>;
    /// A timeline page: posts and reshares of followed authors (only `author`'s when given, and
    /// nothing if it is not followed), newest first with equal timestamps by hash descending,
    /// strictly before `before`.
    fn timeline(
        &self,
        author: Option<&PublicKey>,
        before: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<TimelineItem>>;
    /// Every reply below `root`, oldest first (equal timestamps by hash), with its depth.
    fn thread(&self, root: &Hash) -> Result<Vec<Reply>>;
    /// Who liked `target`, in key order.
    fn likers(&self, target: &Hash) -> Result<Vec<PublicKey>>;
    /// Reshares of `target`, oldest first (equal timestamps by hash).
    fn reshares(&self, target: &Hash) -> Result<Vec<Reshare>>;
    /// Events `author` has starred (and not unstarred), most recent first.
    fn starred(&self, author: &PublicKey) -> Result<Vec<Hash>>;
    /// `owner`'s circles with their members, by name.
    fn circles(&self, owner: &PublicKey) -> Result<Vec<Circle>>;
    /// Every tag with its number of events, by tag.
    fn tag_counts(&self) -> Result<Vec<(String, u64)>>;
    /// Events carrying `tag`, in hash order.
    fn tagged(&self, tag: &str) -> Result<Vec<Hash>>;
    /// Tags on `target`, by tag.
    fn tags_of(&self, target: &Hash) -> Result<Vec<String>>;
    /// Events the views skipped, with reasons, by author then seq.
    fn skipped(&self) -> Result<Vec<Skipped>>;
    /// `author`'s latest profile, whatever the author's block status (names only label keys).
    fn profile(&self, author: &PublicKey) -> Result<Option<Profile>>;
    /// Drops and recomputes every view from the log. Returns the events replayed.
    fn rebuild_views(&mut self) -> Result<u64>;
    /// Recomputes the views aside and compares them with the live ones.
    fn check_views(&mut self) -> Result<ViewCheck>;
    /// Digests of the live view tables.
    fn view_digests(&self) -> Result<Vec<TableDigest>>;
}

/// Other instances: trust, clocks, what they publish; blocked authors.
pub trait PeerStore {
    /// All known peers, by name.
    fn peers(&self) -> Result<Vec<Peer>>;
    /// One peer.
    fn peer(&self, id: &InstanceId) -> Result<Option<Peer>>;
    /// Records an exchange: creates the peer if new, refreshes its name, and raises `sent`
    /// (export) or replaces `acked` (import) with `clock`.
    fn record_exchange(
        &mut self,
        key: &PublicKey,
        name: &str,
        dir: Direction,
        clock: &Clock,
        at: u64,
        method: &str,
    ) -> Result<()>;
    /// Keeps what a peer's manifest publishes: its age recipient (`None` keeps the one known)
    /// and the authors it hosts (declarations already verified; only those naming `id` are
    /// kept; the newest per author wins).
    fn record_publications(
        &mut self,
        id: &InstanceId,
        age_recipient: Option<&str>,
        hosts: &[HostDeclaration],
    ) -> Result<()>;
    /// Authors an instance has shown, by their signed declarations, that it hosts.
    fn peer_hosts(&self, id: &InstanceId) -> Result<std::collections::HashSet<PublicKey>>;
    /// Makes a peer known (or renames it) and sets its trust.
    fn add_peer(&mut self, key: &PublicKey, name: &str, trust: Trust) -> Result<()>;
    /// Sets a known peer's trust. False if the peer is unknown. Setting `Unknown` also lifts
    /// a block recorded by [`PeerStore::block_instance`].
    fn set_trust(&mut self, id: &InstanceId, trust: Trust) -> Result<bool>;
    /// Blocks an instance known only by its id (none of its bundles seen yet).
    fn block_instance(&mut self, id: &InstanceId) -> Result<()>;
    /// An instance's trust: a known peer's, `Blocked` for one blocked by id, `None` if never
    /// seen.
    fn trust_of(&self, id: &InstanceId) -> Result<Option<Trust>>;
    /// Blocks an author. False if already blocked.
    fn block_author(&mut self, author: &PublicKey) -> Result<bool>;
    /// Unblocks an author. False if it was not blocked.
    fn unblock_author(&mut self, author: &PublicKey) -> Result<bool>;
    /// Blocked authors.
    fn blocked_authors(&self) -> Result<std::collections::BTreeSet<PublicKey>>;
}

/// Where a blob is written: bytes in, an id (its SHA-256) out when finished.
pub trait BlobSink: Write + Send {
    /// Makes the blob durable and returns its id; the bytes are hashed as they are written.
    fn finish(self: Box<Self>) -> Result<BlobId>;
}

/// The id of a stored blob: the SHA-256 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct BlobId(pub Hash);

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Bundles from unknown instances, held whole (as blobs) until a person decides.
pub trait QuarantineStore {
    /// A sink for a new blob.
    fn blob_sink(&self) -> Result<Box<dyn BlobSink>>;
    /// Reads a stored blob.
    fn open_blob(&self, id: &BlobId) -> Result<Box<dyn Read + Send>>;
    /// Deletes a stored blob (nothing if absent).
    fn delete_blob(&self, id: &BlobId) -> Result<()>;
    /// Records a held bundle. False if one with that id is already held.
    fn hold(&mut self, h: &Held) -> Result<bool>;
    /// Held bundles, oldest first.
    fn held(&self) -> Result<Vec<Held>>;
    /// Forgets a held bundle. False if none has that id.
    fn release(&mut self, id: &str) -> Result<bool>;
}

/// Everything an instance keeps: what the node and the sync code take.
pub trait Store:
    KeyStore + LogStore + ImportStore + ViewStore + PeerStore + QuarantineStore + Send
{
}

impl<T> Store for T where
    T: KeyStore + LogStore + ImportStore + ViewStore + PeerStore + QuarantineStore + Send
{
}
