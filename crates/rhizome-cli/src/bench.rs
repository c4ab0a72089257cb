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
