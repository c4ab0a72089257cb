//! `rhizome bench`: throughput figures for BENCHMARKS.md, measured on the real code paths.

use anyhow::Result;
use rayon::prelude::*;
use rhizome_core::event::{sign, signing_message, EventType, Payload};
use rhizome_core::keys::{self, PublicKey, Signature};
use rhizome_core::sealed::{KdfParams, SealingKey};
use rhizome_core::{SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_node::StoreLocation;
use rhizome_store::Outcome;
use rhizome_store::Store;
use serde_json::json;
use std::time::{Duration, Instant};

use crate::cli::BenchCmd;

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// One synthetic author and the head of its chain.
struct FeedWriter {
    key: SecretKey,
    n: u64,
    seq: u64,
    prev: Option<rhizome_core::Hash>,
    /// Write `BLOB` events with a payload string of this many bytes instead of posts.
    blob: Option<usize>,
}

impl FeedWriter {
    fn new(n: u64) -> Self {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&n.to_le_bytes());
        seed[31] = 0x5a;
        Self {
            key: SecretKey::from_seed(&seed),
            n,
            seq: 0,
            prev: None,
            blob: None,
        }
    }

    /// Signs the next `count` POST events of this feed.
    fn next(&mut self, count: u64, start_ts: u64) -> Result<Vec<VerifiedEvent>> {
        (0..count)
            .map(|_| {
                self.seq += 1;
                let (kind, payload) = match self.blob {
                    None => ("POST", json!({
                        "text": format!("Post number {} of feed {}: the river is high today, bring boots", self.seq, self.n),
                        "lang": "en"
                    })),
                    Some(n) => ("BLOB", json!({"data": "x".repeat(n)})),
                };
                let ev = sign(
                    &self.key,
                    Seq::new(self.seq)?,
                    self.prev,
                    EventType::new(kind)?,
                    Timestamp::new(start_ts + self.seq * 1000 + self.n)?,
                    Payload::new(payload)?,
                )?;
                self.prev = Some(ev.hash);
                Ok(ev)
            })
            .collect()
    }
}

/// Produces `per_feed` events for each of `feeds` feeds in rounds of `chunk` events per feed
/// (feeds interleaved, as an import of many feeds sees them), signing on all cores, and hands
/// each round to `consume` while the next one is being signed. Returns the signing time.
pub fn produce(
    feeds: u64,
    per_feed: u64,
    chunk: u64,
    mut consume: impl FnMut(Vec<VerifiedEvent>) -> Result<()>,
) -> Result<Duration> {
    let mut writers: Vec<FeedWriter> = (0..feeds).map(FeedWriter::new).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<VerifiedEvent>>>(1);
    std::thread::scope(|scope| -> Result<Duration> {
        let producer = scope.spawn(move || {
            let mut busy = Duration::ZERO;
            let mut done = 0;
            while done < per_feed {
                let n = chunk.min(per_feed - done);
                let t = Instant::now();
                let round: Result<Vec<Vec<VerifiedEvent>>> = writers
                    .par_iter_mut()
                    .map(|w| w.next(n, 1_764_000_000_000))
                    .collect();
                busy += t.elapsed();
                if tx
                    .send(round.map(|r| r.into_iter().flatten().collect()))
                    .is_err()
                {
                    break;
                }
                done += n;
            }
            busy
        });
        for round in rx {
            consume(round?)?;
        }
        producer
            .join()
            .map_err(|_| anyhow::anyhow!("signing thread panicked"))
    })
}

/// An empty store in `home`, of the embedded kind.
fn scratch(home: &std::path::Path) -> Result<Box<dyn Store>> {
    Ok(StoreLocation::Sqlite {
        home: home.to_path_buf(),
    }
    .create()?)
}

/// A scratch store filled through the real append path (views included).
struct Filled {
    _dir: tempfile::TempDir,
    store: Box<dyn Store>,
    total: u64,
    signing: Duration,
    storing: Duration,
    wall: Duration,
}

