//! `rhizome bench`: throughput figures for BENCHMARKS.md, measured on the real code paths.

use anyhow::Result;
use rayon::prelude::*;
use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::sealed::{KdfParams, SealingKey};
use rhizome_core::{SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_store::{Outcome, SqliteStore, Store};
use serde_json::json;
use std::time::{Duration, Instant};

use crate::cli::BenchCmd;

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Signs `per_feed` chained POST events for each of `feeds` authors, feeds in parallel.
pub fn make_feeds(feeds: u64, per_feed: u64, start_ts: u64) -> Vec<Vec<VerifiedEvent>> {
    (0..feeds)
        .into_par_iter()
        .map(|f| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&f.to_le_bytes());
            seed[31] = 0x5a;
            let sk = SecretKey::from_seed(&seed);
            let mut prev = None;
            (1..=per_feed)
                .map(|i| {
                    let payload = Payload::new(json!({
                        "text": format!("Post number {i} of feed {f}: the river is high today, bring boots"),
                        "lang": "en"
                    }))
                    .unwrap_or_else(|e| panic!("bench payload: {e}"));
                    let ev = sign(
                        &sk,
                        Seq::new(i).unwrap_or(Seq::FIRST),
                        prev,
                        EventType::new("POST").unwrap_or_else(|e| panic!("{e}")),
                        Timestamp::new(start_ts + i).unwrap_or_else(|e| panic!("{e}")),
                        payload,
                    )
                    .unwrap_or_else(|e| panic!("bench sign: {e}"));
                    prev = Some(ev.hash);
                    ev
                })
                .collect()
        })
        .collect()
}

/// Interleaves feeds in chunks of `chunk` events, as an import of many feeds would see them.
fn interleave(feeds: Vec<Vec<VerifiedEvent>>, chunk: usize) -> Vec<VerifiedEvent> {
    let mut iters: Vec<_> = feeds.into_iter().map(|f| f.into_iter()).collect();
    let mut out = Vec::new();
    loop {
        let mut any = false;
        for it in iters.iter_mut() {
            for ev in it.by_ref().take(chunk) {
                out.push(ev);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

/// Runs one benchmark and prints its figures.
pub fn run(cmd: &BenchCmd, json: bool) -> Result<()> {
    match cmd {
        BenchCmd::Append {
            events,
            feeds,
            batch,
        } => {
            let dir = tempfile::tempdir()?;
            let mut store = SqliteStore::open(&dir.path().join("bench.db"))?;
            let per_feed = (*events / *feeds).max(1);
            let total = per_feed * feeds;
            let t0 = Instant::now();
            let all = interleave(make_feeds(*feeds, per_feed, 1_764_000_000_000), 100);
            let signed = t0.elapsed();
            let t1 = Instant::now();
            for chunk in all.chunks(*batch) {
                let out = store.append(chunk)?;
                anyhow::ensure!(
                    out.iter().all(|o| *o == Outcome::Inserted),
                    "bench append refused events"
                );
            }
            let stored = t1.elapsed();
            let whole = t0.elapsed();
            let size = std::fs::metadata(store.path())?.len();
            if json {
                say!(
                    "{}",
                    json!({"bench": "append", "events": total, "feeds": feeds, "batch": batch,
                           "sign_hash_s": signed.as_secs_f64(), "store_s": stored.as_secs_f64(),
                           "total_s": whole.as_secs_f64(), "events_per_s": per_sec(total, whole),
                           "sign_hash_per_s": per_sec(total, signed), "store_per_s": per_sec(total, stored),
                           "db_bytes": size})
                );
            } else {
                say!("append: {total} events in {feeds} feeds, {batch} per transaction");
                say!(
                    "  sign + hash  {:>8.2} s  {:>10.0} events/s (feeds in parallel)",
                    signed.as_secs_f64(),
                    per_sec(total, signed)
                );
                say!(
                    "  store        {:>8.2} s  {:>10.0} events/s (one writer)",
                    stored.as_secs_f64(),
                    per_sec(total, stored)
                );
                say!(
                    "  end to end   {:>8.2} s  {:>10.0} events/s",
                    whole.as_secs_f64(),
                    per_sec(total, whole)
                );
                say!("  database     {:.1} MiB", size as f64 / 1048576.0);
            }
        }
        BenchCmd::Kdf => {
            let kdf = KdfParams::default();
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                SealingKey::derive(b"benchmark passphrase", [7; 16], kdf)?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
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
