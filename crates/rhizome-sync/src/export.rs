//! Export: decide from clocks what a peer lacks, then write a bundle, atomically when it is a
//! file. Reads only the (author, seq) ranges beyond the base clock, so a delta costs O(delta).
//! Payloads limited to a circle (PROTOCOL 9) are withheld unless the recipient hosts the author
//! or a member of the audience: the decision is made once, in the plan, and the writer follows it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rhizome_core::bundle::{self, Counts, Evidence, Exporter, FeedRange, Manifest, Trailer};
use rhizome_core::{Clock, Event, Hash, InstanceId, PublicKey, SecretKey, Seq};
use rhizome_store::{Store, StoreError};
use sha2::{Digest, Sha256};

/// What an export will carry, known exactly before a byte is written.
#[derive(Debug, Clone)]
pub struct ExportPlan {
    /// The manifest to sign (its counts are exact).
    pub manifest: Manifest,
    /// Per feed, the seqs whose limited payload this recipient may not have.
    pub withheld: HashMap<PublicKey, HashSet<u64>>,
    /// The fork evidence lines (each with its newline), in the order of `manifest.evidence`.
    pub evidence_lines: Vec<Vec<u8>>,
    /// What the recipient holds once this bundle is in: the manifest's clock, lowered where
    /// [`ExportPlan::cut_to`] left events out. Recorded as what was sent to a peer.
    pub sent: Clock,
}

impl ExportPlan {
    /// Number of payloads withheld for privacy.
    pub fn withheld_count(&self) -> u64 {
        self.withheld.values().map(|s| s.len() as u64).sum()
    }

    /// Exact size of the bundle file: manifest line, event lines, trailer line.
    pub fn file_bytes(&self, key: &SecretKey) -> u64 {
        let trailer = Trailer {
            trailer: bundle::FORMAT.into(),
            events: self.manifest.counts.events,
            sha256: Hash::digest(b""),
        };
        self.manifest.to_line(key).len() as u64
            + 1
            + self.manifest.counts.bytes
            + trailer.to_line(key).len() as u64
            + 1
    }

    /// Cuts the plan so that its event lines take at most `max_bytes`, keeping a prefix of
    /// each feed in manifest order (a feed's events must arrive in order), and at least one
    /// event so that every piece moves the recipient forward. Fork evidence beyond what the
    /// recipient will then hold is left out too. Returns whether anything was left out: the
    /// rest goes in a later bundle planned from the recipient's new clock.
    pub fn cut_to(&mut self, store: &dyn Store, max_bytes: u64) -> Result<bool, StoreError> {
        if self.manifest.counts.bytes <= max_bytes {
            return Ok(false);
        }
        let none = HashSet::new();
        let mut left = max_bytes;
        let (mut kept, mut counts) = (Vec::new(), Counts::default());
        let mut full = false;
        for feed in std::mem::take(&mut self.manifest.feeds) {
            if full {
                self.lower(feed.author, feed.from - 1);
                continue;
            }
            let hidden = self.withheld.get(&feed.author).unwrap_or(&none);
            let withhold = |seq: u64| hidden.contains(&seq);
            let whole = store.plan_range(&feed.author, feed.from, feed.to, &withhold)?;
            let (to, plan) = if whole.bytes <= left {
                (feed.to, whole)
            } else {
                // The longest prefix that fits, by bisection over `to` (log2(n) range sums).
                let (mut fits, mut over) = (feed.from - 1, feed.to);
                let mut best = None;
                while over - fits > 1 {
                    let mid = fits + (over - fits) / 2;
                    let p = store.plan_range(&feed.author, feed.from, mid, &withhold)?;
                    if p.bytes <= left {
                        (fits, best) = (mid, Some(p));
                    } else {
                        over = mid;
                    }
                }
                match best {
                    Some(p) => (fits, p),
                    None if counts.events == 0 => {
                        let p = store.plan_range(&feed.author, feed.from, feed.from, &withhold)?;
                        (feed.from, p)
                    }
                    None => (feed.from - 1, Default::default()),
                }
            };
            let Some(head) = plan.head.filter(|_| to >= feed.from) else {
                full = true;
                self.lower(feed.author, feed.from - 1);
                continue;
            };
            left = left.saturating_sub(plan.bytes);
            counts.events += plan.count;
            counts.bytes += plan.bytes;
            counts.feeds += 1;
            if to < feed.to {
                // The first feed that does not fit whole ends the piece.
                full = true;
                self.lower(feed.author, to);
            }
            kept.push(FeedRange { to, head, ..feed });
        }
        self.manifest.feeds = kept;
        // Evidence only for positions the recipient will hold.
        let (mut evidence, mut lines) = (Vec::new(), Vec::new());
        for (e, line) in self
            .manifest
            .evidence
            .drain(..)
            .zip(self.evidence_lines.drain(..))
        {
            let reach = self
                .sent
                .get(&e.author)
                .max(self.manifest.base.get(&e.author));
            if e.seq <= reach {
                counts.events += 1;
                counts.bytes += line.len() as u64;
                evidence.push(e);
                lines.push(line);
            }
        }
        self.manifest.evidence = evidence;
        self.evidence_lines = lines;
        self.manifest.counts = counts;
        Ok(self.sent != self.manifest.clock)
    }

