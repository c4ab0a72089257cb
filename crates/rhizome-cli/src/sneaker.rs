//! `export`, `import`, `bundle inspect`, `peers`, `forks`: bundles on a stick.

use anyhow::{Context, Result};
use rhizome_core::bundle::Exporter;
use rhizome_core::{Clock, InstanceId};
use rhizome_store::prelude::*;
use rhizome_store::{Direction, Trust};
use rhizome_sync::{ImportOptions, Status};
use serde_json::json;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use crate::exit::{fail, INVALID_INPUT, PARTIAL, REJECTED, TRUNCATED};
use crate::home::{self, Keeper};
use crate::now_ms;

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1_048_576.0)
}

fn parse_instance(text: &str) -> Result<InstanceId> {
    text.parse().map_err(|e| {
        fail(
            INVALID_INPUT,
            format!("{text:?} is not an instance id (32 hex characters): {e}"),
        )
    })
}

/// Options of `rhizome export`.
pub struct ExportArgs<'a> {
    /// Cut for this peer (instance id), else everything.
    pub for_peer: Option<&'a str>,
    /// Cut against `sent` instead of `acked`.
    pub since_sent: bool,
    /// Only estimate.
    pub dry_run: bool,
    /// zstd.
    pub compress: bool,
    /// Instance ids to encrypt to.
    pub encrypt_to: &'a [String],
}

/// `rhizome export`.
pub fn export(home_dir: &Path, to: &Path, args: ExportArgs<'_>, json: bool) -> Result<()> {
    let ExportArgs {
        for_peer,
        since_sent,
        dry_run,
        compress,
        encrypt_to,
    } = args;
    let mut store = home::open(home_dir)?;
    let identity = store.identity()?;
    let own_id = InstanceId::of(&identity.public_key);
    // Each recipient's age key, from its manifests; checked before anything is unlocked.
    let mut recipients = Vec::new();
    for text in encrypt_to {
        let id = parse_instance(text)?;
        if id == own_id {
            recipients.push(None);
            continue;
        }
        let peer = store.peer(&id)?.ok_or_else(|| {
            fail(INVALID_INPUT, format!("--encrypt-to {id}: unknown instance; import a bundle from it first, so its key is known"))
        })?;
        let key = peer.age_recipient.ok_or_else(|| {
            fail(INVALID_INPUT, format!("--encrypt-to {id}: {:?} has not published an encryption key yet (its bundles were made by an older rhizome)", peer.name))
        })?;
        recipients.push(Some(key));
    }
    let (base, recipient) = match for_peer {
        None => (Clock::new(), None),
        Some(text) => {
            let id = parse_instance(text)?;
            let peer = store.peer(&id)?.ok_or_else(|| {
                fail(INVALID_INPUT, format!("unknown peer {id}: import a bundle from it first (see `rhizome peers`), or export --all"))
            })?;
            (
                if since_sent {
                    peer.sent.clone()
                } else {
                    peer.acked.clone()
                },
                Some(peer),
            )
        }
    };
    // The key signs the manifest and derives the age recipient it publishes; a dry run only
    // estimates, with a throwaway key of the same sizes.
    let key = if dry_run {
        rhizome_core::SecretKey::from_seed(&[0; 32])
    } else {
        Keeper::unlock(&identity.secret)?.open(&identity.secret, &identity.public_key)?
    };
    let own_recipient = rhizome_sync::codec::instance_recipient(&key);
    let recipients: Vec<String> = recipients
        .into_iter()
        .map(|r| r.unwrap_or_else(|| own_recipient.clone()))
        .collect();
    let exporter = Exporter {
        instance_id: own_id,
        public_key: identity.public_key,
        name: identity.name.clone(),
        age_recipient: Some(own_recipient),
    };
    let plan = rhizome_sync::plan_export(
        &store,
        exporter,
        base,
        recipient.as_ref().map(|p| p.instance_id),
        now_ms(),
    )?;
    let counts = plan.manifest.counts;
    let withheld = plan.withheld_count();
    // The size of the signed lines does not depend on the key.
    let estimate = plan.file_bytes(&key);
    if !json {
        let wrapped = match (compress, recipients.is_empty()) {
            (false, true) => "",
            _ => " before compression and encryption",
        };
        eprintln!(
            "{} {} events in {} feeds, {} ({estimate} bytes{wrapped}) to {}",
            if dry_run { "Would export" } else { "Exporting" },
            counts.events,
            counts.feeds,
            mib(estimate),
            to.display()
        );
        if withheld > 0 {
            let why = match &recipient {
                Some(_) => "the recipient hosts no one they are meant for",
                None => "a bundle for anyone carries no circle-only payload",
            };
            eprintln!("  {withheld} circle-only payload(s) withheld (signed headers only): {why}");
        }
    }
    if dry_run {
        if json {
            say!(
                "{}",
                json!({"dry_run": true, "events": counts.events, "feeds": counts.feeds, "bytes": estimate,
                       "withheld_payloads": withheld, "to": to})
            );
        }
        return Ok(());
    }
    let bar = crate::progress::bar(counts.events, "exporting");
    let trailer = rhizome_sync::write_file_atomically(to, |file| -> Result<_> {
        let mut progress = |n| bar.set_position(n);
        // Layers from the outside in: encryption, then compression, then the bundle.
        let mut compressed = |out: &mut dyn Write| -> Result<_> {
            if !compress {
                return Ok(rhizome_sync::write_bundle(
                    &store,
                    &plan,
                    &key,
                    out,
                    &mut progress,
                )?);
            }
            let mut z = rhizome_sync::codec::encoder(out)?;
            let t = rhizome_sync::write_bundle(&store, &plan, &key, &mut z, &mut progress)?;
            z.finish()?;
            Ok(t)
        };
        if recipients.is_empty() {
            return compressed(file);
        }
        let mut sealed = rhizome_sync::codec::encrypt(file, &recipients)?;
        let trailer = compressed(&mut sealed)?;
        sealed.finish()?;
        Ok(trailer)
    })
    .with_context(|| format!("writing {}", to.display()))?;
    bar.finish_and_clear();
    if let Some(peer) = &recipient {
        store.record_exchange(
            &peer.public_key,
            &peer.name,
            Direction::Export,
            &plan.manifest.clock,
            now_ms(),
            "usb",
        )?;
    }
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    if json {
        say!(
            "{}",
            json!({"to": to, "events": trailer.events, "feeds": counts.feeds, "bytes": size,
                   "sha256": trailer.sha256, "recipient": recipient.map(|p| p.instance_id),
                   "withheld_payloads": withheld, "compressed": compress,
                   "encrypted_to": encrypt_to})
        );
    } else {
        let sealed = if encrypt_to.is_empty() {
            String::new()
        } else {
            format!(", encrypted to {}", encrypt_to.join(", "))
        };
        say!(
            "wrote {} events in {} feeds ({}{sealed}) to {}",
            trailer.events,
            counts.feeds,
            mib(size),
            to.display()
        );
    }
    Ok(())
}

