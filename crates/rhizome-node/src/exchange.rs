//! Carrying bundles: export for a peer (or anyone) to any `Write`, import from any `BufRead`
//! in one pass (the manifest decides admission, then the same stream is imported or held),
//! and opening encrypted or compressed bundles with this instance's keys. A stick and an HTTPS
//! body go through the same functions; only the [`Transport`] recorded differs.

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rhizome_core::bundle::{Exporter, Manifest, MAX_LINE};
use rhizome_core::{Clock, Hash, InstanceId, SecretKey};
use rhizome_store::{BlobId, BlobSink, Direction, Held, Peer, Trust};
use rhizome_sync::codec::{self, Layers};
use rhizome_sync::{admit, Admission, ExportPlan, ImportOptions, ImportReport, Inspection};
use serde::Serialize;

use crate::{now_ms, Node, NodeError, Result, Transport};

/// Which clock an export is cut against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// Everything (no peer, or a peer treated as knowing nothing).
    Nothing,
    /// What the peer's own latest bundle said it holds (the default for a stick).
    Acked,
    /// What was already put in bundles for the peer (skips what a lost stick carried).
    Sent,
    /// What the peer says it holds right now (a live HTTPS request).
    Stated(Clock),
}

/// What to export, and for whom.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The peer it is for (its privacy rule applies); `None`: anyone (no circle-only payload).
    pub peer: Option<InstanceId>,
    /// The clock the delta is cut against.
    pub base: Base,
    /// zstd-compress the bundle.
    pub compress: bool,
    /// Encrypt to these instances (their age keys come from their manifests; our own id is
    /// allowed too).
    pub encrypt_to: Vec<InstanceId>,
    /// How it will travel.
    pub transport: Transport,
}

/// An export planned exactly, before a byte is written.
pub struct PreparedExport {
    pub(crate) plan: ExportPlan,
    key: Option<SecretKey>,
    recipients: Vec<String>,
    peer: Option<Peer>,
    compress: bool,
    transport: Transport,
    /// Cut to a size: the peer lacks more than this export carries.
    pub(crate) partial: bool,
}

/// What an export will carry (or carried).
#[derive(Debug, Clone, Serialize)]
pub struct ExportPreview {
    /// Events (with fork evidence).
    pub events: u64,
    /// Feeds.
    pub feeds: u64,
    /// Exact bundle bytes before compression and encryption.
    pub bytes: u64,
    /// Circle-only payloads withheld (signed headers only).
    pub withheld_payloads: u64,
    /// The peer it is for.
    pub recipient: Option<InstanceId>,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Events written.
    pub events: u64,
    /// Feeds.
    pub feeds: u64,
    /// SHA-256 of the plain bundle before its trailer (the trailer's `sha256`).
    pub sha256: Hash,
    /// Circle-only payloads withheld.
    pub withheld_payloads: u64,
    /// The peer it is for.
    pub recipient: Option<InstanceId>,
}

impl PreparedExport {
    /// What it will carry.
    pub fn preview(&self) -> ExportPreview {
        let counts = self.plan.manifest.counts;
        // The size of the signed lines does not depend on the key: a dry run measures with a
        // throwaway one.
        let sizing = self
            .key
            .clone()
            .unwrap_or_else(|| SecretKey::from_seed(&[0; 32]));
        ExportPreview {
            events: counts.events,
            feeds: counts.feeds,
            bytes: self.plan.file_bytes(&sizing),
            withheld_payloads: self.plan.withheld_count(),
            recipient: self.peer.as_ref().map(|p| p.instance_id),
        }
    }

    /// The peer it is for.
    pub fn peer(&self) -> Option<&Peer> {
        self.peer.as_ref()
    }

    /// Whether it carries no event line at all (no event, no fork evidence). Cheaper than
    /// [`PreparedExport::preview`], which signs the manifest to measure it.
    pub fn is_empty(&self) -> bool {
        self.plan.manifest.counts.events == 0
    }

    /// Whether the peer lacks more than this export carries (it was cut to a size).
    pub fn partial(&self) -> bool {
        self.partial
    }
}

