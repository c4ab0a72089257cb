//! Trust: bundles held for a person (pending, approve, reject), carriers trusted or blocked,
//! blocked authors, peers and fork evidence.

use std::io::{BufRead, BufReader, Read};

use rhizome_core::bundle::Manifest;
use rhizome_core::{Hash, InstanceId, PublicKey};
use rhizome_store::{ForkRecord, Held, Peer, Trust};
use rhizome_sync::{ImportOptions, ImportReport, Inspection};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::exchange::open_layers;
use crate::{now_ms, Node, NodeError, Result, Transport};
use rhizome_sync::codec::Layers;

/// What blocking an instance did.
#[derive(Debug, Clone, Serialize)]
pub struct Blocked {
    /// The instance.
    pub instance_id: InstanceId,
    /// Held bundles of it that were discarded in the same step.
    pub rejected: Vec<Held>,
}

/// What `block-author` did.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorBlock {
    /// The author.
    pub author: PublicKey,
    /// Whether anything changed.
    pub changed: bool,
    /// Events removed from the log (with `purge`).
    pub purged_events: u64,
}

impl Node {
    /// Bundles held for approval, oldest first.
    pub fn pending(&self) -> Result<Vec<Held>> {
        Ok(self.store.held()?)
    }

    fn find_held(&self, id: &str) -> Result<Held> {
        self.store
            .held()?
            .into_iter()
            .find(|h| h.id == id)
            .ok_or_else(|| {
                NodeError::invalid(format!(
                    "no bundle {id:?} in quarantine (`rhizome pending` lists them)"
                ))
            })
    }

    /// Opens a held bundle's copy: its blob, or (held before blobs) the file named by its id in
    /// the home's quarantine directory, never a path from the record.
    fn open_held(&self, held: &Held) -> Result<Box<dyn Read + Send>> {
        if let Some(blob) = &held.blob {
            return Ok(self.store.open_blob(blob)?);
        }
        let path = self.location.legacy_held_file(&held.id).ok_or_else(|| {
            NodeError::Rejected(format!("held bundle {} has no stored copy", held.id))
        })?;
        let file = std::fs::File::open(&path)
            .map_err(|e| NodeError::Rejected(format!("held bundle {}: {e}", path.display())))?;
        Ok(Box::new(file))
    }

    /// The bytes of a held bundle, checked against its record before anything is applied: its
    /// SHA-256 must be its blob id (or, held before blobs, start with its id).
    fn held_bytes(&self, held: &Held) -> Result<Box<dyn Read + Send>> {
        let mut hasher = Sha256::new();
        std::io::copy(&mut self.open_held(held)?, &mut hasher)
            .map_err(|e| NodeError::Rejected(format!("reading held bundle {}: {e}", held.id)))?;
        let digest = Hash::from_bytes(hasher.finalize().into());
        let matches = match &held.blob {
            Some(blob) => blob.0 == digest,
            None => digest.to_hex().starts_with(&held.id),
        };
        if !matches {
            return Err(NodeError::Rejected(format!(
                "held bundle {} was altered since it arrived (its SHA-256 is now {digest}); nothing applied, nothing trusted; `rhizome reject {}` discards it",
                held.id, held.id
            )));
        }
        self.open_held(held)
    }

    /// Applies a held bundle and trusts its exporter. The held copy is kept if nothing of it
    /// could be stored (an error), so nothing is lost.
    pub fn approve(&mut self, id: &str, progress: &mut dyn FnMut(u64)) -> Result<ImportReport> {
        let held = self.find_held(id)?;
        let raw = BufReader::with_capacity(1 << 20, self.held_bytes(&held)?);
        let (mut plain, _) = self.open_bundle(Box::new(raw), None)?;
        let manifest = Manifest::parse(first_line(&mut plain)?.as_slice()).map_err(|e| {
            NodeError::Rejected(format!("held bundle {id}: line 1 (manifest): {e}"))
        })?;
        if manifest.exporter.public_key != held.public_key {
            return Err(NodeError::Rejected(format!(
                "held bundle {id} was made by {} but was held as {}'s; nothing applied",
                manifest.exporter.instance_id, held.instance_id
            )));
        }
        // Trusted first, so the import sees a trusted carrier; undone if nothing was stored.
        let before = self.store.peer(&held.instance_id)?.map(|p| p.trust);
        self.store
            .add_peer(&held.public_key, &held.name, Trust::Trusted)?;
        let raw = BufReader::with_capacity(1 << 20, self.held_bytes(&held)?);
        let (plain, _) = self.open_bundle(Box::new(raw), None)?;
        let opts = ImportOptions {
            now: now_ms(),
            method: Transport::Usb.as_str().into(),
        };
        match rhizome_sync::import_bundle(&mut *self.store, plain, &opts, progress) {
            Ok(report) => {
                self.store.release(id)?;
                if let Some(blob) = held.blob {
                    self.store.delete_blob(&blob)?;
                }
                Ok(report)
            }
            Err(e) => {
                self.store.add_peer(
                    &held.public_key,
                    &held.name,
                    before.unwrap_or(Trust::Unknown),
                )?;
                Err(e.into())
            }
        }
    }