fn fill(events: u64, feeds: u64, batch: usize) -> Result<Filled> {
    let dir = tempfile::tempdir()?;
    let mut store = scratch(dir.path())?;
    let per_feed = (events / feeds).max(1);
    let mut storing = Duration::ZERO;
    let t0 = Instant::now();
    let signing = produce(feeds, per_feed, 100, |round| {
        let t = Instant::now();
        for chunk in round.chunks(batch.max(1)) {
            let out = store.append(chunk)?;
            anyhow::ensure!(
                out.iter().all(|o| *o == Outcome::Inserted),
                "bench append refused events"
            );
        }
        storing += t.elapsed();
        Ok(())
    })?;
    let wall = t0.elapsed();
    for f in 0..feeds {
        store.follow(&FeedWriter::new(f).key.public_key())?;
    }
    Ok(Filled {
        _dir: dir,
        store,
        total: per_feed * feeds,
        signing,
        storing,
        wall,
    })
}

fn median_us(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs one benchmark and prints its figures.
pub fn run(cmd: &BenchCmd, json: bool) -> Result<()> {
    match cmd {
        BenchCmd::Append {
            events,
            feeds,
            batch,
        } => {
            let f = fill(*events, *feeds, *batch)?;
            let whole = f.wall;
            let size = f.store.size_on_disk().unwrap_or(0);
            let total = f.total;
            if json {
                say!(
                    "{}",
                    json!({"bench": "append", "events": total, "feeds": feeds, "batch": batch,
                           "sign_hash_s": f.signing.as_secs_f64(), "store_s": f.storing.as_secs_f64(),
                           "wall_s": whole.as_secs_f64(), "events_per_s": per_sec(total, whole),
                           "sign_hash_per_s": per_sec(total, f.signing), "store_per_s": per_sec(total, f.storing),
                           "db_bytes": size})
                );
            } else {
                say!("append: {total} events in {feeds} feeds, {batch} per transaction (views updated in the same transactions)");
                say!(
                    "  sign + hash  {:>8.2} s busy  {:>10.0} events/s (all cores)",
                    f.signing.as_secs_f64(),
                    per_sec(total, f.signing)
                );
                say!(
                    "  store        {:>8.2} s busy  {:>10.0} events/s (one writer)",
                    f.storing.as_secs_f64(),
                    per_sec(total, f.storing)
                );
                say!(
                    "  end to end   {:>8.2} s wall  {:>10.0} events/s (the two overlapped)",
                    whole.as_secs_f64(),
                    per_sec(total, whole)
                );
                say!("  database     {:.1} MiB", size as f64 / 1_048_576.0);
            }
        }
        BenchCmd::Views { events, feeds } => {
            let mut f = fill(*events, *feeds, 50_000)?;
            // Timeline pages: first page, then 200 pages walked by cursor.
            let mut first = Vec::new();
            for _ in 0..200 {
                let t = Instant::now();
                let page = f.store.timeline(None, None, 50)?;
                first.push(t.elapsed().as_secs_f64() * 1e6);
                anyhow::ensure!(page.len() == 50, "timeline page short");
            }
            let mut walk = Vec::new();
            let mut cursor = None;
            for _ in 0..200 {
                let t = Instant::now();
                let page = f.store.timeline(None, cursor, 50)?;
                walk.push(t.elapsed().as_secs_f64() * 1e6);
                cursor = page.last().map(|i| rhizome_store::Cursor {
                    ts: i.ts,
                    hash: i.hash,
                });
            }
            let t = Instant::now();
            let n = f.store.rebuild_views()?;
            let rebuild = t.elapsed();
            let (p1, pw) = (median_us(first), median_us(walk));
            if json {
                say!(
                    "{}",
                    json!({"bench": "views", "events": f.total, "feeds": feeds,
                           "append_per_s": per_sec(f.total, f.wall), "timeline_first_page_us": p1,
                           "timeline_page_by_cursor_us": pw, "rebuild_s": rebuild.as_secs_f64(),
                           "rebuild_per_s": per_sec(n, rebuild)})
                );
            } else {
                say!("views: {} events in {feeds} feeds", f.total);
                say!(
                    "  append (with views)   {:>10.0} events/s",
                    per_sec(f.total, f.wall)
                );
                say!("  timeline page of 50   {p1:>10.0} µs median (first page), {pw:.0} µs (pages by cursor)");
                say!(
                    "  views rebuild         {:>10.0} events/s ({:.1} s)",
                    per_sec(n, rebuild),
                    rebuild.as_secs_f64()
                );
            }
        }
        BenchCmd::Bundle {
            events,
            feeds,
            dir,
            payload_bytes,
        } => bundle(*events, *feeds, dir, *payload_bytes, json)?,
        BenchCmd::Verify { signatures } => verify(*signatures, json)?,
        BenchCmd::Hostile { case, bytes, dir } => hostile(*case, dir, *bytes)?,
        BenchCmd::Kdf => {
            let kdf = KdfParams::default();
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                SealingKey::derive(b"benchmark passphrase", [7; 16], kdf)?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let median = median_us(times);
            if json {
                say!(
                    "{}",
                    json!({"bench": "kdf", "m_kib": kdf.m_kib, "t": kdf.t, "p": kdf.p, "median_ms": median})
                );
            } else {
                say!(
                    "kdf: Argon2id m={} KiB t={} p={}: median {median:.0} ms of 5",
                    kdf.m_kib,
                    kdf.t,
                    kdf.p
                );
            }
        }
    }
    Ok(())
}

/// `bench bundle`: a real home of synthetic feeds, a full export, and a 100-event delta.
fn bundle(
    events: u64,
    feeds: u64,
    dir: &std::path::Path,
    payload_bytes: Option<usize>,
    json: bool,
) -> Result<()> {
    use rhizome_core::bundle::Exporter;
    use rhizome_core::{Clock, InstanceId};
    anyhow::ensure!(
        !dir.exists(),
        "{} exists; give a new directory",
        dir.display()
    );
    std::fs::create_dir_all(dir.join("source"))?;
    let mut store = scratch(&dir.join("source"))?;
    let instance = SecretKey::from_seed(&[0x33; 32]);
    let author = SecretKey::from_seed(&[0x34; 32]);
    store.init(
        &rhizome_store::Identity {
            name: "bench source".into(),
            public_key: instance.public_key(),
            secret: rhizome_core::sealed::plain(&instance),
            created_at: 0,
        },
        &rhizome_store::LocalAuthor {
            name: "bench".into(),
            public_key: author.public_key(),
            secret: rhizome_core::sealed::plain(&author),
            is_default: true,
        },
    )?;
    let per_feed = (events / feeds).max(1);
    let mut writers: Vec<FeedWriter> = (0..feeds)
        .map(|n| FeedWriter {
            blob: payload_bytes,
            ..FeedWriter::new(n)
        })
        .collect();
    for done in (0..per_feed).step_by(100) {
        let n = (per_feed - done).min(100);
        let round: Result<Vec<Vec<VerifiedEvent>>> = writers
            .par_iter_mut()
            .map(|w| w.next(n, 1_764_000_000_000))
            .collect();
        for chunk in round?.concat().chunks(50_000) {
            store.append(chunk)?;
        }
    }
    let total = store.stats()?.events;
    let exporter = Exporter {
        instance_id: InstanceId::of(&instance.public_key()),
        public_key: instance.public_key(),
        name: "bench source".into(),
        age_recipient: None,
    };

    let write =
        |store: &dyn Store, path: &std::path::Path, base: Clock| -> Result<(Duration, u64)> {
            let t = Instant::now();
            let plan = rhizome_sync::plan_export(store, exporter.clone(), base, None, 0)?;
            rhizome_sync::write_file_atomically(path, |w| -> Result<_> {
                Ok(rhizome_sync::write_bundle(
                    store,
                    &plan,
                    &instance,
                    w,
                    &mut |_| {},
                )?)
            })?;
            Ok((t.elapsed(), plan.manifest.counts.events))
        };
    let full = dir.join("full.bundle");
    let (export, _) = write(&*store, &full, Clock::new())?;

    // A peer that holds everything so far; then 100 new events in 100 feeds.
    let acked = store.clock()?;
    let fresh: Result<Vec<Vec<VerifiedEvent>>> = writers
        .iter_mut()
        .take(100)
        .map(|w| w.next(1, 1_764_000_000_000))
        .collect();
    store.append(&fresh?.concat())?;
    let (delta, delta_events) = write(&*store, &dir.join("delta.bundle"), acked)?;
    let size = std::fs::metadata(&full)?.len();
    if json {
        say!(
            "{}",
            json!({"bench": "bundle", "events": total, "feeds": feeds, "full_bytes": size,
                           "export_s": export.as_secs_f64(), "export_per_s": per_sec(total, export),
                           "delta_events": delta_events, "delta_ms": delta.as_secs_f64() * 1000.0})
        );
    } else {
        say!(
            "bundle: {total} events in {feeds} feeds, {:.1} MiB",
            size as f64 / 1_048_576.0
        );
        say!(
            "  full export      {:>8.2} s  {:>10.0} events/s",
            export.as_secs_f64(),
            per_sec(total, export)
        );
        say!(
            "  delta export     {:>8.1} ms for {} events",
            delta.as_secs_f64() * 1000.0,
            delta_events
        );
        say!("  now time the import: rhizome --home {0}/dest init --name dest --no-passphrase && /usr/bin/time -v rhizome --home {0}/dest import {0}/full.bundle", dir.display());
    }
    Ok(())
}

/// `signatures` event signatures by `authors` authors, in runs of one author (as in a bundle).
fn signed(authors: usize, signatures: usize) -> Vec<(PublicKey, [u8; 49], Signature)> {
    let per = signatures.div_ceil(authors.max(1)).max(1);
    (0..signatures)
        .map(|i| {
            let mut seed = [0x77u8; 32];
            seed[..8].copy_from_slice(&((i / per) as u64).to_le_bytes());
            let key = SecretKey::from_seed(&seed);
            let msg = signing_message(&rhizome_core::Hash::digest(&(i as u64).to_le_bytes()));
            (key.public_key(), msg, key.sign(&msg))
        })
        .collect()
}

/// µs per item of `keys::verify_batch_tuned` over `set` (best of 3), checking every answer.
fn us_per_item(set: &[(PublicKey, [u8; 49], Signature)], table_min_items: usize) -> Result<f64> {
    let items: Vec<(PublicKey, &[u8], Signature)> =
        set.iter().map(|(k, m, s)| (*k, &m[..], *s)).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let out = keys::verify_batch_tuned(&items, table_min_items);
        let us = t.elapsed().as_secs_f64() * 1e6 / items.len().max(1) as f64;
        anyhow::ensure!(
            out.iter().all(Result::is_ok),
            "a valid signature was refused"
        );
        best = best.min(us);
    }
    Ok(best)
}