    /// Records that the recipient will hold `author`'s feed only up to `seq`.
    fn lower(&mut self, author: PublicKey, seq: u64) {
        match Seq::new(seq) {
            Ok(s) => self.sent.set(author, s),
            Err(_) => self.sent.remove(&author),
        }
    }
}

/// Plans an export of everything beyond `base`, for `recipient` (None: anyone, so no limited
/// payload is carried). The manifest publishes this instance's host declarations.
pub fn plan_export(
    store: &dyn Store,
    exporter: Exporter,
    base: Clock,
    recipient: Option<InstanceId>,
    created_at: u64,
) -> Result<ExportPlan, StoreError> {
    let clock = store.clock()?;
    let blocked = store.blocked_authors()?;
    let hosts = match &recipient {
        Some(id) => store.peer_hosts(id)?,
        None => HashSet::new(),
    };
    let mut withheld: HashMap<PublicKey, HashSet<u64>> = HashMap::new();
    let mut feeds = Vec::new();
    let mut counts = Counts::default();
    for (author, from, to) in crate::policy::ranges_to_send(&clock, &base, &blocked) {
        let hidden: HashSet<u64> = store
            .limited(&author, from, to)?
            .into_iter()
            .filter(|(_, audience)| crate::policy::withhold(&author, audience, &hosts))
            .map(|(seq, _)| seq)
            .collect();
        let plan = store.plan_range(&author, from, to, &|seq| hidden.contains(&seq))?;
        if !hidden.is_empty() {
            withheld.insert(author, hidden);
        }
        let Some(head) = plan.head else { continue };
        counts.events += plan.count;
        counts.bytes += plan.bytes;
        counts.feeds += 1;
        feeds.push(FeedRange {
            author,
            from,
            to,
            head,
        });
    }
    // Fork evidence travels as the other event's signed header (its payload withheld: it may
    // be limited), for positions the recipient holds once this bundle is in, so that it is
    // recognised there as a fork and never waits in pending.
    let mut evidence = Vec::new();
    let mut evidence_lines = Vec::new();
    for author in store.forked_authors()? {
        let reach = clock.get(&author).max(base.get(&author));
        if blocked.contains(&author) || reach == 0 {
            continue;
        }
        for (seq, hash, line) in store.fork_lines(&author)? {
            if seq > reach {
                continue;
            }
            let mut ev = Event::parse(&line).map_err(|e| StoreError::BadRow {
                location: format!("forks {author} seq {seq}"),
                detail: e.to_string(),
            })?;
            ev.payload = None;
            let mut line = ev.to_line();
            line.push(b'\n');
            counts.events += 1;
            counts.bytes += line.len() as u64;
            evidence.push(Evidence { author, seq, hash });
            evidence_lines.push(line);
        }
    }
    let local_hosts = store
        .local_hosts()?
        .into_iter()
        .filter(|d| d.instance_id == exporter.instance_id)
        .collect();
    Ok(ExportPlan {
        withheld,
        evidence_lines,
        sent: clock.clone(),
        manifest: Manifest {
            format: bundle::FORMAT.into(),
            exporter,
            clock,
            base,
            recipient,
            feeds,
            counts,
            created_at,
            hosts: local_hosts,
            evidence,
        },
    })
}

/// A writer that hashes what passes through it.
struct Hashing<'a, W: Write + ?Sized> {
    inner: &'a mut W,
    hasher: Sha256,
}