/// Opens bundle files: decrypts them (age) and decompresses them (zstd) on the fly, each
/// detected by its magic bytes. An encrypted bundle is opened with this instance's key,
/// unlocked once when first needed, or with `RHIZOME_BUNDLE_PASSPHRASE` when it is
/// encrypted to a passphrase.
struct Opener<'h> {
    home: Option<&'h Path>,
    identity: Option<age::x25519::Identity>,
}

impl<'h> Opener<'h> {
    fn new(home: Option<&'h Path>) -> Self {
        Self {
            home,
            identity: None,
        }
    }

    fn open(&mut self, file: &Path) -> Result<(Box<dyn std::io::BufRead + Send>, u64)> {
        self.open_layers(file).map(|(r, len, _)| (r, len))
    }

    fn open_layers(
        &mut self,
        file: &Path,
    ) -> Result<(
        Box<dyn std::io::BufRead + Send>,
        u64,
        rhizome_sync::codec::Layers,
    )> {
        let (mut raw, len) = open_raw(file)?;
        let encrypted = rhizome_sync::codec::is_encrypted(std::io::BufRead::fill_buf(&mut raw)?);
        if encrypted && self.identity.is_none() {
            let home = self.home.ok_or_else(|| {
                fail(
                    REJECTED,
                    format!(
                        "{} is encrypted; give the --home of the instance it is encrypted to",
                        file.display()
                    ),
                )
            })?;
            let store = home::open(home).map_err(|e| {
                fail(
                    REJECTED,
                    format!(
                        "{} is encrypted; only the instance it is encrypted to can read it: {e:#}",
                        file.display()
                    ),
                )
            })?;
            let id = store.identity()?;
            let key = Keeper::unlock(&id.secret)?.open(&id.secret, &id.public_key)?;
            self.identity = Some(rhizome_sync::codec::instance_identity(&key));
        }
        let instance = self.identity.clone();
        let mut keys = |scrypt: bool| -> std::io::Result<Vec<Box<dyn age::Identity>>> {
            if scrypt {
                let pass = std::env::var("RHIZOME_BUNDLE_PASSPHRASE").map_err(|_| {
                    std::io::Error::other(
                        "encrypted to a passphrase: set RHIZOME_BUNDLE_PASSPHRASE to read it",
                    )
                })?;
                return Ok(vec![rhizome_sync::codec::passphrase_identity(&pass)]);
            }
            Ok(instance
                .clone()
                .map(|i| Box::new(i) as Box<dyn age::Identity>)
                .into_iter()
                .collect())
        };
        let (reader, layers) =
            rhizome_sync::codec::decode(raw, Some(len), &mut keys).map_err(|e| {
                fail(
                    REJECTED,
                    format!("{}: not a readable bundle: {e}", file.display()),
                )
            })?;
        Ok((reader, len, layers))
    }
}