/// `bench verify`: the figures behind `keys::TABLE_MIN_ITEMS`, on one core.
fn verify(signatures: usize, json: bool) -> Result<()> {
    let n = signatures.max(64);
    // One author: every signature under the same key.
    let one = signed(1, n);
    let single = us_per_item(&one, usize::MAX)?;
    let table = us_per_item(&one, 1)?;
    // One signature per author: the cost of preparing a key, without a table and with one.
    let keys_n = (n / 16).max(16);
    let many = signed(keys_n, keys_n);
    let key_single = us_per_item(&many, usize::MAX)? - single;
    let key_table = us_per_item(&many, 1)? - table;
    // Runs of g signatures per author: where the table starts to pay.
    let mut runs = Vec::new();
    for g in [2usize, 4, 8, 16, 32, 48, 64, 96, 128, 256, 1024] {
        let set = signed(n / g, (n / g) * g);
        runs.push((g, us_per_item(&set, usize::MAX)?, us_per_item(&set, 1)?));
    }
    let break_even = runs.iter().find(|(_, s, t)| t < s).map(|(g, ..)| *g);
    if json {
        say!(
            "{}",
            json!({"bench": "verify", "signatures": n, "single_us": single, "table_us": table,
                   "key_prepare_single_us": key_single, "key_prepare_table_us": key_table,
                   "table_min_items": keys::TABLE_MIN_ITEMS,
                   "break_even_items": break_even,
                   "runs": runs.iter().map(|(g, s, t)| json!({"items_per_author": g, "single_us": s, "table_us": t})).collect::<Vec<_>>()})
        );
    } else {
        say!("verify: strict Ed25519, {n} signatures per figure, one core, best of 3");
        say!("  verify_strict, decoded key reused     {single:>7.1} µs per signature");
        say!("  table of the key (radix 256)          {table:>7.1} µs per signature");
        say!("  preparing a key: decode and check     {key_single:>7.1} µs");
        say!("  preparing a key: the same + table     {key_table:>7.0} µs");
        say!("  items per author    single µs/sig   table µs/sig (table built in the call)");
        for (g, s, t) in &runs {
            say!("  {g:>15}    {s:>13.1}   {t:>12.1}");
        }
        match break_even {
            Some(g) => say!(
                "  the table pays from about {g} items per author (threshold in use: {})",
                keys::TABLE_MIN_ITEMS
            ),
            None => say!("  the table did not pay at any group size measured"),
        }
    }
    Ok(())
}