impl<W: Write + ?Sized> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the bundle a plan describes. `progress` is called with the events written so far.
pub fn write_bundle<W: Write + ?Sized>(
    store: &dyn Store,
    plan: &ExportPlan,
    key: &SecretKey,
    out: &mut W,
    progress: &mut dyn FnMut(u64),
) -> Result<Trailer, StoreError> {
    let io = |e: std::io::Error| StoreError::Limit(format!("writing the bundle: {e}"));
    let mut w = Hashing {
        inner: out,
        hasher: Sha256::new(),
    };
    // No line a reader would refuse (PROTOCOL 8.7): fail before writing anything.
    let manifest = plan.manifest.to_line(key);
    if manifest.len() > bundle::MAX_LINE {
        return Err(StoreError::Limit(format!(
            "the manifest line of {} bytes is over the {}-byte limit readers accept: export fewer feeds at a time",
            manifest.len(),
            bundle::MAX_LINE
        )));
    }
    w.write_all(&manifest).map_err(io)?;
    w.write_all(b"\n").map_err(io)?;
    let mut written = 0u64;
    let none = HashSet::new();
    for f in &plan.manifest.feeds {
        let hidden = plan.withheld.get(&f.author).unwrap_or(&none);
        let withhold = |seq: u64| hidden.contains(&seq);
        written += store.write_range(&f.author, f.from, f.to, &withhold, &mut |line| {
            if line.len() > bundle::MAX_EVENT_LINE + 1 {
                return Err(std::io::Error::other(format!(
                    "an event line of {} bytes is over the {}-byte limit readers accept",
                    line.len() - 1,
                    bundle::MAX_EVENT_LINE
                )));
            }
            w.write_all(line)
        })?;
        progress(written);
    }
    for line in &plan.evidence_lines {
        w.write_all(line).map_err(io)?;
        written += 1;
    }
    if written != plan.manifest.counts.events {
        return Err(StoreError::Limit(format!(
            "the store changed while exporting: planned {} events, wrote {written}",
            plan.manifest.counts.events
        )));
    }
    let trailer = Trailer {
        trailer: bundle::FORMAT.into(),
        events: written,
        sha256: Hash::from_bytes(w.hasher.clone().finalize().into()),
    };
    w.write_all(&trailer.to_line(key)).map_err(io)?;
    w.write_all(b"\n").map_err(io)?;
    w.flush().map_err(io)?;
    Ok(trailer)
}