    /// Discards a held bundle; nothing of it was applied.
    pub fn reject(&mut self, id: &str) -> Result<Held> {
        let held = self.find_held(id)?;
        self.discard(&held)?;
        Ok(held)
    }

    fn discard(&mut self, held: &Held) -> Result<()> {
        self.store.release(&held.id)?;
        match &held.blob {
            Some(blob) => self.store.delete_blob(blob)?,
            None => {
                if let Some(path) = self.location.legacy_held_file(&held.id) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        Ok(())
    }

    /// Trusts an instance that is known here (its bundles are then applied at once).
    pub fn trust(&mut self, id: &InstanceId) -> Result<()> {
        self.set_known_trust(id, Trust::Trusted)
    }

    /// Forgets a trust decision about an instance (its next bundle is held again).
    pub fn unblock(&mut self, id: &InstanceId) -> Result<()> {
        self.set_known_trust(id, Trust::Unknown)
    }

    fn set_known_trust(&mut self, id: &InstanceId, trust: Trust) -> Result<()> {
        let blocked_by_id = self.store.trust_of(id)? == Some(Trust::Blocked);
        let known = self.store.set_trust(id, trust)?;
        // Unblocking an instance blocked by id alone is fine: it is known as blocked.
        let unblocked_by_id = trust == Trust::Unknown && blocked_by_id;
        if !known && !unblocked_by_id {
            return Err(NodeError::invalid(format!(
                "unknown instance {id}: `rhizome peers` lists the instances this one has exchanged bundles with"
            )));
        }
        Ok(())
    }

    /// Blocks an instance, known or not: its bundles are refused from now on, and bundles of
    /// it held for approval are discarded in the same step.
    pub fn block(&mut self, id: &InstanceId) -> Result<Blocked> {
        let held: Vec<Held> = self
            .store
            .held()?
            .into_iter()
            .filter(|h| h.instance_id == *id)
            .collect();
        let known = self.store.set_trust(id, Trust::Blocked)?;
        if !known {
            match held.first() {
                Some(h) => self
                    .store
                    .add_peer(&h.public_key, &h.name, Trust::Blocked)?,
                None => self.store.block_instance(id)?,
            }
        }
        for h in &held {
            self.discard(h)?;
        }
        Ok(Blocked {
            instance_id: *id,
            rejected: held,
        })
    }

    /// Blocks (or unblocks) an author given by local name or key; with `purge`, removes their
    /// events from the log.
    pub fn block_author(&mut self, author: &str, block: bool, purge: bool) -> Result<AuthorBlock> {
        let key = self.resolve_author(author, "author")?;
        let changed = if block {
            self.store.block_author(&key)?
        } else {
            self.store.unblock_author(&key)?
        };
        let purged_events = if purge {
            self.store.purge_author(&key)?
        } else {
            0
        };
        Ok(AuthorBlock {
            author: key,
            changed,
            purged_events,
        })
    }

    /// Known peers, with their clocks, trust and last exchange.
    pub fn peers(&self) -> Result<Vec<Peer>> {
        Ok(self.store.peers()?)
    }

    /// Fork evidence kept.
    pub fn forks(&self) -> Result<Vec<ForkRecord>> {
        Ok(self.store.forks()?)
    }

    /// Reads a bundle without storing anything: its layers, manifest, lines and trailer.
    /// An encrypted bundle is opened with this instance's key.
    pub fn inspect(
        &self,
        input: Box<dyn BufRead + Send + '_>,
        len: Option<u64>,
    ) -> Result<(Inspection, Layers)> {
        let (plain, layers) = self.open_bundle(input, len)?;
        Ok((rhizome_sync::inspect_bundle(plain)?, layers))
    }

    /// [`Node::inspect`] without an instance: a plain or compressed bundle only.
    pub fn inspect_without_keys(
        input: Box<dyn BufRead + Send + '_>,
        len: Option<u64>,
    ) -> Result<(Inspection, Layers)> {
        let (plain, layers) = open_layers(input, len, None, None)?;
        Ok((rhizome_sync::inspect_bundle(plain)?, layers))
    }
}

/// Line 1 of a bundle, without its line feed.
fn first_line(input: &mut dyn BufRead) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    input
        .take(rhizome_core::bundle::MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(line)
}