/// What became of a bundle given to [`Node::import`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ImportOutcome {
    /// Imported (its carrier trusted, or our own bundle).
    Imported(Box<ImportReport>),
    /// From an instance never approved: verified, nothing stored, held for a person.
    Held(Box<HeldReport>),
}

/// A bundle put in quarantine.
#[derive(Debug, Clone, Serialize)]
pub struct HeldReport {
    /// The record.
    pub held: Held,
    /// False when the same bundle was already held.
    pub new: bool,
    /// What the full check found.
    pub check: Inspection,
}

/// Where the raw bytes read through a [`Tee`] go: kept in memory until admission is decided
/// (at most the manifest and what the decoders read ahead), then into a held blob, or nowhere.
enum Recording {
    Buffer(Vec<u8>),
    Sink(Box<dyn BlobSink>),
    Off,
}

/// A reader that records the raw bytes read through it (see [`Recording`]).
struct Tee<R> {
    inner: R,
    recording: Arc<Mutex<Recording>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut rec = self
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &mut *rec {
            Recording::Buffer(b) => b.extend_from_slice(&buf[..n]),
            Recording::Sink(s) => s.write_all(&buf[..n])?,
            Recording::Off => {}
        }
        Ok(n)
    }
}

/// Reads line 1 (the manifest) from `input`, at most [`MAX_LINE`] bytes and its line feed.
fn read_first_line(input: &mut dyn BufRead) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    input
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| NodeError::Rejected(format!("reading the bundle: {e}")))?;
    Ok(line)
}

impl Node {
    /// Plans an export exactly: what it carries, for whom, and its size. Unlocks the instance
    /// key unless `dry_run` (a dry run only measures).
    pub fn prepare_export(&self, req: &ExportRequest, dry_run: bool) -> Result<PreparedExport> {
        let identity = self.store.identity()?;
        let own_id = InstanceId::of(&identity.public_key);
        // Each recipient's age key, from its manifests; checked before anything is unlocked.
        let mut recipients = Vec::new();
        for id in &req.encrypt_to {
            if *id == own_id {
                recipients.push(None);
                continue;
            }
            let peer = self.store.peer(id)?.ok_or_else(|| {
                NodeError::invalid(format!("--encrypt-to {id}: unknown instance; import a bundle from it first, so its key is known"))
            })?;
            let key = peer.age_recipient.ok_or_else(|| {
                NodeError::invalid(format!("--encrypt-to {id}: {:?} has not published an encryption key yet (its bundles were made by an older rhizome)", peer.name))
            })?;
            recipients.push(Some(key));
        }
        let peer = match &req.peer {
            None => None,
            Some(id) => Some(self.store.peer(id)?.ok_or_else(|| {
                NodeError::invalid(format!("unknown peer {id}: import a bundle from it first (see `rhizome peers`), or export --all"))
            })?),
        };
        let base = match (&req.base, &peer) {
            (Base::Stated(c), _) => c.clone(),
            (Base::Acked, Some(p)) => p.acked.clone(),
            (Base::Sent, Some(p)) => p.sent.clone(),
            _ => Clock::new(),
        };
        let key = if dry_run {
            None
        } else {
            Some(self.instance_key()?)
        };
        let own_recipient =
            codec::instance_recipient(key.as_ref().unwrap_or(&SecretKey::from_seed(&[0; 32])));
        let recipients = recipients
            .into_iter()
            .map(|r| r.unwrap_or_else(|| own_recipient.clone()))
            .collect();
        let exporter = Exporter {
            instance_id: own_id,
            public_key: identity.public_key,
            name: identity.name,
            age_recipient: Some(own_recipient),
        };
        let plan = rhizome_sync::plan_export(
            &*self.store,
            exporter,
            base,
            peer.as_ref().map(|p| p.instance_id),
            now_ms(),
        )?;
        Ok(PreparedExport {
            plan,
            key,
            recipients,
            peer,
            compress: req.compress,
            transport: req.transport,
            partial: false,
        })
    }