/// Writes `path` through a temporary file beside it: write, fsync, rename, fsync the
/// directory. An interrupted write never leaves a file at `path` that looks complete. The
/// temporary file has a random name and is created exclusively (`O_EXCL`: never through a link
/// planted at its name), readable by its owner only (0600, kept by the file written: a bundle
/// may carry circle payloads).
pub fn write_file_atomically<T, E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, E>,
) -> Result<T, E> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempfile_in(&dir)?;
    // Dropping `temp_path` on any error below removes the partial file.
    let (file, temp_path) = temp.into_parts();
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let value = write(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    temp_path.persist(path).map_err(|e| e.error)?;
    File::open(&dir)?.sync_all()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhizome_core::event::{sign, EventType, Payload};
    use rhizome_core::{Seq, Timestamp, VerifiedEvent};
    use rhizome_store::LogStore;

    fn exporter(key: &SecretKey) -> Exporter {
        Exporter {
            instance_id: InstanceId::of(&key.public_key()),
            public_key: key.public_key(),
            name: "x".into(),
            age_recipient: None,
        }
    }

    /// The writer never produces a line a reader refuses (PROTOCOL 8.7): an event line over
    /// 2 MiB (a store holds one only if it imported it before that limit) or a manifest over
    /// 16 MiB stops the export with a clear error.
    #[test]
    fn no_line_over_the_reader_limits_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = rhizome_store_sqlite::SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let key = SecretKey::from_seed(&[5; 32]);
        let author = SecretKey::from_seed(&[6; 32]);
        let big = sign(
            &author,
            Seq::FIRST,
            None,
            EventType::new("BLOB").unwrap(),
            Timestamp::new(1).unwrap(),
            Payload::new(serde_json::json!({"data": "x".repeat(bundle::MAX_EVENT_LINE)})).unwrap(),
        )
        .unwrap();
        store.append(&[big]).unwrap();
        let plan = plan_export(&store, exporter(&key), Clock::new(), None, 0).unwrap();
        let mut out = Vec::new();
        let e = write_bundle(&store, &plan, &key, &mut out, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("2097152-byte limit"), "{e}");

        let empty = tempfile::tempdir().unwrap();
        let store = rhizome_store_sqlite::SqliteStore::open(&empty.path().join("t.db")).unwrap();
        let mut plan = plan_export(&store, exporter(&key), Clock::new(), None, 0).unwrap();
        plan.manifest.exporter.name = "n".repeat(bundle::MAX_LINE);
        let mut out = Vec::new();
        let e = write_bundle(&store, &plan, &key, &mut out, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("16777216-byte limit"), "{e}");
        assert!(out.is_empty(), "nothing written");
    }

    fn chain(author: &SecretKey, n: u64, size: usize) -> Vec<VerifiedEvent> {
        let mut out: Vec<VerifiedEvent> = Vec::new();
        for i in 1..=n {
            let ev = sign(
                author,
                Seq::new(i).unwrap(),
                out.last().map(|e| e.hash),
                EventType::new("POST").unwrap(),
                Timestamp::new(i).unwrap(),
                Payload::new(serde_json::json!({"text": format!("{i}{}", "x".repeat(size))}))
                    .unwrap(),
            )
            .unwrap();
            out.push(ev);
        }
        out
    }

    /// A plan cut to a size keeps a prefix of each feed within it, says what the recipient
    /// will hold, and pieces planned again from the recipient's new clock each time bring it
    /// everything, each within the size (one event over it only when a single event is
    /// larger than the size).
    #[test]
    fn pieces_cut_to_a_size_bring_everything_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut source = rhizome_store_sqlite::SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let mut sink = rhizome_store_sqlite::SqliteStore::open(&dir.path().join("r.db")).unwrap();
        let key = SecretKey::from_seed(&[5; 32]);
        for (seed, n, size) in [(10u8, 40, 100), (11, 7, 3000), (12, 25, 10)] {
            source
                .append(&chain(&SecretKey::from_seed(&[seed; 32]), n, size))
                .unwrap();
        }
        let whole = plan_export(&source, exporter(&key), Clock::new(), None, 0).unwrap();
        let max = 2500;
        let mut pieces = 0;
        loop {
            let base = sink.clock().unwrap();
            let mut plan = plan_export(&source, exporter(&key), base.clone(), None, 0).unwrap();
            if plan.manifest.counts.events == 0 {
                break;
            }
            let cut = plan.cut_to(&source, max).unwrap();
            pieces += 1;
            assert!(pieces < 200, "no convergence");
            assert!(plan.manifest.counts.events >= 1);
            if plan.manifest.counts.events > 1 {
                assert!(
                    plan.manifest.counts.bytes <= max,
                    "{:?}",
                    plan.manifest.counts
                );
            }
            assert_eq!(cut, plan.sent != source.clock().unwrap());
            let mut out = Vec::new();
            write_bundle(&source, &plan, &key, &mut out, &mut |_| {}).unwrap();
            let opts = crate::ImportOptions {
                now: 1,
                method: "usb".into(),
            };
            let report = crate::import_bundle(
                &mut sink,
                std::io::BufReader::new(&out[..]),
                &opts,
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(report.status, crate::Status::Complete, "{report:?}");
            assert!(report.missing.is_empty(), "{:?}", report.missing);
            // What the plan said the recipient would hold is what it holds.
            assert_eq!(sink.clock().unwrap(), plan.sent);
        }
        assert_eq!(sink.clock().unwrap(), source.clock().unwrap());
        assert!(
            pieces >= whole.manifest.counts.bytes / max,
            "{pieces} pieces"
        );
    }

    /// A link planted where the old writer put its temporary file (`.NAME.partial-PID`) and
    /// a link at every name it might pick are never followed: the victim keeps its bytes.
    #[cfg(unix)]
    #[test]
    fn the_temporary_file_never_follows_a_planted_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let out = dir.path().join("out.bundle");
        let planted = dir
            .path()
            .join(format!(".out.bundle.partial-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_file_atomically(&out, |w| -> Result<(), std::io::Error> {
            w.write_all(b"bundle bytes")
        })
        .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&out).unwrap(), b"bundle bytes");
        assert!(!std::fs::symlink_metadata(&out).unwrap().is_symlink());
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Nothing else is left beside it but the planted link.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        // A failed write leaves no partial file.
        let failed =
            write_file_atomically(&dir.path().join("x"), |w| -> Result<(), std::io::Error> {
                w.write_all(b"half")?;
                Err(std::io::Error::other("stop"))
            });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }
}