fn open_raw(file: &Path) -> Result<(BufReader<File>, u64)> {
    let f = File::open(file).map_err(|e| {
        fail(
            INVALID_INPUT,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((BufReader::with_capacity(1 << 20, f), len))
}

/// `RHIZOME_TRUST_ON_FIRST_USE=1`: bundles from instances never seen before are imported at
/// once (and the instance trusted) instead of being held for approval. For hubs and labs.
fn trust_on_first_use() -> bool {
    matches!(
        std::env::var("RHIZOME_TRUST_ON_FIRST_USE").as_deref(),
        Ok("1" | "true" | "yes" | "on")
    )
}

fn rejected(file: &Path, e: rhizome_sync::ImportError) -> anyhow::Error {
    match e {
        rhizome_sync::ImportError::Store(s) => anyhow::Error::from(s),
        other => fail(
            REJECTED,
            format!("{}: rejected, nothing stored: {other}", file.display()),
        ),
    }
}

/// `rhizome import`: trusted (or first-use-trusted) exporters are imported now; unknown ones
/// are verified and held in quarantine; blocked ones are refused.
pub fn import(home_dir: &Path, file: &Path, json: bool) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let mut opener = Opener::new(Some(home_dir));
    let (reader, _) = opener.open(file)?;
    let manifest = rhizome_sync::read_manifest(reader).map_err(|e| rejected(file, e))?;
    let exporter = &manifest.exporter;
    if exporter.public_key == store.identity()?.public_key {
        // Our own bundle coming back: nothing to trust, every event a duplicate.
        return import_now(&mut store, &mut opener, file, json);
    }
    match store.peer(&exporter.instance_id)?.map(|p| p.trust) {
        Some(Trust::Trusted) | Some(Trust::Blocked) => {
            import_now(&mut store, &mut opener, file, json)
        }
        _ if trust_on_first_use() => {
            store.add_peer(&exporter.public_key, &exporter.name, Trust::Trusted)?;
            import_now(&mut store, &mut opener, file, json)
        }
        _ => quarantine(home_dir, &mut store, &mut opener, file, json),
    }
}

fn import_now(
    store: &mut rhizome_store_sqlite::SqliteStore,
    opener: &mut Opener<'_>,
    file: &Path,
    json: bool,
) -> Result<()> {
    let (reader, len) = opener.open(file)?;
    let bar = crate::progress::bar(len, "importing");
    let opts = ImportOptions {
        now: now_ms(),
        method: "usb".into(),
    };
    let report = rhizome_sync::import_bundle(store, reader, &opts, &mut |b| bar.set_position(b))
        .map_err(|e| rejected(file, e))?;
    bar.finish_and_clear();
    if json {
        say!("{}", serde_json::to_string(&report)?);
    } else {
        let e = &report.exporter;
        let status = match &report.status {
            Status::Complete => "complete".to_string(),
            Status::Truncated => "TRUNCATED (no trailer: a half-copied file?)".to_string(),
            Status::TrailerInvalid(why) => format!("TRAILER INVALID ({why})"),
            Status::Unreadable(why) => format!("UNREADABLE ({why})"),
        };
        say!(
            "Bundle from {:?} (instance {}, key {}): {status}",
            e.name,
            e.instance_id,
            e.public_key.fingerprint()
        );
        say!(
            "  events  {} read: {} new, {} duplicate, {} waiting for earlier events, {} fork(s), {} refused",
            report.events_read,
            report.new,
            report.duplicate,
            report.parked,
            report.forks,
            report.refused_total
        );
        if report.blocked > 0 {
            say!(
                "  blocked {} event(s) of blocked authors dropped",
                report.blocked
            );
        }
        if report.promoted > 0 {
            say!(
                "  pending {} earlier event(s) joined their feeds",
                report.promoted
            );
        }
        for r in report.refused.iter().take(20) {
            say!("  refused line {}: {}", r.line, r.reason);
        }
        for m in report.missing.iter().take(10) {
            say!("  missing {m}");
        }
        if report.missing.len() > 10 {
            say!(
                "  missing ... and {} more feed ranges (see --json)",
                report.missing.len() - 10
            );
        }
        say!(
            "  {} feed(s) touched, {} in {:.2} s ({:.0} events/s)",
            report.feeds_touched,
            mib(report.bytes),
            report.seconds,
            report.events_per_second
        );
    }
    match report.status {
        Status::Truncated => Err(fail(
            TRUNCATED,
            format!(
                "{} is truncated: kept every valid event read",
                file.display()
            ),
        )),
        Status::TrailerInvalid(why) => Err(fail(
            TRUNCATED,
            format!(
                "{}: trailer invalid ({why}); kept every valid event",
                file.display()
            ),
        )),
        Status::Unreadable(why) => Err(fail(
            TRUNCATED,
            format!(
                "{}: unreadable {why}; kept every valid event read before",
                file.display()
            ),
        )),
        Status::Complete if report.refused_total > 0 => Err(fail(
            PARTIAL,
            format!(
                "{} event(s) refused; the valid rest was kept",
                report.refused_total
            ),
        )),
        Status::Complete => Ok(()),
    }
}

/// Copies a bundle from an unknown instance into `<home>/quarantine/`, verifies it fully
/// (storing nothing in the log), and records it for `rhizome approve` or `reject`.
fn quarantine(
    home_dir: &Path,
    store: &mut rhizome_store_sqlite::SqliteStore,
    opener: &mut Opener<'_>,
    file: &Path,
    json: bool,
) -> Result<()> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};
    let dir = home_dir.join("quarantine");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let incoming = dir.join(format!(".incoming-{}", std::process::id()));
    let mut hasher = Sha256::new();
    {
        let (mut src, _) = open_raw(file)?;
        let mut dst = std::io::BufWriter::new(File::create(&incoming)?);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            dst.write_all(&buf[..n])?;
        }
        dst.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    let id = hex::encode(&hasher.finalize()[..8]);
    let held_path = dir.join(format!("{id}.bundle"));
    std::fs::rename(&incoming, &held_path)?;
    let (reader, _) = opener.open(&held_path)?;
    let check = rhizome_sync::check_bundle(reader);
    let (ins, manifest) = match check {
        Ok(ins) => match ins.manifest.clone() {
            Some(m) => (ins, m),
            None => {
                let _ = std::fs::remove_file(&held_path);
                let why = ins.manifest_error.unwrap_or_default();
                return Err(fail(
                    REJECTED,
                    format!(
                        "{}: rejected, nothing stored: line 1 (manifest): {why}",
                        file.display()
                    ),
                ));
            }
        },
        Err(e) => {
            let _ = std::fs::remove_file(&held_path);
            return Err(rejected(file, e));
        }
    };
    let held = rhizome_store::Held {
        id: id.clone(),
        instance_id: manifest.exporter.instance_id,
        public_key: manifest.exporter.public_key,
        name: manifest.exporter.name.clone(),
        events: ins.event_lines,
        feeds: manifest.counts.feeds,
        invalid: ins.malformed_lines + ins.invalid_events,
        arrived_at: now_ms(),
        file: held_path.display().to_string(),
    };
    let new = store.hold(&held)?;
    if json {
        say!(
            "{}",
            json!({"status": "quarantined", "already_held": !new, "held": held})
        );
    } else {
        let again = if new { "" } else { " (already held)" };
        say!(
            "Held in quarantine{again}: bundle {id} from {:?}",
            held.name
        );
        say!(
            "  instance {}  key fingerprint {}",
            held.instance_id,
            held.public_key.fingerprint()
        );
        say!(
            "  {} events in {} feeds, {} invalid; nothing applied yet",
            held.events,
            held.feeds,
            held.invalid
        );
        say!("  This instance is new here. Check the fingerprint with its owner, then:");
        say!("    rhizome approve {id}     (trust it and apply the events)");
        say!("    rhizome reject {id}      (discard the bundle)");
    }
    Ok(())
}