/// `bench hostile`: one hostile (or merely extreme) input of the memory-bounds benchmarks
/// (BENCHMARKS.md, "Issue 10: memory bounds"), written to `dir`, streamed so that the
/// generator itself holds at most one bundle. Prints the path written.
pub fn hostile(case: crate::cli::HostileCase, dir: &std::path::Path, bytes: u64) -> Result<()> {
    use crate::cli::HostileCase as C;
    use rhizome_core::bundle::{Counts, Exporter, FeedRange, Manifest, Trailer, FORMAT};
    use rhizome_core::event::{line, Header};
    use rhizome_core::{Clock, Hash, InstanceId};
    use sha2::{Digest, Sha256};
    use std::io::Write;

    std::fs::create_dir_all(dir)?;
    let instance = SecretKey::from_seed(&[0x61; 32]);
    // One author per case, so that several cases import into one home without forks.
    let author = SecretKey::from_seed(&[0x62 + case as u8; 32]);
    let exporter = Exporter {
        instance_id: InstanceId::of(&instance.public_key()),
        public_key: instance.public_key(),
        name: "hostile".into(),
        age_recipient: None,
    };
    // A payload of `n` bytes (canonical): one string, or an object of tiny members.
    let payload = |members: bool, n: u64| -> Vec<u8> {
        let n = n.max(16) as usize;
        if !members {
            let mut p = b"{\"data\":\"".to_vec();
            p.resize(n - 2, b'x');
            p.extend_from_slice(b"\"}");
            return p;
        }
        // {"aaaaa":0,"aaaab":0,...}: keys of five letters in canonical (sorted) order.
        let mut p = vec![b'{'];
        let mut k = 0u64;
        while p.len() + 11 < n {
            if k > 0 {
                p.push(b',');
            }
            let mut key = [b'a'; 5];
            let mut x = k;
            for c in key.iter_mut().rev() {
                *c = b'a' + (x % 26) as u8;
                x /= 26;
            }
            p.push(b'"');
            p.extend_from_slice(&key);
            p.extend_from_slice(b"\":0");
            k += 1;
        }
        p.push(b'}');
        p
    };
    // Signed event lines of one feed, each with the payload `p`.
    let events = |count: u64, p: &[u8]| -> Result<Vec<Vec<u8>>> {
        let mut prev = None;
        let mut out = Vec::new();
        for seq in 1..=count {
            let header = Header {
                author: author.public_key(),
                seq: Seq::new(seq)?,
                prev,
                kind: EventType::new("BLOB")?,
                timestamp: Timestamp::new(1_764_000_000_000 + seq)?,
                payload_hash: Hash::digest(p),
                payload_size: p.len() as u64,
            };
            let hash = header.hash();
            let sig = author.sign(&signing_message(&hash));
            let mut l = line(&header, Some(p), &hash, &sig);
            l.push(b'\n');
            out.push(l);
            prev = Some(hash);
        }
        Ok(out)
    };
    // A whole bundle of those lines, signed by the instance key.
    let bundle = |lines: &[Vec<u8>], head: Option<Hash>| -> Vec<u8> {
        let n = lines.len() as u64;
        let mut clock = Clock::new();
        let mut feeds = Vec::new();
        if let (Some(head), Ok(to)) = (head, Seq::new(n)) {
            clock.set(author.public_key(), to);
            feeds.push(FeedRange {
                author: author.public_key(),
                from: 1,
                to: n,
                head,
            });
        }
        let m = Manifest {
            format: FORMAT.into(),
            exporter: exporter.clone(),
            clock,
            base: Clock::new(),
            recipient: None,
            feeds,
            counts: Counts {
                events: n,
                feeds: u64::from(n > 0),
                bytes: lines.iter().map(|l| l.len() as u64).sum(),
            },
            created_at: 1_764_000_100_000,
            hosts: vec![],
            evidence: vec![],
        };
        let mut out = m.to_line(&instance);
        out.push(b'\n');
        for l in lines {
            out.extend_from_slice(l);
        }
        let t = Trailer {
            trailer: FORMAT.into(),
            events: n,
            sha256: Hash::from_bytes(Sha256::digest(&out).into()),
        };
        out.extend_from_slice(&t.to_line(&instance));
        out.push(b'\n');
        out
    };
    let head = |lines: &[Vec<u8>]| -> Option<Hash> {
        let last = lines.last()?;
        rhizome_core::Event::parse(&last[..last.len() - 1])
            .ok()
            .map(|e| e.hash)
    };
    let (name, content): (&str, Vec<u8>) = match case {
        C::StringLine | C::MemberLine | C::MemberLines => {
            let members = !matches!(case, C::StringLine);
            let count = if matches!(case, C::MemberLines) {
                10
            } else {
                1
            };
            // The payload is the line less its ~500 bytes of header.
            let lines = events(count, &payload(members, bytes.saturating_sub(500)))?;
            let name = match case {
                C::StringLine => "string-line.bundle",
                C::MemberLine => "member-line.bundle",
                _ => "member-lines.bundle",
            };
            (name, bundle(&lines, head(&lines)))
        }
        C::Repetitive => {
            // 24 events of 1 MiB of one repeated letter, zstd-compressed as `export --compress`
            // does: valid data that expands thousands of times.
            let lines = events(24, &payload(false, 1 << 20))?;
            let plain = bundle(&lines, head(&lines));
            let mut z = rhizome_sync::codec::encoder(Vec::new())?;
            z.write_all(&plain)?;
            ("repetitive.bundle.zst", z.finish()?)
        }
        C::Manifest => {
            // A manifest line of `bytes` bytes: the members of a real one and an unknown
            // member holding an object of tiny members (refused, after it was read).
            let m = bundle(&[], None);
            let first = m.split(|b| *b == b'\n').next().unwrap_or_default();
            let mut line = first[..first.len() - 1].to_vec();
            line.extend_from_slice(b",\"x\":");
            line.extend_from_slice(&payload(true, bytes.saturating_sub(first.len() as u64)));
            line.extend_from_slice(b"}\n");
            ("manifest.bundle", line)
        }
        C::MigrateLine => {
            // A user, then one post whose text is `bytes` long (the schema allows 10,000).
            let path = dir.join("migrate-line.jsonl");
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
            w.write_all(b"{\"kind\":\"user\",\"id\":\"u1\",\"name\":\"Hostile\"}\n")?;
            w.write_all(b"{\"kind\":\"post\",\"id\":\"p1\",\"user\":\"u1\",\"text\":\"")?;
            let chunk = vec![b'x'; 1 << 20];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                w.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            w.write_all(b"\"}\n")?;
            w.flush()?;
            say!("{}", path.display());
            return Ok(());
        }
        C::MigrateRecords => {
            // Valid records: 100 users, then posts of 10,000 characters up to `bytes`.
            let path = dir.join("migrate-records.jsonl");
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
            for u in 0..100 {
                writeln!(
                    w,
                    "{{\"kind\":\"user\",\"id\":\"u{u}\",\"name\":\"User {u}\"}}"
                )?;
            }
            let text = "y".repeat(10_000);
            let mut written = 0u64;
            let mut p = 0u64;
            while written < bytes {
                let l = format!(
                    "{{\"kind\":\"post\",\"id\":\"p{p}\",\"user\":\"u{}\",\"at\":{},\"text\":\"{text}\"}}\n",
                    p % 100,
                    1_764_000_000_000 + p
                );
                w.write_all(l.as_bytes())?;
                written += l.len() as u64;
                p += 1;
            }
            w.flush()?;
            say!("{}", path.display());
            return Ok(());
        }
    };
    let path = dir.join(name);
    std::fs::write(&path, content)?;
    say!("{}", path.display());
    Ok(())
}