    /// Writes a prepared export to `out` (layers from the outside in: encryption, compression,
    /// the bundle), then records what was sent to the peer. `progress` gets events written.
    pub fn export(
        &mut self,
        prepared: &PreparedExport,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportReport> {
        let key = prepared
            .key
            .as_ref()
            .ok_or_else(|| NodeError::invalid("a dry run writes nothing"))?;
        let io = |e: std::io::Error| NodeError::Io(format!("writing the bundle: {e}"));
        let store = &*self.store;
        let plan = &prepared.plan;
        let mut bundle = |out: &mut dyn Write| -> Result<_> {
            if !prepared.compress {
                return Ok(rhizome_sync::write_bundle(store, plan, key, out, progress)?);
            }
            let mut z = codec::encoder(out).map_err(io)?;
            let t = rhizome_sync::write_bundle(store, plan, key, &mut z, progress)?;
            z.finish().map_err(io)?;
            Ok(t)
        };
        let trailer = if prepared.recipients.is_empty() {
            bundle(out)?
        } else {
            let mut sealed = codec::encrypt(out, &prepared.recipients).map_err(io)?;
            let t = bundle(&mut sealed)?;
            sealed.finish().map_err(io)?;
            t
        };
        if let Some(peer) = &prepared.peer {
            self.store.record_exchange(
                &peer.public_key,
                &peer.name,
                Direction::Export,
                &plan.sent,
                now_ms(),
                prepared.transport.as_str(),
            )?;
        }
        Ok(ExportReport {
            events: trailer.events,
            feeds: plan.manifest.counts.feeds,
            sha256: trailer.sha256,
            withheld_payloads: plan.withheld_count(),
            recipient: prepared.peer.as_ref().map(|p| p.instance_id),
        })
    }

    /// Writes a prepared export to a file atomically (temporary file, fsync, rename).
    pub fn export_file(
        &mut self,
        prepared: &PreparedExport,
        to: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportReport> {
        rhizome_sync::write_file_atomically(to, |file| -> Result<_> {
            self.export(prepared, file, progress)
        })
        .map_err(|e| match e {
            NodeError::Io(m) => NodeError::Io(format!("writing {}: {m}", to.display())),
            other => other,
        })
    }

    /// Unwraps a bundle's layers (age encryption to this instance or to a passphrase, zstd),
    /// each detected by its magic bytes. `len` (the file size, when known) bounds
    /// decompression.
    pub fn open_bundle<'a>(
        &self,
        mut raw: Box<dyn BufRead + Send + 'a>,
        len: Option<u64>,
    ) -> Result<(Box<dyn BufRead + Send + 'a>, Layers)> {
        let head = raw
            .fill_buf()
            .map_err(|e| NodeError::Rejected(format!("reading the bundle: {e}")))?;
        let identity = if codec::is_encrypted(head) {
            let key = self.instance_key().map_err(|e| match e {
                NodeError::Passphrase(m) => NodeError::Passphrase(format!(
                    "the bundle is encrypted; opening it needs this instance's key: {m}"
                )),
                other => other,
            })?;
            Some(codec::instance_identity(&key))
        } else {
            None
        };
        open_layers(raw, len, identity, Some(self.keys.unlock()))
    }

    /// Imports a bundle from `input` (its raw bytes, any layers) in one pass: reads the
    /// manifest, decides admission (`rhizome_sync::admit`), then on the same stream imports
    /// it, or verifies it while copying it into quarantine, or refuses it. `progress` gets
    /// bytes read.
    pub fn import(
        &mut self,
        input: Box<dyn BufRead + Send + '_>,
        len: Option<u64>,
        transport: Transport,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportOutcome> {
        let own = self.store.identity()?.public_key;
        let recording = Arc::new(Mutex::new(Recording::Buffer(Vec::new())));
        let tee = BufReader::with_capacity(
            1 << 16,
            Tee {
                inner: input,
                recording: Arc::clone(&recording),
            },
        );
        let (mut plain, _) = self.open_bundle(Box::new(tee), len)?;
        let first = read_first_line(&mut plain)?;
        let manifest = Manifest::parse(first.strip_suffix(b"\n").unwrap_or(&first))
            .map_err(|e| NodeError::Rejected(format!("line 1 (manifest): {e}")))?;
        let exporter = manifest.exporter.clone();
        let trust = self.store.trust_of(&exporter.instance_id)?;
        let admission = admit(&exporter, &own, trust, &self.policy);
        let set = |r: Recording| {
            std::mem::replace(
                &mut *recording.lock().unwrap_or_else(PoisonError::into_inner),
                r,
            )
        };
        if admission != Admission::Hold {
            set(Recording::Off);
        }
        let mut whole = Cursor::new(first).chain(plain);
        match admission {
            Admission::Refuse(why) => Err(NodeError::Refused(why)),
            Admission::Import | Admission::TrustAndImport => {
                if admission == Admission::TrustAndImport {
                    self.store
                        .add_peer(&exporter.public_key, &exporter.name, Trust::Trusted)?;
                }
                let opts = ImportOptions {
                    now: now_ms(),
                    method: transport.as_str().into(),
                };
                let report = rhizome_sync::import_bundle(&mut *self.store, whole, &opts, progress)?;
                Ok(ImportOutcome::Imported(Box::new(report)))
            }
            Admission::Hold => {
                // Held bundles are kept raw, as they came: approving one opens it as any bundle.
                let mut sink = self.store.blob_sink()?;
                if let Recording::Buffer(read) = set(Recording::Off) {
                    sink.write_all(&read)
                        .map_err(|e| NodeError::Io(format!("holding the bundle: {e}")))?;
                }
                set(Recording::Sink(sink));
                let check = rhizome_sync::check_bundle(&mut whole)?;
                // Whatever the check left unread still belongs to the held copy.
                std::io::copy(&mut whole, &mut std::io::sink())
                    .map_err(|e| NodeError::Rejected(format!("reading the bundle: {e}")))?;
                drop(whole);
                let Recording::Sink(sink) = set(Recording::Off) else {
                    return Err(NodeError::Io("the held copy was lost".into()));
                };
                let blob = sink.finish()?;
                self.hold(blob, manifest, check)
            }
        }
    }

    fn hold(
        &mut self,
        blob: BlobId,
        manifest: Manifest,
        check: Inspection,
    ) -> Result<ImportOutcome> {
        let held = Held {
            id: hex::encode(&blob.0.as_bytes()[..8]),
            blob: Some(blob),
            instance_id: manifest.exporter.instance_id,
            public_key: manifest.exporter.public_key,
            name: manifest.exporter.name.clone(),
            events: check.event_lines,
            feeds: manifest.counts.feeds,
            invalid: check.malformed_lines + check.invalid_events,
            arrived_at: now_ms(),
            incomplete: check.status.incomplete(),
        };
        let new = self.store.hold(&held)?;
        Ok(ImportOutcome::Held(Box::new(HeldReport {
            held,
            new,
            check,
        })))
    }
}

/// Unwraps a bundle's layers with the identities given: `identity` for bundles encrypted to an
/// instance, `unlock` for bundles encrypted to a passphrase. Without them an encrypted bundle
/// is refused with the reason.
pub fn open_layers<'a>(
    raw: Box<dyn BufRead + Send + 'a>,
    len: Option<u64>,
    identity: Option<age::x25519::Identity>,
    unlock: Option<&dyn crate::Unlock>,
) -> Result<(Box<dyn BufRead + Send + 'a>, Layers)> {
    let mut keys = |scrypt: bool| -> std::io::Result<Vec<Box<dyn age::Identity>>> {
        if scrypt {
            let pass = unlock.and_then(|u| u.bundle_passphrase()).ok_or_else(|| {
                std::io::Error::other(
                    "encrypted to a passphrase: set RHIZOME_BUNDLE_PASSPHRASE to read it",
                )
            })?;
            return Ok(vec![codec::passphrase_identity(&pass)]);
        }
        match &identity {
            Some(i) => Ok(vec![Box::new(i.clone())]),
            None => Err(std::io::Error::other(
                "encrypted; give the --home of the instance it is encrypted to",
            )),
        }
    };
    codec::decode(raw, len, &mut keys)
        .map_err(|e| NodeError::Rejected(format!("not a readable bundle: {e}")))
}