fn find_held(store: &rhizome_store_sqlite::SqliteStore, id: &str) -> Result<rhizome_store::Held> {
    store
        .held()?
        .into_iter()
        .find(|h| h.id == id)
        .ok_or_else(|| {
            fail(
                INVALID_INPUT,
                format!("no bundle {id:?} in quarantine (`rhizome pending` lists them)"),
            )
        })
}

/// `rhizome pending`.
pub fn pending(home_dir: &Path, json: bool) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    let held = store.held()?;
    if json {
        say!("{}", serde_json::to_string(&held)?);
    } else if held.is_empty() {
        say!("nothing in quarantine");
    } else {
        for h in &held {
            say!(
                "{}  {:?} (instance {}, key {}): {} events in {} feeds, {} invalid",
                h.id,
                h.name,
                h.instance_id,
                h.public_key.fingerprint(),
                h.events,
                h.feeds,
                h.invalid
            );
        }
    }
    Ok(())
}

/// `rhizome approve`: apply the held bundle and trust its exporter. The held copy is kept if
/// the import stored nothing (an error), so no data is lost.
pub fn approve(home_dir: &Path, id: &str, json: bool) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let held = find_held(&store, id)?;
    let path = std::path::PathBuf::from(&held.file);
    let result = import_now(&mut store, &mut Opener::new(Some(home_dir)), &path, json);
    let kept_events = match &result {
        Ok(()) => true,
        Err(e) => e.chain().any(|c| {
            c.downcast_ref::<crate::exit::Fail>()
                .is_some_and(|f| f.code == TRUNCATED || f.code == PARTIAL)
        }),
    };
    if kept_events {
        store.add_peer(&held.public_key, &held.name, Trust::Trusted)?;
        store.release(id)?;
        let _ = std::fs::remove_file(&path);
    }
    result
}

/// `rhizome reject`: discard a held bundle.
pub fn reject(home_dir: &Path, id: &str, json: bool) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let held = find_held(&store, id)?;
    store.release(id)?;
    let _ = std::fs::remove_file(&held.file);
    if json {
        say!(
            "{}",
            json!({"rejected": id, "instance_id": held.instance_id})
        );
    } else {
        say!(
            "discarded bundle {id} from {:?}; nothing of it was applied",
            held.name
        );
    }
    Ok(())
}

/// `rhizome bundle inspect`.
pub fn inspect(home_dir: Option<&Path>, file: &Path, json: bool) -> Result<()> {
    let (reader, _, layers) = Opener::new(home_dir).open_layers(file)?;
    let ins = rhizome_sync::inspect_bundle(reader)
        .map_err(|e| fail(REJECTED, format!("{}: {e}", file.display())))?;
    if json {
        let mut v = serde_json::to_value(&ins)?;
        v["layers"] = serde_json::to_value(layers)?;
        say!("{v}");
    } else {
        let wrapping = match (layers.encrypted, layers.compressed) {
            (false, false) => "none (plain JSON Lines)",
            (true, false) => "age-encrypted (opened with this instance's key)",
            (false, true) => "zstd-compressed",
            (true, true) => "age-encrypted (opened with this instance's key), zstd-compressed",
        };
        say!("wrapping    {wrapping}");
        match (&ins.manifest, &ins.manifest_error) {
            (Some(m), _) => {
                say!("format      {}", m.format);
                say!(
                    "exporter    {:?} (instance {}, key {})",
                    m.exporter.name,
                    m.exporter.instance_id,
                    m.exporter.public_key.fingerprint()
                );
                say!("manifest    signature valid");
                say!(
                    "recipient   {}",
                    m.recipient.map_or("anyone".to_string(), |r| r.to_string())
                );
                say!(
                    "carries     {} events in {} feeds ({} of event lines)",
                    m.counts.events,
                    m.counts.feeds,
                    mib(m.counts.bytes)
                );
                say!(
                    "exporter clock covers {} feeds; base clock {} feeds",
                    m.clock.len(),
                    m.base.len()
                );
                if !m.hosts.is_empty() {
                    say!(
                        "hosts       {} author(s), each declaration signed by its author",
                        m.hosts.len()
                    );
                }
            }
            (None, err) => say!(
                "manifest    INVALID: {}",
                err.as_deref().unwrap_or("unknown")
            ),
        }
        say!(
            "lines       {} event lines ({} malformed), {}",
            ins.event_lines,
            ins.malformed_lines,
            mib(ins.bytes)
        );
        match &ins.status {
            Status::Complete => say!("trailer     valid: the bundle is complete"),
            Status::Truncated => say!("trailer     MISSING: truncated"),
            Status::TrailerInvalid(why) => say!("trailer     INVALID: {why}"),
            Status::Unreadable(why) => say!("stream      UNREADABLE: {why}"),
        }
    }
    match (&ins.manifest, &ins.status) {
        (None, _) => Err(fail(
            REJECTED,
            format!("{}: manifest invalid", file.display()),
        )),
        (_, Status::Complete) => Ok(()),
        _ => Err(fail(
            TRUNCATED,
            format!("{}: no valid trailer", file.display()),
        )),
    }
}

/// `rhizome peers`.
pub fn peers(home_dir: &Path, json: bool) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    let peers = store.peers()?;
    if json {
        say!("{}", serde_json::to_string(&peers)?);
        return Ok(());
    }
    if peers.is_empty() {
        say!("(no peers yet: import a bundle from another instance)");
    }
    let total = |c: &Clock| c.iter().map(|(_, s)| s.get()).sum::<u64>();
    for p in &peers {
        say!("{:<20} {}  {:?}", p.name, p.instance_id, p.trust);
        say!(
            "  acked {} events in {} feeds; sent {} events in {} feeds; last {} {} at {}",
            total(&p.acked),
            p.acked.len(),
            total(&p.sent),
            p.sent.len(),
            p.last_direction.as_deref().unwrap_or("-"),
            p.last_method.as_deref().unwrap_or("-"),
            p.last_exchange_at
                .map_or("-".to_string(), |t| t.to_string())
        );
    }
    Ok(())
}

/// `rhizome forks`.
pub fn forks(home_dir: &Path, json: bool) -> Result<()> {
    let store = home::open_for_reading(home_dir)?;
    let forks = store.forks()?;
    if json {
        say!("{}", serde_json::to_string(&forks)?);
    } else if forks.is_empty() {
        say!("no forks");
    } else {
        for f in &forks {
            say!(
                "{} seq {} ({}): held {} / other {} carried by {}",
                f.author,
                f.seq,
                f.kind,
                f.held,
                f.other,
                f.carrier.map_or("-".to_string(), |c| c.to_string())
            );
        }
    }
    Ok(())
}

/// `rhizome trust|block|unblock`.
pub fn set_trust(home_dir: &Path, instance_id: &str, trust: Trust, json: bool) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let id = parse_instance(instance_id)?;
    if !store.set_trust(&id, trust)? {
        return Err(fail(
            INVALID_INPUT,
            format!("unknown instance {id}: `rhizome peers` lists the instances this one has exchanged bundles with"),
        ));
    }
    if json {
        say!("{}", json!({"instance_id": id, "trust": trust}));
    } else {
        say!(
            "{id} is now {}",
            serde_json::to_value(trust)?.as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// `rhizome block-author` / `unblock-author`.
pub fn block_author(
    home_dir: &Path,
    author: &str,
    block: bool,
    purge: bool,
    json: bool,
) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let key = crate::read::resolve_feed(&store, author)?;
    let changed = if block {
        store.block_author(&key)?
    } else {
        store.unblock_author(&key)?
    };
    let removed = if purge { store.purge_author(&key)? } else { 0 };
    if json {
        say!(
            "{}",
            json!({"author": key, "blocked": block, "changed": changed, "purged_events": removed})
        );
    } else {
        let state = if block { "blocked" } else { "unblocked" };
        let note = if changed { "" } else { " (already)" };
        say!("{key} {state}{note}");
        if purge {
            say!("purged {removed} event(s) of {key} from the log; views rebuilt");
        }
    }
    Ok(())
}
